// The images of the example, every format and compressor, against digests recorded before the
// reshaping of issue 18 (test/data/image-digests.json): moving code between modules must not move a
// byte. SHRINKWRAP_RECORD_DIGESTS=1 writes the file anew instead of comparing (only when an image
// is meant to change; say why in the commit).
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { CLI, REPO_ROOT, type Run } from '../helpers/cli.js';
import { isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const RECORD = path.join(REPO_ROOT, 'test/data/image-digests.json');
/**
 * Images record the absolute paths of their inputs (provenance, labels) and the command: the work
 * directory is seen at this one path, bound there in a private mount namespace of each run (root,
 * or a user namespace), so that every checkout and every concurrent run records the same paths.
 */
const FIXED = '/tmp/shrinkwrap-image-digests';
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000', TZ: 'UTC' };
const RELEASE = ['--release', 'AnalysisBase,21.2.75'];

let work: string;
let inputs: string;
let cvmfs: string;
let base: string;

/** A directory image as one digest: every entry's type, mode, owner, size, time, target and content. */
function treeDigest(dir: string): string {
  const listing = execFileSync('find', ['.', '-printf', '%y %m %U:%G %s %T@ %n %l|%P\\n'], { cwd: dir, encoding: 'latin1', maxBuffer: 1 << 28 })
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (l.startsWith('d ') ? l.replace(/^(d \S+ \S+) \d+ (\S+) \d+ /, '$1 - $2 - ') : l))
    .sort();
  const h = crypto.createHash('sha256');
  for (const l of listing) {
    h.update(l + '\n');
    if (l.startsWith('f ')) h.update(fs.readFileSync(Buffer.from(path.join(dir, l.slice(l.indexOf('|') + 1)), 'latin1')));
  }
  return h.digest('hex');
}

/** An OCI layout as one digest: its index and every blob, by name. */
function layoutDigest(dir: string): string {
  const h = crypto.createHash('sha256');
  h.update(fs.readFileSync(path.join(dir, 'index.json')));
  for (const b of fs.readdirSync(path.join(dir, 'blobs/sha256')).sort()) h.update(b + '\n');
  return h.digest('hex');
}

function fileDigest(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** shrinkwrap run with the work directory bound at FIXED, and FIXED as its working directory. */
function shrinkwrapAtFixedPath(args: string[]): Run {
  const namespace = isRoot ? ['--mount', '--propagation', 'private'] : ['--user', '--map-root-user', '--mount', '--propagation', 'private'];
  const script = 'mount --bind "$1" "$2" && cd "$2" && shift 2 && exec "$@"';
  const r = spawnSync('unshare', [...namespace, 'sh', '-c', script, 'sh', work, FIXED, process.execPath, CLI, ...args], { env: ENV, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

interface Case {
  label: string;
  args: string[];
  digest: (out: string) => string;
}

const CASES: Case[] = [
  ...(['gzip', 'zstd', 'xz', 'none'] as const).map((c) => ({ label: `squashfs ${c}, base, release`, args: [...RELEASE, '--base', 'BASE', '--compression', c, '-o', 'OUT.sqfs'], digest: fileDigest })),
  { label: 'squashfs gzip, /cvmfs only, spec', args: ['--spec', path.join(REPO_ROOT, 'specs/examples/atlas.cern.ch.spec'), '-o', 'OUT.sqfs'], digest: fileDigest },
  { label: 'squashfs gzip 4K blocks, no dedup, no export table', args: [...RELEASE, '--block-size', '4K', '--no-dedup', '--no-export-table', '-o', 'OUT.sqfs'], digest: fileDigest },
  ...(['gzip', 'zstd', 'none'] as const).map((c) => ({ label: `oci ${c}, base, release`, args: [...RELEASE, '--base', 'BASE', '--format', 'oci', '--compression', c, '--tag', 'atlas/ab:21.2.75', '-o', 'OUT'], digest: layoutDigest })),
  { label: 'oci gzip, layer per release part', args: [...RELEASE, '--base', 'BASE', '--format', 'oci', '--layer-per', 'release', '--tag', 'atlas/ab:21.2.75', '-o', 'OUT'], digest: layoutDigest },
  { label: 'docker-archive gzip, base, release', args: [...RELEASE, '--base', 'BASE', '--format', 'docker-archive', '--tag', 'atlas/ab:21.2.75', '-o', 'OUT.tar'], digest: fileDigest },
  { label: 'sif gzip, base, release', args: [...RELEASE, '--base', 'BASE', '-o', 'OUT.sif'], digest: fileDigest },
  { label: 'dir, base, release', args: [...RELEASE, '--base', 'BASE', '--format', 'dir', '-o', 'OUT'], digest: treeDigest },
  { label: 'plan --json, release, elf closure', args: ['plan', '--json', ...RELEASE, '--closure', 'symlink,elf', '--base', 'BASE'], digest: () => '' },
];

const recorded: Record<string, string> = fs.existsSync(RECORD) ? JSON.parse(fs.readFileSync(RECORD, 'utf8')) : {};
const found: Record<string, string> = {};

beforeAll(async () => {
  work = tmpDir('sw-digests-');
  const example = await ensureExample();
  // The inputs through links in the work directory, seen at FIXED.
  fs.mkdirSync(FIXED, { recursive: true });
  fs.symlinkSync(example.cvmfs, path.join(work, 'cvmfs'));
  fs.symlinkSync(example.base, path.join(work, 'base'));
  cvmfs = 'cvmfs';
  base = 'base';
  // The example is made on this machine (its ELF files by cc, its base from the host's busybox and
  // libraries): other tools make other inputs, and then other images. Say so, not "images differ".
  inputs = treeDigest(example.cvmfs) + ' ' + treeDigest(example.base);
});
afterAll(() => {
  if (process.env['SHRINKWRAP_RECORD_DIGESTS']) fs.writeFileSync(RECORD, JSON.stringify({ inputs, ...found }, null, 1) + '\n');
  fs.rmSync(work, { recursive: true, force: true });
});

describe('images are byte-identical to those recorded (every format and compressor)', () => {
  it('the example is the one the digests were recorded from', () => {
    if (process.env['SHRINKWRAP_RECORD_DIGESTS']) return;
    expect(inputs, 'fixtures/out was made by other tools (compiler, busybox, libraries) than when the digests were recorded: record them anew (SHRINKWRAP_RECORD_DIGESTS=1) on a commit whose images are trusted, then compare').toBe(recorded['inputs']);
  });

  CASES.forEach((c, i) => {
    it(c.label, () => {
      const out = `img${i}`;
      const plan = c.args[0] === 'plan';
      const rest = c.args.slice(plan ? 1 : 0).map((a) => a.replace('BASE', base).replace('OUT', out));
      const args = [...(plan ? ['plan'] : []), '--cvmfs-root', cvmfs, ...rest, '--quiet', ...(plan ? [] : ['--no-checksum'])];
      const r = shrinkwrapAtFixedPath(args);
      expect(r.code, r.stderr).toBe(0);
      const digest = plan ? crypto.createHash('sha256').update(r.stdout).digest('hex') : c.digest(path.join(work, out) + (['.sqfs', '.tar', '.sif'].find((x) => c.args.includes(`OUT${x}`)) ?? ''));
      found[c.label] = digest;
      if (!process.env['SHRINKWRAP_RECORD_DIGESTS']) expect(digest, `${c.label}: recorded in test/data/image-digests.json`).toBe(recorded[c.label]);
    });
  });
});

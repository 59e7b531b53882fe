// A property test of hostile bases: random tarballs and OCI layouts whose members climb out with
// `..`, point links at a canary directory outside the output and then write below them, whiteout
// what is not there, carry NULs and empty names, nest deeper than PATH_MAX, and are built into
// every format. Whatever the input, a build either writes an image that its real consumers accept
// or exits 1 or 2 with one line; it never exits 3, never hangs, and never touches the canary.
//
// Seeds are fixed so a failure reproduces; SHRINKWRAP_PROPERTY_RUNS=N tries N more random ones
// (their seeds are printed with any failure).
import * as crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng } from '../../fixtures/big-tree.js';
import { CLI } from '../helpers/cli.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { type RawMember, rawOciLayout, rawTar } from '../helpers/raw-tar.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

let work: string;
let canary: string;
let cvmfs: string;
let canaryBefore: string;

/** Every entry of the canary with its type, mode, owner, times and content hash. */
function snapshot(dir: string): string {
  return execFileSync('find', [dir, '-printf', '%y %m %U:%G %T@ %C@ %s %l %p\\n'], { encoding: 'latin1' })
    .split('\n')
    .sort()
    .map((l) => {
      const p = l.slice(l.lastIndexOf(' ') + 1);
      return l.startsWith('f ') ? `${l} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}` : l;
    })
    .join('\n');
}

function hostileBase(seed: number): RawMember[] {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const components = ['a', 'b', 'etc', 'tmp', '..', '.', '.wh.a', '.wh..wh..opq', '.shrinkwrap', '.singularity.d', 'cvmfs', 'x'.repeat(300)] as const;
  const randomPath = (): string => {
    const n = 1 + Math.floor(r() * 4);
    const parts = Array.from({ length: n }, () => pick(components));
    const lead = pick(['', '', '', '/', './']);
    return lead + parts.join('/');
  };
  // Links may point anywhere: absolute targets are resolved inside the image by its runtime, but a
  // writer that follows them on the host lands in the canary. (Relative targets that climb above
  // the root are refused, so they belong to the refusable half.)
  const targets = [canary, `${canary}/inside`, '/', 'a', '/etc/passwd', 'etc/os-release'];
  // Always some ordinary content, so that an image can be made at all.
  const members: RawMember[] = [
    { name: 'etc/', type: '5' },
    { name: 'etc/os-release', content: 'ID=test\n' },
    { name: 'bin/', type: '5' },
  ];
  // Places shrinkwrap writes its own files, turned into links to the canary.
  const places = ['.shrinkwrap', '.singularity.d', 'cvmfs', 'tmp', 'etc/hosts', 'release_setup.sh'];
  const always = pick(places);
  for (const planted of places) {
    if (planted === always || r() < 0.4) members.push({ name: planted, type: '2', linkname: pick([canary, `${canary}/inside`]) });
  }
  // Most bases hold only what a correct reader must accept (links anywhere, devices, odd
  // modes), so that images are written and checked; the others add what must be refused.
  const refusable = r() < 0.4;
  const kinds = refusable
    ? (['file', 'dir', 'symlink', 'hardlink', 'fifo', 'char', 'below-link', 'nul', 'deep', 'badsize', 'climb'] as const)
    : (['file', 'file', 'dir', 'symlink', 'symlink', 'fifo', 'char'] as const);
  const safeComponents = ['a', 'b', 'c', 'usr', 'lib', 'opt'] as const;
  const count = 5 + Math.floor(r() * 15);
  for (let i = 0; i < count; i++) {
    const name = refusable ? randomPath() : Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(safeComponents)).join('/') + `${i}`;
    const kind = pick(kinds);
    switch (kind) {
      case 'file':
        members.push({ name, content: `file ${i}\n`, mode: pick([0o644, 0o4755, 0o777]) });
        break;
      case 'dir':
        members.push({ name: `${name}/`, type: '5', mode: pick([0o755, 0o1777, 0o000]) });
        break;
      case 'symlink':
        members.push({ name, type: '2', linkname: pick(refusable ? [...targets, '../../../..', `../${path.basename(canary)}`] : targets) });
        break;
      case 'hardlink':
        members.push({ name, type: '1', linkname: pick([...targets, 'etc/os-release']) });
        break;
      case 'fifo':
        members.push({ name, type: '6' });
        break;
      case 'char':
        members.push({ name, type: '3', devmajor: 8, devminor: 0, mode: 0o666 });
        break;
      case 'below-link': {
        // A link to the canary, then a member below it: written through the link, it lands outside.
        const link = `l${i}`;
        members.push({ name: link, type: '2', linkname: pick([canary, `${canary}/inside`]) });
        members.push({ name: `${link}/pwned-${i}`, content: 'escaped\n' });
        break;
      }
      case 'nul':
        members.push({ name: `nul${i}`, content: 'x', pax: { [pick(['path', 'linkpath'])]: Buffer.from(`a\0b${i}`, 'latin1') } });
        break;
      case 'deep':
        members.push({ name: `deep${i}`, content: 'x', pax: { path: Array.from({ length: 2100 }, () => 'd').join('/') } });
        break;
      case 'climb':
        members.push({ name: pick(['../escaped', 'a/../../escaped', `..${canary}/pwned`]), content: 'escaped\n' });
        break;
      case 'badsize':
        members.push({ name: `size${i}`, content: 'abcd', sizeField: pick(['0x4', '4e0', '-4', '']) });
        break;
    }
  }
  return members;
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function build(args: string[]): Outcome {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'latin1', cwd: work, timeout: 120_000, env: { ...process.env, SOURCE_DATE_EPOCH: '1600000000' } });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

/** What the real consumers say of an image that was written (empty when all is well). */
function consumersOf(format: string, out: string): string[] {
  const problems: string[] = [];
  const check = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'latin1', cwd: work, maxBuffer: 1 << 26 });
    if (r.status !== 0) problems.push(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr + r.stdout).slice(-600)}`);
    return r.stdout ?? '';
  };
  if (format === 'squashfs') {
    check('unsquashfs', ['-lln', out]);
    check(process.execPath, [CLI, 'verify', '--data', out]);
  } else if (format === 'oci') {
    check('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=t', out]);
    const bundle = path.join(work, `bundle-${path.basename(out)}`);
    check('umoci', ['unpack', '--rootless', '--image', `${out}:t`, bundle]);
    fs.rmSync(bundle, { recursive: true, force: true });
  } else if (format === 'docker-archive') {
    check('skopeo', ['inspect', `docker-archive:${out}`]);
  } else {
    // A directory image: every entry is inside it (find does not follow links), none is named `..`.
    const listing = check('find', [out, '-printf', '%P\\n']);
    for (const l of listing.split('\n')) if (l.split('/').some((c) => c === '..' || c === '.')) problems.push(`dir image holds ${l}`);
  }
  return problems;
}

const tally = { written: 0, refused: 0 };

const FORMATS = ['dir', 'squashfs', 'oci', 'docker-archive'] as const;

function trySeed(seed: number, baseKind: 'tarball' | 'oci'): string[] {
  const members = hostileBase(seed);
  let base: string;
  if (baseKind === 'tarball') {
    base = path.join(work, `base-${seed}.tar`);
    fs.writeFileSync(base, rawTar(members));
  } else {
    // Two layers: the second whiteouts and replaces what the first made.
    const half = Math.ceil(members.length / 2);
    const second = members.slice(half).concat([{ name: '.wh.etc', content: '' }, { name: `a/.wh..wh..opq`, content: '' }]);
    base = rawOciLayout(path.join(work, `layout-${seed}`), [rawTar(members.slice(0, half)), rawTar(second)]);
  }
  const problems: string[] = [];
  for (const format of FORMATS) {
    const out = path.join(work, `out-${seed}-${baseKind}-${format}`);
    const o = build(['--cvmfs-root', cvmfs, '--include', 'test.example.org/**', '--base', base, '--format', format, '--tag', 'img:t', '--no-checksum', '-q', '-o', out]);
    const what = `seed ${seed}, ${baseKind} base, ${format}`;
    const lines = o.stderr.split('\n').filter((l) => l !== '');
    tally[o.code === 0 ? 'written' : 'refused']++;
    if (process.env['SHRINKWRAP_PROPERTY_VERBOSE']) console.log(`${what}: exit ${o.code} ${o.stderr.trim().slice(0, 200)}`);
    if (o.signal) problems.push(`${what}: killed by ${o.signal} (a hang?)`);
    else if (o.code === 0) problems.push(...consumersOf(format, out).map((p) => `${what}: ${p}`));
    else if (o.code !== 1 && o.code !== 2) problems.push(`${what}: exit ${o.code}: ${o.stderr.slice(0, 400)}`);
    else if (lines.length !== 1 || !lines[0]!.startsWith('shrinkwrap: error: ')) problems.push(`${what}: exit ${o.code} without one error line: ${o.stderr.slice(0, 400)}`);
    if (o.code !== 0 && fs.existsSync(out)) problems.push(`${what}: failed but left ${out}`);
    if (snapshot(canary) !== canaryBefore) {
      problems.push(`${what}: the canary outside the output changed`);
      fs.rmSync(canary, { recursive: true, force: true });
      makeCanary();
      canaryBefore = snapshot(canary);
    }
    fs.rmSync(out, { recursive: true, force: true });
  }
  return problems;
}

function makeCanary(): void {
  makeTree(canary, { 'inside/keep.txt': 'canary\n', 'top.txt': 'canary\n' });
  fs.utimesSync(path.join(canary, 'top.txt'), 1_500_000_000, 1_500_000_000);
  fs.utimesSync(path.join(canary, 'inside/keep.txt'), 1_500_000_000, 1_500_000_000);
  fs.utimesSync(path.join(canary, 'inside'), 1_500_000_000, 1_500_000_000);
  fs.utimesSync(canary, 1_500_000_000, 1_500_000_000);
}

const haveConsumers = hasCommand('unsquashfs') && hasCommand('umoci') && hasCommand('oci-image-tool') && hasCommand('skopeo');

describe.runIf(canRun(haveConsumers, 'hostile base property test', 'needs unsquashfs, umoci, oci-image-tool and skopeo'))('hostile bases, every format', () => {
  beforeAll(() => {
    work = tmpDir('sw-hostile-prop-');
    canary = path.join(work, 'canary');
    makeCanary();
    canaryBefore = snapshot(canary);
    cvmfs = makeTree(path.join(work, 'cvmfs'), { 'test.example.org/sw/hello.txt': 'hello\n', 'test.example.org/sw/lib/x.so': 'not really\n' });
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  const fixed = [1, 2, 3, 4, 5, 6, 7, 8];
  const extra = Number(process.env['SHRINKWRAP_PROPERTY_RUNS'] ?? 0);
  const seeds = [...fixed, ...Array.from({ length: extra }, () => crypto.randomInt(1, 2 ** 31))];
  it.each(seeds)('seed %i: tarball and OCI bases: an image the consumers accept, or one line; never the canary', (seed) => {
    const problems = [...trySeed(seed, 'tarball'), ...trySeed(seed, 'oci')];
    expect(problems).toEqual([]);
  });

  it('a layer that whiteouts a lower directory and writes below it: the image has the parent, in every format', () => {
    const base = rawOciLayout(path.join(work, 'layout-wh'), [
      rawTar([{ name: 'etc/', type: '5' }, { name: 'etc/old', content: 'old\n' }]),
      rawTar([{ name: 'etc/new', content: 'new\n' }, { name: '.wh.etc', content: '' }]),
    ]);
    const problems: string[] = [];
    for (const format of FORMATS) {
      const out = path.join(work, `out-wh-${format}`);
      const o = build(['--cvmfs-root', cvmfs, '--include', 'test.example.org/**', '--base', base, '--format', format, '--tag', 'img:t', '--no-checksum', '-q', '-o', out]);
      if (o.code !== 0) problems.push(`${format}: exit ${o.code}: ${o.stderr.trim()}`);
      else problems.push(...consumersOf(format, out).map((p) => `${format}: ${p}`));
      if (format === 'dir' && o.code === 0) {
        // OCI: a whiteout hides the lower layers only; what its own layer writes stays.
        if (!fs.existsSync(path.join(out, 'etc/new')) || fs.existsSync(path.join(out, 'etc/old'))) problems.push(`dir: etc holds ${fs.readdirSync(path.join(out, 'etc'))}`);
      }
      fs.rmSync(out, { recursive: true, force: true });
    }
    expect(problems).toEqual([]);
  });

  it('the seeds exercise both sides: images written and checked, inputs refused', () => {
    expect(tally.written).toBeGreaterThan(8);
    expect(tally.refused).toBeGreaterThan(8);
  });
});

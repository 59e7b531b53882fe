// `shrinkwrap merge`: the example split into parts (shrinkwrap builds of one repository without a
// base, and mksquashfs -keep-as-directory images of the others, and a part with hard links, owners
// and xattrs), merged on the example base. The kernel mounts the image and its /cvmfs is the union
// of the parts' sources; unsquashfs, sqfs2tar and `shrinkwrap verify --data` read it; the data
// blocks are the parts' bytes; conflicts, other compressors and bad parts are refused in one line
// (or settled, or compressed anew, as asked), and the same parts give the same bytes.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { REPO_ROOT, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canKernelMount, diffTrees, findListing, run, withKernelMount } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { mksquashfs, noise } from '../helpers/squashfs-tree.js';
import { tmpDir } from '../helpers/tree.js';

type Reader = typeof import('../../src/sources/squashfs/reader.js');
let reader: Reader;

let work: string;
let example: { cvmfs: string; base: string };
/** The parts, and the union of what they hold (the tree the merged /cvmfs must equal). */
let parts: string[];
let union: string;
const T = 1_600_000_000;

const hasTools = () =>
  canRun(hasCommand('mksquashfs') && hasCommand('unsquashfs') && hasCommand('sqfs2tar') && hasCommand('setfattr'), 'squashfs-tools, squashfs-tools-ng, attr', 'apt-get install squashfs-tools squashfs-tools-ng attr');

const p = (name: string) => path.join(work, name);
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function ok(args: string[]): string {
  const r = shrinkwrap([...args]);
  expect(r.code, r.stderr).toBe(0);
  return r.stderr;
}

/** A small tree with what the example lacks: hard links, another owner, xattrs, a large file of noise. */
function makeExtra(root: string): void {
  const repo = path.join(root, 'extra.example.org');
  fs.mkdirSync(path.join(repo, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'noise.bin'), noise(3_000_000, 7)); // blocks stored uncompressed
  // Compressible blocks: compressed anew, they would differ from mksquashfs's (zlib -9 against libdeflate -6).
  fs.writeFileSync(path.join(repo, 'text.txt'), Array.from({ length: 40_000 }, (_, i) => `line ${i} of a text file, ${(i * 7919) % 1000}\n`).join(''));
  fs.writeFileSync(path.join(repo, 'sub/linked'), 'one inode, two names\n');
  fs.linkSync(path.join(repo, 'sub/linked'), path.join(repo, 'other-name'));
  fs.writeFileSync(path.join(repo, 'owned'), 'owned by 1234:5678\n');
  fs.chownSync(path.join(repo, 'owned'), 1234, 5678);
  fs.chmodSync(path.join(repo, 'owned'), 0o640);
  fs.writeFileSync(path.join(repo, 'attributed'), 'has user xattrs\n');
  run('setfattr', ['-n', 'user.shrinkwrap.test', '-v', 'value', path.join(repo, 'attributed')]);
  fs.symlinkSync('sub/linked', path.join(repo, 'link'));
  run('find', [root, '-exec', 'touch', '-h', '-d', `@${T}`, '{}', '+']);
}

beforeAll(async () => {
  reader = (await import(path.join(REPO_ROOT, 'dist/src/sources/squashfs/reader.js'))) as Reader;
  example = await ensureExample();
  work = tmpDir('merge');
  if (!hasCommand('mksquashfs')) return;
  union = p('union');
  fs.mkdirSync(union);
  // atlas.cern.ch by shrinkwrap (a /cvmfs-only build: its root holds atlas.cern.ch/); the union
  // has what it holds, as unsquashfs extracts it.
  fs.writeFileSync(p('atlas.cern.ch.spec'), '/*\n');
  ok(['build', '--cvmfs-root', example.cvmfs, '--spec', p('atlas.cern.ch.spec'), '--no-default-exclusions', '-o', p('atlas.sqfs'), '--quiet']);
  run('unsquashfs', ['-q', '-n', '-f', '-d', union, p('atlas.sqfs')]);
  // sft.cern.ch alone, and atlas-condb + atlas-nightlies together, by mksquashfs.
  mksquashfs(path.join(example.cvmfs, 'sft.cern.ch'), p('sft.sqfs'), ['-keep-as-directory']);
  const both = spawnSync('mksquashfs', [path.join(example.cvmfs, 'atlas-condb.cern.ch'), path.join(example.cvmfs, 'atlas-nightlies.cern.ch'), p('two.sqfs'), '-noappend', '-quiet', '-no-progress'], { encoding: 'utf8' });
  if (both.status !== 0) throw new Error(both.stderr);
  for (const r of ['sft.cern.ch', 'atlas-condb.cern.ch', 'atlas-nightlies.cern.ch']) run('cp', ['-a', path.join(example.cvmfs, r), union]);
  const extra = p('extra');
  makeExtra(extra);
  mksquashfs(path.join(extra, 'extra.example.org'), p('extra.sqfs'), ['-keep-as-directory']);
  run('cp', ['-a', path.join(extra, 'extra.example.org'), union]);
  parts = ['atlas.sqfs', 'sft.sqfs', 'two.sqfs', 'extra.sqfs'].map(p);
}, 300_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** find's listing with link counts, less the top directory (the image's own) and /.shrinkwrap/ (the merge's records). */
const listing = (dir: string) => findListing(dir, { nlink: true }).filter((l) => !l.endsWith('|') && !l.includes('|.shrinkwrap'));

/** Each file's stored blocks in an image: path → the bytes of its data blocks (none for tails only). */
async function dataBlocks(img: string, prefix = ''): Promise<Map<string, Buffer>> {
  const image = await reader.openSquashfs(img);
  const out = new Map<string, Buffer>();
  try {
    for (const e of image.walk()) {
      if (e.type !== 'file' || e.blockSizes!.length === 0) continue;
      let n = 0;
      for (const w of e.blockSizes!) n += w & 0xffffff;
      out.set(e.path.slice(prefix.length), image.pread(e.blocksStart!, n));
    }
  } finally {
    image.close();
  }
  return out;
}

describe('shrinkwrap merge', () => {
  it.runIf(hasTools())('merges parts onto the base: the kernel mounts the union of the parts, block for block', async () => {
    const out = p('merged.sqfs');
    const stderr = ok(['merge', '--base', example.base, '-o', out, ...parts]);
    expect(stderr).toMatch(/4 parts, 4 of them copied block for block/);
    expect(fs.readFileSync(out + '.sha256', 'utf8')).toBe(`${sha(out)}  merged.sqfs\n`);
    // The kernel's view: /cvmfs is the union (content, types, modes, owners, times, links, link counts, xattrs).
    if (canKernelMount()) {
      withKernelMount(out, work, (mnt) => {
        const cvmfs = path.join(mnt, 'cvmfs');
        expect(diffTrees(union, cvmfs)).toBe('');
        expect(listing(cvmfs)).toEqual(listing(union));
        expect(run('getfattr', ['--only-values', '-n', 'user.shrinkwrap.test', path.join(cvmfs, 'extra.example.org/attributed')])).toBe('value');
        // The base is there too, and what the merge records.
        expect(fs.existsSync(path.join(mnt, 'bin'))).toBe(true);
        const prov = JSON.parse(fs.readFileSync(path.join(mnt, '.shrinkwrap/provenance.json'), 'utf8'));
        expect(prov.merged.map((m: { file: string }) => m.file)).toEqual(['atlas.sqfs', 'sft.sqfs', 'two.sqfs', 'extra.sqfs']);
        expect(prov.merged[3].sha256).toBe(sha(parts[3]!));
      });
    }
    // Other readers.
    const x = p('x-merged');
    run('unsquashfs', ['-q', '-n', '-d', x, out]);
    expect(diffTrees(union, path.join(x, 'cvmfs'))).toBe('');
    expect(spawnSync('sh', ['-c', `sqfs2tar '${out}' | tar -t >/dev/null`]).status).toBe(0);
    const v = shrinkwrap(['verify', '--data', out]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/: OK: /);
    // Copied, not compressed again: every file's data blocks are its part's bytes.
    const merged = await dataBlocks(out, '/cvmfs');
    let compared = 0;
    for (const part of parts) {
      for (const [file, bytes] of await dataBlocks(part)) {
        expect(merged.get(file)?.equals(bytes), `${file} of ${path.basename(part)}`).toBe(true);
        compared++;
      }
    }
    expect(merged.get('/extra.example.org/noise.bin')!.length).toBeGreaterThan(2_900_000);
    expect(merged.has('/extra.example.org/text.txt')).toBe(true);
    expect(compared).toBe(2);
  });

  it.runIf(hasTools())('same parts, same bytes; without a base the parts are the image root', () => {
    const [a, b] = [p('again-1.sqfs'), p('again-2.sqfs')];
    ok(['merge', '-o', a, ...parts, '--quiet']);
    ok(['merge', '-o', b, ...parts, '--quiet']);
    expect(sha(a)).toBe(sha(b));
    const x = p('x-nobase');
    run('unsquashfs', ['-q', '-n', '-d', x, a]);
    expect(diffTrees(union, x, ['.shrinkwrap'])).toBe('');
    expect(listing(x)).toEqual(listing(union));
  });

  it.runIf(hasTools())('conflicting paths are refused naming both parts, and settled by --part-priority', () => {
    for (const [name, text] of [['c1', 'first\n'], ['c2', 'second, longer\n']]) {
      const dir = p(`${name}/conflict.example.org`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'same-path'), text);
      fs.writeFileSync(path.join(dir, 'same-everything'), 'equal in both\n');
      run('find', [p(name), '-exec', 'touch', '-h', '-d', `@${T}`, '{}', '+']);
      mksquashfs(dir, p(`${name}.sqfs`), ['-keep-as-directory']);
    }
    const out = p('conflict.sqfs');
    const r = shrinkwrap(['merge', '-o', out, p('c1.sqfs'), p('c2.sqfs')]);
    expectOneLineError(r, 2, /conflict\.example\.org\/same-path: size 6 in .*c1\.sqfs, 15 in .*c2\.sqfs.*--part-priority/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(work).filter((f) => f.includes('shrinkwrap-tmp'))).toEqual([]);
    for (const [priority, want] of [['first', 'first\n'], ['last', 'second, longer\n'], ['c2.sqfs,c1.sqfs', 'second, longer\n']]) {
      const o = p(`conflict-${priority.replace(/\W/g, '')}.sqfs`);
      const stderr = ok(['merge', '-o', o, '--part-priority', priority, p('c1.sqfs'), p('c2.sqfs')]);
      expect(stderr).toMatch(/1 conflicts settled by --part-priority/);
      expect(run('unsquashfs', ['-cat', o, 'conflict.example.org/same-path'])).toBe(want);
      expect(run('unsquashfs', ['-cat', o, 'conflict.example.org/same-everything'])).toBe('equal in both\n');
    }
  });

  it.runIf(hasTools())('a part with another compressor is compressed anew with a warning, or refused with --no-recompress', () => {
    mksquashfs(path.join(p('extra'), 'extra.example.org'), p('extra-xz.sqfs'), ['-keep-as-directory', '-comp', 'xz']);
    const out = p('mixed.sqfs');
    const stderr = ok(['merge', '-o', out, p('sft.sqfs'), p('extra-xz.sqfs')]);
    expect(stderr).toMatch(/warning: .*extra-xz\.sqfs is xz with 131072-byte blocks, the image gzip with 131072-byte blocks/);
    expect(stderr).toMatch(/2 parts, 1 of them copied block for block, 1 compressed anew/);
    const x = p('x-mixed');
    run('unsquashfs', ['-q', '-n', '-d', x, out]);
    expect(diffTrees(path.join(union, 'extra.example.org'), path.join(x, 'extra.example.org'))).toBe('');
    expect(diffTrees(path.join(union, 'sft.cern.ch'), path.join(x, 'sft.cern.ch'))).toBe('');
    expect(shrinkwrap(['verify', '--data', out]).code).toBe(0);
    const refused = p('refused.sqfs');
    expectOneLineError(shrinkwrap(['merge', '--no-recompress', '-o', refused, p('sft.sqfs'), p('extra-xz.sqfs')]), 2, /extra-xz\.sqfs is xz .*--no-recompress/);
    expect(fs.existsSync(refused)).toBe(false);
  });

  it.runIf(hasTools())('bad parts: one line naming each, nothing written', () => {
    fs.writeFileSync(p('not-a-part.sqfs'), 'just text, no superblock here\n'.repeat(10));
    const whole = fs.readFileSync(parts[0]!);
    fs.writeFileSync(p('truncated.sqfs'), whole.subarray(0, whole.length - 8192));
    const out = p('bad.sqfs');
    expectOneLineError(shrinkwrap(['merge', '-o', out, parts[1]!, p('not-a-part.sqfs')]), 2, /not-a-part\.sqfs: not a SquashFS image/);
    expectOneLineError(shrinkwrap(['merge', '-o', out, p('truncated.sqfs'), parts[1]!]), 2, /truncated\.sqfs: /);
    expectOneLineError(shrinkwrap(['merge', '-o', out, p('truncated.sqfs'), p('not-a-part.sqfs')]), 2, /2 parts cannot be merged: .*truncated\.sqfs: .*not-a-part\.sqfs: not a SquashFS image/);
    expectOneLineError(shrinkwrap(['merge', '-o', out, p('missing.sqfs')]), 2, /missing\.sqfs: no such file/);
    // A root file system is no part.
    expectOneLineError(shrinkwrap(['merge', '-o', out, p('merged.sqfs')]), 2, /merged\.sqfs: holds \/cvmfs: a root file system, not a part/);
    expectOneLineError(shrinkwrap(['merge', '-o', parts[1]!, '--force', parts[1]!, parts[0]!]), 2, /is one of the parts/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(work).filter((f) => f.includes('shrinkwrap-tmp'))).toEqual([]);
  });
});

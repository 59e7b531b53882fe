import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromText } from '../../src/model/bytes.js';
import { type ImageEntry, type SquashfsImage, createDecoder, openSquashfs } from '../../src/sources/squashfs/reader.js';
import { type ManifestEntry, verifySquashfs } from '../../src/verify/squashfs/index.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { type Expected, type SampleTree, findEntries, makeSampleTree, mksquashfs, patch, u16, u32, u64 } from '../helpers/squashfs-tree.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

const haveMksquashfs = canRun(hasCommand('mksquashfs'), 'SquashFS reader tests', 'mksquashfs (squashfs-tools) is not installed');
const haveSqfsNg = canRun(hasCommand('tar2sqfs') && hasCommand('gensquashfs'), 'SquashFS reader tests on squashfs-tools-ng images', 'tar2sqfs/gensquashfs are not installed');

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function comparable(e: ImageEntry | Expected): Expected {
  const out: Expected = { path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtime: e.mtime };
  if (e.target !== undefined) out.target = e.target;
  if (e.rdev !== undefined) out.rdev = e.rdev;
  return out;
}

async function withImage<T>(img: string, fn: (image: SquashfsImage) => T): Promise<T> {
  const image = await openSquashfs(img);
  try {
    return fn(image);
  } finally {
    image.close();
  }
}

async function supports(compressor: 'zstd' | 'xz'): Promise<boolean> {
  try {
    await createDecoder(compressor, 131072);
    return true;
  } catch {
    return false;
  }
}

describe.runIf(haveMksquashfs)('SquashFS reader on mksquashfs images', () => {
  let tmp: string;
  let tree: SampleTree;
  let expected: Expected[];
  let gzipImg: string;

  beforeAll(() => {
    tmp = tmpDir('sw-sqfs-');
    tree = makeSampleTree(path.join(tmp, 'src'));
    expected = findEntries(tree.root);
    gzipImg = path.join(tmp, 'gzip.sqfs');
    mksquashfs(tree.root, gzipImg, ['-comp', 'gzip']);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads the superblock and tables', async () => {
    await withImage(gzipImg, (image) => {
      const sb = image.superblock;
      expect(sb.compressor).toBe('gzip');
      expect(sb.blockSize).toBe(131072);
      expect(sb.blockLog).toBe(17);
      expect(sb.versionMajor * 10 + sb.versionMinor).toBe(40);
      expect(sb.hasExportTable).toBe(true);
      expect(sb.flagBits.exportable).toBe(true);
      expect(sb.flagBits.duplicates).toBe(true);
      expect(sb.hasXattrTable).toBe(tree.xattrs);
      expect(sb.inodeCount).toBe(expected.filter((e) => e.type !== 'hardlink').length);
      expect(image.ids).toEqual([...new Set([process.getuid!(), process.getgid!()])]);
      expect(image.tables.map((t) => t.name)).toEqual(['fragment table', 'export table', 'id table', ...(tree.xattrs ? ['xattr id table'] : [])]);
    });
  });

  it('walks exactly what find sees, in path order: types, modes, owners, sizes, mtimes, link targets, hard links', async () => {
    const got = await withImage(gzipImg, (image) => [...image.walk()]);
    expect(got.map(comparable)).toEqual(expected);
    const byPath = new Map(got.map((e) => [e.path, e]));
    expect(byPath.get('/hl3')).toMatchObject({ type: 'hardlink', target: '/hl1', nlink: 3 });
    expect(byPath.get('/utf/hl2')).toMatchObject({ type: 'hardlink', target: '/hl1' });
    expect(byPath.get('/hl1')).toMatchObject({ type: 'file', nlink: 3, inodeType: 'ext' });
    expect(byPath.get('/longsl')!.target).toBe('t/'.repeat(2000));
    expect(byPath.get('/' + tree.longName)!.size).toBe(10);
    expect(byPath.has(fromText('/utf/' + tree.utf8Name))).toBe(true);
    expect(byPath.get('/emptydir')).toMatchObject({ mode: 0o1777, fileSize: 3 });
    expect(byPath.get('/one')!.mode).toBe(0o4755);
    if (tree.device) expect(byPath.get('/chr')).toMatchObject({ type: 'char', rdev: fs.lstatSync(path.join(tree.root, 'chr')).rdev });
    if (tree.xattrs) expect(byPath.get('/one')!.xattrs).toEqual([['user.x', Buffer.from('y')]]);
    // Internals: the 1000-entry directory is an indexed ext dir; sparse blocks are size-0 words.
    const big = byPath.get('/big')!;
    expect(big.squashfsType).toBe(8);
    expect(big.dir!.indexCount).toBeGreaterThan(0);
    const sparse = byPath.get('/sparse')!;
    expect(Array.from(sparse.blockSizes!).map((w) => (w === 0 ? 0 : 1))).toEqual([0, 0, 0, 1, 0, 0, 0, 0]);
    expect(sparse.sparse).toBeGreaterThan(0);
    expect(byPath.get('/one')!.fragment).toBeDefined();
    expect(byPath.get('/multi')!.blockSizes!.length).toBe(4);
  });

  it('readFile returns the source bytes of every file: fragments, full blocks, tails, sparse and zero blocks, hard links', async () => {
    await withImage(gzipImg, (image) => {
      let files = 0;
      for (const e of image.walk()) {
        if (e.type !== 'file' && e.type !== 'hardlink') continue;
        const host = fs.readFileSync(Buffer.from(path.join(tree.root, e.path), 'latin1'));
        expect(sha(image.readFile(e)), e.path).toBe(sha(host));
        files++;
      }
      expect(files).toBe(1000 + 11);
      const sl = image.lookup('/sl')!;
      expect(image.readlink(sl)).toBe('one');
      expect(image.lookup('/big/file_0999')!.size).toBe(4);
      expect(image.lookup('/nope')).toBeUndefined();
    });
  });

  it('verifySquashfs finds no problems in a mksquashfs gzip image, data included', async () => {
    const r = await verifySquashfs(gzipImg, { data: true });
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.stats).toMatchObject({ inodes: expected.length - 2, entries: expected.length, hardlinks: 2, dirs: 4, indexedDirs: 1, dataChecked: true });
    expect(r.stats.sparseBlocks).toBeGreaterThanOrEqual(7);
  });

  it('zstd and xz images are read when src/codecs/ provides a decoder, else refused as unsupported', async () => {
    for (const comp of ['zstd', 'xz'] as const) {
      const img = path.join(tmp, `${comp}.sqfs`);
      mksquashfs(tree.root, img, ['-comp', comp]);
      if (await supports(comp)) {
        expect((await verifySquashfs(img, { data: true })).problems).toEqual([]);
        const got = await withImage(img, (image) => [...image.walk()].map(comparable));
        expect(got).toEqual(expected);
      } else {
        await expect(openSquashfs(img)).rejects.toThrow(`compressor ${comp} not supported by this reader`);
        expect((await verifySquashfs(img)).problems).toEqual([expect.stringContaining(`compressor ${comp} not supported by this reader`)]);
      }
    }
  });

  it('compares the image with a plan manifest mapped from /cvmfs', async () => {
    const manifest: ManifestEntry[] = expected.map((e) => ({
      ...e,
      path: Buffer.from(e.path === '/' ? '/cvmfs' : '/cvmfs' + e.path, 'latin1').toString('utf8'),
      ...(e.target !== undefined ? { target: Buffer.from(e.type === 'hardlink' ? '/cvmfs' + e.target : e.target, 'latin1').toString('utf8') } : {}),
    })) as ManifestEntry[];
    expect((await verifySquashfs(gzipImg, { manifest })).problems).toEqual([]);
    const changed = manifest.filter((m) => m.path !== '/cvmfs/empty').map((m) => (m.path === '/cvmfs/one' ? { ...m, mode: 0o644, mtime: 5 } : m));
    changed.push({ path: '/cvmfs/ghost', type: 'file', size: 1, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
    changed.push({ path: '/elsewhere', type: 'file', size: 1, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
    const hl = changed.findIndex((m) => m.path === '/cvmfs/hl3');
    changed[hl] = { ...changed[hl]!, target: '/cvmfs/utf/hl2' };
    expect((await verifySquashfs(gzipImg, { manifest: changed })).problems).toEqual([
      'manifest: /cvmfs/hl3: hard link target "/hl1", expected "/utf/hl2"',
      'manifest: /cvmfs/one: mode 4755, expected 644; mtime 1600000003, expected 5',
      'manifest: /cvmfs/ghost: missing from the image',
      'manifest: /elsewhere is outside /cvmfs',
      'manifest: /empty is in the image but not in the manifest',
    ]);
  });

  it.runIf(haveSqfsNg)('reads and verifies squashfs-tools-ng images: tar2sqfs (tail packing, hard links), gensquashfs (no export table)', async () => {
    const tar = path.join(tmp, 'src.tar');
    execFileSync('tar', ['--xattrs', '-C', tree.root, '-cf', tar, '.']);
    const t2s = path.join(tmp, 'tar2sqfs.sqfs');
    execFileSync('tar2sqfs', ['-c', 'gzip', '-q', t2s], { input: fs.readFileSync(tar) });
    const gen = path.join(tmp, 'gensquashfs.sqfs');
    execFileSync('gensquashfs', ['-c', 'gzip', '-q', '-k', '-x', '-D', tree.root, gen]);
    for (const img of [t2s, gen]) {
      const r = await verifySquashfs(img, { data: true, dirNlink: 'any' });
      expect(r.problems, img).toEqual([]);
      // squashfs-tools-ng writes directory nlink = 2 + entries, which we report by default.
      expect((await verifySquashfs(img)).problems.every((m) => /^directory .*: nlink \d+, expected 2 \+/.test(m))).toBe(true);
    }
    await withImage(gen, (image) => expect(image.superblock.hasExportTable).toBe(false));
    // tar2sqfs keeps hard links and packs the tails of big files into fragments.
    const got = await withImage(t2s, (image) => {
      const all = [...image.walk()];
      const multi = all.find((e) => e.path === '/multi')!;
      expect(multi.fragment).toBeDefined();
      expect(sha(image.readFile(multi))).toBe(sha(fs.readFileSync(path.join(tree.root, 'multi'))));
      return all.filter((e) => e.path !== '/').map(comparable);
    });
    expect(got).toEqual(expected.filter((e) => e.path !== '/'));
  });
});

// ---------------------------------------------------------------------------------------------
// Mutations: uncompressed metadata (-noI -noD -noF -noX) so that fields can be patched in place.

describe.runIf(haveMksquashfs)('verifySquashfs on damaged images', () => {
  let tmp: string;
  let base: string;
  let n = 0;

  beforeAll(() => {
    tmp = tmpDir('sw-sqfs-mut-');
    const src = path.join(tmp, 'src');
    makeTree(src, { 'd/aa': 'first\n', 'd/bb': 'second\n', 'd/cc': { dir: true }, 'x': 'compressible\n'.repeat(1000), 'l': { link: 'x' } });
    base = path.join(tmp, 'base.sqfs');
    mksquashfs(src, base, ['-noI', '-noD', '-noF', '-noX', '-comp', 'gzip']);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A fresh copy of the base image. */
  function copy(): string {
    const img = path.join(tmp, `m${n++}.sqfs`);
    fs.copyFileSync(base, img);
    return img;
  }

  /**
   * File position of the `width` bytes at `skip` bytes past (block, offset) in a metadata stream
   * stored uncompressed (they must not straddle two blocks).
   */
  function metaPos(image: SquashfsImage, block: number, offset: number, skip = 0, width = 4): number {
    let b = image.metaBlock(block);
    let off = offset + skip;
    while (off >= b.data.length) {
      off -= b.data.length;
      b = image.metaBlock(b.next);
    }
    expect(b.compressed).toBe(false);
    expect(off + width).toBeLessThanOrEqual(b.data.length);
    return b.pos + 2 + off;
  }

  /** Where things are, found with our own reader. */
  async function layout() {
    return withImage(base, (image) => {
      const sb = image.superblock;
      const inodePos = (p: string) => {
        const e = image.lookup(p)!;
        return metaPos(image, sb.inodeTableStart + Math.floor(e.inodeRef / 65536), e.inodeRef % 65536);
      };
      const d = image.lookup('/d')!;
      const listing = image.readListing(image.readInode(d.inodeRef));
      const entries = listing.headers.flatMap((h) => h.entries);
      const entryPos = (name: string) => metaPos(image, sb.directoryTableStart + d.dir!.startBlock, d.dir!.offset, entries.find((x) => x.name === name)!.pos, 10);
      return { sb, inodePos, entryPos, d, aa: image.lookup('/d/aa')!, bb: image.lookup('/d/bb')! };
    });
  }

  it('the base image is clean', async () => {
    expect((await verifySquashfs(base, { data: true })).problems).toEqual([]);
  });

  it('bytes_used += 8: the id table no longer ends at bytes_used', async () => {
    const { sb } = await layout();
    const img = copy();
    patch(img, 40, u64(sb.bytesUsed + 8));
    const { problems } = await verifySquashfs(img);
    expect(problems).toContainEqual(expect.stringMatching(/^id table: index array of 1 entries at 0x[0-9a-f]+ ends at 0x[0-9a-f]+, not where the next table begins/));
  });

  it('id_count = 0', async () => {
    const img = copy();
    patch(img, 26, u16(0));
    expect((await verifySquashfs(img)).problems).toContainEqual('id table: id_count is 0 (there must be at least one id)');
  });

  it('block_log that does not match block_size', async () => {
    const img = copy();
    patch(img, 22, u16(16));
    expect((await verifySquashfs(img)).problems).toEqual(['superblock: block_log 16 does not match block_size 131072 (log2 = 17)']);
    await expect(openSquashfs(img)).rejects.toThrow('block_log 16 does not match block_size 131072');
  });

  it('two inodes with the same inode number', async () => {
    const { inodePos, aa } = await layout();
    const img = copy();
    patch(img, inodePos('/d/bb') + 12, u32(aa.inodeNumber));
    const { problems } = await verifySquashfs(img);
    expect(problems).toContainEqual(expect.stringMatching(new RegExp(`^inode #${aa.inodeNumber} .* \\(/d/bb\\): inode number ${aa.inodeNumber} is also used by the different inode .* \\(/d/aa\\)$`)));
    expect(problems).toContainEqual(expect.stringMatching(/^directory \/d: entry "bb": header base \d+ \+ delta -?\d+ = inode number \d+, but the inode says #\d+$/));
  });

  it('an unsorted directory (two names of equal length swapped)', async () => {
    const { entryPos } = await layout();
    const img = copy();
    patch(img, entryPos('aa') + 8, Buffer.from('bb'));
    patch(img, entryPos('bb') + 8, Buffer.from('aa'));
    expect((await verifySquashfs(img)).problems).toEqual(['directory /d: entry "aa": not sorted (after "bb"); names must be strictly increasing by raw bytes']);
  });

  it('a duplicate name', async () => {
    const { entryPos } = await layout();
    const img = copy();
    patch(img, entryPos('bb') + 8, Buffer.from('aa'));
    expect((await verifySquashfs(img)).problems).toContainEqual('directory /d: entry "aa": duplicate name; names must be strictly increasing by raw bytes');
  });

  it('a directory entry with an extended type (9)', async () => {
    const { entryPos } = await layout();
    const img = copy();
    patch(img, entryPos('bb') + 4, u16(9));
    expect((await verifySquashfs(img)).problems).toEqual(['directory /d: entry "bb": type 9 is not a basic type 1..7']);
  });

  it('an entry type that does not match the inode', async () => {
    const { entryPos } = await layout();
    const img = copy();
    patch(img, entryPos('bb') + 4, u16(3));
    expect((await verifySquashfs(img)).problems).toEqual(['directory /d: entry "bb": entry type 3 (symlink) but the inode is type 2 (file)']);
  });

  it('a directory file_size without the +3', async () => {
    const { inodePos, d } = await layout();
    const img = copy();
    patch(img, inodePos('/d') + 24, u16(d.fileSize - 3));
    const { problems } = await verifySquashfs(img);
    expect(problems).toContainEqual(expect.stringMatching(/^directory \/d: file_size \d+ \(listing \d+ bytes\): listing ends inside entry 3 of 3 .*\(file_size is 3 short: is the \+3 for "\." and "\.\." missing\?\)$/));
  });

  it('inode number 0 and a wrong directory nlink', async () => {
    const { inodePos } = await layout();
    const img = copy();
    patch(img, inodePos('/x') + 12, u32(0));
    patch(img, inodePos('/d') + 20, u32(7));
    const { problems } = await verifySquashfs(img);
    expect(problems).toContainEqual(expect.stringMatching(/^inode #0 .* \(\/x\): inode number 0 is not in 1\.\.inode_count/));
    expect(problems).toContainEqual('directory /d: nlink 7, expected 2 + 1 subdirectories = 3');
  });

  it('more damage, one line each: root not a directory, uid index, fragment index, header count, symlink length', async () => {
    const { sb, inodePos, entryPos } = await layout();
    const xRef = await withImage(base, (image) => image.lookup('/x')!.inodeRef);
    const cases: Array<[Array<[number, Buffer]>, string]> = [
      [[[32, u64(xRef)]], 'superblock: the root inode 0x0:0x99 is not a directory (type 2)'],
      [[[inodePos('/x') + 4, u16(3)]], 'inode #6 0x0:0x99 (/x): uid index 3 is not below id_count 1'],
      [[[inodePos('/d/aa') + 20, u32(5)]], 'inode #2 0x0:0x0 (/d/aa): fragment index 5 is not below fragment_count 1'],
      [[[entryPos('aa') - 12, u32(300)]], 'directory /d: file_size 45 (listing 42 bytes): directory header at byte 0 has 301 entries (at most 256)'],
      [[[inodePos('/l') + 20, u32(0)]], 'inode #5 0x0:0x80 (/l): symlink target of 0 bytes (must be 1..4096)'],
      [[[sb.idTableStart, u64(sb.idTableStart - 30)]], `id table: metadata block at 0x${(sb.idTableStart - 30).toString(16)} does not decompress`],
    ];
    for (const [patches, problem] of cases) {
      const img = copy();
      for (const [pos, bytes] of patches) patch(img, pos, bytes);
      const { problems } = await verifySquashfs(img);
      expect(problems, problem).toContainEqual(expect.stringContaining(problem));
    }
  });

  it('a directory index entry that does not point at a header, or names the wrong entry', async () => {
    const src = path.join(tmp, 'many');
    makeTree(src, Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`many/${'n'.repeat(100)}_${String(i).padStart(3, '0')}`, `${i}`])));
    const img = path.join(tmp, 'many.sqfs');
    mksquashfs(src, img, ['-noI', '-noD', '-noF', '-noX', '-no-fragments']);
    expect((await verifySquashfs(img)).problems).toEqual([]);
    const { at, index } = await withImage(img, (image) => {
      const many = image.readInode(image.lookup('/many')!.inodeRef);
      expect(many.index!.length).toBeGreaterThan(1);
      // The first index entry follows the 40-byte ext dir inode: u32 index, u32 start_block, u32 size, name.
      const at = (skip: number) => metaPos(image, image.superblock.inodeTableStart + Math.floor(many.ref / 65536), many.ref % 65536, 40 + skip, 1);
      return { at: [at(0), at(12)], index: many.index![0]! };
    });
    const moved = path.join(tmp, 'many-moved.sqfs');
    fs.copyFileSync(img, moved);
    patch(moved, at[0]!, Buffer.from([(index.index + 1) & 0xff]));
    expect((await verifySquashfs(moved)).problems).toEqual([`directory /many: directory index entry 0: index ${index.index + 1} is not the start of a directory header`]);
    const renamed = path.join(tmp, 'many-renamed.sqfs');
    fs.copyFileSync(img, renamed);
    patch(renamed, at[1]!, Buffer.from('m'));
    expect((await verifySquashfs(renamed)).problems).toEqual([
      expect.stringMatching(/^directory \/many: directory index entry 0: name "mn+_\d{3}" is not the first entry of its header \("n+_\d{3}"\)$/),
    ]);
  });

  it('a corrupt data block is found with data: true', async () => {
    const img = path.join(tmp, 'data.sqfs');
    mksquashfs(path.join(tmp, 'src'), img, ['-noI', '-noF', '-noX', '-comp', 'gzip', '-no-fragments']);
    const pos = await withImage(img, (image) => image.lookup('/x')!.blocksStart!);
    patch(img, pos, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect((await verifySquashfs(img)).problems).toEqual([]);
    expect((await verifySquashfs(img, { data: true })).problems).toEqual([expect.stringMatching(/^data: \/x: block 0 at 0x[0-9a-f]+ does not decompress \(gzip: /)]);
  });
});

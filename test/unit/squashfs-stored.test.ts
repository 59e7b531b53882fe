// Files whose content is the stored blocks of another SquashFS image (entries with `stored`): the
// writer copies their compressed blocks as they are when compressor and block size match, packs
// their tails into its own fragments, stores a file that two images share once, and decompresses
// and compresses anew when they do not match. Parts made by the real mksquashfs; the images read
// back by unsquashfs and our verifier.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Diagnostics } from '../../src/model/diagnostics.js';
import type { Entry } from '../../src/model/entry.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { diffTrees, findListing, run } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { mksquashfs, noise } from '../helpers/squashfs-tree.js';
import { tmpDir } from '../helpers/tree.js';

// The built modules (dist/): compression on worker threads, as the CLI runs it.
type Writer = typeof import('../../src/writers/squashfs/index.js');
type Reader = typeof import('../../src/sources/squashfs/reader.js');
type Stored = typeof import('../../src/writers/squashfs/stored.js');
type Verify = typeof import('../../src/verify/squashfs/index.js');
let writer: Writer;
let reader: Reader;
let stored: Stored;
let verify: Verify;

const BS = 4096;
const T = 1_600_000_000;
let work: string;
let srcA: string;
let srcB: string;

const hasTools = () => canRun(hasCommand('mksquashfs') && hasCommand('unsquashfs'), 'mksquashfs/unsquashfs', 'apt-get install squashfs-tools');

beforeAll(async () => {
  const dist = (p: string) => import(path.join(REPO_ROOT, 'dist/src', p));
  writer = (await dist('writers/squashfs/index.js')) as Writer;
  reader = (await dist('sources/squashfs/reader.js')) as Reader;
  stored = (await dist('writers/squashfs/stored.js')) as Stored;
  verify = (await dist('verify/squashfs/index.js')) as Verify;
  work = tmpDir('stored');
  srcA = path.join(work, 'a');
  srcB = path.join(work, 'b');
  const tree = (root: string, files: Record<string, Buffer | string>) => {
    for (const [rel, data] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), data);
    }
  };
  tree(srcA, {
    'big': noise(3 * BS + 100, 1), // blocks and a tail
    'exact': noise(2 * BS, 2), // blocks, no tail
    'text': 'some text\n'.repeat(1000), // compressible blocks and a tail
    'dir/small': 'small\n',
    'dir/notes': 'a compressible tail, '.repeat(100), // a fragment block that compresses
    'dir/copy-of-big': noise(3 * BS + 100, 1), // mksquashfs stores it once
    'dir/empty': '',
  });
  // A sparse file: a zero block between two of noise, and a tail.
  fs.writeFileSync(path.join(srcA, 'sparse'), Buffer.concat([noise(BS, 3), Buffer.alloc(BS), noise(BS + 7, 4)]));
  fs.symlinkSync('dir/small', path.join(srcA, 'link'));
  fs.linkSync(path.join(srcA, 'dir/small'), path.join(srcA, 'hard'));
  tree(srcB, {
    'same-as-big': noise(3 * BS + 100, 1), // the same content as a/big: stored once in a merge
    'other': noise(5 * BS + 1, 5),
    'small': 'small\n',
  });
  for (const root of [srcA, srcB]) run('find', [root, '-exec', 'touch', '-h', '-d', `@${T}`, '{}', '+']);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Part {
  image: import('../../src/sources/squashfs/reader.js').SquashfsImage;
  source: import('../../src/writers/squashfs/stored.js').StoredSource;
  entries: Array<import('../../src/sources/squashfs/reader.js').ImageEntry>;
}

/** An image's entries, files with `stored` set (the image stays open: close() it). */
async function openPart(img: string, repackTails = false): Promise<Part> {
  const image = await reader.openSquashfs(img);
  const source = new stored.StoredSource(image, img, 0, repackTails);
  const entries = [...image.walk()];
  for (const e of entries) if (e.type === 'file') e.stored = source.blocksOf(e);
  return { image, source, entries };
}

function close(parts: Part[]): void {
  for (const p of parts) {
    p.source.close();
    p.image.close();
  }
}

/** Entries of parts under /<name> each (paths and hard-link targets moved), with a root. */
function under(parts: Array<[string, Part]>): Entry[] {
  const out: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: T, size: 0, reason: 'test' }];
  for (const [name, p] of parts) {
    for (const e of p.entries) {
      const moved = { ...e, path: e.path === '/' ? `/${name}` : `/${name}${e.path}` };
      if (e.type === 'hardlink') moved.target = `/${name}${e.target}`;
      out.push(moved);
    }
  }
  return out;
}

const OPTS = { compression: 'gzip', level: 6, blockSize: BS, mkfsTime: 0, exportTable: true, dedup: true, threads: 2 } as const;

async function write(entries: Entry[], out: string, opts: Partial<import('../../src/writers/squashfs/index.js').SquashfsOptions> = {}) {
  return writer.writeSquashfs(entries, out, { ...OPTS, ...opts }, new Diagnostics(() => {}));
}

/** unsquashfs -d of `img` equals `ref`: bytes, types, modes, times, links, link counts. */
function expectTree(img: string, ref: string): void {
  const out = path.join(work, `x-${path.basename(img)}`);
  run('unsquashfs', ['-n', '-d', out, img]);
  expect(diffTrees(ref, out)).toBe('');
  expect(findListing(out, { nlink: true })).toEqual(findListing(ref, { nlink: true }));
  fs.rmSync(out, { recursive: true });
}

/** Each file's compressed blocks in an image: [path, size words, the stored bytes]. */
async function blocksOf(img: string): Promise<Map<string, { words: number[]; bytes: Buffer }>> {
  const image = await reader.openSquashfs(img);
  const out = new Map<string, { words: number[]; bytes: Buffer }>();
  try {
    for (const e of image.walk()) {
      if (e.type !== 'file' || e.blockSizes!.length === 0) continue;
      const n = stored.storedBytes(e.blockSizes!);
      out.set(e.path, { words: [...e.blockSizes!], bytes: image.pread(e.blocksStart!, n) });
    }
  } finally {
    image.close();
  }
  return out;
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('stored blocks', () => {
  it.runIf(hasTools())('are copied as they are, fragment blocks too, and the image reads as the part', async () => {
    const partImg = path.join(work, 'a.sqfs');
    mksquashfs(srcA, partImg, ['-b', String(BS), '-comp', 'gzip', '-all-root']);
    const part = await openPart(partImg);
    const out = path.join(work, 'a-copied.sqfs');
    let r;
    try {
      r = await write(part.entries, out);
    } finally {
      close([part]);
    }
    expectTree(out, srcA);
    expect((await verify.verifySquashfs(out, { data: true })).problems).toEqual([]);
    // Every file's blocks: the part's size words and bytes (so none was recompressed).
    const before = await blocksOf(partImg);
    const after = await blocksOf(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [p, b] of before) {
      expect(after.get(p)!.words, p).toEqual(b.words);
      expect(after.get(p)!.bytes.equals(b.bytes), p).toBe(true);
    }
    expect(before.get('/sparse')!.words[1]).toBe(0);
    // dir/copy-of-big shares big's blocks in the part, and so in the output: nothing read twice.
    expect(r.dedupFiles).toBeGreaterThanOrEqual(1);
    // The same entries give the same bytes.
    const again = path.join(work, 'a-again.sqfs');
    const part2 = await openPart(partImg);
    try {
      await write(part2.entries, again);
    } finally {
      close([part2]);
    }
    expect(sha(again)).toBe(sha(out));
  });

  it.runIf(hasTools())('tails are packed anew into our fragments where the image asks (repackTails)', async () => {
    const partImg = path.join(work, 'a-repack.sqfs');
    mksquashfs(srcA, partImg, ['-b', String(BS), '-comp', 'gzip', '-all-root']);
    const copiedOut = path.join(work, 'a-frag-copied.sqfs');
    const repackedOut = path.join(work, 'a-frag-repacked.sqfs');
    for (const [out, repack] of [[copiedOut, false], [repackedOut, true]] as const) {
      const part = await openPart(partImg, repack);
      try {
        await write(part.entries, out);
      } finally {
        close([part]);
      }
      expectTree(out, srcA);
      expect((await verify.verifySquashfs(out, { data: true })).problems).toEqual([]);
    }
    // Copied: the part's fragment blocks as they are (zlib's bytes); repacked: ours (libdeflate's).
    const fragmentBytes = async (img: string) => {
      const image = await reader.openSquashfs(img);
      try {
        return Array.from({ length: image.superblock.fragmentCount }, (_, i) => {
          const f = image.fragmentEntry(i);
          return image.pread(f.start, f.sizeWord & 0xffffff).toString('hex');
        });
      } finally {
        image.close();
      }
    };
    const part = await fragmentBytes(partImg);
    expect(await fragmentBytes(copiedOut)).toEqual(part);
    expect(await fragmentBytes(repackedOut)).not.toEqual(part);
  });

  it.runIf(hasTools())('a file two parts share is stored once', async () => {
    const [imgA, imgB] = [path.join(work, 'pa.sqfs'), path.join(work, 'pb.sqfs')];
    mksquashfs(srcA, imgA, ['-b', String(BS), '-comp', 'gzip', '-all-root']);
    mksquashfs(srcB, imgB, ['-b', String(BS), '-comp', 'gzip', '-all-root']);
    const parts = [await openPart(imgA), await openPart(imgB)];
    const out = path.join(work, 'ab.sqfs');
    let r;
    try {
      r = await write(under([['a', parts[0]!], ['b', parts[1]!]]), out);
    } finally {
      close(parts);
    }
    const ref = path.join(work, 'ab-ref');
    fs.mkdirSync(ref);
    run('cp', ['-a', srcA, path.join(ref, 'a')]);
    run('cp', ['-a', srcB, path.join(ref, 'b')]);
    run('touch', ['-d', `@${T}`, ref]);
    expectTree(out, ref);
    expect((await verify.verifySquashfs(out, { data: true })).problems).toEqual([]);
    const image = await reader.openSquashfs(out);
    try {
      const big = image.lookup('/a/big')!;
      const same = image.lookup('/b/same-as-big')!;
      expect(same.blocksStart).toBe(big.blocksStart);
      expect([same.fragment, same.fragmentOffset]).toEqual([big.fragment, big.fragmentOffset]);
    } finally {
      image.close();
    }
    // a/dir/copy-of-big (inside the part) and b/same-as-big (across parts). b/small, a's dir/small,
    // is all tail: its fragment block is copied whole anyway.
    expect(r.dedupFiles).toBe(2);
  });

  it.runIf(hasTools())('blocks of another compressor or block size are compressed anew', async () => {
    const partImg = path.join(work, 'a-zstd.sqfs');
    mksquashfs(srcA, partImg, ['-b', String(BS), '-comp', 'zstd', '-all-root']);
    const before = await blocksOf(partImg);
    for (const [name, opts] of [
      ['gzip', {}],
      ['8k', { compression: 'zstd', blockSize: 2 * BS }],
    ] as const) {
      const part = await openPart(partImg);
      const out = path.join(work, `a-${name}.sqfs`);
      try {
        await write(part.entries, out, opts);
      } finally {
        close([part]);
      }
      expectTree(out, srcA);
      expect((await verify.verifySquashfs(out, { data: true })).problems).toEqual([]);
      const after = await blocksOf(out);
      expect(after.get('/big')!.bytes.equals(before.get('/big')!.bytes)).toBe(false);
    }
  });

  it.runIf(hasTools())('a part without fragments: its last partial blocks are copied as blocks', async () => {
    const partImg = path.join(work, 'a-nofrag.sqfs');
    mksquashfs(srcA, partImg, ['-b', String(BS), '-comp', 'gzip', '-all-root', '-no-fragments']);
    const part = await openPart(partImg);
    const out = path.join(work, 'a-nofrag-out.sqfs');
    try {
      await write(part.entries, out);
    } finally {
      close([part]);
    }
    expectTree(out, srcA);
    expect((await verify.verifySquashfs(out, { data: true })).problems).toEqual([]);
    const before = await blocksOf(partImg);
    const after = await blocksOf(out);
    expect(after.get('/big')!.words).toHaveLength(4);
    expect(after.get('/big')!.bytes.equals(before.get('/big')!.bytes)).toBe(true);
  });
});

// The SquashFS data feed: files offered before the image's entries are known (the CLI offers the
// selection walk's files as it finds them) end up where the image says, whatever else happens:
// files offered late, a second name of a hard link offered again, an offered file the image does
// not have, duplicates between early and late files. Read back by unsquashfs and our verifier.
import * as fs from 'node:fs';
import fsModule from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Diagnostics } from '../../src/model/diagnostics.js';
import type { Entry } from '../../src/model/entry.js';
import { walkTree } from '../../src/sources/posix.js';
import { verifySquashfs } from '../../src/verify/squashfs/index.js';
import type { SquashfsOptions } from '../../src/writers/squashfs/index.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { diffTrees, findListing, run } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';
import { noise } from '../helpers/squashfs-tree.js';

// The writer as built (dist/), so that its compression runs on worker threads and the feed's
// progress really depends on timing.
type Writer = typeof import('../../src/writers/squashfs/index.js');
let writer: Writer;
const OPTS: SquashfsOptions = { compression: 'zstd', level: 3, blockSize: 4096, mkfsTime: 0, exportTable: true, dedup: true, threads: 2 };

let work: string;
let src: string;
let ref: string;
const T = 1_600_000_000;

beforeAll(async () => {
  writer = (await import(path.join(REPO_ROOT, 'dist/src/writers/squashfs/index.js'))) as Writer;
  work = tmpDir('feed');
  src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'a/b'), { recursive: true });
  fs.mkdirSync(path.join(src, 'c'), { recursive: true });
  fs.writeFileSync(path.join(src, 'a/big'), noise(3 * 4096 + 100, 1)); // blocks and a tail
  fs.writeFileSync(path.join(src, 'a/large'), noise(6 << 20, 3)); // streamed (over 4 MiB): the feed takes a while
  fs.writeFileSync(path.join(src, 'a/b/small'), 'small file\n');
  fs.writeFileSync(path.join(src, 'a/b/empty'), '');
  fs.writeFileSync(path.join(src, 'a/b/dropped'), 'offered, then not in the image\n');
  fs.writeFileSync(path.join(src, 'c/copy-of-big'), noise(3 * 4096 + 100, 1)); // late duplicate of an early file
  fs.writeFileSync(path.join(src, 'c/late'), noise(5000, 2));
  fs.linkSync(path.join(src, 'a/b/small'), path.join(src, 'c/small-link'));
  for (const p of ['a/big', 'a/large', 'a/b/small', 'a/b/empty', 'a/b/dropped', 'c/copy-of-big', 'c/late', 'a/b', 'a', 'c', '.']) fs.utimesSync(path.join(src, p), T, T);
  // What the images must hold: the source without a/b/dropped.
  ref = path.join(work, 'ref');
  run('cp', ['-a', src, ref]);
  fs.rmSync(path.join(ref, 'a/b/dropped'));
  fs.utimesSync(path.join(ref, 'a/b'), T, T);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/**
 * The image's entries from the walk's (the same objects, changed in place as the selection does):
 * without a/b/dropped, and c/small-link turned into a hard link to a/b/small, as assignHardLinks
 * does after the walk (a/b/small may have come from a closure, c/small-link from the walk).
 */
function imageEntries(walked: Entry[]): Entry[] {
  const kept = walked.filter((e) => e.path !== '/a/b/dropped');
  for (const e of kept) if (e.path === '/c/small-link') Object.assign(e, { type: 'hardlink', target: '/a/b/small', size: 0, inode: undefined });
  return kept;
}

/** unsquashfs -d of `img` against the source without a/b/dropped: bytes, types, modes, times, link counts. */
function expectSameTree(img: string, name: string): void {
  const out = path.join(work, name);
  run('unsquashfs', ['-n', '-d', out, img]);
  expect(diffTrees(ref, out)).toBe('');
  expect(findListing(out, { nlink: true })).toEqual(findListing(ref, { nlink: true }));
}

const hasUnsquashfs = () => canRun(hasCommand('unsquashfs'), 'unsquashfs', 'apt-get install squashfs-tools');

/** Offer the walk's files that `early` picks (in path order, as the walk does), wait, then write the image. */
async function build(out: string, early: (e: Entry) => boolean, wait: () => Promise<unknown> = () => Promise.resolve(), opts: Partial<SquashfsOptions> = {}) {
  const walked = walkTree(src, '/', 'test', new Diagnostics(() => {}));
  const output = writer.openSquashfs(out, { ...OPTS, ...opts });
  for (const e of walked) if (e.type === 'file' && early(e)) output.feed.offerWalked(e);
  await wait();
  return writer.writeSquashfs(imageEntries(walked), out, { ...OPTS, ...opts, output }, new Diagnostics(() => {}));
}

const pause = (ms: number) => () => new Promise((r) => setTimeout(r, ms));

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('squashfs data feed', () => {
  it.runIf(hasUnsquashfs())('files offered early, late, twice and not at all give the image of the tree', async () => {
    const img = path.join(work, 'early.sqfs');
    const r = await build(img, (e) => e.path.startsWith('/a/') || e.path === '/c/small-link', pause(20));
    // Content added: a/b/dropped, a/b/empty, a/big, a/large (early), then a/b/small (its names wait
    // for the image's entries), c/copy-of-big and c/late. The late copy of a/big is its duplicate;
    // a/b/dropped's bytes are in the data area, and nothing refers to them.
    expect(r.files).toBe(7);
    expect(r.dedupFiles).toBe(1);
    expectSameTree(img, 'early');
    const v = await verifySquashfs(img, { data: true });
    expect(v.problems).toEqual([]);
  });

  it.runIf(hasUnsquashfs())('the image depends on the order of offers, not on timing', async () => {
    // Everything the walk found but a/b/small (a closure's, say), whose hard link c/small-link the
    // walk did find: written at once, or after the feed has had time to take all of it.
    const walk = (e: Entry) => e.path !== '/a/b/small';
    const [now, later] = [path.join(work, 'now.sqfs'), path.join(work, 'later.sqfs')];
    await build(now, walk);
    await build(later, walk, pause(500));
    expect(sha(now)).toBe(sha(later));
    expectSameTree(now, 'now');
    // c/late offered first leads the data area; with nothing offered early it is in path order.
    const [first, none] = [path.join(work, 'first.sqfs'), path.join(work, 'none.sqfs')];
    await build(first, (e) => e.path === '/c/late');
    await build(none, () => false);
    expect(sha(first)).not.toBe(sha(none));
    expectSameTree(first, 'first');
    expectSameTree(none, 'none');
  });

  it.runIf(hasUnsquashfs())('flushes to disk while writing leave the image as it is', async () => {
    // The data writer starts an fdatasync after every `syncEvery` bytes written (64 MiB in the
    // CLI: none for this small tree); after every write run here, with a streamed 6 MiB file.
    const spy = vi.spyOn(fsModule, 'fdatasync');
    syncBuiltinESMExports(); // the writer's `import * as fs` sees the spy too
    try {
      const [flushed, plain] = [path.join(work, 'flushed.sqfs'), path.join(work, 'plain.sqfs')];
      await build(plain, () => true);
      expect(spy).not.toHaveBeenCalled();
      await build(flushed, () => true, undefined, { syncEvery: 1 });
      // Six and more runs of up to 1 MiB: each one written starts a flush unless one is running.
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(2);
      expect(sha(flushed)).toBe(sha(plain));
      expectSameTree(flushed, 'flushed');
    } finally {
      spy.mockRestore();
      syncBuiltinESMExports();
    }
  });
});

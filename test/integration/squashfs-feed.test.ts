// The SquashFS data feed: files offered before the image's entries are known (the CLI offers the
// selection walk's files as it finds them) end up where the image says, whatever else happens:
// files offered late, a second name of a hard link offered again, an offered file the image does
// not have, duplicates between early and late files. Read back by unsquashfs and our verifier.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Diagnostics } from '../../src/model/diagnostics.js';
import type { Entry } from '../../src/model/entry.js';
import { walkTree } from '../../src/sources/posix.js';
import { verifySquashfs } from '../../src/sources/squashfs/verify.js';
import { type SquashfsOptions, openSquashfs, writeSquashfs } from '../../src/writers/squashfs/index.js';
import { diffTrees, findListing, run } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';
import { noise } from '../helpers/squashfs-tree.js';

const OPTS: SquashfsOptions = { compression: 'zstd', level: 3, blockSize: 4096, mkfsTime: 0, exportTable: true, dedup: true, threads: 0 }; // workers run from dist/: the CLI tests build with them

let work: string;
let src: string;
let ref: string;
let entries: Entry[];
const T = 1_600_000_000;

beforeAll(() => {
  work = tmpDir('feed');
  src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'a/b'), { recursive: true });
  fs.mkdirSync(path.join(src, 'c'), { recursive: true });
  fs.writeFileSync(path.join(src, 'a/big'), noise(3 * 4096 + 100, 1)); // blocks and a tail
  fs.writeFileSync(path.join(src, 'a/b/small'), 'small file\n');
  fs.writeFileSync(path.join(src, 'a/b/empty'), '');
  fs.writeFileSync(path.join(src, 'a/b/dropped'), 'offered, then not in the image\n');
  fs.writeFileSync(path.join(src, 'c/copy-of-big'), noise(3 * 4096 + 100, 1)); // late duplicate of an early file
  fs.writeFileSync(path.join(src, 'c/late'), noise(5000, 2));
  fs.linkSync(path.join(src, 'a/b/small'), path.join(src, 'c/small-link'));
  for (const p of ['a/big', 'a/b/small', 'a/b/empty', 'a/b/dropped', 'c/copy-of-big', 'c/late', 'a/b', 'a', 'c', '.']) fs.utimesSync(path.join(src, p), T, T);
  entries = walkTree(src, '/', 'test', new Diagnostics(() => {}));
  // What the images must hold: the source without a/b/dropped.
  ref = path.join(work, 'ref');
  run('cp', ['-a', src, ref]);
  fs.rmSync(path.join(ref, 'a/b/dropped'));
  fs.utimesSync(path.join(ref, 'a/b'), T, T);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** The image's entries: the walk's (the same objects), less a/b/dropped, with c/small-link a hard link to a/b/small. */
function imageEntries(): Entry[] {
  const kept = entries.filter((e) => e.path !== '/a/b/dropped');
  return kept.map((e) => (e.path === '/c/small-link' ? { ...e, type: 'hardlink' as const, target: '/a/b/small', size: 0 } : e));
}

/** unsquashfs -d of `img` against the source without a/b/dropped: bytes, types, modes, times, link counts. */
function expectSameTree(img: string, name: string): void {
  const out = path.join(work, name);
  run('unsquashfs', ['-n', '-d', out, img]);
  expect(diffTrees(ref, out)).toBe('');
  expect(findListing(out, { nlink: true })).toEqual(findListing(ref, { nlink: true }));
}

const hasUnsquashfs = () => canRun(hasCommand('unsquashfs'), 'unsquashfs', 'apt-get install squashfs-tools');

async function build(out: string, early: (e: Entry) => boolean): Promise<Awaited<ReturnType<typeof writeSquashfs>>> {
  const output = openSquashfs(out, OPTS);
  // Offered in path order, as the selection walk does.
  for (const e of entries) if (e.type === 'file' && early(e)) output.feed.offerWalked(e);
  await new Promise((r) => setTimeout(r, 20)); // let the feed start on them
  return writeSquashfs(imageEntries(), out, { ...OPTS, output }, new Diagnostics(() => {}));
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('squashfs data feed', () => {
  it.runIf(hasUnsquashfs())('files offered early, late, twice and not at all give the image of the tree', async () => {
    const img = path.join(work, 'early.sqfs');
    const r = await build(img, (e) => e.path.startsWith("/a/") || e.path === "/c/small-link");
    // Content added: a/b/empty, a/b/small, a/big, a/b/dropped (early; the link's second name is
    // not content), c/copy-of-big and c/late (late). The late copy of a/big is its duplicate;
    // a/b/dropped's bytes are in the data area, and nothing refers to them.
    expect(r.files).toBe(6);
    expect(r.dedupFiles).toBe(1);
    expectSameTree(img, 'early');
    const v = await verifySquashfs(img, { data: true });
    expect(v.problems).toEqual([]);
  });

  it.runIf(hasUnsquashfs())('the image depends on the order of offers, not on timing', async () => {
    // c/late offered first: its content leads the data area; the rest follows in path order.
    const first = (e: Entry) => e.path === '/c/late';
    const [one, two, none] = [path.join(work, 'one.sqfs'), path.join(work, 'two.sqfs'), path.join(work, 'none.sqfs')];
    await build(one, first);
    await build(two, first);
    await build(none, () => false);
    expect(sha(one)).toBe(sha(two));
    expect(sha(none)).not.toBe(sha(one));
    expectSameTree(one, 'one');
    expectSameTree(none, 'none');
  });
});

// The union of merge parts (compose/merge/union.ts): paths several parts have, conflicts and who
// wins them, subtrees that go with a directory that lost, and hard links whose first name lost.
import { describe, expect, it } from 'vitest';
import type { Entry, EntryType, StoredBlocks, StoredImage } from '../../src/model/entry.js';
import { runSteps } from '../../src/util/steps.js';
import { ranks, unionOf } from '../../src/compose/merge/union.js';

/** Files whose content is a tail of a fake image (their stored blocks: none, the tail holds it all). */
function image(name: string, contents: Record<string, string>): StoredImage & { stored: (path: string) => StoredBlocks } {
  const tails = Object.values(contents).map((c) => Buffer.from(c));
  const names = Object.keys(contents);
  return {
    file: name,
    compressor: 'gzip',
    blockSize: 4096,
    readRaw: () => {},
    readBlock: () => Buffer.alloc(0),
    tail: (fragment, offset, length) => tails[fragment]!.subarray(offset, offset + length),
    fragmentAt: () => ({ start: 0, sizeWord: 0 }),
    repackTails: false,
    stored(path: string) {
      return { image: this, blocksStart: 0, words: new Uint32Array(0), fragment: names.indexOf(path), fragmentOffset: 0 };
    },
  };
}

function part(file: string, list: Array<[path: string, type: EntryType, extra?: Partial<Entry>]>, contents: Record<string, string> = {}) {
  const img = image(file, contents);
  const entries: Entry[] = list.map(([path, type, extra]) => {
    const e: Entry = { path, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1, size: 0, reason: file, ...extra };
    if (type === 'file') {
      e.size = contents[path]!.length;
      e.stored = img.stored(path);
    }
    return e;
  });
  const firstNames = new Map<string, Entry>();
  for (const e of entries) if (e.type === 'file' && entries.some((h) => h.type === 'hardlink' && h.target === e.path)) firstNames.set(e.path, e);
  return { file, entries, firstNames };
}

const paths = (es: Entry[]) => es.map((e) => `${e.path} ${e.type}${e.target ? ' ' + e.target : ''}`);

describe('merge union', () => {
  const a = () =>
    part('a.sqfs', [['/r', 'dir'], ['/r/f', 'file'], ['/r/same', 'file'], ['/r/x', 'dir'], ['/r/x/in', 'file']], { '/r/f': 'from a', '/r/same': 'equal', '/r/x/in': 'in a dir' });
  const b = () => part('b.sqfs', [['/r', 'dir', { mode: 0o700 }], ['/r/f', 'file'], ['/r/same', 'file'], ['/r/x', 'file']], { '/r/f': 'from b!', '/r/same': 'equal', '/r/x': 'a file' });

  it('refuses a conflict without a priority, naming the path and both parts', () => {
    expect(() => runSteps(unionOf([a(), b()], null))).toThrow(/^\/r\/f: size 6 in a\.sqfs, 7 in b\.sqfs: the parts conflict/);
  });

  it('the first or the last part wins; a directory that loses takes its subtree with it', () => {
    const first = runSteps(unionOf([a(), b()], ranks(2, 'first')));
    expect(paths(first.entries)).toEqual(['/r dir', '/r/f file', '/r/same file', '/r/x dir', '/r/x/in file']);
    expect(first.entries[0]!.mode).toBe(0o755); // the winner's directory
    expect([first.shared, first.settled]).toEqual([4, 2]);
    const last = runSteps(unionOf([a(), b()], ranks(2, 'last')));
    expect(paths(last.entries)).toEqual(['/r dir', '/r/f file', '/r/same file', '/r/x file']);
    expect(last.entries[1]!.reason).toBe('b.sqfs');
    expect(last.entries[0]!.mode).toBe(0o700);
    // A list: the parts named first win, the others after them.
    expect(runSteps(unionOf([a(), b()], ranks(2, [1]))).entries[1]!.reason).toBe('b.sqfs');
  });

  it('hard links whose first name lost: the next name takes the content, the rest link to it', () => {
    // (The union changes the entries it relinks: a fresh part each time.)
    const links = () =>
      part('a.sqfs', [['/r', 'dir'], ['/r/1', 'file'], ['/r/2', 'hardlink', { target: '/r/1' }], ['/r/3', 'hardlink', { target: '/r/1' }]], { '/r/1': 'linked content' });
    const other = part('b.sqfs', [['/r', 'dir'], ['/r/1', 'file']], { '/r/1': 'another file' });
    const u = runSteps(unionOf([links(), other], ranks(2, 'last')));
    expect(paths(u.entries)).toEqual(['/r dir', '/r/1 file', '/r/2 file', '/r/3 hardlink /r/2']);
    expect(u.entries[1]!.reason).toBe('b.sqfs');
    expect(u.entries[2]!.size).toBe('linked content'.length);
    expect(u.entries[2]!.stored!.image.file).toBe('a.sqfs');
    // An equal file at the first name: the links stay links to it.
    const equal = part('b.sqfs', [['/r', 'dir'], ['/r/1', 'file']], { '/r/1': 'linked content' });
    const v = runSteps(unionOf([links(), equal], ranks(2, 'last')));
    expect(paths(v.entries)).toEqual(['/r dir', '/r/1 file', '/r/2 hardlink /r/1', '/r/3 hardlink /r/1']);
  });
});

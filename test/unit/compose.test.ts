// compose/image.ts: the base root filesystem and the /cvmfs payload as one sorted image (a merge of
// two sorted lists), with generated files, and the payload as entries of a source tree (TreeEntry).
import { describe, expect, it } from 'vitest';
import { composeImage } from '../../src/compose/image.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import { type Entry, type EntryType, SourceRoot, TreeEntry, compareEntryPath, comparePaths, entryName, findPath } from '../../src/model/entry.js';

function e(path: string, type: EntryType = 'dir', extra: Partial<Entry> = {}): Entry {
  return { path, type, mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0, reason: 'test', ...extra };
}

function tree(path: string, type: EntryType, from: SourceRoot): TreeEntry {
  const i = path.lastIndexOf('/');
  return new TreeEntry(path.slice(0, i), path.slice(i + 1), type, 0o644, 0, 0, 1, 0, 'walk', from);
}

const shape = (image: Entry[]) => image.map((x) => `${x.type} ${x.path}${x.reason === 'test' ? '' : ' (' + x.reason + ')'}`);

describe('composeImage with a base', () => {
  const base = [e('/'), e('/cvmfs'), e('/cvmfs/r'), e('/cvmfs/r/old'), e('/cvmfs/r/old/x', 'file'), e('/cvmfs/r/zz', 'file'), e('/etc'), e('/etc/a', 'file'), e('/usr')];

  it('merges in path order; the payload wins; a directory replaced by a non-directory loses its subtree', () => {
    const payload = [e('/cvmfs/r', 'dir', { reason: 'p' }), e('/cvmfs/r/new', 'file', { reason: 'p' }), e('/cvmfs/r/old', 'symlink', { reason: 'p', target: 'new' })];
    const image = composeImage({ base, payload, mount: '/cvmfs', epoch: 5 }, new Diagnostics());
    expect(shape(image)).toEqual([
      'dir /',
      'dir /cvmfs',
      'dir /cvmfs/r (p)',
      'file /cvmfs/r/new (p)',
      'symlink /cvmfs/r/old (p)',
      'file /cvmfs/r/zz',
      'dir /etc',
      'file /etc/a',
      'dir /usr',
    ]);
  });

  it('makes the mount point when the base lacks it, and replaces one that is not a directory, with a warning', () => {
    const noMount = [e('/'), e('/etc'), e('/usr')];
    const payload = [e('/cvmfs/r', 'dir', { reason: 'p' })];
    expect(shape(composeImage({ base: noMount, payload, mount: '/cvmfs', epoch: 5 }, new Diagnostics()))).toEqual([
      'dir /',
      'dir /cvmfs (mount point of the /cvmfs payload)',
      'dir /cvmfs/r (p)',
      'dir /etc',
      'dir /usr',
    ]);
    const diag = new Diagnostics();
    const linked = [e('/'), e('/cvmfs', 'symlink', { target: '/mnt' }), e('/etc')];
    expect(shape(composeImage({ base: linked, payload, mount: '/cvmfs', epoch: 5 }, diag))).toEqual(['dir /', 'dir /cvmfs (mount point of the /cvmfs payload)', 'dir /cvmfs/r (p)', 'dir /etc']);
    expect(diag.warnings.map((w) => w.kind)).toEqual(['base-conflict']);
  });

  it('adds generated files over whatever is there, and generated directories into gaps and over non-directories, never following a base link', () => {
    const extra = [e('/etc/a', 'file', { reason: 'gen' }), e('/usr', 'file', { reason: 'gen' }), e('/etc', 'dir', { reason: 'gen' }), e('/.singularity.d', 'dir', { reason: 'gen' })];
    const diag = new Diagnostics();
    const image = composeImage({ base, payload: [], mount: '/cvmfs', epoch: 5, extra }, diag);
    expect(shape(image).filter((l) => !l.includes('/cvmfs'))).toEqual(['dir /', 'dir /.singularity.d (gen)', 'dir /etc', 'file /etc/a (gen)', 'file /usr (gen)']);
    expect(diag.warnings.map((w) => w.message)).toEqual(['base image has /usr as a dir; replaced by a file shrinkwrap generates']);
    // A base link where shrinkwrap writes its own tree: replaced, so nothing lands below it.
    const linked = [e('/'), e('/.shrinkwrap', 'symlink', { target: '/host/dir' }), e('/cvmfs')];
    const gen = [e('/.shrinkwrap', 'dir', { reason: 'gen' }), e('/.shrinkwrap/plan.json', 'file', { reason: 'gen' })];
    expect(shape(composeImage({ base: linked, payload: [], mount: '/cvmfs', epoch: 5, extra: gen }, new Diagnostics()))).toEqual([
      'dir /',
      'dir /.shrinkwrap (gen)',
      'file /.shrinkwrap/plan.json (gen)',
      'dir /cvmfs',
    ]);
  });

  it('refuses a base hard link whose first name went with a directory the payload replaced', () => {
    const gone = [e('/'), e('/cvmfs'), e('/cvmfs/d'), e('/cvmfs/d/f', 'file'), e('/cvmfs/h', 'hardlink', { target: '/cvmfs/d/f' })];
    expect(() => composeImage({ base: gone, payload: [e('/cvmfs/d', 'symlink', { target: 'x' })], mount: '/cvmfs', epoch: 5 }, new Diagnostics())).toThrow(
      /hard link \/cvmfs\/h -> \/cvmfs\/d\/f lost its target/,
    );
  });

  it('gives an image in path order whatever the names (bytes around "/")', () => {
    const b = [e('/'), e('/a'), e('/a/b'), e('/a-b'), e('/a.b'), e('/cvmfs'), e('/z')];
    const payload = [e('/cvmfs/a', 'file'), e('/cvmfs/a-b', 'file'), e('/cvmfs/a/b', 'file')].sort((x, y) => comparePaths(x.path, y.path));
    const image = composeImage({ base: b, payload, mount: '/cvmfs', epoch: 5 }, new Diagnostics());
    const paths = image.map((x) => x.path);
    expect([...paths].sort(comparePaths)).toEqual(paths);
    expect(new Set(paths).size).toBe(paths.length);
  });
});

describe('TreeEntry', () => {
  it('derives its image and host paths, also after the payload moves to the image root', () => {
    const from = new SourceRoot('/srv/cvmfs-copy', '/cvmfs'.length);
    const payload = [tree('/cvmfs/r.ch', 'dir', from), tree('/cvmfs/r.ch/lib', 'dir', from), tree('/cvmfs/r.ch/lib/a.so', 'file', from)];
    expect(payload.map((x) => [x.path, x.source])).toEqual([
      ['/cvmfs/r.ch', '/srv/cvmfs-copy/r.ch'],
      ['/cvmfs/r.ch/lib', '/srv/cvmfs-copy/r.ch/lib'],
      ['/cvmfs/r.ch/lib/a.so', '/srv/cvmfs-copy/r.ch/lib/a.so'],
    ]);
    const image = composeImage({ base: null, payload, mount: '/cvmfs', epoch: 5 }, new Diagnostics());
    expect(image.map((x) => [x.path, x.source])).toEqual([
      ['/', undefined],
      ['/r.ch', '/srv/cvmfs-copy/r.ch'],
      ['/r.ch/lib', '/srv/cvmfs-copy/r.ch/lib'],
      ['/r.ch/lib/a.so', '/srv/cvmfs-copy/r.ch/lib/a.so'],
    ]);
    // Paths move only with moveUp: an assignment would separate the image path from the host path.
    expect(() => {
      image[3]!.path = '/elsewhere/b.so';
    }).toThrow(/moveUp/);
  });

  it('compares, finds and names itself exactly like its path string, before and after moving up', () => {
    const from = new SourceRoot('/srv', '/cvmfs'.length);
    const names = ['/cvmfs/r', '/cvmfs/r/a', '/cvmfs/r/a-b', '/cvmfs/r/a/b', '/cvmfs/r/a.b', '/cvmfs/r/ab', '/cvmfs/r/\xe9', '/cvmfs/s'];
    const probes = [...names, '/', '/cvmfs', '/cvmfs/', '/cvmfs/r/a/', '/cvmfs/r/a/b/c', '/r/a', '/r', '/zz', '/cvmfs/r/'];
    for (const moved of [false, true]) {
      const entries = names.map((p) => tree(p, 'dir', from));
      if (moved) for (const x of entries) x.moveUp('/cvmfs'.length);
      for (const x of entries) {
        expect(entryName(x)).toBe(x.path.slice(x.path.lastIndexOf('/') + 1));
        for (const p of [...probes, ...probes.map((q) => q.slice('/cvmfs'.length))]) {
          expect(Math.sign(compareEntryPath(x, p)), `${x.path} vs ${p}`).toBe(Math.sign(comparePaths(x.path, p)));
        }
      }
      const sorted = [...entries].sort((a, b) => comparePaths(a.path, b.path));
      for (const [i, x] of sorted.entries()) expect(findPath(sorted, x.path)).toBe(i);
      expect(findPath(sorted, moved ? '/r/zz' : '/cvmfs/r/zz')).toBe(-1);
    }
  });
});

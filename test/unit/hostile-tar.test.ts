// Hostile base layers at the level of the tar reader and the layer stack (issue 17, siblings of
// case 10): work that grows with the square of a crafted input, and the whiteout rules it must keep.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerStack } from '../../src/sources/base/flatten.js';
import { type TarMember, readTar } from '../../src/sources/tar/reader.js';
import { member, pax, tarball } from '../helpers/raw-tar.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
beforeAll(() => (work = tmpDir('sw-hostile-tar-unit-')));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function m(name: string, type: TarMember['type'] = 'file'): TarMember {
  return { name, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: [], offset: 0 };
}

function paths(stack: LayerStack): string[] {
  return stack.entries().map((e) => e.path);
}

describe('linear time on crafted names and layers', () => {
  it('a name with a long run of slashes inside is read in linear time (no backtracking regular expression)', () => {
    const name = 'a' + '/'.repeat(100_000) + 'b';
    const file = path.join(work, 'slashes.tar');
    fs.writeFileSync(file, tarball(pax([['path', name]]), member({ name: 'x' })));
    const t0 = Date.now();
    const got = [...readTar(file, 'slashes.tar')];
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(got.map((g) => g.name)).toEqual([name]);
    const stack = new LayerStack(0);
    stack.apply(got, file, 'slashes.tar');
    expect(paths(stack)).toEqual(['/', '/a', '/a/b']);
  });

  it('a layer of 40,000 opaque directories is applied in linear time', () => {
    function* members(): Generator<TarMember> {
      for (let i = 0; i < 40_000; i++) {
        yield m(`d${i}`, 'dir');
        yield m(`d${i}/.wh..wh..opq`);
        yield m(`d${i}/.wh..wh..opq`);
      }
    }
    const stack = new LayerStack(0);
    stack.apply([m('d0/old'), m('d1/keep/deep')], '/l0', 'l0');
    const t0 = Date.now();
    stack.apply(members(), '/l1', 'l1');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(paths(stack).slice(0, 4)).toEqual(['/', '/d0', '/d1', '/d10']);
  });
});

describe('whiteouts keep their meaning', () => {
  it('opaque directories hide lower children only; whiteouts delete lower subtrees; same-layer entries stay', () => {
    const stack = new LayerStack(0);
    stack.apply([m('a', 'dir'), m('a/x'), m('a/y', 'dir'), m('a/y/z'), m('b', 'dir'), m('b/c', 'dir'), m('b/c/d'), m('e'), m('f', 'dir'), m('f/g')], '/l0', 'l0');
    stack.apply([m('a/new'), m('a/.wh..wh..opq'), m('a/y2'), m('b/.wh.c'), m('.wh.e'), m('f'), m('f2')], '/l1', 'l1');
    // a/new came before the marker in the same layer: it stays (the marker hides lower layers only).
    expect(paths(stack)).toEqual(['/', '/a', '/a/new', '/a/y2', '/b', '/f', '/f2']);
    stack.apply([m('f', 'dir'), m('f/h'), m('a/y', 'dir'), m('a/y/w')], '/l2', 'l2');
    expect(paths(stack)).toEqual(['/', '/a', '/a/new', '/a/y', '/a/y/w', '/a/y2', '/b', '/f', '/f/h', '/f2']);
    stack.apply([m('.wh.a'), m('a/again')], '/l3', 'l3');
    expect(paths(stack)).toEqual(['/', '/a', '/a/again', '/b', '/f', '/f/h', '/f2']);
  });
});

describe('extended headers: bounded, and each costs once', () => {
  it('a global header of 200,000 records is not copied for every member', () => {
    const records: Array<[string, string]> = Array.from({ length: 200_000 }, (_, i) => [`k${i}`, 'v']);
    const members = Array.from({ length: 5000 }, (_, i) => member({ name: `f${i}` }));
    const file = path.join(work, 'global.tar');
    fs.writeFileSync(file, tarball(pax(records, 'g'), ...members));
    const t0 = Date.now();
    expect([...readTar(file, 'global.tar')].length).toBe(5000);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a run of 20,000 PAX headers before one member is merged in linear time', () => {
    const file = path.join(work, 'run.tar');
    fs.writeFileSync(file, tarball(...Array.from({ length: 20_000 }, (_, i) => pax([[`k${i}`, 'v']])), member({ name: 'f' })));
    const t0 = Date.now();
    expect([...readTar(file, 'run.tar')].map((x) => x.name)).toEqual(['f']);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('more than 64 MiB of extended headers for one member is refused, though each is below it', () => {
    const big = pax([['comment', 'c'.repeat(33 << 20)]]);
    const file = path.join(work, 'big-ext.tar');
    fs.writeFileSync(file, tarball(big, big, member({ name: 'f' })));
    expect(() => [...readTar(file, 'big-ext.tar')]).toThrow(/big-ext\.tar: header at byte \d+: extended headers of more than 64 MiB \(for one member\)/);
  });
});

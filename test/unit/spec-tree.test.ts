import { describe, expect, it } from 'vitest';
import { specTree } from '../helpers/spec.js';

describe('T_SpecTree (cvmfs test/unittests/shrinkwrap/t_spec_tree.cc) against our matcher', () => {
  const t = specTree(['^/*', '/foo/bar', '/foo/bar/abc/*', '!/foo/bar/abc/def/hij', '^/bar', '^/bar/abc/def/*', '!/bar/abc/def/ghj'].join('\n'));

  it.each(['', '/', '/asdf', '/foo/', '/foo/bar', '/foo/bar/abc/foo/foo/foo.txt', '/bar', '/bar/abc/def/def', '/bar/abc/def'])(
    'IsMatching(%j) is true',
    (p) => expect(t.selected(p)).toBe(true),
  );

  it.each([
    '/bar/abc/def/ghj',
    '/bar/abc/def/ghj/def/def',
    '/bar/def',
    '/bar/abc/abc',
    '/foobar/bar',
    '/foo/bar/def',
    '/foo/bar/abc/def/hij',
    '/foo/bar/abc/def/hij/def.txt',
  ])('IsMatching(%j) is false', (p) => expect(t.selected(p)).toBe(false));

  it('ListDir: SPEC_READ_FS where upstream reads the file system', () => {
    for (const p of ['/', '', '/foo/bar/abc', '/foo/bar/abc/def']) expect(t.listing(p), p).toBe('fs');
  });

  it('ListDir: the spec-named children of pass-through directories', () => {
    expect(t.listing('/foo')).toEqual(['bar']);
    expect(t.listing('/foo/bar')).toEqual(['abc']);
    expect(t.listing('/bar')).toEqual(['abc']);
    expect(t.listing('/bar/abc')).toEqual(['def']);
  });

  it('ListDir: -1 (nothing listed) for excluded, unselected and flat-child directories', () => {
    // Upstream returns -1 for all of these; we say "not selected" (null) or "selected, lists nothing" ([]).
    expect(t.listing('/foo/bar/abc/def/hij')).toBeNull();
    expect(t.listing('/bar/abc/def/ghj')).toBeNull();
    expect(t.listing('/bar/abc/def/foo/foo')).toBeNull();
    expect(t.listing('/bar/abc/def/foo')).toEqual([]);
  });
});

describe('spec semantics', () => {
  it('for the same path, the last line wins', () => {
    expect(specTree('/a/*\n/a\n').selected('/a/x')).toBe(false);
    expect(specTree('/a/*\n/a\n').listing('/a')).toEqual([]);
    expect(specTree('/a\n/a/*\n').selected('/a/x')).toBe(true);
    expect(specTree('!/a\n/a/*\n').selected('/a/x')).toBe(true);
    expect(specTree('/a/*\n!/a\n').selected('/a')).toBe(false);
  });

  it('an exclusion removes its whole subtree whatever the order of the lines', () => {
    for (const text of ['!/a\n/a/b/*\n', '/a/b/*\n!/a\n']) {
      const t = specTree(text);
      expect(t.selected('/a'), text).toBe(false);
      expect(t.selected('/a/b/c'), text).toBe(false);
      expect(t.diag.warnings.map((w) => w.kind)).toEqual(['spec-shadowed']);
      expect(t.diag.warnings[0]!.message).toMatch(/test\.spec:\d: '\/a\/b\/\*' has no effect: test\.spec:\d '!\/a' excludes an ancestor/);
    }
    const deep = specTree('/a/*\n!/a/b\n');
    expect(deep.selected('/a/c')).toBe(true);
    expect(deep.selected('/a/b')).toBe(false);
    expect(deep.selected('/a/b/c/d')).toBe(false);
  });

  it('has no hang on the specs of cvmfs#3497 and selects what they say', () => {
    const cases: Array<[string, string[], string[]]> = [
      ['!/x/y/z\n/x/y/w\n', ['/x', '/x/y', '/x/y/w'], ['/x/y/z', '/x/q']],
      ['!/a/README\n^/a/*\n', ['/a', '/a/other', '/a/sub'], ['/a/README', '/a/sub/deeper']],
      ['!/a/1.0/lib\n/a/*\n', ['/a/1.0', '/a/1.0/bin/x', '/a/2.0/lib'], ['/a/1.0/lib', '/a/1.0/lib/x']],
      ['!/lcg/releases/uuid/1.0\n/lcg/lastUpdate\n', ['/lcg', '/lcg/lastUpdate'], ['/lcg/releases', '/lcg/releases/uuid/1.0']],
      [
        '!/gentoo/2023/x86-64-v3/var/spool/nullmailer/trigger\n/gentoo/2023/x86-64-v3/etc/ld.so.cache\n/gentoo/2023/x86-64-v3/lib64\n',
        ['/gentoo/2023/x86-64-v3/etc/ld.so.cache', '/gentoo/2023/x86-64-v3/lib64'],
        ['/gentoo/2023/x86-64-v3/var', '/gentoo/2023/x86-64-v3/lib64/libc.so'],
      ],
    ];
    for (const [text, yes, no] of cases) {
      const t = specTree(text);
      for (const p of yes) expect(t.selected(p), `${text} selects ${p}`).toBe(true);
      for (const p of no) expect(t.selected(p), `${text} leaves out ${p}`).toBe(false);
    }
  });

  it('does not silently drop a tree after an unrelated exclusion (cvmfs#3500)', () => {
    const t = specTree('!/lcg/releases/uuid/1.0\n/lcg/releases/ROOT/6.10/*\n');
    expect(t.selected('/lcg/releases/ROOT/6.10/lib/libCore.so')).toBe(true);
    expect(t.listing('/lcg/releases')).toEqual(['ROOT']);
  });

  it('makes ancestors pass-through directories listing only spec-named children, even next to an exclusion', () => {
    const t = specTree('!/x/y/z\n/x/y/w\n/x/v/*\n');
    expect(t.listing('/')).toEqual(['x']);
    expect(t.listing('/x')).toEqual(['v', 'y']);
    expect(t.listing('/x/y')).toEqual(['w']);
    expect(t.reason('/x/y')).toBe('ancestor of test.spec:2');
  });

  it('flat lines select files, symlinks and empty subdirectories, unless a deeper line includes more', () => {
    const t = specTree('^/d/*\n/d/c/y\n');
    expect(t.listing('/d')).toBe('fs');
    expect(t.selected('/d/file')).toBe(true);
    expect(t.listing('/d/sub')).toEqual([]); // a directory child is created empty
    expect(t.selected('/d/sub/x')).toBe(false);
    expect(t.listing('/d/c')).toEqual(['y']);
  });

  it('an exclusion below a flat child does not hide that child', () => {
    const t = specTree('^/d/*\n!/d/c/x\n');
    expect(t.selected('/d/c')).toBe(true);
    expect(t.listing('/d/c')).toEqual([]);
    expect(t.selected('/d/c/x')).toBe(false);
  });

  it('an exact line naming a directory creates it empty', () => {
    const t = specTree('/a/b\n');
    expect(t.selected('/a/b')).toBe(true);
    expect(t.listing('/a/b')).toEqual([]);
    expect(t.selected('/a/b/c')).toBe(false);
    expect(t.listing('/a')).toEqual(['b']);
  });

  it('a recursive line keeps going below flat and exact lines under it', () => {
    const t = specTree('/a/*\n^/a/b/*\n/a/c\n');
    expect(t.selected('/a/b/x/y')).toBe(true);
    expect(t.selected('/a/c/x/y')).toBe(true);
    expect(t.reason('/a/c')).toBe('test.spec:3 exact /a/c');
    expect(t.reason('/a/c/x')).toBe('test.spec:1 tree /a/*');
  });

  it('gives each selected path the line that put it there', () => {
    const t = specTree('^/*\n/foo/bar/abc/*\n');
    expect(t.reason('/x')).toBe('test.spec:1 flat ^/*');
    expect(t.reason('/foo')).toBe('ancestor of test.spec:2');
    expect(t.reason('/foo/bar/abc/q')).toBe('test.spec:2 tree /foo/bar/abc/*');
  });

  it('handles a 200,000-line trace-sized spec with interleaved exclusions', () => {
    const lines: string[] = [];
    for (let i = 0; i < 100_000; i++) lines.push(`!/big/d${i % 97}/x${i}`, `/big/d${i % 89}/y${i}`);
    const t = specTree(lines.join('\n'));
    expect(t.selected('/big/d5/y5')).toBe(true);
    expect(t.selected('/big/d5/x5')).toBe(false);
  });
});

// Hostile inputs to selection (issue 17): setup scripts that would take hours to evaluate, patterns
// that would not compile. Each case ends quickly, in one error line or a warning.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { display, fromText } from '../../src/model/bytes.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import { InputError } from '../../src/model/errors.js';
import type { BaseView } from '../../src/sources/base/view.js';
import { baseLibraries } from '../../src/select/closure/base-libs.js';
import { throughLinks } from '../../src/select/closure/links.js';
import { GlobExclusions, compileGlob, expandGlob, globMatches, resolveImagePath } from '../../src/select/glob.js';
import { selectPayload } from '../../src/select/index.js';
import { confineImagePath } from '../../src/select/paths.js';
import { scriptHost } from '../../src/select/release/index.js';
import { Selection } from '../../src/select/selection.js';
import { PosixTree } from '../../src/sources/cvmfs/posix.js';
import type { CvmfsTree, TreeStat } from '../../src/sources/cvmfs/tree.js';
import type { SpecRule } from '../../src/select/spec/parse.js';
import { makeTree, tmpDir } from '../helpers/tree.js';
import { type ScriptHost, LIMITS, evaluateSetup, normalise, trimPattern } from '../../src/select/release/shell.js';
import { PatternError, compileWildcard, matchingPrefixes, matchingSuffixes, wildcardMatches } from '../../src/select/pattern.js';

/** An in-memory tree of scripts (image paths). */
function memoryHost(files: Record<string, string>): ScriptHost {
  return {
    read: (p) => files[normalise(p)] ?? null,
    kind: (p) => (files[normalise(p)] !== undefined ? 'file' : null),
    resolve: (p) => normalise(p),
  };
}

/** Milliseconds `f` takes. */
function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
}


/** A /cvmfs tree of `nodes` in a directory of its own, removed after the file's tests; its path. */
const treeDirs: string[] = [];
afterAll(() => {
  for (const d of treeDirs) fs.rmSync(d, { recursive: true, force: true });
});
function cvmfsTree(nodes: Parameters<typeof makeTree>[1]): string {
  const dir = tmpDir();
  treeDirs.push(dir);
  return makeTree(path.join(dir, 'cvmfs'), nodes);
}

describe('case 11: setup scripts are evaluated in bounded time', () => {
  it('${V%*a*a*a*a*a*a*a*a*a*a*b} on a 60-character value ends at once, as in bash', () => {
    const host = memoryHost({
      '/cvmfs/r/setup.sh': ['V=' + 'a'.repeat(60), 'X=${V%*a*a*a*a*a*a*a*a*a*a*b}', 'Y=${V##*a*a*a*a*a*a*a*a*a*a*b}', 'Z=${V%%a*a}', 'W=${V#a?a}'].join('\n'),
    });
    const [r, ms] = timed(() => evaluateSetup('/cvmfs/r/setup.sh', host));
    expect(ms).toBeLessThan(2000);
    expect(r.env.get('X')).toBe('a'.repeat(60)); // nothing ends in b: nothing removed (bash agrees)
    expect(r.env.get('Y')).toBe('a'.repeat(60));
    expect(r.env.get('Z')).toBe('');
    expect(r.env.get('W')).toBe('a'.repeat(57));
  });

  it('24 scripts each sourcing the next twice: evaluated once per environment, in well under a second', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 24; i++) files[`/cvmfs/r/s${i}.sh`] = i < 23 ? `. /cvmfs/r/s${i + 1}.sh\n. /cvmfs/r/s${i + 1}.sh\nA${i}=x\n` : 'LAST=1\n';
    const [r, ms] = timed(() => evaluateSetup('/cvmfs/r/s0.sh', memoryHost(files)));
    expect(ms).toBeLessThan(2000);
    expect(r.env.get('LAST')).toBe('1');
    expect(r.env.get('A0')).toBe('x');
  });
});

describe('case 18: a bad glob is an error naming the option, a warning in a base image', () => {
  it("--exclude '[z-a]' and its siblings are InputErrors naming where the glob came from", () => {
    for (const g of ['[z-a]', 'r.ch/[9-0]*', '*.[[:nope:]]']) {
      expect(() => compileGlob(g, `--exclude ${g}`)).toThrow(InputError);
      expect(() => compileGlob(g, `--exclude ${g}`)).toThrow(`--exclude ${g}: '${g}'`);
      expect(() => new GlobExclusions().exclude(g, `pack p (p.pack:3)`)).toThrow(/^pack p \(p\.pack:3\): /);
    }
    // Valid classes still mean what they meant.
    const m = (g: string, p: string) => globMatches(compileGlob(g, 't'), p);
    expect([m('r/[a-c]x', 'r/bx'), m('r/[!a-c]x', 'r/bx'), m('r/[!a-c]x', 'r/dx'), m('r/[]]', 'r/]'), m('r/[[:digit:]]', 'r/7')]).toEqual([true, false, true, true, true]);
    expect(m('r/[!a]', 'r//')).toBe(false);
  });

  it("a base's ld.so.conf with `include …/[.conf` or `[z-a]` is read as ldconfig reads it, with a problem noted", () => {
    const files: Record<string, string> = {
      '/etc/ld.so.conf': 'include /etc/ld.so.conf.d/[.conf\ninclude /etc/ld.so.conf.d/[z-a]*.conf\ninclude /etc/ld.so.conf.d/*.conf\n',
      '/etc/ld.so.conf.d/[.conf': '/opt/bracket/lib\n',
      '/etc/ld.so.conf.d/x.conf': '/opt/x/lib\n',
    };
    const view = {
      readText: (p: string) => files[p] ?? null,
      list: (d: string) => Object.keys(files).filter((f) => path.posix.dirname(f) === d).map((f) => path.posix.basename(f)),
      exists: (p: string) => p in files,
    } as unknown as BaseView;
    const libs = baseLibraries(view);
    expect(libs.dirs.slice(0, 2)).toEqual(['/opt/bracket/lib', '/opt/x/lib']);
    expect(libs.problems).toEqual(["/etc/ld.so.conf:2: include /etc/ld.so.conf.d/[z-a]*.conf: '[z-a]*.conf': range z-a is out of order; skipped"]);
  });

  it('recipe conditions and setup-script patterns take `[`, `*` and `?` without RegExp', () => {
    expect(wildcardMatches(compileWildcard('2[0-9].*'), '21.2')).toBe(true);
    expect(trimPattern('x[y', '%', '[*')).toBe('x'); // unclosed [ is a literal, as in bash
    expect(() => trimPattern('abc', '%', '[z-a]')).toThrow(PatternError);
    const host = memoryHost({ '/cvmfs/r/s.sh': 'V=abc\nX=${V%[z-a]}\n' });
    const r = evaluateSetup('/cvmfs/r/s.sh', host);
    expect(r.env.get('X')).toBe('abc');
    expect(r.unknown.join('\n')).toMatch(/s\.sh:2: .*range z-a is out of order/);
  });
});

describe('case 15 siblings: every path from input is resolved and confined to the repositories', () => {
  const setup = (nodes: Parameters<typeof makeTree>[1]) => path.dirname(cvmfsTree(nodes));
  const rule = (kind: SpecRule['kind'], p: string): SpecRule => ({ kind, path: p, origin: 't', text: p, reason: 't' });

  it('confineImagePath: lexical, and null for anything not inside a repository', () => {
    expect(confineImagePath('/cvmfs/r.ch/a/../b/./c//')).toBe('/cvmfs/r.ch/b/c');
    expect([confineImagePath('/cvmfs/r.ch/..'), confineImagePath('/cvmfs/r.ch/../../etc'), confineImagePath('/cvmfs'), confineImagePath('/etc/passwd')]).toEqual([null, null, null, null]);
    expect(confineImagePath('/cvmfs/r.ch/a/../../s.ch/x')).toBe('/cvmfs/s.ch/x');
  });

  it('throughLinks resolves a last . or .. after the links before it, and gives nothing for a path that climbs out', () => {
    const dir = setup({ 'r.ch/b/c/f': 'x', 'r.ch/a/l': { link: '../b/c' } });
    const source = new PosixTree(path.join(dir, 'cvmfs'));
    try {
      const paths = (kind: SpecRule['kind'], p: string) => throughLinks(rule(kind, p), source).map((r) => r.path);
      expect(paths('exact', '/cvmfs/r.ch/..')).toEqual([]);
      expect(paths('exact', '/cvmfs/r.ch/b/c/../../../..')).toEqual([]);
      expect(paths('exact', '/cvmfs/r.ch/b/.')).toEqual(['/cvmfs/r.ch/b']);
      expect(paths('exact', '/cvmfs/r.ch/a/l/..')).toEqual(['/cvmfs/r.ch/a/l', '/cvmfs/r.ch/b']); // the kernel's .., not the lexical one
      expect(paths('recursive', '/cvmfs/r.ch/a/../../..')).toEqual([]);
    } finally {
      source.release();
    }
  });

  it("setup scripts named through .. cannot be read from outside --cvmfs-root", () => {
    const dir = setup({ 'r.ch/setup.sh': 'A=1\n' });
    fs.writeFileSync(path.join(dir, 'outside.sh'), 'SECRET=leaked\n');
    const source = new PosixTree(path.join(dir, 'cvmfs'));
    try {
      const host = scriptHost(source);
      expect(host.read('/cvmfs/r.ch/../../outside.sh')).toBeNull();
      expect(host.kind('/cvmfs/r.ch/../../outside.sh')).toBeNull();
      expect(host.read('/cvmfs/r.ch/./setup.sh')).toBe('A=1\n');
    } finally {
      source.release();
    }
  });

  it('symlink targets that climb to /cvmfs or above select nothing and make no `..` entry', () => {
    const dir = setup({ 'r.ch/a/up2': { link: '../..' }, 'r.ch/a/up9': { link: '../../../../../../../../..' }, 'r.ch/a/abs': { link: '/cvmfs/r.ch/..' }, 'r.ch/a/f': 'x' });
    const diag = new Diagnostics();
    fs.writeFileSync(path.join(dir, 'r.ch.spec'), '/a/*\n');
    const payload = selectPayload({ cvmfsRoot: path.join(dir, 'cvmfs'), specs: [path.join(dir, 'r.ch.spec')], repo: null, closure: true }, diag);
    const paths = payload.entries.map((e) => e.path);
    expect(paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/a', '/cvmfs/r.ch/a/abs', '/cvmfs/r.ch/a/f', '/cvmfs/r.ch/a/up2', '/cvmfs/r.ch/a/up9']);
  });

  it('an entry is never made for a path that is not canonical', () => {
    const dir = setup({ 'r.ch/a': 'x' });
    const source = new PosixTree(path.join(dir, 'cvmfs'));
    try {
      const sel = new Selection(source, new Diagnostics());
      const st = fs.lstatSync(path.join(dir, 'cvmfs/r.ch'));
      expect(() => sel.entryAt('/cvmfs/r.ch/..', st, 'test')).toThrow(InputError);
      expect(() => sel.entryAt('/cvmfs/r.ch/./a', st, 'test')).toThrow(/not a path inside a repository/);
    } finally {
      source.release();
    }
  });
});

describe('case 11 siblings: the evaluation is bounded however the chain is written', () => {
  it('X=$X$X, 30 times: stopped at 1 MiB with the script and line (it ran out of memory)', () => {
    const host = memoryHost({ '/cvmfs/r/grow.sh': ['X=abcd', ...Array.from({ length: 30 }, () => 'X=$X$X')].join('\n') });
    expect(() => evaluateSetup('/cvmfs/r/grow.sh', host)).toThrow(InputError);
    expect(() => evaluateSetup('/cvmfs/r/grow.sh', host)).toThrow(/^\/cvmfs\/r\/grow\.sh:20: setup script evaluation stopped: X would be longer than 1048576 characters/);
  });

  it('a doubling chain that changes the environment each time stops after LIMITS.sources sourcings', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 24; i++) files[`/cvmfs/r/s${i}.sh`] = i < 23 ? `N=$N.\n. /cvmfs/r/s${i + 1}.sh\n. /cvmfs/r/s${i + 1}.sh\n` : 'N=$N.\n';
    const [err, ms] = timed(() => {
      try {
        evaluateSetup('/cvmfs/r/s0.sh', memoryHost(files));
        return null;
      } catch (e) {
        return e as Error;
      }
    });
    expect(err).toBeInstanceOf(InputError);
    expect(err!.message).toMatch(new RegExp(`^/cvmfs/r/s\\d+\\.sh:[23]: setup script evaluation stopped: more than ${LIMITS.sources} scripts sourced`));
    expect(ms).toBeLessThan(5000);
  });

  it('prefix and suffix searches agree with a plain per-cut match', () => {
    const w = compileWildcard('a*b?[cd]');
    const s = 'xab1cab2dab3e';
    const pre = matchingPrefixes(w, s);
    const suf = matchingSuffixes(w, s);
    for (let k = 0; k <= s.length; k++) {
      expect(pre[k]).toBe(wildcardMatches(w, s.slice(0, k)));
      expect(suf[k]).toBe(wildcardMatches(w, s.slice(k)));
    }
  });
});

describe('case 9 siblings: glob expansion over links', () => {
  const setup = cvmfsTree;

  it('follows links that stay inside (as fast-glob did), not loops, not links out of the source root', () => {
    const root = setup({
      'r.ch/real/x/f.so': '',
      'r.ch/view/x': { link: '../real/x' },
      'r.ch/view/loop': { link: '..' },
      'r.ch/view/out': { link: '/usr' },
      's.ch/lib/g.so': '',
      'r.ch/other': { link: '../s.ch/lib' },
    });
    const tree = new PosixTree(fromText(root));
    expect(expandGlob(tree, 'r.ch/**/*.so').map(display)).toEqual(['/cvmfs/r.ch/other/g.so', '/cvmfs/r.ch/real/x/f.so', '/cvmfs/r.ch/view/x/f.so']);
    expect(expandGlob(tree, 'r.ch/view/out/*')).toEqual([]);
    expect(expandGlob(tree, '**').map(display)).not.toContain('/cvmfs/'); // the root is no match
    expect(expandGlob(tree, 'r.ch/*/x/**').map(display)).toEqual(['/cvmfs/r.ch/real/x', '/cvmfs/r.ch/real/x/f.so', '/cvmfs/r.ch/view/x', '/cvmfs/r.ch/view/x/f.so']); // fast-glob's meaning
    expect(expandGlob(tree, 'r.ch/view/loop/view/loop/view/x/*').map(display)).toEqual(['/cvmfs/r.ch/view/loop/view/loop/view/x/f.so']); // each step consumes a component
  });

  it('2^20 routes through links to one directory (no loop) stop with an error naming the glob', () => {
    const nodes: Parameters<typeof makeTree>[1] = { 'r.ch/n20/f': '' };
    for (let i = 0; i < 20; i++) {
      nodes[`r.ch/n${i}/a`] = { link: `../n${i + 1}` };
      nodes[`r.ch/n${i}/b`] = { link: `../n${i + 1}` };
    }
    const tree = new PosixTree(fromText(setup(nodes)));
    const [err, ms] = timed(() => {
      try {
        expandGlob(tree, 'r.ch/n0/**', '--include r.ch/n0/**');
        return null;
      } catch (e) {
        return e as Error;
      }
    });
    expect(err).toBeInstanceOf(InputError);
    expect(err!.message).toMatch(/^--include r\.ch\/n0\/\*\*: 'r\.ch\/n0\/\*\*': reaches directories again through symlinks more than 50000 times/);
    expect(ms).toBeLessThan(30_000);
  });
});

describe('case 11 siblings: nesting', () => {
  it('${B:-${B:-…}} and $(dirname $(dirname …)) 5,000 deep: one error naming the line (the JS stack overflowed: exit 3)', () => {
    for (const word of ['${B:-'.repeat(5000) + 'x' + '}'.repeat(5000), '$(dirname '.repeat(5000) + '/x' + ')'.repeat(5000)]) {
      const host = memoryHost({ '/cvmfs/r/s.sh': `A=1\nX=${word}\n` });
      expect(() => evaluateSetup('/cvmfs/r/s.sh', host)).toThrow(/^\/cvmfs\/r\/s\.sh:2: setup script evaluation stopped: .* nested more than 64 deep/);
    }
    // Real scripts nest two or three deep.
    const ok = memoryHost({ '/cvmfs/r/s.sh': 'D=/cvmfs/r/x/y\nP=$(cd $(dirname ${D:-${E:-/}}); pwd)\n' });
    expect(evaluateSetup('/cvmfs/r/s.sh', ok).env.get('P')).toBe('/cvmfs/r/x');
  });
});

describe('globs resolve links through the tree, as the image would', () => {
  /** The canonical image path `p` resolves to in `tree`, or null. */
  const resolved = (tree: CvmfsTree, p: string) => resolveImagePath(tree, p)?.path ?? null;

  it('relative and absolute links, component by component, the last one too', () => {
    const tree = new PosixTree(
      fromText(
        cvmfsTree({
          'r.ch/c/d/x': '',
          'r.ch/a/b': { link: '../c/d' },
          'r.ch/a/two': { link: 'b' },
          'r.ch/abs': { link: '/cvmfs/s.ch/lib' },
          'r.ch/back': { link: '../../../cvmfs/s.ch/lib' },
          'r.ch/dot': { link: './c/../c/./d/' },
          's.ch/lib/g.so': '',
        }),
      ),
    );
    expect(resolved(tree, '/cvmfs/r.ch/a/b')).toBe('/cvmfs/r.ch/c/d');
    expect(resolved(tree, '/cvmfs/r.ch/a/two/x')).toBe('/cvmfs/r.ch/c/d/x');
    expect(resolveImagePath(tree, '/cvmfs/r.ch/a/two/x')!.st.isDirectory()).toBe(false);
    expect(resolved(tree, '/cvmfs/r.ch/back')).toBe('/cvmfs/s.ch/lib'); // above /cvmfs and back in, as the kernel goes
    // A copy elsewhere on the host is /cvmfs as the image holds it: an absolute /cvmfs target leads
    // into it, as on a mount and over HTTP (the image is the same whichever the source).
    expect(resolved(tree, '/cvmfs/r.ch/abs/g.so')).toBe('/cvmfs/s.ch/lib/g.so');
    expect(expandGlob(tree, 'r.ch/abs/*').map(display)).toEqual(['/cvmfs/r.ch/abs/g.so']);
    expect(resolved(tree, '/cvmfs/r.ch/dot')).toBe('/cvmfs/r.ch/c/d');
    expect(resolved(tree, '/cvmfs/r.ch')).toBe('/cvmfs/r.ch');
    expect(resolved(tree, '/cvmfs')).toBe('/cvmfs');
  });

  it('loops, 40 links at most, links out of /cvmfs, missing targets: null', () => {
    const nodes: Parameters<typeof makeTree>[1] = {
      'r.ch/d/f': '',
      'r.ch/self': { link: 'self' },
      'r.ch/p': { link: 'q' },
      'r.ch/q': { link: 'p' },
      'r.ch/usr': { link: '/usr' },
      'r.ch/etc': { link: '../../etc' },
      'r.ch/root': { link: '/' },
      'r.ch/norepo': { link: '../nope.ch/x' },
      'r.ch/dangling': { link: 'd/none' },
      'r.ch/notdir': { link: 'd/f/x' },
      'r.ch/notdir2': { link: 'd/f/..' },
    };
    // k0 -> k1 -> … -> k40 -> d: 41 links from k0, 40 from k1.
    for (let i = 0; i <= 40; i++) nodes[`r.ch/k${i}`] = { link: i === 40 ? 'd' : `k${i + 1}` };
    const tree = new PosixTree(fromText(cvmfsTree(nodes)));
    expect(resolved(tree, '/cvmfs/r.ch/k1')).toBe('/cvmfs/r.ch/d');
    for (const p of ['k0', 'self', 'p', 'usr', 'etc', 'root', 'norepo', 'dangling', 'notdir', 'notdir2']) expect([p, resolved(tree, `/cvmfs/r.ch/${p}`)]).toEqual([p, null]);
    expect(resolved(tree, '/cvmfs/nope.ch')).toBeNull();
    expect(resolved(tree, '/etc')).toBeNull();
    // None of them is entered by a glob; each is matched as an entry.
    const all = expandGlob(tree, 'r.ch/**').map(display);
    const entered = ['d', ...Array.from({ length: 40 }, (_, i) => `k${i + 1}`)].map((n) => `/cvmfs/r.ch/${n}/f`).sort();
    expect(all.filter((p) => p.split('/').length > 4)).toEqual(entered);
    expect(all.length).toBe(Object.keys(nodes).length + entered.length); // every name itself (d/f among them), and what the links lead to
  });

  it('a repository root may be a link to where it really is; links inside it resolve in the image', () => {
    const dir = tmpDir();
    treeDirs.push(dir);
    makeTree(dir, { 'real/q/lib/h.so': '', 'real/q/view': { link: '../q.ch/lib' }, 'real/q/up': { link: '..' }, 'cvmfs/r.ch/x': '' });
    fs.symlinkSync(path.join(dir, 'real/q'), path.join(dir, 'cvmfs/q.ch'));
    const tree = new PosixTree(fromText(path.join(dir, 'cvmfs')));
    expect(resolved(tree, '/cvmfs/q.ch')).toBe('/cvmfs/q.ch');
    expect(resolved(tree, '/cvmfs/q.ch/view/h.so')).toBe('/cvmfs/q.ch/lib/h.so');
    expect(resolved(tree, '/cvmfs/q.ch/up')).toBe('/cvmfs'); // `..` of a repository is /cvmfs in the image, not the host's real/
    expect(resolved(tree, '/cvmfs/r.ch/../q.ch/lib')).toBe('/cvmfs/q.ch/lib');
    // up is /cvmfs, no directory above in q.ch/**: entered, and q.ch below it is where the walk began.
    expect(expandGlob(tree, 'q.ch/**/*.so').map(display)).toEqual(['/cvmfs/q.ch/lib/h.so', '/cvmfs/q.ch/up/q.ch/lib/h.so', '/cvmfs/q.ch/up/q.ch/view/h.so', '/cvmfs/q.ch/view/h.so']);
    expect(expandGlob(tree, '*.so').map(display)).toEqual(['/cvmfs/q.ch/lib/h.so', '/cvmfs/q.ch/view/h.so']);
  });

  it('needs nothing but the tree: an in-memory tree gives the same matches as the same tree on disk', () => {
    const nodes: Parameters<typeof makeTree>[1] = {
      'r.ch/real/x/f.so': '',
      'r.ch/view/x': { link: '../real/x' },
      'r.ch/view/loop': { link: '..' },
      'r.ch/view/out': { link: '/usr' },
      'r.ch/abs': { link: '/cvmfs/s.ch/lib' },
      's.ch/lib/g.so': '',
    };
    const posix = new PosixTree(fromText(cvmfsTree(nodes)));
    const mounted = memoryTree(nodes);
    for (const g of ['r.ch/**/*.so', '**', '*.so', 'r.ch/*/x/**', 'r.ch/view/loop/view/x/*', '{r,s}.ch/*/*', 'r.ch/abs/*']) {
      expect([g, expandGlob(mounted, g)]).toEqual([g, expandGlob(posix, g)]);
    }
    // /cvmfs/... targets lead into the tree, whatever holds it.
    expect(resolveImagePath(mounted, '/cvmfs/r.ch/abs/g.so')?.path).toBe('/cvmfs/s.ch/lib/g.so');
    expect(expandGlob(mounted, 'r.ch/**/*.so')).toEqual(['/cvmfs/r.ch/abs/g.so', '/cvmfs/r.ch/real/x/f.so', '/cvmfs/r.ch/view/x/f.so']);
    expect(expandGlob(mounted, 'r.ch/abs/*')).toEqual(['/cvmfs/r.ch/abs/g.so']);
  });
});

/** A CvmfsTree of `nodes` held in memory (files, directories, links): what a glob asks of a tree, no host file. */
function memoryTree(nodes: Parameters<typeof makeTree>[1]): CvmfsTree {
  const kinds = new Map<string, { dir: boolean; link: string | null }>([['/cvmfs', { dir: true, link: null }]]);
  for (const [rel, node] of Object.entries(nodes)) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) kinds.set('/cvmfs/' + parts.slice(0, i).join('/'), { dir: true, link: null });
    kinds.set('/cvmfs/' + rel, { dir: false, link: typeof node === 'object' && 'link' in node ? node.link : null });
  }
  const stat = (p: string): TreeStat | null => {
    const k = kinds.get(p);
    if (!k) return null;
    return { mode: 0, uid: 0, gid: 0, size: 0, mtimeMs: 0, nlink: 1, dev: 0, ino: 0, rdev: 0, isDirectory: () => k.dir, isSymbolicLink: () => k.link !== null };
  };
  const unused = () => {
    throw new Error('not asked by a glob');
  };
  return {
    isRepo: (fqrn) => kinds.get('/cvmfs/' + fqrn)?.dir ?? false,
    stat,
    list: (p) => [...kinds.keys()].filter((q) => q.startsWith(p + '/') && !q.slice(p.length + 1).includes('/')).map((q) => q.slice(p.length + 1)).sort(),
    readLink: (p) => kinds.get(p)?.link ?? unused(),
    entry: unused,
    readable: unused,
    readFile: unused,
    openContent: unused,
    contentHash: unused,
    where: (p) => p,
    release: () => undefined,
  };
}

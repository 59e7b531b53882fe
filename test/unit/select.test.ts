import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { display } from '../../src/model/bytes.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import { selectPayload } from '../../src/select/index.js';
import { isRoot } from '../helpers/env.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup(nodes: Parameters<typeof makeTree>[1]) {
  const dir = tmpDir();
  dirs.push(dir);
  makeTree(path.join(dir, 'cvmfs'), nodes);
  return dir;
}

function select(dir: string, lines: string[], opts: { closure?: boolean; repo?: string; specName?: string } = {}) {
  const spec = writeSpec(dir, opts.specName ?? 'r.ch.spec', lines);
  const diag = new Diagnostics();
  const payload = selectPayload({ cvmfsRoot: path.join(dir, 'cvmfs'), specs: [spec], repo: opts.repo ?? null, closure: opts.closure ?? true }, diag);
  const byPath = new Map(payload.entries.map((e) => [display(e.path), e]));
  return { payload, diag, paths: payload.entries.map((e) => display(e.path)), byPath, kinds: diag.warnings.map((w) => w.kind) };
}

describe('selection over a real tree', () => {
  it('walks only where the spec says, in path order, with the repository root', () => {
    const dir = setup({ 'r.ch/a/x': '1', 'r.ch/a/y/z': '2', 'r.ch/a.b': '3', 'r.ch/b/q': '4', 'r.ch/c/d/e': '5' });
    const { paths } = select(dir, ['/a/*', '/c/d/e']);
    expect(paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/a', '/cvmfs/r.ch/a/x', '/cvmfs/r.ch/a/y', '/cvmfs/r.ch/a/y/z', '/cvmfs/r.ch/c', '/cvmfs/r.ch/c/d', '/cvmfs/r.ch/c/d/e']);
  });

  it('orders a directory before its subtree, and names by raw bytes', () => {
    const dir = setup({ 'r.ch/lib/x': '1', 'r.ch/lib.txt': '2', 'r.ch/Z': '3', 'r.ch/a': '4' });
    expect(select(dir, ['/*']).paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/Z', '/cvmfs/r.ch/a', '/cvmfs/r.ch/lib', '/cvmfs/r.ch/lib/x', '/cvmfs/r.ch/lib.txt']);
  });

  it('keeps metadata: modes, sizes, mtimes, owners', () => {
    const dir = setup({ 'r.ch/bin/tool': { file: '#!/bin/sh\n', mode: 0o755 }, 'r.ch/secret': { file: 'x', mode: 0o000 } });
    fs.utimesSync(path.join(dir, 'cvmfs/r.ch/bin/tool'), 1557878400, 1557878400);
    const { byPath } = select(dir, ['/*']);
    const tool = byPath.get('/cvmfs/r.ch/bin/tool')!;
    expect([tool.type, tool.mode, tool.size, tool.mtime]).toEqual(['file', 0o755, 10, 1557878400]);
    expect(byPath.get('/cvmfs/r.ch/secret')!.mode).toBe(0);
    expect(tool.uid).toBe(process.getuid!());
  });

  it('selects symlinks as symlinks and never walks through them', () => {
    const dir = setup({ 'r.ch/real/f': 'x', 'r.ch/a/link': { link: '../real' } });
    const { paths, byPath, kinds } = select(dir, ['/a/link/*'], { closure: false });
    expect(paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/a', '/cvmfs/r.ch/a/link']);
    expect(byPath.get('/cvmfs/r.ch/a/link')!.target).toBe('../real');
    expect(kinds).toContain('symlink-not-followed');
  });

  it('says when a spec line names a missing path or runs through a symlink', () => {
    const dir = setup({ 'r.ch/real/f': 'x', 'r.ch/link': { link: 'real' } });
    const { diag } = select(dir, ['/nope/x', '/link/f'], { closure: false });
    const msgs = diag.warnings.map((w) => `${w.kind} ${w.message}`);
    expect(msgs.some((m) => /^spec-not-found .*r\.ch\.spec:1: '\/nope\/x': .*\/cvmfs\/r\.ch\/nope does not exist$/.test(m))).toBe(true);
    expect(msgs.some((m) => /^spec-through-symlink .*r\.ch\.spec:2: .*\/cvmfs\/r\.ch\/link is a symlink/.test(m))).toBe(true);
  });

  it('skips FIFOs with a warning', () => {
    const dir = setup({ 'r.ch/log/lastUpdate': 'x', 'r.ch/log/pipe': { fifo: true } });
    const { paths, diag } = select(dir, ['/log/*']);
    expect(paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/log', '/cvmfs/r.ch/log/lastUpdate']);
    expect(diag.warnings.find((w) => w.kind === 'special-skipped')!.message).toMatch(/log\/pipe: FIFO skipped/);
  });

  it.runIf(isRoot)('skips sockets and devices with a warning', () => {
    const dir = setup({ 'r.ch/dev/keep': 'x' });
    execFileSync('mknod', [path.join(dir, 'cvmfs/r.ch/dev/null0'), 'c', '1', '3']);
    execFileSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path.join(dir, 'cvmfs/r.ch/dev/sock'))})`]);
    const { paths, diag } = select(dir, ['/dev/*']);
    expect(paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/dev', '/cvmfs/r.ch/dev/keep']);
    expect(diag.warnings.map((w) => w.message.replace(/^.*\/dev\//, ''))).toEqual(['null0: char skipped', 'sock: socket skipped']);
  });

  it('takes the union of several spec files, each for its own repository', () => {
    const dir = setup({ 'a.ch/x/1': '1', 'a.ch/y/2': '2', 'b.ch/z/3': '3' });
    const specA = writeSpec(dir, 'a.ch.spec', ['/x/*']);
    const specB = writeSpec(dir, 'cvmfs-b.ch.spec.txt', ['/z/3', '/cvmfs/a.ch/y/*']);
    const payload = selectPayload({ cvmfsRoot: path.join(dir, 'cvmfs'), specs: [specA, specB], repo: null, closure: true }, new Diagnostics());
    expect(payload.entries.map((e) => e.path)).toEqual(['/cvmfs/a.ch', '/cvmfs/a.ch/x', '/cvmfs/a.ch/x/1', '/cvmfs/a.ch/y', '/cvmfs/a.ch/y/2', '/cvmfs/b.ch', '/cvmfs/b.ch/z', '/cvmfs/b.ch/z/3']);
    expect(Object.keys(payload.summary.repositories)).toEqual(['a.ch', 'b.ch']);
  });

  it('turns the later names of an inode into hard links to the first in path order', () => {
    const dir = setup({ 'r.ch/d/b': 'same', 'r.ch/d/a': { hardlinkOf: 'r.ch/d/b' }, 'r.ch/d/c': { hardlinkOf: 'r.ch/d/b' } });
    const { byPath, payload } = select(dir, ['/d/*']);
    expect(byPath.get('/cvmfs/r.ch/d/a')!.type).toBe('file');
    expect(byPath.get('/cvmfs/r.ch/d/b')).toMatchObject({ type: 'hardlink', target: '/cvmfs/r.ch/d/a', size: 0 });
    expect(byPath.get('/cvmfs/r.ch/d/c')).toMatchObject({ type: 'hardlink', target: '/cvmfs/r.ch/d/a' });
    expect(payload.summary.bytes).toBe(4);
    // Only one name selected: a plain file.
    expect(select(dir, ['/d/c']).byPath.get('/cvmfs/r.ch/d/c')!.type).toBe('file');
  });

  it('keeps names that are not UTF-8', () => {
    const dir = setup({ 'r.ch/d/ok': 'x' });
    const bad = Buffer.concat([Buffer.from(path.join(dir, 'cvmfs/r.ch/d/')), Buffer.from([0x66, 0xff, 0x0a, 0x67])]);
    fs.writeFileSync(bad, 'bad name');
    const { payload } = select(dir, ['/d/*']);
    const names = payload.entries.map((e) => Buffer.from(e.path, 'latin1'));
    expect(names.some((n) => n.equals(Buffer.concat([Buffer.from('/cvmfs/r.ch/d/'), Buffer.from([0x66, 0xff, 0x0a, 0x67])])))).toBe(true);
  });
});

describe('symlink closure', () => {
  it('adds relative targets with their ancestors, transitively', () => {
    const dir = setup({
      'r.ch/lib/libfoo.so': { link: 'libfoo.so.1' },
      'r.ch/lib/libfoo.so.1': { link: 'libfoo.so.1.2' },
      'r.ch/lib/libfoo.so.1.2': 'elf',
      'r.ch/lib/other': 'no',
    });
    const { paths, payload } = select(dir, ['/lib/libfoo.so']);
    expect(paths).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/lib', '/cvmfs/r.ch/lib/libfoo.so', '/cvmfs/r.ch/lib/libfoo.so.1', '/cvmfs/r.ch/lib/libfoo.so.1.2']);
    expect(payload.entries[4]!.reason).toBe('symlink closure: target of /cvmfs/r.ch/lib/libfoo.so via /cvmfs/r.ch/lib/libfoo.so.1');
  });

  it('follows absolute links into another repository and links met along the way', () => {
    const dir = setup({
      'a.ch/sw/gcc/6.2.0': { link: '/cvmfs/s.ch/lcg/gcc/6.2.0-b9934' },
      's.ch/lcg/gcc/6.2.0-b9934/x86_64/lib64': { link: '../../../../../a.ch/sw/gcc-runtime/lib64' },
      's.ch/lcg/gcc/6.2.0-b9934/x86_64/setup.sh': 'echo gcc',
      'a.ch/sw/gcc-runtime/lib64/libstdc++.so.6': 'so',
      'a.ch/sw/unrelated': 'no',
    });
    // Naming the link pulls in the chain, across repositories and back.
    const { paths } = select(dir, ['/sw/gcc/6.2.0'], { specName: 'a.ch.spec' });
    expect(paths).toEqual(['/cvmfs/a.ch', '/cvmfs/a.ch/sw', '/cvmfs/a.ch/sw/gcc', '/cvmfs/a.ch/sw/gcc/6.2.0', '/cvmfs/s.ch', '/cvmfs/s.ch/lcg', '/cvmfs/s.ch/lcg/gcc', '/cvmfs/s.ch/lcg/gcc/6.2.0-b9934']);
  });

  it('takes the whole target tree of a link selected by a recursive line', () => {
    const dir = setup({
      'r.ch/LCG_88/ROOT/6.08/x86_64': { link: '../../../ROOT/6.08-abc/x86_64' },
      'r.ch/ROOT/6.08-abc/x86_64/lib/libCore.so': 'so',
      'r.ch/ROOT/6.08-abc/x86_64/lib64': { link: '../../../gcc/lib64' },
      'r.ch/gcc/lib64/libgcc_s.so.1': 'so',
      'r.ch/ROOT/6.08-abc/other/f': 'no',
    });
    const { paths } = select(dir, ['/LCG_88/*']);
    expect(paths).toContain('/cvmfs/r.ch/ROOT/6.08-abc/x86_64/lib/libCore.so');
    expect(paths).toContain('/cvmfs/r.ch/gcc/lib64/libgcc_s.so.1');
    expect(paths).not.toContain('/cvmfs/r.ch/ROOT/6.08-abc/other');
  });

  it('keeps dangling links, links outside /cvmfs and link loops as links, and reports them', () => {
    const dir = setup({
      'r.ch/d/dangling': { link: 'missing.so.1' },
      'r.ch/d/system': { link: '/usr/bin/python3' },
      'r.ch/d/upper': { link: '../../../../etc/passwd' },
      'r.ch/d/norepo': { link: '/cvmfs/absent.ch/x' },
      'r.ch/d/loop1': { link: 'loop2' },
      'r.ch/d/loop2': { link: 'loop1' },
      'r.ch/d/notdir': { link: 'file/x' },
      'r.ch/d/file': 'f',
    });
    const { paths, diag, payload } = select(dir, ['/d/*']);
    for (const n of ['dangling', 'system', 'upper', 'norepo', 'loop1', 'loop2', 'notdir']) expect(paths).toContain(`/cvmfs/r.ch/d/${n}`);
    expect(paths.filter((p) => !p.startsWith('/cvmfs/r.ch'))).toEqual([]);
    const msgs = diag.warnings.map((w) => w.message);
    expect(msgs).toContain('/cvmfs/r.ch/d/dangling -> missing.so.1: /cvmfs/r.ch/d/missing.so.1 does not exist; kept as a link');
    expect(msgs).toContain('/cvmfs/r.ch/d/system -> /usr/bin/python3: points outside /cvmfs; kept as a link');
    expect(msgs).toContain('/cvmfs/r.ch/d/upper -> ../../../../etc/passwd: points outside /cvmfs; kept as a link');
    expect(msgs).toContain('/cvmfs/r.ch/d/norepo -> /cvmfs/absent.ch/x: repository absent.ch is not in the source tree; kept as a link');
    expect(msgs.filter((m) => m.includes('too many levels of symbolic links'))).toHaveLength(2);
    expect(msgs).toContain('/cvmfs/r.ch/d/notdir -> file/x: /cvmfs/r.ch/d/file is not a directory; kept as a link');
    expect(payload.closure).toMatchObject({ dangling: 4, outside: 3 });
  });

  it('does not pull in a target that a spec line excludes', () => {
    const dir = setup({ 'r.ch/a/link': { link: '../b/f' }, 'r.ch/b/f': 'x' });
    const { paths, diag } = select(dir, ['/a/*', '!/b']);
    expect(paths).not.toContain('/cvmfs/r.ch/b/f');
    expect(diag.warnings.find((w) => w.kind === 'symlink-excluded')!.message).toMatch(/excluded by .*r\.ch\.spec:2 '!\/b'/);
  });
});

describe('traces through symlinks', () => {
  it('selects the links a traced path runs through, and the target, across repositories', () => {
    const dir = setup({
      'a.ch/sw/gcc/6.2.0': { link: '/cvmfs/s.ch/gcc/6.2.0-b9934' },
      's.ch/gcc/6.2.0-b9934/x86_64/setup.sh': 'gcc',
      's.ch/gcc/6.2.0-b9934/x86_64/lib64': { link: '../../../../a.ch/sw/runtime/lib64' },
      'a.ch/sw/runtime/lib64/libstdc++.so.6': 'so',
      'a.ch/sw/runtime/lib64/libgcc_s.so.1': 'so',
      'a.ch/sw/other': 'no',
    });
    const trace = path.join(dir, 'run.paths');
    fs.writeFileSync(trace, ['/cvmfs/a.ch/sw/gcc/6.2.0/x86_64/setup.sh', '/cvmfs/a.ch/sw/gcc/6.2.0/x86_64/lib64/libstdc++.so.6', '/usr/lib/not-cvmfs.so'].join('\n') + '\n');
    const diag = new Diagnostics();
    const payload = selectPayload(
      { cvmfsRoot: path.join(dir, 'cvmfs'), specs: [], traces: { files: [trace], policy: 'exact', filters: [] }, repo: null, closure: true },
      diag,
    );
    const paths = payload.entries.map((e) => e.path);
    expect(paths).toContain('/cvmfs/a.ch/sw/gcc/6.2.0');
    expect(paths).toContain('/cvmfs/s.ch/gcc/6.2.0-b9934/x86_64/setup.sh');
    expect(paths).toContain('/cvmfs/s.ch/gcc/6.2.0-b9934/x86_64/lib64');
    expect(paths).toContain('/cvmfs/a.ch/sw/runtime/lib64/libstdc++.so.6');
    expect(paths).not.toContain('/cvmfs/a.ch/sw/runtime/lib64/libgcc_s.so.1'); // exact policy: only what was opened
    expect(paths).not.toContain('/cvmfs/a.ch/sw/other');
  });

  it('leaves out, with a warning, repositories a trace touches that the source does not have', () => {
    const dir = setup({ 'a.ch/x': 'x' });
    const trace = path.join(dir, 'mixed.paths');
    fs.writeFileSync(trace, '/cvmfs/a.ch/x\n/cvmfs/cms.cern.ch/SITECONF/local\n');
    const diag = new Diagnostics();
    const payload = selectPayload({ cvmfsRoot: path.join(dir, 'cvmfs'), specs: [], traces: { files: [trace], policy: 'exact', filters: [] }, repo: null, closure: true }, diag);
    expect(payload.entries.map((e) => e.path)).toEqual(['/cvmfs/a.ch', '/cvmfs/a.ch/x']);
    expect(diag.warnings.filter((w) => w.kind === 'trace-repo-missing').map((w) => w.message)).toEqual([
      `${trace} (exact): the trace touches /cvmfs/cms.cern.ch, which is not in the source tree; left out`,
    ]);
  });
});

describe('--include globs', () => {
  function include(dir: string, globs: string[], specs: string[] = []) {
    const diag = new Diagnostics();
    const payload = selectPayload({ cvmfsRoot: path.join(dir, 'cvmfs'), specs, repo: null, closure: true, include: globs }, diag);
    const reasons = Object.fromEntries(payload.entries.map((e) => [display(e.path), e.reason]));
    return { payload, diag, reasons, rules: payload.rules.map((r) => `${r.kind} ${display(r.path)}`) };
  }
  const tree = {
    'r.ch/sw/pkg/1.0/a.so': '1',
    'r.ch/sw/pkg/1.0/sub/d.so': '2',
    'r.ch/sw/pkg/1.0/x.so/inner.txt': '3',
    'r.ch/sw/pkg/2.0/b.so': '4',
    'r.ch/sw/pkg/current': { link: '2.0' },
    'r.ch/sw/pkg/abs': { link: '/cvmfs/r.ch/sw/pkg/1.0' },
    'r.ch/sw/pkg/2.0/self': { link: '.' },
    'r.ch/sw/out/o.so': '5',
    'r.ch/sw/pkg/1.0/sub/out': { link: '../../../out' },
    'q.ch/up': { link: '../r.ch' },
  } as const;

  it("'prefix/**' is one rule a directory below the prefix, not one a match, and selects what the spec line does, for the glob's reason", () => {
    const dir = setup(tree);
    const g = include(dir, ['r.ch/sw/pkg/**']);
    const spec = select(dir, ['/sw/pkg/*']);
    // The spec line's entries (with what its closure brings through the link `sub/out`).
    expect(Object.keys(g.reasons)).toEqual(spec.paths);
    expect(g.reasons['/cvmfs/r.ch/sw/pkg/1.0/sub/d.so']).toBe('--include r.ch/sw/pkg/**');
    expect(g.reasons['/cvmfs/r.ch/sw/out/o.so']).toBe('--include r.ch/sw/pkg/**');
    // Directories and links right below the prefix, and what lies outside through a link (with the
    // link): no rule for d.so, a.so, x.so/inner.txt, ...
    expect(g.rules.filter((r) => r.includes('/1.0/'))).toEqual(['exact /cvmfs/r.ch/sw/pkg/1.0/sub/out']);
    expect(g.rules).toContain('recursive /cvmfs/r.ch/sw/pkg/1.0');
    expect(g.rules).toContain('exact /cvmfs/r.ch/sw/out/o.so');
    expect(g.diag.warnings).toEqual([]);
  });

  it('a directory matched through an absolute link is selected whole, as where it is matched directly', () => {
    const dir = setup(tree);
    for (const glob of ['r.ch/sw/pkg/*/sub', 'r.ch/sw/pkg/**/*.so']) {
      const g = include(dir, [glob]);
      const d = glob.endsWith('sub') ? '/cvmfs/r.ch/sw/pkg/1.0/sub/d.so' : '/cvmfs/r.ch/sw/pkg/1.0/x.so/inner.txt';
      expect([glob, g.reasons[d]]).toEqual([glob, `--include ${glob}`]);
    }
  });

  it('matches through a link to another repository raise no warning about spec paths through symlinks', () => {
    const dir = setup(tree);
    const g = include(dir, ['q.ch/**']);
    expect(g.diag.warnings.filter((w) => w.kind.startsWith('spec-'))).toEqual([]);
    expect(g.reasons['/cvmfs/r.ch/sw/pkg/2.0/b.so']).toBe('--include q.ch/**');
  });

  it('where globs overlap, an entry has the reason of the last glob matching it, as with a rule a match', () => {
    const dir = setup(tree);
    const wide = '--include r.ch/sw/**';
    const narrow = '--include r.ch/sw/pkg/1.0/**';
    let g = include(dir, ['r.ch/sw/**', 'r.ch/sw/pkg/1.0/**']);
    expect([g.reasons['/cvmfs/r.ch/sw/pkg/1.0/sub/d.so'], g.reasons['/cvmfs/r.ch/sw/pkg/2.0/b.so'], g.reasons['/cvmfs/r.ch/sw/pkg/1.0']]).toEqual([narrow, wide, wide]);
    g = include(dir, ['r.ch/sw/pkg/1.0/**', 'r.ch/sw/**']);
    expect([g.reasons['/cvmfs/r.ch/sw/pkg/1.0/sub/d.so'], g.reasons['/cvmfs/r.ch/sw/pkg/2.0/b.so']]).toEqual([wide, wide]);
    g = include(dir, ['r.ch/sw/**', 'r.ch/sw/pkg/**/*.so']);
    expect([g.reasons['/cvmfs/r.ch/sw/pkg/1.0/x.so/inner.txt'], g.reasons['/cvmfs/r.ch/sw/pkg/1.0/x.so'], g.reasons['/cvmfs/r.ch/sw/pkg/1.0/sub']]).toEqual([wide, '--include r.ch/sw/pkg/**/*.so', wide]);
  });

  it('a spec line inside the glob still decides its path, and an exclusion above still shadows each match', () => {
    const dir = setup(tree);
    const spec = writeSpec(dir, 'r.ch.spec', ['!/sw/pkg/1.0/sub/*']);
    let g = include(dir, ['r.ch/sw/pkg/**'], [spec]);
    expect(g.reasons['/cvmfs/r.ch/sw/pkg/1.0/sub/d.so']).toBe('--include r.ch/sw/pkg/**'); // the glob names it: last line wins
    const above = writeSpec(dir, 'r.ch.spec', ['!/sw/*']);
    g = include(dir, ['r.ch/sw/pkg/**'], [above]);
    expect(g.payload.entries).toEqual([]);
    expect(g.diag.warnings.filter((w) => w.kind === 'spec-shadowed').length).toBeGreaterThanOrEqual(8);
  });
});

// Hostile trees and options for selection (issue 17), through the CLI: symlink loops under a glob,
// bad globs, ELF needs that climb out of /cvmfs. Each ends in time, in one error line or a clean
// image that unsquashfs and `shrinkwrap verify` accept.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { hasCommand } from '../helpers/env.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

let work: string;
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };

interface PlanJson {
  entries: { path: string; type: string; target?: string }[];
}

beforeAll(() => {
  work = tmpDir('sw-hostile-select-');
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('case 9: globs over symlink loops and links out of the source', () => {
  it("--include 'r.ch/repo/**' over l1 -> . and l2 -> . and a link to /usr ends at once, without walking the host", () => {
    const src = makeTree(path.join(work, 'loops'), {
      'r.ch/repo/f': 'x',
      'r.ch/repo/sub/g': 'y',
      'r.ch/repo/l1': { link: '.' },
      'r.ch/repo/l2': { link: '.' },
      'r.ch/repo/sub/up': { link: '..' },
      'r.ch/repo/host': { link: '/usr' },
    });
    const t0 = Date.now();
    const r = shrinkwrap(['plan', '--json', '--cvmfs-root', src, '--include', 'r.ch/repo/**', '--include', 'r.ch/repo/host/*'], { env: ENV, timeout: 60_000 });
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r.signal, 'killed: the glob did not end').toBeNull();
    expect(r.code, r.stderr).toBe(0);
    const paths = (JSON.parse(r.stdout) as PlanJson).entries.map((e) => e.path);
    expect(paths).toEqual([
      '/cvmfs/r.ch',
      '/cvmfs/r.ch/repo',
      '/cvmfs/r.ch/repo/f',
      '/cvmfs/r.ch/repo/host',
      '/cvmfs/r.ch/repo/l1',
      '/cvmfs/r.ch/repo/l2',
      '/cvmfs/r.ch/repo/sub',
      '/cvmfs/r.ch/repo/sub/g',
      '/cvmfs/r.ch/repo/sub/up',
    ]);
    // The link to /usr is kept as a link and reported; nothing of the host was listed.
    expect(r.stderr).toMatch(/host -> \/usr: points outside \/cvmfs; kept as a link/);
    expect(r.stderr).toMatch(/--include r\.ch\/repo\/host\/\*: matches nothing/);
  });
});

describe('case 18: bad globs', () => {
  it("--exclude '[z-a]' is one error line naming the option (was exit 3, Invalid regular expression)", () => {
    const src = makeTree(path.join(work, 'plain'), { 'r.ch/a': 'x' });
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', src, '--include', 'r.ch/*', '--exclude', '[z-a]'], { env: ENV }), 2, "--exclude [z-a]: '[z-a]': range z-a is out of order");
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', src, '--include', 'r.ch/[9-0]'], { env: ENV }), 2, "--include r.ch/[9-0]: 'r.ch/[9-0]': range 9-0 is out of order");
    // {a,b} alternatives multiply: 2^13 patterns would be walked one by one.
    const many = 'r.ch/' + '{a,b}'.repeat(13);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', src, '--include', many], { env: ENV }), 2, `--include ${many}: '${many}': more than 4096 {…} alternatives`);
  });

  it('--dbrelease ../../.. is refused naming the option (it named a rule pack line)', async () => {
    const { cvmfs } = await ensureExample();
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.75', '--dbrelease', '../../..'], { env: ENV }), 2, '--dbrelease ../../..: expected a version');
  });

  it("a base whose ld.so.conf includes /etc/ld.so.conf.d/[.conf and [z-a].conf builds, with a warning", () => {
    const src = makeTree(path.join(work, 'plain2'), { 'r.ch/a': 'x' });
    const base = makeTree(path.join(work, 'base-ldconf'), {
      'etc/ld.so.conf': 'include /etc/ld.so.conf.d/[.conf\ninclude /etc/ld.so.conf.d/[z-a].conf\n',
      'etc/ld.so.conf.d/[.conf': '/opt/odd/lib\n',
    });
    const r = shrinkwrap(['plan', '--cvmfs-root', src, '--include', 'r.ch/*', '--base', base, '--closure', 'elf'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/base image \/etc\/ld\.so\.conf:2: include \/etc\/ld\.so\.conf\.d\/\[z-a\]\.conf: .*range z-a is out of order; skipped/);
  });
});

describe.runIf(hasCommand('cc') && hasCommand('unsquashfs'))('case 15: ELF needs that climb out of /cvmfs', () => {
  it('DT_NEEDED /cvmfs/r.ch/.., …/sw/lib/../../../.. and `..` on a $ORIGIN/../../../../.. RUNPATH: no `..` entry, a clean image', () => {
    const src = makeTree(path.join(work, 'elf'), { 'r.ch/sw/lib/libok.so': 'not elf', 'r.ch/sw/bin/.keep': '' });
    const cc = (...args: string[]) => execFileSync('cc', args, { cwd: work, stdio: 'pipe' });
    fs.writeFileSync(path.join(work, 'foo.c'), 'int foo(void) { return 1; }\n');
    fs.writeFileSync(path.join(work, 'main.c'), 'int foo(void);\nint main(void) { return foo(); }\n');
    // A library's soname becomes the DT_NEEDED of what links against it: any string we like.
    const needs = ['/cvmfs/r.ch/..', '/cvmfs/r.ch/sw/lib/../../../..', '..'];
    needs.forEach((soname, i) => {
      cc('-shared', '-fPIC', `-Wl,-soname,${soname}`, 'foo.c', '-o', `libn${i}.so`);
      cc('main.c', '-o', path.join(src, `r.ch/sw/bin/m${i}`), '-L.', '-Wl,--no-as-needed', `-ln${i}`, '-Wl,--enable-new-dtags,-rpath,$ORIGIN/../../../../..');
    });
    const spec = path.join(work, 'elf.spec');
    fs.writeFileSync(spec, '/cvmfs/r.ch/sw/bin/*\n');
    const img = path.join(work, 'elf.sqfs');
    const r = shrinkwrap(['--cvmfs-root', src, '--spec', spec, '--closure', 'elf', '-o', img], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    for (const n of needs) expect(r.stderr).toContain(`needs ${n}, not found`);
    const listing = spawnSync('unsquashfs', ['-lln', img], { encoding: 'latin1' });
    expect(listing.stderr).toBe('');
    const names = listing.stdout.split('\n').filter((l) => l.includes('squashfs-root')).map((l) => l.slice(l.indexOf('squashfs-root')));
    expect(names).toEqual([
      'squashfs-root',
      'squashfs-root/r.ch',
      'squashfs-root/r.ch/sw',
      'squashfs-root/r.ch/sw/bin',
      'squashfs-root/r.ch/sw/bin/.keep',
      'squashfs-root/r.ch/sw/bin/m0',
      'squashfs-root/r.ch/sw/bin/m1',
      'squashfs-root/r.ch/sw/bin/m2',
    ]);
    const v = shrinkwrap(['verify', img]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });
});

describe.runIf(hasCommand('cc'))('ELF closure siblings: a hostile object cannot make the search or its messages explode', () => {
  it('600 needs × 400 RUNPATH directories: the lookups stop at 200,000 with one warning, messages stay short', () => {
    const dir = path.join(work, 'many');
    const libs = path.join(dir, 'libs');
    fs.mkdirSync(libs, { recursive: true });
    const src = makeTree(path.join(dir, 'src'), { 'r.ch/bin/.keep': '' });
    for (let i = 0; i < 400; i++) fs.mkdirSync(path.join(src, `r.ch/d${String(i).padStart(3, '0')}`));
    fs.writeFileSync(path.join(dir, 'foo.c'), 'int foo(void) { return 1; }\n');
    fs.writeFileSync(path.join(dir, 'main.c'), 'int main(void) { return 0; }\n');
    execFileSync('cc', ['-shared', '-fPIC', '-Wl,-soname,libn00000.so', 'foo.c', '-o', 'libs/libn00000.so'], { cwd: dir });
    // Copies with their soname patched: each becomes a DT_NEEDED of its own.
    const one = fs.readFileSync(path.join(libs, 'libn00000.so'));
    const at = one.indexOf('libn00000.so\0', 0, 'latin1');
    const names: string[] = [];
    for (let i = 0; i < 600; i++) {
      const name = `n${String(i).padStart(5, '0')}`;
      const copy = Buffer.from(one);
      copy.write(`lib${name}.so`, at, 'latin1');
      fs.writeFileSync(path.join(libs, `lib${name}.so`), copy);
      names.push(`-l${name}`);
    }
    const runpath = Array.from({ length: 400 }, (_, i) => `/cvmfs/r.ch/d${String(i).padStart(3, '0')}`).join(':');
    execFileSync('cc', ['main.c', '-o', path.join(src, 'r.ch/bin/tool'), '-Llibs', '-Wl,--no-as-needed', ...names, `-Wl,--enable-new-dtags,-rpath,${runpath}`], { cwd: dir });
    fs.writeFileSync(path.join(dir, 'r.ch.spec'), '/bin/*\n');
    const t0 = Date.now();
    const r = shrinkwrap(['plan', '--cvmfs-root', src, '--spec', path.join(dir, 'r.ch.spec'), '--closure', 'elf'], { env: ENV, timeout: 120_000 });
    expect(r.code, r.stderr.slice(0, 2000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(r.stderr).toMatch(/\/cvmfs\/r\.ch\/bin\/tool: 601 needs in 400 directories: more than 200000 lookups; the rest of its needs \(from libn00500\.so\) are not looked for/);
    expect(r.stderr).toMatch(/needs libn00000\.so, not found under \/cvmfs in \/cvmfs\/r\.ch\/d000:.*:… \(380 more\)/);
    expect(r.stderr.length).toBeLessThan(500_000); // 600 lines of all 400 directories were 4 MB
  });
});

describe('names with control characters (a sibling of case 21)', () => {
  it('are selected by globs and shown escaped: plan text is one line per entry, warnings one line each', () => {
    const src = makeTree(path.join(work, 'control'), { 'r.ch/sw/plain': 'x' });
    fs.writeFileSync(path.join(src, 'r.ch/sw/a\nb'), 'y');
    fs.writeFileSync(path.join(src, 'r.ch/sw/e\x1b[31mred'), 'z');
    // A dangling link with a newline in its name: a warning that names it.
    fs.symlinkSync('missing', path.join(src, 'r.ch/sw/dang\nling'));
    const r = shrinkwrap(['plan', '--cvmfs-root', src, '--include', 'r.ch/**'], { env: ENV });
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('-') || l.startsWith('l'));
    expect(lines.map((l) => l.replace(/^.* \/cvmfs\//, '/cvmfs/').replace(/ +\[.*$/, ''))).toEqual([
      '/cvmfs/r.ch/sw/a\\x0ab',
      '/cvmfs/r.ch/sw/dang\\x0aling -> missing',
      '/cvmfs/r.ch/sw/e\\x1b[31mred',
      '/cvmfs/r.ch/sw/plain',
    ]);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('dang'));
    expect(warnings).toEqual([expect.stringMatching(/^shrinkwrap: warning: .*dang\\nling/)]);
    // JSON keeps the exact name (JSON escapes it itself).
    const json = JSON.parse(shrinkwrap(['plan', '--json', '--cvmfs-root', src, '--include', 'r.ch/**'], { env: ENV }).stdout) as PlanJson;
    expect(json.entries.map((e) => e.path)).toContain('/cvmfs/r.ch/sw/a\nb');
  });
});

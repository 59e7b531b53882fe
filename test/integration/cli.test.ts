import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

let dir: string;
let root: string;
let spec: string;
const isRoot = process.getuid?.() === 0;

beforeAll(() => {
  dir = tmpDir();
  fs.chmodSync(dir, 0o755);
  root = makeTree(path.join(dir, 'cvmfs'), {
    'r.ch/sw/bin/tool': { file: '#!/bin/sh\necho tool\n', mode: 0o755 },
    'r.ch/sw/lib/libx.so.1': 'elf',
    'r.ch/sw/lib/libx.so': { link: 'libx.so.1' },
    'r.ch/sw/share/a': 'same inode',
    'r.ch/sw/share/b': { hardlinkOf: 'r.ch/sw/share/a' },
    'r.ch/sw/share/ro dir/f': 'x',
    'r.ch/sw/setuid': { file: 'x', mode: 0o4755 },
    'r.ch/other/big': 'not selected',
  });
  fs.chmodSync(path.join(root, 'r.ch/sw/share/ro dir'), 0o555);
  if (isRoot) fs.lchownSync(path.join(root, 'r.ch/sw/lib/libx.so.1'), 1234, 5678);
  // Distinct, fixed times so that a writer that forgets one shows it.
  execFileSync('find', [root, '-exec', 'touch', '-h', '-d', '@1557878400', '{}', '+']);
  fs.utimesSync(path.join(root, 'r.ch/sw/bin/tool'), 1500000000, 1500000000);
  spec = writeSpec(dir, 'r.ch.spec', ['/sw/*']);
});

afterAll(() => {
  execFileSync('chmod', ['-R', 'u+rwx', dir]);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `find` listing of what matters: type, mode, owner, size of files, mtime, link target, link count. */
function listing(top: string): string[] {
  const out = execFileSync('find', ['.', '-printf', '%y %m %U:%G %s %T@ %n %l %P\n'], { cwd: top, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l !== '')
    // Directory sizes depend on the file system, and link counts on unselected subdirectories.
    .map((l) => l.replace(/^(d \S+ \S+) \d+ (\S+) \d+/, '$1 - $2 -'))
    .sort();
}

describe('shrinkwrap --help and usage', () => {
  it('prints help and exits 0', () => {
    const r = shrinkwrap(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: shrinkwrap/);
    expect(r.stdout).toMatch(/plan/);
  });

  it('rejects an unknown option in one line', () => {
    expectOneLineError(shrinkwrap(['plan', '--bogus']), 2, "unknown option '--bogus'");
  });
});

describe('bad input: one line, non-zero exit, nothing written', () => {
  it('a missing --cvmfs-root', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', path.join(dir, 'nope'), '--spec', spec]), 2, `--cvmfs-root ${path.join(dir, 'nope')}: no such directory`);
  });

  it('no spec at all', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', root]), 2, 'nothing to select: give --release VERSION, --spec FILE');
  });

  it('a missing spec file', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', root, '--spec', path.join(dir, 'missing.spec')]), 2, /spec file .*missing\.spec: no such file/);
  });

  it('an invalid spec line, named by file:line', () => {
    const bad = writeSpec(dir, 'bad.spec', ['# ok', '/sw/*', 'sw/lib']);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', root, '--repo', 'r.ch', '--spec', bad]), 2, `${bad}:3: invalid spec line 'sw/lib'`);
  });

  it('a repository that is not under the root', () => {
    const other = writeSpec(dir, 'x.cern.ch.spec', ['/a']);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', root, '--spec', other]), 2, `${other}:1: repository x.cern.ch not found under ${root}`);
  });

  it('an output that exists is refused and left as it was', () => {
    const out = path.join(dir, 'exists.sqfs');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep'), 'mine');
    expectOneLineError(shrinkwrap(['--cvmfs-root', root, '--spec', spec, '-o', out]), 2, `output ${out} already exists`);
    expect(fs.readdirSync(out)).toEqual(['keep']);
  });

  it('an output in a directory that does not exist', () => {
    expectOneLineError(shrinkwrap(['--cvmfs-root', root, '--spec', spec, '-o', path.join(dir, 'no/such/out.sqfs')]), 2, /directory .*no\/such does not exist/);
  });
});

describe('build --format dir', () => {
  it('writes exactly the selection, keeping modes, owners, mtimes, symlinks and hard links', () => {
    const out = path.join(dir, 'img');
    // --keep-setuid: sw/setuid keeps its bit (by default it is left out, as a CVMFS client mounts nosuid).
    const r = shrinkwrap(['build', '--format', 'dir', '--keep-setuid', '--cvmfs-root', root, '--spec', spec, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const expected = listing(path.join(root, 'r.ch')).filter((l) => !/ other(\/|$)/.test(l));
    expect(listing(path.join(out, 'r.ch'))).toEqual(expected);
    const plain = path.join(dir, 'img-nosuid');
    expect(shrinkwrap(['build', '--format', 'dir', '--cvmfs-root', root, '--spec', spec, '-o', plain]).stderr).toMatch(/warning: \/r\.ch\/sw\/setuid: setuid bit left out \(--keep-setuid keeps them\)/);
    expect(fs.lstatSync(path.join(plain, 'r.ch/sw/setuid')).mode & 0o7777).toBe(0o755);
    // Hard links stay hard links, and contents are the source's.
    expect(fs.statSync(path.join(out, 'r.ch/sw/share/a')).ino).toBe(fs.statSync(path.join(out, 'r.ch/sw/share/b')).ino);
    expect(fs.readFileSync(path.join(out, 'r.ch/sw/bin/tool'), 'utf8')).toBe('#!/bin/sh\necho tool\n');
    if (isRoot) expect(fs.lstatSync(path.join(out, 'r.ch/sw/lib/libx.so.1')).uid).toBe(1234);
    expect(fs.readdirSync(out)).toEqual(['r.ch']);
    expect(fs.readdirSync(dir).filter((n) => n.includes('shrinkwrap-tmp'))).toEqual([]);
  });

  it('replaces an existing output only with --force', () => {
    const out = path.join(dir, 'forced');
    // An earlier output (--force replaces nothing else: test/integration/hostile-output.test.ts).
    expect(shrinkwrap(['--format', 'dir', '--cvmfs-root', root, '--spec', spec, '-o', out, '-q']).code).toBe(0);
    fs.writeFileSync(path.join(out, 'old'), 'old');
    const r = shrinkwrap(['--format', 'dir', '--cvmfs-root', root, '--spec', spec, '-o', out, '--force', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(fs.readdirSync(out)).toEqual(['r.ch']);
    expect(fs.readdirSync(dir).filter((n) => n.includes('shrinkwrap-'))).toEqual([]);
  });

  it.runIf(isRoot).each([
    // Found during selection, from the mode bits, before any output exists.
    ['dir', /cannot read .*r\.ch\/a\/secret: permission denied \(mode 000/],
    ['squashfs', /cannot read .*r\.ch\/a\/secret: permission denied \(mode 000/],
  ])('--format %s fails cleanly, leaving no output and no temporary files, when a source cannot be read', (format, message) => {
    // Run as nobody: the mode-000 file cannot be read.
    const locked = path.join(dir, `locked-${format}`);
    makeTree(locked, { 'r.ch/a/ok': 'fine', 'r.ch/a/secret': { file: 'no', mode: 0o000 } });
    const outDir = path.join(dir, `nobody-out-${format}`);
    fs.mkdirSync(outDir, { mode: 0o777 });
    fs.chmodSync(outDir, 0o777);
    const lockedSpec = writeSpec(dir, 'locked.r.ch.spec', ['/a/*']);
    const r = shrinkwrap(['--format', format, '--cvmfs-root', locked, '--repo', 'r.ch', '--spec', lockedSpec, '-o', path.join(outDir, 'img')], {
      uid: 65534,
      gid: 65534,
    });
    expectOneLineError(r, 1, message);
    expect(fs.readdirSync(outDir)).toEqual([]);
  });
});

describe('build --format squashfs: the checksum file', () => {
  it('writes OUTPUT.sha256 for sha256sum -c, and with --no-checksum none (an old one is removed)', () => {
    const out = path.join(dir, 'sum.sqfs');
    const r = shrinkwrap(['--cvmfs-root', root, '--spec', spec, '-o', out, '--json', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(execFileSync('sha256sum', ['-c', 'sum.sqfs.sha256'], { cwd: dir, encoding: 'utf8' })).toBe('sum.sqfs: OK\n');
    const digest = execFileSync('sha256sum', [out], { encoding: 'utf8' }).split(' ')[0];
    expect(JSON.parse(r.stdout).sha256).toBe(digest);
    const again = shrinkwrap(['--cvmfs-root', root, '--spec', spec, '-o', out, '--json', '-q', '--force', '--no-checksum']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.existsSync(`${out}.sha256`)).toBe(false);
    expect(JSON.parse(again.stdout).sha256).toBeUndefined();
    // The same image, written again: only the checksum file is left out.
    expect(execFileSync('sha256sum', [out], { encoding: 'utf8' }).split(' ')[0]).toBe(digest);
    expect(fs.readdirSync(dir).filter((n) => n.includes('shrinkwrap-'))).toEqual([]);
  });
});

describe('plan', () => {
  it('prints one line per entry and a summary, in path order', () => {
    const r = shrinkwrap(['plan', '--cvmfs-root', root, '--spec', spec]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^drwxr-xr-x \d+\/\d+ +0 2019-05-15 00:00 \/cvmfs\/r\.ch  \[ancestor of .*r\.ch\.spec:1\]$/);
    expect(lines.filter((l) => /^lrwxrwxrwx \d+\/\d+ +9 2019-05-15 00:00 \/cvmfs\/r\.ch\/sw\/lib\/libx\.so -> libx\.so\.1  \[.*r\.ch\.spec:1 tree \/sw\/\*\]$/.test(l))).toHaveLength(1);
    expect(lines.some((l) => l.startsWith('-rwsr-xr-x') && l.includes('/cvmfs/r.ch/sw/setuid'))).toBe(true);
    expect(lines.some((l) => l.startsWith('h') && l.includes('/cvmfs/r.ch/sw/share/b => /cvmfs/r.ch/sw/share/a'))).toBe(true);
    expect(lines.find((l) => l.startsWith('summary:'))).toBe('summary: 13 entries (6 dir, 5 file, 1 symlink, 1 hardlink), 35 B of file content');
    expect(lines).toContain('  r.ch         13 entries        35 B');
  });

  it('--json prints one document with entries sorted by path', () => {
    const r = shrinkwrap(['plan', '--json', '--cvmfs-root', root, '--spec', spec]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const paths = doc.entries.map((e: { path: string }) => e.path);
    expect(paths[0]).toBe('/cvmfs/r.ch');
    expect(paths).toEqual([...paths].sort((a: string, b: string) => (a.replaceAll('/', '\0') < b.replaceAll('/', '\0') ? -1 : 1)));
    expect(doc.entries.find((e: { path: string }) => e.path === '/cvmfs/r.ch/sw/lib/libx.so')).toEqual({
      path: '/cvmfs/r.ch/sw/lib/libx.so',
      type: 'symlink',
      size: 9,
      mode: 0o777,
      uid: process.getuid!(),
      gid: process.getgid!(),
      mtime: 1557878400,
      target: 'libx.so.1',
      reason: `${spec}:1 tree /sw/*`,
    });
    expect(doc.entries.find((e: { path: string }) => e.path === '/cvmfs/r.ch/sw/bin/tool')).toMatchObject({ type: 'file', mode: 0o755, size: 20, mtime: 1500000000 });
    expect(doc.summary).toMatchObject({ entries: 13, bytes: 35, types: { dir: 6, file: 5, symlink: 1, hardlink: 1 }, repositories: { 'r.ch': { entries: 13, bytes: 35 } } });
    expect(doc.summary.warnings).toEqual([]);
  });

  it('survives a reader that closes the pipe early', () => {
    const r = execFileSync('sh', ['-c', `node ${JSON.stringify(path.resolve('dist/src/cli/shrinkwrap.cjs'))} plan --cvmfs-root ${root} --spec ${spec} | head -1; echo "status $?"`], { encoding: 'utf8' });
    expect(r).toMatch(/^drwx.*\nstatus 0\n$/);
  });
});

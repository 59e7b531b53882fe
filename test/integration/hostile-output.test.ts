// Issue 17, the output's side: a build runs as root in directories others can write to, next to
// other builds, on file systems that fill up. Planted links are never followed, --force replaces
// only an earlier output of the same kind, an image and its .sha256 commit together or not at all,
// a racing build never destroys the winner's files, a full $TMPDIR is one line naming it, killed
// runs' work directories are swept, and an output inside a source is refused.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, type Run, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun, isRoot } from '../helpers/env.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

let dir: string;
let root: string;
let base: string;
let spec: string;
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };
const mounts: string[] = [];

beforeAll(() => {
  dir = tmpDir('sw-hostile-out-');
  fs.chmodSync(dir, 0o755);
  root = makeTree(path.join(dir, 'cvmfs'), {
    'r.ch/sw/bin/tool': { file: '#!/bin/sh\necho tool\n', mode: 0o755 },
    'r.ch/sw/lib/libx.so.1': 'elf',
    'r.ch/sw/lib/libx.so': { link: 'libx.so.1' },
    // Incompressible, so that layers and images have a size worth measuring.
    'r.ch/sw/data/blob': crypto.randomBytes(300 << 10).toString('latin1'),
  });
  base = makeTree(path.join(dir, 'base'), {
    'etc/os-release': 'ID=test\nVERSION_ID=1\n',
    'bin/sh': { file: '#!/bin/true\n', mode: 0o755 },
  });
  spec = writeSpec(dir, 'r.ch.spec', ['/sw/*']);
});

afterAll(() => {
  for (const m of mounts.splice(0)) spawnSync('umount', [m]);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory for one test. */
function place(name: string, mode = 0o755): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { mode });
  fs.chmodSync(d, mode);
  return d;
}

/** A tmpfs of `size` (unmounted in afterAll). */
function tmpfs(name: string, size: string): string {
  const d = place(name);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d]);
  mounts.push(d);
  return d;
}

function build(args: string[], env: NodeJS.ProcessEnv = ENV): Run {
  return shrinkwrap(['--cvmfs-root', root, '--spec', spec, '-q', ...args], { env });
}

function start(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, '-q', ...args], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ended(c: ChildProcess): Promise<Run> {
  return new Promise((resolve) => {
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d));
    c.on('close', (code, signal) => resolve({ code, signal, stdout: '', stderr }));
  });
}

/** Wait until a temporary output shows up in `d` (the build is writing). */
async function writing(d: string): Promise<void> {
  for (let i = 0; i < 1500 && !fs.readdirSync(d).some((n) => n.includes('shrinkwrap-tmp')); i++) await new Promise((r) => setTimeout(r, 10));
}

/** A source of many small files: a directory image of it takes a while to write. */
function manyFilesSource(): string[] {
  const src = path.join(dir, 'manyfiles');
  if (!fs.existsSync(src)) {
    for (let d = 0; d < 40; d++) {
      fs.mkdirSync(path.join(src, 'r.many', `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(src, 'r.many', `d${d}`, `f${f}`), `${d}/${f}`);
    }
    fs.writeFileSync(path.join(dir, 'r.many.spec'), '/*\n');
  }
  return ['--cvmfs-root', src, '--spec', path.join(dir, 'r.many.spec')];
}

/** A source big enough that writing it takes a while (xz -9 on one thread). */
function slowSource(): string[] {
  const src = path.join(dir, 'slow');
  if (!fs.existsSync(src)) {
    fs.mkdirSync(path.join(src, 'r.big'), { recursive: true });
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(src, 'r.big', `f${i}`), crypto.randomBytes(2 << 20));
    fs.writeFileSync(path.join(dir, 'r.big.spec'), '/*\n');
  }
  return ['--cvmfs-root', src, '--spec', path.join(dir, 'r.big.spec'), '--compression', 'xz', '--level', '9', '--threads', '1'];
}

describe.runIf(canRun(isRoot, 'hostile output tests', 'they mount tmpfs and plant files as another user'))('hostile outputs', () => {
  it('case 2: links planted under the names of temporary files in a 1777 directory are never followed', async () => {
    const shared = place('shared', 0o1777);
    const victim = path.join(place('elsewhere'), 'precious');
    fs.writeFileSync(victim, 'root-owned, not to be touched\n');
    const out = path.join(shared, 'img.sqfs');
    const c = start(['--cvmfs-root', root, '--spec', spec, '-o', out]);
    const done = ended(c);
    // Planted as soon as the pid is known (the build needs far longer to get there): every name
    // the old code used for this run.
    for (const n of [`img.sqfs.sha256.shrinkwrap-tmp-${c.pid}`, `.img.sqfs.shrinkwrap-tmp-${c.pid}`, `.img.sqfs.shrinkwrap-old-${c.pid}`]) fs.symlinkSync(victim, path.join(shared, n));
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(victim, 'utf8')).toBe('root-owned, not to be touched\n');
    expect(fs.lstatSync(`${out}.sha256`).isFile()).toBe(true);
    expect(fs.lstatSync(out).isFile()).toBe(true);
    expect(execFileSync('sha256sum', ['-c', 'img.sqfs.sha256'], { cwd: shared, encoding: 'utf8' })).toBe('img.sqfs: OK\n');
  });

  it('case 3: -o DIR/ --force for a file format is refused, and the directory is kept', () => {
    const d = place('case3');
    const target = path.join(d, 'mine');
    makeTree(target, { 'thesis.tex': 'years of work', 'data/x': 'x' });
    expectOneLineError(build(['--format', 'squashfs', '-o', `${target}/`, '--force']), 2, `${target}/`);
    expectOneLineError(build(['--format', 'squashfs', '-o', target, '--force']), 2, `output ${target} already exists and is a directory`);
    // Without --format, a trailing / means a directory image: still not over a directory shrinkwrap did not write.
    expectOneLineError(build(['-o', `${target}/`, '--force']), 2, `output ${target}/ is a directory shrinkwrap did not write`);
    expect(fs.readdirSync(target).sort()).toEqual(['data', 'thesis.tex']);
    expect(fs.readdirSync(d)).toEqual(['mine']);
  });

  it('case 3, siblings: --force replaces an earlier output of the same kind only (dir, oci, docker-archive, spec)', () => {
    const d = place('case3s');
    const mine = makeTree(path.join(d, 'mine'), { 'thesis.tex': 'years of work' });
    for (const format of ['dir', 'oci']) {
      expectOneLineError(build(['--format', format, '-o', mine, '--force']), 2, `output ${mine} is a directory shrinkwrap did not write`);
    }
    expectOneLineError(build(['--format', 'docker-archive', '-o', mine, '--force']), 2, `output ${mine} already exists and is a directory`);
    const trace = path.join(dir, 'paths.txt');
    fs.writeFileSync(trace, '/cvmfs/r.ch/sw/bin/tool\n');
    expectOneLineError(shrinkwrap(['spec', '--trace-format', 'paths', '--from-trace', trace, '-o', mine, '--force', '-q']), 2, `output ${mine} already exists and is a directory`);
    expectOneLineError(shrinkwrap(['trace', '-o', mine, '--force', '-q', '--', 'true']), 2, `output ${mine} is a directory shrinkwrap did not write`);
    expect(fs.readdirSync(mine)).toEqual(['thesis.tex']);
    // Earlier outputs are replaced: a /cvmfs-only dir image (its marker beside it), a dir image
    // with a base (its /.shrinkwrap/), an OCI layout; and a file format over a directory never.
    for (const [format, extra] of [['dir', []], ['dir', ['--base', base]], ['oci', []]] as const) {
      const out = path.join(d, `img-${format}-${extra.length}`);
      expect(build(['--format', format, ...extra, '-o', out]).code).toBe(0);
      fs.writeFileSync(path.join(out, 'stale'), 'from before');
      const r = build(['--format', format, ...extra, '-o', out, '--force']);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.existsSync(path.join(out, 'stale'))).toBe(false);
    }
    expect(fs.readdirSync(d).filter((n) => n.includes('shrinkwrap-'))).toEqual([]);
  });

  it('case 4: no space for the .sha256 after the image: neither is committed, nothing is left', () => {
    // The image's size from a build elsewhere (the same inputs give the same bytes).
    const probe = path.join(place('case4-probe'), 'img.sqfs');
    expect(build(['-o', probe]).code).toBe(0);
    const size = fs.statSync(probe).size;
    const mnt = tmpfs('case4', '8m');
    // Fill the file system so that exactly the image fits, and not one page more.
    const st = fs.statfsSync(mnt);
    const filler = st.bavail * st.bsize - Math.ceil(size / st.bsize) * st.bsize;
    fs.writeFileSync(path.join(mnt, 'filler'), Buffer.alloc(filler));
    // (The free-space check would refuse it first: it counts the uncompressed size; see preflight.test.ts.)
    const r = build(['-o', path.join(mnt, 'img.sqfs'), '--no-space-check']);
    expectOneLineError(r, 1, /img\.sqfs\.sha256: no space left on device \(ENOSPC\)/);
    expect(fs.readdirSync(mnt)).toEqual(['filler']);
    // With room, the same build commits both.
    fs.truncateSync(path.join(mnt, 'filler'), 0);
    expect(build(['-o', path.join(mnt, 'img.sqfs')]).code).toBe(0);
    expect(execFileSync('sha256sum', ['-c', 'img.sqfs.sha256'], { cwd: mnt, encoding: 'utf8' })).toBe('img.sqfs: OK\n');
  });

  it('case 5: a $TMPDIR too small for plan.json is one line naming TMPDIR, nothing written', () => {
    const tmp = tmpfs('case5-tmp', '16k');
    // A plan of 4,000 entries: half a megabyte of plan.json.
    const out = place('case5-out');
    const r = shrinkwrap([...manyFilesSource(), '--base', base, '-o', path.join(out, 'img.sqfs'), '-q', '--no-space-check'], { env: { ...ENV, TMPDIR: tmp } });
    expectOneLineError(r, 1, /plan\.json: no space left on device \(ENOSPC\).*TMPDIR/);
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('case 5: docker-archive is not staged in $TMPDIR', () => {
    const tmp = tmpfs('case5b-tmp', '64k');
    const out = path.join(place('case5b-out'), 'img.tar');
    const r = build(['--format', 'docker-archive', '-o', out], { ...ENV, TMPDIR: tmp });
    expect(r.code, r.stderr).toBe(0);
    const names = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).split('\n');
    expect(names).toContain('manifest.json');
    expect(names).toContain('index.json');
    expect(fs.readdirSync(path.dirname(out)).sort()).toEqual(['img.tar', 'img.tar.sha256']);
  });

  it('case 5: work directories of killed runs are swept (dead pid, same user, real directories only)', () => {
    const tmp = place('case5c-tmp', 0o1777);
    const dead = spawnSync('true').pid!;
    const make = (name: string, uid = 0) => {
      const d = makeTree(path.join(tmp, name), { 'layer.tar': 'decompressed base layer' });
      fs.chownSync(d, uid, uid);
      return d;
    };
    make(`shrinkwrap-base-${dead}-AbC123`);
    make(`shrinkwrap-build-${dead}-xYz789`);
    make(`shrinkwrap-base-${process.pid}-LiVe00`); // a live run's
    make(`shrinkwrap-base-${dead}-Other0`, 65534); // another user's
    const target = make('not-a-work-dir');
    fs.symlinkSync(target, path.join(tmp, `shrinkwrap-build-${dead}-Link00`));
    const r = build(['-o', path.join(place('case5c-out'), 'img.sqfs')], { ...ENV, TMPDIR: tmp });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(tmp).sort()).toEqual([`shrinkwrap-base-${dead}-Other0`, `shrinkwrap-base-${process.pid}-LiVe00`, `shrinkwrap-build-${dead}-Link00`, 'not-a-work-dir'].sort());
    expect(fs.readdirSync(target)).toEqual(['layer.tar']);
  });

  it('case 6: an output inside the selected tree (--cvmfs-root, a directory --base), by any path, is refused', () => {
    const before = execFileSync('find', [root, base], { encoding: 'utf8' });
    expectOneLineError(build(['-o', path.join(root, 'r.ch/sw/self.sqfs')]), 2, `output ${path.join(root, 'r.ch/sw/self.sqfs')} is inside --cvmfs-root`);
    // Through a link to the tree, and with .. in the path.
    const link = path.join(dir, 'link-to-root');
    fs.symlinkSync(root, link);
    expectOneLineError(build(['-o', path.join(link, 'r.ch/self.sqfs')]), 2, 'is inside --cvmfs-root');
    expectOneLineError(build(['--format', 'dir', '-o', `${base}/../base/img`, '--base', base]), 2, 'is inside --base');
    // A directory output that holds the source: --force would replace it.
    expectOneLineError(build(['--format', 'dir', '-o', dir, '--force']), 2, `output ${dir} contains --cvmfs-root`);
    expect(execFileSync('find', [root, base], { encoding: 'utf8' })).toBe(before);
  });

  it('case 7: a build that loses the race for its output (no --force) leaves the winner\'s image and .sha256 alone', async () => {
    const d = place('case7');
    const out = path.join(d, 'img.sqfs');
    const c = start([...slowSource(), '-o', out]);
    const done = ended(c);
    await writing(d);
    // The winner commits meanwhile.
    fs.writeFileSync(out, 'the winner\'s image');
    fs.writeFileSync(`${out}.sha256`, 'the winner\'s checksum');
    const r = await done;
    expectOneLineError(r, 2, `output ${out} appeared while building`);
    expect(fs.readFileSync(out, 'utf8')).toBe('the winner\'s image');
    expect(fs.readFileSync(`${out}.sha256`, 'utf8')).toBe('the winner\'s checksum');
    expect(fs.readdirSync(d).sort()).toEqual(['img.sqfs', 'img.sqfs.sha256']);
  });

  it('case 20: OUT.sha256 that is a directory is refused in one line, before anything is written', () => {
    const d = place('case20');
    const out = path.join(d, 'img.sqfs');
    makeTree(`${out}.sha256`, { keep: 'mine' });
    for (const force of [[], ['--force']]) {
      expectOneLineError(build(['-o', out, ...force]), 2, `${out}.sha256 is a directory`);
      expect(fs.readdirSync(d)).toEqual(['img.sqfs.sha256']);
      expect(fs.readdirSync(`${out}.sha256`)).toEqual(['keep']);
    }
  });

  it('sibling of case 5: a plan that does not fit on stdout (a full disk) is one line, not a stack', () => {
    const r = shrinkwrap(['plan', '--cvmfs-root', root, '--spec', spec], { env: ENV, stdio: ['ignore', fs.openSync('/dev/full', 'w'), 'pipe'] });
    expectOneLineError({ ...r, stdout: '' }, 1, /cannot write standard output: no space left on device \(ENOSPC\)/);
  });
});

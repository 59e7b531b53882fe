// What a build checks before the long part: that the image fits where it goes (the output's file
// system, $TMPDIR), which format the output's name asks for, and what a compressor choice costs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const RELEASE = ['--release', 'AnalysisBase,21.2.75'];
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };

let work: string;
let cvmfs: string;
let base: string;
const mounts: string[] = [];

beforeAll(async () => {
  work = tmpDir('sw-preflight-');
  ({ cvmfs, base } = await ensureExample());
}, 600_000);

afterAll(() => {
  for (const m of mounts) execFileSync('umount', [m]);
  fs.rmSync(work, { recursive: true, force: true });
});

const build = (args: string[], env: NodeJS.ProcessEnv = ENV) => shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '-q', ...args], { env });

describe.runIf(canRun(isRoot, 'free-space checks', 'mounting a tmpfs needs root'))('free space, checked before writing', () => {
  function tmpfs(name: string, options: string): string {
    const d = path.join(work, name);
    fs.mkdirSync(d);
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', d]);
    mounts.push(d);
    return d;
  }

  for (const [format, name] of [['squashfs', 'img.sqfs'], ['oci', 'img'], ['docker-archive', 'img.tar'], ['dir', 'img']] as const) {
    it(`${format}: a 1 MiB file system is refused in one line saying how much is needed and where; --no-space-check then fails on ENOSPC`, () => {
      const dir = tmpfs(`small-${format}`, 'size=1m');
      const r = build(['--format', format, '-o', path.join(dir, name)]);
      expectOneLineError(r, 1, new RegExp(`not enough free space: .* in the output's directory ${dir}: about [\\d.]+ MiB needed, [\\d.]+ (KiB|MiB) free; .*--no-space-check`));
      expect(fs.readdirSync(dir)).toEqual([]);
      const late = build(['--format', format, '-o', path.join(dir, name), '--no-space-check']);
      expectOneLineError(late, 1, /no space left on device \(ENOSPC\)/);
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  }

  it('the estimate is not far above the image: a file system twice the SquashFS image size passes', () => {
    const probe = path.join(work, 'probe.sqfs');
    expect(build(['-o', probe, '--compression', 'none']).code).toBe(0);
    const size = fs.statSync(probe).size;
    const dir = tmpfs('roomy', `size=${Math.ceil((2 * size + (2 << 20)) / 4096) * 4096}`);
    const r = build(['-o', path.join(dir, 'img.sqfs'), '--compression', 'none']);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'img.sqfs')).equals(fs.readFileSync(probe))).toBe(true);
  });

  it('dir: too few inodes is refused in one line', () => {
    const dir = tmpfs('few-inodes', 'size=64m,nr_inodes=40');
    const r = build(['--format', 'dir', '-o', path.join(dir, 'img')]);
    expectOneLineError(r, 1, new RegExp(`not enough free inodes: the directory image in the output's directory ${dir}: about \\d+ needed, \\d+ free`));
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('$TMPDIR too small for the generated files is refused, naming $TMPDIR', () => {
    const tmp = tmpfs('small-tmp', 'size=16k');
    const out = path.join(work, 'tmp-out');
    fs.mkdirSync(out);
    const r = build(['-o', path.join(out, 'img.sqfs')], { ...ENV, TMPDIR: tmp });
    expectOneLineError(r, 1, new RegExp(`not enough free space: the generated files \\(plan\\.json\\) in \\$TMPDIR \\(${tmp}\\): about`));
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('the output and $TMPDIR on one file system: their needs add up', () => {
    const dir = tmpfs('shared-fs', 'size=1m');
    fs.mkdirSync(path.join(dir, 'tmp'));
    const r = build(['--format', 'oci', '-o', path.join(dir, 'img')], { ...ENV, TMPDIR: path.join(dir, 'tmp') });
    expectOneLineError(r, 1, /not enough free space: the OCI layout .* and the generated files \(plan\.json\) in \$TMPDIR/);
  });
});

describe('the format follows the output name unless --format is given', () => {
  const magic = (f: string) => fs.readFileSync(f).subarray(0, 4).toString('latin1');

  it('.sqfs and .squashfs: SquashFS; .tar: a docker-archive; a trailing /: a directory', () => {
    for (const name of ['a.sqfs', 'b.SQUASHFS']) {
      const r = build(['-o', path.join(work, name)]);
      expect(r.code, r.stderr).toBe(0);
      expect(magic(path.join(work, name))).toBe('hsqs');
    }
    expect(build(['-o', path.join(work, 'c.tar')]).code).toBe(0);
    expect(execFileSync('tar', ['-tf', path.join(work, 'c.tar')], { encoding: 'utf8' }).split('\n')).toEqual(expect.arrayContaining(['manifest.json', 'index.json', 'oci-layout']));
    expect(build(['-o', path.join(work, 'd') + '/']).code).toBe(0);
    expect(fs.readFileSync(path.join(work, 'd/.shrinkwrap/provenance.json'), 'utf8')).toContain('"cvmfsRoot"');
  });

  it('--format wins over the name', () => {
    const r = build(['--format', 'squashfs', '-o', path.join(work, 'really-squashfs.tar')]);
    expect(r.code, r.stderr).toBe(0);
    expect(magic(path.join(work, 'really-squashfs.tar'))).toBe('hsqs');
  });

  it('.sif chooses SIF; without --base it is refused in one line', () => {
    const r = build(['-o', path.join(work, 'x.sif')]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(work, 'x.sif')).subarray(32, 41).toString('latin1')).toBe('SIF_MAGIC');
    const bare = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '-q', '-o', path.join(work, 'bare.sif')], { env: ENV });
    expectOneLineError(bare, 2, /--format sif needs --base: a SIF holds a container's root filesystem/);
    expect(fs.existsSync(path.join(work, 'bare.sif'))).toBe(false);
  });

  it('no extension, or one it does not know: refused in one line, nothing written', () => {
    for (const name of ['img', 'AB_21.2.75', 'x.img']) {
      expectOneLineError(build(['-o', path.join(work, name)]), 2, new RegExp(`-o .*${name.replace(/\./g, '\\.')}: cannot tell the image format from the name; give --format`));
    }
    expect(fs.readdirSync(work).filter((n) => /^img|^AB_|^x\.img/.test(n))).toEqual([]);
  });
});

describe('compressor warnings', () => {
  it('zstd SquashFS: one warning that kernels before 4.14 cannot mount it', () => {
    const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '-o', path.join(work, 'zstd.sqfs'), '--compression', 'zstd'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/warning: zstd SquashFS: Linux before 4\.14 \(RHEL\/CentOS 7\) cannot mount it/g)).toHaveLength(1);
    const gzip = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '-o', path.join(work, 'gzip.sqfs')], { env: ENV });
    expect(gzip.stderr).not.toMatch(/4\.14/);
  });
});

// Bases that put a symlink (or a file) where shrinkwrap writes its own entries: /.shrinkwrap,
// /.singularity.d, /cvmfs, a site mount point, /release_setup.sh. Every format must replace them,
// never write through them: nothing outside the output changes (canary directories), and no image
// holds an entry below a symlink or a file. Also: device nodes of a base are made on the host only
// when asked for (--devices).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import type { Entry } from '../../src/model/entry.js';
import { writeDir } from '../../src/writers/dir/index.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { unsquashfsListing } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
let cvmfs: string;
let baseDir: string;
const RELEASE = ['--release', 'AnalysisBase,21.2.75'];
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };
const CANARIES = ['canary-shrinkwrap', 'canary-singularity', 'canary-cvmfs', 'canary-mount'];

function sh(cmd: string, cwd = work): string {
  return execFileSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', maxBuffer: 1 << 28 });
}

function build(args: string[]) {
  const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--json', ...args], { cwd: work, env: ENV });
  if (r.code !== 0) throw new Error(`shrinkwrap ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { warnings: Array<{ kind: string; message: string }> };
}

/** Every canary directory still holds exactly its one file, unchanged. */
function expectCanariesUntouched(): void {
  for (const c of CANARIES) {
    expect(fs.readdirSync(path.join(work, c)), c).toEqual(['keep']);
    expect(fs.readFileSync(path.join(work, c, 'keep'), 'utf8'), c).toBe('canary\n');
  }
}

/** Bases as directories and as tarballs: one with symlinks to the canaries, one with files and a directory in the way. */
const BASES = ['links', 'links.tar', 'nondirs', 'nondirs.tar'];

beforeAll(async () => {
  work = tmpDir('sw-hostile-links-');
  ({ cvmfs, base: baseDir } = await ensureExample());
  for (const c of CANARIES) {
    fs.mkdirSync(path.join(work, c));
    fs.writeFileSync(path.join(work, c, 'keep'), 'canary\n');
  }
  sh(`cp -a '${baseDir}' links && cp -a '${baseDir}' nondirs`);
  const link = (name: string, canary: string) => fs.symlinkSync(path.join(work, canary), path.join(work, 'links', name));
  link('.shrinkwrap', 'canary-shrinkwrap');
  link('.singularity.d', 'canary-singularity');
  link('cvmfs', 'canary-cvmfs');
  link('lustre', 'canary-mount');
  for (const f of ['.shrinkwrap', '.singularity.d', 'cvmfs', 'lustre']) fs.writeFileSync(path.join(work, 'nondirs', f), 'in the way\n');
  // A directory where shrinkwrap writes a file: replaced, and its old content must not reappear (or be whited out below a file).
  fs.mkdirSync(path.join(work, 'nondirs/release_setup.sh'));
  fs.writeFileSync(path.join(work, 'nondirs/release_setup.sh/old'), 'old\n');
  sh('tar -C links -cf links.tar . && tar -C nondirs -cf nondirs.tar .');
});

afterAll(() => {
  if (work) execFileSync('rm', ['-rf', work]);
});

/** `tar -tv` lines as [type letter, image path]. */
function tarEntries(listing: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of listing.split('\n')) {
    if (line === '') continue;
    const m = /^(\S)\S*\s+\S+\s+\d+(?:,\s*\d+)?\s+\S+\s+\S+\s+(.*)$/.exec(line);
    if (!m) throw new Error(`cannot parse tar listing line: ${line}`);
    const name = m[2]!.replace(/ -> .*$/, '').replace(/ link to .*$/, '').replace(/^\.\//, '').replace(/\/$/, '');
    if (name === '.' || name === '') continue;
    out.push([m[1]!, '/' + name]);
  }
  return out;
}

/**
 * Apply the layers the way the OCI spec says (an entry replaces a non-directory or a directory of
 * another type, whiteouts delete lower entries) and report every entry that would land below
 * something that is not a directory at that moment.
 */
function applyLayers(layers: Array<Array<[string, string]>>): { state: Map<string, string>; problems: string[] } {
  const state = new Map<string, string>([['/', 'd']]);
  const problems: string[] = [];
  const removeTree = (p: string) => {
    for (const k of [...state.keys()]) if (k === p || k.startsWith(p + '/')) state.delete(k);
  };
  layers.forEach((entries, i) => {
    for (const [type, p] of entries) {
      const parts = p.split('/').slice(1, -1);
      for (let n = 1; n <= parts.length; n++) {
        const a = '/' + parts.slice(0, n).join('/');
        if (state.get(a) !== 'd') problems.push(`layer ${i + 1}: ${p} below ${a} (${state.get(a) ?? 'missing'})`);
      }
      const dir = path.posix.dirname(p);
      const name = path.posix.basename(p);
      if (name === '.wh..wh..opq') {
        for (const k of [...state.keys()]) if (k.startsWith(dir + '/')) state.delete(k);
      } else if (name.startsWith('.wh.')) {
        removeTree(path.posix.join(dir, name.slice(4)));
      } else {
        const had = state.get(p);
        if (had !== undefined && !(had === 'd' && type === 'd')) removeTree(p);
        state.set(p, type);
      }
    }
  });
  return { state, problems };
}

function layerListings(layout: string): Array<Array<[string, string]>> {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(path.join(layout, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  return manifest.layers.map((l: { digest: string; mediaType: string }) => {
    // A tarball base's layer is kept as it is: uncompressed.
    const decomp = /gzip$/.test(l.mediaType) ? 'gzip -dc' : /zstd$/.test(l.mediaType) ? 'zstd -qdc' : 'cat';
    return tarEntries(sh(`${decomp} < '${path.join(layout, 'blobs/sha256', l.digest.slice(7))}' | tar -tvf - --numeric-owner`));
  });
}

/** What every image must show, whatever was in the base's way: the generated tree as real directories and files. */
function expectGeneratedTree(typeOf: (p: string) => string | undefined, base: string): void {
  for (const d of ['/.shrinkwrap', '/.shrinkwrap/specs', '/.singularity.d', '/.singularity.d/env', '/cvmfs', '/cvmfs/atlas.cern.ch', '/lustre']) expect(typeOf(d), `${base}: ${d}`).toBe('d');
  for (const f of ['/.shrinkwrap/plan.json', '/.shrinkwrap/provenance.json', '/.singularity.d/env/90-shrinkwrap-release.sh', '/release_setup.sh']) expect(typeOf(f), `${base}: ${f}`).toBe('-');
  expect(typeOf('/release_setup.sh/old'), `${base}: the base's directory content`).toBeUndefined();
}

/** The type letter of a host path, without following a link; undefined if absent (or below a non-directory). */
function hostType(p: string): string | undefined {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(p);
  } catch {
    return undefined;
  }
  return st.isDirectory() ? 'd' : st.isFile() ? '-' : st.isSymbolicLink() ? 'l' : '?';
}

describe('case 1: base symlinks and files where shrinkwrap writes its own entries are replaced, never followed', () => {
  it('--format dir writes nothing through them', () => {
    for (const base of BASES) {
      const out = path.join(work, `${base}.d`);
      const r = build(['--base', base, '--format', 'dir', '-o', out]);
      expectCanariesUntouched();
      expect(r.warnings.filter((w) => w.kind === 'base-conflict').length, base).toBeGreaterThanOrEqual(4);
      expectGeneratedTree((p) => hostType(out + p), base);
    }
  });

  it('--format squashfs holds no entry below a non-directory and verifies', () => {
    if (!canRun(hasCommand('unsquashfs'), 'squashfs consumers', 'unsquashfs is not installed')) return;
    for (const base of BASES) {
      const out = path.join(work, `${base}.sqfs`);
      build(['--base', base, '-o', out]);
      expectCanariesUntouched();
      const types = new Map<string, string>();
      for (const line of unsquashfsListing(out)) {
        // "perms uid/gid size date time /path[ -> target]"
        types.set(line.split(' ').slice(5).join(' ').replace(/ -> .*$/, ''), line[0]!);
      }
      for (const p of types.keys()) if (p !== '/') expect(types.get(path.posix.dirname(p)), `${base}: parent of ${p}`).toBe('d');
      expectGeneratedTree((p) => types.get(p), base);
      const v = shrinkwrap(['verify', out], { env: ENV });
      expect(v.code, v.stdout + v.stderr).toBe(0);
    }
  });

  it('--format oci: applied layer by layer, no entry lands below a link or a file; umoci agrees', () => {
    if (!canRun(['umoci', 'tar', 'gzip'].every(hasCommand), 'OCI consumers', 'umoci is not installed')) return;
    for (const base of BASES) {
      const out = path.join(work, `${base}.oci`);
      build(['--base', base, '--format', 'oci', '-o', out]);
      const { state, problems } = applyLayers(layerListings(out));
      expect(problems, base).toEqual([]);
      expectGeneratedTree((p) => state.get(p), base);
      const unpacked = path.join(work, `${base}.unpacked`);
      sh(`umoci unpack ${isRoot ? '' : '--rootless'} --image '${out}:latest' '${unpacked}' >/dev/null`);
      expectCanariesUntouched();
      expectGeneratedTree((p) => hostType(path.join(unpacked, 'rootfs') + p), base);
    }
  });

  it('the dir writer refuses an entry below a link it did not create, whatever the composer passes it', async () => {
    const canary = path.join(work, 'canary-shrinkwrap');
    const entry = (p: string, type: Entry['type'], more: Partial<Entry> = {}): Entry => ({ path: p, type, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, reason: 'test', ...more });
    const src = path.join(work, 'payload-file');
    fs.writeFileSync(src, 'x');
    const entries = [entry('/', 'dir'), entry('/a', 'symlink', { target: canary, size: canary.length }), entry('/a/b', 'file', { size: 1, source: src })];
    const out = path.join(work, 'writer-below-link');
    await expect(writeDir(entries, out, { keepOwnership: false }, new Diagnostics())).rejects.toThrow(/\/a\/b does not follow its parent directory/);
    expectCanariesUntouched();
    // A hard link whose "first name" runs through that link would link a host file into the image.
    const viaLink = [entry('/', 'dir'), entry('/a', 'symlink', { target: canary, size: canary.length }), entry('/z', 'hardlink', { target: '/a/keep' })];
    const out2 = path.join(work, 'writer-link-via-link');
    await expect(writeDir(viaLink, out2, { keepOwnership: false }, new Diagnostics())).rejects.toThrow(/hard link \/z -> \/a\/keep: no such first name in the image/);
    expect(fs.statSync(path.join(canary, 'keep')).nlink).toBe(1);
  });
});

describe('case 1, siblings', () => {
  it('a base hard link whose first name a generated file replaced is refused in one line, naming both', () => {
    sh(`cp -a '${baseDir}' hardlink && mkdir hardlink/release_setup.sh && echo old > hardlink/release_setup.sh/old && ln hardlink/release_setup.sh/old hardlink/usr/zz`);
    const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', 'hardlink', '--format', 'dir', '-q', '-o', 'never.d'], { cwd: work, env: ENV });
    expectOneLineError(r, 2, /hard link \/usr\/zz -> \/release_setup\.sh\/old lost its target: the image replaces it/);
    expect(fs.existsSync(path.join(work, 'never.d'))).toBe(false);
  });
});

describe('case 1, siblings (mount points)', () => {
  it('a --mountpoint at or below a file shrinkwrap generates is refused in one line (it was an internal error)', () => {
    for (const m of ['/release_setup.sh/x', '/.shrinkwrap/plan.json']) {
      const out = path.join(work, 'never-mp.sqfs');
      const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', baseDir, '--mountpoint', m, '-q', '-o', out], { cwd: work, env: ENV });
      expectOneLineError(r, 2, `--mountpoint ${m}: ${m.replace(/\/x$/, '')} is a file shrinkwrap writes into the image`);
      expect(fs.readdirSync(work).filter((n) => n.includes('never-mp'))).toEqual([]);
    }
  });
});

describe('case 1, siblings (OCI whiteouts)', () => {
  it('a base directory the payload replaces by a symlink gets no whiteouts below that symlink', () => {
    if (!canRun(['umoci', 'tar'].every(hasCommand), 'OCI consumers', 'umoci is not installed')) return;
    const lib = 'cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/lib';
    sh(`cp -a '${baseDir}' shadowed && mkdir -p shadowed/${lib}/libMissing.so && echo old > shadowed/${lib}/libMissing.so/child && tar -C shadowed -cf shadowed.tar .`);
    const out = path.join(work, 'shadowed.oci');
    build(['--base', 'shadowed.tar', '--format', 'oci', '-o', out]);
    const { state, problems } = applyLayers(layerListings(out));
    expect(problems).toEqual([]);
    expect(state.get(`/${lib}/libMissing.so`)).toBe('l');
    expect(state.get(`/${lib}/libMissing.so/child`)).toBeUndefined();
    sh(`umoci unpack ${isRoot ? '' : '--rootless'} --image '${out}:latest' shadowed.unpacked >/dev/null`);
    expect(fs.lstatSync(path.join(work, 'shadowed.unpacked/rootfs', lib, 'libMissing.so')).isSymbolicLink()).toBe(true);
  });
});

describe('case 8: device nodes of a base are made on the host only with --devices', () => {
  it('a root dir build skips them with a warning unless --devices; images keep them as data', () => {
    if (!canRun(isRoot && hasCommand('mknod'), 'device nodes', 'needs root (mknod)')) return;
    const base = path.join(work, 'devices');
    sh(`cp -a '${baseDir}' devices && mknod -m 0666 devices/dev/sda b 8 0 && mknod -m 0666 devices/dev/null c 1 3`);
    const plain = path.join(work, 'devices-plain.d');
    const r = build(['--base', base, '--format', 'dir', '-o', plain]);
    expect(fs.existsSync(path.join(plain, 'dev/sda'))).toBe(false);
    expect(fs.existsSync(path.join(plain, 'dev/null'))).toBe(false);
    expect(r.warnings.filter((w) => w.kind === 'device-skipped').map((w) => w.message).sort()).toEqual([
      '/dev/null: char device 1,3 skipped (--devices creates device nodes)',
      '/dev/sda: block device 8,0 skipped (--devices creates device nodes)',
    ]);
    const asked = path.join(work, 'devices-asked.d');
    build(['--base', base, '--format', 'dir', '--devices', '-o', asked]);
    const st = fs.lstatSync(path.join(asked, 'dev/sda'));
    expect(st.isBlockDevice()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o666);
    // SquashFS (and OCI) record the nodes as the base has them: data in an image, made by the runtime that mounts it.
    const img = path.join(work, 'devices.sqfs');
    build(['--base', base, '-o', img]);
    expect(unsquashfsListing(img).filter((l) => l.includes('/dev/sda'))).toEqual([expect.stringMatching(/^brw-rw-rw- 0\/0 8,0 .* \/dev\/sda$/)]);
    expectOneLineError(shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '--devices', '-o', path.join(work, 'never.sqfs')], { cwd: work, env: ENV }), 2, /--devices needs --format dir/);
    expect(spawnSync('ls', [path.join(work, 'never.sqfs')]).status).not.toBe(0);
  });
});

describe('sibling of case 8: setuid, setgid and file capabilities of a base are made on the host only with --keep-setuid', () => {
  it('a dir build leaves them out with a warning each unless --keep-setuid; images keep them as data', () => {
    if (!canRun(isRoot && hasCommand('setfattr') && hasCommand('getfattr'), 'setuid and capabilities', 'needs root, setfattr and getfattr')) return;
    const base = path.join(work, 'setuid');
    sh(`cp -a '${baseDir}' setuid && mkdir -p setuid/usr/bin && printf x > setuid/usr/bin/pkexec && chmod 4755 setuid/usr/bin/pkexec && printf x > setuid/usr/bin/wall && chmod 2755 setuid/usr/bin/wall && printf x > setuid/usr/bin/ping && mkdir -m 2775 setuid/srv`);
    // cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2).
    sh(`setfattr -n security.capability -v 0x0000000200200000000000000000000000000000 setuid/usr/bin/ping`);
    const plain = path.join(work, 'setuid-plain.d');
    const r = build(['--base', base, '--format', 'dir', '-o', plain]);
    const mode = (p: string) => fs.lstatSync(path.join(plain, p)).mode & 0o7777;
    expect([mode('usr/bin/pkexec'), mode('usr/bin/wall'), mode('srv')]).toEqual([0o755, 0o755, 0o2775]);
    expect(spawnSync('getfattr', ['-n', 'security.capability', path.join(plain, 'usr/bin/ping')]).status).not.toBe(0);
    expect(r.warnings.filter((w) => w.kind === 'setuid-dropped').map((w) => w.message).sort()).toEqual([
      '/usr/bin/ping: file capabilities left out (--keep-setuid keeps them)',
      '/usr/bin/pkexec: setuid bit left out (--keep-setuid keeps them)',
      '/usr/bin/wall: setgid bit left out (--keep-setuid keeps them)',
    ]);
    const kept = path.join(work, 'setuid-kept.d');
    build(['--base', base, '--format', 'dir', '--keep-setuid', '-o', kept]);
    expect(fs.lstatSync(path.join(kept, 'usr/bin/pkexec')).mode & 0o7777).toBe(0o4755);
    expect(sh(`getfattr -e hex -n security.capability '${path.join(kept, 'usr/bin/ping')}'`)).toContain('0x0000000200200000');
    const img = path.join(work, 'setuid.sqfs');
    build(['--base', base, '-o', img]);
    expect(unsquashfsListing(img).filter((l) => l.endsWith('/usr/bin/pkexec'))).toEqual([expect.stringMatching(/^-rwsr-xr-x /)]);
    expectOneLineError(shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '--keep-setuid', '-o', path.join(work, 'never2.sqfs')], { cwd: work, env: ENV }), 2, /--keep-setuid needs --format dir/);
  });
});

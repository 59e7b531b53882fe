// Trying to break a build: bad inputs of every kind (one row each: exact exit status, a one-line
// message naming the culprit, nothing written), a full or read-only destination, builds killed
// with SIGKILL at random moments, SIGINT/SIGTERM, and determinism across formats, working
// directories, time zones and the creation order of the source.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { CLI, type Run, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { findListing } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
let cvmfs: string;
let baseDir: string;
const RELEASE = ['--release', 'AnalysisBase,21.2.75'];
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };

/** The CLI without blocking this process: for servers that run inside the test. */
function shrinkwrapAsync(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: ENV, cwd: work });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function spawnSyncOut(cmd: string[]): Run {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'latin1', env: ENV, cwd: '/' });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

beforeAll(async () => {
  work = tmpDir('sw-robust-');
  ({ cvmfs, base: baseDir } = await ensureExample());
  // Inputs for the battery.
  fs.writeFileSync(path.join(work, 'bad.spec'), '/repo/sw\nrepo/no-slash\n');
  fs.writeFileSync(path.join(work, 'bad.trace'), '"1600000000.0","/cvmfs/atlas.cern.ch/x"\nnot,a,trace,line,at,all\n');
  fs.writeFileSync(path.join(work, 'bad.recipe'), 'name atlas-test\nversion (((\n');
  fs.writeFileSync(path.join(work, 'releases.txt'), 'AnalysisBase,21.2.75\nAnalysisBase 21.2.75 extra\n');
  fs.writeFileSync(path.join(work, 'garbage.tar'), 'this is not a tar archive, not even close'.repeat(20));
  execFileSync('sh', ['-c', `tar -C '${baseDir}' -czf full.tar.gz . && head -c 4000 full.tar.gz > truncated.tar.gz`], { cwd: work });
  // Cut 100 bytes before the end of its one zstd frame: node:zlib's decoder (Node >= 22.15) takes that silently.
  if (hasCommand('zstd')) execFileSync('sh', ['-c', `tar -C '${baseDir}' -cf - . | zstd -q -c > full.tar.zst && head -c $(( $(stat -c %s full.tar.zst) - 100 )) full.tar.zst > truncated.tar.zst`], { cwd: work });
  // An OCI layout of the base, then damaged copies of it.
  if (hasCommand('umoci')) {
    execFileSync('sh', ['-c', `umoci init --layout good && umoci new --image good:t && umoci unpack --rootless --image good:t b && rm -rf b/rootfs && cp -a '${baseDir}' b/rootfs && umoci repack --image good:t b && rm -rf b`], { cwd: work });
    const index = JSON.parse(fs.readFileSync(path.join(work, 'good/index.json'), 'utf8'));
    const blob = (d: string, dir = 'good') => path.join(work, dir, 'blobs/sha256', d.slice(7));
    const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
    execFileSync('cp', ['-a', 'good', 'missing-blob'], { cwd: work });
    fs.rmSync(blob(manifest.layers[0].digest, 'missing-blob'));
    execFileSync('cp', ['-a', 'good', 'wrong-digest'], { cwd: work });
    fs.appendFileSync(blob(manifest.layers[0].digest, 'wrong-digest'), 'x');
    // Unknown media type: a rewritten manifest, correctly digested, so that only the type is wrong.
    execFileSync('cp', ['-a', 'good', 'unknown-type'], { cwd: work });
    const bad = Buffer.from(JSON.stringify({ ...manifest, layers: [{ ...manifest.layers[0], mediaType: 'application/x-tarball-of-doom' }] }));
    const d = crypto.createHash('sha256').update(bad).digest('hex');
    fs.writeFileSync(path.join(work, 'unknown-type/blobs/sha256', d), bad);
    fs.writeFileSync(path.join(work, 'unknown-type/index.json'), JSON.stringify({ ...index, manifests: [{ ...index.manifests[0], digest: `sha256:${d}`, size: bad.length }] }));
    // A zstd layer cut in half, correctly described: only decompressing it can tell.
    execFileSync('cp', ['-a', 'good', 'zstd-cut'], { cwd: work });
    const tar = execFileSync('gzip', ['-dc', blob(manifest.layers[0].digest)], { maxBuffer: 1 << 28 });
    const zst = execFileSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 28 });
    const cut = zst.subarray(0, Math.floor(zst.length / 2));
    const cutDigest = crypto.createHash('sha256').update(cut).digest('hex');
    fs.writeFileSync(path.join(work, 'zstd-cut/blobs/sha256', cutDigest), cut);
    const zman = Buffer.from(JSON.stringify({ ...manifest, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: `sha256:${cutDigest}`, size: cut.length }] }));
    const zd = crypto.createHash('sha256').update(zman).digest('hex');
    fs.writeFileSync(path.join(work, 'zstd-cut/blobs/sha256', zd), zman);
    fs.writeFileSync(path.join(work, 'zstd-cut/index.json'), JSON.stringify({ ...index, manifests: [{ ...index.manifests[0], digest: `sha256:${zd}`, size: zman.length }] }));
    // A base tarball with an empty file (most real bases have some) and a PAX uid that is not a number.
    execFileSync('python3', ['-c', `import tarfile, io
t = tarfile.open('empty-file.tar', 'w', format=tarfile.PAX_FORMAT)
d = tarfile.TarInfo('etc'); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
t.addfile(tarfile.TarInfo('etc/empty'), io.BytesIO(b''))
i = tarfile.TarInfo('etc/x'); i.size = 1; t.addfile(i, io.BytesIO(b'x'))
t.close()
t = tarfile.open('nan-uid.tar', 'w', format=tarfile.PAX_FORMAT)
i = tarfile.TarInfo('f'); i.pax_headers = {'uid': 'abc'}; t.addfile(i, io.BytesIO(b''))
t.close()`], { cwd: work });
  }
});

afterAll(() => execFileSync('rm', ['-rf', work]));

describe('bad input battery', () => {
  const out = () => path.join(work, 'never.sqfs');
  // [case, arguments, exit status, what the message must name]
  const rows: Array<[string, () => string[], number, RegExp]> = [
    ['malformed spec line', () => ['--cvmfs-root', cvmfs, '--spec', path.join(work, 'bad.spec'), '--repo', 'atlas.cern.ch', '-o', out()], 2, /bad\.spec:2: invalid spec line 'repo\/no-slash'/],
    ['missing spec file', () => ['--cvmfs-root', cvmfs, '--spec', path.join(work, 'nope.spec'), '-o', out()], 2, /nope\.spec/],
    ['malformed trace', () => ['--cvmfs-root', cvmfs, '--trace', path.join(work, 'bad.trace'), '--trace-format', 'cvmfs', '--repo', 'atlas.cern.ch', '-o', out()], 2, /bad\.trace:1: expected 4 fields/],
    ['unknown release', () => ['--cvmfs-root', cvmfs, '--release', 'AnalysisBase,99.9.9', '-o', out()], 2, /99\.9\.9/],
    ['release name syntax', () => ['--cvmfs-root', cvmfs, '--release', 'Analysis Base', '-o', out()], 2, /--release Analysis Base/],
    ['releases file line', () => ['--cvmfs-root', cvmfs, '--releases-file', path.join(work, 'releases.txt'), '-o', out()], 2, /releases\.txt:2/],
    ['malformed recipe', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--recipe', path.join(work, 'bad.recipe'), '-o', out()], 2, /bad\.recipe:\d/],
    ['missing source root', () => ['--cvmfs-root', path.join(work, 'no-cvmfs'), ...RELEASE, '-o', out()], 2, /no-cvmfs/],
    ['base that is not a tar', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', path.join(work, 'garbage.tar'), '-o', out()], 2, /garbage\.tar: header at byte 0: bad checksum/],
    ['truncated base tarball', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', path.join(work, 'truncated.tar.gz'), '-o', out()], 2, /truncated\.tar\.gz: (corrupt gzip data|truncated)/],
    ['missing base', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', path.join(work, 'no-base'), '-o', out()], 2, /--base .*no-base: no such file or directory/],
    ['OCI layout missing a blob', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(work, 'missing-blob')}:t`, '-o', out()], 2, /missing-blob:t: layer 1 sha256:[0-9a-f]+: missing blob/],
    ['OCI blob with a wrong digest', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(work, 'wrong-digest')}:t`, '-o', out()], 2, /wrong-digest:t: layer 1 sha256:[0-9a-f]+ is \d+ bytes, its descriptor says \d+/],
    ['OCI layer of unknown media type', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(work, 'unknown-type')}:t`, '-o', out()], 2, /unknown media type 'application\/x-tarball-of-doom'/],
    ['OCI tag that is not there', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(work, 'good')}:nope`, '-o', out()], 2, /no image tagged 'nope' \(tags: t\)/],
    ['truncated zstd base tarball', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', path.join(work, 'truncated.tar.zst'), '-o', out()], 2, /truncated\.tar\.zst: corrupt zstd data \(truncated: the data ends inside a frame, after \d+ bytes\)/],
    ['truncated zstd layer', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(work, 'zstd-cut')}:t`, '-o', out()], 2, /zstd-cut:t: layer 1 \(sha256:[0-9a-f]+\): corrupt zstd data/],
    ['PAX uid that is not a number', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', path.join(work, 'nan-uid.tar'), '-o', out()], 2, /nan-uid\.tar: header at byte \d+: PAX uid=abc is not a number/],
    ['docker-archive that is not one', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `docker-archive:${path.join(work, 'full.tar.gz')}`, '-o', out()], 2, /full\.tar\.gz: (manifest 'manifest\.json' is not in the archive|header at byte 0)/],
    ['platform the image is not', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(work, 'good')}:t`, '--platform', 'linux/arm64', '-o', out()], 2, /is linux\/amd64, not linux\/arm64/],
    ['registry refusing connections', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', 'docker://127.0.0.1:9/x/y:1', '--tls-verify', 'false', '-o', out()], 1, /docker:\/\/127\.0\.0\.1:9\/x\/y:1: connection refused/],
    ['bad image reference', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', 'docker://Bad/Ref', '-o', out()], 2, /docker:\/\/Bad\/Ref: invalid image reference/],
    ['--push without --format oci', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--push', 'docker://127.0.0.1:9/a:b', '-o', out()], 2, /--push needs --format oci/],
    ['xz for OCI layers', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--format', 'oci', '--compression', 'xz', '-o', out()], 2, /--compression xz: OCI layers are gzip/],
    ['--level with no compression', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--compression', 'none', '--level', '3', '-o', out()], 2, /--level makes no sense with --compression none/],
    ['lz4', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--compression', 'lz4', '-o', out()], 2, /lz4/],
    ['block size', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--block-size', '3K', '-o', out()], 2, /--block-size 3K/],
    ['mount point inside /cvmfs', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--mountpoint', '/cvmfs/x', '-o', out()], 2, /--mountpoint \/cvmfs\/x/],
    ['unknown format', () => ['--cvmfs-root', cvmfs, ...RELEASE, '--format', 'vhd', '-o', out()], 2, /vhd/],
    ['output directory missing', () => ['--cvmfs-root', cvmfs, ...RELEASE, '-o', path.join(work, 'no-dir/x.sqfs')], 2, /no-dir/],
  ];
  for (const [name, args, code, culprit] of rows) {
    it(`${name}: exit ${code}, one line naming it, nothing written`, () => {
      if (/OCI|platform|zstd layer/.test(name) && !canRun(hasCommand('umoci'), name, 'umoci builds the layouts')) return;
      if (/zstd/.test(name) && !canRun(hasCommand('zstd'), name, 'the zstd command makes the zstd inputs')) return;
      const before = fs.readdirSync(work).sort();
      const r = shrinkwrap(args(), { env: ENV, cwd: work });
      expectOneLineError(r, code, culprit);
      expect(fs.readdirSync(work).sort()).toEqual(before);
    });
  }

  describe('registry errors (a server in this process: the CLI runs without blocking)', () => {
    let server: http.Server;
    let port: number;
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        const url = req.url ?? '';
        if (url === '/v2/') return void res.writeHead(200).end('{}');
        if (url.includes('/unauthorized/')) return void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="test"' }).end();
        if (url.includes('/missing/')) return void res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
        if (url.includes('/broken/')) return void res.writeHead(500).end('boom');
        // /slow/: never answers (the client's timeout must end it)
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => {
      server.closeAllConnections();
      server.close();
    });
    const cases: Array<[string, number, RegExp]> = [
      ['unauthorized', 2, /authentication required/],
      ['missing', 2, /manifest unknown \(404\)/],
      ['broken', 1, /registry error 500/],
    ];
    for (const [repo, code, message] of cases) {
      it(`${repo}: exit ${code}, one line naming the reference`, async () => {
        const ref = `docker://127.0.0.1:${port}/${repo}/img:1`;
        const r = await shrinkwrapAsync(['--cvmfs-root', cvmfs, ...RELEASE, '--base', ref, '--tls-verify', 'false', '-o', path.join(work, 'never.sqfs')]);
        expectOneLineError(r, code, message);
        expect(r.stderr).toContain(ref);
        expect(fs.existsSync(path.join(work, 'never.sqfs'))).toBe(false);
      });
    }
    it('a registry that never answers: a timeout, not a hang', async () => {
      const r = await shrinkwrapAsync(['--cvmfs-root', cvmfs, ...RELEASE, '--base', `docker://127.0.0.1:${port}/slow/img:1`, '--tls-verify', 'false', '--registry-timeout', '2', '-o', path.join(work, 'never.sqfs')]);
      expectOneLineError(r, 1, /no response within 2 s/);
    });
  });
});

describe('layered bases into every format', () => {
  it('an empty file in a base layer is an empty file in a dir image', () => {
    const out = path.join(work, 'empty-dir-img');
    const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', path.join(work, 'empty-file.tar'), '--format', 'dir', '-o', out, '-q'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.statSync(path.join(out, 'etc/empty')).size).toBe(0);
    expect(fs.readFileSync(path.join(out, 'etc/x'), 'utf8')).toBe('x');
  });
});

describe('faults in the source', () => {
  let src: string;
  let spec: string;
  beforeAll(() => {
    src = path.join(work, 'faulty');
    const d = path.join(src, 'r.x/d');
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'locked'), 'secret');
    fs.mkdirSync(path.join(d, 'lockeddir'));
    fs.writeFileSync(path.join(d, 'lockeddir/f'), 'x');
    fs.symlinkSync('loopb', path.join(d, 'loopa'));
    fs.symlinkSync('loopa', path.join(d, 'loopb'));
    fs.writeFileSync(Buffer.from(`${d}/new\nline`), 'n');
    fs.writeFileSync(Buffer.concat([Buffer.from(`${d}/bad`), Buffer.from([0xff, 0xfe]), Buffer.from('name')]), 'b');
    fs.writeFileSync(path.join(d, 'ok'), 'ok');
    fs.chmodSync(path.join(d, 'locked'), 0o000);
    fs.chmodSync(path.join(d, 'lockeddir'), 0o000);
    spec = path.join(work, 'r.x.spec');
    fs.writeFileSync(spec, '/*\n');
  });

  it.runIf(canRun(isRoot && hasCommand('runuser'), 'unreadable-source tests', 'needs root to run the build as nobody'))('unreadable files and directories fail the build naming them, or are left out with --skip-unreadable', () => {
    const out = fs.mkdtempSync(path.join(work, 'nobody-'));
    fs.chmodSync(work, 0o755);
    fs.chmodSync(out, 0o777);
    const fail = spawnSyncOut(['runuser', '-u', 'nobody', '--', process.execPath, CLI, '--cvmfs-root', src, '--spec', spec, '-o', `${out}/img.sqfs`, '-q']);
    expectOneLineError(fail, 1, /cannot read .*\/r\.x\/d\/locked: permission denied \(mode 000, owner 0:0\); run as a user who can, or give --skip-unreadable/);
    expect(fs.readdirSync(out)).toEqual([]);
    const skip = spawnSyncOut(['runuser', '-u', 'nobody', '--', process.execPath, CLI, '--cvmfs-root', src, '--spec', spec, '-o', `${out}/img.sqfs`, '--skip-unreadable', '--json']);
    expect(skip.code, skip.stderr).toBe(0);
    const report = JSON.parse(skip.stdout);
    expect(report.warnings.filter((w: { kind: string }) => w.kind === 'unreadable-skipped').map((w: { message: string }) => w.message.replace(/:.*/, '').replace(/.*\//, ''))).toEqual(['locked', 'lockeddir']);
    const listing = execFileSync('unsquashfs', ['-l', `${out}/img.sqfs`], { encoding: 'latin1' });
    expect(listing).toContain('r.x/d/ok');
    expect(listing).not.toContain('locked');
    expect(listing).toContain('r.x/d/new\nline');
    expect(listing).toContain('r.x/d/bad\xff\xfename');
  });

  it('a symlink loop is kept as links with a warning; names with newlines and bytes that are not UTF-8 survive every format', () => {
    for (const [fmt, out] of [['squashfs', 'names.sqfs'], ['dir', 'names-dir'], ['oci', 'names-oci']] as const) {
      const r = shrinkwrap(['--cvmfs-root', src, '--spec', spec, '--exclude', 'lockeddir', '--exclude', 'locked', '--format', fmt, '-o', path.join(work, out)], { env: ENV });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/loopa -> loopb: too many levels of symbolic links; kept as a link/);
    }
    const names = fs.readdirSync(Buffer.from(path.join(work, 'names-dir/r.x/d')), { encoding: 'buffer' }).map((b) => b.toString('latin1')).sort();
    expect(names).toEqual(['bad\xff\xfename', 'loopa', 'loopb', 'new\nline', 'ok']);
    expect(execFileSync('unsquashfs', ['-l', path.join(work, 'names.sqfs')], { encoding: 'latin1' })).toContain('r.x/d/bad\xff\xfename');
    if (hasCommand('umoci')) {
      execFileSync('umoci', ['unpack', '--rootless', '--image', `${path.join(work, 'names-oci')}:latest`, path.join(work, 'names-bundle')]);
      const unpacked = fs.readdirSync(Buffer.from(path.join(work, 'names-bundle/rootfs/cvmfs/r.x/d')), { encoding: 'buffer' }).map((b) => b.toString('latin1')).sort();
      expect(unpacked).toEqual(names);
    }
  });

  it('a file that changed size or vanished after selection fails every writer, naming it', async () => {
    const { writeSquashfs } = await import('../../src/writers/squashfs/index.js');
    const { writeDir } = await import('../../src/writers/dir/index.js');
    const { writeLayer } = await import('../../src/writers/tar/layer.js');
    const { Diagnostics } = await import('../../src/model/diagnostics.js');
    const file = path.join(work, 'changing');
    fs.writeFileSync(file, 'twelve bytes');
    const entries = [
      { path: '/', type: 'dir' as const, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, reason: 't' },
      { path: '/f', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 20, source: file, reason: 't' },
    ];
    const diag = new Diagnostics(() => {});
    await expect(writeSquashfs(entries, path.join(work, 'c.sqfs'), { compression: 'gzip', level: 6, blockSize: 131072, mkfsTime: 0, exportTable: true, dedup: true, threads: 0 }, diag)).rejects.toThrow(/changing shrank while being read \(expected 20 bytes, found 12\)/);
    await expect(writeDir(entries, path.join(work, 'c-dir'), { keepOwnership: false }, diag)).rejects.toThrow(/changing changed size while the image was written \(20 bytes when selected, 12 now\)/);
    await expect(writeLayer(entries, path.join(work, 'c.tar'), { compression: 'none', level: 0, threads: 0 }, diag)).rejects.toThrow(/changing shrank while being read/);
    entries[1]!.size = 5;
    await expect(writeSquashfs(entries, path.join(work, 'c2.sqfs'), { compression: 'gzip', level: 6, blockSize: 131072, mkfsTime: 0, exportTable: true, dedup: true, threads: 0 }, diag)).rejects.toThrow(/changing grew while being read \(expected 5 bytes\)/);
    await expect(writeLayer(entries, path.join(work, 'c2.tar'), { compression: 'none', level: 0, threads: 0 }, diag)).rejects.toThrow(/changing grew while being read/);
    // Vanished since selection.
    fs.rmSync(file);
    const gone = /cannot (read|copy) .*changing: no such file or directory \(ENOENT\)/;
    await expect(writeSquashfs(entries, path.join(work, 'c3.sqfs'), { compression: 'gzip', level: 6, blockSize: 131072, mkfsTime: 0, exportTable: true, dedup: true, threads: 0 }, diag)).rejects.toThrow(gone);
    await expect(writeDir(entries, path.join(work, 'c3-dir'), { keepOwnership: false }, diag)).rejects.toThrow(gone);
    await expect(writeLayer(entries, path.join(work, 'c3.tar'), { compression: 'none', level: 0, threads: 0 }, diag)).rejects.toThrow(gone);
  });
});

describe.runIf(canRun(isRoot, 'scale-edge tests', 'a tmpfs (ext4 stops at 65,000 links per inode) needs root'))('edges of scale', () => {
  it('a path longer than PATH_MAX is reported, naming it, before anything is written', () => {
    const src = path.join(work, 'deep-src');
    execFileSync('rm', ['-rf', src]);
    fs.mkdirSync(path.join(src, 'r.deep'), { recursive: true });
    const name = 'd'.repeat(200);
    execFileSync('bash', ['-c', `cd '${src}/r.deep' && for i in $(seq 22); do mkdir ${name} && cd ${name}; done && echo hi > file`]);
    fs.writeFileSync(path.join(work, 'r.deep.spec'), '/*\n');
    const r = shrinkwrap(['--cvmfs-root', src, '--spec', path.join(work, 'r.deep.spec'), '-o', path.join(work, 'deep.sqfs'), '-q'], { env: ENV });
    expectOneLineError(r, 1, /deep-src\/r\.deep\/d+…d+: a path of 4\d{3} bytes, longer than PATH_MAX \(4096\)/);
    expect(fs.existsSync(path.join(work, 'deep.sqfs'))).toBe(false);
    execFileSync('rm', ['-rf', src]); // GNU rm walks with openat; Node cannot remove a path this long
  });

  it('a directory of 100,000 entries and a file with 70,000 hard links, in squashfs (kernel), dir and OCI', () => {
    const mnt = fs.mkdtempSync(path.join(work, 'big-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2g,nr_inodes=0', 'tmpfs', mnt]);
    try {
      const many = path.join(mnt, 'src/r.many/many');
      const links = path.join(mnt, 'src/r.many/links');
      fs.mkdirSync(many, { recursive: true });
      fs.mkdirSync(links, { recursive: true });
      for (let i = 0; i < 100_000; i++) fs.writeFileSync(path.join(many, `e${i}`), '');
      fs.writeFileSync(path.join(links, 'target'), 'one inode, many names');
      for (let i = 0; i < 70_000; i++) fs.linkSync(path.join(links, 'target'), path.join(links, `l${i}`));
      fs.writeFileSync(path.join(mnt, 'r.many.spec'), '/*\n');
      const build = (fmt: string, out: string) => {
        const r = shrinkwrap(['--cvmfs-root', path.join(mnt, 'src'), '--spec', path.join(mnt, 'r.many.spec'), '--format', fmt, '-o', path.join(mnt, out), '-q'], { env: ENV });
        expect(r.code, r.stderr).toBe(0);
      };
      build('squashfs', 'many.sqfs');
      const m = path.join(mnt, 'm');
      fs.mkdirSync(m);
      execFileSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', path.join(mnt, 'many.sqfs'), m]);
      try {
        expect(fs.readdirSync(path.join(m, 'r.many/many')).length).toBe(100_000);
        expect(fs.statSync(path.join(m, 'r.many/many/e99999')).isFile()).toBe(true);
        expect(fs.statSync(path.join(m, 'r.many/links/l69999')).nlink).toBe(70_001);
        expect(fs.readFileSync(path.join(m, 'r.many/links/l12345'), 'utf8')).toBe('one inode, many names');
      } finally {
        execFileSync('umount', [m]);
      }
      build('dir', 'many-dir');
      expect(fs.statSync(path.join(mnt, 'many-dir/r.many/links/target')).nlink).toBe(70_001);
      expect(fs.readdirSync(path.join(mnt, 'many-dir/r.many/many')).length).toBe(100_000);
      build('oci', 'many-oci');
      const { manifests } = JSON.parse(fs.readFileSync(path.join(mnt, 'many-oci/index.json'), 'utf8'));
      const manifest = JSON.parse(fs.readFileSync(path.join(mnt, 'many-oci/blobs/sha256', manifests[0].digest.slice(7)), 'utf8'));
      const layer = path.join(mnt, 'many-oci/blobs/sha256', manifest.layers[0].digest.slice(7));
      const listing = execFileSync('sh', ['-c', `gzip -dc < '${layer}' | tar -tvf -`], { encoding: 'utf8', maxBuffer: 1 << 28 });
      expect(listing.match(/ cvmfs\/r\.many\/links\/l\d+ link to cvmfs\/r\.many\/links\/l\d+|link to/g)?.length).toBe(70_000);
      expect(listing.match(/ cvmfs\/r\.many\/many\/e\d+\n/g)?.length).toBe(100_000);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe.runIf(canRun(isRoot, 'destination fault tests', 'mounting a tmpfs needs root'))('faults in the destination', () => {
  function withTmpfs(opts: string, fn: (dir: string) => void): void {
    const dir = fs.mkdtempSync(path.join(work, 'mnt-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
    try {
      fn(dir);
    } finally {
      execFileSync('umount', [dir]);
      fs.rmdirSync(dir);
    }
  }
  for (const format of ['squashfs', 'oci', 'dir']) {
    it(`a full disk fails the ${format} build with one line and leaves nothing`, () => {
      withTmpfs('size=600k', (dir) => {
        const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', baseDir, '--format', format, '-o', path.join(dir, 'img'), '-q', '--no-space-check'], { env: ENV });
        expectOneLineError(r, 1, /no space left on device \(ENOSPC\)/);
        expect(fs.readdirSync(dir)).toEqual([]);
      });
    });
  }
  it('a read-only destination fails with one line and leaves nothing', () => {
    withTmpfs('size=10m,ro', (dir) => {
      const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '-o', path.join(dir, 'img.sqfs'), '-q'], { env: ENV });
      expectOneLineError(r, 1, /read-only file system \(EROFS\)/);
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  });
});

describe('interruption', () => {
  function start(args: string[]): ChildProcess {
    return spawn(process.execPath, [CLI, ...args], { env: ENV, cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
  }
  const ended = (c: ChildProcess) => new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => {
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d));
    c.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });

  it('SIGKILL at random moments leaves the previous complete image or none, and the next run cleans up and succeeds', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'kill-'));
    const target = path.join(dir, 'img.sqfs');
    const args = ['--cvmfs-root', cvmfs, ...RELEASE, '--base', baseDir, '-o', target, '--force', '-q', '--threads', '2'];
    // A first complete image to be replaced (or not) by the killed runs.
    expect(shrinkwrap(args, { env: ENV }).code).toBe(0);
    const good = sha256(target);
    for (const delay of [5, 40, 90, 150, 220, 300, 400]) {
      const c = start(args);
      const done = ended(c);
      await new Promise((r) => setTimeout(r, delay));
      c.kill('SIGKILL');
      await done;
      // Either the previous image is in place, whole, or (killed between the two renames) none.
      if (fs.existsSync(target)) expect(sha256(target)).toBe(good);
    }
    const r = shrinkwrap(args, { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(target)).toBe(good);
    expect(fs.readdirSync(dir).sort()).toEqual(['img.sqfs', 'img.sqfs.sha256']); // the killed runs' leftovers are gone
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} stops a build with exit ${code} and removes its temporary output`, async () => {
      const dir = fs.mkdtempSync(path.join(work, 'sig-'));
      // A payload big enough that the write is still going when the signal comes.
      const big = path.join(dir, 'src/r.big');
      fs.mkdirSync(big, { recursive: true });
      for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(big, `f${i}`), crypto.randomBytes(2 << 20));
      fs.writeFileSync(path.join(dir, 'r.big.spec'), '/*\n');
      const c = start(['--cvmfs-root', path.join(dir, 'src'), '--spec', path.join(dir, 'r.big.spec'), '-o', path.join(dir, 'img.sqfs'), '--compression', 'xz', '--level', '9', '--threads', '1', '--progress']);
      const done = ended(c);
      // Wait for the write to begin (the progress line says so), then interrupt.
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (fs.readdirSync(dir).some((n) => n.includes('shrinkwrap-tmp'))) {
            clearInterval(t);
            resolve();
          }
        }, 20);
      });
      c.kill(signal);
      const r = await done;
      expect(r.code).toBe(code);
      expect(r.stderr).toContain(`interrupted by ${signal}; temporary output removed`);
      expect(fs.readdirSync(dir).sort()).toEqual(['r.big.spec', 'src']);
    });
  }
});

describe.runIf(canRun(['umoci', 'skopeo'].every(hasCommand), 'determinism tests', 'umoci and skopeo are needed'))('determinism', () => {
  it('every format is the same, byte for byte, from another cwd, time zone and source creation order', () => {
    // A copy of the source whose entries were created in reverse order (same contents, times, links).
    const copy = path.join(work, 'cvmfs-reversed');
    fs.mkdirSync(copy);
    const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: cvmfs, encoding: 'utf8' }).split('\n').filter(Boolean).reverse();
    fs.writeFileSync(path.join(work, 'reversed.list'), list.join('\n') + '\n');
    execFileSync('sh', ['-c', `tar -C '${cvmfs}' -cf - --no-recursion -T '${path.join(work, 'reversed.list')}' | tar -C '${copy}' -xpf - && touch -r '${cvmfs}' '${copy}'`]);
    expect(findListing(copy)).toEqual(findListing(cvmfs));
    const outputs: Record<string, string[]> = {};
    for (const [i, [src, tz]] of [[cvmfs, 'UTC'], [copy, 'America/Chicago']].entries()) {
      const cwd = fs.mkdtempSync(path.join(work, `det-${i}-`));
      const env = { ...ENV, TZ: tz };
      // The source root's absolute path is recorded in the provenance (an input, as its contents
      // are): give both the same path, a link repointed between the runs.
      const link = path.join(work, 'det-src');
      fs.rmSync(link, { force: true });
      fs.symlinkSync(src, link);
      outputs[i] = [];
      const sq = shrinkwrap(['--cvmfs-root', link, ...RELEASE, '--base', baseDir, '-o', 'img.sqfs', '-q', '--threads', String(i + 1)], { env, cwd });
      expect(sq.code, sq.stderr).toBe(0);
      outputs[i]!.push(sha256(path.join(cwd, 'img.sqfs')));
      for (const [fmt, out] of [['docker-archive', 'img.tar'], ['oci', 'img-oci']] as const) {
        const r = shrinkwrap(['--cvmfs-root', link, ...RELEASE, '--base', baseDir, '--format', fmt, '-o', out, '-q', '--threads', String(i + 1), '--tag', 'det:1'], { env, cwd });
        expect(r.code, r.stderr).toBe(0);
      }
      outputs[i]!.push(sha256(path.join(cwd, 'img.tar')), fs.readFileSync(path.join(cwd, 'img-oci/index.json'), 'utf8'));
    }
    expect(outputs[1]).toEqual(outputs[0]);
  });
});

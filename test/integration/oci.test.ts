// OCI and docker-archive images, and base images in every form, checked by the real consumers:
// umoci unpack (which checks diff_ids), oci-image-tool validate, skopeo inspect/copy, GNU tar on
// every layer, and a chroot into the unpacked image that sources /release_setup.sh and runs the
// release's binary. Malicious base layers must be refused without writing outside the output.
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { RECORDS_INPUTS, diffTrees, findListing } from '../helpers/consumers.js';
import { type Registry, startRegistry } from '../helpers/registry.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
let cvmfs: string;
let baseDir: string;
const RELEASE = ['--release', `AnalysisBase,21.2.75`];
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };
const tools = ['umoci', 'skopeo', 'oci-image-tool', 'python3'].every(hasCommand);

function sh(cmd: string, cwd = work): string {
  return execFileSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', maxBuffer: 1 << 28 });
}

function build(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = shrinkwrap(['--cvmfs-root', cvmfs, ...args], { cwd: opts.cwd ?? work, env: opts.env ?? ENV });
  if (r.code !== 0) throw new Error(`shrinkwrap ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

interface Layout {
  manifest: { layers: Array<{ digest: string; mediaType: string; size: number }>; config: { digest: string }; annotations?: Record<string, string> };
  config: { rootfs: { diff_ids: string[] }; config: { Env: string[]; Labels: Record<string, string> }; history: unknown[] };
  index: { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
}

function readLayout(dir: string): Layout {
  const blob = (d: string) => JSON.parse(fs.readFileSync(path.join(dir, 'blobs/sha256', d.slice(7)), 'utf8'));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  const manifest = blob(index.manifests[0].digest);
  return { index, manifest, config: blob(manifest.config.digest) };
}

/** GNU tar lists every layer completely (it notices a missing end of archive that validators miss). */
function tarListEveryLayer(dir: string): string[] {
  const { manifest } = readLayout(dir);
  return manifest.layers.map((l) => {
    const file = path.join(dir, 'blobs/sha256', l.digest.slice(7));
    const decomp = l.mediaType.endsWith('+gzip') || l.mediaType.endsWith('.gzip') ? 'gzip -dc' : l.mediaType.endsWith('+zstd') ? 'zstd -qdc' : 'cat';
    return sh(`${decomp} < '${file}' | tar -tvf - --numeric-owner`);
  });
}

beforeAll(async () => {
  if (!tools) return;
  work = tmpDir('sw-oci-');
  ({ cvmfs, base: baseDir } = await ensureExample());
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.runIf(canRun(tools, 'OCI tests', 'umoci, skopeo, oci-image-tool and python3 are needed (.ci/run installs them)'))('OCI output', () => {
  it('builds an OCI layout from a directory base that umoci unpacks to exactly the dir build, and that runs after . /release_setup.sh', () => {
    build([...RELEASE, '--base', baseDir, '--format', 'oci', '-o', 'oci-dir', '--tag', 'atlas/analysisbase:21.2.75']);
    build([...RELEASE, '--base', baseDir, '--format', 'dir', '-o', 'tree-dir']);
    expect(sh('oci-image-tool validate --type image oci-dir')).toContain('Validation succeeded');
    sh('umoci unpack --rootless --image oci-dir:21.2.75 bundle-dir');
    // umoci's rootless unpack maps owners to the caller: compare contents and listings without owners.
    // Their provenance differs only in the command (--format oci --tag …).
    expect(diffTrees(path.join(work, 'tree-dir'), path.join(work, 'bundle-dir/rootfs'), RECORDS_INPUTS)).toBe('');
    const provenanceIn = (d: string) => ({ ...JSON.parse(fs.readFileSync(path.join(work, d, '.shrinkwrap/provenance.json'), 'utf8')), command: null });
    expect(provenanceIn('bundle-dir/rootfs')).toEqual(provenanceIn('tree-dir'));
    // Layers describe the root's children, not the root itself: its time is the runtime's business.
    // (provenance.json's size differs with the command recorded in it: compared above.)
    const noOwner = (l: string[]) => l.filter((x) => !x.endsWith('|')).map((x) => x.replace(/^(\S+ \S+) \S+/, '$1').replace(/^(f \d+) \d+( .*\|(\.shrinkwrap\/provenance|\.singularity\.d\/labels)\.json|.*\|\.singularity\.d\/Singularity)$/, '$1 -$2')).sort();
    expect(noOwner(findListing(path.join(work, 'bundle-dir/rootfs'), { nlink: false }))).toEqual(noOwner(findListing(path.join(work, 'tree-dir'), { nlink: false })));
    const { index, manifest, config } = readLayout(path.join(work, 'oci-dir'));
    expect(index.manifests[0]!.annotations).toEqual({ 'io.containerd.image.name': 'atlas/analysisbase:21.2.75', 'org.opencontainers.image.ref.name': '21.2.75' });
    expect(config.rootfs.diff_ids.length).toBe(manifest.layers.length);
    expect(config.config.Labels['io.shrinkwrap.releases']).toBe(`AnalysisBase,21.2.75`);
    expect(config.config.Env).toContain('BASH_ENV=/release_setup.sh');
    const listings = tarListEveryLayer(path.join(work, 'oci-dir'));
    expect(listings[0]).toMatch(/ usr\/bin\//); // the directory base became the first layer
    expect(listings.some((l) => / cvmfs\/atlas\.cern\.ch\/repo\/sw\/software\/21\.2\/AnalysisBase\/21\.2\.75\//.test(l))).toBe(true);
    expect(listings.at(-1)).toMatch(/ release_setup\.sh\n/);
    expect(listings.at(-1)).toMatch(/ \.shrinkwrap\/provenance\.json\n/);
    if (isRoot) {
      const r = spawnSync('chroot', [path.join(work, 'bundle-dir/rootfs'), '/bin/sh', '-c', '. /release_setup.sh && xAODDump'], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`xAODDump: AnalysisBase 21.2.75 OK`);
    }
  });

  it.runIf(canRun(isRoot, 'chroot into the squashfs image', 'needs root'))('writes /release_setup.sh into a squashfs with a base: the release runs after sourcing it', () => {
    const r = build([...RELEASE, '--base', baseDir, '-o', 'ab.sqfs', '--json']);
    expect(sh('sha256sum -c ab.sqfs.sha256')).toContain('ab.sqfs: OK');
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ output: 'ab.sqfs', format: 'squashfs', sha256: sh('sha256sum ab.sqfs').split(' ')[0], bytes: fs.statSync(path.join(work, 'ab.sqfs')).size });
    expect(report.selection.releases).toEqual(['AnalysisBase,21.2.75']);
    expect(report.selection.repositories['atlas.cern.ch'].entries).toBeGreaterThan(100);
    expect(report.warnings.map((w: { kind: string }) => w.kind)).toContain('cvmfs-bind');
    sh('unsquashfs -q -n -d sq-root ab.sqfs');
    const run = spawnSync('chroot', [path.join(work, 'sq-root'), '/bin/sh', '-c', '. /release_setup.sh && xAODDump && echo "$AtlasProject $AtlasVersion"'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('xAODDump: AnalysisBase 21.2.75 OK\nAnalysisBase 21.2.75\n');
    // Asking for a release the image does not have fails, naming the ones it has.
    const bad = spawnSync('chroot', [path.join(work, 'sq-root'), '/bin/sh', '-c', 'SHRINKWRAP_RELEASE=Athena,22.0.1 . /release_setup.sh'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('no release Athena,22.0.1 in this image (has: AnalysisBase,21.2.75)');
    const provenance = JSON.parse(fs.readFileSync(path.join(work, 'sq-root/.shrinkwrap/provenance.json'), 'utf8'));
    expect(provenance.releases).toEqual([expect.objectContaining({ project: 'AnalysisBase', version: '21.2.75' })]);
    expect(provenance.created).toBe('2020-09-13T12:26:40Z');
    const spec = fs.readFileSync(path.join(work, 'sq-root/.shrinkwrap/specs/atlas.cern.ch.spec'), 'utf8');
    expect(spec).toMatch(/^\/repo\/sw\/software\/21\.2\/AnalysisBase\/21\.2\.75\/InstallArea\/x86_64-slc6-gcc62-opt\/\*$/m);
  });

  it('keeps the layers of an oci:, docker-archive: and tarball base byte for byte and adds only the new ones', () => {
    // One base made by umoci, one by shrinkwrap itself; a docker-archive of the umoci one by skopeo.
    sh(`umoci init --layout umoci-base && umoci new --image umoci-base:b && umoci unpack --rootless --image umoci-base:b ub && rm -rf ub/rootfs && cp -a '${baseDir}' ub/rootfs && umoci repack --image umoci-base:b ub`);
    sh('skopeo copy oci:umoci-base:b docker-archive:base-archive.tar:shrinkwrap/base:1');
    sh(`tar -C '${baseDir}' --sort=name --numeric-owner -czf base-rootfs.tar.gz .`);
    const umociBase = readLayout(path.join(work, 'umoci-base'));
    const baseDigests = umociBase.manifest.layers.map((l) => l.digest);
    expect(baseDigests.length).toBeGreaterThan(0);

    build([...RELEASE, '--base', 'oci:umoci-base:b', '--format', 'oci', '-o', 'from-oci']);
    const fromOci = readLayout(path.join(work, 'from-oci'));
    expect(fromOci.manifest.layers.slice(0, baseDigests.length).map((l) => l.digest)).toEqual(baseDigests);
    expect(fromOci.config.rootfs.diff_ids.slice(0, baseDigests.length)).toEqual((JSON.parse(fs.readFileSync(path.join(work, 'umoci-base/blobs/sha256', umociBase.manifest.config.digest.slice(7)), 'utf8')) as Layout['config']).rootfs.diff_ids);
    expect(fromOci.manifest.annotations?.['org.opencontainers.image.base.digest']).toBe(umociBase.index.manifests[0]!.digest);
    sh('umoci unpack --rootless --image from-oci:latest bundle-oci');

    // An image shrinkwrap wrote is a base like any other: its layers are kept too.
    build([...RELEASE, '--base', baseDir, '--format', 'oci', '-o', 'own-base', '--tag', 'own:1', '--no-default-mountpoints']);
    build([...RELEASE, '--base', 'oci:own-base:1', '--format', 'oci', '-o', 'on-own-base']);
    const ownLayers = readLayout(path.join(work, 'own-base')).manifest.layers.map((l) => l.digest);
    expect(readLayout(path.join(work, 'on-own-base')).manifest.layers.slice(0, ownLayers.length).map((l) => l.digest)).toEqual(ownLayers);
    sh('umoci unpack --rootless --image on-own-base:latest bundle-own');

    build([...RELEASE, '--base', 'docker-archive:base-archive.tar:shrinkwrap/base:1', '--format', 'oci', '-o', 'from-archive']);
    const fromArchive = readLayout(path.join(work, 'from-archive'));
    // skopeo stores docker-archive layers uncompressed: their digest is the diff_id, kept as is.
    expect(fromArchive.manifest.layers[0]!.digest).toBe(fromOci.config.rootfs.diff_ids[0]);
    expect(fromArchive.manifest.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    sh('umoci unpack --rootless --image from-archive:latest bundle-archive');

    build([...RELEASE, '--base', 'base-rootfs.tar.gz', '--format', 'oci', '-o', 'from-tarball']);
    const fromTarball = readLayout(path.join(work, 'from-tarball'));
    const tarballDigest = 'sha256:' + crypto.createHash('sha256').update(fs.readFileSync(path.join(work, 'base-rootfs.tar.gz'))).digest('hex');
    expect(fromTarball.manifest.layers[0]!.digest).toBe(tarballDigest);
    sh('umoci unpack --rootless --image from-tarball:latest bundle-tarball');

    // The same payload layers whatever form the base came in (the last layer's provenance names the base).
    const newOf = (l: Layout) => l.manifest.layers.slice(-5, -1).map((x) => x.digest);
    expect(newOf(fromArchive)).toEqual(newOf(fromOci));
    expect(newOf(fromTarball)).toEqual(newOf(fromOci));
    for (const b of ['bundle-archive', 'bundle-tarball']) {
      const r = spawnSync('diff', ['-r', '--no-dereference', ...RECORDS_INPUTS.flatMap((x) => ['-x', x]), '-x', 'dev-*', 'bundle-oci/rootfs', `${b}/rootfs`], { cwd: work, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
    }
  });

  it('writes a docker-archive that skopeo reads, with a .sha256 beside it, and the same bytes on every build', () => {
    build([...RELEASE, '--base', baseDir, '--format', 'docker-archive', '-o', 'img.tar', '--tag', 'atlas/ab:1', '--threads', '1']);
    const inspect = JSON.parse(sh('skopeo inspect docker-archive:img.tar'));
    expect(inspect.Labels['io.shrinkwrap.releases']).toBe(`AnalysisBase,21.2.75`);
    expect(sh('sha256sum -c img.tar.sha256')).toContain('img.tar: OK');
    expect(sh('tar -tvf img.tar')).toMatch(/manifest\.json\n/);
    sh('skopeo copy docker-archive:img.tar oci:copied:x && umoci unpack --rootless --image copied:x bundle-copied');
    expect(fs.existsSync(path.join(work, 'bundle-copied/rootfs/release_setup.sh'))).toBe(true);
    // Again from another directory, another time zone, more threads: the same bytes.
    const elsewhere = tmpDir('sw-oci-again-');
    build([...RELEASE, '--base', baseDir, '--format', 'docker-archive', '-o', path.join(elsewhere, 'img.tar'), '--tag', 'atlas/ab:1', '--threads', '2'], { cwd: elsewhere, env: { ...ENV, TZ: 'Asia/Tokyo' } });
    expect(fs.readFileSync(path.join(elsewhere, 'img.tar.sha256'), 'utf8')).toBe(fs.readFileSync(path.join(work, 'img.tar.sha256'), 'utf8'));
    fs.rmSync(elsewhere, { recursive: true, force: true });
  });

  it('makes one layer per release part with --layer-per release, and zstd layers on request with a warning', () => {
    const r = build([...RELEASE, '--base', baseDir, '--format', 'oci', '-o', 'per-release', '--layer-per', 'release', '--compression', 'zstd', '--no-default-mountpoints']);
    expect(r.stderr).toMatch(/warning: zstd layers: umoci 0\.4/);
    const { manifest, config } = readLayout(path.join(work, 'per-release'));
    expect(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd')).toBe(true);
    const comments = config.history.map((h) => (h as { comment?: string }).comment);
    expect(comments).toEqual(expect.arrayContaining([`release AnalysisBase 21.2.75`, `base project AnalysisBaseExternals 21.2.75`]));
    const listings = tarListEveryLayer(path.join(work, 'per-release'));
    expect(listings.join('')).not.toMatch(/ lustre\//);
  });
});

describe.runIf(canRun(tools, 'malicious base tests', 'python3 is needed'))('malicious base layers', () => {
  // Each row: a layer a hostile base image could carry, and what the error must name.
  const cases: Array<[string, string, RegExp]> = [
    ['path traversal', `t.addfile(tarfile.TarInfo('../../escaped'), io.BytesIO(b''))`, /entry '\.\.\/\.\.\/escaped': a path with "\.\." \(path traversal\)/],
    ['absolute path', `t.addfile(tarfile.TarInfo('/etc/evil'), io.BytesIO(b''))`, /entry '\/etc\/evil': an absolute path/],
    ['symlink escape', `l = tarfile.TarInfo('up'); l.type = tarfile.SYMTYPE; l.linkname = '../../../../tmp'; t.addfile(l)`, /entry 'up': symlink to '\.\.\/\.\.\/\.\.\/\.\.\/tmp' climbs above the image root/],
    ['write through a symlink', `l = tarfile.TarInfo('etc2'); l.type = tarfile.SYMTYPE; l.linkname = '/etc'; t.addfile(l); t.addfile(tarfile.TarInfo('etc2/passwd'), io.BytesIO(b''))`, /entry 'etc2\/passwd': its parent '\/etc2' is a symlink/],
    ['hard link to outside', `l = tarfile.TarInfo('pw'); l.type = tarfile.LNKTYPE; l.linkname = '../../etc/passwd'; t.addfile(l)`, /entry 'pw': hard link target '\.\.\/\.\.\/etc\/passwd': a path with "\.\."/],
    ['hard link to nothing', `l = tarfile.TarInfo('pw'); l.type = tarfile.LNKTYPE; l.linkname = 'not/there'; t.addfile(l)`, /entry 'pw': hard link to 'not\/there', which is not in the image/],
    ['whiteout of the root', `t.addfile(tarfile.TarInfo('.wh..'), io.BytesIO(b''))`, /entry '\.wh\.\.': a whiteout of the directory itself or of its parent/],
  ];
  for (const [name, python, message] of cases) {
    it(`refuses ${name}, naming the layer and the entry, and writes nothing`, () => {
      const dir = tmpDir('sw-evil-');
      const tarball = path.join(dir, 'evil.tar');
      execFileSync('python3', ['-c', `import tarfile, io\nt = tarfile.open(${JSON.stringify(tarball)}, 'w', format=tarfile.PAX_FORMAT)\nd = tarfile.TarInfo('etc'); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)\n${python.replace(/; /g, '\n')}\nt.close()`]);
      const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', tarball, '-o', path.join(dir, 'out.sqfs')], { env: ENV });
      expectOneLineError(r, 2, message);
      expect(r.stderr).toContain(tarball);
      expect(fs.readdirSync(dir)).toEqual(['evil.tar']);
      expect(fs.existsSync(path.join(dir, '..', 'escaped'))).toBe(false);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }

  it('applies whiteouts and opaque directories across layers like umoci does', () => {
    const dir = tmpDir('sw-wh-');
    const py = (file: string, body: string) =>
      execFileSync('python3', ['-c', `import tarfile, io\nt = tarfile.open(${JSON.stringify(file)}, 'w:gz', format=tarfile.PAX_FORMAT)\ndef d(n):\n  i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)\ndef f(n, b=b'x'):\n  i = tarfile.TarInfo(n); i.size = len(b); t.addfile(i, io.BytesIO(b))\n${body}\nt.close()`]);
    py(path.join(dir, 'l1.tar.gz'), "d('opt'); d('opt/old'); f('opt/old/a'); f('opt/keep'); d('etc'); f('etc/removeme'); f('etc/stay')");
    py(path.join(dir, 'l2.tar.gz'), "d('opt'); f('opt/.wh..wh..opq', b''); f('opt/new'); f('etc/.wh.removeme', b'')");
    // An OCI layout of the two layers, written by hand (what a registry would serve).
    const layout = path.join(dir, 'layout');
    fs.mkdirSync(path.join(layout, 'blobs/sha256'), { recursive: true });
    const put = (b: Buffer) => {
      const d = crypto.createHash('sha256').update(b).digest('hex');
      fs.writeFileSync(path.join(layout, 'blobs/sha256', d), b);
      return { digest: `sha256:${d}`, size: b.length };
    };
    const layers = ['l1', 'l2'].map((n) => fs.readFileSync(path.join(dir, `${n}.tar.gz`)));
    const diffIds = layers.map((b) => 'sha256:' + crypto.createHash('sha256').update(execFileSync('gzip', ['-dc'], { input: b })).digest('hex'));
    const cfg = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds }, config: {} })));
    const man = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
          layers: layers.map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(b) })),
        }),
      ),
    );
    fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...man, annotations: { 'org.opencontainers.image.ref.name': 't' } }] }));
    execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:t`, path.join(dir, 'umoci')]);
    build(['--include', 'atlas.cern.ch/repo/sw/pilot/**', '--base', `oci:${layout}:t`, '--format', 'dir', '-o', path.join(dir, 'ours'), '--no-default-mountpoints']);
    const rel = (root: string) => findListing(root, { nlink: false }).filter((l) => / \|?(opt|etc)(\/|$)/.test(l.split('|')[1] ?? '') || /\|(opt|etc)/.test(l)).map((l) => l.replace(/^(\S+ \S+) \S+ (\S+) \S+/, '$1 $2'));
    // Besides the layers' content, ours has the runtime mount points the base lacks (empty files in /etc).
    const runtimeFiles = /\betc\/(hosts|resolv\.conf)\b/;
    expect(rel(path.join(dir, 'ours')).filter((l) => !runtimeFiles.test(l))).toEqual(rel(path.join(dir, 'umoci/rootfs')));
    expect(fs.readFileSync(path.join(dir, 'ours/etc/hosts'), 'utf8')).toBe('');
    expect(fs.existsSync(path.join(dir, 'ours/opt/new'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'ours/opt/old'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'ours/opt/keep'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'ours/etc/removeme'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'ours/etc/stay'))).toBe(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a layout whose blob does not match its digest, naming the layer', () => {
    const dir = tmpDir('sw-bad-digest-');
    execFileSync('sh', ['-c', `umoci init --layout l && umoci new --image l:t && umoci unpack --rootless --image l:t b && echo hi > b/rootfs/hello && umoci repack --image l:t b`], { cwd: dir });
    const { manifest } = readLayout(path.join(dir, 'l'));
    const blob = path.join(dir, 'l/blobs/sha256', manifest.layers.at(-1)!.digest.slice(7));
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length - 9] ^= 1; // the gzip CRC: still decodes, different digest
    fs.writeFileSync(blob, bytes);
    const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', `oci:${path.join(dir, 'l')}:t`, '-o', path.join(dir, 'out.sqfs')], { env: ENV });
    expectOneLineError(r, 2, /layer \d+ \(sha256:[0-9a-f]+\): (content has digest|corrupt gzip)/);
    expect(fs.existsSync(path.join(dir, 'out.sqfs'))).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe.runIf(canRun(tools && hasCommand('docker-registry'), 'registry tests', 'docker-registry is needed (.ci/run installs it)'))('docker:// bases and push', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('builds on a base pulled from a registry, keeps its layers, and pushes the result (mounting the base blobs)', () => {
    const dir = tmpDir('sw-reg-');
    const env = { ...ENV, SHRINKWRAP_CACHE: path.join(dir, 'cache') };
    sh(`umoci init --layout base && umoci new --image base:b && umoci unpack --rootless --image base:b ub && rm -rf ub/rootfs && cp -a '${baseDir}' ub/rootfs && umoci repack --image base:b ub`, dir);
    sh(`skopeo copy --dest-tls-verify=false oci:base:b docker://${registry.host}/test/base:1`, dir);
    const baseLayers = readLayout(path.join(dir, 'base')).manifest.layers.map((l) => l.digest);

    const r = build([...RELEASE, '--base', `docker://${registry.host}/test/base:1`, '--tls-verify', 'false', '--format', 'oci', '-o', 'img', '--push', `docker://${registry.host}/test/atlas:21.2.75`], { cwd: dir, env });
    const ours = readLayout(path.join(dir, 'img'));
    expect(ours.manifest.layers.slice(0, baseLayers.length).map((l) => l.digest)).toEqual(baseLayers);
    expect(ours.manifest.layers.length).toBe(baseLayers.length + 5); // 5 new layers (+ the config: 6 blobs to upload)
    expect(r.stderr).toMatch(new RegExp(`pushed docker://${registry.host}/test/atlas:21\\.2\\.75 \\(${ours.index.manifests[0]!.digest}\\): 6 blobs uploaded .*, 0 already there, ${baseLayers.length} mounted from another repository`));
    const inspect = JSON.parse(sh(`skopeo inspect --tls-verify=false docker://${registry.host}/test/atlas:21.2.75`, dir));
    expect(inspect.Digest).toBe(ours.index.manifests[0]!.digest);
    sh(`skopeo copy --src-tls-verify=false docker://${registry.host}/test/atlas:21.2.75 oci:pulled:x && umoci unpack --rootless --image pulled:x bundle`, dir);
    expect(fs.readFileSync(path.join(dir, 'bundle/rootfs/release_setup.sh'), 'utf8')).toContain('AnalysisBase,21.2.75');

    // A second build pulls nothing again: the cache has every blob.
    const again = build([...RELEASE, '--base', `docker://${registry.host}/test/base:1`, '--tls-verify', 'false', '--format', 'oci', '-o', 'img2'], { cwd: dir, env });
    expect(again.code).toBe(0);
    expect(readLayout(path.join(dir, 'img2')).index.manifests[0]!.digest).toBe(ours.index.manifests[0]!.digest);

    // shrinkwrap push: to a new repository, then again (nothing to upload).
    const p1 = shrinkwrap(['push', 'oci:img', `docker://${registry.host}/test/copy:1`, '--tls-verify', 'false'], { cwd: dir, env });
    expect(p1.code, p1.stderr).toBe(0);
    const p2 = shrinkwrap(['push', 'oci:img', `docker://${registry.host}/test/copy:1`, '--tls-verify', 'false'], { cwd: dir, env });
    expect(p2.stderr).toMatch(/0 blobs uploaded \(0 B\), \d+ already there/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('names the reference and the problem when a registry base cannot be had', () => {
    const r = shrinkwrap(['--cvmfs-root', cvmfs, ...RELEASE, '--base', `docker://${registry.host}/test/nothing:1`, '--tls-verify', 'false', '-o', path.join(work, 'never.sqfs')], { env: { ...ENV, SHRINKWRAP_CACHE: path.join(work, 'cache') } });
    expectOneLineError(r, 2, `docker://${registry.host}/test/nothing:1`);
    expect(r.stderr).toMatch(/404|unknown/);
    expect(fs.existsSync(path.join(work, 'never.sqfs'))).toBe(false);
  });
});

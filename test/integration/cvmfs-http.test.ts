// --cvmfs-root http://…: CernVM-FS repositories read over HTTP with no client.
// - The real repository cvmfs_server published (shared/fixtures/cvmfs-legacy-aufs), served from
//   127.0.0.1: the image holds exactly the tree its create_repo.sh made.
// - Our fixture generator (fixtures/cvmfs-repo.ts) agrees with it: the same tree, published by it
//   and read by the same reader, gives the same image tree.
// - The example /cvmfs published as repositories gives, over HTTP, the very bytes a build from the
//   directory gives; a second build fetches nothing but manifests and whitelists.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { makeTestKeys, publishRepository } from '../../fixtures/cvmfs-repo.js';
import { REPO_ROOT, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { type CvmfsServer, startCvmfsServer } from '../helpers/cvmfs-server.js';
import { RECORDS_INPUTS } from '../helpers/consumers.js';
import { LEGACY_AUFS_FQRN, legacyAufsFixture, unpackLegacyAufs } from '../helpers/shared-fixtures.js';
import { tmpDir } from '../helpers/tree.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000', TZ: 'UTC' };
const fixture = legacyAufsFixture('CernVM-FS over HTTP against the real repository');

let work: string;
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});
beforeAll(() => {
  work = tmpDir('sw-cvmfs-http-');
});

/** A directory tree as lines: type, link count, path, link target; content hashes of files. */
function treeListing(dir: string): string[] {
  return execFileSync('find', ['.', '-mindepth', '1', '-printf', '%y %n %P -> %l\\n'], { cwd: dir, encoding: 'latin1' })
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (l.startsWith('f ') ? `${l} ${crypto.createHash('sha1').update(fs.readFileSync(Buffer.from(path.join(dir, l.slice(l.indexOf(' ', 2) + 1, l.lastIndexOf(' -> '))), 'latin1'))).digest('hex').slice(0, 8)}` : l))
    .sort();
}

/** Which names share an inode, as sorted groups of paths. */
function hardLinkGroups(dir: string): string[][] {
  const byInode = new Map<string, string[]>();
  for (const l of execFileSync('find', ['.', '-mindepth', '1', '-links', '+1', '!', '-type', 'd', '-printf', '%i %P\\n'], { cwd: dir, encoding: 'latin1' }).split('\n')) {
    if (l === '') continue;
    const [ino, p] = [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)];
    byInode.set(ino, [...(byInode.get(ino) ?? []), p]);
  }
  return [...byInode.values()].map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}

/** The tree create_repo.sh writes (shared/fixtures/cvmfs-legacy-aufs), made again with fs calls. */
function createRepoTree(root: string): void {
  const at = (...p: string[]) => path.join(root, ...p);
  const write = (p: string, text: string) => fs.writeFileSync(at(p), text);
  const three = (dir: string) => {
    for (const n of ['foo', 'bar', 'baz']) write(`${dir}/${n}`, `${n}\n`);
  };
  for (const d of ['needs_migration/doesnt_need_migration', 'doesnt_need_migration/doesnt_need_migration_either', 'needs_commit_due_to_child/needs_migration']) fs.mkdirSync(at(d), { recursive: true });
  three('.');
  for (const n of ['foo', 'bar', 'baz']) fs.linkSync(at(n), at(`hardlink_${n}`));
  three('needs_migration');
  fs.symlinkSync('foo', at('needs_migration/symlink_foo'));
  fs.linkSync(at('needs_migration/bar'), at('needs_migration/hardlink_bar'));
  fs.linkSync(at('needs_migration/symlink_foo'), at('needs_migration/hardlink_symlink_foo_1'));
  fs.linkSync(at('needs_migration/symlink_foo'), at('needs_migration/hardlink_symlink_foo_2'));
  three('needs_migration/doesnt_need_migration');
  fs.mkdirSync(at('needs_migration/simple_directory'));
  three('needs_migration/simple_directory');
  fs.symlinkSync('foo', at('needs_migration/simple_directory/symlink_foo'));
  fs.linkSync(at('needs_migration/simple_directory/foo'), at('needs_migration/simple_directory/hardlink_foo'));
  for (const d of ['needs_migration/doesnt_need_migration', 'needs_migration']) write(`${d}/.cvmfscatalog`, '');
  three('doesnt_need_migration');
  fs.symlinkSync('foo', at('doesnt_need_migration/symlink_foo'));
  fs.symlinkSync('bar', at('doesnt_need_migration/symlink_bar'));
  three('doesnt_need_migration/doesnt_need_migration_either');
  write('doesnt_need_migration/doesnt_need_migration_either/symlink_foo', 'foo\n'); // cp follows the link
  fs.mkdirSync(at('doesnt_need_migration/simple_directory'));
  three('doesnt_need_migration/simple_directory');
  fs.symlinkSync('foo', at('doesnt_need_migration/simple_directory/symlink_foo'));
  for (const d of ['doesnt_need_migration/doesnt_need_migration_either', 'doesnt_need_migration']) write(`${d}/.cvmfscatalog`, '');
  three('needs_commit_due_to_child');
  fs.symlinkSync('baz', at('needs_commit_due_to_child/symlink_baz'));
  three('needs_commit_due_to_child/needs_migration');
  fs.linkSync(at('needs_commit_due_to_child/needs_migration/foo'), at('needs_commit_due_to_child/needs_migration/hardlink_foo'));
  fs.linkSync(at('needs_commit_due_to_child/needs_migration/bar'), at('needs_commit_due_to_child/needs_migration/hardlink_bar_1'));
  fs.linkSync(at('needs_commit_due_to_child/needs_migration/bar'), at('needs_commit_due_to_child/needs_migration/hardlink_bar_2'));
  fs.mkdirSync(at('needs_commit_due_to_child/simple_directory'));
  three('needs_commit_due_to_child/simple_directory');
  fs.symlinkSync('foo', at('needs_commit_due_to_child/simple_directory/symlink_foo'));
  for (const d of ['needs_commit_due_to_child/needs_migration', 'needs_commit_due_to_child']) write(`${d}/.cvmfscatalog`, '');
}

describe.runIf(fixture)('the real repository cvmfs_server published', () => {
  let server: CvmfsServer;
  let keys: string;
  let expected: string;
  const spec = () => {
    const f = path.join(work, `${LEGACY_AUFS_FQRN}.spec`);
    fs.writeFileSync(f, '/*\n');
    return f;
  };
  beforeAll(async () => {
    fs.mkdirSync(path.join(work, 'real'));
    const unpacked = unpackLegacyAufs(fixture!, path.join(work, 'real'));
    keys = unpacked.keys;
    server = await startCvmfsServer(unpacked.served);
    expected = path.join(work, 'expected', LEGACY_AUFS_FQRN);
    fs.mkdirSync(expected, { recursive: true });
    createRepoTree(expected);
  });
  afterAll(async () => {
    await server?.stop();
  });
  const source = (cache: string) => ['--cvmfs-root', server.url, '--cvmfs-keys', keys, '--cvmfs-cache', path.join(work, cache)];

  it('refuses its expired whitelist, naming the date, and writes nothing', () => {
    const out = path.join(work, 'refused');
    const r = shrinkwrap(['build', ...source('cache-real'), '--spec', spec(), '--format', 'dir', '-o', out], { env: ENV });
    expectOneLineError(r, 1, `${LEGACY_AUFS_FQRN}: .cvmfswhitelist: expired on 2015-11-20T11:55:13Z`);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(work).filter((n) => n.startsWith('refused'))).toEqual([]);
  });

  it('with --cvmfs-allow-expired, a directory image of exactly the tree create_repo.sh made: nested catalogs, hard links, symlinks', () => {
    const out = path.join(work, 'real-dir');
    const r = shrinkwrap(['build', ...source('cache-real'), '--cvmfs-allow-expired', '--spec', spec(), '--format', 'dir', '-o', out], { env: ENV });
    expect(r.stderr).toContain('warning: legacy_aufs.cern.ch: .cvmfswhitelist expired on 2015-11-20T11:55:13Z; read because of --cvmfs-allow-expired');
    expect(r.code, r.stderr).toBe(0);
    const got = treeListing(path.join(out, LEGACY_AUFS_FQRN));
    expect(got).toHaveLength(63);
    expect(got).toEqual(treeListing(expected));
    // Hard-linked symlinks too (needs_migration/symlink_foo and its two other names).
    expect(hardLinkGroups(path.join(out, LEGACY_AUFS_FQRN))).toEqual(hardLinkGroups(expected));
    expect(hardLinkGroups(expected)).toContainEqual(['needs_migration/hardlink_symlink_foo_1', 'needs_migration/hardlink_symlink_foo_2', 'needs_migration/symlink_foo']);
    // Owned by root, as a client with CVMFS_CLAIM_OWNERSHIP shows them; times from the catalog.
    const st = fs.lstatSync(path.join(out, LEGACY_AUFS_FQRN, 'needs_migration/foo'));
    expect([st.uid, st.gid, st.mtimeMs / 1000, st.mode & 0o7777]).toEqual([0, 0, 1445428515, 0o664]);
  });

  it('a SquashFS image of the same tree (unsquashfs reads it back the same)', () => {
    const out = path.join(work, 'real.sqfs');
    const r = shrinkwrap(['build', ...source('cache-real'), '--cvmfs-allow-expired', '--spec', spec(), '-o', out], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const back = path.join(work, 'real-unsquashed');
    execFileSync('unsquashfs', ['-q', '-n', '-d', back, out]);
    expect(treeListing(path.join(back, LEGACY_AUFS_FQRN))).toEqual(treeListing(path.join(work, 'real-dir', LEGACY_AUFS_FQRN)));
    expect(hardLinkGroups(path.join(back, LEGACY_AUFS_FQRN))).toEqual(hardLinkGroups(path.join(work, 'real-dir', LEGACY_AUFS_FQRN)));
  });

  it('the same tree as a directory source gives the same image tree: hard-linked symlinks stay one inode in dir, SquashFS and OCI', () => {
    const root = path.dirname(expected);
    const dir = path.join(work, 'posix-dir');
    expect(shrinkwrap(['build', '--cvmfs-root', root, '--spec', spec(), '--format', 'dir', '-o', dir], { env: ENV }).code).toBe(0);
    expect(treeListing(path.join(dir, LEGACY_AUFS_FQRN))).toEqual(treeListing(path.join(work, 'real-dir', LEGACY_AUFS_FQRN)));
    expect(hardLinkGroups(path.join(dir, LEGACY_AUFS_FQRN))).toEqual(hardLinkGroups(expected));
    const sqfs = path.join(work, 'posix.sqfs');
    expect(shrinkwrap(['build', '--cvmfs-root', root, '--spec', spec(), '-o', sqfs], { env: ENV }).code).toBe(0);
    const back = path.join(work, 'posix-unsquashed');
    execFileSync('unsquashfs', ['-q', '-n', '-d', back, sqfs]);
    expect(hardLinkGroups(path.join(back, LEGACY_AUFS_FQRN))).toEqual(hardLinkGroups(expected));
    // OCI: the layer's tar holds the second and third names as hard links to the first.
    const oci = path.join(work, 'posix-oci');
    expect(shrinkwrap(['build', '--cvmfs-root', root, '--spec', spec(), '--format', 'oci', '-o', oci], { env: ENV }).code).toBe(0);
    const index = JSON.parse(fs.readFileSync(path.join(oci, 'index.json'), 'utf8'));
    const manifest = JSON.parse(fs.readFileSync(path.join(oci, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    const listing = manifest.layers.map((l: { digest: string }) => execFileSync('tar', ['-tvzf', path.join(oci, 'blobs/sha256', l.digest.slice(7))], { encoding: 'utf8' })).join('');
    expect(listing).toMatch(/cvmfs\/legacy_aufs\.cern\.ch\/needs_migration\/symlink_foo link to cvmfs\/legacy_aufs\.cern\.ch\/needs_migration\/hardlink_symlink_foo_1/);
  });

  it('our generator agrees with cvmfs_server: the same tree published by fixtures/cvmfs-repo.ts reads back the same', async () => {
    const published = path.join(work, 'ours');
    const keysDir = path.join(work, 'ours-keys');
    const testKeys = makeTestKeys(keysDir, LEGACY_AUFS_FQRN);
    publishRepository({ tree: expected, fqrn: LEGACY_AUFS_FQRN, out: published, keys: testKeys, timestamp: 1445428515, whitelistExpires: new Date('2099-01-01T00:00:00Z') });
    const ours = await startCvmfsServer(published);
    try {
      const out = path.join(work, 'ours-dir');
      const r = shrinkwrap(['build', '--cvmfs-root', ours.url, '--cvmfs-keys', keysDir, '--cvmfs-cache', path.join(work, 'cache-ours'), '--spec', spec(), '--format', 'dir', '-o', out], { env: ENV });
      expect(r.code, r.stderr).toBe(0);
      expect(treeListing(path.join(out, LEGACY_AUFS_FQRN))).toEqual(treeListing(path.join(work, 'real-dir', LEGACY_AUFS_FQRN)));
      expect(hardLinkGroups(path.join(out, LEGACY_AUFS_FQRN))).toEqual(hardLinkGroups(path.join(work, 'real-dir', LEGACY_AUFS_FQRN)));
    } finally {
      await ours.stop();
    }
  });
});

describe('the example /cvmfs published as repositories', () => {
  let server: CvmfsServer;
  let cvmfs: string;
  let keysDir: string;
  const SPEC = path.join(REPO_ROOT, 'specs/examples/atlas.cern.ch.spec');
  beforeAll(async () => {
    cvmfs = (await ensureExample()).cvmfs;
    const served = path.join(work, 'example-served');
    keysDir = path.join(work, 'example-keys');
    for (const fqrn of fs.readdirSync(cvmfs).sort()) {
      // A nested catalog at the release, and large files chunked: the reader's harder paths.
      const nestedAt = fqrn === 'atlas.cern.ch' ? ['/repo/sw/software/21.2/AnalysisBase/21.2.75', '/repo/ATLASLocalRootBase'] : [];
      publishRepository({ tree: path.join(cvmfs, fqrn), fqrn, out: served, keys: makeTestKeys(keysDir, fqrn), nestedAt, chunkAbove: 64 * 1024, chunkSize: 32 * 1024, timestamp: 1600000000, whitelistExpires: new Date('2099-01-01T00:00:00Z') });
    }
    server = await startCvmfsServer(served);
  });
  afterAll(async () => {
    await server?.stop();
  });
  const overHttp = (cache: string) => ['--cvmfs-root', server.url, '--cvmfs-keys', keysDir, '--cvmfs-cache', path.join(work, cache)];
  const fromDir = () => ['--cvmfs-root', cvmfs];
  const digest = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

  it('SquashFS: byte-identical to the build from the directory; a second build fetches only manifests and whitelists', async () => {
    const a = path.join(work, 'ex-dir.sqfs');
    const b = path.join(work, 'ex-http.sqfs');
    const c = path.join(work, 'ex-http-warm.sqfs');
    expect(shrinkwrap(['build', ...fromDir(), '--spec', SPEC, '-o', a], { env: ENV }).code).toBe(0);
    const r = shrinkwrap(['build', ...overHttp('cache-ex'), '--spec', SPEC, '-o', b], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(digest(b)).toBe(digest(a));
    const before = await server.counts();
    const warm = shrinkwrap(['build', ...overHttp('cache-ex'), '--spec', SPEC, '-o', c], { env: ENV });
    expect(warm.code).toBe(0);
    expect(warm.stderr).toContain(`fetched: 0 objects not in the cache, `);
    expect(warm.stderr).toMatch(new RegExp(`in 4 requests \\(4 to ${server.url.replace(/[.]/g, '\\.')}\\)`));
    expect(r.stderr).toMatch(/fetched: [1-9]\d* objects not in the cache/);
    const after = await server.counts();
    const fetched = Object.keys(after.seen).filter((p) => after.seen[p] !== before.seen[p]);
    expect(fetched.map((p) => path.posix.basename(p)).sort(), JSON.stringify(fetched)).toEqual(['.cvmfspublished', '.cvmfspublished', '.cvmfswhitelist', '.cvmfswhitelist']);
    expect(digest(c)).toBe(digest(a));
    expect(after.userAgent).toMatch(/^shrinkwrap\/\S+ \(cvmfs-http\)$/);
    // Manifests and whitelists change in place: asked for past any proxy's cache; objects not.
    expect(after.noCache.map((p) => path.posix.basename(p)).sort()).toEqual(['.cvmfspublished', '.cvmfspublished', '.cvmfswhitelist', '.cvmfswhitelist']);
  });

  it('--release AnalysisBase,21.2.75 with its closures (ELF too), on a base: the same image as from the directory, but for the provenance that names the source', () => {
    const base = path.join(cvmfs, '../base-rootfs');
    const a = path.join(work, 'rel-dir');
    const b = path.join(work, 'rel-http');
    const args = ['--release', 'AnalysisBase,21.2.75', '--base', base, '--format', 'dir'];
    expect(shrinkwrap(['build', ...fromDir(), ...args, '-o', a], { env: ENV }).code).toBe(0);
    const r = shrinkwrap(['build', ...overHttp('cache-rel'), ...args, '-o', b], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const listing = (d: string) => execFileSync('find', ['.', '-printf', '%y %m %U:%G %s %T@ %n %l|%P\\n'], { cwd: d, encoding: 'latin1' }).split('\n').filter((l) => !RECORDS_INPUTS.some((f) => l.endsWith('/' + f) || l.endsWith('|' + f))).sort();
    expect(listing(b)).toEqual(listing(a));
    expect(fs.readFileSync(path.join(b, '.shrinkwrap/plan.json'))).toEqual(fs.readFileSync(path.join(a, '.shrinkwrap/plan.json')));
    const provenance = JSON.parse(fs.readFileSync(path.join(b, '.shrinkwrap/provenance.json'), 'utf8'));
    expect(provenance.source.cvmfsRoot).toBe(server.url);
    expect(provenance.source.repositories.map((x: { fqrn: string }) => x.fqrn)).toEqual(['atlas-condb.cern.ch', 'atlas-nightlies.cern.ch', 'atlas.cern.ch', 'sft.cern.ch']);
    for (const x of provenance.source.repositories) expect([x.revision, x.rootCatalog]).toEqual([1, expect.stringMatching(/^[0-9a-f]{40}$/)]);
    expect(fs.existsSync(path.join(b, 'cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/bin/xAODDump'))).toBe(true);
  });

  it('dir: the same tree, content, modes, times and owners', () => {
    const a = path.join(work, 'ex-dir-d');
    const b = path.join(work, 'ex-http-d');
    expect(shrinkwrap(['build', ...fromDir(), '--spec', SPEC, '--format', 'dir', '-o', a], { env: ENV }).code).toBe(0);
    const r = shrinkwrap(['build', ...overHttp('cache-ex'), '--spec', SPEC, '--format', 'dir', '-o', b], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const listing = (d: string) => execFileSync('find', ['.', '-printf', '%y %m %U:%G %s %T@ %n %l|%P\\n'], { cwd: d, encoding: 'latin1' }).split('\n').sort();
    expect(listing(b)).toEqual(listing(a));
    expect(treeListing(b)).toEqual(treeListing(a));
  });

  it('OCI: the same layer blob for each repository read (the config and the generated files name the source)', () => {
    const a = path.join(work, 'ex-dir-oci');
    const b = path.join(work, 'ex-http-oci');
    expect(shrinkwrap(['build', ...fromDir(), '--spec', SPEC, '--format', 'oci', '-o', a], { env: ENV }).code).toBe(0);
    const r = shrinkwrap(['build', ...overHttp('cache-ex'), '--spec', SPEC, '--format', 'oci', '-o', b], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const layers = (dir: string) => {
      const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'));
      return { layers: manifest.layers.map((l: { digest: string }) => l.digest), source: config.config.Labels['io.shrinkwrap.source'] };
    };
    // A directory source has a /cvmfs/<fqrn> (and a layer) for every repository it holds; over HTTP
    // the repositories are those the selection read. The last layer holds the generated files.
    const http = layers(b).layers;
    expect(http).toHaveLength(3);
    for (const l of http.slice(0, -1)) expect(layers(a).layers).toContain(l);
    expect(layers(b).source).toBe(server.url);
  });

  it('plan reads sizes and types from the catalogs (no content fetched without the ELF closure)', async () => {
    const before = await server.counts();
    const r = shrinkwrap(['plan', ...overHttp('cache-plan'), '--spec', SPEC, '--json'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const after = await server.counts();
    const local = shrinkwrap(['plan', ...fromDir(), '--spec', SPEC, '--json'], { env: ENV });
    const summary = (text: string) => {
      const { warnings: _, ...rest } = JSON.parse(text).summary;
      return rest;
    };
    expect(summary(r.stdout)).toEqual(summary(local.stdout));
    expect(JSON.parse(r.stdout).entries).toEqual(JSON.parse(local.stdout).entries);
    const data = Object.keys(after.seen).filter((p) => after.seen[p] !== before.seen[p] && /\/data\/[0-9a-f]{2}\/[0-9a-f]+$/.test(p));
    expect(data).toEqual([]);
  });

  it('--include: the same matches as from the directory where the glob names its repository; refused in one line where it cannot', () => {
    const entries = (args: string[]) => {
      const r = shrinkwrap(['plan', ...args, '--include', 'atlas.cern.ch/**/*.so', '--json'], { env: ENV });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).entries;
    };
    expect(entries(overHttp('cache-ex'))).toEqual(entries(fromDir()));
    expectOneLineError(shrinkwrap(['plan', ...overHttp('cache-ex'), '--include', '*.so']), 2, '--include *.so: over HTTP, begin with the repository');
    expectOneLineError(shrinkwrap(['plan', ...overHttp('cache-ex'), '--include', '*/repo/**']), 2, '--include */repo/**: over HTTP, begin with the repository');
  });

  it('--cvmfs-* options on a directory source are refused in one line', () => {
    expectOneLineError(shrinkwrap(['plan', ...fromDir(), '--spec', SPEC, '--cvmfs-tag', 'x']), 2, '--cvmfs-tag: only for a --cvmfs-root read over HTTP');
  });
});

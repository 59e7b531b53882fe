// Issue 19, what the catalogs carry, read over HTTP and built into images: extended attributes,
// variant symlinks ($(VAR) expanded as the client expands them), hidden and external entries (left
// out), older revisions and tags, special files; and the server list and proxies as the CLI takes
// them. One repository published by fixtures/cvmfs-repo.ts serves most cases; a case that needs a
// catalog altered gets a copy of it (the row changed with SQL, the catalog stored under its new
// hash, the manifest re-signed), served on its own; a second repository has two revisions.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestKeys, makeTestKeys, publishRepository } from '../../fixtures/cvmfs-repo.js';
import { CLI, type Run, shrinkwrap } from '../helpers/cli.js';
import { type CvmfsServer, type ForwardProxy, startCvmfsServer, startForwardProxy } from '../helpers/cvmfs-server.js';
import { freePort } from '../helpers/registry.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';
import { FLAG_EXTERNAL, FLAG_FILE, FLAG_HIDDEN, FLAG_SPECIAL } from '../../src/formats/cvmfs/catalog.js';
import { hashBytes, objectPath } from '../../src/formats/cvmfs/hash.js';
import { encodeManifest, parseManifest } from '../../src/formats/cvmfs/manifest.js';
import { signManifest, splitSigned } from '../../src/formats/cvmfs/signed.js';
import { openDatabase } from '../../src/util/sqlite.js';

const FQRN = 'catalogs.test.ch';
/** The repository with two revisions. */
const REVS = 'revisions.test.ch';
/** The repository with a FIFO. */
const SPECIAL = 'special.test.ch';
const MOUNT = `/cvmfs/${FQRN}`;
/** The value the main repository's builds give $(ARCH), but where the case is about variants. */
const ARCH = ['--cvmfs-variant', 'ARCH=x86_64'];

// The environment of every build: no proxy from the machine's own settings.
const BASE_ENV: NodeJS.ProcessEnv = { ...process.env, SOURCE_DATE_EPOCH: '1600000000', TZ: 'UTC' };
for (const k of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY']) delete BASE_ENV[k];

let work: string;
/** <srv>/<FQRN> and <srv>/<REVS>, served by `server`. */
let srv: string;
let keysDir: string;
let keys: TestKeys;
let revKeys: TestKeys;
let server: CvmfsServer;
let spec: string;
let revSpec: string;
let specialSpec: string;
/** The FIFO's tree, at <specialLocal>/<SPECIAL>: also a directory source. */
let specialLocal: string;
let revision1Catalog: string;
let base: string;
const servers: CvmfsServer[] = [];
const proxies: ForwardProxy[] = [];
let counter = 0;

beforeAll(async () => {
  work = tmpDir('sw-cvmfs-catalogs-');
  const tree = makeTree(path.join(work, 'tree'), {
    README: 'hello\n',
    'etc/tagged.conf': 'key=value\n',
    'etc/plain.conf': 'plain\n',
    'hidden.txt': 'not for the image\n',
    'ext/outside.dat': 'data kept elsewhere\n',
    'ext/outside2.dat': 'more data kept elsewhere\n',
    'ext/inside.dat': 'data of the repository\n',
    'x86_64/lib/libx.so': 'elf',
    'el9/bin/tool': { file: '#!/bin/sh\n', mode: 0o755 },
  });
  // Stored as written: the generator keeps a link's target as it is, variables and all.
  fs.symlinkSync('$(ARCH)/lib', path.join(tree, 'arch-lib'));
  fs.symlinkSync('$(ARCH)/lib/libx.so', path.join(tree, 'arch-libx'));
  fs.symlinkSync('$(OS:-el9)/bin', path.join(tree, 'os-bin'));
  execFileSync('setfattr', ['-n', 'user.origin', '-v', 'from-the-catalog', path.join(tree, 'etc/tagged.conf')]);
  execFileSync('setfattr', ['-n', 'user.dirnote', '-v', 'a directory', path.join(tree, 'etc')]);

  srv = path.join(work, 'srv');
  keysDir = path.join(work, 'keys');
  keys = makeTestKeys(keysDir, FQRN);
  revKeys = makeTestKeys(keysDir, REVS);
  const common = { out: srv, timestamp: 1_600_000_000, whitelistExpires: new Date('2099-01-01T00:00:00Z') };
  publishRepository({ ...common, tree, fqrn: FQRN, keys });
  specialLocal = path.join(work, 'special');
  const specialTree = makeTree(path.join(specialLocal, SPECIAL), { 'run/pipe': { fifo: true }, 'run/README': 'a pipe beside\n' });
  publishRepository({ ...common, tree: specialTree, fqrn: SPECIAL, keys: makeTestKeys(keysDir, SPECIAL) });

  // Two revisions of another repository: a file changed between them, both tagged.
  const revTree = makeTree(path.join(work, 'rev-tree'), { 'version.txt': 'one\n', 'same.txt': 'unchanged\n' });
  const first = publishRepository({ ...common, tree: revTree, fqrn: REVS, keys: revKeys, tags: [{ name: 'v1', revision: 1 }] });
  expect(first.revision).toBe(1);
  revision1Catalog = first.rootCatalog;
  fs.writeFileSync(path.join(revTree, 'version.txt'), 'two\n');
  const second = publishRepository({ ...common, timestamp: 1_600_000_100, tree: revTree, fqrn: REVS, keys: revKeys, tags: [{ name: 'v1', revision: 1 }, { name: 'v2', revision: 2 }] });
  expect(second.revision).toBe(2);
  expect(second.rootCatalog).not.toBe(revision1Catalog);

  spec = writeSpec(work, `${FQRN}.spec`, ['/*']);
  revSpec = writeSpec(work, `${REVS}.spec`, ['/*']);
  specialSpec = writeSpec(work, `${SPECIAL}.spec`, ['/*']);
  // A base root file system: what makes a build write /.shrinkwrap/provenance.json.
  base = makeTree(path.join(work, 'base'), { 'bin/sh': { file: '#!/bin/true\n', mode: 0o755 }, 'etc/os-release': 'ID=test\n' });
  server = await startCvmfsServer(srv);
}, 60_000);

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});
afterAll(async () => {
  await server?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A fresh output path and cache. */
function fresh(name: string): { out: string; cache: string } {
  const dir = path.join(work, `run-${counter++}`);
  fs.mkdirSync(dir);
  return { out: path.join(dir, name), cache: path.join(dir, 'cache') };
}

interface BuildOpts {
  root?: string;
  spec?: string;
  format?: 'dir' | 'squashfs';
  extra?: string[];
  /** A directory source (no keys, no cache). */
  directory?: boolean;
}

function buildArgs(o: BuildOpts = {}): { args: string[]; out: string } {
  const format = o.format ?? 'dir';
  const f = fresh(format === 'dir' ? 'image' : 'image.sqfs');
  const http = o.directory ? [] : ['--cvmfs-keys', keysDir, '--cvmfs-cache', f.cache];
  const args = ['build', '--format', format, '--cvmfs-root', o.root ?? server.url, ...http, '--spec', o.spec ?? spec, '-o', f.out, ...(o.extra ?? [])];
  return { args, out: f.out };
}

function build(o: BuildOpts = {}): Run & { out: string } {
  const { args, out } = buildArgs(o);
  const r = shrinkwrap(args, { env: BASE_ENV });
  expect(r.code, r.stderr).toBe(0);
  return { ...r, out };
}

/**
 * The CLI run without blocking this thread: a forward proxy answers on it (spawnSync would leave
 * every request through the proxy waiting).
 */
function shrinkwrapAsync(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const warnings = (r: Run) => r.stderr.split('\n').filter((l) => l.startsWith('shrinkwrap: warning: '));

/** A SquashFS image unpacked with unsquashfs (xattrs and all, as root). */
function unsquash(image: string): string {
  const dir = `${image}.unpacked`;
  execFileSync('unsquashfs', ['-no-progress', '-d', dir, image], { stdio: ['ignore', 'ignore', 'pipe'] });
  return dir;
}

/** `getfattr -d` of one file: its user.* attributes as `name="value"` lines. */
function userXattrs(file: string): string[] {
  return execFileSync('getfattr', ['-h', '-d', '--absolute-names', file], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function pathsUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

// ---- altered copies of the repository ----

interface Altered {
  /** <dir>/srv, holding <FQRN> only. */
  srv: string;
  repo: string;
}

/** A copy of the published repository with its root catalog changed by `sql`, re-stored and the manifest re-signed. */
function alteredCopy(sql: string): Altered {
  const dir = path.join(work, `altered-${counter++}`);
  const copy = path.join(dir, 'srv');
  const repo = path.join(copy, FQRN);
  fs.cpSync(path.join(srv, FQRN), repo, { recursive: true });
  const manifestFile = path.join(repo, '.cvmfspublished');
  const manifest = parseManifest(splitSigned(fs.readFileSync(manifestFile)).body);
  const db = path.join(dir, 'root.db');
  fs.writeFileSync(db, zlib.inflateSync(fs.readFileSync(path.join(repo, objectPath(manifest.rootCatalog, 'C')))));
  const sqlite = openDatabase(db, { readOnly: false });
  sqlite.exec(sql);
  sqlite.close();
  const stored = zlib.deflateSync(fs.readFileSync(db));
  const hash = hashBytes('sha1', stored);
  fs.mkdirSync(path.dirname(path.join(repo, objectPath(hash, 'C'))), { recursive: true });
  fs.writeFileSync(path.join(repo, objectPath(hash, 'C')), stored);
  const body = encodeManifest({ ...manifest, rootCatalog: hash, catalogSize: fs.statSync(db).size });
  fs.writeFileSync(manifestFile, signManifest(Buffer.from(body), fs.readFileSync(keys.certificateKey, 'utf8')));
  return { srv: copy, repo };
}

async function serve(dir: string): Promise<CvmfsServer> {
  const s = await startCvmfsServer(dir);
  servers.push(s);
  return s;
}

// ---------------------------------------------------------------------------------------------

describe('cvmfs over HTTP: what the catalogs carry reaches the image', () => {
  it('user.* extended attributes stored in the catalog: on the file and the directory, in dir and SquashFS', () => {
    const d = build({ extra: ARCH });
    expect(warnings(d)).toEqual([]);
    const image = path.join(d.out, FQRN);
    expect(fs.readFileSync(path.join(image, 'etc/tagged.conf'), 'utf8')).toBe('key=value\n');
    expect(userXattrs(path.join(image, 'etc/tagged.conf'))).toEqual(['user.origin="from-the-catalog"']);
    expect(userXattrs(path.join(image, 'etc'))).toEqual(['user.dirnote="a directory"']);
    expect(userXattrs(path.join(image, 'etc/plain.conf'))).toEqual([]);

    const s = build({ format: 'squashfs', extra: ARCH });
    expect(warnings(s)).toEqual([]);
    const unpacked = unsquash(s.out);
    expect(userXattrs(path.join(unpacked, FQRN, 'etc/tagged.conf'))).toEqual(['user.origin="from-the-catalog"']);
    expect(userXattrs(path.join(unpacked, FQRN, 'etc'))).toEqual(['user.dirnote="a directory"']);
    expect(userXattrs(path.join(unpacked, FQRN, 'etc/plain.conf'))).toEqual([]);
  });

  it('variant symlinks: $(ARCH) from --cvmfs-variant, $(OS:-el9) its default; unset, empty with one warning; plan shows them expanded', () => {
    const set = build({ extra: ARCH });
    expect(warnings(set)).toEqual([]);
    const image = path.join(set.out, FQRN);
    expect(fs.readlinkSync(path.join(image, 'arch-lib'))).toBe('x86_64/lib');
    expect(fs.readlinkSync(path.join(image, 'arch-libx'))).toBe('x86_64/lib/libx.so');
    expect(fs.readlinkSync(path.join(image, 'os-bin'))).toBe('el9/bin');
    expect(fs.readFileSync(path.join(image, 'arch-libx'), 'utf8')).toBe('elf');

    const unset = build();
    const img = path.join(unset.out, FQRN);
    // The client expands a variable with no value and no default to nothing.
    expect(fs.readlinkSync(path.join(img, 'arch-lib'))).toBe('/lib');
    expect(fs.readlinkSync(path.join(img, 'arch-libx'))).toBe('/lib/libx.so');
    expect(fs.readlinkSync(path.join(img, 'os-bin'))).toBe('el9/bin');
    // One warning for the variable however many links use it; and the closure's for the links now absolute.
    expect(warnings(unset).sort()).toEqual([
      `shrinkwrap: warning: ${MOUNT}/arch-lib -> $(ARCH)/lib: $(ARCH) has no value and no default (--cvmfs-variant ARCH=VALUE sets one)`,
      `shrinkwrap: warning: ${MOUNT}/arch-lib -> /lib: points outside /cvmfs; kept as a link (expected for a link into the host system: the base image provides its target or not; to leave the link out: --exclude '${MOUNT}/arch-lib')`,
      `shrinkwrap: warning: ${MOUNT}/arch-libx -> /lib/libx.so: points outside /cvmfs; kept as a link (expected for a link into the host system: the base image provides its target or not; to leave the link out: --exclude '${MOUNT}/arch-libx')`,
    ]);

    const f = fresh('unused');
    const plan = shrinkwrap(['plan', '--cvmfs-root', server.url, '--cvmfs-keys', keysDir, '--cvmfs-cache', f.cache, '--spec', spec, '--cvmfs-variant', 'ARCH=aarch64'], { env: BASE_ENV });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`${MOUNT}/arch-lib -> aarch64/lib`);
    expect(plan.stdout).toContain(`${MOUNT}/os-bin -> el9/bin`);
    expect(plan.stdout).not.toContain('$(');
  });

  it('a hidden entry (FLAG_HIDDEN): left out of the image and of plan, with no warning', async () => {
    const a = alteredCopy(`UPDATE catalog SET flags = flags | ${FLAG_HIDDEN} WHERE name = 'hidden.txt'`);
    const s = await serve(a.srv);
    const r = build({ root: s.url, extra: ARCH });
    expect(warnings(r)).toEqual([]);
    const image = path.join(r.out, FQRN);
    expect(fs.existsSync(path.join(image, 'hidden.txt'))).toBe(false);
    expect(fs.readFileSync(path.join(image, 'README'), 'utf8')).toBe('hello\n');
    // The pristine repository has it: only the flag leaves it out.
    expect(fs.existsSync(path.join(build({ extra: ARCH }).out, FQRN, 'hidden.txt'))).toBe(true);

    const f = fresh('unused');
    const plan = shrinkwrap(['plan', '--cvmfs-root', s.url, '--cvmfs-keys', keysDir, '--cvmfs-cache', f.cache, '--spec', spec, '--json', ...ARCH], { env: BASE_ENV });
    expect(plan.code, plan.stderr).toBe(0);
    const entries: string[] = JSON.parse(plan.stdout).entries.map((e: { path: string }) => e.path);
    expect(entries).toContain(`${MOUNT}/README`);
    expect(entries.filter((p) => p.includes('hidden'))).toEqual([]);
  });

  it('external files (FLAG_EXTERNAL): left out, with one warning naming the repository', async () => {
    const a = alteredCopy(`UPDATE catalog SET flags = flags | ${FLAG_EXTERNAL} WHERE name IN ('outside.dat', 'outside2.dat')`);
    const s = await serve(a.srv);
    const r = build({ root: s.url, extra: ARCH });
    const image = path.join(r.out, FQRN);
    expect(fs.existsSync(path.join(image, 'ext/outside.dat'))).toBe(false);
    expect(fs.existsSync(path.join(image, 'ext/outside2.dat'))).toBe(false);
    expect(fs.readFileSync(path.join(image, 'ext/inside.dat'), 'utf8')).toBe('data of the repository\n');
    expect(warnings(r)).toEqual([`shrinkwrap: warning: ${FQRN}: external files (data outside the repository, CVMFS_EXTERNAL_URL) are left out, e.g. ${MOUNT}/ext/outside.dat`]);
  });

  it('--cvmfs-revision and --cvmfs-tag: an older revision; provenance names the revision, its root catalog and the tag', () => {
    const read = (r: { out: string }) => fs.readFileSync(path.join(r.out, 'cvmfs', REVS, 'version.txt'), 'utf8');
    const provenance = (r: { out: string }) => JSON.parse(fs.readFileSync(path.join(r.out, '.shrinkwrap/provenance.json'), 'utf8')).source.repositories;
    const withBase = (extra: string[] = []) => build({ spec: revSpec, extra: ['--base', base, ...extra] });

    const newest = withBase();
    expect(read(newest)).toBe('two\n');
    expect(provenance(newest)).toEqual([expect.objectContaining({ fqrn: REVS, revision: 2, tag: null })]);
    expect(provenance(newest)[0].rootCatalog).not.toBe(revision1Catalog);

    const byRevision = withBase(['--cvmfs-revision', '1']);
    expect(read(byRevision)).toBe('one\n');
    expect(fs.readFileSync(path.join(byRevision.out, 'cvmfs', REVS, 'same.txt'), 'utf8')).toBe('unchanged\n');
    expect(provenance(byRevision)).toEqual([expect.objectContaining({ fqrn: REVS, revision: 1, rootCatalog: revision1Catalog, tag: null })]);

    const byTag = withBase(['--cvmfs-tag', 'v1']);
    expect(read(byTag)).toBe('one\n');
    expect(provenance(byTag)).toEqual([expect.objectContaining({ fqrn: REVS, revision: 1, rootCatalog: revision1Catalog, tag: 'v1' })]);

    const v2 = withBase(['--cvmfs-tag', 'v2']);
    expect(read(v2)).toBe('two\n');
    expect(provenance(v2)).toEqual([expect.objectContaining({ revision: 2, tag: 'v2' })]);
  });

  it('a FIFO is published as a special file (flag, FIFO mode); over HTTP it is skipped with one warning, as from a directory source: the same image', () => {
    // The catalog row: a special file, its type in the mode.
    const repo = path.join(srv, SPECIAL);
    const manifest = parseManifest(splitSigned(fs.readFileSync(path.join(repo, '.cvmfspublished'))).body);
    const db = path.join(work, 'special-root.db');
    fs.writeFileSync(db, zlib.inflateSync(fs.readFileSync(path.join(repo, objectPath(manifest.rootCatalog, 'C')))));
    const sqlite = openDatabase(db, { readOnly: true });
    const row = sqlite.prepare("SELECT flags, mode FROM catalog WHERE name = 'pipe'").get()!;
    sqlite.close();
    expect(Number(row.flags) & (FLAG_FILE | FLAG_SPECIAL)).toBe(FLAG_FILE | FLAG_SPECIAL);
    expect(Number(row.mode) & 0o170000).toBe(fs.constants.S_IFIFO);

    const http = build({ spec: specialSpec, format: 'squashfs' });
    const fromDir = build({ root: specialLocal, spec: specialSpec, format: 'squashfs', directory: true });
    // The selection leaves FIFOs, sockets and devices out of images from /cvmfs, whatever the source.
    expect(warnings(http)).toEqual([`shrinkwrap: warning: ${server.url}/${SPECIAL}/run/pipe (in the catalogs): FIFO skipped`]);
    expect(warnings(fromDir)).toEqual([`shrinkwrap: warning: ${path.join(specialLocal, SPECIAL)}/run/pipe: FIFO skipped`]);
    const listing = (image: string) => execFileSync('unsquashfs', ['-lln', image], { encoding: 'utf8' }).split('\n').filter((l) => /^[a-z-]{10} /.test(l));
    expect(listing(http.out)).toEqual(listing(fromDir.out));
    expect(listing(http.out).some((l) => l.endsWith(`/${SPECIAL}/run/README`))).toBe(true);
    expect(listing(http.out).filter((l) => l.includes('pipe'))).toEqual([]);
  });
});

describe('cvmfs over HTTP: server list and proxies at the CLI', () => {
  const args = (root: string, extra: string[] = []) => buildArgs({ root, spec: revSpec, extra });
  const expectImage = (r: Run, out: string) => {
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, REVS, 'version.txt'), 'utf8')).toBe('two\n');
  };

  it('a server URL naming the repository with @fqrn@: read from there, and messages name it so', () => {
    const r = build({ root: `${server.url}/@fqrn@`, spec: specialSpec });
    expect(fs.readFileSync(path.join(r.out, SPECIAL, 'run/README'), 'utf8')).toBe('a pipe beside\n');
    expect(warnings(r)).toEqual([`shrinkwrap: warning: ${server.url}/${SPECIAL}/run/pipe (in the catalogs): FIFO skipped`]);
  });
  it('--cvmfs-proxy: every request goes through the proxy', async () => {
    const proxy = await startForwardProxy();
    proxies.push(proxy);
    const before = (await server.counts()).total;
    const a = args(server.url, ['--cvmfs-proxy', proxy.url]);
    const r = await shrinkwrapAsync(a.args, BASE_ENV);
    expectImage(r, a.out);
    const requests = (await server.counts()).total - before;
    expect(requests).toBeGreaterThan(4);
    expect(proxy.count).toBe(requests);
  });

  it('--cvmfs-proxy "DEAD;DIRECT": falls back to DIRECT with one warning', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const a = args(server.url, ['--cvmfs-proxy', `${dead};DIRECT`]);
    const r = await shrinkwrapAsync(a.args, BASE_ENV);
    expectImage(r, a.out);
    expect(warnings(r)).toEqual([`shrinkwrap: warning: cvmfs: proxy ${dead} skipped: connection refused (ECONNREFUSED); trying DIRECT`]);
  });

  it('http_proxy in the environment is used without --cvmfs-proxy; no_proxy=127.0.0.1 bypasses it', async () => {
    const proxy = await startForwardProxy();
    proxies.push(proxy);
    const before = (await server.counts()).total;
    const a = args(server.url);
    const r = await shrinkwrapAsync(a.args, { ...BASE_ENV, http_proxy: proxy.url });
    expectImage(r, a.out);
    expect(proxy.count).toBeGreaterThan(4);
    expect(proxy.count).toBe((await server.counts()).total - before);

    const seen = proxy.count;
    const b = args(server.url);
    const bypass = await shrinkwrapAsync(b.args, { ...BASE_ENV, http_proxy: proxy.url, no_proxy: '127.0.0.1' });
    expectImage(bypass, b.out);
    expect(proxy.count).toBe(seen);
  });
});

// Issue 19, the refusals: a repository read over HTTP that cannot be trusted, or a server that
// fails, stops the build with one line (no stack) naming the repository, the object or file and
// what did not match, a non-zero exit, and nothing written: no output, no temporary beside it,
// and a cache holding only complete, verified objects.
// Each case serves a copy of one published repository (whitelist until 2099), altered for it, from
// a server on 127.0.0.1, and builds with a spec selecting everything and a fresh cache.
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestKeys, makeTestKeys, publishRepository } from '../../fixtures/cvmfs-repo.js';
import { CLI, type Run, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { type CvmfsServer, startCvmfsServer } from '../helpers/cvmfs-server.js';
import { freePort } from '../helpers/registry.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';
import { hashBytes, objectPath } from '../../src/formats/cvmfs/hash.js';
import { encodeManifest, parseManifest } from '../../src/formats/cvmfs/manifest.js';
import { signManifest, signWhitelist, splitSigned } from '../../src/formats/cvmfs/signed.js';
import { encodeWhitelist, parseWhitelist } from '../../src/formats/cvmfs/whitelist.js';
import { openDatabase } from '../../src/util/sqlite.js';
import { md5Path } from '../../src/formats/cvmfs/catalog.js';

const FQRN = 'refuse.test.ch';
const CHUNK = 16 << 10;
const README = 'hello from the root catalog\n';
const BLOB = crypto.randomBytes(3 * CHUNK + 100); // incompressible: four chunks
const TOOL = '#!/bin/sh\necho tool\n';

let work: string;
/** The published repository (<pristine>/<FQRN>), copied for each case. */
let pristine: string;
let keys: TestKeys;
let other: TestKeys;
let root: { catalog: string; nested: string };
const servers: CvmfsServer[] = [];
let caseCount = 0;

/** The stored object of `content` as the fixture names it: zlib, SHA-1 of the compressed bytes. */
const objectOf = (content: Buffer | string, suffix: '' | 'P' | 'C' = ''): string => objectPath(hashBytes('sha1', zlib.deflateSync(content)), suffix);

beforeAll(() => {
  work = tmpDir('sw-cvmfs-refuse-');
  const tree = makeTree(path.join(work, 'tree'), {
    README,
    'data/blob': BLOB.toString('latin1'),
    'etc/conf.txt': 'key=value\n',
    'sw/bin/tool': { file: TOOL, mode: 0o755 },
    'sw/lib/libx.so.1': 'elf',
    'sw/lib/libx.so': { link: 'libx.so.1' },
  });
  fs.writeFileSync(path.join(tree, 'data/blob'), BLOB);
  keys = makeTestKeys(path.join(work, 'keys'), FQRN);
  other = makeTestKeys(path.join(work, 'other-keys'), FQRN);
  const published = publishRepository({
    tree,
    fqrn: FQRN,
    out: path.join(work, 'srv'),
    keys,
    nestedAt: ['/sw'],
    chunkAbove: CHUNK,
    timestamp: 1_600_000_000,
    whitelistExpires: new Date('2099-01-01T00:00:00Z'),
    tags: [{ name: 'v1', revision: 1 }],
  });
  pristine = published.repository;
  const catalogs = published.objects.filter((o) => o.endsWith('C'));
  const rootObject = objectPath(parseManifest(splitSigned(fs.readFileSync(path.join(pristine, '.cvmfspublished'))).body).rootCatalog, 'C');
  root = { catalog: rootObject, nested: catalogs.find((c) => c !== rootObject)! };
  expect(catalogs).toHaveLength(2);
  expect(published.objects.filter((o) => o.endsWith('P'))).toHaveLength(4);
  expect(published.objects).toContain(objectOf(README));
}, 60_000);

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Case {
  dir: string;
  /** <dir>/srv/<FQRN>: the repository this case serves, to alter. */
  repo: string;
  srv: string;
  spec: string;
  cache: string;
  /** Empty directory the output goes in: it must stay empty. */
  outDir: string;
}

/** A fresh copy of the published repository, spec, cache and output directory. */
function newCase(fqrn = FQRN): Case {
  const dir = path.join(work, `case-${caseCount++}`);
  const srv = path.join(dir, 'srv');
  fs.cpSync(pristine, path.join(srv, fqrn), { recursive: true });
  fs.mkdirSync(path.join(dir, 'out'));
  return { dir, repo: path.join(srv, fqrn), srv, spec: writeSpec(dir, `${fqrn}.spec`, ['/*']), cache: path.join(dir, 'cache'), outDir: path.join(dir, 'out') };
}

async function serve(c: Case, opts: { delayMs?: number } = {}): Promise<CvmfsServer> {
  const s = await startCvmfsServer(c.srv, opts);
  servers.push(s);
  return s;
}

function buildArgs(c: Case, root: string, extra: string[] = [], format = 'dir'): string[] {
  const out = path.join(c.outDir, format === 'dir' ? 'image' : 'image.sqfs');
  return ['build', '--format', format, '--cvmfs-root', root, '--cvmfs-keys', keys.dir, '--cvmfs-cache', c.cache, '--spec', c.spec, '-o', out, ...extra];
}

function build(c: Case, root: string, extra: string[] = [], format = 'dir'): Run {
  return shrinkwrap(buildArgs(c, root, extra, format), { env: { ...process.env, SOURCE_DATE_EPOCH: '1600000000' } });
}

function flipByte(file: string, at: number): void {
  const b = fs.readFileSync(file);
  const i = at < 0 ? b.length + at : at;
  b[i]! ^= 0x40;
  fs.writeFileSync(file, b);
}

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.lstatSync(path.join(dir, f)).isFile()).sort();
}

/** Nothing in the output directory; in the cache only objects of the served repository, inflated, and the whole blob. */
function expectNothingWritten(c: Case): void {
  expect(fs.readdirSync(c.outDir)).toEqual([]);
  for (const f of filesUnder(c.cache)) {
    const m = /^(objects|files)\/([0-9a-z]{2})\/([^/]+)$/.exec(f);
    expect(m, `cache ${f}: not an object's name`).not.toBeNull();
    const got = fs.readFileSync(path.join(c.cache, f));
    if (m![1] === 'files') {
      expect(got.equals(BLOB), `cache ${f}: not the chunked file`).toBe(true);
      continue;
    }
    const stored = path.join(c.repo, 'data', m![2]!, m![3]!);
    expect(fs.existsSync(stored), `cache ${f}: no such object in the repository`).toBe(true);
    // The name is the hash of the stored bytes: an object kept in the cache must be the one stored.
    expect(hashBytes('sha1', fs.readFileSync(stored)).digest.toString('hex'), `cache ${f}: an altered object`).toBe(m![2]! + m![3]!.replace(/[A-Z]$/, ''));
    expect(got.equals(zlib.inflateSync(fs.readFileSync(stored))), `cache ${f}: not the object's content`).toBe(true);
  }
}

function expectBuilt(c: Case, r: Run): void {
  expect(r.code, r.stderr).toBe(0);
  const image = path.join(c.outDir, 'image', FQRN);
  expect(fs.readFileSync(path.join(image, 'README'), 'utf8')).toBe(README);
  expect(fs.readFileSync(path.join(image, 'data/blob')).equals(BLOB)).toBe(true);
  expect(fs.readFileSync(path.join(image, 'sw/bin/tool'), 'utf8')).toBe(TOOL);
  expect(fs.readlinkSync(path.join(image, 'sw/lib/libx.so'))).toBe('libx.so.1');
}

const warnings = (r: Run) => r.stderr.split('\n').filter((l) => l.startsWith('shrinkwrap: warning: '));

/** Replace the manifest by `body`, hashed and signed by `key` (the repository's certificate key by default). */
function resignManifest(c: Case, body: Buffer, key = keys.certificateKey): void {
  fs.writeFileSync(path.join(c.repo, '.cvmfspublished'), signManifest(body, fs.readFileSync(key, 'utf8')));
}

function manifestOf(c: Case) {
  return parseManifest(splitSigned(fs.readFileSync(path.join(c.repo, '.cvmfspublished'))).body);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('cvmfs over HTTP: what cannot be trusted is refused in one line, with nothing written', () => {
  it('the pristine repository builds (the cases below differ from it by one thing each)', async () => {
    const c = newCase();
    const s = await serve(c);
    const r = build(c, s.url);
    expectBuilt(c, r);
    expect(warnings(r)).toEqual([]);
  });

  it.each([
    { name: 'an altered data object (a file in the root catalog)', object: () => objectOf(README), at: 10 },
    { name: 'an altered data object (the last byte: the zlib checksum)', object: () => objectOf(README), at: -1 },
    { name: 'an altered chunk', object: () => objectOf(BLOB.subarray(CHUNK, 2 * CHUNK), 'P'), at: 100 },
    { name: 'an altered nested catalog', object: () => root.nested, at: 200 },
  ])('$name: the content hash does not match', async ({ object, at }) => {
    const c = newCase();
    flipByte(path.join(c.repo, object()), at);
    const s = await serve(c);
    const r = build(c, s.url);
    expectOneLineError(r, 1, new RegExp(`${esc(FQRN)}: ${esc(object())}: content hash [0-9a-f]{40} does not match`));
    expectNothingWritten(c);
  });

  it('an altered data object, building squashfs: the same line, no image', async () => {
    const c = newCase();
    flipByte(path.join(c.repo, objectOf(TOOL)), 5);
    const s = await serve(c);
    const r = build(c, s.url, [], 'squashfs');
    expectOneLineError(r, 1, `${FQRN}: ${objectOf(TOOL)}: content hash`);
    expectNothingWritten(c);
  });

  it('an altered manifest body: its hash line does not match', async () => {
    const c = newCase();
    const file = path.join(c.repo, '.cvmfspublished');
    fs.writeFileSync(file, fs.readFileSync(file, 'latin1').replace('\nD240\n', '\nD241\n'), 'latin1');
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, new RegExp(`${esc(FQRN)}: \\.cvmfspublished: its content hashes to [0-9a-f]{40}, its hash line says [0-9a-f]{40}`));
    expectNothingWritten(c);
  });

  it("a manifest whose signature is not the certificate's: the signature does not match", async () => {
    const c = newCase();
    const file = path.join(c.repo, '.cvmfspublished');
    const bytes = fs.readFileSync(file);
    const sig = splitSigned(bytes).signature;
    const at = bytes.length - sig.length;
    Buffer.from(sig).reverse().copy(bytes, at);
    fs.writeFileSync(file, bytes);
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, new RegExp(`${esc(FQRN)}: \\.cvmfspublished: signature does not match certificate ([0-9A-F]{2}:){19}[0-9A-F]{2}`));
    expectNothingWritten(c);
  });

  it('a whitelist signed by another master key than the one in the keys directory', async () => {
    const c = newCase();
    const s = await serve(c);
    fs.mkdirSync(path.join(c.dir, 'keys'));
    fs.copyFileSync(other.masterPublic, path.join(c.dir, 'keys', `${FQRN}.pub`));
    const r = shrinkwrap(buildArgs(c, s.url).map((a) => (a === keys.dir ? path.join(c.dir, 'keys') : a)));
    expectOneLineError(r, 1, `${FQRN}: .cvmfswhitelist: not signed by a master key in ${path.join(c.dir, 'keys')} (tried ${FQRN}.pub)`);
    expectNothingWritten(c);
  });

  it("a manifest signed by a certificate the whitelist does not list", async () => {
    const c = newCase();
    // The same tree published with keys B: the same catalogs, B's certificate and manifest.
    const b = publishRepository({ tree: path.join(work, 'tree'), fqrn: FQRN, out: path.join(c.dir, 'b'), keys: other, nestedAt: ['/sw'], chunkAbove: CHUNK, timestamp: 1_600_000_000, tags: [{ name: 'v1', revision: 1 }] });
    const cert = b.objects.find((o) => o.endsWith('X'))!;
    fs.mkdirSync(path.dirname(path.join(c.repo, cert)), { recursive: true });
    fs.copyFileSync(path.join(b.repository, cert), path.join(c.repo, cert));
    fs.copyFileSync(path.join(b.repository, '.cvmfspublished'), path.join(c.repo, '.cvmfspublished'));
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, new RegExp(`${esc(FQRN)}: certificate ([0-9A-F]{2}:){19}[0-9A-F]{2} \\(${esc(cert)}\\) is not in the whitelist`));
    expectNothingWritten(c);
  });

  it("a repository served under another name: the whitelist names its own", async () => {
    const c = newCase('renamed.test.ch');
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, 'renamed.test.ch: .cvmfswhitelist: made for repository refuse.test.ch, not this one');
    expectNothingWritten(c);
  });

  it('a server that is down: skipped with one warning when another is there, one error line when none', async () => {
    const dead = `http://127.0.0.1:${await freePort()}/cvmfs`;
    const c = newCase();
    const s = await serve(c);
    const r = build(c, `${dead};${s.url}`);
    expectBuilt(c, r);
    expect(warnings(r)).toEqual([`shrinkwrap: warning: cvmfs: ${dead} skipped: connection refused (ECONNREFUSED); trying ${s.url}`]);

    const d = newCase();
    const r2 = build(d, dead);
    expectOneLineError(r2, 1, new RegExp(`${esc(FQRN)}: \\.cvmfspublished: connection refused`));
    expectNothingWritten(d);
  });

  it('a server that stalls in the middle of an object: one line within seconds (--cvmfs-timeout 1)', async () => {
    const c = newCase();
    const s = await serve(c);
    const object = objectOf(BLOB.subarray(0, CHUNK), 'P');
    await s.fault(`/cvmfs/${FQRN}/${object}`, { stallAfter: 100 });
    const t0 = Date.now();
    const r = build(c, s.url, ['--cvmfs-timeout', '1']);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expectOneLineError(r, 1, `${FQRN}: ${object}: no response within 1 s`);
    expectNothingWritten(c);
  });

  it('an object the server does not have (404)', async () => {
    const c = newCase();
    fs.rmSync(path.join(c.repo, objectOf(TOOL)));
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, `${FQRN}: ${objectOf(TOOL)}: 404 Not Found`);
    expectNothingWritten(c);
  });

  it('a truncated response', async () => {
    const c = newCase();
    const s = await serve(c);
    const object = objectOf(BLOB.subarray(2 * CHUNK, 3 * CHUNK), 'P');
    await s.fault(`/cvmfs/${FQRN}/${object}`, { truncateAfter: 1000 });
    expectOneLineError(build(c, s.url), 1, new RegExp(`${esc(FQRN)}: ${esc(object)}: truncated \\(got 1000 of \\d+ bytes\\)`));
    expectNothingWritten(c);
  });

  it('a redirect loop', async () => {
    const c = newCase();
    const s = await serve(c);
    const urlPath = `/cvmfs/${FQRN}/${root.nested}`;
    await s.fault(urlPath, { redirect: `${s.url.replace(/\/cvmfs$/, '')}${urlPath}` });
    expectOneLineError(build(c, s.url), 1, `${FQRN}: ${root.nested}: redirect loop`);
    expectNothingWritten(c);
  });

  it('an object bigger than its catalog says (a catalog claiming one byte less, re-signed)', async () => {
    const c = newCase();
    // The root catalog, with README one byte shorter; stored under its new hash; the manifest re-signed.
    alterRootCatalog(c, ["UPDATE catalog SET size = size - 1 WHERE name = 'README'"]);
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, `${FQRN}: ${objectOf(README)}: larger than the catalog says (${README.length - 1} bytes)`);
    expectNothingWritten(c);
  });

  it('an expired whitelist: refused naming the date; read with --cvmfs-allow-expired and one warning', async () => {
    const c = newCase();
    const file = path.join(c.repo, '.cvmfswhitelist');
    const w = parseWhitelist(splitSigned(fs.readFileSync(file)).body);
    fs.writeFileSync(file, signWhitelist(encodeWhitelist({ ...w, expires: new Date('2020-01-02T03:04:05Z') }), fs.readFileSync(keys.masterPrivate, 'utf8')));
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, `${FQRN}: .cvmfswhitelist: expired on 2020-01-02T03:04:05Z`);
    expectNothingWritten(c);

    const r = build(c, s.url, ['--cvmfs-allow-expired']);
    expectBuilt(c, r);
    expect(warnings(r)).toEqual([`shrinkwrap: warning: ${FQRN}: .cvmfswhitelist expired on 2020-01-02T03:04:05Z; read because of --cvmfs-allow-expired`]);
  });

  it('a tag or a revision the repository does not have', async () => {
    const c = newCase();
    const s = await serve(c);
    expectOneLineError(build(c, s.url, ['--cvmfs-tag', 'nope']), 1, `${FQRN}: --cvmfs-tag nope: no such tag (the newest: v1)`);
    expectNothingWritten(c);
    expectOneLineError(build(c, s.url, ['--cvmfs-revision', '99']), 1, `${FQRN}: --cvmfs-revision 99: the newest revision is 1`);
    expectNothingWritten(c);
  });

  it('Ctrl-C while fetching: gone within a second, nothing left behind', async () => {
    const c = newCase();
    const s = await serve(c, { delayMs: 200 });
    const child = spawn(process.execPath, [CLI, ...buildArgs(c, s.url, ['--cvmfs-parallel', '1'])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // Once a few objects are in: past the manifest, whitelist, certificate and root catalog.
    await new Promise((r) => setTimeout(r, 1500));
    expect(child.exitCode, stderr).toBeNull();
    const t0 = Date.now();
    child.kill('SIGINT');
    const { code, signal } = await exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    // The handlers are in place from the start: exit 130, the fetch worker stopped, nothing left.
    expect({ code, signal }).toEqual({ code: 130, signal: null });
    expect(stderr).toMatch(/^shrinkwrap: interrupted by SIGINT(; temporary output removed)?\n$/);
    expect((await s.counts()).total).toBeGreaterThan(4);
    expectNothingWritten(c);
  });

  it('SIGTERM while a server accepts and never answers: gone within a second (the repository is opened without blocking)', async () => {
    const c = newCase();
    // A server that takes the connection and says nothing, for longer than the test waits.
    const silent = net.createServer((sock) => sock.on('data', () => {}));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const child = spawn(process.execPath, [CLI, ...buildArgs(c, `http://127.0.0.1:${port}/cvmfs`)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      await new Promise((r) => setTimeout(r, 1500));
      expect(child.exitCode, stderr).toBeNull();
      const t0 = Date.now();
      child.kill('SIGTERM');
      const { code, signal } = await exited;
      // Before, the main thread waited for the manifest in Atomics.wait and the handler ran a minute later.
      expect(Date.now() - t0).toBeLessThan(1000);
      expect({ code, signal }).toEqual({ code: 143, signal: null });
      expect(fs.readdirSync(c.outDir)).toEqual([]);
    } finally {
      silent.close();
    }
  });
});

/** Run SQL on a copy of the case's root catalog, store it under its new hash and re-sign the manifest. */
function alterRootCatalog(c: Case, statements: string[]): void {
  const db = path.join(c.dir, `root-${crypto.randomBytes(4).toString('hex')}.db`);
  fs.writeFileSync(db, zlib.inflateSync(fs.readFileSync(path.join(c.repo, root.catalog))));
  const sql = openDatabase(db, { readOnly: false });
  for (const st of statements) sql.exec(st);
  sql.close();
  const stored = zlib.deflateSync(fs.readFileSync(db));
  const hash = hashBytes('sha1', stored);
  fs.mkdirSync(path.dirname(path.join(c.repo, objectPath(hash, 'C'))), { recursive: true });
  fs.writeFileSync(path.join(c.repo, objectPath(hash, 'C')), stored);
  resignManifest(c, encodeManifest({ ...manifestOf(c), rootCatalog: hash, catalogSize: fs.statSync(db).size }));
}

/** A repository path's key halves as SQL integer literals. */
const keyOf = (repoPath: string) => md5Path(repoPath).map(String) as [string, string];

describe('cvmfs over HTTP: a catalog its publisher signed can still not make the image escape, loop or lose files', () => {
  it('a row named ".." or "a/b" (its key computed, so a lookup finds it): refused in one line', async () => {
    for (const name of ['..', 'a/b']) {
      const c = newCase();
      const [k1, k2] = keyOf(`/${name}`);
      alterRootCatalog(c, [`UPDATE catalog SET name = '${name}', md5path_1 = ${k1}, md5path_2 = ${k2} WHERE name = 'README'`]);
      const s = await serve(c);
      expectOneLineError(build(c, s.url), 1, new RegExp(`^shrinkwrap: error: ${esc(FQRN)}: data/[0-9a-f]{2}/[0-9a-f]{38}C: a row named ${esc(JSON.stringify(name))} in /: not a file name$`, 'm'));
      expectNothingWritten(c);
    }
  });

  it('a nested catalog listed by itself (a loop) or outside its parent: refused in one line, no hang', async () => {
    const c = newCase();
    alterRootCatalog(c, [`INSERT INTO nested_catalogs (path, sha1, size) VALUES ('', '${root.catalog.replace(/^data\/(..)\/(.*)C$/, '$1$2')}', 0)`]);
    const s = await serve(c);
    expectOneLineError(build(c, s.url), 1, /nested catalog at "", not below \//);
    expectNothingWritten(c);
  });

  it('a name that is not UTF-8 keeps its bytes (and its key): the image has the same name', async () => {
    const c = newCase();
    const raw = Buffer.from([0x52, 0x45, 0x41, 0x44, 0xff]); // "READ\xff"
    const [k1, k2] = md5Path('/' + raw.toString('latin1')).map(String);
    alterRootCatalog(c, [`UPDATE catalog SET name = CAST(X'${raw.toString('hex')}' AS TEXT), md5path_1 = ${k1}, md5path_2 = ${k2} WHERE name = 'README'`]);
    const s = await serve(c);
    const r = build(c, s.url);
    expect(r.code, r.stderr).toBe(0);
    const names = fs.readdirSync(Buffer.from(path.join(c.outDir, 'image', FQRN)), { encoding: 'buffer' });
    expect(names.some((n) => n.equals(raw))).toBe(true);
    expect(fs.readFileSync(Buffer.concat([Buffer.from(path.join(c.outDir, 'image', FQRN) + '/'), raw]), 'utf8')).toBe(README);
  });

  it('a glob that reaches a catalog no server has: one line, not "matches nothing"', async () => {
    const c = newCase();
    fs.rmSync(path.join(c.repo, root.nested));
    const s = await serve(c);
    const r = shrinkwrap(['plan', '--cvmfs-root', s.url, '--cvmfs-keys', keys.dir, '--cvmfs-cache', c.cache, '--include', `${FQRN}/sw/**`]);
    expectOneLineError(r, 1, `${FQRN}: ${root.nested}: 404 Not Found`);
  });

  it('a repository no server has is "not found"; one whose servers could not all be asked is an error', async () => {
    const c = newCase();
    const empty = path.join(c.dir, 'empty');
    fs.mkdirSync(empty);
    const s = await startCvmfsServer(empty);
    servers.push(s);
    expectOneLineError(build(c, s.url), 2, `repository ${FQRN} not found under ${s.url}`);
    const dead = `http://127.0.0.1:${await freePort()}/cvmfs`;
    // The dead server is skipped with its warning; that the other has no such repository proves nothing.
    const r = build(c, `${dead};${s.url}`);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('shrinkwrap: error: '))).toEqual([
      `shrinkwrap: error: ${FQRN}: .cvmfspublished: ${dead}: connection refused (ECONNREFUSED); ${s.url}: 404 Not Found`,
    ]);
    expectNothingWritten(c);
  });
});

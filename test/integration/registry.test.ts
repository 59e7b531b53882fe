// The registry client against real registries (Debian's docker-registry: anonymous, Basic auth,
// Bearer tokens from a small token server here, TLS) checked with skopeo, umoci and
// oci-image-tool; and against tiny Node servers that misbehave (500, silence, wrong bytes, redirects).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildError, InputError, type ShrinkwrapError } from '../../src/model/errors.js';
import type { RegistryOptions } from '../../src/registry/client.js';
import { pullToLayout } from '../../src/registry/pull.js';
import { parseImageReference } from '../../src/registry/reference.js';
import { pushLayout } from '../../src/registry/push.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { freePort, REGISTRY_BIN, startRegistry, type Registry } from '../helpers/registry.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

const tools = ['skopeo', 'umoci', 'oci-image-tool', 'htpasswd', 'openssl', 'tar'];
const ready = canRun(
  fs.existsSync(REGISTRY_BIN) && tools.every(hasCommand),
  'registry client tests',
  `need ${REGISTRY_BIN} and ${tools.join(', ')} (Debian: docker-registry skopeo umoci oci-image-tool apache2-utils openssl)`,
);

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const REF_NAME = 'org.opencontainers.image.ref.name';
const anon: RegistryOptions = { tlsVerify: false };
const TESTER = { username: 'tester', password: 's3cret' };

let work: string;
const servers: { close(): Promise<void> }[] = [];

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}

const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

function putBlob(layout: string, bytes: Buffer): { digest: string; size: number } {
  const digest = sha(bytes);
  fs.mkdirSync(path.join(layout, 'blobs/sha256'), { recursive: true });
  fs.writeFileSync(path.join(layout, 'blobs/sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** One image (a reproducible gzip'd tar of `files`, its config and manifest) into `layout`; returns the manifest descriptor. */
function addImage(layout: string, files: Record<string, string>, architecture = 'amd64'): Desc {
  const tree = makeTree(tmpDir('sw-layer-'), files);
  const tar = execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', tree, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
  fs.rmSync(tree, { recursive: true, force: true });
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...putBlob(layout, zlib.gzipSync(tar)) };
  const config = {
    created: '1970-01-01T00:00:00Z',
    architecture,
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: [sha(tar)] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'registry.test.ts' }],
  };
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', ...putBlob(layout, Buffer.from(JSON.stringify(config))) };
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers: [layer] };
  return { mediaType: OCI_MANIFEST, ...putBlob(layout, Buffer.from(JSON.stringify(manifest))), platform: { os: 'linux', architecture } };
}

function writeIndex(layout: string, manifests: Desc[]): void {
  fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}

const tagged = (d: Desc, tag: string): Desc => ({ ...d, annotations: { [REF_NAME]: tag } });
const readIndex = (layout: string) => JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: Desc[] };
const blobOf = (layout: string, digest: string) => path.join(layout, 'blobs/sha256', digest.slice(7));

/** The error `p` rejects with (fails the test when it resolves). */
async function failure(p: Promise<unknown>): Promise<ShrinkwrapError> {
  try {
    await p;
  } catch (err) {
    return err as ShrinkwrapError;
  }
  throw new Error('expected a failure');
}

/**
 * Runs a tool without blocking the event loop: the token server and the fake registries live in
 * this process, and a synchronous spawn would leave them unable to answer the tool.
 */
async function run(cmd: string, args: string[]): Promise<Buffer> {
  try {
    return (await promisify(execFile)(cmd, args, { encoding: 'buffer', maxBuffer: 1 << 26, timeout: 60_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.toString() || e.message}`);
  }
}

async function skopeoDigest(ref: string, creds?: string): Promise<string> {
  const args = ['inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), '--format', '{{.Digest}}', `docker://${ref}`];
  return (await run('skopeo', args)).toString().trim();
}

/** skopeo copies the image back out of the registry, and umoci unpacks it (diff_ids checked). */
async function unpackedFile(ref: string, file: string, creds?: string): Promise<string> {
  const dir = tmpDir('sw-skopeo-');
  try {
    await run('skopeo', ['copy', '--src-tls-verify=false', ...(creds ? ['--src-creds', creds] : []), `docker://${ref}`, `oci:${dir}/layout:t`]);
    await run('umoci', ['unpack', '--rootless', '--image', `${dir}/layout:t`, `${dir}/bundle`]);
    return fs.readFileSync(path.join(dir, 'bundle/rootfs', file), 'utf8');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let image: string; // a layout holding tag v1
let v1: Desc;

beforeAll(() => {
  if (!ready) return;
  work = tmpDir('sw-registry-test-');
  image = path.join(work, 'image');
  v1 = addImage(image, { 'hello.txt': 'hello from shrinkwrap\n', 'etc/os-release': 'ID=test\n', 'usr/bin/tool': '#!/bin/sh\n' });
  writeIndex(image, [tagged(v1, 'v1')]);
});

afterAll(async () => {
  for (const s of servers) await s.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.runIf(ready)('anonymous registry', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry();
    servers.push({ close: () => reg.stop() });
  });

  it('pushes an image that skopeo and umoci read back with the same digest', async () => {
    const log: string[] = [];
    const r = await pushLayout(image, 'v1', parseImageReference(`docker://${reg.host}/shrinkwrap/lab:v1`), { ...anon, log: (l) => log.push(l) });
    expect(r).toEqual({ manifestDigest: v1.digest, uploaded: 2, skipped: 0, mounted: 0, bytesUploaded: expect.any(Number) });
    expect(r.bytesUploaded).toBeGreaterThan(100);
    expect(log.some((l) => l.includes('uploaded'))).toBe(true);
    expect(await skopeoDigest(`${reg.host}/shrinkwrap/lab:v1`)).toBe(v1.digest);
    expect(await unpackedFile(`${reg.host}/shrinkwrap/lab:v1`, 'hello.txt')).toBe('hello from shrinkwrap\n');
  });

  it('skips every blob the second time', async () => {
    const r = await pushLayout(image, null, parseImageReference(`${reg.host}/shrinkwrap/lab:v1-again`), anon);
    expect(r).toEqual({ manifestDigest: v1.digest, uploaded: 0, skipped: 2, mounted: 0, bytesUploaded: 0 });
  });

  it('mounts blobs from another repository', async () => {
    const r = await pushLayout(image, 'v1', parseImageReference(`${reg.host}/other/repo:v1`), { ...anon, mountFrom: ['not/there', 'shrinkwrap/lab'] });
    expect(r).toMatchObject({ manifestDigest: v1.digest, uploaded: 0, skipped: 0, mounted: 2 });
    expect(await skopeoDigest(`${reg.host}/other/repo:v1`)).toBe(v1.digest);
  });

  it('uploads in chunks', async () => {
    const layout = path.join(work, 'chunky');
    const big = crypto.randomBytes(6000).toString('base64');
    const m = addImage(layout, { 'big.txt': big });
    writeIndex(layout, [tagged(m, 'c1')]);
    const r = await pushLayout(layout, 'c1', parseImageReference(`${reg.host}/chunky/img:c1`), { ...anon, chunkSize: 1000, mountFrom: ['shrinkwrap/lab'] });
    expect(r).toMatchObject({ manifestDigest: m.digest, uploaded: 2, mounted: 0 });
    expect(r.bytesUploaded).toBeGreaterThan(4000);
    expect(await skopeoDigest(`${reg.host}/chunky/img:c1`)).toBe(m.digest);
    expect(await unpackedFile(`${reg.host}/chunky/img:c1`, 'big.txt')).toBe(big);
  });

  it('pulls what skopeo pushed: same digest, a valid layout, blobs cached the second time', async () => {
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${image}:v1`, `docker://${reg.host}/by/skopeo:s1`]);
    const raw = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/by/skopeo:s1`]);
    const out = path.join(work, 'pulled');
    const r = await pullToLayout(parseImageReference(`docker://${reg.host}/by/skopeo:s1`), out, anon);
    expect(r).toEqual({ manifestDigest: sha(raw), layout: out, tag: 's1', platform: 'linux/amd64' });
    expect(fs.readFileSync(blobOf(out, r.manifestDigest))).toEqual(raw);
    expect(readIndex(out).manifests).toEqual([{ mediaType: OCI_MANIFEST, digest: sha(raw), size: raw.length, annotations: { [REF_NAME]: 's1' } }]);
    expect((await run('oci-image-tool', ['validate', '--type', 'image', out])).toString()).toMatch(/Validation succeeded/);
    await run('umoci', ['unpack', '--rootless', '--image', `${out}:s1`, path.join(work, 'pulled-bundle')]);

    const inodes = fs.readdirSync(path.join(out, 'blobs/sha256')).map((f) => fs.statSync(path.join(out, 'blobs/sha256', f)).ino);
    const log: string[] = [];
    await pullToLayout(parseImageReference(`${reg.host}/by/skopeo:s1`), out, { ...anon, log: (l) => log.push(l) });
    expect(fs.readdirSync(path.join(out, 'blobs/sha256')).map((f) => fs.statSync(path.join(out, 'blobs/sha256', f)).ino)).toEqual(inodes);
    expect(log.filter((l) => l.includes('already in'))).toHaveLength(2);
    expect(fs.readdirSync(path.join(out, 'blobs/sha256')).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('pulls by digest, and keeps Docker v2s2 manifests byte for byte (push too)', async () => {
    await run('skopeo', ['copy', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${image}:v1`, `docker://${reg.host}/by/v2s2:d1`]);
    const raw = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/by/v2s2:d1`]);
    const out = path.join(work, 'pulled-v2s2');
    const r = await pullToLayout(parseImageReference(`${reg.host}/by/v2s2@${sha(raw)}`), out, anon);
    expect(r).toMatchObject({ manifestDigest: sha(raw), tag: 'latest', platform: 'linux/amd64' });
    expect(readIndex(out).manifests[0]!.mediaType).toBe(DOCKER_MANIFEST);
    const back = await pushLayout(out, 'latest', parseImageReference(`${reg.host}/again/v2s2:d2`), anon);
    expect(back.manifestDigest).toBe(sha(raw));
    expect(await skopeoDigest(`${reg.host}/again/v2s2:d2`)).toBe(sha(raw));
  });

  it('pushes an index and pulls the platform asked for', async () => {
    const layout = path.join(work, 'multi');
    const amd = addImage(layout, { 'arch.txt': 'amd64\n' }, 'amd64');
    const ppc = addImage(layout, { 'arch.txt': 'ppc64le\n' }, 'ppc64le');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [amd, ppc] }));
    writeIndex(layout, [tagged(amd, 'amd-only'), { mediaType: OCI_INDEX, ...putBlob(layout, index), annotations: { [REF_NAME]: 'multi' } }]);
    const pushed = await pushLayout(layout, 'multi', parseImageReference(`${reg.host}/multi/img:m1`), anon);
    expect(pushed).toMatchObject({ manifestDigest: sha(index), uploaded: 4 });
    expect(await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/multi/img:m1`])).toEqual(index);

    const out = path.join(work, 'pulled-ppc');
    const r = await pullToLayout(parseImageReference(`${reg.host}/multi/img:m1`), out, { ...anon, platform: 'linux/ppc64le' });
    expect(r).toMatchObject({ manifestDigest: ppc.digest, platform: 'linux/ppc64le' });
    expect(readIndex(out).manifests).toEqual([{ ...ppc, annotations: { [REF_NAME]: 'm1' } }]);
    expect((await run('oci-image-tool', ['validate', '--type', 'image', out])).toString()).toMatch(/Validation succeeded/);
    const dflt = await pullToLayout(parseImageReference(`${reg.host}/multi/img:m1`), path.join(work, 'pulled-amd'), anon);
    expect(dflt).toMatchObject({ manifestDigest: amd.digest, platform: 'linux/amd64' });

    const e = await failure(pullToLayout(parseImageReference(`${reg.host}/multi/img:m1`), path.join(work, 'x'), { ...anon, platform: 'linux/arm64' }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe(`docker://${reg.host}/multi/img:m1: no linux/arm64 image in the index (has linux/amd64, linux/ppc64le)`);

    const several = await failure(pushLayout(layout, null, parseImageReference(`${reg.host}/multi/img:m2`), anon));
    expect(several).toBeInstanceOf(InputError);
    expect(several.message).toBe(`${layout}: holds 2 images; name one (tags: amd-only, multi)`);
    const none = await failure(pushLayout(layout, 'v9', parseImageReference(`${reg.host}/multi/img:m2`), anon));
    expect(none.message).toBe(`${layout}: no image is tagged 'v9' (tags: amd-only, multi)`);
  });

  it('says which tag is unknown (404), and that TLS was asked of a plain HTTP registry', async () => {
    const e = await failure(pullToLayout(parseImageReference(`docker://${reg.host}/shrinkwrap/lab:nope`), path.join(work, 'x'), anon));
    expect(e).toBeInstanceOf(InputError);
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe(`docker://${reg.host}/shrinkwrap/lab:nope: manifest unknown (404)`);

    const t = await failure(pullToLayout(parseImageReference(`${reg.host}/shrinkwrap/lab:v1`), path.join(work, 'x'), { tlsVerify: true }));
    expect(t).toBeInstanceOf(InputError);
    expect(t.message).toBe(`docker://${reg.host}/shrinkwrap/lab:v1: ${reg.host} does not speak TLS (plain HTTP registry?); use --tls-verify=false to allow http`);
  });

  it('leaves no socket open: a process that pulls exits on its own', () => {
    const pull = new URL('../../dist/src/registry/pull.js', import.meta.url).pathname;
    const refMod = new URL('../../dist/src/registry/reference.js', import.meta.url).pathname;
    const script = `
      const { pullToLayout } = await import(${JSON.stringify(pull)});
      const { parseImageReference } = await import(${JSON.stringify(refMod)});
      const r = await pullToLayout(parseImageReference(process.argv[1]), process.argv[2], { tlsVerify: false });
      console.log(r.manifestDigest);
      await pullToLayout(parseImageReference(process.argv[1] + 'x'), process.argv[2], { tlsVerify: false }).catch((e) => console.log(e.message));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, `${reg.host}/shrinkwrap/lab:v1`, path.join(work, 'child')], { encoding: 'utf8', timeout: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${v1.digest}\ndocker://${reg.host}/shrinkwrap/lab:v1x: manifest unknown (404)\n`);
  });
});

describe.runIf(ready)('Basic auth registry', () => {
  let reg: Registry;
  beforeAll(async () => {
    const htpasswd = path.join(work, 'htpasswd');
    fs.writeFileSync(htpasswd, await run('htpasswd', ['-Bbn', 'tester', 's3cret']));
    reg = await startRegistry({ config: `auth: {htpasswd: {realm: shrinkwrap-test, path: ${htpasswd}}}` });
    servers.push({ close: () => reg.stop() });
  });

  it('pushes and pulls with the right credentials', async () => {
    const r = await pushLayout(image, 'v1', parseImageReference(`${reg.host}/auth/lab:v1`), { ...anon, credentials: TESTER });
    expect(r).toMatchObject({ manifestDigest: v1.digest, uploaded: 2 });
    expect(await skopeoDigest(`${reg.host}/auth/lab:v1`, 'tester:s3cret')).toBe(v1.digest);
    const p = await pullToLayout(parseImageReference(`${reg.host}/auth/lab:v1`), path.join(work, 'basic-pulled'), { ...anon, credentials: TESTER });
    expect(p.manifestDigest).toBe(v1.digest);
  });

  it('says authentication is required without credentials, and rejected with wrong ones', async () => {
    const none = await failure(pushLayout(image, 'v1', parseImageReference(`docker://${reg.host}/auth/lab:v2`), anon));
    expect(none).toBeInstanceOf(InputError);
    expect(none.exitCode).toBe(2);
    expect(none.message).toBe(`docker://${reg.host}/auth/lab:v2: authentication required (give credentials with --creds USER:PASSWORD)`);
    const wrong = await failure(pullToLayout(parseImageReference(`docker://${reg.host}/auth/lab:v1`), path.join(work, 'x'), { ...anon, credentials: { username: 'tester', password: 'nope' } }));
    expect(wrong).toBeInstanceOf(InputError);
    expect(wrong.message).toBe(`docker://${reg.host}/auth/lab:v1: credentials rejected for user tester`);
  });
});

/** A token server as distribution's auth/token.md describes: RS256 JWTs; anonymous gets pull, tester:s3cret push too. */
async function startTokenServer(dir: string): Promise<{ port: number; cert: string; requests: string[]; close(): Promise<void> }> {
  const key = path.join(dir, 'token.key');
  const cert = path.join(dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=shrinkwrap-token', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const x5c = new crypto.X509Certificate(fs.readFileSync(cert)).raw.toString('base64');
  const privateKey = fs.readFileSync(key);
  const requests: string[] = [];
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    requests.push(url.search);
    let user = '';
    if (req.headers.authorization) {
      const [u, p] = Buffer.from(req.headers.authorization.replace(/^Basic /, ''), 'base64').toString().split(':');
      if (u !== 'tester' || p !== 's3cret') {
        res.writeHead(401).end('{"details":"wrong password"}');
        return;
      }
      user = u;
    }
    const access = url.searchParams.getAll('scope').map((s) => {
      const [type, name, actions] = s.split(':');
      return { type, name, actions: (actions ?? '').split(',').filter((a) => a === 'pull' || (user && a === 'push')) };
    });
    const now = Math.floor(Date.now() / 1000);
    const head = b64({ typ: 'JWT', alg: 'RS256', x5c: [x5c] });
    const claims = b64({ iss: 'shrinkwrap-test-issuer', sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access });
    const sig = crypto.sign('RSA-SHA256', Buffer.from(`${head}.${claims}`), privateKey).toString('base64url');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `${head}.${claims}.${sig}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, cert, requests, close: () => new Promise((r) => server.close(() => r())) };
}

describe.runIf(ready)('Bearer token registry', () => {
  let reg: Registry;
  let tokens: Awaited<ReturnType<typeof startTokenServer>>;
  beforeAll(async () => {
    tokens = await startTokenServer(work);
    servers.push(tokens);
    reg = await startRegistry({
      config: [
        'auth:',
        '  token:',
        `    realm: http://127.0.0.1:${tokens.port}/token`,
        '    service: shrinkwrap-registry',
        '    issuer: shrinkwrap-test-issuer',
        `    rootcertbundle: ${tokens.cert}`,
      ].join('\n'),
    });
    servers.push({ close: () => reg.stop() });
  });

  it('pushes with credentials (asking for push and the mount source), pulls anonymously', async () => {
    const r = await pushLayout(image, 'v1', parseImageReference(`${reg.host}/tok/lab:v1`), { ...anon, credentials: TESTER, mountFrom: ['tok/base'] });
    expect(r).toMatchObject({ manifestDigest: v1.digest, uploaded: 2 });
    expect(tokens.requests).toContain('?service=shrinkwrap-registry&scope=repository%3Atok%2Flab%3Apull%2Cpush&scope=repository%3Atok%2Fbase%3Apull');
    expect(await skopeoDigest(`${reg.host}/tok/lab:v1`)).toBe(v1.digest);
    const p = await pullToLayout(parseImageReference(`${reg.host}/tok/lab:v1`), path.join(work, 'tok-pulled'), anon);
    expect(p.manifestDigest).toBe(v1.digest);
  });

  it('refuses an anonymous push and wrong credentials', async () => {
    const none = await failure(pushLayout(image, 'v1', parseImageReference(`${reg.host}/tok/lab:v2`), anon));
    expect(none).toBeInstanceOf(InputError);
    expect(none.message).toBe(`docker://${reg.host}/tok/lab:v2: authentication required (give credentials with --creds USER:PASSWORD)`);
    const wrong = await failure(pullToLayout(parseImageReference(`${reg.host}/tok/lab:v1`), path.join(work, 'x'), { ...anon, credentials: { username: 'tester', password: 'nope' } }));
    expect(wrong).toBeInstanceOf(InputError);
    expect(wrong.message).toBe(`docker://${reg.host}/tok/lab:v1: credentials rejected for user tester (token server answered 401)`);
  });
});

describe.runIf(ready)('TLS registry', () => {
  let reg: Registry;
  beforeAll(async () => {
    const key = path.join(work, 'tls.key');
    const cert = path.join(work, 'tls.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    reg = await startRegistry({ tls: { cert, key } });
    servers.push({ close: () => reg.stop() });
  });

  it('with --tls-verify=false: accepts the self-signed certificate', async () => {
    const r = await pushLayout(image, 'v1', parseImageReference(`${reg.host}/tls/lab:v1`), anon);
    expect(r.manifestDigest).toBe(v1.digest);
    expect((await pullToLayout(parseImageReference(`${reg.host}/tls/lab:v1`), path.join(work, 'tls-pulled'), anon)).manifestDigest).toBe(v1.digest);
  });

  it('with verification: refuses it', async () => {
    const e = await failure(pullToLayout(parseImageReference(`${reg.host}/tls/lab:v1`), path.join(work, 'x'), { tlsVerify: true }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toBe(`docker://${reg.host}/tls/lab:v1: TLS certificate of ${reg.host} not trusted (DEPTH_ZERO_SELF_SIGNED_CERT); use --tls-verify=false to accept it`);
  });
});

/**
 * A registry that misbehaves on purpose, serving `image`'s v1 under /v2/<kind>/img/: `good`,
 * `err` (500), `slow` (never answers), `bad` (wrong layer bytes), `stall` (half a layer, then
 * silence), `redir` (layers from /cdn/ on `cdnHost`), `liar` (for pushes). `basic`: wants tester:s3cret.
 */
async function startFake(bind: string, opts: { basic?: boolean; cdnHost?: string } = {}) {
  const manifest = fs.readFileSync(blobOf(image, v1.digest));
  const layerDigest = (JSON.parse(manifest.toString()) as { layers: Desc[] }).layers[0]!.digest;
  const cdnAuth: (string | undefined)[] = [];
  const uploads: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const cdn = /^\/cdn\/(sha256:[0-9a-f]{64})$/.exec(url);
    if (cdn) {
      cdnAuth.push(req.headers.authorization);
      res.end(fs.readFileSync(blobOf(image, cdn[1]!)));
      return;
    }
    if (opts.basic && req.headers.authorization !== `Basic ${Buffer.from('tester:s3cret').toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
      return;
    }
    if (url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    const m = /^\/v2\/(\w+)\/img\/(manifests|blobs)\/(.+)$/.exec(url);
    const [kind, what, ref] = m ? [m[1]!, m[2]!, m[3]!] : ['', '', ''];
    if (req.method !== 'GET') {
      // Pushes: no blob is there; uploads get a relative Location; `liar` misreports the manifest digest.
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST' && ref === 'uploads/') res.writeHead(202, { location: `/upload/${kind}?_state=a%2Bb` }).end();
        else if (req.method === 'PUT' && url.startsWith('/upload/')) {
          uploads.push(url);
          res.writeHead(201, { 'docker-content-digest': new URL(url, 'http://x').searchParams.get('digest')! }).end();
        } else if (req.method === 'PUT' && what === 'manifests') {
          res.writeHead(201, { 'docker-content-digest': kind === 'liar' ? `sha256:${'0'.repeat(64)}` : sha(Buffer.concat(body)) }).end();
        } else res.writeHead(405).end();
      });
      return;
    }
    if (kind === 'slow') return; // never answers
    if (kind === 'err') {
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"storage backend on fire"}]}');
      return;
    }
    if (what === 'manifests' && ref === 'v1') {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': v1.digest }).end(manifest);
      return;
    }
    const file = what === 'blobs' ? blobOf(image, ref) : '';
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
      return;
    }
    const bytes = fs.readFileSync(file);
    if (ref !== layerDigest || kind === 'good') {
      res.end(bytes);
    } else if (kind === 'bad') {
      bytes[10] ^= 0xff;
      res.end(bytes);
    } else if (kind === 'stall') {
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1));
    } else if (kind === 'redir') {
      res.writeHead(307, { location: `http://${opts.cdnHost}/cdn/${ref}` }).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, bind, resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  servers.push({ close });
  return { host: `${bind}:${(server.address() as AddressInfo).port}`, cdnAuth, uploads, layerDigest };
}

describe.runIf(ready)('failures', () => {
  let fake: Awaited<ReturnType<typeof startFake>>;
  let remote: Awaited<ReturnType<typeof startFake>>;
  beforeAll(async () => {
    fake = await startFake('127.0.0.1');
    // Not 127.0.0.1 or localhost: with --tls-verify=false, https is tried first.
    remote = await startFake('127.0.0.2');
  });
  let n = 0;
  const out = () => path.join(work, `failure-${n++}`);

  it('connection refused', async () => {
    const port = await freePort();
    const e = await failure(pullToLayout(parseImageReference(`docker://127.0.0.1:${port}/x/y:v1`), out(), anon));
    expect(e).toBeInstanceOf(BuildError);
    expect(e.exitCode).toBe(1);
    expect(e.message).toBe(`docker://127.0.0.1:${port}/x/y:v1: connection refused (127.0.0.1:${port})`);
  });

  it('a registry error 500', async () => {
    const e = await failure(pullToLayout(parseImageReference(`${fake.host}/err/img:v1`), out(), anon));
    expect(e).toBeInstanceOf(BuildError);
    expect(e.message).toBe(`docker://${fake.host}/err/img:v1: registry error 500 Internal Server Error: storage backend on fire (manifest v1)`);
  });

  it('no answer within the timeout', async () => {
    const e = await failure(pullToLayout(parseImageReference(`${fake.host}/slow/img:v1`), out(), { ...anon, timeoutMs: 300 }));
    expect(e).toBeInstanceOf(BuildError);
    expect(e.message).toBe(`docker://${fake.host}/slow/img:v1: no response within 0.3 s`);
  });

  it('a blob that stops half way: timeout, and no file left behind', async () => {
    const dir = out();
    const e = await failure(pullToLayout(parseImageReference(`${fake.host}/stall/img:v1`), dir, { ...anon, timeoutMs: 300 }));
    expect(e).toBeInstanceOf(BuildError);
    expect(e.message).toBe(`docker://${fake.host}/stall/img:v1: no response within 0.3 s`);
    expect(fs.readdirSync(path.join(dir, 'blobs/sha256')).filter((f) => f.includes(fake.layerDigest.slice(7)))).toEqual([]);
  });

  it('a blob whose bytes do not match its digest', async () => {
    const dir = out();
    const e = await failure(pullToLayout(parseImageReference(`${fake.host}/bad/img:v1`), dir, anon));
    expect(e).toBeInstanceOf(BuildError);
    expect(e.message).toMatch(new RegExp(`^docker://${fake.host}/bad/img:v1: blob ${fake.layerDigest}: digest mismatch \\(got sha256:[0-9a-f]{64}\\)$`));
    expect(fs.readdirSync(path.join(dir, 'blobs/sha256')).filter((f) => f.includes(fake.layerDigest.slice(7)))).toEqual([]);
  });

  it('falls back to plain http with --tls-verify=false, and refuses it otherwise', async () => {
    const r = await pullToLayout(parseImageReference(`${remote.host}/good/img:v1`), out(), anon);
    expect(r.manifestDigest).toBe(v1.digest);
    const e = await failure(pullToLayout(parseImageReference(`${remote.host}/good/img:v1`), out(), { tlsVerify: true }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toBe(`docker://${remote.host}/good/img:v1: ${remote.host} does not speak TLS (plain HTTP registry?); use --tls-verify=false to allow http`);
  });

  it('follows a blob redirect to another host without the credentials', async () => {
    const authed = await startFake('127.0.0.1', { basic: true, cdnHost: remote.host });
    const r = await pullToLayout(parseImageReference(`${authed.host}/redir/img:v1`), out(), { ...anon, credentials: TESTER });
    expect(r.manifestDigest).toBe(v1.digest);
    expect(remote.cdnAuth).toEqual([undefined]);
  });

  it('resolves a relative upload Location, keeps its query, and checks the digest the registry answers', async () => {
    const r = await pushLayout(image, 'v1', parseImageReference(`${fake.host}/good/img:v1`), anon);
    expect(r).toMatchObject({ manifestDigest: v1.digest, uploaded: 2 });
    expect(fake.uploads).toEqual([`/upload/good?_state=a%2Bb&digest=${encodeURIComponent(fake.layerDigest)}`, expect.stringMatching(/^\/upload\/good\?_state=a%2Bb&digest=sha256%3A[0-9a-f]{64}$/)]);
    const e = await failure(pushLayout(image, 'v1', parseImageReference(`${fake.host}/liar/img:v1`), anon));
    expect(e).toBeInstanceOf(BuildError);
    expect(e.message).toBe(`docker://${fake.host}/liar/img:v1: manifest v1: the registry stored sha256:${'0'.repeat(64)}, not ${v1.digest}`);
  });
});

// The CernVM-FS HTTP fetcher (sources/cvmfs/http/fetch): real HTTP servers on 127.0.0.1 serve
// objects made here (zlib, named by the SHA-1 of the stored bytes); faults are injected per path.
// The fetcher runs its downloads on a worker thread, so the compiled module (dist/) is tested.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { type CvmfsServer, type ForwardProxy, startCvmfsServer, startForwardProxy } from '../helpers/cvmfs-server.js';
import { freePort } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tree.js';
import { parseProxyList, parseServerList, proxyFromEnvironment } from '../../src/sources/cvmfs/http/fetch/servers.js';

type FetcherModule = typeof import('../../src/sources/cvmfs/http/fetch/fetcher.js');
type Fetcher = InstanceType<FetcherModule['Fetcher']>;
type FetcherOptions = import('../../src/sources/cvmfs/http/fetch/fetcher.js').FetcherOptions;
type ObjectRequest = import('../../src/sources/cvmfs/http/fetch/fetcher.js').ObjectRequest;

const FQRN = 'test.cern.ch';
let m: FetcherModule;
let work: string;
let repo: string;
const servers: CvmfsServer[] = [];
const fetchers: Fetcher[] = [];
const proxies: ForwardProxy[] = [];

beforeAll(async () => {
  m = (await import(path.join(REPO_ROOT, 'dist/src/sources/cvmfs/http/fetch/fetcher.js'))) as FetcherModule;
  work = tmpDir('sw-cvmfs-fetch-');
  repo = path.join(work, 'srv');
});
afterEach(async () => {
  await Promise.all(fetchers.splice(0).map((f) => f.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** An object in the served repository: `content` zlib-compressed, named by the SHA-1 of that. */
function makeObject(content: Buffer | string, suffix = '', o: { raw?: boolean } = {}): { req: ObjectRequest; content: Buffer } {
  const bytes = Buffer.from(content);
  const stored = o.raw ? bytes : zlib.deflateSync(bytes);
  const hex = crypto.createHash('sha1').update(stored).digest('hex');
  const rel = `data/${hex.slice(0, 2)}/${hex.slice(2)}${suffix}`;
  const file = path.join(repo, FQRN, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, stored);
  return { req: { fqrn: FQRN, path: rel, algorithm: 'sha1', digestHex: hex, compressed: true, exactBytes: bytes.length }, content: bytes };
}

let cacheCount = 0;
function newCache(): string {
  return path.join(work, `cache-${cacheCount++}`);
}

function fetcher(o: Partial<FetcherOptions> & { servers: string[] }, logs: string[] = []): Fetcher {
  const f = new m.Fetcher({ proxies: [['DIRECT']], parallel: 32, timeoutMs: 2000, retries: 0, cacheDir: newCache(), log: (l) => logs.push(l), ...o });
  fetchers.push(f);
  return f;
}

async function server(opts: { delayMs?: number } = {}): Promise<CvmfsServer> {
  const s = await startCvmfsServer(repo, opts);
  servers.push(s);
  return s;
}

/** Every file under the cache: none may be a temporary, each object's content must be what was made. */
function cacheFiles(cacheDir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(cacheDir, p));
    }
  };
  if (fs.existsSync(cacheDir)) walk(cacheDir);
  return out.sort();
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('server and proxy lists', () => {
  it('parses CVMFS_SERVER_URL-like lists and refuses what is not a URL', () => {
    expect(parseServerList('http://a.example/cvmfs; https://b.example:8000/opt/cvmfs/;http://c/x/@fqrn@/y')).toEqual([
      'http://a.example/cvmfs/@fqrn@',
      'https://b.example:8000/opt/cvmfs/@fqrn@',
      'http://c/x/@fqrn@/y',
    ]);
    expect(() => parseServerList('ftp://a/cvmfs')).toThrow(/server list: ftp:\/\/a\/cvmfs: not an http/);
    expect(() => parseServerList('http://a/cvmfs;/cvmfs')).toThrow(/\/cvmfs: not an http/);
    expect(() => parseServerList(' ; ')).toThrow(/names no server/);
  });

  it('parses CVMFS_HTTP_PROXY: groups, load-balanced members, DIRECT, auto', () => {
    expect(parseProxyList('http://p1:3128|p2:3128;DIRECT')).toEqual([['http://p1:3128', 'http://p2:3128'], ['DIRECT']]);
    expect(parseProxyList('auto;DIRECT')).toEqual([['DIRECT']]);
    expect(() => parseProxyList('auto')).toThrow(/auto \(WPAD/);
    expect(() => parseProxyList('socks5://p:1080')).toThrow(/only http:\/\/ proxies/);
  });

  it('takes the proxy from the environment, with no_proxy as curl reads it', () => {
    const env = { http_proxy: 'squid:3128', HTTPS_PROXY: 'http://tls-squid:3128', no_proxy: '.cern.ch, localhost,10.0.0.0/8,example.org:8080' };
    expect(proxyFromEnvironment('http://cvmfs.example.com/cvmfs', env)).toBe('http://squid:3128');
    expect(proxyFromEnvironment('https://cvmfs.example.com/cvmfs', env)).toBe('http://tls-squid:3128');
    expect(proxyFromEnvironment('http://cvmfs-stratum-one.cern.ch/cvmfs', env)).toBeNull();
    expect(proxyFromEnvironment('http://cern.ch/cvmfs', env)).toBeNull();
    expect(proxyFromEnvironment('http://notcern.ch/cvmfs', env)).toBe('http://squid:3128');
    expect(proxyFromEnvironment('http://10.1.2.3/cvmfs', env)).toBeNull();
    expect(proxyFromEnvironment('http://example.org:8080/cvmfs', env)).toBeNull();
    expect(proxyFromEnvironment('http://example.org/cvmfs', env)).toBe('http://squid:3128');
    expect(proxyFromEnvironment('http://x/cvmfs', { HTTP_PROXY: 'http://up:1', NO_PROXY: '*' })).toBeNull();
    expect(proxyFromEnvironment('http://x/cvmfs', {})).toBeNull();
  });
});

describe('Fetcher', () => {
  it('fetches, verifies and inflates an object (async and sync), once however often asked', async () => {
    const s = await server();
    const a = makeObject('hello cvmfs\n');
    const b = makeObject(crypto.randomBytes(300_000), 'C');
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    const paths = await Promise.all([f.object(a.req), f.object(a.req), f.object(a.req)]);
    expect(new Set(paths).size).toBe(1);
    expect(fs.readFileSync(paths[0]!)).toEqual(a.content);
    expect(paths[0]).toBe(f.cachePathOf(a.req));
    expect((await s.counts()).seen[`/cvmfs/${FQRN}/${a.req.path}`]).toBe(1);
    const pb = f.objectSync(b.req);
    expect(fs.readFileSync(pb)).toEqual(b.content);
    expect(pb.endsWith(b.req.path.slice('data/'.length))).toBe(true);
    expect((await s.counts()).userAgent).toMatch(/^shrinkwrap\/\d+\.\d+\.\d+ \(cvmfs-http\)$/);
    expect(f.stats()).toMatchObject({ objects: 2, bytesStored: a.content.length + b.content.length });
  });

  it('fetches .cvmfspublished uncached, sync and async, and refuses more than asked for', async () => {
    const s = await server();
    fs.mkdirSync(path.join(repo, FQRN), { recursive: true });
    fs.writeFileSync(path.join(repo, FQRN, '.cvmfspublished'), 'Cabc\nNtest.cern.ch\n--\n');
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    expect(f.fetchFileSync(FQRN, '.cvmfspublished', 1000).toString()).toBe('Cabc\nNtest.cern.ch\n--\n');
    expect((await f.fetchFile(FQRN, '.cvmfspublished', 1000)).toString()).toContain('Ntest');
    expect((await s.counts()).seen[`/cvmfs/${FQRN}/.cvmfspublished`]).toBe(2);
    expect(() => f.fetchFileSync(FQRN, '.cvmfspublished', 5)).toThrow(/^test.cern.ch: .cvmfspublished: larger than 5 bytes/);
    expect(cacheFiles(f['o'].cacheDir)).toEqual([]);
  });

  it('answers a cached object with no request at all', async () => {
    const s = await server();
    const a = makeObject('cached once');
    const cacheDir = newCache();
    const f1 = fetcher({ servers: [`${s.url}/@fqrn@`], cacheDir });
    await f1.object(a.req);
    const before = (await s.counts()).total;
    const f2 = fetcher({ servers: [`${s.url}/@fqrn@`], cacheDir });
    expect(fs.readFileSync(f2.objectSync(a.req)).toString()).toBe('cached once');
    expect(fs.readFileSync(await f2.object(a.req)).toString()).toBe('cached once');
    expect((await s.counts()).total).toBe(before);
    expect(f2.stats().fromCache).toBe(2);
  });

  it('fails over to the next server when one refuses connections, with one log line', async () => {
    const s = await server();
    const down = `http://127.0.0.1:${await freePort()}/cvmfs`;
    const a = makeObject('fail-over');
    const b = makeObject('fail-over 2');
    const logs: string[] = [];
    const f = fetcher({ servers: [`${down}/@fqrn@`, `${s.url}/@fqrn@`] }, logs);
    expect(fs.readFileSync(f.objectSync(a.req)).toString()).toBe('fail-over');
    expect(fs.readFileSync(await f.object(b.req)).toString()).toBe('fail-over 2');
    await new Promise((r) => setTimeout(r, 20));
    expect(logs).toEqual([`cvmfs: ${down} skipped: connection refused (ECONNREFUSED); trying ${s.url}`]);
  });

  it('goes through a proxy (absolute URLs), and past a dead one to DIRECT', async () => {
    const s = await server();
    const proxy = await startForwardProxy();
    proxies.push(proxy);
    const a = makeObject('via proxy');
    const f = fetcher({ servers: [`${s.url}/@fqrn@`], proxies: [[proxy.url]] });
    expect(fs.readFileSync(await f.object(a.req)).toString()).toBe('via proxy');
    expect(proxy.count).toBe(1);
    const dead = `http://127.0.0.1:${await freePort()}`;
    const logs: string[] = [];
    const g = fetcher({ servers: [`${s.url}/@fqrn@`], proxies: parseProxyList(`${dead};DIRECT`) }, logs);
    expect(fs.readFileSync(g.objectSync(a.req)).toString()).toBe('via proxy');
    await new Promise((r) => setTimeout(r, 20));
    expect(logs).toEqual([`cvmfs: proxy ${dead} skipped: connection refused (ECONNREFUSED); trying DIRECT`]);
  });

  it('keeps many requests in flight (prefetch), and a slow server sees them at once', async () => {
    const s = await server({ delayMs: 20 });
    const objects = Array.from({ length: 64 }, (_, i) => makeObject(`object ${i} `.repeat(100)));
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    const progress: number[] = [];
    f.onProgress = (st) => progress.push(st.objects);
    const t0 = Date.now();
    f.prefetch(objects.map((o) => o.req));
    const paths = await Promise.all(objects.map((o) => f.object(o.req)));
    const ms = Date.now() - t0;
    for (const [i, p] of paths.entries()) expect(fs.readFileSync(p)).toEqual(objects[i]!.content);
    const counts = await s.counts();
    expect(counts.maxConcurrent).toBeGreaterThan(8);
    expect(counts.total).toBe(64);
    expect(ms).toBeLessThan(64 * 20);
    await new Promise((r) => setTimeout(r, 250));
    expect(progress.at(-1)).toBe(64);
    expect(f.stats()).toMatchObject({ objects: 64, requests: 64, retries: 0 });
  });

  it('an object asked for now goes before the prefetched ones', async () => {
    const s = await server({ delayMs: 50 });
    const objects = Array.from({ length: 20 }, (_, i) => makeObject(`queued ${i}`));
    const f = fetcher({ servers: [`${s.url}/@fqrn@`], parallel: 1 });
    f.prefetch(objects.map((o) => o.req));
    const t0 = Date.now();
    expect(fs.readFileSync(f.objectSync(objects[19]!.req)).toString()).toBe('queued 19');
    // Behind the other 19 it would take a second.
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('a prefetch that failed says so when its object is asked for', async () => {
    const s = await server();
    const a = makeObject('never there');
    fs.rmSync(path.join(repo, FQRN, a.req.path));
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    f.prefetch([a.req]);
    await new Promise((r) => setTimeout(r, 100));
    expect(() => f.objectSync(a.req)).toThrow(new RegExp(`^${FQRN}: ${a.req.path}: 404 Not Found$`));
    expect((await s.counts()).total).toBe(1);
  });

  it('retries a 5xx with back-off', async () => {
    const s = await server();
    const a = makeObject('after 503');
    await s.fault(`/cvmfs/${FQRN}/${a.req.path}`, { status: 503, times: 2 });
    const f = fetcher({ servers: [`${s.url}/@fqrn@`], retries: 3 });
    expect(fs.readFileSync(await f.object(a.req)).toString()).toBe('after 503');
    expect(f.stats().retries).toBe(2);
  });

  describe('each failure is one line, and leaves only complete verified files', () => {
    async function expectFailure(setup: (s: CvmfsServer, a: ReturnType<typeof makeObject>) => Promise<Partial<ObjectRequest> | void>, message: RegExp, o: Partial<FetcherOptions> = {}) {
      const s = await server();
      const a = makeObject(crypto.randomBytes(20_000));
      const good = makeObject('a good one');
      const change = (await setup(s, a)) ?? {};
      const f = fetcher({ servers: [`${s.url}/@fqrn@`], timeoutMs: 300, ...o });
      await f.object(good.req);
      const err = await failure(f.object({ ...a.req, ...change }));
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
      // Every server answered 404: "not there", which a repository's absence is told by; else "could not be had".
      expect(err.constructor.name).toBe(/404 Not Found on every server/.test(err.message) ? 'NotFoundError' : 'BuildError');
      expect(cacheFiles(f['o'].cacheDir)).toEqual([path.join('objects', good.req.path.slice(5))]);
      return { s, f, err };
    }

    it('wrong hash', async () => {
      await expectFailure(async (_, a) => ({ digestHex: 'ab'.repeat(20).replace(/^ab/, a.req.digestHex.slice(0, 2)) }), /^test\.cern\.ch: data\/..\/[0-9a-f]{38}: content hash [0-9a-f]{40} does not match$/);
    });
    it('404 on every server', async () => {
      const other = await server();
      let path404 = '';
      const { s } = await expectFailure(async (s, a) => {
        path404 = `/cvmfs/${FQRN}/${a.req.path}`;
        const rel = path.join(repo, FQRN, a.req.path);
        fs.renameSync(rel, `${rel}.gone`);
        void s;
      }, /: 404 Not Found on every server \(http:\/\/127\.0\.0\.1:\d+\/cvmfs, http:\/\/127\.0\.0\.1:\d+\/x\/cvmfs\)$/, { servers: [`${other.url}/@fqrn@`, `${other.url.replace('/cvmfs', '/x/cvmfs')}/@fqrn@`] });
      expect((await s.counts()).total).toBe(0);
      expect((await other.counts()).seen[path404]).toBe(1);
    });
    it('a stall (idle timeout)', async () => {
      await expectFailure((s, a) => s.fault(`/cvmfs/${FQRN}/${a.req.path}`, { stallAfter: 100 }), /: no response within 0\.3 s$/);
    });
    it('a truncated response', async () => {
      await expectFailure((s, a) => s.fault(`/cvmfs/${FQRN}/${a.req.path}`, { truncateAfter: 1000 }), /: truncated \(got 1000 of \d+ bytes\)$/);
    });
    it('a redirect loop', async () => {
      await expectFailure(async (s, a) => {
        const p = `/cvmfs/${FQRN}/${a.req.path}`;
        await s.fault(p, { redirect: `${p}.x` });
        await s.fault(`${p}.x`, { redirect: p });
      }, /: redirect loop$/);
    });
    it('an object larger than the catalog says', async () => {
      await expectFailure(async () => ({ exactBytes: undefined, maxBytes: 1000 }), /: larger than the catalog says \(1000 bytes\)$/);
    });
    it('not a zlib stream', async () => {
      await expectFailure(async () => {
        const raw = makeObject('not compressed at all', '', { raw: true });
        return { path: raw.req.path, digestHex: raw.req.digestHex, exactBytes: undefined };
      }, /: not a zlib stream$/);
    });
  });

  it('follows a redirect to another server', async () => {
    const s = await server();
    const t = await server();
    const a = makeObject('redirected');
    await s.fault(`/cvmfs/${FQRN}/${a.req.path}`, { redirect: `${t.url}/${FQRN}/${a.req.path}` });
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    expect(fs.readFileSync(await f.object(a.req)).toString()).toBe('redirected');
    expect((await t.counts()).total).toBe(1);
  });

  it('assembles a chunked file from its chunks', async () => {
    const s = await server();
    const whole = crypto.randomBytes(250_000);
    const parts = [whole.subarray(0, 100_000), whole.subarray(100_000, 200_000), whole.subarray(200_000)];
    let offset = 0;
    const chunks = parts.map((p) => {
      const o = makeObject(p, 'P');
      const c = { ...o.req, offset, size: p.length };
      offset += p.length;
      return c;
    });
    const key = crypto.createHash('sha1').update(whole).digest('hex');
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    const req = { fqrn: FQRN, key, size: whole.length, chunks: [chunks[2]!, chunks[0]!, chunks[1]!] };
    const p = f.objectSync(req);
    expect(fs.readFileSync(p)).toEqual(whole);
    expect(p).toBe(path.join(f['o'].cacheDir, 'files', key.slice(0, 2), key));
    expect(await f.object(req)).toBe(p);
    const bad = await failure(f.object({ ...req, key: `${key}x`, size: whole.length + 1 }));
    expect(bad.message).toBe(`${FQRN}: ${key}x: chunks add up to 250000 bytes where the catalog says 250001`);
  });

  it('two fetchers on one cache directory at once', async () => {
    const s = await server({ delayMs: 5 });
    const objects = Array.from({ length: 40 }, (_, i) => makeObject(crypto.randomBytes(5000 + i)));
    const cacheDir = newCache();
    // A temporary a killed run left (a pid that cannot be alive) is swept.
    const leftover = path.join(cacheDir, 'objects', 'ab', '.cdef.shrinkwrap-tmp-4194303-0badf00d');
    fs.mkdirSync(path.dirname(leftover), { recursive: true });
    fs.writeFileSync(leftover, 'half');
    const f1 = fetcher({ servers: [`${s.url}/@fqrn@`], cacheDir });
    const f2 = fetcher({ servers: [`${s.url}/@fqrn@`], cacheDir });
    const [p1, p2] = await Promise.all([Promise.all(objects.map((o) => f1.object(o.req))), Promise.all([...objects].reverse().map((o) => f2.object(o.req)))]);
    expect(p1).toEqual(p2.reverse());
    for (const [i, p] of p1.entries()) expect(fs.readFileSync(p)).toEqual(objects[i]!.content);
    expect(fs.existsSync(leftover)).toBe(false);
    expect(cacheFiles(cacheDir).filter((n) => path.basename(n).startsWith('.'))).toEqual([]);
  });

  it('close() fails what is pending, in one line', async () => {
    const s = await server({ delayMs: 500 });
    const a = makeObject('slow');
    const f = fetcher({ servers: [`${s.url}/@fqrn@`] });
    const p = failure(f.object(a.req));
    await new Promise((r) => setTimeout(r, 50));
    await f.close();
    expect((await p).message).toMatch(/closed/);
    expect(cacheFiles(f['o'].cacheDir).filter((n) => path.basename(n).startsWith('.'))).toEqual([]);
  });
});

// The fetcher the HTTP tree reads a repository with. All HTTP runs on a worker thread (worker.ts),
// so that the tree's synchronous selection code can block on one object (Atomics.wait on a shared
// counter the worker bumps after each reply) while the worker keeps many requests in flight, and
// asynchronous callers get promises. A cached object is answered here, with no message at all.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { BuildError, InputError } from '../../../../model/errors.js';
import { cachePathOf as cachePathIn, cached, ensureCacheDir, sweepCache } from './cache.js';
import { seconds } from './http.js';
import { CTL, type Job, type Reply, type WorkerData } from './protocol.js';
import type { ProxyGroup } from './servers.js';
import { type ChunkedRequest, type FetchStats, type FetcherOptions, type ObjectRequest, emptyStats } from './types.js';

export type { ChunkedRequest, FetchStats, FetcherOptions, ObjectRequest, ProxyGroup };
export { parseProxyList, parseServerList, proxyFromEnvironment } from './servers.js';

/** shrinkwrap's version, from the package.json above src/ (or above dist/src/). */
const VERSION: string = (() => {
  for (const up of ['../../../../../package.json', '../../../../../../package.json']) {
    try {
      const json = JSON.parse(fs.readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (json.name === 'shrinkwrap' && json.version) return json.version;
    } catch {
      /* not at this level */
    }
  }
  return 'unknown';
})();
export const USER_AGENT = `shrinkwrap/${VERSION} (cvmfs-http)`;

/** How long one Atomics.wait lasts before the caller looks at the worker's activity again. */
const SLICE_MS = 50;

interface Pending {
  resolve: (r: Extract<Reply, { ok: true }>) => void;
  reject: (e: Error) => void;
}

type Done = Extract<Reply, { ok: boolean }>;

/** Cache directories this process has swept. */
const swept = new Set<string>();

export class Fetcher {
  onProgress: ((s: FetchStats) => void) | null = null;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly control: Int32Array;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private latest: FetchStats = emptyStats();
  /** Objects answered from the cache on this thread (the worker never heard of them). */
  private localHits = 0;
  private closed = false;
  /** Why the worker is gone, if it died: every later call fails with that. */
  private broken: string | null = null;
  /** Replies read while a synchronous call waited for its own. */
  private readonly early = new Map<number, Done>();
  /** How long a blocked call waits with no sign of life from the worker. */
  private readonly quietLimitMs: number;

  constructor(private readonly o: FetcherOptions) {
    if (o.servers.length === 0) throw new InputError('cvmfs: no server to fetch from');
    ensureCacheDir(o.cacheDir);
    // What killed runs left, once per process and cache: the sweep counts temporaries with our
    // own pid as a dead run's (a reused pid), so a second Fetcher's sweep would take a first's.
    const cacheKey = path.resolve(o.cacheDir);
    if (!swept.has(cacheKey)) {
      swept.add(cacheKey);
      sweepCache(o.cacheDir);
    }
    const control = new SharedArrayBuffer(CTL.length * 4);
    this.control = new Int32Array(control);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const { log: _log, ...options } = o;
    const data: WorkerData & { port: MessagePort } = { options, control, env: { ...process.env }, userAgent: USER_AGENT, port: port2 };
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data, transferList: [port2] });
    this.worker.on('error', (err) => this.failAll((this.broken = `the download worker failed: ${err.message}`)));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.failAll((this.broken ??= `the download worker exited (code ${code})`));
    });
    this.port.on('message', (m: Reply) => this.dispatch(m));
    this.quietLimitMs = o.timeoutMs + 100 * 2 ** o.retries + 5000;
    this.idle();
  }

  /**
   * Signed files fetched ahead, asynchronously (fetchFileAhead), by `fqrn/name`: the next
   * fetchFileSync of the same file takes the bytes, or the failure, instead of blocking on the wire.
   */
  private readonly ahead = new Map<string, Buffer | Error>();

  /** Fetch a signed file now, without blocking, for the fetchFileSync that will ask for it; its bytes (null on failure). */
  async fetchFileAhead(fqrn: string, name: string, maxBytes: number): Promise<Buffer | null> {
    try {
      const b = await this.fetchFile(fqrn, name, maxBytes);
      this.ahead.set(`${fqrn}/${name}`, b);
      return b;
    } catch (err) {
      this.ahead.set(`${fqrn}/${name}`, err instanceof Error ? err : new Error(String(err)));
      return null;
    }
  }

  fetchFileSync(fqrn: string, name: string, maxBytes: number): Buffer {
    const early = this.ahead.get(`${fqrn}/${name}`);
    if (early !== undefined) {
      this.ahead.delete(`${fqrn}/${name}`);
      if (early instanceof Error) throw early;
      return early;
    }
    const r = this.callSync({ id: 0, kind: 'file', fqrn, name, maxBytes, sync: true }, `${fqrn}: ${name}`);
    return bytesOf(r);
  }

  async fetchFile(fqrn: string, name: string, maxBytes: number): Promise<Buffer> {
    return bytesOf(await this.call({ id: 0, kind: 'file', fqrn, name, maxBytes, sync: false }));
  }

  objectSync(r: ObjectRequest | ChunkedRequest): string {
    const hit = this.hit(r);
    if (hit) return hit;
    return this.callSync({ id: 0, kind: 'object', request: r, sync: true, prefetch: false }, `${r.fqrn}: ${nameOf(r)}`).path!;
  }

  async object(r: ObjectRequest | ChunkedRequest): Promise<string> {
    const hit = this.hit(r);
    if (hit) return hit;
    return (await this.call({ id: 0, kind: 'object', request: r, sync: false, prefetch: false })).path!;
  }

  prefetch(rs: Array<ObjectRequest | ChunkedRequest>): void {
    this.open();
    for (const r of rs) {
      if (cached(this.cachePathOf(r))) continue;
      this.port.postMessage({ id: this.nextId++, kind: 'object', request: r, sync: false, prefetch: true } satisfies Job);
    }
  }

  cachePathOf(r: ObjectRequest | ChunkedRequest): string {
    return cachePathIn(this.o.cacheDir, r);
  }

  stats(): FetchStats {
    return { ...this.latest, fromCache: this.latest.fromCache + this.localHits, perServer: { ...this.latest.perServer } };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const bye = this.call({ id: 0, kind: 'close', sync: false }).catch(() => {});
    this.closed = true;
    await Promise.race([bye, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.failAll('cvmfs fetcher closed');
    this.port.close();
    await this.worker.terminate();
  }

  /** A complete cached file for `r`, or null. */
  private hit(r: ObjectRequest | ChunkedRequest): string | null {
    const p = this.cachePathOf(r);
    if (!cached(p)) return null;
    this.localHits++;
    return p;
  }

  private open(): void {
    if (this.closed) throw new BuildError('cvmfs fetcher closed');
    if (this.broken) throw new BuildError(`cvmfs: ${this.broken}`);
  }

  private call(job: Job): Promise<Extract<Reply, { ok: true }>> {
    if (job.kind !== 'close') this.open();
    const id = this.nextId++;
    const p = new Promise<Extract<Reply, { ok: true }>>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.port.postMessage({ ...job, id });
    this.busy();
    return p;
  }

  /** Post `job` and block until its reply, in slices, while the worker shows signs of life. */
  private callSync(job: Job, what: string): Extract<Reply, { ok: true }> {
    this.open();
    const id = this.nextId++;
    let seen = Atomics.load(this.control, CTL.reply);
    this.port.postMessage({ ...job, id });
    let activity = Atomics.load(this.control, CTL.activity);
    let lastSign = Date.now();
    for (;;) {
      Atomics.wait(this.control, CTL.reply, seen, SLICE_MS);
      seen = Atomics.load(this.control, CTL.reply);
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) this.dispatch(m.message as Reply);
      const mine = this.early.get(id);
      if (mine) {
        this.early.delete(id);
        return unwrap(mine);
      }
      const now = Date.now();
      const a = Atomics.load(this.control, CTL.activity);
      if (a !== activity) {
        activity = a;
        lastSign = now;
      } else if (now - lastSign > this.quietLimitMs) {
        throw new BuildError(`${what}: no response within ${seconds(this.quietLimitMs)} s (the download worker is stuck)`);
      }
    }
  }

  private dispatch(m: Reply): void {
    if ('log' in m) {
      this.o.log(m.log);
      return;
    }
    this.latest = m.stats;
    if (!('ok' in m)) {
      this.onProgress?.(this.stats());
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) {
      this.early.set(m.id, m);
      return;
    }
    this.pending.delete(m.id);
    this.idle();
    try {
      p.resolve(unwrap(m));
    } catch (err) {
      p.reject(err as Error);
    }
  }

  private failAll(why: string): void {
    const err = new BuildError(why);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.idle();
  }

  /** Async calls keep the process alive while they wait; an idle fetcher does not. */
  private busy(): void {
    this.worker.ref();
    this.port.ref();
  }

  private idle(): void {
    if (this.pending.size > 0) return;
    this.worker.unref();
    this.port.unref();
  }
}

/** A file or object that every server said it does not have (404). */
export class NotFoundError extends BuildError {}

function unwrap(m: Done): Extract<Reply, { ok: true }> {
  if (m.ok) return m;
  throw m.input ? new InputError(m.error) : m.notFound ? new NotFoundError(m.error) : new BuildError(m.error);
}

function bytesOf(r: Extract<Reply, { ok: true }>): Buffer {
  const b = r.bytes!;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function nameOf(r: ObjectRequest | ChunkedRequest): string {
  return 'path' in r ? r.path : r.key;
}

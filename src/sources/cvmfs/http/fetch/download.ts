// Fail-over: each request goes to the servers in order, through the proxy chain; a server or a
// proxy that fails (cannot be reached, retries exhausted) is skipped for the rest of the run, with
// one log line. Per server at most `parallel` requests are in flight; requests asked for now
// (not prefetched) go first.
import { createHash } from 'node:crypto';
import { Failure, HttpClient, type Response, networkFailure } from './http.js';
import { DIRECT, type ProxyGroup, proxyFromEnvironment, serverName, serverUrl } from './servers.js';
import type { FetchStats } from './types.js';

export interface DownloaderOptions {
  servers: string[];
  proxies: ProxyGroup[] | null;
  parallel: number;
  timeoutMs: number;
  retries: number;
  userAgent: string;
  env: Record<string, string | undefined>;
  log: (line: string) => void;
  /** Something happened (a request, a retry, bytes): a blocked caller keeps waiting. */
  activity: () => void;
  stats: FetchStats;
}

/** A body reader: reads the response to its end; throws Failure for bad content. */
export type Consume<T> = (r: Response) => Promise<T>;

/** How urgent a request is: prefetches wait behind objects asked for now, until asked for themselves. */
export interface Ticket {
  urgent: boolean;
  /** Set while the request waits for its turn: moves it to the front. */
  promote?: () => void;
}

/** A request's own failure: what the user sees, one line, naming the repository and the object. */
export class DownloadError extends Error {
  /** Every server tried answered 404: the thing is not there (as opposed to: could not be had). */
  notFound = false;
}

export class Downloader {
  /** Servers skipped for the rest of the run, with why. */
  private readonly deadServers = new Map<string, string>();
  private readonly deadProxies = new Set<string>();
  private readonly gates = new Map<string, Gate>();
  readonly http: HttpClient;

  constructor(private readonly o: DownloaderOptions) {
    this.http = new HttpClient(o.userAgent, o.timeoutMs, o.parallel, () => {
      o.stats.requests++;
      o.activity();
    });
  }

  /** GET `<server>/<fqrn>/<rel>` from the first server that has it, and read it with `consume`. */
  async fetch<T>(fqrn: string, rel: string, consume: Consume<T>, ticket: Ticket): Promise<T> {
    const failures: Array<{ server: string; failure: Failure }> = [];
    for (const server of this.o.servers) {
      if (this.deadServers.has(server)) continue;
      const url = `${serverUrl(server, fqrn)}/${rel}`;
      const failure = await this.fromServer(server, url, consume, ticket);
      if (!(failure instanceof Failure)) return failure.value;
      if (failure.kind === 'fatal') throw new DownloadError(`${fqrn}: ${rel}: ${failure.message}`);
      failures.push({ server, failure });
    }
    const err = new DownloadError(`${fqrn}: ${rel}: ${summarise(failures, this.deadServers)}`);
    err.notFound = failures.length > 0 && this.deadServers.size === 0 && failures.every((f) => f.failure.status === 404);
    throw err;
  }

  private async fromServer<T>(server: string, url: string, consume: Consume<T>, ticket: Ticket): Promise<{ value: T } | Failure> {
    const gate = this.gateOf(server);
    for (let attempt = 0; ; ) {
      if (this.deadServers.has(server)) return new Failure('skipped earlier in this run', 'server-down');
      const proxy = this.proxyFor(url);
      if (proxy instanceof Failure) return proxy;
      let failure: Failure;
      await gate.enter(ticket);
      try {
        this.o.stats.perServer[serverName(server)]!++;
        const r = await this.http.get(url, proxy);
        return { value: await readWith(r, consume) };
      } catch (err) {
        failure = networkFailure(err, proxy);
      } finally {
        gate.leave();
      }
      if (failure.kind === 'fatal') return failure;
      if (failure.kind === 'proxy-down' && proxy) {
        this.dropProxy(proxy, failure.message, url);
        continue;
      }
      if (failure.kind === 'retry' && attempt < this.o.retries) {
        this.o.stats.retries++;
        await sleep(100 * 2 ** attempt++);
        this.o.activity();
        continue;
      }
      if (failure.kind === 'retry' || failure.kind === 'server-down') this.dropServer(server, failure.message);
      return failure;
    }
  }

  private gateOf(server: string): Gate {
    let g = this.gates.get(server);
    if (!g) {
      g = new Gate(this.o.parallel);
      this.gates.set(server, g);
      this.o.stats.perServer[serverName(server)] ??= 0;
    }
    return g;
  }

  private dropServer(server: string, why: string): void {
    if (this.deadServers.has(server)) return;
    this.deadServers.set(server, why);
    const next = this.o.servers.find((s) => !this.deadServers.has(s));
    // With no server left the request fails, and its one error line says why: no warning besides.
    if (next) this.o.log(`cvmfs: ${serverName(server)} skipped: ${why}; trying ${serverName(next)}`);
  }

  private dropProxy(proxy: string, why: string, url: string): void {
    if (this.deadProxies.has(proxy)) return;
    this.deadProxies.add(proxy);
    const next = this.proxyFor(url);
    this.o.log(`cvmfs: proxy ${proxy} skipped: ${why}; ${next instanceof Failure ? 'no proxy left' : `trying ${next ?? DIRECT}`}`);
  }

  /** The proxy for `url`: null for direct; a Failure when every proxy has failed. */
  private proxyFor(url: string): string | null | Failure {
    const groups = this.o.proxies ?? [[proxyFromEnvironment(url, this.o.env) ?? DIRECT]];
    // The member a URL starts at in its group depends only on the URL: runs are repeatable and the
    // load spreads over the group's members.
    const start = createHash('sha1').update(url).digest().readUInt32BE(0);
    for (const group of groups) {
      for (let i = 0; i < group.length; i++) {
        const member = group[(start + i) % group.length]!;
        if (member === DIRECT) return null;
        if (!this.deadProxies.has(member)) return member;
      }
    }
    return new Failure(`every proxy failed (${groups.flat().join(', ')})`, 'server-down');
  }

  close(): void {
    this.http.destroy();
  }
}

/** Read the body, turning a connection that ended early into "truncated" and an abort into its reason. */
async function readWith<T>(r: Response, consume: Consume<T>): Promise<T> {
  let got = 0;
  r.res.on('data', (chunk: Buffer) => (got += chunk.length));
  try {
    return await consume(r);
  } catch (err) {
    if (err instanceof Failure) {
      r.abort();
      throw err;
    }
    if (r.why) throw r.why;
    if (r.length >= 0 && got < r.length) throw new Failure(`truncated (got ${got} of ${r.length} bytes)`, 'retry');
    throw networkFailure(err, null);
  }
}

function summarise(failures: Array<{ server: string; failure: Failure }>, dead: Map<string, string>): string {
  if (failures.length === 0) return `no server left (${[...dead].map(([s, why]) => `${serverName(s)}: ${why}`).join('; ')}, earlier in this run)`;
  const messages = new Set(failures.map((f) => f.failure.message));
  if (messages.size === 1) {
    const only = failures[0]!.failure.message;
    return failures.length === 1 ? only : `${only} on every server (${failures.map((f) => serverName(f.server)).join(', ')})`;
  }
  return failures.map((f) => `${serverName(f.server)}: ${f.failure.message}`).join('; ');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** At most `limit` holders at once; urgent waiters go first, the others in order (a Map keeps it, and lets one be promoted). */
class Gate {
  private active = 0;
  private readonly urgent: Array<() => void> = [];
  private readonly later = new Map<Ticket, () => void>();

  constructor(private readonly limit: number) {}

  enter(ticket: Ticket): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      if (ticket.urgent) return void this.urgent.push(resolve);
      this.later.set(ticket, resolve);
      ticket.promote = () => {
        if (!this.later.delete(ticket)) return;
        this.urgent.push(resolve);
      };
    });
  }

  leave(): void {
    let next = this.urgent.shift();
    if (!next) {
      const first = this.later.entries().next();
      if (!first.done) {
        this.later.delete(first.value[0]);
        next = first.value[1];
      }
    }
    if (next) next();
    else this.active--;
  }
}

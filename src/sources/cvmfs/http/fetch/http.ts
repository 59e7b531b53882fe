// One GET (redirects followed) over keep-alive connections: direct, through an HTTP proxy
// (absolute URL in the request line) or, for https, through a CONNECT tunnel. Failures come back
// as Failure, which says what the caller should do next (retry, next server, drop a proxy...).
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';

/**
 * What a failed attempt means: `retry` (5xx, reset, timeout, truncated: the same server again,
 * after a pause), `next` (404, bad content, redirect loop: the next server, no retry),
 * `server-down` (the server cannot be reached), `proxy-down` (the proxy cannot be reached),
 * `fatal` (our side failed: the cache cannot be written; no server can help).
 */
export type FailureKind = 'retry' | 'next' | 'server-down' | 'proxy-down' | 'fatal';

export class Failure extends Error {
  constructor(
    message: string,
    readonly kind: FailureKind,
    /** The HTTP status that made it, if one did. */
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

/** A response being read; `why` is set when the request was ended on purpose (a timeout). */
export interface Response {
  res: http.IncomingMessage;
  /** Content-Length, or -1. */
  length: number;
  why: Failure | null;
  /** Stop reading (a content error): the connection is dropped. */
  abort(): void;
}

const MAX_REDIRECTS = 5;
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

export class HttpClient {
  private readonly agents = new Map<string, http.Agent>();

  constructor(
    private readonly userAgent: string,
    private readonly timeoutMs: number,
    private readonly parallel: number,
    /** Called once per request sent (redirects included). */
    private readonly onRequest: () => void,
  ) {}

  /** GET `url` (through `proxy`, `http://host:port`, or directly when null) and return the 200 response. */
  async get(url: string, proxy: string | null): Promise<Response> {
    const seen = new Set<string>();
    let current = url;
    for (let hop = 0; ; hop++) {
      seen.add(current);
      const r = await this.request(new URL(current), proxy);
      const status = r.res.statusCode ?? 0;
      if (status === 200) return r;
      r.res.resume();
      const location = r.res.headers.location;
      if (status >= 300 && status < 400 && location) {
        const next = new URL(location, current).href;
        if (seen.has(next)) throw new Failure('redirect loop', 'next');
        if (hop >= MAX_REDIRECTS) throw new Failure(`more than ${MAX_REDIRECTS} redirects`, 'next');
        if (!/^https?:$/.test(new URL(next).protocol)) throw new Failure(`redirected to ${next}, not http(s)`, 'next');
        current = next;
        continue;
      }
      const text = `${status} ${r.res.statusMessage ?? http.STATUS_CODES[status] ?? ''}`.trim();
      throw new Failure(text, status >= 500 || status === 429 || status === 408 ? 'retry' : 'next', status);
    }
  }

  private request(url: URL, proxy: string | null): Promise<Response> {
    this.onRequest();
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, Accept: '*/*' };
    // The manifest and whitelist change in place: a proxy must not answer them from its cache (the
    // client asks the same way). Objects are named by their content and may come from any cache.
    if (/\/\.cvmfs(published|whitelist)$/.test(url.pathname)) Object.assign(headers, { 'Cache-Control': 'no-cache', Pragma: 'no-cache' });
    let req: http.ClientRequest;
    if (proxy && url.protocol === 'http:') {
      const p = new URL(proxy);
      req = http.request({ host: p.hostname, port: p.port || 80, method: 'GET', path: url.href, headers: { ...headers, Host: url.host }, agent: this.agent(`proxy ${proxy}`, () => new http.Agent(this.agentOptions())) });
    } else if (proxy) {
      req = https.request(url, { method: 'GET', headers, agent: this.agent(`tunnel ${proxy} ${url.host}`, () => new TunnelAgent(new URL(proxy), this.agentOptions())) });
    } else {
      const lib = url.protocol === 'https:' ? https : http;
      req = lib.request(url, { method: 'GET', headers, agent: this.agent(`direct ${url.origin}`, () => (url.protocol === 'https:' ? new https.Agent(this.agentOptions()) : new http.Agent(this.agentOptions()))) });
    }
    return new Promise<Response>((resolve, reject) => {
      const r: Response = { res: undefined as unknown as http.IncomingMessage, length: -1, why: null, abort: () => req.destroy() };
      req.setTimeout(this.timeoutMs, () => {
        r.why = new Failure(`no response within ${seconds(this.timeoutMs)} s`, 'retry');
        req.destroy(r.why);
      });
      req.once('response', (res) => {
        r.res = res;
        const cl = res.headers['content-length'];
        r.length = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : -1;
        resolve(r);
      });
      req.once('error', (err) => reject(r.why ?? networkFailure(err, proxy)));
      req.end();
    });
  }

  private agentOptions(): http.AgentOptions {
    return { keepAlive: true, maxSockets: this.parallel, scheduling: 'fifo' };
  }

  private agent(key: string, make: () => http.Agent): http.Agent {
    let a = this.agents.get(key);
    if (!a) {
      a = make();
      this.agents.set(key, a);
    }
    return a;
  }

  /** Drop every connection (close): requests in flight fail. */
  destroy(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/** A network error as a Failure: cannot connect means the server (or the proxy, when there is one) is down. */
export function networkFailure(err: unknown, proxy: string | null): Failure {
  if (err instanceof Failure) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  if (CONNECT_ERRORS.has(code)) return new Failure(`${describeCode(code)} (${code})`, proxy ? 'proxy-down' : 'server-down');
  if (e?.message?.startsWith('proxy CONNECT')) return new Failure(e.message, 'proxy-down');
  return new Failure(code ? `${describeCode(code)} (${code})` : (e?.message ?? String(err)), 'retry');
}

function describeCode(code: string): string {
  const text: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host name lookup failed',
    EPIPE: 'connection closed',
    ETIMEDOUT: 'connection timed out',
  };
  return text[code] ?? code.toLowerCase();
}

export function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

/** https through an HTTP proxy: each connection is a CONNECT tunnel, then TLS inside it (kept alive like any other). */
class TunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    options: https.AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: tls.ConnectionOptions & { host?: string; port?: number; servername?: string }, callback: (err: Error | null, socket?: Duplex) => void): Duplex | undefined {
    const target = `${options.host}:${options.port ?? 443}`;
    const req = http.request({ host: this.proxy.hostname, port: this.proxy.port || 80, method: 'CONNECT', path: target, headers: { Host: target }, agent: false });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        callback(new Error(`proxy CONNECT ${target}: ${res.statusCode} ${res.statusMessage ?? ''}`.trim()));
        return;
      }
      callback(null, tls.connect({ ...options, socket, servername: options.servername ?? options.host }));
    });
    req.once('error', (err) => callback(err));
    req.end();
    return undefined;
  }
}

// A small client of the OCI Distribution API (distribution-spec v1.1): the /v2/ probe, the choice
// of https or http, Basic and Bearer token auth (distribution's auth/token.md), redirects, timeouts,
// and registry errors turned into one-line InputError/BuildError messages naming the reference.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { BuildError, InputError } from '../model/errors.js';
import type { Credentials } from './auth.js';
import { checkJson, num, obj, optional, singleLine, str } from '../util/json-check.js';
import { displayReference, type ImageReference } from './reference.js';

export interface RegistryOptions {
  tlsVerify: boolean;
  credentials?: Credentials | null;
  /**
   * Per request: without progress (no byte received or sent), and for the whole exchange, body
   * included (plus the time a large body takes at MIN_RATE). Default 60000.
   */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/**
 * Bytes per second a transfer may not fall below on average: a blob of N bytes gets the timeout
 * plus N / MIN_RATE seconds. Without an overall deadline a server trickling one byte at a time
 * would hold a request forever, never idle long enough for the idle timeout.
 */
export const MIN_RATE = 64 * 1024;

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: URL;
}

export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path (`/v2/…`) on the registry or an absolute URL (an upload Location). */
  url: string | URL;
  headers?: Record<string, string>;
  /** Made anew for each attempt, so that a request can be sent again after re-authenticating. */
  body?: () => Buffer | Readable;
  /** Follow 30x (blob GETs may go to a CDN). */
  redirects?: boolean;
  /** Bytes the body sent or expected is known to have: more time for the whole exchange (see MIN_RATE). */
  bytes?: number;
}

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** `Bearer realm="…",service="…",scope="…"` → scheme and parameters. */
function parseChallenge(header: string | undefined): Challenge | null {
  if (!header) return null;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return null;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme, params };
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const TLS_PROTOCOL_ERRORS = new Set(['EPROTO', 'ECONNRESET', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

/** Marks our own timeout among the errors a socket can end with. */
class Timeout extends Error {
  constructor(
    /** idle: no byte either way for timeoutMs; deadline: the exchange took longer than it may. */
    readonly kind: 'idle' | 'deadline',
    readonly ms: number,
  ) {
    super(`timeout (${kind})`);
  }
}

/**
 * One registry, one repository (and the others a push mounts from). Holds the connection pool,
 * the scheme found by the probe, and the current Authorization. `close()` ends every socket.
 */
export class RegistryClient {
  readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly httpsAgent: https.Agent;
  private connecting: Promise<void> | null = null;
  private base: URL | null = null;
  private authorization: string | null = null;
  private challenge: Challenge | null = null;
  private tokenExpires = Infinity;

  constructor(
    readonly ref: ImageReference,
    /** Token scopes: `repository:NAME:pull[,push]`. */
    private readonly scopes: string[],
    private readonly opts: RegistryOptions,
  ) {
    this.prefix = displayReference(ref);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: opts.tlsVerify });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  log(line: string): void {
    this.opts.log?.(line);
  }

  input(what: string): InputError {
    return new InputError(`${this.prefix}: ${what}`);
  }

  build(what: string): BuildError {
    return new BuildError(`${this.prefix}: ${what}`);
  }

  /** `/v2/<repository>/<rest>` for this client's repository. */
  path(rest: string, repository = this.ref.repository): string {
    return `/v2/${repository}/${rest}`;
  }

  /** Probe `/v2/` once (transfers run in parallel): picks https or http, and authenticates when the registry asks to. */
  connect(): Promise<void> {
    this.connecting ??= this.probe();
    return this.connecting;
  }

  private async probe(): Promise<void> {
    const host = this.ref.registry;
    const plainFirst = !this.opts.tlsVerify && LOOPBACK.has(host.replace(/:\d+$/, ''));
    const schemes = this.opts.tlsVerify ? ['https'] : plainFirst ? ['http', 'https'] : ['https', 'http'];
    let res: Response | null = null;
    for (const [i, scheme] of schemes.entries()) {
      const base = new URL(`${scheme}://${host}/`);
      const last = i === schemes.length - 1;
      try {
        res = await this.send('GET', new URL('/v2/', base), {}, undefined, this.timeoutMs);
      } catch (err) {
        if (!last && scheme === 'https' && TLS_PROTOCOL_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) continue;
        throw this.networkError(err, base);
      }
      // A TLS-only server (Go's) answers plain HTTP with 400 "Client sent an HTTP request to an HTTPS server".
      if (!last && scheme === 'http' && res.status === 400) {
        res.body.resume();
        continue;
      }
      this.base = base;
      break;
    }
    const probe = res!;
    const body = await this.readBody(probe, 64 * 1024);
    if (probe.status === 401) {
      this.challenge = parseChallenge(probe.headers['www-authenticate']);
      if (!this.challenge) throw this.input(`registry asks for authentication of an unsupported kind (${probe.headers['www-authenticate'] ?? 'no WWW-Authenticate'})`);
      await this.authenticate(false);
    } else if (probe.status !== 200) {
      throw this.statusError(probe, body, `GET ${new URL('/v2/', this.base!).href} (is this a registry?)`);
    }
    this.log(`${this.ref.registry}: ${this.base!.protocol.slice(0, -1)}${this.challenge ? `, ${this.challenge.scheme} auth` : ''}`);
  }

  /** Sets `authorization` for the current challenge. `retry`: the last one was refused. */
  private async authenticate(retry: boolean): Promise<void> {
    const creds = this.opts.credentials ?? null;
    const challenge = this.challenge!;
    if (challenge.scheme === 'basic') {
      if (!creds) throw this.input('authentication required (give credentials with --creds USER:PASSWORD)');
      if (retry) throw this.input(`credentials rejected for user ${singleLine(creds.username, 100)}`);
      this.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      return;
    }
    if (retry && this.authorization && Date.now() < this.tokenExpires) {
      // A fresh token that is still refused does not grant what we asked for.
      throw this.input(creds ? `credentials rejected for user ${singleLine(creds.username, 100)} (access to ${this.scopes.join(' ')} refused)` : 'authentication required (give credentials with --creds USER:PASSWORD)');
    }
    const realm = challenge.params['realm'];
    if (!realm) throw this.build('Bearer challenge without a realm');
    const url = new URL(realm, this.base!);
    if (challenge.params['service']) url.searchParams.set('service', challenge.params['service']);
    const scopes = [...this.scopes];
    if (challenge.params['scope'] && !scopes.includes(challenge.params['scope'])) scopes.push(challenge.params['scope']);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (creds) headers['authorization'] = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    let res: Response;
    try {
      res = await this.send('GET', url, headers, undefined, this.timeoutMs);
    } catch (err) {
      throw this.networkError(err, url);
    }
    const body = await this.readBody(res, 1 << 20);
    if (res.status === 401 || res.status === 403) {
      throw this.input(creds ? `credentials rejected for user ${singleLine(creds.username, 100)} (token server answered ${res.status})` : 'authentication required (give credentials with --creds USER:PASSWORD)');
    }
    if (res.status !== 200) throw this.statusError(res, body, `token server ${url.origin}${url.pathname}`);
    let answer: unknown;
    try {
      answer = JSON.parse(body.toString('utf8'));
    } catch {
      throw this.build(`token server ${url.origin}${url.pathname} answered something other than JSON`);
    }
    const token = checkJson(tokenCheck, answer, `${this.prefix}: token server ${url.origin}${url.pathname}`);
    const value = token.token ?? token.access_token;
    if (!value) throw this.build(`token server ${url.origin}${url.pathname} answered without a token`);
    this.authorization = `Bearer ${value}`;
    // Renewed at 90% of its lifetime (the spec's default is 60 s).
    this.tokenExpires = Date.now() + Math.max(0, token.expires_in ?? 60) * 900;
  }

  /**
   * Sends `spec` on the registry and returns the response whatever its status (the caller checks
   * it), after re-authenticating once on 401. Network failures become BuildError/InputError.
   */
  async request(spec: RequestSpec): Promise<Response> {
    await this.connect();
    if (this.challenge?.scheme === 'bearer' && Date.now() >= this.tokenExpires) await this.authenticate(false);
    for (let attempt = 0; ; attempt++) {
      let url = new URL(spec.url, this.base!);
      let res: Response;
      for (let hops = 0; ; hops++) {
        const headers = { ...spec.headers };
        // Credentials go to the registry only, never to a CDN a blob redirects to.
        if (this.authorization && url.host === this.base!.host) headers['authorization'] = this.authorization;
        try {
          res = await this.send(spec.method, url, headers, spec.body, this.deadline(spec.bytes ?? 0));
        } catch (err) {
          throw this.networkError(err, url);
        }
        const location = res.headers.location;
        if (!spec.redirects || ![301, 302, 303, 307, 308].includes(res.status) || !location) break;
        res.body.resume();
        if (hops === 5) throw this.build(`too many redirects (last to ${location})`);
        url = new URL(location, url);
      }
      if (res.status !== 401) return res;
      res.body.resume();
      const challenge = parseChallenge(res.headers['www-authenticate']);
      if (challenge) this.challenge = challenge;
      if (!this.challenge) throw this.input(`${spec.method} ${url.pathname}: unauthorised (401) without a challenge`);
      // Basic credentials already sent were refused; a token gets one renewal.
      await this.authenticate(attempt > 0 || (this.challenge.scheme === 'basic' && this.authorization !== null));
    }
  }

  /** How long an exchange of `bytes` bytes may take in all. */
  private deadline(bytes: number): number {
    return this.timeoutMs + Math.ceil((Math.max(0, bytes) / MIN_RATE) * 1000);
  }

  /** One HTTP exchange; resolves when the response headers arrive. The deadline runs until its body ends. */
  private send(method: string, url: URL, headers: Record<string, string>, body: RequestSpec['body'], deadlineMs: number): Promise<Response> {
    return new Promise((resolve, reject) => {
      const payload = body?.();
      const lib = url.protocol === 'https:' ? https : http;
      const agent = url.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
      const all: Record<string, string> = { 'user-agent': 'shrinkwrap', ...headers };
      if (Buffer.isBuffer(payload)) all['content-length'] = String(payload.length);
      else if (!payload && (method === 'PUT' || method === 'POST' || method === 'PATCH')) all['content-length'] = '0';
      let response: http.IncomingMessage | null = null;
      const req = lib.request(url, { method, headers: all, agent });
      // No byte in either direction for timeoutMs: fail the request and any body still streaming.
      const abort = (err: Timeout) => {
        response?.destroy(err);
        req.destroy(err);
      };
      req.setTimeout(this.timeoutMs, () => abort(new Timeout('idle', this.timeoutMs)));
      // A server trickling bytes is never idle: the exchange as a whole has a deadline too.
      // Without even the headers by then, it is simply no response.
      // For a small body the deadline falls about when a stall's idle timeout would: a grace period lets
      // the idle timeout name a stall as a stall, whichever timer the event loop reaches first.
      const grace = Math.min(1000, Math.ceil(this.timeoutMs / 4));
      let deadline = setTimeout(() => {
        deadline = setTimeout(() => abort(new Timeout(response ? 'deadline' : 'idle', response ? deadlineMs : this.timeoutMs)), grace);
      }, deadlineMs);
      req.once('close', () => {
        if (!response) clearTimeout(deadline);
      });
      req.on('error', (err) => {
        if (typeof payload === 'object' && !Buffer.isBuffer(payload)) payload.destroy();
        if (response) response.destroy(err);
        else reject(err);
      });
      req.on('response', (res) => {
        response = res;
        res.once('close', () => clearTimeout(deadline));
        // Readers attach their own handlers; this one keeps an unread body's error from being uncaught.
        res.on('error', () => {});
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
      });
      if (Buffer.isBuffer(payload)) req.end(payload);
      else if (payload) {
        payload.on('error', (err) => req.destroy(err));
        payload.pipe(req);
      } else req.end();
    });
  }

  /** The whole body, at most `limit` bytes (BuildError beyond). */
  async readBody(res: Response, limit: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > limit) {
          res.body.destroy();
          throw this.build(`${res.url.pathname}: response larger than ${limit} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      if (err instanceof BuildError) throw err;
      throw this.networkError(err, res.url);
    }
    return Buffer.concat(chunks);
  }

  /** Throws the error for an unexpected status, using the registry's error JSON when it sent one. */
  async fail(res: Response, what: string): Promise<never> {
    const body = res.body.readableEnded ? Buffer.alloc(0) : await this.readBody(res, 1 << 20).catch(() => Buffer.alloc(0));
    throw this.statusError(res, body, what);
  }

  /** `manifest unknown (404)`, `registry error 500 Internal Server Error: …`. */
  statusError(res: Response, body: Buffer, what: string): InputError | BuildError {
    // The registry's own words, on one line whatever it sent (an error list of another shape is shown as text).
    let message = '';
    try {
      const errors = (JSON.parse(body.toString('utf8')) as { errors?: unknown }).errors;
      const text = (v: unknown) => (typeof v === 'string' ? v : '');
      message = (Array.isArray(errors) ? errors : []).map((e: { code?: unknown; message?: unknown } | null) => text(e?.message) || text(e?.code)).filter((m) => m !== '').join('; ');
    } catch {
      message = body.toString('utf8').replace(/\s+/g, ' ').trim();
    }
    message = singleLine(message, 200);
    const s = res.status;
    if (s >= 500) return this.build(`registry error ${s} ${http.STATUS_CODES[s] ?? ''}${message ? `: ${message}` : ''} (${what})`);
    if (s === 401) return this.input(`authentication required (${what})`);
    if (s === 403) return this.input(`access denied (403)${message ? `: ${message}` : ''} (${what})`);
    if (s >= 400) return this.input(`${message || `${what}: ${http.STATUS_CODES[s] ?? 'error'}`} (${s})`);
    return this.build(`unexpected answer ${s} ${http.STATUS_CODES[s] ?? ''} (${what})`);
  }

  /** A network failure as one line: refused, unresolvable, timeout, TLS. */
  networkError(err: unknown, url: URL): InputError | BuildError {
    if (err instanceof InputError || err instanceof BuildError) return err;
    if (err instanceof Timeout && err.kind === 'idle') return this.build(`no response within ${+(err.ms / 1000).toFixed(3)} s`);
    if (err instanceof Timeout) return this.build(`${url.pathname}: not finished within ${+(err.ms / 1000).toFixed(3)} s (too slow; see --registry-timeout)`);
    const e = err as NodeJS.ErrnoException;
    const where = url.host;
    const code = e.code ?? '';
    if (code === 'ECONNREFUSED') return this.build(`connection refused (${where})`);
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return this.build(`cannot resolve host ${url.hostname}`);
    if (code === 'ECONNRESET' && url.protocol === 'http:') return this.build(`connection reset by ${where}`);
    if (url.protocol === 'https:' && TLS_PROTOCOL_ERRORS.has(code)) {
      return this.input(`${where} does not speak TLS (plain HTTP registry?); use --tls-verify=false to allow http`);
    }
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      return this.input(`TLS certificate of ${where} not trusted (${code}); use --tls-verify=false to accept it`);
    }
    return this.build(`${where}: ${singleLine(e.message?.split('\n')[0] ?? String(err), 200)}${code ? ` (${code})` : ''}`);
  }
}

/** A token server's answer (distribution's auth/token.md). */
const tokenCheck = obj({ token: optional(str), access_token: optional(str), expires_in: optional(num) });

/** `location` with `digest=` appended the way upload URLs need it (they may carry `?_state=…`). */
export function withDigest(location: URL, digest: string): URL {
  // Appended to the text as is: re-encoding the registry's opaque `_state` could change it.
  return new URL(`${location.href}${location.search ? '&' : '?'}digest=${encodeURIComponent(digest)}`);
}

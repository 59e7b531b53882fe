// A throwaway HTTP server on 127.0.0.1 that serves a directory as a CernVM-FS server does (GET
// /cvmfs/<fqrn>/<path> → <dir>/<fqrn>/<path>), with faults injected per path: a status, a stall
// or a truncated body after N bytes, a delay, a redirect. It counts what it saw.
//
// It runs on a worker thread of its own: the fetcher's synchronous calls block the test's thread,
// which could not answer a request meanwhile. Faults and counts travel as messages.
// Also a tiny forward proxy (absolute-URL requests, on the test's thread) that counts requests.
import * as http from 'node:http';
import type * as net from 'node:net';
import { Worker } from 'node:worker_threads';

export interface Fault {
  /** Answer with this status (and no body). */
  status?: number;
  /** Send N bytes of the body, then keep the connection open and say nothing more. */
  stallAfter?: number;
  /** Send N bytes of the body (Content-Length says all), then close the connection. */
  truncateAfter?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** 302 to this location. */
  redirect?: string;
  /** Only for the first N requests of the path (then it is served normally). */
  times?: number;
}

export interface Counts {
  /** Requests seen, by URL path. */
  seen: Record<string, number>;
  total: number;
  /** The most requests in progress at once. */
  maxConcurrent: number;
  /** User-Agent of the last request. */
  userAgent: string;
}

export interface CvmfsServer {
  /** http://127.0.0.1:PORT/cvmfs */
  url: string;
  port: number;
  /** Inject a fault for a URL path (`/cvmfs/<fqrn>/data/ab/…`), or '*' for every path. */
  fault(urlPath: string, f: Fault): Promise<void>;
  counts(): Promise<Counts>;
  stop(): Promise<void>;
}

/** The server, run on the worker (self-contained: its source is all the worker gets). */
function serverMain(workerData: { dir: string; delayMs: number }, parentPort: import('node:worker_threads').MessagePort, req: NodeRequire): void {
  const fs = req('node:fs') as typeof import('node:fs');
  const http = req('node:http') as typeof import('node:http');
  const path = req('node:path') as typeof import('node:path');
  const faults = new Map<string, Fault>();
  const counts: Counts = { seen: {}, total: 0, maxConcurrent: 0, userAgent: '' };
  const sockets = new Set<import('node:net').Socket>();
  let concurrent = 0;
  const answer = (urlPath: string, fault: Fault, request: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    const empty = (status: number, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...headers, 'Content-Length': 0 });
      res.end();
    };
    if (fault.redirect) return empty(302, { Location: fault.redirect });
    if (fault.status) return empty(fault.status);
    const rel = urlPath.replace(/^\/cvmfs\//, '');
    const file = path.join(workerData.dir, rel);
    if (!urlPath.startsWith('/cvmfs/') || rel.split('/').includes('..') || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return empty(404);
    const body = fs.readFileSync(file);
    res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
    if (fault.stallAfter !== undefined) return void res.write(body.subarray(0, fault.stallAfter)); // and nothing more
    if (fault.truncateAfter !== undefined) return void res.write(body.subarray(0, fault.truncateAfter), () => request.socket.destroy());
    res.end(body);
  };
  const server = http.createServer((request, res) => {
    const urlPath = new URL(request.url ?? '/', 'http://x').pathname;
    counts.total++;
    counts.seen[urlPath] = (counts.seen[urlPath] ?? 0) + 1;
    counts.userAgent = request.headers['user-agent'] ?? '';
    concurrent++;
    counts.maxConcurrent = Math.max(counts.maxConcurrent, concurrent);
    res.on('close', () => concurrent--);
    const key = faults.has(urlPath) ? urlPath : '*';
    let fault = faults.get(key) ?? {};
    if (fault.times !== undefined && fault.times-- <= 0) {
      faults.delete(key);
      fault = {};
    }
    setTimeout(() => answer(urlPath, fault, request, res), (fault.delayMs ?? 0) + workerData.delayMs);
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  parentPort.on('message', (m: { id: number; op: string; path?: string; fault?: Fault }) => {
    if (m.op === 'fault') faults.set(m.path!, m.fault!);
    if (m.op === 'counts') return parentPort.postMessage({ id: m.id, counts });
    if (m.op === 'stop') {
      for (const sock of sockets) sock.destroy();
      return server.close(() => parentPort.postMessage({ id: m.id }));
    }
    parentPort.postMessage({ id: m.id });
  });
  server.listen(0, '127.0.0.1', () => parentPort.postMessage({ id: 0, port: (server.address() as import('node:net').AddressInfo).port }));
}

export async function startCvmfsServer(dir: string, opts: { delayMs?: number } = {}): Promise<CvmfsServer> {
  const code = `const { workerData, parentPort } = require('node:worker_threads');\n(${serverMain.toString()})(workerData, parentPort, require);`;
  const worker = new Worker(code, { eval: true, workerData: { dir, delayMs: opts.delayMs ?? 0 } });
  const waiting = new Map<number, (m: { counts?: Counts; port?: number }) => void>();
  worker.on('message', (m: { id: number; counts?: Counts; port?: number }) => {
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  let nextId = 1;
  const ask = (id: number, message?: object) =>
    new Promise<{ counts?: Counts; port?: number }>((resolve, reject) => {
      waiting.set(id, resolve);
      worker.once('error', reject);
      if (message) worker.postMessage({ id, ...message });
    });
  const { port } = await ask(0);
  return {
    url: `http://127.0.0.1:${port}/cvmfs`,
    port: port!,
    fault: async (urlPath, fault) => void (await ask(nextId++, { op: 'fault', path: urlPath, fault })),
    counts: async () => (await ask(nextId++, { op: 'counts' })).counts!,
    stop: async () => {
      await ask(nextId++, { op: 'stop' });
      await worker.terminate();
    },
  };
}

export interface ForwardProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Requests forwarded. */
  count: number;
  stop(): Promise<void>;
}

/** An HTTP forward proxy: takes `GET http://host/path`, fetches it, passes the answer on. */
export async function startForwardProxy(): Promise<ForwardProxy> {
  const sockets = new Set<net.Socket>();
  const p: ForwardProxy = {
    url: '',
    count: 0,
    stop: async () => {
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    if (!req.url?.startsWith('http://')) {
      res.writeHead(400, { 'Content-Length': 0 });
      res.end();
      return;
    }
    p.count++;
    const up = http.request(req.url, { method: req.method, headers: { ...req.headers, connection: 'close' }, agent: false }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502, { 'Content-Length': 0 });
      res.end();
    });
    up.end();
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  p.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return p;
}

// The download worker: all HTTP happens here, many requests at once, while the main thread may be
// blocked in a synchronous call. Replies go on the port the Fetcher gave us; after each one the
// control buffer's reply counter is bumped and notified, which wakes a blocked caller.
import type { MessagePort } from 'node:worker_threads';
import { workerData } from 'node:worker_threads';
import { InputError } from '../../../../model/errors.js';
import { cachePathOf, cached, ensureCacheDir } from './cache.js';
import { DownloadError, Downloader, type Ticket } from './download.js';
import { Failure } from './http.js';
import { CTL, type Job, type Reply, type WorkerData } from './protocol.js';
import { assemble, readSmall, storeObject } from './store.js';
import { type ChunkedRequest, type ObjectRequest, emptyStats, isChunked } from './types.js';

const data = workerData as WorkerData & { port: MessagePort };
const port = data.port;
const control = new Int32Array(data.control);
const options = data.options;
const stats = emptyStats();

function send(reply: Reply): void {
  port.postMessage(reply);
  Atomics.add(control, CTL.reply, 1);
  Atomics.notify(control, CTL.reply);
}

const activity = () => Atomics.add(control, CTL.activity, 1);

let progressTimer: NodeJS.Timeout | null = null;
function progress(): void {
  progressTimer ??= setTimeout(() => {
    progressTimer = null;
    send({ id: -2, stats: { ...stats, perServer: { ...stats.perServer } } });
  }, 200);
}

const counters = {
  wire: (n: number) => {
    stats.bytesWire += n;
    activity();
    progress();
  },
  stored: (n: number) => {
    stats.bytesStored += n;
  },
};

ensureCacheDir(options.cacheDir);

const downloader = new Downloader({ ...options, userAgent: data.userAgent, env: data.env, log: (line) => send({ id: -1, log: line }), activity, stats });

/** Every object asked for in this run, by cache path: each is fetched once. */
const inFlight = new Map<string, Promise<string>>();
/** How urgent each object not yet fetched is (a prefetch asked for now moves to the front). */
const tickets = new Map<string, Ticket>();
/** Temporaries being written: stores that close() waits for. */
const running = new Set<Promise<unknown>>();
let closed = false;

function object(r: ObjectRequest | ChunkedRequest, urgent: boolean): Promise<string> {
  const target = cachePathOf(options.cacheDir, r);
  let p = inFlight.get(target);
  if (p) {
    if (urgent) promote(r, target);
    return p;
  }
  if (cached(target)) {
    stats.fromCache++;
    p = Promise.resolve(target);
  } else {
    const ticket: Ticket = { urgent };
    tickets.set(target, ticket);
    p = fetchInto(r, target, ticket).finally(() => tickets.delete(target));
    p.catch(() => {}); // a prefetch's failure surfaces when the object is asked for
  }
  inFlight.set(target, p);
  return p;
}

/** A prefetched object (or a chunked file's chunks) is asked for now: to the front of the queue. */
function promote(r: ObjectRequest | ChunkedRequest, target: string): void {
  const ticket = tickets.get(target);
  if (!ticket || ticket.urgent) return;
  ticket.urgent = true;
  ticket.promote?.();
  if (isChunked(r)) for (const c of r.chunks) object(chunkRequest(c), true).catch(() => {});
}

function chunkRequest(c: ChunkedRequest['chunks'][number]): ObjectRequest {
  return { ...c, exactBytes: c.exactBytes ?? c.size };
}

async function fetchInto(r: ObjectRequest | ChunkedRequest, target: string, ticket: Ticket): Promise<string> {
  if (closed) throw new DownloadError('cvmfs fetcher closed');
  if (isChunked(r)) {
    const parts = [...r.chunks].sort((a, b) => a.offset - b.offset);
    const files = await Promise.all(parts.map((c) => object(chunkRequest(c), ticket.urgent)));
    // Closed while the chunks came: no assembly the exit could cut short (its temporary would stay).
    if (closed) throw new DownloadError('cvmfs fetcher closed');
    const job = assemble(target, parts.map((c, i) => ({ file: files[i]!, offset: c.offset, size: c.size })), r.size).catch((err: unknown) => {
      throw err instanceof Failure ? new DownloadError(`${r.fqrn}: ${r.key}: ${err.message}`) : err;
    });
    await track(job);
    return target;
  }
  await downloader.fetch(r.fqrn, r.path, (res) => track(storeObject(res, r, target, counters)), ticket);
  stats.objects++;
  progress();
  return target;
}

function track<T>(p: Promise<T>): Promise<T> {
  running.add(p);
  void p.finally(() => running.delete(p)).catch(() => {});
  return p;
}

async function handle(job: Job): Promise<void> {
  if (job.kind === 'close') {
    closed = true;
    downloader.close();
    // Until none is left: a store may start after a first wait (a response already in).
    while (running.size > 0) await Promise.allSettled([...running]);
    send({ id: job.id, ok: true, stats });
    return;
  }
  try {
    if (job.kind === 'file') {
      const bytes = await downloader.fetch(job.fqrn, job.name, (res) => readSmall(res, job.maxBytes, counters), { urgent: true });
      send({ id: job.id, ok: true, bytes, stats });
    } else {
      const p = object(job.request, !job.prefetch);
      if (job.prefetch) return;
      send({ id: job.id, ok: true, path: await p, stats });
    }
  } catch (err) {
    send({ id: job.id, ok: false, error: messageOf(err), input: err instanceof InputError, notFound: err instanceof DownloadError && err.notFound, stats });
  }
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0]!;
  return String(err);
}

port.on('message', (job: Job) => void handle(job));

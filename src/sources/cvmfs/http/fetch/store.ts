// Bytes from a response into the cache: hashed as stored, inflated as they stream, written to a
// temporary beside the final name and renamed into place only once the hash matched. A failure
// removes the temporary; nothing half-written ever has a final name.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Readable, Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { describeSystemError } from '../../../../model/errors.js';
import { tempPathBeside } from '../../../../util/atomic.js';
import { Failure, type Response } from './http.js';
import type { HashAlgorithm, ObjectRequest } from './types.js';

export function newHash(algorithm: HashAlgorithm): Hash {
  if (algorithm === 'sha1') return createHash('sha1');
  if (algorithm === 'rmd160') return createHash('ripemd160');
  return createHash('shake128', { outputLength: 20 });
}

/** Counts bytes through it, calls `each` per chunk, and fails once more than `max` pass. */
class Meter extends Transform {
  bytes = 0;
  constructor(
    private readonly max: number,
    private readonly tooMany: () => Failure,
    private readonly each: (chunk: Buffer) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) return done(this.tooMany());
    this.each(chunk);
    done(null, chunk);
  }
}

export interface StoreCounters {
  wire: (n: number) => void;
  stored: (n: number) => void;
}

/** Write a response's object to `target`, verified; returns its inflated size. */
export async function storeObject(r: Response, req: ObjectRequest, target: string, counters: StoreCounters): Promise<number> {
  const tmp = tempPathBeside(target);
  const hash = newHash(req.algorithm);
  const limit = req.exactBytes ?? req.maxBytes ?? Number.MAX_SAFE_INTEGER;
  const tooLarge = () => new Failure(req.exactBytes !== undefined ? `larger than the catalog says (${req.exactBytes} bytes)` : `larger than the catalog says (${limit} bytes)`, 'next');
  // Stored bytes are never much more than the content: zlib adds 5 bytes a 16 KiB block at worst.
  const wireLimit = limit >= Number.MAX_SAFE_INTEGER / 2 ? Number.MAX_SAFE_INTEGER : limit + Math.ceil(limit / 1000) + 65_536;
  const wire = new Meter(wireLimit, tooLarge, (c) => {
    hash.update(c);
    counters.wire(c.length);
  });
  const inflated = new Meter(limit, tooLarge, (c) => counters.stored(c.length));
  let out: fs.WriteStream | null = null;
  try {
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
    // Opened here, not by the stream: a failure may then remove the file at once (a stream's
    // own open could still be under way and create it after the removal).
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
    out = fs.createWriteStream('', { fd });
    const zlibError = req.compressed ? await inflateHashed(r.res, wire, [inflated, out]) : (await pipeline(r.res, wire, inflated, out), null);
    const digest = hash.digest('hex');
    if (digest !== req.digestHex) throw new Failure(`content hash ${digest} does not match`, 'next');
    if (zlibError !== null) throw zlibFailure(zlibError) ?? zlibError;
    if (req.exactBytes !== undefined && inflated.bytes !== req.exactBytes) {
      throw new Failure(`${inflated.bytes} bytes where the catalog says ${req.exactBytes}`, 'next');
    }
    fs.renameSync(tmp, target);
    return inflated.bytes;
  } catch (err) {
    out?.destroy();
    fs.rmSync(tmp, { force: true });
    throw cacheFailure(err, target) ?? err;
  }
}

/**
 * Hash every stored byte (through `wire`) while inflating them into `sink`. A zlib error stops only
 * the inflating, and is returned: the rest is still read and hashed, so that an altered object is
 * reported as what it is, a hash mismatch (a flipped byte breaks the zlib stream long before the
 * end). Any other failure of the sink (too large, the cache's disk) stops the reading at once.
 */
async function inflateHashed(source: Readable, wire: Meter, sink: Writable[]): Promise<unknown> {
  const inflate = zlib.createInflate();
  let zlibError: unknown = null;
  let sinkError: unknown = null;
  const feed = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (zlibError !== null || inflate.destroyed || inflate.write(chunk)) return done();
      const go = () => {
        inflate.off('drain', go).off('close', go);
        done();
      };
      inflate.on('drain', go).on('close', go);
    },
    final(done) {
      if (!inflate.destroyed) inflate.end();
      done();
    },
  });
  const inflating = pipeline([inflate, ...sink] as unknown as [NodeJS.ReadWriteStream, NodeJS.WritableStream]).catch((err: unknown) => {
    if (zlibFailure(err)) zlibError = err;
    else feed.destroy((sinkError = err) as Error);
  });
  await pipeline(source, wire, feed);
  await inflating;
  if (sinkError !== null) throw sinkError;
  return zlibError;
}

/** An error of the cache's file system: no server can help with that. */
function cacheFailure(err: unknown, target: string): Failure | null {
  const syscall = (err as NodeJS.ErrnoException)?.syscall ?? '';
  if (!['open', 'write', 'rename', 'mkdir', 'close', 'fsync'].includes(syscall)) return null;
  return new Failure(`cannot write the cache (${target}): ${describeSystemError(err)}`, 'fatal');
}

function zlibFailure(err: unknown): Failure | null {
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  if (code === 'Z_DATA_ERROR' || code === 'Z_NEED_DICT' || code === 'Z_STREAM_ERROR') return new Failure('not a zlib stream', 'next');
  if (code === 'Z_BUF_ERROR') return new Failure('incomplete zlib stream', 'next');
  return null;
}

/** A small file (.cvmfspublished) into memory, refusing more than `maxBytes`. */
export async function readSmall(r: Response, maxBytes: number, counters: StoreCounters): Promise<Buffer> {
  if (r.length > maxBytes) throw new Failure(`larger than ${maxBytes} bytes (${r.length})`, 'next');
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of r.res as AsyncIterable<Buffer>) {
    total += chunk.length;
    counters.wire(chunk.length);
    if (total > maxBytes) throw new Failure(`larger than ${maxBytes} bytes`, 'next');
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}

/**
 * The chunks (cached objects, in offset order, each of its size) concatenated into `target`,
 * whose size must come out as `size`.
 */
export async function assemble(target: string, chunks: Array<{ file: string; offset: number; size: number }>, size: number): Promise<void> {
  fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
  const tmp = tempPathBeside(target);
  const out = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    let pos = 0;
    for (const c of chunks) {
      if (c.offset !== pos) throw new Failure(`chunk at ${c.offset} where ${pos} was expected`, 'next');
      const input = await fs.promises.open(c.file, 'r');
      try {
        let done = 0;
        for (;;) {
          const { bytesRead } = await input.read(buf, 0, buf.length, done);
          if (bytesRead === 0) break;
          await out.write(buf, 0, bytesRead, pos + done);
          done += bytesRead;
        }
        if (done !== c.size) throw new Failure(`chunk at ${c.offset} has ${done} bytes where the catalog says ${c.size}`, 'next');
      } finally {
        await input.close();
      }
      pos += c.size;
    }
    if (pos !== size) throw new Failure(`chunks add up to ${pos} bytes where the catalog says ${size}`, 'next');
    await out.close();
    fs.renameSync(tmp, target);
  } catch (err) {
    await out.close().catch(() => {});
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

// A layer blob: the tar stream of some entries, compressed on all cores, with the sha256 of the
// tar (the layer's diff_id) and of the blob (its digest) computed on the fly. The stream is cut into
// fixed 1 MiB chunks, each compressed on its own into one gzip member or one zstd frame; a
// concatenation of members (frames) is one valid gzip (zstd) stream to every decoder, and because
// the cuts depend only on byte offsets, the blob is the same whatever the thread count or timing.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { type LayerCompression, layerMediaType } from '../../formats/oci.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, describeSystemError } from '../../model/errors.js';
import { CompressPool } from '../../codecs/pool.js';
import { ReadAhead } from '../../sources/read-ahead.js';
import { crc32 } from '../../util/crc32.js';
import { TarEncoder } from './encoder.js';

export type { LayerCompression } from '../../formats/oci.js';

export interface LayerOptions {
  compression: LayerCompression;
  level: number;
  threads: number;
  /**
   * Where files' content comes from when not from their `source` (read ahead then): pieces, in
   * order (a SquashFS part's blocks, decompressed).
   */
  content?: (e: Entry) => Iterable<Buffer>;
  /** File content written so far, and files: what the progress bar counts (not tar headers and padding). */
  onProgress?: (contentBytes: number, files: number) => void;
}

export interface LayerBlob {
  /** sha256:… of the blob as written. */
  digest: string;
  /** sha256:… of the uncompressed tar. */
  diffId: string;
  size: number;
  tarSize: number;
  mediaType: string;
  entries: number;
}

const CHUNK = 1 << 20;
// gzip member header: no name, no time (MTIME 0), XFL 0, OS 255 "unknown": nothing of the host.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);

/** Deflate "stored" blocks: for a chunk that compression made larger. */
function storedDeflate(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < raw.length || i === 0; i += 0xffff) {
    const piece = raw.subarray(i, i + 0xffff);
    const h = Buffer.alloc(5);
    h[0] = i + 0xffff >= raw.length ? 1 : 0; // BFINAL on the last, BTYPE 00
    h.writeUInt16LE(piece.length, 1);
    h.writeUInt16LE(~piece.length & 0xffff, 3);
    parts.push(h, piece);
    if (raw.length === 0) break;
  }
  return Buffer.concat(parts);
}

/** A zstd frame of raw blocks (single segment, content size in 4 bytes, no checksum). */
function rawZstdFrame(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(9);
  h.writeUInt32LE(0xfd2fb528, 0);
  h[4] = 0xa0; // FCS field 4 bytes, single segment
  h.writeUInt32LE(raw.length, 5);
  parts.push(h);
  const MAX = 128 * 1024;
  for (let i = 0; i < raw.length; i += MAX) {
    const piece = raw.subarray(i, i + MAX);
    const last = i + MAX >= raw.length ? 1 : 0;
    const word = last | (0 << 1) | (piece.length << 3);
    parts.push(Buffer.from([word & 0xff, (word >> 8) & 0xff, (word >> 16) & 0xff]), piece);
  }
  return Buffer.concat(parts);
}

/** Chunks in flight between the tar stream and the blob. */
function layerWindow(threads: number): number {
  return 4 * Math.max(1, threads) + 4;
}

/** How long the layer writer runs before it lets the event loop turn (signals, progress). */
const TURN_MS = 50;

/** Write `entries` (path order) as one layer blob to `file`. */
export async function writeLayer(entries: readonly Entry[], file: string, opts: LayerOptions, diag: Diagnostics): Promise<LayerBlob> {
  // Shared slots for the chunks in flight (the window below, the chunk being filled, one spare).
  const pool = opts.compression === 'none' ? null : await CompressPool.create({ name: opts.compression, level: opts.level, blockSize: CHUNK }, opts.threads, layerWindow(opts.threads) + 2);
  let fd: number;
  try {
    fd = fs.openSync(file, 'w');
  } catch (err) {
    await pool?.close();
    throw new BuildError(`cannot create ${file}: ${describeSystemError(err)}`);
  }
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let blobSize = 0;
  const writeOut = (b: Buffer) => {
    blobHash.update(b);
    blobSize += b.length;
    try {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done);
    } catch (err) {
      throw new BuildError(`cannot write ${file}: ${describeSystemError(err)}`);
    }
  };
  // Chunks in flight, oldest first; at most `window` of them (bounded memory whatever the size).
  const inFlight: Array<Promise<Buffer>> = [];
  const window = layerWindow(opts.threads);
  const submit = async (chunk: Buffer) => {
    diffHash.update(chunk);
    if (!pool) {
      writeOut(chunk);
      return;
    }
    const crc = opts.compression === 'gzip' ? crc32(chunk) : 0;
    const length = chunk.length;
    // Each member is built in a buffer of its own, so the pool's slot is free again at once.
    const member = pool.compress(chunk).then((c) => {
      try {
        if (opts.compression === 'zstd') return c.raw ? rawZstdFrame(c.data) : Buffer.from(c.data);
        // The codec makes zlib streams (2-byte header, deflate, Adler-32): keep the deflate part.
        const deflate = c.raw ? storedDeflate(c.data) : c.data.subarray(2, c.data.length - 4);
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(crc >>> 0, 0);
        trailer.writeUInt32LE(length >>> 0, 4);
        return Buffer.concat([GZIP_HEADER, deflate, trailer]);
      } finally {
        pool.release(c);
      }
    });
    member.catch(() => {}); // awaited in order below; a failure meanwhile is not "unhandled"
    inFlight.push(member);
    while (inFlight.length > window) writeOut(await inFlight.shift()!);
  };

  const newChunk = () => (pool ? pool.buffer(CHUNK) : Buffer.allocUnsafeSlow(CHUNK));
  let chunk = newChunk();
  let fill = 0;
  const sink = async (b: Buffer) => {
    let i = 0;
    while (i < b.length) {
      const n = Math.min(b.length - i, CHUNK - fill);
      b.copy(chunk, fill, i, i + n);
      fill += n;
      i += n;
      if (fill === CHUNK) {
        await submit(chunk);
        chunk = newChunk(); // the pool owns the old one now
        fill = 0;
      }
    }
  };
  const tar = new TarEncoder(sink, diag);
  try {
    // The next files' bytes are read while earlier ones are compressed and written.
    const ahead = opts.content ? null : new ReadAhead((i) => (entries[i]!.type === 'file' ? entries[i] : undefined), entries.length);
    let contentBytes = 0;
    let files = 0;
    // Awaits that resolve at once are microtasks: without a turn of the event loop now and then,
    // a layer of many small files would hold a SIGINT for seconds.
    let turn = Date.now() + TURN_MS;
    for (let i = 0; i < entries.length; i++) {
      if (Date.now() >= turn) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        turn = Date.now() + TURN_MS;
      }
      const e = entries[i]!;
      if (ahead) {
        let content = ahead.take(i);
        if (content instanceof Promise) content = await content;
        await tar.add(e, content);
      } else await tar.add(e, e.type === 'file' ? opts.content!(e) : null);
      if (e.type === 'file') {
        contentBytes += e.size;
        files++;
      }
      opts.onProgress?.(contentBytes, files);
    }
    await tar.end();
    // The last piece stays in its own chunk: a copy this small would come from Node's shared
    // 8 KiB pool, which must never be handed to a worker.
    if (fill > 0) await submit(chunk.subarray(0, fill));
    while (inFlight.length > 0) writeOut(await inFlight.shift()!);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
    await pool?.close();
  }
  return {
    digest: 'sha256:' + blobHash.digest('hex'),
    diffId: 'sha256:' + diffHash.digest('hex'),
    size: blobSize,
    tarSize: tar.bytes,
    mediaType: layerMediaType(opts.compression),
    entries: tar.entries,
  };
}

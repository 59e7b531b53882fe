// Layer blobs of a base image, wherever they are stored (a file, or a member of a docker-archive):
// sniffed for gzip or zstd, digested, and, when compressed, decompressed once into the work
// directory so that the tar reader and the writers can address content by offset.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';

/** Bytes `[offset, offset + length)` of `file`. */
export interface Region {
  file: string;
  offset: number;
  length: number;
}

export type BlobCompression = 'gzip' | 'zstd' | 'none';

export interface OpenedLayer {
  /** The blob as stored (kept byte for byte in OCI output). */
  blob: Region;
  /** The uncompressed tar: the blob itself, or a file in the work directory. */
  tar: Region;
  compression: BlobCompression;
  /** sha256 of the blob. */
  digest: string;
  /** sha256 of the tar (the layer's diff_id). */
  diffId: string;
}

export function sniff(region: Region): BlobCompression {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(region.file, 'r');
  try {
    fs.readSync(fd, head, 0, Math.min(4, region.length), region.offset);
  } finally {
    fs.closeSync(fd);
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

function digestOf(h: ReturnType<typeof createHash>): string {
  return 'sha256:' + h.digest('hex');
}

/** A pass-through that hashes what flows by. */
function hashing(h: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      h.update(chunk);
      done(null, chunk);
    },
  });
}

function zstdDecoder(label: string): NodeJS.ReadWriteStream {
  const z = zlib as unknown as { createZstdDecompress?: () => Transform };
  if (typeof z.createZstdDecompress === 'function') return z.createZstdDecompress();
  // Node < 22.15 has no zstd stream decoder: the zstd command is the fallback.
  const child = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const duplex = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (!child.stdin.write(chunk)) child.stdin.once('drain', () => done());
      else done();
    },
    flush(done) {
      child.stdin.end();
      child.on('close', (code) => done(code === 0 ? null : new BuildError(`${label}: zstd -d failed: ${err.trim() || `exit ${code}`}`)));
    },
  });
  child.stdout.on('data', (d: Buffer) => duplex.push(d));
  child.on('error', () => duplex.destroy(new InputError(`${label}: a zstd layer needs Node >= 22.15 or the zstd command`)));
  return duplex;
}

/**
 * Digest a stored layer blob and make its tar addressable. `expect` (sha256:…) is checked when
 * given: a layout whose blob does not match its descriptor is refused.
 */
export async function openLayer(blob: Region, label: string, workDir: string, expect?: { digest?: string; diffId?: string }): Promise<OpenedLayer> {
  const compression = sniff(blob);
  const blobHash = createHash('sha256');
  const read = () => fs.createReadStream(blob.file, { start: blob.offset, end: blob.offset + blob.length - 1, highWaterMark: 1 << 20 });
  let tar: Region = blob;
  let diffId: string;
  let digest: string;
  try {
    if (compression === 'none') {
      if (blob.length > 0) await pipeline(read(), hashing(blobHash), new Writable({ write: (_c, _e, done) => done() }));
      diffId = digest = digestOf(blobHash);
    } else {
      const tarHash = createHash('sha256');
      const out = path.join(workDir, `layer-${fs.readdirSync(workDir).length}.tar`);
      const decoder = compression === 'gzip' ? zlib.createGunzip() : zstdDecoder(label);
      await pipeline(read(), hashing(blobHash), decoder, hashing(tarHash), fs.createWriteStream(out));
      digest = digestOf(blobHash);
      diffId = digestOf(tarHash);
      tar = { file: out, offset: 0, length: fs.statSync(out).size };
    }
  } catch (err) {
    if (err instanceof InputError || err instanceof BuildError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'Z_DATA_ERROR' || e.code === 'Z_BUF_ERROR' || e.code?.startsWith('ERR_ZSTD') || /zstd|unexpected end/i.test(e.message)) {
      throw new InputError(`${label}: corrupt ${compression} data (${e.message.split('\n')[0]})`);
    }
    throw new BuildError(`${label}: ${describeSystemError(err)}`);
  }
  if (expect?.digest && expect.digest !== digest) throw new InputError(`${label}: content has digest ${digest}, but the image says ${expect.digest}`);
  if (expect?.diffId && expect.diffId !== diffId) throw new InputError(`${label}: uncompressed content has digest ${diffId}, but the config's diff_id says ${expect.diffId}`);
  return { blob, tar, compression, digest, diffId };
}

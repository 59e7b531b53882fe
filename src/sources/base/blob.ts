// Layer blobs of a base image, wherever they are stored (a file, or a member of a docker-archive):
// sniffed for gzip or zstd, digested, and, when compressed, decompressed once into the work
// directory so that the tar reader and the writers can address content by offset (codecs/streams.ts
// sniffs and decodes).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import { type BlobCompression, streamCompression, streamDecoders } from '../../codecs/streams.js';

export type { BlobCompression };

/** Bytes `[offset, offset + length)` of `file`. */
export interface Region {
  file: string;
  offset: number;
  length: number;
}

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
  return streamCompression(head);
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

/**
 * The most one layer may decompress to unless --max-layer-size says otherwise. Real base images
 * have layers of a few GB; a few MB of gzip or zstd can claim terabytes (a "bomb"), and each
 * layer is decompressed into $TMPDIR.
 */
export const DEFAULT_MAX_LAYER_SIZE = 64 * 2 ** 30;
export const DEFAULT_MAX_LAYER_SIZE_TEXT = '64G';

/** A size for messages: 10 MiB, 64 GiB, or bytes when it is not a whole number of either. */
function sizeText(n: number): string {
  for (const [unit, k] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (n >= k && n % k === 0) return `${n / k} ${unit}`;
  }
  return `${n} bytes`;
}

/** A pass-through that fails as soon as more than `max` bytes have flowed by (nothing past it is written). */
function capped(max: number, failure: () => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      seen += chunk.length;
      if (seen > max) done(failure());
      else done(null, chunk);
    },
  });
}

/** The bytes of `blob`, failing if the file has fewer than the region says (it shrank, or changed, while being read). */
function readRegion(blob: Region, label: string): Array<NodeJS.ReadableStream | Transform> {
  let seen = 0;
  const whole = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      seen += chunk.length;
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      done(seen === blob.length ? null : new InputError(`${label}: the blob ends after ${seen} of its ${blob.length} bytes (did it change while being read?)`));
    },
  });
  return [fs.createReadStream(blob.file, { start: blob.offset, end: blob.offset + blob.length - 1, highWaterMark: 1 << 20 }), whole];
}

/** sha256 of a region, in one streaming pass. */
async function digestRegion(blob: Region, label: string): Promise<string> {
  const h = createHash('sha256');
  if (blob.length > 0) await pipeline([...readRegion(blob, label), hashing(h), new Writable({ write: (_c, _e, done) => done() })]);
  return digestOf(h);
}

/**
 * Digest a stored layer blob and make its tar addressable. `expect` (sha256:…) is checked when
 * given: a layout whose blob does not match its descriptor is refused, before anything of it is
 * decompressed. Decompression stops, and its output is removed, once it passes `maxTarBytes`.
 */
export async function openLayer(blob: Region, label: string, workDir: string, expect?: { digest?: string; diffId?: string }, maxTarBytes = DEFAULT_MAX_LAYER_SIZE): Promise<OpenedLayer> {
  const compression = sniff(blob);
  let tar: Region = blob;
  let diffId: string;
  let digest!: string; // set on every path that does not throw (the compiler cannot follow checkedFirst)
  let out: string | null = null;
  const wrongDigest = (d: string) => new InputError(`${label}: content has digest ${d}, but the image says ${expect!.digest}`);
  try {
    if (compression === 'none') {
      diffId = digest = await digestRegion(blob, label);
    } else {
      // A streaming hash knows only at the end: so the blob, small next to what it may expand to, is
      // read and digested first, and a blob that is not what its descriptor says is never
      // decompressed. The config's diff_id still checks what is decompressed afterwards.
      const checkedFirst = expect?.digest !== undefined && expect.digest !== '';
      if (checkedFirst) {
        digest = await digestRegion(blob, label);
        if (digest !== expect!.digest) throw wrongDigest(digest);
      }
      const blobHash = createHash('sha256');
      const tarHash = createHash('sha256');
      out = path.join(workDir, `layer-${fs.readdirSync(workDir).length}.tar`);
      const decoders = streamDecoders(compression, label);
      const tooBig = () =>
        new InputError(`${label}: decompresses to more than ${sizeText(maxTarBytes)}, the limit set by --max-layer-size (default ${DEFAULT_MAX_LAYER_SIZE_TEXT}; raise it if the layer is genuine)`);
      await pipeline([...readRegion(blob, label), ...(checkedFirst ? [] : [hashing(blobHash)]), ...decoders, capped(maxTarBytes, tooBig), hashing(tarHash), fs.createWriteStream(out)]);
      if (!checkedFirst) digest = digestOf(blobHash);
      diffId = digestOf(tarHash);
      tar = { file: out, offset: 0, length: fs.statSync(out).size };
    }
  } catch (err) {
    // What was decompressed of a refused layer goes at once, not at exit: it may be large.
    if (out !== null) fs.rmSync(out, { force: true });
    if (err instanceof InputError || err instanceof BuildError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'Z_DATA_ERROR' || e.code === 'Z_BUF_ERROR' || e.code?.startsWith('ERR_ZSTD') || /zstd|unexpected end/i.test(e.message)) {
      throw new InputError(`${label}: corrupt ${compression} data (${e.message.split('\n')[0]})`);
    }
    throw new BuildError(`${label}: ${describeSystemError(err)}`);
  }
  if (expect?.digest && expect.digest !== digest) throw wrongDigest(digest);
  if (expect?.diffId && expect.diffId !== diffId) {
    if (out !== null) fs.rmSync(out, { force: true });
    throw new InputError(`${label}: uncompressed content has digest ${diffId}, but the config's diff_id says ${expect.diffId}`);
  }
  return { blob, tar, compression, digest, diffId };
}

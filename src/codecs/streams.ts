// Compressed streams: base layer blobs and tarballs, sniffed for gzip or zstd and decoded as they
// flow (sources/base/blob.ts). The block codecs (index.ts) make and read SquashFS blocks and layer
// pieces; these read whole streams of any size.
import { spawn } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { InputError } from '../model/errors.js';
import { ZSTD_MAGIC, ZstdFrameCheck } from './zstd-frames.js';

export type BlobCompression = 'gzip' | 'zstd' | 'none';

/** What the first 4 bytes of a stream say it is (fewer bytes: zero-filled). */
export function streamCompression(head: Buffer): BlobCompression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.readUInt32LE(0) === ZSTD_MAGIC) return 'zstd';
  return 'none';
}

/** The transforms that decode a stream of `compression` (not 'none'); `label` names it in errors. */
export function streamDecoders(compression: Exclude<BlobCompression, 'none'>, label: string): Transform[] {
  return compression === 'gzip' ? [zlib.createGunzip()] : [wholeZstdFrames(label), zstdDecoder(label)];
}

/** A pass-through that fails when the zstd stream flowing by does not end with a whole frame (see zstd-frames.ts). */
function wholeZstdFrames(label: string): Transform {
  const check = new ZstdFrameCheck();
  const failure = (why: string) => new InputError(`${label}: corrupt zstd data (${why})`);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      check.update(chunk);
      const bad = check.problem();
      if (bad !== null) done(failure(bad));
      else done(null, chunk);
    },
    flush(done: TransformCallback) {
      const bad = check.end();
      done(bad === null ? null : failure(bad));
    },
  });
}

function zstdDecoder(label: string): Transform {
  const z = zlib as unknown as { createZstdDecompress?: () => Transform };
  if (typeof z.createZstdDecompress === 'function') return z.createZstdDecompress();
  // Node < 22.15 has no zstd stream decoder: the zstd command is the fallback, as a Transform
  // that respects back-pressure both ways and always ends the child.
  const child = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exit: number | null | undefined;
  let onExit: (() => void) | null = null;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('close', (code) => {
    exit = code;
    onExit?.();
  });
  const failure = () => new InputError(`${label}: corrupt zstd data (zstd -d: ${stderr.trim().split('\n')[0] || `exit ${exit}`})`);
  const decoder: Transform = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (exit !== undefined) return done(failure());
      if (child.stdin.write(chunk)) done();
      else child.stdin.once('drain', () => done());
    },
    flush(done) {
      const finish = () => (exit === 0 ? done() : done(failure()));
      if (exit !== undefined) return finish();
      onExit = finish;
      child.stdin.end();
    },
    destroy(err, done) {
      if (exit === undefined) child.kill();
      done(err);
    },
  });
  child.stdin.on('error', () => {
    /* EPIPE: zstd stopped reading; its exit status says why */
  });
  child.stdout.on('data', (d: Buffer) => {
    if (!decoder.push(d)) child.stdout.pause();
  });
  // Transform has no 'drain' for its readable side: resume when the consumer reads again.
  const read = decoder._read.bind(decoder);
  decoder._read = (n: number) => {
    child.stdout.resume();
    read(n);
  };
  child.on('error', () => decoder.destroy(new InputError(`${label}: a zstd layer needs Node >= 22.15 or the zstd command`)));
  return decoder;
}

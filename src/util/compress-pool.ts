// Blocks are compressed on all cores by worker threads; results come back as promises, and the
// data writer consumes them in submission order, so the image does not depend on timing.
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BuildError } from '../model/errors.js';
import { onInterrupt } from './atomic.js';
import { type BlockCodec, type CodecOptions, createBlockCodec } from './codecs.js';

export interface Compressed {
  data: Buffer;
  /** Stored as is: compression did not make it smaller. */
  raw: boolean;
}

interface Pending {
  resolve: (c: Compressed) => void;
  reject: (e: Error) => void;
}

/** Spare buffers kept at most (128 KiB each for SquashFS, 1 MiB for layers). */
const SPARE_MAX = 64;

export class CompressPool {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private turn = 0;
  /** Set by the first worker failure: every job after it fails too. */
  private broken: BuildError | null = null;
  private closing = false;

  private readonly unregister: () => void;
  /** Input buffers the workers gave back, for buffer(). */
  private readonly spare: ArrayBuffer[] = [];

  private constructor(
    private readonly workers: Worker[],
    /** The same codec on this thread, for metadata blocks and when there are no workers. */
    readonly local: BlockCodec | null,
    /** The codec's block size: the size of the buffers buffer() hands out. */
    private readonly blockSize: number,
  ) {
    this.unregister = onInterrupt(() => this.stopWhenIdle());
    for (const w of workers) {
      w.on('message', (m: { id: number; buf: ArrayBuffer; length: number; raw: boolean; input?: ArrayBuffer }) => {
        if (m.input && m.input.byteLength === this.blockSize && this.spare.length < SPARE_MAX) this.spare.push(m.input);
        const p = this.pending.get(m.id);
        if (!p) return; // a result arriving after the pool failed: its job was rejected already
        this.pending.delete(m.id);
        p.resolve({ data: Buffer.from(m.buf, 0, m.length), raw: m.raw });
      });
      w.on('error', (err) => this.fail(err.message));
      w.on('exit', (code) => {
        if (!this.closing) this.fail(`exited with code ${code}`);
      });
    }
  }

  /**
   * @param codec null: store everything uncompressed.
   * @param threads workers to start; 0 compresses on this thread (small images, tests).
   */
  static async create(codec: CodecOptions | null, threads = os.availableParallelism()): Promise<CompressPool> {
    if (!codec) return new CompressPool([], null, 0);
    const local = await createBlockCodec(codec);
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < threads; i++) workers.push(new Worker(new URL('./compress-worker.js', import.meta.url), { workerData: codec }));
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              w.once('message', () => resolve());
              w.once('error', reject);
              w.once('exit', (code) => reject(new Error(`exited with code ${code}`)));
            }),
        ),
      );
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw new BuildError(`cannot start compression workers: ${(err as Error).message}`);
    }
    return new CompressPool(workers, local, codec.blockSize);
  }

  /**
   * A buffer of `size` bytes (at most the block size) over memory of its own, for compress(): one the workers gave back when
   * there is one. Fresh 128 KiB buffers are mmap()ed by malloc each time, and the page faults of
   * filling them cost more system time than reading the files (zstd, 1.5 GB: 10.3 s against 8.5 s).
   */
  buffer(size: number): Buffer {
    const ab = size <= this.blockSize ? this.spare.pop() : undefined;
    // A new one is block-sized, so that it can serve again once a worker gives it back.
    return Buffer.from(ab ?? Buffer.allocUnsafeSlow(Math.max(size, this.blockSize)).buffer, 0, size);
  }

  /** Compress a block. Takes ownership of `block`: it must be a Buffer over an ArrayBuffer of its own. */
  compress(block: Buffer): Promise<Compressed> {
    if (!this.local) return Promise.resolve({ data: block, raw: true });
    if (this.workers.length === 0) {
      const out = this.local.compress(block);
      return Promise.resolve(out.length < block.length ? { data: out, raw: false } : { data: block, raw: true });
    }
    if (this.broken) return handled(Promise.reject(this.broken));
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length]!;
    const ab = block.buffer as ArrayBuffer;
    if (block.byteOffset !== 0 || ab.byteLength < block.length) throw new Error('compress: block must own its ArrayBuffer');
    const job = new Promise<Compressed>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    w.postMessage({ id, buf: ab, length: block.length }, [ab]);
    return handled(job);
  }

  /** Compress on this thread (metadata blocks); null when compression is off or did not help. */
  compressLocal(block: Buffer): Buffer | null {
    if (!this.local) return null;
    const out = this.local.compress(block);
    return out.length < block.length ? out : null;
  }

  private fail(why: string): void {
    this.broken ??= new BuildError(`a compression worker failed: ${why}`);
    for (const p of this.pending.values()) p.reject(this.broken);
    this.pending.clear();
  }

  /**
   * On SIGINT/SIGTERM: take no more jobs, let the running ones finish (a block each), then stop.
   * Terminating a worker in the middle of a native codec call (liblzma) aborts the whole process.
   */
  private async stopWhenIdle(): Promise<void> {
    this.broken ??= new BuildError('interrupted');
    for (const deadline = Date.now() + 4000; this.pending.size > 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    await this.close();
  }

  async close(): Promise<void> {
    this.unregister();
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Jobs wait in the writer's queue before anyone awaits them; a failure meanwhile must not count
 * as an unhandled rejection (which would end the process with a stack instead of one line).
 * The returned promise still rejects for whoever awaits it.
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

// Blocks are compressed on all cores by worker threads; results come back as promises, and the
// data writer consumes them in submission order, so the image does not depend on timing.
//
// Blocks travel in slots of one SharedArrayBuffer that the pool and its workers share: the writer
// fills a slot's input half, a worker compresses it into the output half, and only slot numbers
// are posted. Transferring an ArrayBuffer per block instead made V8 count every transfer as new
// external memory, and it ran a full garbage collection for each 64 MB of that (500,000 entries,
// zstd: about 70 of 100). When every slot is in use, buffer() hands out a buffer of its own and
// that block is transferred as before.
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { BuildError } from '../model/errors.js';
import { onInterrupt } from '../util/atomic.js';
import { type BlockCodec, type CodecOptions, createBlockCodec } from './index.js';

export interface Compressed {
  data: Buffer;
  /** Stored as is: compression did not make it smaller. */
  raw: boolean;
  /** The shared slot `data` lies in, -1 when none: give it back with release() once written. */
  slot: number;
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
  /** Jobs each worker has not answered yet: a new job goes to the least loaded one. Round robin
   *  let one worker idle while the other still had a queue (blocks differ in cost), and the
   *  writer, waiting in order for the oldest, could not send more. */
  private readonly load: number[];
  /** Set by the first worker failure: every job after it fails too. */
  private broken: BuildError | null = null;
  private closing = false;

  private readonly unregister: () => void;
  /** Input buffers the workers gave back, for buffer() when no slot is free. */
  private readonly spare: ArrayBuffer[] = [];
  /** Free slots of `shared`. */
  private readonly free: number[] = [];

  private constructor(
    private readonly workers: Worker[],
    /** The same codec on this thread, for metadata blocks and when there are no workers. */
    readonly local: BlockCodec | null,
    /** The codec's block size: the size of the buffers buffer() hands out. */
    private readonly blockSize: number,
    /** Slots of 2 × blockSize bytes: input, then output. */
    private readonly shared: SharedArrayBuffer | null,
  ) {
    this.unregister = onInterrupt(() => this.stopWhenIdle());
    const slots = shared ? shared.byteLength / (2 * blockSize) : 0;
    for (let i = slots - 1; i >= 0; i--) this.free.push(i);
    this.load = workers.map(() => 0);
    for (const [i, w] of workers.entries()) {
      w.on('message', (m: { id: number; slot?: number; buf?: ArrayBuffer; length: number; raw: boolean; input?: ArrayBuffer }) => {
        this.load[i]!--;
        if (m.input && m.input.byteLength === this.blockSize && this.spare.length < SPARE_MAX) this.spare.push(m.input);
        const p = this.pending.get(m.id);
        if (!p) return; // a result arriving after the pool failed: its job was rejected already
        this.pending.delete(m.id);
        if (m.slot === undefined) p.resolve({ data: Buffer.from(m.buf!, 0, m.length), raw: m.raw, slot: -1 });
        else p.resolve({ data: Buffer.from(this.shared!, (2 * m.slot + (m.raw ? 0 : 1)) * this.blockSize, m.length), raw: m.raw, slot: m.slot });
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
  static async create(codec: CodecOptions | null, threads = os.availableParallelism(), slots = 0): Promise<CompressPool> {
    if (!codec) return new CompressPool([], null, 0, null);
    const local = await createBlockCodec(codec);
    const shared = threads > 0 && slots > 0 ? new SharedArrayBuffer(2 * codec.blockSize * slots) : null;
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < threads; i++) workers.push(new Worker(new URL('./pool-worker.js', import.meta.url), { workerData: { codec, shared } }));
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
    return new CompressPool(workers, local, codec.blockSize, shared);
  }

  /**
   * A buffer of `size` bytes (at most the block size) over memory of its own, for compress(): one the workers gave back when
   * there is one. Fresh 128 KiB buffers are mmap()ed by malloc each time, and the page faults of
   * filling them cost more system time than reading the files (zstd, 1.5 GB: 10.3 s against 8.5 s).
   */
  buffer(size: number): Buffer {
    const slot = size <= this.blockSize ? this.free.pop() : undefined;
    if (slot !== undefined) return Buffer.from(this.shared!, 2 * slot * this.blockSize, size);
    const ab = size <= this.blockSize ? this.spare.pop() : undefined;
    // A new one is block-sized, so that it can serve again once a worker gives it back.
    return Buffer.from(ab ?? Buffer.allocUnsafeSlow(Math.max(size, this.blockSize)).buffer, 0, size);
  }

  /** The slot `b` starts, -1 when it is not one of the shared slots' inputs. */
  private slotOf(b: Buffer): number {
    if (this.shared === null || b.buffer !== this.shared) return -1;
    return b.byteOffset / (2 * this.blockSize);
  }

  /** Done with a result: its slot (if any) may carry the next block. */
  release(c: Compressed): void {
    if (c.slot >= 0) this.free.push(c.slot);
  }

  /** Done with a buffer from buffer() that was not compressed after all. */
  recycle(b: Buffer): void {
    const slot = this.slotOf(b);
    if (slot >= 0) this.free.push(slot);
  }

  /**
   * Compress a block: one from buffer(), or a Buffer over an ArrayBuffer of its own. Takes
   * ownership of `block`; release() the result once its data is written.
   */
  compress(block: Buffer): Promise<Compressed> {
    const slot = this.slotOf(block);
    if (!this.local) return Promise.resolve({ data: block, raw: true, slot });
    if (this.workers.length === 0) {
      const out = this.local.compress(block);
      return Promise.resolve(out.length < block.length ? { data: out, raw: false, slot } : { data: block, raw: true, slot });
    }
    if (this.broken) return handled(Promise.reject(this.broken));
    const id = this.nextId++;
    let pick = 0;
    for (let i = 1; i < this.load.length; i++) if (this.load[i]! < this.load[pick]!) pick = i;
    this.load[pick]!++;
    const w = this.workers[pick]!;
    if (slot >= 0) {
      const job = new Promise<Compressed>((resolve, reject) => this.pending.set(id, { resolve, reject }));
      w.postMessage({ id, slot, length: block.length });
      return handled(job);
    }
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

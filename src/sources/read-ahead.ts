// Reads the contents of the next files before a writer asks for them, many at once, on libuv's
// thread pool. A release is hundreds of thousands of small files; on a cold page cache, reading
// them one after another waits on the disk once per file. Measured on the 500,000-entry scale
// tree (2.66 GB in 422,918 files, cold cache, this project's 2-core VM): one at a time 37.9 s,
// 16 in flight on 4 pool threads 19.3 s, 32 in flight on 16 pool threads 14.4 s, 64 on 32 15.8 s.
//
// Writers consume files in their own fixed order (the image's order), so reads are issued in that
// order and land in one ring buffer that is freed in the same order: no buffer per file (fresh
// buffers cost page faults), memory bounded by the ring whatever the tree. Each file costs one
// pool job: it is opened here (its inode is cached by the walk that listed it, so that is cheap)
// and read with one request of size + 1 bytes, whose count also says whether the file shrank or
// grew since it was listed; the pool keeps reading while this thread is busy.
import * as fs from 'node:fs';
import { display, fsArg } from '../model/bytes.js';
import { BuildError, describeSystemError } from '../model/errors.js';

/** Where a file's bytes are: a host file, or `size` bytes at `offset` inside one (an archive). */
export interface ContentRef {
  readonly source?: string;
  readonly offset?: number;
  readonly size: number;
}

export interface ReadAheadOptions {
  /** Bytes of the ring all reads in flight share. */
  ringBytes?: number;
  /** Files larger than this are not read ahead: take() returns null and the writer streams them. */
  maxFile?: number;
  /** Reads in flight at most. */
  inFlight?: number;
}

/** libuv's pool threads bound the reads really in flight (the command sets how many: cli/shrinkwrap.cts). */
function poolThreads(): number {
  return Number(process.env['UV_THREADPOOL_SIZE']) || 4;
}

interface Read {
  /** Item index. */
  readonly k: number;
  readonly source: string;
  readonly size: number;
  /** Place in the ring and bytes asked for (size + 1 for host files, to see growth). */
  readonly start: number;
  readonly length: number;
  /** Where the bytes start in the source. */
  readonly position: number;
  /** Read on this thread when taken, timed (see `warm`), instead of on the pool. */
  readonly deferred: boolean;
  got: number;
  error: unknown;
  done: boolean;
  wake: (() => void) | null;
}

/**
 * From a warm page cache a small file is read in a few microseconds, less than handing the read
 * to the pool costs this thread (a pool thread must be woken each time): the 1.48 GB squashfs
 * bench tree spent half its main thread's time there. So every PROBE_EVERY-th read is done here,
 * timed; after WARM_AFTER fast ones in a row all reads are done here, until SLOW_AFTER slow ones
 * in a row say the disk is back. Content and order are the same either way.
 */
const PROBE_EVERY = 64;
const WARM_AFTER = 8;
const SLOW_AFTER = 4;
/** A read (open, read, close) faster than this came from the page cache; slower, from the disk. */
const FAST_MS = 0.03;
const SLOW_MS = 0.1;

export class ReadAhead {
  private readonly ring: Buffer;
  private readonly maxFile: number;
  private readonly inFlight: number;
  /** Next free byte of the ring. */
  private head = 0;
  /** Reads issued and not yet released, in item order (the ring is freed in this order). */
  private readonly queue: Read[] = [];
  /** Next item index not yet considered for reading ahead. */
  private next = 0;
  /** The read handed out by the last take(): released at the next call. */
  private lent: Read | null = null;
  /** Reads are done on this thread (the cache is warm), and the streaks that switch it. */
  private warm = false;
  private fastStreak = 0;
  private slowStreak = 0;
  private issued = 0;

  /**
   * @param item the k-th thing the writer will ask for, for 0 ≤ k < count; undefined when it is
   *   not a file with content (directories, links, empty files): those are skipped.
   * @param count items known so far; grow() raises it while a list is still being made.
   */
  constructor(
    private readonly item: (k: number) => ContentRef | undefined,
    private count: number,
    opts: ReadAheadOptions = {},
  ) {
    this.maxFile = opts.maxFile ?? 1 << 20;
    this.inFlight = opts.inFlight ?? 2 * poolThreads();
    const ringBytes = Math.max(opts.ringBytes ?? 8 << 20, this.maxFile + 1);
    this.ring = Buffer.allocUnsafeSlow(ringBytes);
  }

  /** More items are known: `count` in all. */
  grow(count: number): void {
    this.count = count;
  }

  /**
   * The whole content of item k, checked against its listed size, or null when k was not read
   * ahead (not a file with content, or larger than maxFile: the caller reads it itself).
   * Items are taken in increasing order; the buffer is valid until the next take(). A promise
   * only when the read has not finished yet (a promise per file is garbage the writers avoid).
   */
  take(k: number): Buffer | null | Promise<Buffer | null> {
    if (this.lent) {
      this.queue.shift();
      this.lent = null;
    }
    // Reads of items the writer passed over still own their part of the ring until they finish.
    if (this.queue.length > 0 && this.queue[0]!.k < k) return this.skipTo(k);
    this.fill(k);
    const r = this.queue[0];
    if (!r || r.k !== k) return null;
    if (r.deferred && !r.done) this.readHere(r);
    if (!r.done) return new Promise<void>((resolve) => (r.wake = resolve)).then(() => this.hand(r));
    return this.hand(r);
  }

  private async skipTo(k: number): Promise<Buffer | null> {
    while (this.queue.length > 0 && this.queue[0]!.k < k) {
      const r = this.queue[0]!;
      // A deferred read was never started: nothing owns its bytes.
      if (!r.done && !r.deferred) await new Promise<void>((resolve) => (r.wake = resolve));
      this.queue.shift();
    }
    return this.take(k);
  }

  private hand(r: Read): Buffer {
    this.lent = r;
    if (r.error !== null) throw new BuildError(`cannot read ${display(r.source)}: ${describeSystemError(r.error)}`);
    if (r.got < r.size) throw new BuildError(`${display(r.source)} shrank while being read (expected ${r.size} bytes, found ${r.got})`);
    if (r.got > r.size) throw new BuildError(`${display(r.source)} grew while being read (expected ${r.size} bytes)`);
    return this.ring.subarray(r.start, r.start + r.size);
  }

  /** Issue reads for the items from k on, in order, while the ring and the in-flight budget allow. */
  private fill(k: number): void {
    if (this.next < k) this.next = k;
    while (this.next < this.count && this.queue.length < this.inFlight) {
      const ref = this.item(this.next);
      if (!ref || ref.size === 0 || ref.size > this.maxFile || ref.source === undefined) {
        this.next++;
        continue;
      }
      const inHost = ref.offset === undefined;
      const length = ref.size + (inHost ? 1 : 0);
      const start = this.place(length);
      if (start < 0) return; // the ring is full: more once the writer has taken some
      const deferred = this.warm || this.issued++ % PROBE_EVERY === PROBE_EVERY - 1;
      const r: Read = { k: this.next++, source: ref.source, size: ref.size, start, length, position: ref.offset ?? 0, deferred, got: 0, error: null, done: false, wake: null };
      this.head = start + length;
      if (deferred) this.queue.push(r);
      else this.issue(r);
    }
  }

  /** Start of `length` free bytes in the ring, or -1. Reads are freed in issue order (FIFO). */
  private place(length: number): number {
    const size = this.ring.length;
    if (this.queue.length === 0) return length <= size ? 0 : -1;
    const tail = this.queue[0]!.start;
    if (this.head > tail) {
      if (size - this.head >= length) return this.head;
      return length <= tail ? 0 : -1; // wrap around
    }
    return tail - this.head >= length ? this.head : -1; // wrapped already: the gap up to the oldest
  }

  /** Read `r` now, on this thread, and learn from how long it took. */
  private readHere(r: Read): void {
    const t0 = performance.now();
    try {
      const fd = fs.openSync(fsArg(r.source), 'r');
      try {
        const buf = this.ring.subarray(r.start, r.start + r.length);
        for (let n = -1; n !== 0 && r.got < r.size; ) {
          n = fs.readSync(fd, buf, r.got, r.length - r.got, r.position + r.got);
          r.got += n;
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      r.error = err;
    }
    r.done = true;
    const ms = performance.now() - t0;
    if (this.warm) {
      this.slowStreak = ms > SLOW_MS ? this.slowStreak + 1 : 0;
      if (this.slowStreak >= SLOW_AFTER) {
        this.warm = false;
        this.fastStreak = 0;
      }
    } else {
      this.fastStreak = ms < FAST_MS ? this.fastStreak + 1 : 0;
      if (this.fastStreak >= WARM_AFTER) {
        this.warm = true;
        this.slowStreak = 0;
      }
    }
  }

  private issue(r: Read): void {
    this.queue.push(r);
    let fd: number;
    try {
      fd = fs.openSync(fsArg(r.source), 'r');
    } catch (err) {
      r.error = err;
      r.done = true;
      return;
    }
    const buf = this.ring.subarray(r.start, r.start + r.length);
    const step = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (err) r.error = err;
      else r.got += n;
      // A regular file returns fewer bytes than asked only at its end: a read that brought all the
      // listed bytes (and not the one more that growth would have brought) ends it. Asking again
      // only if it brought fewer (a partial read, or a file that shrank: the next read says).
      if (!err && n > 0 && r.got < r.size) {
        fs.read(fd, buf, r.got, r.length - r.got, r.position + r.got, step);
        return;
      }
      try {
        fs.closeSync(fd);
      } catch {
        // closing a file opened for reading: nothing of ours to lose
      }
      r.done = true;
      r.wake?.();
    };
    fs.read(fd, buf, 0, r.length, r.position, step);
  }
}

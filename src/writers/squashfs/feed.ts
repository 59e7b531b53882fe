// The files whose content goes into the data area, in the order it is written. The selection
// offers the regular files of its walk as it finds them, so reading and compressing start while it
// is still walking (the walk of a large tree is seconds of one core, which the compressors would
// otherwise spend waiting). Once the image's entries are known, the writer matches them against
// what was offered and offers the files that were not (closures, the base image, generated files).
// The order is the order of offers: the walk's, then the image's path order for the rest, so the
// image does not depend on timing.
import { type Entry, comparePaths } from '../../model/entry.js';
import type { CompressPool } from '../../codecs/pool.js';
import { ReadAhead } from '../../sources/read-ahead.js';
import { DataWriter } from './data.js';

export interface DataFeedOptions {
  blockSize: number;
  dedup: boolean;
  /** Blocks in flight at most. */
  window: number;
  /** Bytes written between flushes to disk (DataWriter). */
  syncEvery: number;
  /** Where the image starts in the output file (DataWriter). */
  origin: number;
  /** The output's compressor as the superblock names it, null when stored uncompressed (DataWriter). */
  compressor: string | null;
}

export class DataFeed {
  /** The files offered, by slot (the data writer's number for them), and their sizes when offered. */
  private readonly files: Entry[] = [];
  private readonly sizes: number[] = [];
  private readonly ahead = new ReadAhead((k) => this.ref(k), 0);
  private data: DataWriter | null = null;
  /** Files added to the data writer so far (slots below it). */
  private added = 0;
  private closed = false;
  private failure: unknown = null;
  private wake: (() => void) | null = null;
  private readonly running: Promise<void>;
  /** Offers made before the image's entries were matched, and how far matching has come. */
  private early = -1;
  private matched = 0;
  /** Called as files are added: bytes and files so far. */
  onProgress: ((bytes: number, files: number) => void) | undefined;

  constructor(fd: number, start: number, pool: Promise<CompressPool>, opts: DataFeedOptions) {
    this.running = this.pump(fd, start, pool, opts).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  /**
   * A regular file of the selection's walk, in the walk's (path) order. A file with several names
   * waits for the image's entries: which of its names keeps the content and which become hard
   * links is decided after the walk (a closure may add an earlier name), and the data area must
   * not depend on how far the feed had got by then.
   */
  offerWalked(e: Entry): void {
    if (e.inode === undefined) this.offer(e);
  }

  private offer(e: Entry): number {
    const slot = this.files.length;
    this.files.push(e);
    this.sizes.push(e.size);
    this.ahead.grow(this.files.length);
    this.wakePump();
    return slot;
  }

  /** Throw what made feeding fail, so that the selection stops early instead of walking on for nothing. */
  check(): void {
    if (this.failure !== null) throw this.failure;
  }

  /**
   * The slot of an image entry's content, entries taken in path order: the walk's offer that is
   * this entry, or a new offer for a regular file that was not offered; -1 for other entries.
   */
  place(e: Entry): number {
    if (this.early < 0) this.early = this.files.length;
    const files = this.files;
    if (this.matched < this.early && files[this.matched] === e) {
      const slot = this.matched++;
      return e.type === 'file' ? slot : -1;
    }
    if (e.type !== 'file') return -1;
    // An offered file that did not make it into the image (none does today) is passed over: its
    // content stays in the data area, unreferenced.
    while (this.matched < this.early && comparePaths(files[this.matched]!.path, e.path) < 0) this.matched++;
    if (this.matched < this.early && files[this.matched] === e) return this.matched++;
    return this.offer(e);
  }

  /** No more offers: add what is left; returns the end of the data area and the writer (its layout, fragments, stats). */
  async finish(): Promise<{ end: number; data: DataWriter }> {
    this.close();
    await this.running;
    try {
      this.check();
      const data = this.data!;
      return { end: await data.finish(), data };
    } catch (err) {
      await this.data?.idle(); // its writes must end before the output's descriptor is closed (and reused)
      throw err;
    }
  }

  /** Where slot k's bytes are, as offered (no source for stored blocks: nothing is read ahead for them). */
  private ref(k: number): { source: string | undefined; offset: number | undefined; size: number } {
    const f = this.files[k]!;
    return { source: f.stored ? undefined : f.source, offset: f.offset, size: this.sizes[k]! };
  }

  /** Stop feeding (the build failed): wait for writes in flight, which use the output's descriptor. */
  async abandon(): Promise<void> {
    this.failure ??= new Error('abandoned');
    this.data?.stop();
    this.close();
    await this.running;
    await this.data?.idle();
  }

  private close(): void {
    this.closed = true;
    this.wakePump();
  }

  /** The pump waits for offers or for the end: either has come. */
  private wakePump(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Add offered files to the data writer, in order, as they come; reads run ahead of it. */
  private async pump(fd: number, start: number, poolStarting: Promise<CompressPool>, opts: DataFeedOptions): Promise<void> {
    const pool = await poolStarting;
    const at = (slot: number) => {
      const r = this.ref(slot);
      return { source: r.source ?? '', offset: r.offset ?? 0, size: r.size, stored: this.files[slot]!.stored };
    };
    const data = new DataWriter(fd, start, pool, opts.blockSize, opts.dedup, opts.window, 1024, at, opts.syncEvery, opts.origin, opts.compressor);
    this.data = data;
    for (;;) {
      if (this.failure !== null) return;
      if (this.added === this.files.length) {
        if (this.closed) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const k = this.added;
      // Both calls are synchronous unless they have to wait (see DataWriter.addFile).
      let content = this.ahead.take(k);
      if (content instanceof Promise) content = await content;
      const f = this.files[k]!;
      const wait = data.addFile(k, this.sizes[k]!, f.offset, content, f.stored);
      if (wait) await wait;
      this.added++;
      this.onProgress?.(data.stats.bytesIn, data.stats.files);
    }
  }
}

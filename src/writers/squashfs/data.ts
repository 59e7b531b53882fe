// The data area: file blocks and fragment blocks, written in a fixed order by one writer while
// worker threads compress ahead of it. A bounded window of blocks is in flight, whatever the size
// of the tree. Files are read straight from their sources: nothing is staged.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import zlib from 'node:zlib';
import { display, fsArg } from '../../model/bytes.js';
import { BuildError, describeSystemError } from '../../model/errors.js';
import type { CompressPool, Compressed } from '../../util/compress-pool.js';
import { DATA_UNCOMPRESSED } from '../../sources/squashfs/format.js';
import { NONE32 } from './format.js';

/** Where a file's content ended up. Final once DataWriter.finish() has returned. */
export interface FileData {
  size: number;
  blocksStart: number;
  /** One size word per full block (0 = a sparse block of zeros); the tail is in a fragment. */
  blockSizes: number[];
  fragment: number;
  fragOffset: number;
  /** Bytes of zero blocks not stored. */
  sparse: number;
}

export interface FragmentEntry {
  start: number;
  sizeWord: number;
}

export interface DataStats {
  files: number;
  /** Bytes of file content read. */
  bytesIn: number;
  /** Bytes written to the data area (blocks and fragments). */
  bytesOut: number;
  dedupFiles: number;
  dedupBytes: number;
  sparseBytes: number;
}

type Item =
  | { kind: 'start'; file: FileData }
  | { kind: 'block'; file: FileData; index: number; job: Promise<Compressed> }
  | { kind: 'end'; file: FileData; dupOf: FileData | null }
  | { kind: 'fragment'; index: number; job: Promise<Compressed> };

/** Files up to this size are read whole and checked for duplicates before any block is compressed. */
const READ_WHOLE = 4 << 20;
/** Output is written in runs of about this many bytes, not one system call per block. */
const WRITE_RUN = 1 << 20;

/**
 * A running content checksum for finding duplicate candidates: CRC-32 (native, 3.7 GB/s) where
 * Node has zlib.crc32 (>= 20.15), else SHA-256. A candidate is compared byte for byte before it is
 * trusted, so the checksum only needs to be cheap, not collision-free.
 */
class ContentSum {
  private crc = 0;
  private readonly sha = typeof zlib.crc32 === 'function' ? null : createHash('sha256');
  update(b: Buffer): void {
    if (this.sha) this.sha.update(b);
    else this.crc = zlib.crc32(b, this.crc);
  }
  /** The CRC itself (a number: no string per file in the duplicates map; sizes are compared on lookup). */
  key(): number | string {
    return this.sha ? this.sha.digest('base64') : this.crc;
  }
}

const NO_BLOCKS: number[] = [];
const ONE_BYTE = Buffer.alloc(1);

interface Seen {
  data: FileData;
  source: string;
  offset: number;
}

/** Do two files have the same bytes? (Called only when size and checksum already agree.) */
function sameContent(a: string, aAt: number, b: string, bAt: number, size: number): boolean {
  const fds: number[] = [];
  let current = a;
  try {
    fds.push(fs.openSync(fsArg(a), 'r'));
    current = b;
    fds.push(fs.openSync(fsArg(b), 'r'));
    const chunk = Math.min(size, 1 << 20);
    const ba = Buffer.allocUnsafe(chunk);
    const bb = Buffer.allocUnsafe(chunk);
    for (let at = 0; at < size; at += chunk) {
      const n = Math.min(chunk, size - at);
      current = a;
      const na = fs.readSync(fds[0]!, ba, 0, n, aAt + at);
      current = b;
      const nb = fs.readSync(fds[1]!, bb, 0, n, bAt + at);
      if (na !== n || nb !== n || !ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
    }
    return true;
  } catch (err) {
    throw new BuildError(`cannot read ${display(current)} (comparing duplicates): ${describeSystemError(err)}`);
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

export class DataWriter {
  private readonly queue: Item[] = [];
  private readonly zero: Buffer;
  private readonly seen = new Map<number | string, Seen | Seen[]>();
  /** Compressed blocks waiting to be written in one run starting at `runStart`. */
  private run: Buffer[] = [];
  private runBytes = 0;
  private runStart = 0;
  private frag: Buffer | null = null;
  private fragFill = 0;
  readonly fragments: FragmentEntry[] = [];
  readonly stats: DataStats = { files: 0, bytesIn: 0, bytesOut: 0, dedupFiles: 0, dedupBytes: 0, sparseBytes: 0 };

  constructor(
    private readonly fd: number,
    /** Next byte of the output to write. */
    private pos: number,
    private readonly pool: CompressPool,
    private readonly blockSize: number,
    private readonly dedup: boolean,
    /** Blocks in flight at most. */
    private readonly window: number,
  ) {
    this.zero = Buffer.alloc(blockSize);
  }

  /** Where the current file's content starts in its source (non-zero inside a base image layer). */
  private at = 0;

  /** Add a file's content from a host path (byte string), starting at `offset` when that is an archive. */
  async addFile(source: string, size: number, offset?: number): Promise<FileData> {
    this.at = offset ?? -1;
    // Files smaller than a block (most of a release) share one empty list of block sizes.
    const full = Math.floor(size / this.blockSize);
    const f: FileData = { size, blocksStart: 0, blockSizes: full > 0 ? new Array<number>(full).fill(0) : NO_BLOCKS, fragment: NONE32, fragOffset: 0, sparse: 0 };
    this.stats.files++;
    this.stats.bytesIn += size;
    if (size === 0) return f;
    let fd: number;
    try {
      fd = fs.openSync(fsArg(source), 'r');
    } catch (err) {
      throw new BuildError(`cannot read ${display(source)}: ${describeSystemError(err)}`);
    }
    try {
      if (size <= READ_WHOLE) await this.addWhole(f, fd, source);
      else await this.addStreamed(f, fd, source);
    } finally {
      fs.closeSync(fd);
    }
    return f;
  }

  private read(fd: number, buf: Buffer, position: number, source: string): void {
    let got = 0;
    while (got < buf.length) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, got, buf.length - got, Math.max(this.at, 0) + position + got);
      } catch (err) {
        throw new BuildError(`cannot read ${display(source)}: ${describeSystemError(err)}`);
      }
      if (n === 0) throw new BuildError(`${display(source)} shrank while being read (expected ${position + buf.length} bytes, found ${position + got})`);
      got += n;
    }
  }

  private checkEnd(fd: number, size: number, source: string): void {
    if (this.at >= 0) return; // content inside an archive: more bytes follow it
    let n: number;
    try {
      n = fs.readSync(fd, ONE_BYTE, 0, 1, size);
    } catch (err) {
      throw new BuildError(`cannot read ${display(source)}: ${describeSystemError(err)}`);
    }
    if (n !== 0) throw new BuildError(`${display(source)} grew while being read (expected ${size} bytes)`);
  }

  /** Whole small files are read here, one at a time (every use below copies out of it). */
  private readonly scratch = Buffer.allocUnsafeSlow(READ_WHOLE);

  private async addWhole(f: FileData, fd: number, source: string): Promise<void> {
    // A fresh buffer per file made the garbage collector and page faults cost more than reading.
    const buf = this.scratch.subarray(0, f.size);
    this.read(fd, buf, 0, source);
    this.checkEnd(fd, f.size, source);
    let key: number | string = '';
    let dup: FileData | undefined;
    if (this.dedup) {
      const sum = new ContentSum();
      sum.update(buf);
      key = sum.key();
      dup = this.findDuplicate(key, source, f.size);
    }
    const full = Math.floor(f.size / this.blockSize);
    if (dup) {
      this.reuse(f, dup);
      if (full > 0) await this.push({ kind: 'end', file: f, dupOf: dup });
      return;
    }
    // Blocks are copied into buffers the pool owns (addBlock); the tail into the fragment (addTail).
    const tail = buf.subarray(full * this.blockSize);
    if (full > 0) {
      await this.push({ kind: 'start', file: f });
      for (let i = 0; i < full; i++) await this.addBlock(f, i, buf.subarray(i * this.blockSize, (i + 1) * this.blockSize));
      await this.push({ kind: 'end', file: f, dupOf: null });
    }
    await this.addTail(f, tail);
    if (this.dedup) this.remember(key, f, source);
  }

  /** An earlier file with the same bytes, if any. */
  private findDuplicate(key: number | string, source: string, size: number): FileData | undefined {
    const at = Math.max(this.at, 0);
    const found = this.seen.get(key);
    for (const s of found === undefined ? [] : Array.isArray(found) ? found : [found]) {
      if (s.data.size === size && sameContent(s.source, s.offset, source, at, size)) return s.data;
    }
    return undefined;
  }

  /** Most checksums are met once: the map holds that one file directly, a list only on collisions. */
  private remember(key: number | string, f: FileData, source: string): void {
    const found = this.seen.get(key);
    const seen = { data: f, source, offset: Math.max(this.at, 0) };
    if (found === undefined) this.seen.set(key, seen);
    else if (Array.isArray(found)) found.push(seen);
    else this.seen.set(key, [found, seen]);
  }

  private async addStreamed(f: FileData, fd: number, source: string): Promise<void> {
    const hash = this.dedup ? new ContentSum() : null;
    const full = Math.floor(f.size / this.blockSize);
    await this.push({ kind: 'start', file: f });
    for (let i = 0; i < full; i++) {
      const block = this.pool.buffer(this.blockSize);
      this.read(fd, block, i * this.blockSize, source);
      hash?.update(block);
      await this.addBlock(f, i, block);
    }
    const tail = Buffer.allocUnsafe(f.size - full * this.blockSize);
    this.read(fd, tail, full * this.blockSize, source);
    this.checkEnd(fd, f.size, source);
    hash?.update(tail);
    // Known only now: a duplicate's blocks were written already, and the writer rewinds over them.
    const key = hash ? hash.key() : '';
    const dup = hash ? this.findDuplicate(key, source, f.size) : undefined;
    await this.push({ kind: 'end', file: f, dupOf: dup ?? null });
    if (dup) {
      this.reuse(f, dup);
      return;
    }
    await this.addTail(f, tail);
    if (hash) this.remember(key, f, source);
  }

  private reuse(f: FileData, dup: FileData): void {
    f.fragment = dup.fragment;
    f.fragOffset = dup.fragOffset;
    this.stats.dedupFiles++;
    this.stats.dedupBytes += f.size;
  }

  private async addBlock(f: FileData, index: number, block: Buffer): Promise<void> {
    if (block.equals(this.zero)) {
      f.blockSizes[index] = 0;
      f.sparse += block.length;
      this.stats.sparseBytes += block.length;
      return;
    }
    f.blockSizes[index] = -1; // set by the writer
    // The pool takes the buffer: give it one that owns its memory.
    let own = block;
    if (block.byteOffset !== 0 || block.buffer.byteLength !== block.length) {
      own = this.pool.buffer(block.length);
      block.copy(own);
    }
    await this.push({ kind: 'block', file: f, index, job: this.pool.compress(own) });
  }

  /** Pack a tail into the current fragment block, starting a new one when it does not fit. */
  private async addTail(f: FileData, tail: Buffer): Promise<void> {
    if (tail.length === 0) return;
    if (this.frag && this.fragFill + tail.length > this.blockSize) await this.flushFragment();
    if (!this.frag) {
      this.frag = this.pool.buffer(this.blockSize);
      this.fragFill = 0;
      this.fragments.push({ start: 0, sizeWord: 0 });
    }
    f.fragment = this.fragments.length - 1;
    f.fragOffset = this.fragFill;
    tail.copy(this.frag, this.fragFill);
    this.fragFill += tail.length;
  }

  private async flushFragment(): Promise<void> {
    if (!this.frag) return;
    const block = Buffer.from(this.frag.buffer, 0, this.fragFill);
    this.frag = null;
    await this.push({ kind: 'fragment', index: this.fragments.length - 1, job: this.pool.compress(block) });
  }

  private async push(item: Item): Promise<void> {
    this.queue.push(item);
    while (this.queue.length > this.window) await this.handle(this.queue.shift()!);
  }

  /** Place a compressed block at `pos` (written with its neighbours in one run); its size word. */
  private write(c: Compressed): number {
    if (this.runBytes === 0) this.runStart = this.pos;
    this.run.push(c.data);
    this.runBytes += c.data.length;
    this.pos += c.data.length;
    this.stats.bytesOut += c.data.length;
    if (this.runBytes >= WRITE_RUN) this.flushRun();
    return c.data.length | (c.raw ? DATA_UNCOMPRESSED : 0);
  }

  private flushRun(): void {
    if (this.runBytes === 0) return;
    try {
      const n = fs.writevSync(this.fd, this.run, this.runStart);
      // A short write (rare on regular files): write the rest plainly.
      if (n < this.runBytes) {
        const rest = Buffer.concat(this.run).subarray(n);
        for (let at = 0; at < rest.length; ) at += fs.writeSync(this.fd, rest, at, rest.length - at, this.runStart + n + at);
      }
    } catch (err) {
      throw new BuildError(`cannot write the image: ${describeSystemError(err)}`);
    }
    this.run = [];
    this.runBytes = 0;
  }

  private async handle(item: Item): Promise<void> {
    switch (item.kind) {
      case 'start':
        item.file.blocksStart = this.pos;
        return;
      case 'block':
        item.file.blockSizes[item.index] = this.write(await item.job);
        return;
      case 'end':
        if (item.dupOf) {
          // Rewind over the duplicate's blocks (later data overwrites them; the file is cut at the end).
          if (item.file.blockSizes.some((s) => s > 0)) {
            this.flushRun();
            this.stats.bytesOut -= this.pos - item.file.blocksStart;
            this.pos = item.file.blocksStart;
          }
          item.file.blocksStart = item.dupOf.blocksStart;
          item.file.blockSizes = item.dupOf.blockSizes;
          item.file.sparse = item.dupOf.sparse;
        }
        return;
      case 'fragment': {
        const start = this.pos;
        this.fragments[item.index] = { start, sizeWord: this.write(await item.job) };
        return;
      }
    }
  }

  /** Flush the last fragment and everything in flight; returns the end of the data area. */
  async finish(): Promise<number> {
    await this.flushFragment();
    while (this.queue.length > 0) await this.handle(this.queue.shift()!);
    this.flushRun();
    return this.pos;
  }
}

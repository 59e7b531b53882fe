// The data area: file blocks and fragment blocks, written in a fixed order by one writer while
// worker threads compress ahead of it. A bounded window of blocks is in flight, whatever the size
// of the tree. Files are read straight from their sources: nothing is staged.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import zlib from 'node:zlib';
import { display, fsArg } from '../../model/bytes.js';
import type { StoredBlocks } from '../../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import type { CompressPool, Compressed } from '../../codecs/pool.js';
import { DATA_UNCOMPRESSED, NO_FRAGMENT as NONE32 } from '../../formats/squashfs/index.js';
import { sameWords, storedBytes, storedContent } from './stored.js';

/**
 * Where each file's content ended up, by slot (the data writer's number for a file: files are
 * numbered in the order they are added). Typed arrays, not an object per file: a release has
 * millions of files. They grow as files are added (the selection feeds files before it knows how
 * many there are). Final once DataWriter.finish() has returned.
 */
export class FileLayout {
  /** Offset of the first block in the image. */
  blocksStart: Float64Array;
  /** Fragment index of the tail, NONE32 when there is none. */
  fragment: Uint32Array;
  fragOffset: Uint32Array;
  /** One size word per full block (0 = a sparse block of zeros), for files of a block or more. */
  readonly blockSizes = new Map<number, number[]>();
  /** Bytes of zero blocks not stored, for the few sparse files. */
  readonly sparse = new Map<number, number>();

  constructor(slots: number) {
    const n = Math.max(slots, 16);
    this.blocksStart = new Float64Array(n);
    this.fragment = new Uint32Array(n).fill(NONE32);
    this.fragOffset = new Uint32Array(n);
  }

  /** Room for slot `slot`: the arrays double when it is beyond them. */
  reserve(slot: number): void {
    const have = this.blocksStart.length;
    if (slot < have) return;
    const n = Math.max(2 * have, slot + 1);
    const starts = new Float64Array(n);
    starts.set(this.blocksStart);
    const fragment = new Uint32Array(n).fill(NONE32);
    fragment.set(this.fragment);
    const offsets = new Uint32Array(n);
    offsets.set(this.fragOffset);
    this.blocksStart = starts;
    this.fragment = fragment;
    this.fragOffset = offsets;
  }

  blocksOf(slot: number): readonly number[] {
    return this.blockSizes.get(slot) ?? NO_BLOCKS;
  }
}

/** What the writer needs to know again about an earlier file when a later one may duplicate it. */
export type FileAt = (slot: number) => { source: string; offset: number; size: number; stored?: StoredBlocks | undefined };

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
  | { kind: 'start'; slot: number }
  | { kind: 'block'; slot: number; index: number; job: Promise<Compressed> }
  | { kind: 'end'; slot: number; dupOf: number }
  | { kind: 'fragment'; index: number; job: Promise<Compressed> }
  /** Stored blocks copied from an image as they are (`buffer`: the copy buffer `data` lies in). */
  | { kind: 'copied'; slot: number; data: Buffer; buffer: ArrayBuffer }
  /** A stored fragment block copied as it is, to become fragment `index`. */
  | { kind: 'fragcopy'; index: number; data: Buffer; word: number };

/** A compressed block on its way to the file: from the pool, or copied (its buffer goes back to the copy buffers). */
type Written = Compressed & { copied?: ArrayBuffer };

/** Files up to this size are read whole and checked for duplicates before any block is compressed. */
const READ_WHOLE = 4 << 20;
/** Output is written in runs of about this many bytes, not one system call per block. */
const WRITE_RUN = 1 << 20;
/** Bytes of a streamed file read without the event loop turning (a sparse file queues nothing to wait for). */
const TURN_EVERY = 32 << 20;
/** Runs being written at most (their blocks' slots are held until then). */
const WRITES_IN_FLIGHT = 4;
/** Stored blocks are copied in reads of about this many bytes (at least one block). */
const COPY_CHUNK = 1 << 20;
/** Copy buffers kept for reuse (a fresh 1 MiB buffer is an mmap and its page faults). */
const COPY_SPARE = 32;

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

/**
 * Checksum → slots of the files that have it: for CRC-32 keys an open-addressing table in two typed
 * arrays (8 bytes a file at half load, where a Map entry and a boxed key cost about 60 and a release
 * has millions of files); for SHA-256 keys (old Node) a Map. A key may map to several slots.
 */
class SeenFiles {
  private keys = new Uint32Array(1 << 12);
  private slots = new Int32Array(1 << 12).fill(-1);
  private count = 0;
  private readonly bySha = new Map<string, number[]>();

  private static home(key: number, mask: number): number {
    return Math.imul(key, 0x9e3779b1) >>> 0 & mask;
  }

  add(key: number | string, slot: number): void {
    if (typeof key === 'string') {
      const list = this.bySha.get(key);
      if (list) list.push(slot);
      else this.bySha.set(key, [slot]);
      return;
    }
    if (2 * (this.count + 1) > this.keys.length) this.grow();
    const mask = this.keys.length - 1;
    let i = SeenFiles.home(key, mask);
    while (this.slots[i]! >= 0) i = (i + 1) & mask;
    this.keys[i] = key;
    this.slots[i] = slot;
    this.count++;
  }

  /** Slots of earlier files with this checksum, first seen first. */
  candidates(key: number | string): number[] {
    if (typeof key === 'string') return this.bySha.get(key) ?? [];
    const out: number[] = [];
    const mask = this.keys.length - 1;
    for (let i = SeenFiles.home(key, mask); this.slots[i]! >= 0; i = (i + 1) & mask) if (this.keys[i] === key) out.push(this.slots[i]!);
    return out.sort((a, b) => a - b);
  }

  private grow(): void {
    const keys = this.keys;
    const slots = this.slots;
    this.keys = new Uint32Array(2 * keys.length);
    this.slots = new Int32Array(2 * keys.length).fill(-1);
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (slots[i]! >= 0) this.add(keys[i]!, slots[i]!);
  }
}

const NO_BLOCKS: number[] = [];
const ONE_BYTE = Buffer.alloc(1);
const NO_BYTES = Buffer.alloc(0);

/** A 32-bit mix of one more value into a hash (murmur3's finaliser steps). */
function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  return Math.imul(h, 0x1b873593) ^ (h >>> 13);
}

/** CRC-32 of a file's tail (any 32-bit checksum where Node has no zlib.crc32). */
function tailSum(b: Buffer): number {
  if (typeof zlib.crc32 === 'function') return zlib.crc32(b);
  return createHash('sha1').update(b).digest().readUInt32LE(0);
}

/**
 * What finds duplicate candidates among stored files without reading their blocks: the size,
 * every block's stored size word and the tail's checksum. Compressed sizes are exact, so files
 * that share them all and differ are rare; candidates are confirmed byte for byte.
 */
function storedKey(size: number, words: Uint32Array, tail: Buffer): number {
  let h = mix(tailSum(tail), size % 2 ** 32);
  h = mix(h, Math.floor(size / 2 ** 32));
  for (let i = 0; i < words.length; i++) h = mix(h, words[i]!);
  return h >>> 0;
}


/** InputError when a stored file's block list does not fit its size (a damaged inode). */
function checkStored(s: StoredBlocks, size: number): void {
  const bs = s.image.blockSize;
  const n = s.words.length;
  const ok = s.fragment !== undefined ? n === Math.floor(size / bs) && size > n * bs : n === Math.ceil(size / bs);
  if (!ok) throw new InputError(`${display(s.image.file)}: a file of ${size} bytes at ${s.blocksStart} has ${n} blocks${s.fragment !== undefined ? ' and a fragment' : ''}: does not add up`);
}

/** Bytes compared at a time by sameContent (two buffers of it, allocated once per writer). */
const COMPARE_CHUNK = 1 << 20;

/**
 * Do two files have the same bytes? (Called only when size and checksum already agree.) `bBytes`:
 * the second file's content when it is in memory already (it is not read again). `scratch`: two
 * buffers of COMPARE_CHUNK bytes: a release has many duplicates, and fresh buffers for each
 * comparison counted as new external memory, for which V8 ran full collections back to back.
 */
function sameContent(a: string, aAt: number, b: string, bAt: number, size: number, bBytes: Buffer | undefined, scratch: [Buffer, Buffer]): boolean {
  const fds: number[] = [];
  let current = a;
  try {
    fds.push(fs.openSync(fsArg(a), 'r'));
    current = b;
    if (!bBytes) fds.push(fs.openSync(fsArg(b), 'r'));
    const [ba, bb] = scratch;
    for (let at = 0; at < size; at += COMPARE_CHUNK) {
      const n = Math.min(COMPARE_CHUNK, size - at);
      current = a;
      const na = fs.readSync(fds[0]!, ba, 0, n, aAt + at);
      current = b;
      const nb = bBytes ? n : fs.readSync(fds[1]!, bb, 0, n, bAt + at);
      const other = bBytes ? bBytes.subarray(at, at + n) : bb.subarray(0, n);
      if (na !== n || nb !== n || !ba.subarray(0, n).equals(other)) return false;
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
  /** Files written so far, by content checksum. */
  private readonly seen = new SeenFiles();
  /**
   * Files of a block or more whose checksum was not taken, by size: the only file of that size so
   * far (its slot), or -1 once a second one came and both were summed. A file can only duplicate
   * one of its size, and the sizes of large files rarely repeat: summing them only then saves
   * most of the checksum work (CRC-32 of every byte: 0.19 s of CPU in the 1.48 GB bench tree's
   * build, on the thread that feeds the compressors). The first of a size is read again for it.
   */
  private readonly unsummed = new Map<number, number>();
  /** Compressed blocks waiting to be written in one run starting at `runStart`. */
  private run: Written[] = [];
  private runBytes = 0;
  private runStart = 0;
  /** Runs being written, the first write error, and who waits for a write to end. */
  private writing = 0;
  private writeError: unknown = null;
  private writeWake: (() => void) | null = null;
  private frag: Buffer | null = null;
  private fragFill = 0;
  /** The fragment `frag` becomes (copied fragments take indexes while it fills). */
  private fragIndex = -1;
  readonly fragments: FragmentEntry[] = [];
  readonly stats: DataStats = { files: 0, bytesIn: 0, bytesOut: 0, dedupFiles: 0, dedupBytes: 0, sparseBytes: 0 };
  readonly layout: FileLayout;

  constructor(
    private readonly fd: number,
    /** Next byte of the output to write. */
    private pos: number,
    private readonly pool: CompressPool,
    private readonly blockSize: number,
    private readonly dedup: boolean,
    /** Blocks in flight at most. */
    private readonly window: number,
    /** File slots to make room for at first (more are added as needed). */
    slots: number,
    private readonly fileAt: FileAt,
    /** Bytes written between flushes to disk (startSync); Infinity: none. */
    private readonly syncEvery = Infinity,
    /** Where the image starts in the output file (a SIF container's partition); its offsets are relative to it. */
    private readonly origin = 0,
    /** The output's compressor as the superblock names it (null: stored uncompressed): stored blocks of that compressor are copied. */
    private readonly compressor: string | null = null,
  ) {
    this.zero = Buffer.alloc(blockSize);
    this.layout = new FileLayout(slots);
  }

  /** Where the current file's content starts in its source (non-zero inside a base image layer). */
  private at = 0;

  /** Set by stop(): a large file being streamed is abandoned at its next block. */
  private stopped = false;

  /** The build failed elsewhere: stop adding blocks. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Add the content of file `slot` (its source and offset come from fileAt). `content`: its bytes
   * when they were read already (ReadAhead), checked against `size`.
   *
   * Synchronous unless the writer must wait, because a release is hundreds of thousands of small
   * files and async calls cost a promise each: their garbage kept V8 marking its old space
   * without pause (500,000 entries: 184 full collections, 11 s of CPU on 2 cores). Returns a
   * promise only when there is something to wait for (a large file streamed, or more blocks in
   * flight than the window): await it before the next file.
   */
  addFile(slot: number, size: number, offset?: number, content?: Buffer | null, stored?: StoredBlocks): Promise<void> | null {
    if (stored) return this.addStored(slot, size, stored);
    this.at = offset ?? -1;
    this.layout.reserve(slot);
    const full = Math.floor(size / this.blockSize);
    // Files smaller than a block (most of a release) have no list of block sizes at all.
    if (full > 0) this.layout.blockSizes.set(slot, new Array<number>(full).fill(0));
    this.stats.files++;
    this.stats.bytesIn += size;
    if (size === 0) return null;
    if (!content) {
      const source = this.fileAt(slot).source;
      if (size > READ_WHOLE) return this.addStreamed(slot, size, source);
      // A fresh buffer per file made the garbage collector and page faults cost more than reading.
      content = this.scratch.subarray(0, size);
      const fd = this.open(source);
      try {
        this.read(fd, content, 0, source);
        this.checkEnd(fd, size, source);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.addContent(slot, content);
    return this.queue.length > this.window ? this.settle(this.window) : null;
  }

  private open(source: string): number {
    try {
      return fs.openSync(fsArg(source), 'r');
    } catch (err) {
      throw new BuildError(`cannot read ${display(source)}: ${describeSystemError(err)}`);
    }
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

  /** A whole file's bytes, in a buffer that is only lent (everything kept is copied out of it). */
  private addContent(slot: number, buf: Buffer): void {
    const size = buf.length;
    let key: number | string | null = null;
    let dup = -1;
    if (this.dedup && this.needsSum(slot, size)) {
      const sum = new ContentSum();
      sum.update(buf);
      key = sum.key();
      dup = this.findDuplicate(key, size, buf);
    }
    const full = Math.floor(size / this.blockSize);
    if (dup >= 0) {
      this.reuse(slot, size, dup);
      if (full > 0) this.queue.push({ kind: 'end', slot, dupOf: dup });
      return;
    }
    this.writeContent(slot, buf);
    if (key !== null) this.seen.add(key, slot);
  }

  /** A whole file's blocks and tail, not a duplicate. */
  private writeContent(slot: number, buf: Buffer): void {
    const full = Math.floor(buf.length / this.blockSize);
    // Blocks are copied into buffers the pool owns (addBlock); the tail into the fragment (addTail).
    if (full > 0) {
      this.queue.push({ kind: 'start', slot });
      for (let i = 0; i < full; i++) this.addBlock(slot, i, buf.subarray(i * this.blockSize, (i + 1) * this.blockSize), false);
      this.queue.push({ kind: 'end', slot, dupOf: -1 });
    }
    this.addTail(slot, buf.subarray(full * this.blockSize));
  }

  // -------------------------------------------------------------------------------------------
  // Stored files (entries with `stored`: the blocks of another SquashFS image)

  /** Stored files copied so far, by storedKey. */
  private readonly storedSeen = new SeenFiles();
  /** Copy buffers (COPY_CHUNK bytes) whose writes have ended. */
  private readonly copySpare: ArrayBuffer[] = [];

  /**
   * A file whose content is stored blocks: copied as they are when the image has the output's
   * compressor and block size (its tail packed into our fragments), else decompressed and
   * compressed like any file. Synchronous unless the window is full or the file spans several copy reads.
   */
  private addStored(slot: number, size: number, s: StoredBlocks): Promise<void> | null {
    this.layout.reserve(slot);
    this.stats.files++;
    this.stats.bytesIn += size;
    checkStored(s, size);
    if (s.image.compressor !== this.compressor || s.image.blockSize !== this.blockSize) return this.addDecoded(slot, size, s);
    const n = s.words.length;
    if (n === 0) {
      // All of it in a fragment: only the fragment to place (a duplicate would save nothing, its block is copied anyway).
      this.storedTail(slot, size, s);
      return this.queue.length > this.window ? this.settle(this.window) : null;
    }
    const key = this.dedup ? storedKey(size, s.words, NO_BYTES) : 0;
    const dup = this.dedup ? this.findStored(key, size, s) : -1;
    if (dup >= 0) {
      this.reuse(slot, size, dup);
      this.layout.blockSizes.set(slot, new Array<number>(n).fill(0));
      this.queue.push({ kind: 'end', slot, dupOf: dup });
    } else {
      const copying = this.copyBlocks(slot, size, s);
      const finish = () => {
        this.storedTail(slot, size, s);
        if (this.dedup) this.storedSeen.add(key, slot);
      };
      if (copying) return copying.then(finish);
      finish();
    }
    return this.queue.length > this.window ? this.settle(this.window) : null;
  }

  /**
   * A stored file's tail: its fragment block copied as it is (once per image and fragment; the
   * tail keeps its offset), or, where the image asks for it (`repackTails`), decompressed and packed
   * into our fragments.
   */
  private storedTail(slot: number, size: number, s: StoredBlocks): void {
    if (s.fragment === undefined) return;
    if (s.image.repackTails) {
      this.addTail(slot, s.image.tail(s.fragment, s.fragmentOffset!, size - s.words.length * this.blockSize));
      return;
    }
    let ours = this.copiedFragments.get(s.image);
    if (!ours) this.copiedFragments.set(s.image, (ours = new Map()));
    let index = ours.get(s.fragment);
    if (index === undefined) {
      const { start, sizeWord } = s.image.fragmentAt(s.fragment);
      const stored = sizeWord & 0xffffff;
      if (sizeWord >>> 25 !== 0 || stored === 0 || stored > this.blockSize) throw new InputError(`${display(s.image.file)}: fragment ${s.fragment}: bad size word ${sizeWord}`);
      const data = Buffer.allocUnsafe(sizeWord & 0xffffff);
      s.image.readRaw(data, start);
      index = this.fragments.length;
      this.fragments.push({ start: 0, sizeWord: 0 });
      ours.set(s.fragment, index);
      this.queue.push({ kind: 'fragcopy', index, data, word: sizeWord });
    }
    this.layout.fragment[slot] = index;
    this.layout.fragOffset[slot] = s.fragmentOffset!;
  }

  /** Fragment blocks copied so far: image → its fragment index → ours. */
  private readonly copiedFragments = new Map<StoredBlocks['image'], Map<number, number>>();

  /** The slot of an earlier stored file with the same content and the same stored blocks, or -1. */
  private findStored(key: number, size: number, s: StoredBlocks): number {
    for (const c of this.storedSeen.candidates(key)) {
      const earlier = this.fileAt(c);
      const e = earlier.stored!;
      if (earlier.size !== size || !sameWords(e.words, s.words) || (e.fragment === undefined) !== (s.fragment === undefined)) continue;
      // The same file of the same image (mksquashfs stores duplicates once): nothing to read.
      if (e.image === s.image && e.blocksStart === s.blocksStart && e.fragment === s.fragment && e.fragmentOffset === s.fragmentOffset) return c;
      if (e.fragment !== undefined) {
        const n = size - s.words.length * this.blockSize;
        if (!e.image.tail(e.fragment, e.fragmentOffset!, n).equals(s.image.tail(s.fragment!, s.fragmentOffset!, n))) continue;
      }
      if (this.sameStoredBytes(e, s)) return c;
    }
    return -1;
  }

  /** Are two stored files' blocks (with the same size words) the same bytes? */
  private sameStoredBytes(a: StoredBlocks, b: StoredBlocks): boolean {
    const total = storedBytes(a.words);
    const [ba, bb] = this.scratchPair();
    for (let at = 0; at < total; at += COMPARE_CHUNK) {
      const n = Math.min(COMPARE_CHUNK, total - at);
      a.image.readRaw(ba.subarray(0, n), a.blocksStart + at);
      b.image.readRaw(bb.subarray(0, n), b.blocksStart + at);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
    }
    return true;
  }

  /** Queue a stored file's blocks, read in COPY_CHUNK pieces; their size words stay as they are. */
  private copyBlocks(slot: number, size: number, s: StoredBlocks): Promise<void> | null {
    const words = s.words;
    const bs = this.blockSize;
    this.layout.blockSizes.set(slot, Array.from(words));
    for (let i = 0; i < words.length; i++) {
      if (words[i] !== 0) continue;
      const zeros = Math.min(bs, size - i * bs);
      this.layout.sparse.set(slot, (this.layout.sparse.get(slot) ?? 0) + zeros);
      this.stats.sparseBytes += zeros;
    }
    this.queue.push({ kind: 'start', slot });
    return this.copyFrom(slot, s, 0, s.blocksStart);
  }

  /** Blocks `from` on of a stored file, starting at `pos` in its image; a promise when the window is full. */
  private copyFrom(slot: number, s: StoredBlocks, from: number, pos: number): Promise<void> | null {
    const words = s.words;
    for (let i = from; i < words.length; ) {
      if (this.stopped) throw new BuildError('stopped');
      let bytes = 0;
      let j = i;
      while (j < words.length && (j === i || bytes + (words[j]! & 0xffffff) <= COPY_CHUNK)) bytes += words[j++]! & 0xffffff;
      if (bytes > 0) {
        const buffer = bytes <= COPY_CHUNK ? (this.copySpare.pop() ?? new ArrayBuffer(COPY_CHUNK)) : new ArrayBuffer(bytes);
        const data = Buffer.from(buffer, 0, bytes);
        s.image.readRaw(data, pos);
        this.queue.push({ kind: 'copied', slot, data, buffer });
      }
      pos += bytes;
      i = j;
      if (this.queue.length > this.window && i < words.length) {
        const next = i;
        const at = pos;
        return this.settle(this.window).then(() => this.copyFrom(slot, s, next, at) ?? undefined);
      }
    }
    this.queue.push({ kind: 'end', slot, dupOf: -1 });
    return null;
  }

  /** A stored file of another compressor or block size: decompressed, and compressed as a new file (not deduplicated). */
  private addDecoded(slot: number, size: number, s: StoredBlocks): Promise<void> | null {
    const full = Math.floor(size / this.blockSize);
    if (full > 0) this.layout.blockSizes.set(slot, new Array<number>(full).fill(0));
    if (size === 0) return null;
    if (size > READ_WHOLE) return this.addDecodedStreamed(slot, size, full, s);
    const content = this.scratch.subarray(0, size);
    let at = 0;
    for (const piece of storedContent(s, size)) at += piece.copy(content, at);
    this.writeContent(slot, content);
    return this.queue.length > this.window ? this.settle(this.window) : null;
  }

  private async addDecodedStreamed(slot: number, size: number, full: number, s: StoredBlocks): Promise<void> {
    const bs = this.blockSize;
    const tail = Buffer.allocUnsafe(size - full * bs);
    this.queue.push({ kind: 'start', slot });
    let index = 0;
    let block = this.pool.buffer(bs);
    let fill = 0;
    let tailFill = 0;
    for (const piece of storedContent(s, size)) {
      for (let at = 0; at < piece.length; ) {
        if (index === full) {
          tailFill += piece.copy(tail, tailFill, at);
          break;
        }
        const n = piece.copy(block, fill, at, at + Math.min(bs - fill, piece.length - at));
        fill += n;
        at += n;
        if (fill < bs) continue;
        this.addBlock(slot, index++, block, true);
        fill = 0;
        if (index < full) block = this.pool.buffer(bs);
        if (this.stopped) throw new BuildError('stopped');
        if (this.queue.length > this.window) await this.settle(this.window);
      }
    }
    this.queue.push({ kind: 'end', slot, dupOf: -1 });
    this.addTail(slot, tail.subarray(0, tailFill));
  }

  /** Does file `slot` of `size` need its checksum (see `unsummed`)? Sums the earlier one of its size if so. */
  private needsSum(slot: number, size: number): boolean {
    if (size < this.blockSize) return true;
    const first = this.unsummed.get(size);
    if (first === undefined) {
      this.unsummed.set(size, slot);
      return false;
    }
    if (first >= 0) {
      this.unsummed.set(size, -1);
      this.sumEarlier(first);
    }
    return true;
  }

  /** Take the checksum of a file written earlier, from its source, and remember it. */
  private sumEarlier(slot: number): void {
    const f = this.fileAt(slot);
    const [buf] = this.scratchPair();
    const sum = new ContentSum();
    let fd = -1;
    try {
      fd = fs.openSync(fsArg(f.source), 'r');
      for (let at = 0; at < f.size; at += COMPARE_CHUNK) {
        const n = Math.min(COMPARE_CHUNK, f.size - at);
        // Changed since it was written: it can be nobody's duplicate (the comparison would say so too).
        if (fs.readSync(fd, buf, 0, n, f.offset + at) !== n) return;
        sum.update(buf.subarray(0, n));
      }
    } catch (err) {
      throw new BuildError(`cannot read ${display(f.source)} (comparing duplicates): ${describeSystemError(err)}`);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
    this.seen.add(sum.key(), slot);
  }

  private compareScratch: [Buffer, Buffer] | null = null;

  /** Two COMPARE_CHUNK buffers for reading files written earlier, made on first use and reused. */
  private scratchPair(): [Buffer, Buffer] {
    return (this.compareScratch ??= [Buffer.allocUnsafeSlow(COMPARE_CHUNK), Buffer.allocUnsafeSlow(COMPARE_CHUNK)]);
  }

  /** The slot of an earlier file with the same bytes, or -1. */
  private findDuplicate(key: number | string, size: number, bytes?: Buffer, source?: string): number {
    const at = Math.max(this.at, 0);
    for (const s of this.seen.candidates(key)) {
      const earlier = this.fileAt(s);
      if (earlier.size === size && sameContent(earlier.source, earlier.offset, source ?? '', at, size, bytes, this.scratchPair())) return s;
    }
    return -1;
  }

  private async addStreamed(slot: number, size: number, source: string): Promise<void> {
    const fd = this.open(source);
    try {
      const hash = this.dedup && this.needsSum(slot, size) ? new ContentSum() : null;
      const full = Math.floor(size / this.blockSize);
      this.queue.push({ kind: 'start', slot });
      let sinceTurn = 0;
      for (let i = 0; i < full; i++) {
        if (this.stopped) throw new BuildError('stopped');
        const block = this.pool.buffer(this.blockSize);
        this.read(fd, block, i * this.blockSize, source);
        hash?.update(block);
        this.addBlock(slot, i, block, true);
        if (this.queue.length > this.window) {
          await this.settle(this.window);
          sinceTurn = 0;
        } else if ((sinceTurn += this.blockSize) >= TURN_EVERY) {
          // Zero blocks (a sparse file) queue nothing to wait for: let the event loop turn now and
          // then, or a signal waits for the whole file (50 GB of holes: half a minute).
          sinceTurn = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      const tail = Buffer.allocUnsafe(size - full * this.blockSize);
      this.read(fd, tail, full * this.blockSize, source);
      this.checkEnd(fd, size, source);
      hash?.update(tail);
      // Known only now: a duplicate's blocks were written already, and the writer rewinds over them.
      const key = hash ? hash.key() : '';
      const dup = hash ? this.findDuplicate(key, size, undefined, source) : -1;
      this.queue.push({ kind: 'end', slot, dupOf: dup });
      if (dup >= 0) {
        this.reuse(slot, size, dup);
        return;
      }
      this.addTail(slot, tail);
      if (hash) this.seen.add(key, slot);
    } finally {
      fs.closeSync(fd);
    }
  }

  private reuse(slot: number, size: number, dup: number): void {
    this.layout.fragment[slot] = this.layout.fragment[dup]!;
    this.layout.fragOffset[slot] = this.layout.fragOffset[dup]!;
    this.stats.dedupFiles++;
    this.stats.dedupBytes += size;
  }

  /** `pooled`: the block is a buffer from pool.buffer(), else a view of a file's bytes (copied). */
  private addBlock(slot: number, index: number, block: Buffer, pooled: boolean): void {
    const sizes = this.layout.blockSizes.get(slot)!;
    if (block.equals(this.zero)) {
      sizes[index] = 0;
      this.layout.sparse.set(slot, (this.layout.sparse.get(slot) ?? 0) + block.length);
      this.stats.sparseBytes += block.length;
      if (pooled) this.pool.recycle(block);
      return;
    }
    sizes[index] = -1; // set by the writer
    let own = block;
    if (!pooled) {
      own = this.pool.buffer(block.length);
      block.copy(own);
    }
    this.queue.push({ kind: 'block', slot, index, job: this.pool.compress(own) });
  }

  /** Pack a tail into the current fragment block, starting a new one when it does not fit. */
  private addTail(slot: number, tail: Buffer): void {
    if (tail.length === 0) return;
    if (this.frag && this.fragFill + tail.length > this.blockSize) this.flushFragment();
    if (!this.frag) {
      this.frag = this.pool.buffer(this.blockSize);
      this.fragFill = 0;
      this.fragIndex = this.fragments.length;
      this.fragments.push({ start: 0, sizeWord: 0 });
    }
    this.layout.fragment[slot] = this.fragIndex;
    this.layout.fragOffset[slot] = this.fragFill;
    tail.copy(this.frag, this.fragFill);
    this.fragFill += tail.length;
  }

  private flushFragment(): void {
    if (!this.frag) return;
    const block = this.frag.subarray(0, this.fragFill);
    this.frag = null;
    this.queue.push({ kind: 'fragment', index: this.fragIndex, job: this.pool.compress(block) });
  }

  /** Write out queued items, in order, until at most `keep` are left. */
  private async settle(keep: number): Promise<void> {
    while (this.queue.length > keep) {
      const item = this.queue.shift()!;
      if (item.kind === 'block' || item.kind === 'fragment') {
        this.place(item, await item.job);
        if (this.writing > WRITES_IN_FLIGHT || this.writeError !== null) await this.writesBelow(WRITES_IN_FLIGHT);
      } else if (item.kind === 'copied') {
        // Its size words are the file's already (copyBlocks): only the bytes go out.
        this.write({ data: item.data, raw: false, slot: -1, copied: item.buffer });
        if (this.writing > WRITES_IN_FLIGHT || this.writeError !== null) await this.writesBelow(WRITES_IN_FLIGHT);
      } else if (item.kind === 'fragcopy') {
        this.fragments[item.index] = { start: this.pos, sizeWord: item.word };
        this.write({ data: item.data, raw: false, slot: -1 });
        if (this.writing > WRITES_IN_FLIGHT || this.writeError !== null) await this.writesBelow(WRITES_IN_FLIGHT);
      } else {
        // Blocks written later go where the duplicate's were: the writes of those must land first.
        if (this.rewinds(item)) {
          this.flushRun();
          await this.writesBelow(0);
        }
        this.mark(item);
      }
    }
  }

  /** Place a compressed block at `pos` (written with its neighbours in one run); its size word. */
  private write(c: Written): number {
    if (this.runBytes === 0) this.runStart = this.pos;
    this.run.push(c);
    this.runBytes += c.data.length;
    this.pos += c.data.length;
    this.stats.bytesOut += c.data.length;
    if (this.runBytes >= WRITE_RUN) this.flushRun();
    return c.data.length | (c.raw ? DATA_UNCOMPRESSED : 0);
  }

  /**
   * Write the run on libuv's pool: the main thread's time is the build's bottleneck, and copying
   * a 2 GB image into the page cache took a quarter of it. Slots are released once written.
   */
  private flushRun(): void {
    if (this.runBytes === 0) return;
    const run = this.run;
    const start = this.runStart;
    const bytes = this.runBytes;
    this.run = [];
    this.runBytes = 0;
    const data = run.map((c) => c.data);
    this.writing++;
    const done = (err: unknown): void => {
      if (err && this.writeError === null) this.writeError = err;
      for (const c of run) {
        // A copied block's buffer is no pool slot: it goes back to the copy buffers.
        if (c.copied) {
          if (c.copied.byteLength === COPY_CHUNK && this.copySpare.length < COPY_SPARE) this.copySpare.push(c.copied);
        } else this.pool.release(c);
      }
      this.writing--;
      this.startSync();
      const wake = this.writeWake;
      this.writeWake = null;
      wake?.();
    };
    this.unsynced += bytes;
    fs.writev(this.fd, data, this.origin + start, (err, n) => {
      if (err || n === bytes) return done(err);
      // A short write (rare on regular files): write the rest plainly.
      try {
        const rest = Buffer.concat(data).subarray(n);
        for (let at = 0; at < rest.length; ) at += fs.writeSync(this.fd, rest, at, rest.length - at, this.origin + start + n + at);
        done(null);
      } catch (e) {
        done(e);
      }
    });
  }

  /** Bytes handed to writes since the last flush to disk began, and whether one is running. */
  private unsynced = 0;
  private syncing = false;

  /**
   * Start flushing what was written to disk, on the thread pool, once `syncEvery` bytes were
   * written since the last one began: the disk then writes the image while it is being
   * compressed, and the caller's fsync at the end has little left to do. One at a time.
   */
  private startSync(): void {
    if (this.syncing || this.unsynced < this.syncEvery || this.stopped) return;
    this.syncing = true;
    this.unsynced = 0;
    fs.fdatasync(this.fd, () => {
      // A failure here is the final fsync's to report (it flushes the same pages again).
      this.syncing = false;
      const wake = this.writeWake;
      this.writeWake = null;
      wake?.();
    });
  }

  /** Wait until at most `n` runs are being written; a failed write fails the build here. */
  private async writesBelow(n: number): Promise<void> {
    while (this.writing > n) await new Promise<void>((resolve) => (this.writeWake = resolve));
    if (this.writeError !== null) throw new BuildError(`cannot write the image: ${describeSystemError(this.writeError)}`);
  }

  /** Wait for the writes and the flush in flight, whatever they did: before the output's descriptor is closed. */
  async idle(): Promise<void> {
    while (this.writing > 0 || this.syncing) await new Promise<void>((resolve) => (this.writeWake = resolve));
  }

  /** Does this item end a duplicate whose blocks were written already (the writer rewinds)? */
  private rewinds(item: Extract<Item, { kind: 'start' | 'end' }>): boolean {
    return item.kind === 'end' && item.dupOf >= 0 && this.layout.blocksOf(item.slot).some((s) => s > 0);
  }

  /** A file's blocks start here, or end (and were a duplicate's: rewind over them). */
  private mark(item: Extract<Item, { kind: 'start' | 'end' }>): void {
    const layout = this.layout;
    if (item.kind === 'start') {
      layout.blocksStart[item.slot] = this.pos;
      return;
    }
    const dup = item.dupOf;
    if (dup < 0) return;
    // Rewind over the duplicate's blocks (later data overwrites them; the file is cut at the end).
    if (this.rewinds(item)) {
      this.stats.bytesOut -= this.pos - layout.blocksStart[item.slot]!;
      this.pos = layout.blocksStart[item.slot]!;
    }
    layout.blocksStart[item.slot] = layout.blocksStart[dup]!;
    layout.blockSizes.set(item.slot, layout.blockSizes.get(dup)!);
    const sparse = layout.sparse.get(dup);
    if (sparse === undefined) layout.sparse.delete(item.slot);
    else layout.sparse.set(item.slot, sparse);
  }

  /** A compressed block or fragment, written at the current position. */
  private place(item: Extract<Item, { kind: 'block' | 'fragment' }>, c: Compressed): void {
    if (item.kind === 'block') this.layout.blockSizes.get(item.slot)![item.index] = this.write(c);
    else {
      const start = this.pos;
      this.fragments[item.index] = { start, sizeWord: this.write(c) };
    }
  }

  /** Flush the last fragment and everything in flight; returns the end of the data area. */
  async finish(): Promise<number> {
    this.flushFragment();
    await this.settle(0);
    this.flushRun();
    await this.writesBelow(0);
    await this.idle(); // a flush to disk still running uses the descriptor too
    return this.pos;
  }
}

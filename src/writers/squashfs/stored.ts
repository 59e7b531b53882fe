// Files whose content is the compressed blocks of an existing SquashFS image (merge, --reuse):
// the StoredImage an entry's `stored` field points to, made from an open reader. The data writer
// (data.ts) copies such blocks as they are when the output has the image's compressor and block
// size, and decompresses them through this otherwise.
import * as fs from 'node:fs';
import { display, fsArg } from '../../model/bytes.js';
import type { StoredBlocks, StoredImage } from '../../model/entry.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import type { ImageEntry, SquashfsImage } from '../../sources/squashfs/reader.js';

/**
 * Decompressed fragment blocks kept per image. A part's files come in path order, and mksquashfs
 * packs tails in the order it reads files (its directory scan, also path order), so a file's
 * fragment is nearly always one of the last few.
 */
const FRAGMENTS_CACHED = 16;

export class StoredSource implements StoredImage {
  readonly compressor: string;
  readonly blockSize: number;
  private readonly fragments = new Map<number, Buffer>();

  /**
   * @param image the open reader (closed by whoever opened it, after the image is written)
   * @param file the host path of the image file (a byte string)
   * @param origin where the image starts in the file (a SIF container's partition; 0 for a .sqfs)
   */
  constructor(
    private readonly image: SquashfsImage,
    readonly file: string,
    private readonly origin: number,
    /** See StoredImage.repackTails: merge copies fragment blocks (its parts' files all go in). */
    readonly repackTails = false,
  ) {
    this.compressor = image.superblock.compressor;
    this.blockSize = image.superblock.blockSize;
  }

  private fd = -1;

  readRaw(buf: Buffer, pos: number): void {
    if (pos + buf.length > this.image.superblock.bytesUsed) throw new InputError(`${display(this.file)}: data at ${pos} (${buf.length} bytes) is beyond bytes_used`);
    try {
      if (this.fd < 0) this.fd = fs.openSync(fsArg(this.file), 'r');
      for (let got = 0; got < buf.length; ) {
        const n = fs.readSync(this.fd, buf, got, buf.length - got, this.origin + pos + got);
        if (n === 0) throw new InputError(`${display(this.file)}: unexpected end of file at ${pos + got}`);
        got += n;
      }
    } catch (err) {
      if (err instanceof InputError) throw err;
      throw new InputError(`${display(this.file)}: ${describeSystemError(err)}`);
    }
  }

  fragmentAt(fragment: number): { start: number; sizeWord: number } {
    return this.image.fragmentEntry(fragment);
  }

  readBlock(pos: number, word: number): Buffer {
    return this.image.readDataBlock(pos, word, `data block at ${pos}`);
  }

  tail(fragment: number, offset: number, length: number): Buffer {
    let block = this.fragments.get(fragment);
    if (block) {
      this.fragments.delete(fragment);
      this.fragments.set(fragment, block);
    } else {
      const { start, sizeWord } = this.image.fragmentEntry(fragment);
      block = this.image.readDataBlock(start, sizeWord, `fragment block ${fragment}`);
      this.fragments.set(fragment, block);
      if (this.fragments.size > FRAGMENTS_CACHED) this.fragments.delete(this.fragments.keys().next().value!);
    }
    if (offset + length > block.length) {
      throw new InputError(`${display(this.file)}: a tail of ${length} bytes at offset ${offset} is outside fragment block ${fragment} (${block.length} bytes)`);
    }
    return block.subarray(offset, offset + length);
  }

  /** The blocks of a regular file of this image (an entry of its walk()). */
  blocksOf(e: ImageEntry): StoredBlocks {
    const s: StoredBlocks = { image: this, blocksStart: e.blocksStart!, words: e.blockSizes! };
    if (e.fragment !== undefined) {
      s.fragment = e.fragment;
      s.fragmentOffset = e.fragmentOffset!;
    }
    return s;
  }

  /** Close the descriptor readRaw opened (the reader is closed by its owner). */
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Bytes the blocks take in the image (sparse blocks take none). */
export function storedBytes(words: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < words.length; i++) n += words[i]! & 0xffffff;
  return n;
}

/** Bytes of the file that are in its fragment: what its blocks do not hold. */
export function tailLength(s: StoredBlocks, size: number, blockSize: number): number {
  return s.fragment === undefined ? 0 : size - s.words.length * blockSize;
}

/**
 * A stored file's content, decompressed, as pieces: each block (zeros for a sparse one), then
 * the tail (for a file whose image has another compressor or block size than the output, and for comparisons).
 */
export function* storedContent(s: StoredBlocks, size: number): Generator<Buffer> {
  const bs = s.image.blockSize;
  const n = s.words.length;
  let pos = s.blocksStart;
  for (let i = 0; i < n; i++) {
    const want = s.fragment !== undefined || i + 1 < n ? bs : size - i * bs;
    const word = s.words[i]!;
    if (word === 0) {
      yield Buffer.alloc(want);
      continue;
    }
    const data = s.image.readBlock(pos, word);
    pos += word & 0xffffff;
    if (data.length !== want) throw new InputError(`${display(s.image.file)}: a data block at ${pos - (word & 0xffffff)} holds ${data.length} bytes, expected ${want}`);
    yield data;
  }
  if (s.fragment !== undefined) yield s.image.tail(s.fragment, s.fragmentOffset!, size - n * bs);
}

/**
 * Do two stored files hold the same bytes? Without decompressing when both are stored alike (same
 * compressor, block size and size words: the compressed bytes and the tails are compared), else
 * through their content.
 */
export function sameStoredContent(a: StoredBlocks, aSize: number, b: StoredBlocks, bSize: number): boolean {
  if (aSize !== bSize) return false;
  if (a.image === b.image && a.blocksStart === b.blocksStart && a.fragment === b.fragment && a.fragmentOffset === b.fragmentOffset && sameWords(a.words, b.words)) return true;
  const alike = a.image.compressor === b.image.compressor && a.image.blockSize === b.image.blockSize && sameWords(a.words, b.words) && (a.fragment === undefined) === (b.fragment === undefined);
  if (alike && sameRaw(a, b)) {
    const tail = tailLength(a, aSize, a.image.blockSize);
    return tail === 0 || a.image.tail(a.fragment!, a.fragmentOffset!, tail).equals(b.image.tail(b.fragment!, b.fragmentOffset!, tail));
  }
  // Stored otherwise (another compressor or level, other blocks): compare what they decompress to.
  return sameStream(storedContent(a, aSize), storedContent(b, bSize));
}

export function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The compressed bytes of two files with the same size words, compared 1 MiB at a time. */
function sameRaw(a: StoredBlocks, b: StoredBlocks): boolean {
  const total = storedBytes(a.words);
  const step = 1 << 20;
  const ba = Buffer.allocUnsafe(Math.min(step, total));
  const bb = Buffer.allocUnsafe(Math.min(step, total));
  for (let at = 0; at < total; at += step) {
    const n = Math.min(step, total - at);
    a.image.readRaw(ba.subarray(0, n), a.blocksStart + at);
    b.image.readRaw(bb.subarray(0, n), b.blocksStart + at);
    if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
  }
  return true;
}

/** Do two sequences of pieces make the same bytes (pieces cut anywhere)? */
function sameStream(a: Iterator<Buffer>, b: Iterator<Buffer>): boolean {
  let pa: Buffer = Buffer.alloc(0);
  let pb: Buffer = Buffer.alloc(0);
  const refill = (it: Iterator<Buffer>, p: Buffer): Buffer | null => {
    while (p.length === 0) {
      const r = it.next();
      if (r.done) return null;
      p = r.value;
    }
    return p;
  };
  for (;;) {
    const na = refill(a, pa);
    const nb = refill(b, pb);
    if (na === null || nb === null) return na === nb;
    const n = Math.min(na.length, nb.length);
    if (!na.subarray(0, n).equals(nb.subarray(0, n))) return false;
    pa = na.subarray(n);
    pb = nb.subarray(n);
  }
}

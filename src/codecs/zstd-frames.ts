// The zstd frame format (RFC 8878, 3.1), read in one place: a frame header's layout from its
// descriptor, block headers, and two walkers over them, without decoding anything:
// - zstdFrameHeader()/zstdFrameEnd(): one frame held whole (a SquashFS block), for the block
//   decoder, which checks the window the kernel accepts and that the frame is complete;
// - ZstdFrameCheck: a stream as it flows by (a base layer or tarball): does it end where a frame ends?
//
// Why the stream check: node:zlib's zstd decoder ends without an error when its input stops inside a frame and
// hands back the bytes decoded so far (nodejs/node#64592, fixed upstream by #64593; Node 22.23
// and 24.9 still do it). An interrupted download of a `--base rootfs.tar.zst` or of a zstd layer
// would pass for a shorter tar. gzip needs no such check: zlib reports the unexpected end itself.
// A stream cut exactly between two frames cannot be told from a complete one (the format has no
// end marker); layers are one frame in practice.

export const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte size, that many bytes. */
const SKIPPABLE_MAGIC = 0x184d2a50;

/** Bytes of Frame_Content_Size by its flag (flag 0: 1 byte with Single_Segment, else none). */
const FCS_BYTES = [0, 2, 4, 8];
const DICT_ID_BYTES = [0, 1, 2, 4];

/** What a Frame_Header_Descriptor byte says; null when its reserved bit is set. */
interface Descriptor {
  singleSegment: boolean;
  checksum: boolean;
  /** Bytes of Window_Descriptor (absent for single-segment frames), Dictionary_ID, Frame_Content_Size. */
  windowBytes: number;
  dictIdBytes: number;
  contentSizeBytes: number;
}

function descriptor(d: number): Descriptor | null {
  if (d & 0x08) return null; // reserved bit
  const singleSegment = (d & 0x20) !== 0;
  return {
    singleSegment,
    checksum: (d & 0x04) !== 0,
    windowBytes: singleSegment ? 0 : 1,
    dictIdBytes: DICT_ID_BYTES[d & 3]!,
    contentSizeBytes: FCS_BYTES[d >> 6]! || (singleSegment ? 1 : 0),
  };
}

/** A Block_Header (3 bytes, little-endian): last block?, reserved type?, bytes that follow it. */
function blockHeader(word: number): { last: boolean; reserved: boolean; skip: number } {
  const type = (word >> 1) & 3;
  // Raw and compressed blocks carry Block_Size bytes; an RLE block one byte, repeated Block_Size times.
  return { last: (word & 1) === 1, reserved: type === 3, skip: type === 1 ? 1 : word >>> 3 };
}

export interface ZstdFrameHeader {
  singleSegment: boolean;
  /** Window the decoder must hold (= content size for single-segment frames). */
  windowSize: number;
  /** Declared content size, or null when absent. */
  contentSize: number | null;
  checksum: boolean;
  dictId: number;
  headerSize: number;
}

/** Parses the header of the zstd frame at the start of `f` (RFC 8878 §3.1.1); null if not one. */
export function zstdFrameHeader(f: Buffer): ZstdFrameHeader | null {
  if (f.length < 6 || f.readUInt32LE(0) !== ZSTD_MAGIC) return null;
  const d = descriptor(f[4]!);
  if (!d) return null;
  let p = 5;
  let windowSize = 0;
  if (d.windowBytes) {
    const wd = f[p++]!;
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const fcsSize = d.contentSizeBytes;
  if (f.length < p + d.dictIdBytes + fcsSize) return null;
  const dictId = d.dictIdBytes === 0 ? 0 : f.readUIntLE(p, d.dictIdBytes);
  p += d.dictIdBytes;
  let contentSize: number | null = null;
  if (fcsSize === 1) contentSize = f[p]!;
  else if (fcsSize === 2) contentSize = f.readUInt16LE(p) + 256;
  else if (fcsSize === 4) contentSize = f.readUInt32LE(p);
  else if (fcsSize === 8) contentSize = Number(f.readBigUInt64LE(p));
  p += fcsSize;
  if (d.singleSegment) windowSize = contentSize!;
  return { singleSegment: d.singleSegment, windowSize, contentSize, checksum: d.checksum, dictId, headerSize: p };
}

/** Walks the blocks of the frame whose header `h` starts `f`: where the frame ends, or what is
 *  wrong ('truncated frame', 'reserved block type'). node:zlib returns what it has for a
 *  truncated frame, silently. */
export function zstdFrameEnd(f: Buffer, h: ZstdFrameHeader): number | string {
  let p = h.headerSize;
  for (;;) {
    if (p + 3 > f.length) return 'truncated frame';
    const b = blockHeader(f.readUIntLE(p, 3));
    if (b.reserved) return 'reserved block type';
    p += 3 + b.skip;
    if (b.last) break;
  }
  p += h.checksum ? 4 : 0;
  return p > f.length ? 'truncated frame' : p;
}

type Next = 'magic' | 'skippable-size' | 'descriptor' | 'block';

/** Header bytes each part has. */
const HEADER: Record<Next, number> = { magic: 4, 'skippable-size': 4, descriptor: 1, block: 3 };

export class ZstdFrameCheck {
  /** Bytes seen before the current chunk. */
  private seen = 0;
  private next: Next = 'magic';
  /** The header being collected (headers may straddle chunks). */
  private readonly head = Buffer.alloc(4);
  private have = 0;
  /** Bytes to pass over before the next header: block contents, frame header fields, checksums. */
  private skip = 0;
  /** The frame being read ends with a 4-byte content checksum. */
  private checksum = false;
  private frames = 0;
  private bad: string | null = null;

  /** Take the next bytes of the stream. */
  update(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && this.bad === null) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const want = HEADER[this.next];
      const n = Math.min(want - this.have, chunk.length - i);
      chunk.copy(this.head, this.have, i, i + n);
      this.have += n;
      i += n;
      if (this.have === want) {
        this.have = 0;
        this.parse(this.seen + i - want);
      }
    }
    this.seen += chunk.length;
  }

  /** What is wrong with the bytes so far (a header no zstd decoder accepts), or null. */
  problem(): string | null {
    return this.bad;
  }

  /** The stream has ended: what is wrong with it, or null when it ended after a whole frame. */
  end(): string | null {
    if (this.bad !== null) return this.bad;
    if (this.next === 'magic' && this.have === 0 && this.skip === 0) return this.frames > 0 ? null : 'no zstd frame';
    return `truncated: the data ends inside a frame, after ${this.seen} bytes`;
  }

  /** A whole header, which started at byte `at` of the stream. */
  private parse(at: number): void {
    const h = this.head;
    switch (this.next) {
      case 'magic': {
        const magic = h.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) this.next = 'descriptor';
        else if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) this.next = 'skippable-size';
        else this.bad = `no zstd frame starts at byte ${at}`;
        return;
      }
      case 'skippable-size':
        this.skip = h.readUInt32LE(0);
        this.frames++;
        this.next = 'magic';
        return;
      case 'descriptor': {
        const d = descriptor(h[0]!);
        if (!d) {
          this.bad = `reserved bit set in the frame header at byte ${at}`;
          return;
        }
        this.checksum = d.checksum;
        this.skip = d.windowBytes + d.dictIdBytes + d.contentSizeBytes;
        this.next = 'block';
        return;
      }
      case 'block': {
        const b = blockHeader(h[0]! | (h[1]! << 8) | (h[2]! << 16));
        if (b.reserved) {
          this.bad = `reserved block type at byte ${at}`;
          return;
        }
        this.skip = b.skip;
        if (b.last) {
          if (this.checksum) this.skip += 4;
          this.frames++;
          this.next = 'magic';
        }
        return;
      }
    }
  }
}

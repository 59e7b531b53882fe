// Does a zstd stream end where a frame ends? Walks the frame and block headers of the compressed
// bytes (RFC 8878, 3.1) as they stream by, without decoding anything.
//
// Why: node:zlib's zstd decoder ends without an error when its input stops inside a frame and
// hands back the bytes decoded so far (nodejs/node#64592, fixed upstream by #64593; Node 22.23
// and 24.9 still do it). An interrupted download of a `--base rootfs.tar.zst` or of a zstd layer
// would pass for a shorter tar. gzip needs no such check: zlib reports the unexpected end itself.
// A stream cut exactly between two frames cannot be told from a complete one (the format has no
// end marker); layers are one frame in practice.

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte size, that many bytes. */
const SKIPPABLE_MAGIC = 0x184d2a50;

type Next = 'magic' | 'skippable-size' | 'descriptor' | 'block';

/** Header bytes each part has. */
const HEADER: Record<Next, number> = { magic: 4, 'skippable-size': 4, descriptor: 1, block: 3 };

/** Bytes of Frame_Content_Size by its flag (flag 0: 1 byte with Single_Segment, else none). */
const FCS_BYTES = [0, 2, 4, 8];
const DICT_ID_BYTES = [0, 1, 2, 4];

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
        const d = h[0]!;
        if (d & 0x08) {
          this.bad = `reserved bit set in the frame header at byte ${at}`;
          return;
        }
        const single = (d >> 5) & 1;
        const fcs = FCS_BYTES[d >> 6]! || single;
        this.checksum = ((d >> 2) & 1) === 1;
        // Window_Descriptor (absent for single-segment frames), Dictionary_ID, Frame_Content_Size.
        this.skip = (single ? 0 : 1) + DICT_ID_BYTES[d & 3]! + fcs;
        this.next = 'block';
        return;
      }
      case 'block': {
        const word = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const last = word & 1;
        const type = (word >> 1) & 3;
        const size = word >>> 3;
        if (type === 3) {
          this.bad = `reserved block type at byte ${at}`;
          return;
        }
        // Raw and compressed blocks carry `size` bytes; an RLE block one byte, repeated `size` times.
        this.skip = type === 1 ? 1 : size;
        if (last) {
          if (this.checksum) this.skip += 4;
          this.frames++;
          this.next = 'magic';
        }
        return;
      }
    }
  }
}

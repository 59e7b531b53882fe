// A metadata stream (inode table, directory table, lookup tables): a byte stream cut into 8 KiB
// chunks, each stored as a u16 header (size, bit 15 = uncompressed) and its payload. A reference to
// a position is (block_pos << 16) | offset, block_pos being the on-disk offset of the chunk's header
// from the start of the table, so it is known as soon as the previous chunks are compressed: they
// are compressed the moment they fill.
import { METADATA_SIZE, encodeMetaHeader } from '../../formats/squashfs/index.js';

export type Compress = (block: Buffer) => Buffer | null;

export class MetadataWriter {
  private readonly parts: Buffer[] = [];
  /** On-disk bytes written so far (complete chunks). */
  private diskSize = 0;
  private chunk = Buffer.allocUnsafe(METADATA_SIZE);
  private fill = 0;
  /** On-disk offsets of each chunk's header, for lookup-table index arrays. */
  readonly chunkStarts: number[] = [];

  constructor(private readonly compress: Compress) {}

  /** Reference of the next byte to be written: (block_pos << 16) | offset. */
  position(): { block: number; offset: number } {
    return { block: this.diskSize, offset: this.fill };
  }

  /** Uncompressed bytes written so far (position in the logical stream). */
  get logicalSize(): number {
    return this.chunkStarts.length * METADATA_SIZE + this.fill;
  }

  write(data: Buffer): void {
    let at = 0;
    while (at < data.length) {
      const n = Math.min(METADATA_SIZE - this.fill, data.length - at);
      data.copy(this.chunk, this.fill, at, at + n);
      this.fill += n;
      at += n;
      // Flush exactly when full, so that an offset is never 8192.
      if (this.fill === METADATA_SIZE) this.flushChunk();
    }
  }

  private flushChunk(): void {
    if (this.fill === 0) return;
    const raw = this.chunk.subarray(0, this.fill);
    const packed = this.compress(raw);
    const stored = packed && packed.length < raw.length ? packed : Buffer.from(raw);
    const header = encodeMetaHeader(stored.length, stored === packed);
    this.chunkStarts.push(this.diskSize);
    this.parts.push(header, stored);
    this.diskSize += 2 + stored.length;
    this.chunk = Buffer.allocUnsafe(METADATA_SIZE);
    this.fill = 0;
  }

  /** Flush the last, partial chunk and return the table as stored on disk. */
  finish(): Buffer {
    this.flushChunk();
    return Buffer.concat(this.parts);
  }
}

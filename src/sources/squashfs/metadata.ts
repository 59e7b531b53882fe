// Metadata blocks as the reader sees them, and sequential reads of a metadata stream.
import { InputError } from '../../model/errors.js';
import { hex } from '../../formats/squashfs/index.js';

export interface MetaBlock {
  /** Absolute position of the block's 2-byte header. */
  pos: number;
  data: Buffer;
  /** Absolute position of the block that follows (pos + 2 + on-disk size). */
  next: number;
  diskSize: number;
  compressed: boolean;
}

/** Where a cursor gets its blocks (SquashfsImage.metaBlock). */
export interface MetaBlocks {
  metaBlock(pos: number, limit?: number): MetaBlock;
}

/** Sequential reads of a metadata stream, across block boundaries. */
export class MetaCursor {
  /** Bytes read so far. */
  consumed = 0;

  constructor(
    private readonly image: MetaBlocks,
    /** Absolute position of the current block. */
    public block: number,
    /** Offset in the current block's uncompressed data. */
    public offset: number,
    private readonly limit: number,
  ) {}

  read(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    for (;;) {
      const b = this.image.metaBlock(this.block, this.limit);
      if (this.offset > b.data.length) throw new InputError(`offset ${this.offset} is beyond the ${b.data.length} bytes of the metadata block at ${hex(this.block)}`);
      const take = Math.min(need, b.data.length - this.offset);
      if (take > 0) parts.push(b.data.subarray(this.offset, this.offset + take));
      this.offset += take;
      need -= take;
      this.consumed += take;
      if (this.offset === b.data.length && b.next < this.limit) {
        this.block = b.next;
        this.offset = 0;
      } else if (need > 0) {
        throw new InputError(`read of ${n} bytes runs past the end of the table at ${hex(this.limit)}`);
      }
      if (need === 0) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** At the end of the last block before `limit` (false when the current block is unreadable). */
  atEnd(): boolean {
    try {
      const b = this.image.metaBlock(this.block, this.limit);
      return this.offset === b.data.length && b.next >= this.limit;
    } catch {
      return false;
    }
  }
}

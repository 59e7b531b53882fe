// Lookup tables (fragment, export, id, xattr id): entries packed into metadata blocks, then an
// uncompressed array of u64 positions of those blocks, which is what the superblock points at.
import { MetadataWriter, type Compress } from './metadata.js';

export interface PlacedTable {
  /** Bytes to append to the image at `start`. */
  bytes: Buffer;
  /** Absolute position of the u64 index array (the superblock pointer). */
  indexStart: number;
}

/** Lay out a lookup table whose first metadata block lands at absolute position `start`. */
export function lookupTable(entries: Buffer, start: number, compress: Compress): PlacedTable {
  const w = new MetadataWriter(compress);
  w.write(entries);
  const blocks = w.finish();
  const index = Buffer.alloc(8 * w.chunkStarts.length);
  w.chunkStarts.forEach((off, i) => index.writeBigUInt64LE(BigInt(start + off), 8 * i));
  return { bytes: Buffer.concat([blocks, index]), indexStart: start + blocks.length };
}

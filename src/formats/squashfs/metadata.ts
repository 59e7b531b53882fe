// Metadata blocks (inode, directory and lookup tables): an 8 KiB chunk of a stream stored as a u16
// header (stored size, bit 15 = stored uncompressed) and its payload; references into a table;
// the index arrays of lookup tables.

/** Uncompressed size of a metadata chunk. */
export const METADATA_SIZE = 8192;
/** Largest distance between the starts of two consecutive metadata blocks (header + payload). */
export const METADATA_BLOCK_MAX = METADATA_SIZE + 2;
/** Bit of a metadata block header: the block is stored uncompressed. */
export const META_UNCOMPRESSED = 0x8000;
export const META_HEADER_SIZE = 2;

export function encodeMetaHeader(storedSize: number, compressed: boolean): Buffer {
  const h = Buffer.allocUnsafe(META_HEADER_SIZE);
  h.writeUInt16LE(compressed ? storedSize : storedSize | META_UNCOMPRESSED, 0);
  return h;
}

export function decodeMetaHeader(header: number): { storedSize: number; compressed: boolean } {
  return { storedSize: header & ~META_UNCOMPRESSED, compressed: (header & META_UNCOMPRESSED) === 0 };
}

/** A reference to a byte of a metadata stream: block (on-disk offset of its chunk in the table) << 16 | offset. */
export function makeRef(block: number, offset: number): number {
  return block * 65536 + offset;
}

export function refBlock(ref: number): number {
  return Math.floor(ref / 65536);
}

export function refOffset(ref: number): number {
  return ref % 65536;
}

/** Number of u64 entries in the index array of a lookup table of `count` entries of `size` bytes. */
export function indexEntries(count: number, size: number): number {
  return Math.ceil((count * size) / METADATA_SIZE);
}

export function hex(n: number): string {
  return '0x' + n.toString(16);
}

/** An inode or directory reference as `block:offset` (block relative to its table). */
export function refString(ref: number): string {
  return `${hex(refBlock(ref))}:${hex(refOffset(ref))}`;
}

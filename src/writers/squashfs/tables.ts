// Lookup tables (fragment, export, id, xattr id): entries packed into metadata blocks, then an
// uncompressed array of u64 positions of those blocks, which is what the superblock points at.
import { ABSENT, EXPORT_ENTRY_SIZE, FRAGMENT_ENTRY_SIZE, type FragmentEntry, encodeExportEntry, encodeFragmentEntry, writeU64 } from '../../formats/squashfs/index.js';
import { MetadataWriter, type Compress } from './metadata.js';
import type { Tree } from './tree.js';
import type { XattrTable } from './xattrs.js';

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
  w.chunkStarts.forEach((off, i) => writeU64(index, start + off, 8 * i));
  return { bytes: Buffer.concat([blocks, index]), indexStart: start + blocks.length };
}

/** The fragment table's entries: each fragment block's position and size word. */
export function fragmentEntries(fragments: readonly FragmentEntry[]): Buffer {
  const b = Buffer.alloc(FRAGMENT_ENTRY_SIZE * fragments.length);
  fragments.forEach((f, i) => encodeFragmentEntry(b, i, f));
  return b;
}

/** The export table's entries: each inode's reference at its number's place (owners only: a hard link has no inode of its own). */
export function exportEntries(tree: Tree, inodeCount: number): Buffer {
  const b = Buffer.alloc(EXPORT_ENTRY_SIZE * inodeCount);
  for (let i = 0; i < tree.entries.length; i++) if (tree.owner[i] === i) encodeExportEntry(b, tree.number[i]!, tree.ref[i]!);
  return b;
}

/** The tables after the data area, in the order the kernel wants them, each where the previous ends. */
export interface TablesIn {
  inodes: Buffer;
  directories: Buffer;
  fragments: readonly FragmentEntry[];
  /** Export table entries, or null for none. */
  exports: Buffer | null;
  ids: Buffer;
  xattrs: XattrTable;
}

export interface PlacedTables {
  bytes: Buffer;
  inodeTableStart: number;
  directoryTableStart: number;
  fragmentTableStart: number;
  lookupTableStart: number;
  idTableStart: number;
  xattrIdTableStart: number;
  /** End of the last table: the image's bytes_used. */
  bytesUsed: number;
}

/** Lay out the tables from absolute position `start`, back to back: the kernel insists on exactly that. */
export function placeTables(start: number, t: TablesIn, compress: Compress): PlacedTables {
  const parts: Buffer[] = [];
  let pos = start;
  const append = (bytes: Buffer) => {
    parts.push(bytes);
    pos += bytes.length;
  };
  const lookup = (entries: Buffer) => {
    const placed = lookupTable(entries, pos, compress);
    append(placed.bytes);
    return placed.indexStart;
  };
  const inodeTableStart = pos;
  append(t.inodes);
  const directoryTableStart = pos;
  append(t.directories);
  // With no fragments, point at where the table would be (mksquashfs does; old unsquashfs rejects all-ones).
  const fragmentTableStart = t.fragments.length > 0 ? lookup(fragmentEntries(t.fragments)) : pos;
  const lookupTableStart = t.exports ? lookup(t.exports) : ABSENT;
  const idTableStart = lookup(t.ids);
  let xattrIdTableStart = ABSENT;
  if (t.xattrs.count > 0) {
    const placed = t.xattrs.place(pos, compress);
    append(placed.bytes);
    xattrIdTableStart = placed.headerStart;
  }
  return { bytes: Buffer.concat(parts), inodeTableStart, directoryTableStart, fragmentTableStart, lookupTableStart, idTableStart, xattrIdTableStart, bytesUsed: pos };
}

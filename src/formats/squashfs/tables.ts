// Entries of the lookup tables (docs: squashfs.md §1). Each table is its entries packed into
// metadata blocks and an array of u64 positions of those blocks, which the superblock points at
// (for xattrs, a header before the array does).
import { readU64, writeU64 } from './fields.js';

export const FRAGMENT_ENTRY_SIZE = 16;
export const ID_ENTRY_SIZE = 4;
/** An export table entry: the u64 reference of inode number n + 1. */
export const EXPORT_ENTRY_SIZE = 8;
export const XATTR_ID_ENTRY_SIZE = 16;
export const XATTR_ID_HEADER_SIZE = 16;

export interface FragmentEntry {
  /** Absolute position of the fragment block. */
  start: number;
  /** Stored size | DATA_UNCOMPRESSED when stored uncompressed. */
  sizeWord: number;
}

export function encodeFragmentEntry(buf: Buffer, index: number, f: FragmentEntry): void {
  writeU64(buf, f.start, FRAGMENT_ENTRY_SIZE * index);
  buf.writeUInt32LE(f.sizeWord, FRAGMENT_ENTRY_SIZE * index + 8);
}

export function decodeFragmentEntry(buf: Buffer, index: number): FragmentEntry {
  return { start: readU64(buf, FRAGMENT_ENTRY_SIZE * index), sizeWord: buf.readUInt32LE(FRAGMENT_ENTRY_SIZE * index + 8) };
}

export function encodeIdEntry(buf: Buffer, index: number, id: number): void {
  buf.writeUInt32LE(id >>> 0, ID_ENTRY_SIZE * index);
}

export function decodeIdEntry(buf: Buffer, index: number): number {
  return buf.readUInt32LE(ID_ENTRY_SIZE * index);
}

export function encodeExportEntry(buf: Buffer, inodeNumber: number, ref: number): void {
  writeU64(buf, ref, EXPORT_ENTRY_SIZE * (inodeNumber - 1));
}

export function decodeExportEntry(buf: Buffer, inodeNumber: number): number {
  return readU64(buf, EXPORT_ENTRY_SIZE * (inodeNumber - 1));
}

export interface XattrIdEntry {
  /** Reference of the set's first key in the key/value stream. */
  ref: number;
  count: number;
  /** Bytes of the set (writers disagree on what they count; the kernel does not use it). */
  size: number;
}

export function encodeXattrIdEntry(buf: Buffer, index: number, e: XattrIdEntry): void {
  const at = XATTR_ID_ENTRY_SIZE * index;
  writeU64(buf, e.ref, at);
  buf.writeUInt32LE(e.count, at + 8);
  buf.writeUInt32LE(e.size, at + 12);
}

export function decodeXattrIdEntry(buf: Buffer, index: number): XattrIdEntry {
  const at = XATTR_ID_ENTRY_SIZE * index;
  return { ref: readU64(buf, at), count: buf.readUInt32LE(at + 8), size: buf.readUInt32LE(at + 12) };
}

/** The xattr id table's header: where the key/value stream starts, and the number of ids. */
export interface XattrIdHeader {
  kvStart: number;
  count: number;
}

export function encodeXattrIdHeader(buf: Buffer, h: XattrIdHeader): void {
  writeU64(buf, h.kvStart, 0);
  buf.writeUInt32LE(h.count, 8);
}

export function decodeXattrIdHeader(buf: Buffer): XattrIdHeader {
  return { kvStart: readU64(buf, 0), count: buf.readUInt32LE(8) };
}

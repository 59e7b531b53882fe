// Directory listings (the directory table) and the directory index of extended directory inodes.
// A listing is runs of entries, each run under a header naming the inode-table block of its
// entries' inodes and a base inode number; an entry stores its inode's offset in that block, an
// s16 delta from the base, its basic type and its name (stored length − 1).

export const MAX_NAME = 256;
/** Entries under one header. */
export const MAX_DIR_COUNT = 256;
export const DIR_HEADER_SIZE = 12;
/** An entry's bytes before its name. */
export const DIR_ENTRY_SIZE = 8;
/** A directory index entry's bytes before its name. */
export const DIR_INDEX_SIZE = 12;

export interface DirHeader {
  /** Entries in the run (stored as count − 1). */
  count: number;
  /** Inode-table-relative position of the metadata block holding the entries' inodes. */
  startBlock: number;
  inodeNumber: number;
}

export function encodeDirHeader(buf: Buffer, at: number, h: DirHeader): void {
  buf.writeUInt32LE(h.count - 1, at);
  buf.writeUInt32LE(h.startBlock, at + 4);
  buf.writeUInt32LE(h.inodeNumber, at + 8);
}

export function decodeDirHeader(buf: Buffer, at: number): DirHeader {
  return { count: buf.readUInt32LE(at) + 1, startBlock: buf.readUInt32LE(at + 4), inodeNumber: buf.readUInt32LE(at + 8) };
}

export interface DirEntryRecord {
  /** Offset of the inode in the header's metadata block. */
  offset: number;
  /** Inode number − the header's base. */
  delta: number;
  /** Basic inode type 1..7. */
  type: number;
  /** Name length (stored as length − 1). */
  nameLength: number;
}

/** Encode an entry with its name (a byte string) at `at`: DIR_ENTRY_SIZE + name.length bytes. */
export function encodeDirEntry(buf: Buffer, at: number, e: Omit<DirEntryRecord, 'nameLength'>, name: string): void {
  buf.writeUInt16LE(e.offset, at);
  buf.writeInt16LE(e.delta, at + 2);
  buf.writeUInt16LE(e.type, at + 4);
  buf.writeUInt16LE(name.length - 1, at + 6);
  buf.write(name, at + DIR_ENTRY_SIZE, 'latin1');
}

/** Decode an entry's fixed part at `at` (its name follows). */
export function decodeDirEntry(buf: Buffer, at: number): DirEntryRecord {
  return { offset: buf.readUInt16LE(at), delta: buf.readInt16LE(at + 2), type: buf.readUInt16LE(at + 4), nameLength: buf.readUInt16LE(at + 6) + 1 };
}

export interface DirIndexRecord {
  /** Byte offset of a header from the start of the directory's listing. */
  index: number;
  /** Directory-table-relative position of the metadata block holding that header. */
  startBlock: number;
}

/** Encode a directory index entry with its name at `at`: DIR_INDEX_SIZE + name.length bytes. */
export function encodeDirIndex(buf: Buffer, at: number, x: DirIndexRecord, name: Buffer): void {
  buf.writeUInt32LE(x.index, at);
  buf.writeUInt32LE(x.startBlock, at + 4);
  buf.writeUInt32LE(name.length - 1, at + 8);
  name.copy(buf, at + DIR_INDEX_SIZE);
}

/** Decode a directory index entry's fixed part (its name follows). */
export function decodeDirIndex(buf: Buffer, at = 0): DirIndexRecord & { nameLength: number } {
  return { index: buf.readUInt32LE(at), startBlock: buf.readUInt32LE(at + 4), nameLength: buf.readUInt32LE(at + 8) + 1 };
}

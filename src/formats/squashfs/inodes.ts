// Inodes: a 16-byte header common to all, then a record per type (docs: squashfs.md §1). Types
// 8..14 are the extended variants of 1..7: 64-bit sizes, a link count for files, an xattr index.
// After the record: a file's block list (u32 size words), a symlink's target (then, extended, its
// xattr index), an extended directory's index entries (directory.ts).
import type { EntryType } from '../../model/entry.js';
import { type Field, decodeFields, encodeFields } from './fields.js';

export const INODE = {
  dir: 1,
  file: 2,
  symlink: 3,
  block: 4,
  char: 5,
  fifo: 6,
  socket: 7,
  ldir: 8,
  lfile: 9,
  lsymlink: 10,
  lblock: 11,
  lchar: 12,
  lfifo: 13,
  lsocket: 14,
} as const;

/** Extended variants are the basic type + 7. */
export const EXTENDED = 7;

/** Entry type of a basic inode type 1..7. */
export const BASIC_TYPE_NAMES: readonly (EntryType | undefined)[] = [undefined, 'dir', 'file', 'symlink', 'block', 'char', 'fifo', 'socket'];

/** Basic type (1..7) of an inode type (1..14), or 0 when the type is unknown. */
export function basicType(type: number): number {
  if (type >= 1 && type <= 7) return type;
  if (type >= 8 && type <= 14) return type - EXTENDED;
  return 0;
}

/** "No fragment", as a u32 fragment index. */
export const NO_FRAGMENT = 0xffffffff;
/** "No xattrs", as a u32 xattr index. */
export const NO_XATTR = 0xffffffff;
/** Bit of a data block size word: the block is stored uncompressed. */
export const DATA_UNCOMPRESSED = 1 << 24;
/** The kernel refuses longer symlink targets (PAGE_SIZE). */
export const MAX_SYMLINK = 4096;

export const INODE_HEADER_SIZE = 16;

export interface InodeHeader {
  /** 1..14 */
  type: number;
  /** Permission bits (the file type is the inode type). */
  mode: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  number: number;
}

const HEADER: readonly Field<keyof InodeHeader>[] = [
  ['type', 2, 0],
  ['mode', 2, 2],
  ['uidIndex', 2, 4],
  ['gidIndex', 2, 6],
  ['mtime', 4, 8],
  ['number', 4, 12],
];

export function encodeInodeHeader(buf: Buffer, h: InodeHeader): void {
  encodeFields(buf, 0, HEADER, h);
}

export function decodeInodeHeader(buf: Buffer): InodeHeader {
  const h = {} as InodeHeader;
  decodeFields(buf, 0, HEADER, h);
  return h;
}

/** The fields of the per-type records (each type has some of them). */
export interface InodeFields {
  nlink: number;
  /** Files: content bytes; directories: listing bytes + 3; symlinks: target bytes. */
  fileSize: number;
  xattr: number;
  // directories
  startBlock: number;
  offset: number;
  parentInode: number;
  indexCount: number;
  // files
  blocksStart: number;
  fragment: number;
  fragmentOffset: number;
  sparse: number;
  // devices
  rdev: number;
}

type Record_ = readonly Field<keyof InodeFields>[];
const DEV: Record_ = [
  ['nlink', 4, 0],
  ['rdev', 4, 4],
];
const IPC: Record_ = [['nlink', 4, 0]];
const SYMLINK: Record_ = [
  ['nlink', 4, 0],
  ['fileSize', 4, 4],
];

/** The record after the header, per inode type (a symlink's: the part before its target). */
export const INODE_RECORD: Readonly<Record<number, { size: number; fields: Record_ }>> = {
  [INODE.dir]: {
    size: 16,
    fields: [
      ['startBlock', 4, 0],
      ['nlink', 4, 4],
      ['fileSize', 2, 8],
      ['offset', 2, 10],
      ['parentInode', 4, 12],
    ],
  },
  [INODE.ldir]: {
    size: 24,
    fields: [
      ['nlink', 4, 0],
      ['fileSize', 4, 4],
      ['startBlock', 4, 8],
      ['parentInode', 4, 12],
      ['indexCount', 2, 16],
      ['offset', 2, 18],
      ['xattr', 4, 20],
    ],
  },
  [INODE.file]: {
    size: 16,
    fields: [
      ['blocksStart', 4, 0],
      ['fragment', 4, 4],
      ['fragmentOffset', 4, 8],
      ['fileSize', 4, 12],
    ],
  },
  [INODE.lfile]: {
    size: 40,
    fields: [
      ['blocksStart', 8, 0],
      ['fileSize', 8, 8],
      ['sparse', 8, 16],
      ['nlink', 4, 24],
      ['fragment', 4, 28],
      ['fragmentOffset', 4, 32],
      ['xattr', 4, 36],
    ],
  },
  [INODE.symlink]: { size: 8, fields: SYMLINK },
  [INODE.lsymlink]: { size: 8, fields: SYMLINK },
  [INODE.block]: { size: 8, fields: DEV },
  [INODE.char]: { size: 8, fields: DEV },
  [INODE.lblock]: { size: 12, fields: [...DEV, ['xattr', 4, 8]] },
  [INODE.lchar]: { size: 12, fields: [...DEV, ['xattr', 4, 8]] },
  [INODE.fifo]: { size: 4, fields: IPC },
  [INODE.socket]: { size: 4, fields: IPC },
  [INODE.lfifo]: { size: 8, fields: [...IPC, ['xattr', 4, 4]] },
  [INODE.lsocket]: { size: 8, fields: [...IPC, ['xattr', 4, 4]] },
};

/** Bytes of an extended symlink's xattr index, after its target. */
export const SYMLINK_XATTR_SIZE = 4;

/** Encode the record of inode type `type` at `at`. */
export function encodeInodeRecord(buf: Buffer, at: number, type: number, values: Partial<InodeFields>): void {
  encodeFields(buf, at, INODE_RECORD[type]!.fields, values);
}

/** Decode the record of inode type `type` (a buffer of INODE_RECORD[type].size bytes) into `into`. */
export function decodeInodeRecord(buf: Buffer, type: number, into: Partial<InodeFields>): void {
  decodeFields(buf, 0, INODE_RECORD[type]!.fields, into);
}

/** Blocks in a file's block list: whole blocks, plus the tail when it is not in a fragment. */
export function blockCount(fileSize: number, blockSize: number, hasFragment: boolean): number {
  return hasFragment ? Math.floor(fileSize / blockSize) : Math.ceil(fileSize / blockSize);
}

/** Linux new_encode_dev: how SquashFS stores a device number. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

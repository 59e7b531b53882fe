// SquashFS 4.0 on-disk constants and the superblock (docs: /work/shared/reference/squashfs.md §1).
// Everything is little-endian; u64 fields are read as JS numbers (exact below 2^53, which covers
// any real image; the "absent table" value 0xFFFFFFFFFFFFFFFF becomes exactly 2^64).
import type { EntryType } from '../../model/entry.js';

export const SQUASHFS_MAGIC = 0x73717368;
export const SUPERBLOCK_SIZE = 96;
/** Uncompressed size of a metadata chunk. */
export const METADATA_SIZE = 8192;
/** Largest distance between the starts of two consecutive metadata blocks (header + payload). */
export const METADATA_BLOCK_MAX = METADATA_SIZE + 2;
/** A u64 table pointer meaning "no such table" (0xFFFFFFFFFFFFFFFF as a JS number). */
export const ABSENT = 2 ** 64;
export const NO_FRAGMENT = 0xffffffff;
export const NO_XATTR = 0xffffffff;
/** Bit of a data block size word: the block is stored uncompressed. */
export const DATA_UNCOMPRESSED = 1 << 24;
/** Bit of a metadata block header: the block is stored uncompressed. */
export const META_UNCOMPRESSED = 0x8000;
export const MAX_NAME = 256;
export const MAX_DIR_COUNT = 256;
/** The kernel refuses longer symlink targets (PAGE_SIZE). */
export const MAX_SYMLINK = 4096;

export const COMPRESSORS: Readonly<Record<number, string>> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

/** Inode types; 8..14 are the extended variants of 1..7. */
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

/** Entry type of a basic inode type 1..7. */
export const BASIC_TYPE_NAMES: readonly (EntryType | undefined)[] = [undefined, 'dir', 'file', 'symlink', 'block', 'char', 'fifo', 'socket'];

/** Basic type (1..7) of an inode type (1..14), or 0 when the type is unknown. */
export function basicType(type: number): number {
  if (type >= 1 && type <= 7) return type;
  if (type >= 8 && type <= 14) return type - 7;
  return 0;
}

export interface SquashfsFlags {
  inodesUncompressed: boolean;
  dataUncompressed: boolean;
  check: boolean;
  fragmentsUncompressed: boolean;
  noFragments: boolean;
  alwaysFragments: boolean;
  duplicates: boolean;
  exportable: boolean;
  xattrsUncompressed: boolean;
  noXattrs: boolean;
  compressorOptions: boolean;
  idsUncompressed: boolean;
}

const FLAG_BITS: readonly [keyof SquashfsFlags, number][] = [
  ['inodesUncompressed', 0x0001],
  ['dataUncompressed', 0x0002],
  ['check', 0x0004],
  ['fragmentsUncompressed', 0x0008],
  ['noFragments', 0x0010],
  ['alwaysFragments', 0x0020],
  ['duplicates', 0x0040],
  ['exportable', 0x0080],
  ['xattrsUncompressed', 0x0100],
  ['noXattrs', 0x0200],
  ['compressorOptions', 0x0400],
  ['idsUncompressed', 0x0800],
];
export const KNOWN_FLAGS = 0x0fff;
export const FLAG_COMPRESSOR_OPTIONS = 0x0400;

export function decodeFlags(flags: number): SquashfsFlags {
  const out = {} as SquashfsFlags;
  for (const [name, bit] of FLAG_BITS) out[name] = (flags & bit) !== 0;
  return out;
}

export interface Superblock {
  magic: number;
  inodeCount: number;
  mkfsTime: number;
  blockSize: number;
  fragmentCount: number;
  /** Compression id (1 gzip, 2 lzma, 3 lzo, 4 xz, 5 lz4, 6 zstd). */
  compression: number;
  /** Name of the compressor, or `unknown(N)`. */
  compressor: string;
  blockLog: number;
  flags: number;
  flagBits: SquashfsFlags;
  idCount: number;
  versionMajor: number;
  versionMinor: number;
  /** Root inode reference: (block << 16) | offset, block relative to inodeTableStart. */
  rootInode: number;
  bytesUsed: number;
  idTableStart: number;
  xattrIdTableStart: number;
  inodeTableStart: number;
  directoryTableStart: number;
  fragmentTableStart: number;
  lookupTableStart: number;
  /** xattrIdTableStart is not 0xFFFFFFFFFFFFFFFF. */
  hasXattrTable: boolean;
  /** lookupTableStart (the export table) is not 0xFFFFFFFFFFFFFFFF. */
  hasExportTable: boolean;
}

function u64(buf: Buffer, off: number): number {
  return Number(buf.readBigUInt64LE(off));
}

export function parseSuperblock(buf: Buffer): Superblock {
  const compression = buf.readUInt16LE(20);
  const flags = buf.readUInt16LE(24);
  const sb: Superblock = {
    magic: buf.readUInt32LE(0),
    inodeCount: buf.readUInt32LE(4),
    mkfsTime: buf.readUInt32LE(8),
    blockSize: buf.readUInt32LE(12),
    fragmentCount: buf.readUInt32LE(16),
    compression,
    compressor: COMPRESSORS[compression] ?? `unknown(${compression})`,
    blockLog: buf.readUInt16LE(22),
    flags,
    flagBits: decodeFlags(flags),
    idCount: buf.readUInt16LE(26),
    versionMajor: buf.readUInt16LE(28),
    versionMinor: buf.readUInt16LE(30),
    rootInode: u64(buf, 32),
    bytesUsed: u64(buf, 40),
    idTableStart: u64(buf, 48),
    xattrIdTableStart: u64(buf, 56),
    inodeTableStart: u64(buf, 64),
    directoryTableStart: u64(buf, 72),
    fragmentTableStart: u64(buf, 80),
    lookupTableStart: u64(buf, 88),
    hasXattrTable: false,
    hasExportTable: false,
  };
  sb.hasXattrTable = sb.xattrIdTableStart !== ABSENT;
  sb.hasExportTable = sb.lookupTableStart !== ABSENT;
  return sb;
}

/** Compressor options (the block at offset 96 when flag 0x0400 is set), decoded per compressor. */
export interface CompressionOptions {
  raw: Buffer;
  /** gzip, zstd, lzo */
  level?: number;
  /** gzip */
  windowSize?: number;
  /** gzip: bitmask 1 default, 2 filtered, 4 huffman only, 8 rle, 16 fixed */
  strategies?: number;
  /** xz */
  dictionarySize?: number;
  /** xz: BCJ filter bitmask */
  filters?: number;
  /** lz4: must be 1 */
  version?: number;
  /** lz4: 1 = high compression */
  lz4Flags?: number;
  /** lzo */
  algorithm?: number;
}

/** Payload size of the options block per compressor (lzma has none). */
export const OPTIONS_SIZE: Readonly<Record<string, number>> = { gzip: 8, xz: 8, lz4: 8, zstd: 4, lzo: 8 };

export function parseCompressionOptions(compressor: string, raw: Buffer): CompressionOptions {
  const o: CompressionOptions = { raw };
  const n = raw.length;
  switch (compressor) {
    case 'gzip':
      if (n >= 4) o.level = raw.readUInt32LE(0);
      if (n >= 6) o.windowSize = raw.readUInt16LE(4);
      if (n >= 8) o.strategies = raw.readUInt16LE(6);
      break;
    case 'xz':
      if (n >= 4) o.dictionarySize = raw.readUInt32LE(0);
      if (n >= 8) o.filters = raw.readUInt32LE(4);
      break;
    case 'lz4':
      if (n >= 4) o.version = raw.readUInt32LE(0);
      if (n >= 8) o.lz4Flags = raw.readUInt32LE(4);
      break;
    case 'zstd':
      if (n >= 4) o.level = raw.readUInt32LE(0);
      break;
    case 'lzo':
      if (n >= 4) o.algorithm = raw.readUInt32LE(0);
      if (n >= 8) o.level = raw.readUInt32LE(4);
      break;
  }
  return o;
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
  return `${hex(Math.floor(ref / 65536))}:${hex(ref % 65536)}`;
}

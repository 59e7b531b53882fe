// The SquashFS 4.0 superblock: its fields, the compressor and flag enums, the block-size rule, and
// its encoder and decoder side by side (docs: /work/shared/reference/squashfs.md §1).
// Everything is little-endian; u64 fields are JS numbers (exact below 2^53, which covers any real
// image; the "absent table" value 0xFFFFFFFFFFFFFFFF is exactly 2^64, ABSENT).
import { type Field, decodeFields, encodeFields } from './fields.js';

export const SQUASHFS_MAGIC = 0x73717368;
export const SUPERBLOCK_SIZE = 96;
/** A u64 table pointer meaning "no such table" (0xFFFFFFFFFFFFFFFF as a JS number). */
export const ABSENT = 2 ** 64;
/** Images are padded to a multiple of this (loop devices need 1 KiB or 4 KiB multiples). */
export const PAD_TO = 4096;
export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1 << 20;

/** Compressor ids, as stored in the superblock. */
export const Compressor = { gzip: 1, lzma: 2, lzo: 3, xz: 4, lz4: 5, zstd: 6 } as const;
export type CompressorName = keyof typeof Compressor;

const COMPRESSOR_NAMES = Object.fromEntries(Object.entries(Compressor).map(([name, id]) => [id, name])) as Readonly<Record<number, CompressorName>>;

/** Name of a compressor id, or `unknown(N)`. */
export function compressorName(id: number): string {
  return COMPRESSOR_NAMES[id] ?? `unknown(${id})`;
}

/** Superblock flag bits. */
export const Flag = {
  inodesUncompressed: 0x0001,
  dataUncompressed: 0x0002,
  check: 0x0004,
  fragmentsUncompressed: 0x0008,
  noFragments: 0x0010,
  alwaysFragments: 0x0020,
  duplicates: 0x0040,
  exportable: 0x0080,
  xattrsUncompressed: 0x0100,
  noXattrs: 0x0200,
  compressorOptions: 0x0400,
  idsUncompressed: 0x0800,
} as const;
export const KNOWN_FLAGS = 0x0fff;

export type SquashfsFlags = Record<keyof typeof Flag, boolean>;

export function decodeFlags(flags: number): SquashfsFlags {
  const out = {} as SquashfsFlags;
  for (const [name, bit] of Object.entries(Flag)) out[name as keyof typeof Flag] = (flags & bit) !== 0;
  return out;
}

/** The superblock's fields as stored. */
export interface SuperblockFields {
  magic: number;
  inodeCount: number;
  mkfsTime: number;
  blockSize: number;
  fragmentCount: number;
  /** Compressor id (`Compressor`). */
  compression: number;
  blockLog: number;
  flags: number;
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
}

/** A decoded superblock: the stored fields and what they mean. */
export interface Superblock extends SuperblockFields {
  /** Name of the compressor, or `unknown(N)`. */
  compressor: string;
  flagBits: SquashfsFlags;
  /** xattrIdTableStart is not 0xFFFFFFFFFFFFFFFF. */
  hasXattrTable: boolean;
  /** lookupTableStart (the export table) is not 0xFFFFFFFFFFFFFFFF. */
  hasExportTable: boolean;
}

/** Why a block size is not one SquashFS allows (a power of two from 4 KiB to 1 MiB), if it is not. */
export function blockSizeProblem(bs: number): string | undefined {
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) return `superblock: block_size ${bs} is not a power of two from 4096 to 1048576`;
  return undefined;
}

/** Why block_log does not go with block_size, if it does not. */
export function blockLogProblem(bs: number, blockLog: number): string | undefined {
  if (blockLog > 20 || 1 << blockLog !== bs) return `superblock: block_log ${blockLog} does not match block_size ${bs}`;
  return undefined;
}

/** The fields a writer chooses; the rest (magic, version 4.0, block_log) follow. */
export type SuperblockInit = Omit<SuperblockFields, 'magic' | 'blockLog' | 'versionMajor' | 'versionMinor'>;

/** A version 4.0 superblock; Error on a block size the format does not allow (callers check it first). */
export function initSuperblock(init: SuperblockInit): SuperblockFields {
  const bad = blockSizeProblem(init.blockSize);
  if (bad) throw new Error(`squashfs: ${bad}`);
  return { ...init, magic: SQUASHFS_MAGIC, blockLog: Math.log2(init.blockSize), versionMajor: 4, versionMinor: 0 };
}

/** The record: u32, u16 and u64 fields, no padding. */
const FIELDS: readonly Field<keyof SuperblockFields>[] = [
  ['magic', 4, 0],
  ['inodeCount', 4, 4],
  ['mkfsTime', 4, 8],
  ['blockSize', 4, 12],
  ['fragmentCount', 4, 16],
  ['compression', 2, 20],
  ['blockLog', 2, 22],
  ['flags', 2, 24],
  ['idCount', 2, 26],
  ['versionMajor', 2, 28],
  ['versionMinor', 2, 30],
  ['rootInode', 8, 32],
  ['bytesUsed', 8, 40],
  ['idTableStart', 8, 48],
  ['xattrIdTableStart', 8, 56],
  ['inodeTableStart', 8, 64],
  ['directoryTableStart', 8, 72],
  ['fragmentTableStart', 8, 80],
  ['lookupTableStart', 8, 88],
];

export function encodeSuperblock(sb: SuperblockFields): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  encodeFields(b, 0, FIELDS, sb);
  return b;
}

export function decodeSuperblock(buf: Buffer): Superblock {
  const f = {} as SuperblockFields;
  decodeFields(buf, 0, FIELDS, f);
  return {
    ...f,
    compressor: compressorName(f.compression),
    flagBits: decodeFlags(f.flags),
    hasXattrTable: f.xattrIdTableStart !== ABSENT,
    hasExportTable: f.lookupTableStart !== ABSENT,
  };
}

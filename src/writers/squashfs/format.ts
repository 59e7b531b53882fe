// What the writer adds to the SquashFS 4.0 constants it shares with the reader
// (sources/squashfs/format.ts): flag values, compressor ids, and the encoders of the superblock
// and of device numbers. Everything is little-endian and byte-packed.
import { SQUASHFS_MAGIC, SUPERBLOCK_SIZE } from '../../sources/squashfs/format.js';

/** "No such table", as a superblock u64. */
export const NONE64 = 0xffffffffffffffffn;
/** "No fragment" / "no xattrs", as a u32. */
export const NONE32 = 0xffffffff;
export const PAD_TO = 4096;

export const COMPRESSION_ID = { gzip: 1, lzma: 2, lzo: 3, xz: 4, lz4: 5, zstd: 6 } as const;

export const FLAG = {
  uncompressedInodes: 0x0001,
  uncompressedData: 0x0002,
  uncompressedFragments: 0x0008,
  noFragments: 0x0010,
  alwaysFragments: 0x0020,
  duplicates: 0x0040,
  exportable: 0x0080,
  uncompressedXattrs: 0x0100,
  noXattrs: 0x0200,
  compressorOptions: 0x0400,
  uncompressedIds: 0x0800,
} as const;

export interface Superblock {
  inodeCount: number;
  mkfsTime: number;
  blockSize: number;
  fragmentCount: number;
  compression: number;
  flags: number;
  idCount: number;
  rootInode: bigint;
  bytesUsed: bigint;
  idTableStart: bigint;
  xattrIdTableStart: bigint;
  inodeTableStart: bigint;
  directoryTableStart: bigint;
  fragmentTableStart: bigint;
  lookupTableStart: bigint;
}

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  b.writeUInt32LE(SQUASHFS_MAGIC, 0);
  b.writeUInt32LE(sb.inodeCount, 4);
  b.writeUInt32LE(sb.mkfsTime, 8);
  b.writeUInt32LE(sb.blockSize, 12);
  b.writeUInt32LE(sb.fragmentCount, 16);
  b.writeUInt16LE(sb.compression, 20);
  b.writeUInt16LE(Math.log2(sb.blockSize), 22);
  b.writeUInt16LE(sb.flags, 24);
  b.writeUInt16LE(sb.idCount, 26);
  b.writeUInt16LE(4, 28);
  b.writeUInt16LE(0, 30);
  b.writeBigUInt64LE(sb.rootInode, 32);
  b.writeBigUInt64LE(sb.bytesUsed, 40);
  b.writeBigUInt64LE(sb.idTableStart, 48);
  b.writeBigUInt64LE(sb.xattrIdTableStart, 56);
  b.writeBigUInt64LE(sb.inodeTableStart, 64);
  b.writeBigUInt64LE(sb.directoryTableStart, 72);
  b.writeBigUInt64LE(sb.fragmentTableStart, 80);
  b.writeBigUInt64LE(sb.lookupTableStart, 88);
  return b;
}

/** Linux new_encode_dev: how SquashFS stores a device number. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

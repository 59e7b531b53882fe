// A SquashFS 4.0 reader: superblock, tables, inodes, directory listings and file data, read with
// positional reads and a metadata-block cache. It is lenient where the kernel would still read the
// image (layout violations go to an optional `report` callback, which the verifier collects) and
// throws InputError where reading is impossible (bad magic, truncated or undecodable metadata).
// Format: src/formats/squashfs/ (/work/shared/reference/squashfs.md §1). The parts: image.ts (the
// open image, metadata blocks), tables.ts, inodes.ts, directories.ts, xattrs.ts, entries.ts, data.ts.
import * as fs from 'node:fs';
import { InputError, describeSystemError } from '../../model/errors.js';
import { SQUASHFS_MAGIC, SUPERBLOCK_SIZE, type Superblock, blockLogProblem, blockSizeProblem, decodeSuperblock, hex } from '../../formats/squashfs/index.js';
import { createDecoder } from './decoder.js';
import { type OpenOptions, SquashfsImage } from './image.js';

export type { Superblock, CompressionOptions, XattrIdEntry } from '../../formats/squashfs/index.js';
export { type BlockDecoder, createDecoder } from './decoder.js';
export type { RawDirEntry, RawDirHeader, RawListing } from './directories.js';
export type { ImageEntry } from './entries.js';
export { type FileRegion, type OpenOptions, SquashfsImage } from './image.js';
export type { DirIndexEntry, RawInode } from './inodes.js';
export { type MetaBlock, MetaCursor } from './metadata.js';
export type { TableLayout } from './tables.js';

/** Open an image and read its superblock and lookup tables. */
export async function openSquashfs(path: string, opts: OpenOptions = {}): Promise<SquashfsImage> {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new InputError(`${path}: ${describeSystemError(err)}`);
  }
  try {
    const fileSize = regionSize(fs.fstatSync(fd).size, opts.region);
    const head = Buffer.alloc(SUPERBLOCK_SIZE);
    const got = fileSize < SUPERBLOCK_SIZE ? fileSize : fs.readSync(fd, head, 0, SUPERBLOCK_SIZE, opts.region?.offset ?? 0);
    if (got < SUPERBLOCK_SIZE) throw new InputError(`${path}: not a SquashFS image (only ${got} bytes)`);
    const sb = decodeSuperblock(head);
    const fatal = fatalSuperblockProblem(sb);
    if (fatal) throw new InputError(`${path}: ${fatal}`);
    const decoder = await createDecoder(sb.compressor, sb.blockSize);
    const image = new SquashfsImage(path, fd, fileSize, sb, decoder, opts);
    image.loadTables();
    return image;
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof InputError) throw err;
    throw new InputError(`${path}: ${describeSystemError(err)}`);
  }
}

/** The size of the image in a file of `fileSize` bytes: the region's, as far as the file holds it. */
export function regionSize(fileSize: number, region: OpenOptions['region']): number {
  if (!region) return fileSize;
  return Math.max(0, Math.min(region.size, fileSize - region.offset));
}

/** The superblock problem that makes reading impossible, if any. */
export function fatalSuperblockProblem(sb: Superblock): string | undefined {
  if (sb.magic !== SQUASHFS_MAGIC) return `not a SquashFS image (magic ${hex(sb.magic)})`;
  if (sb.versionMajor !== 4 || sb.versionMinor !== 0) return `SquashFS version ${sb.versionMajor}.${sb.versionMinor} (only 4.0 is supported)`;
  const bad = blockSizeProblem(sb.blockSize) ?? blockLogProblem(sb.blockSize, sb.blockLog);
  if (bad) return bad;
  if (sb.compressor.startsWith('unknown')) return `superblock: unknown compression id ${sb.compression}`;
  return undefined;
}


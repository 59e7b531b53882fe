// An open SquashFS image: the superblock, the lookup tables, a cache of metadata blocks, and the
// reads the other modules build on (positional reads, metadata blocks and streams). Each part of
// the format is read by its own module; the methods here are the reader's API.
import * as fs from 'node:fs';
import { InputError, describeSystemError } from '../../model/errors.js';
import {
  type CompressionOptions,
  type FragmentEntry,
  META_HEADER_SIZE,
  METADATA_SIZE,
  SUPERBLOCK_SIZE,
  type Superblock,
  type XattrIdEntry,
  decodeMetaHeader,
  hex,
} from '../../formats/squashfs/index.js';
import { fragmentEntry, readBlocks, readDataBlock } from './data.js';
import type { BlockDecoder } from './decoder.js';
import { type RawListing, readListing } from './directories.js';
import { type ImageEntry, children, lookup, readlink, rootInode, toEntry, walk } from './entries.js';
import { type RawInode, readInode } from './inodes.js';
import { type MetaBlock, MetaCursor } from './metadata.js';
import { type TableLayout, loadTables } from './tables.js';
import { readXattrSet, xattrEntry } from './xattrs.js';

export interface OpenOptions {
  /** Called for every layout violation the reader can read past (kernel-style table checks). */
  report?: (problem: string) => void;
  /** Metadata blocks kept decompressed (default 1024, 8 MiB). */
  cacheBlocks?: number;
  /** The image is this part of the file (a SIF container's partition); default the whole file. */
  region?: FileRegion;
}

/** Bytes `offset` to `offset + size` of a file. */
export interface FileRegion {
  offset: number;
  size: number;
}

export class SquashfsImage {
  /** Decoded compressor options, when the image has the block. */
  compressionOptions: CompressionOptions | undefined;
  /** First byte after the superblock and compressor options: where data may start. */
  dataStart = SUPERBLOCK_SIZE;
  /** End of the directory table: the first metadata block of the next table. */
  directoryTableEnd: number;
  ids: number[] | undefined;
  /** Fragment table entries (16 bytes each). */
  fragmentTable: Buffer | undefined;
  /** Export table: u64 inode reference per inode number − 1. */
  exportTable: Buffer | undefined;
  xattr: { kvStart: number; count: number; table: Buffer | undefined; idBlocksStart: number } | undefined;
  /** Lookup tables as placed, in file order (fragment, export, id, xattr id). */
  readonly tables: TableLayout[] = [];
  /** Where layout violations go (OpenOptions.report). */
  readonly report: (problem: string) => void;

  private readonly cache = new Map<number, MetaBlock>();
  private readonly cacheBlocks: number;
  private readonly fragmentCache = new Map<number, Buffer>();
  private readonly xattrCache = new Map<number, Array<[string, Buffer]>>();
  private closed = false;
  /** Where the image starts in the file (OpenOptions.region). */
  private readonly origin: number;

  constructor(
    readonly path: string,
    private readonly fd: number,
    readonly fileSize: number,
    readonly superblock: Superblock,
    readonly decoder: BlockDecoder,
    opts: OpenOptions = {},
  ) {
    this.report = opts.report ?? (() => {});
    this.cacheBlocks = opts.cacheBlocks ?? 1024;
    this.origin = opts.region?.offset ?? 0;
    this.directoryTableEnd = superblock.bytesUsed;
  }

  close(): void {
    if (!this.closed) fs.closeSync(this.fd);
    this.closed = true;
  }

  // -------------------------------------------------------------------------------------------
  // Low level

  /** `len` bytes at `pos`; InputError when the file is shorter. */
  pread(pos: number, len: number): Buffer {
    if (pos + len > this.fileSize || pos < 0) {
      throw new InputError(`${this.path}: read of ${len} bytes at ${hex(pos)} is beyond the end of the file (${this.fileSize} bytes)`);
    }
    const buf = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, buf, done, len - done, this.origin + pos + done);
      if (n === 0) throw new InputError(`${this.path}: unexpected end of file at ${hex(pos + done)}`);
      done += n;
    }
    return buf;
  }

  /** The metadata block whose header is at `pos` (absolute), decompressed and cached. */
  metaBlock(pos: number, limit = this.superblock.bytesUsed): MetaBlock {
    let b = this.cache.get(pos);
    if (b) {
      this.cache.delete(pos);
      this.cache.set(pos, b);
    } else {
      b = this.decodeMetaBlock(pos);
      this.cache.set(pos, b);
      if (this.cache.size > this.cacheBlocks) this.cache.delete(this.cache.keys().next().value!);
    }
    if (b.next > limit) throw new InputError(`metadata block at ${hex(pos)} ends at ${hex(b.next)}, beyond the end of its table (${hex(limit)})`);
    return b;
  }

  private decodeMetaBlock(pos: number): MetaBlock {
    if (pos + 2 > this.superblock.bytesUsed) throw new InputError(`metadata block at ${hex(pos)} is beyond bytes_used (${hex(this.superblock.bytesUsed)})`);
    const { storedSize: diskSize, compressed } = decodeMetaHeader(this.pread(pos, META_HEADER_SIZE).readUInt16LE(0));
    if (diskSize === 0) throw new InputError(`metadata block at ${hex(pos)} has size 0`);
    if (!compressed && diskSize > METADATA_SIZE) throw new InputError(`metadata block at ${hex(pos)}: stored size ${diskSize} > 8192`);
    const raw = this.pread(pos + META_HEADER_SIZE, diskSize);
    let data: Buffer;
    if (compressed) {
      try {
        data = this.decoder.decompress(raw, METADATA_SIZE);
      } catch (err) {
        throw new InputError(`metadata block at ${hex(pos)} does not decompress (${this.superblock.compressor}: ${describeSystemError(err)})`);
      }
      if (data.length > METADATA_SIZE) throw new InputError(`metadata block at ${hex(pos)} decompresses to ${data.length} bytes (> 8192)`);
    } else {
      data = raw;
    }
    return { pos, data, next: pos + META_HEADER_SIZE + diskSize, diskSize, compressed };
  }

  /** A reader of the metadata stream from (block, offset), not reading past `limit`. */
  cursor(block: number, offset: number, limit: number): MetaCursor {
    return new MetaCursor(this, block, offset, limit);
  }

  /** Read the compressor options and the lookup tables, checking placement like the kernel (tables.ts). */
  loadTables(): void {
    loadTables(this);
  }

  // -------------------------------------------------------------------------------------------
  // Inodes, directories, ids and xattrs

  /** The inode at reference `ref` (InputError when it cannot be read). */
  readInode(ref: number): RawInode {
    return readInode(this, ref);
  }

  /** The listing of a directory inode, parsed as far as it goes (see `error`). */
  readListing(dir: RawInode): RawListing {
    return readListing(this, dir);
  }

  /** The id table value at `index`. */
  id(index: number, what: string): number {
    if (!this.ids) throw new InputError(`${this.path}: the id table cannot be read`);
    const v = this.ids[index];
    if (v === undefined) throw new InputError(`${this.path}: ${what} index ${index} is not below id_count ${this.ids.length}`);
    return v;
  }


  /** The xattr id table entry `index`. */
  xattrEntry(index: number): XattrIdEntry {
    return xattrEntry(this, index);
  }

  /** The extended attributes of xattr id `index`. */
  readXattrs(index: number): Array<[string, Buffer]> {
    const cached = this.xattrCache.get(index);
    if (cached) return cached;
    const set = this.readXattrSet(index);
    this.xattrCache.set(index, set.pairs);
    return set.pairs;
  }

  /** An xattr set and the two sizes a writer may store for it (xattrs.ts). */
  readXattrSet(index: number): ReturnType<typeof readXattrSet> {
    return readXattrSet(this, index);
  }

  // -------------------------------------------------------------------------------------------
  // Entries (entries.ts)

  /** The entry for inode `ino` at `path` (no hard-link resolution). */
  toEntry(path: string, ino: RawInode, withXattrs = true): ImageEntry {
    return toEntry(this, path, ino, withXattrs);
  }

  /** Children of a directory inode, sorted by raw bytes: [name, inode reference]. */
  children(dir: RawInode, path = '?'): Array<[string, number]> {
    return children(this, dir, path);
  }

  /** The root directory inode. */
  rootInode(): RawInode {
    return rootInode(this);
  }

  /** Every entry in path order, hard links as in the plan. */
  walk(): Generator<ImageEntry> {
    return walk(this);
  }

  /** The entry at an absolute path, without following symlinks (never type 'hardlink'). */
  lookup(path: string): ImageEntry | undefined {
    return lookup(this, path);
  }

  /** The target of a symlink entry. */
  readlink(entry: ImageEntry): string {
    return readlink(this, entry);
  }

  // -------------------------------------------------------------------------------------------
  // Data (data.ts)

  /** The fragment table entry `index`: position, size word. */
  fragmentEntry(index: number): FragmentEntry {
    return fragmentEntry(this, index);
  }

  /** A fragment block, decompressed (a few are cached). */
  fragmentBlock(index: number): Buffer {
    const cached = this.fragmentCache.get(index);
    if (cached) return cached;
    const { start, sizeWord } = this.fragmentEntry(index);
    const data = this.readDataBlock(start, sizeWord, `fragment block ${index}`);
    this.fragmentCache.set(index, data);
    if (this.fragmentCache.size > 8) this.fragmentCache.delete(this.fragmentCache.keys().next().value!);
    return data;
  }

  /** Decode one data or fragment block stored at `pos` with size word `word` (not 0). */
  readDataBlock(pos: number, word: number, what: string): Buffer {
    return readDataBlock(this, pos, word, what);
  }

  /** The content of a file (or of the file a hard link names), one block at a time. */
  readBlocks(entry: ImageEntry): Generator<Buffer> {
    return readBlocks(this, entry);
  }

  /** The whole content of a file. */
  readFile(entry: ImageEntry): Buffer {
    return Buffer.concat([...this.readBlocks(entry)]);
  }
}

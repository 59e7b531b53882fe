// A SquashFS 4.0 reader: superblock, tables, inodes, directory listings and file data, read with
// positional reads and a metadata-block cache. It is lenient where the kernel would still read the
// image (layout violations go to an optional `report` callback, which `verify.ts` collects) and
// throws InputError where reading is impossible (bad magic, truncated or undecodable metadata).
// Format: /work/shared/reference/squashfs.md §1.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { display } from '../../model/bytes.js';
import { type Entry, type EntryType, comparePaths, joinPath } from '../../model/entry.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import { createBlockDecoder } from '../../util/codecs.js';
import {
  ABSENT,
  BASIC_TYPE_NAMES,
  type CompressionOptions,
  DATA_UNCOMPRESSED,
  Flag,
  INODE,
  MAX_DIR_COUNT,
  MAX_NAME,
  METADATA_BLOCK_MAX,
  METADATA_SIZE,
  META_UNCOMPRESSED,
  NO_FRAGMENT,
  NO_XATTR,
  SQUASHFS_MAGIC,
  SUPERBLOCK_SIZE,
  type Superblock,
  basicType,
  hex,
  indexEntries,
  decodeCompressionOptions,
  decodeSuperblock,
  refString,
} from '../../formats/squashfs/index.js';

export type { Superblock, CompressionOptions } from '../../formats/squashfs/index.js';

// ---------------------------------------------------------------------------------------------
// Decompression

/** What the reader needs from a compressor (the shape of `createBlockDecoder` in util/codecs.ts). */
export interface BlockDecoder {
  /** Decompress one block; throws when the data is corrupt or inflates beyond `maxOut` bytes. */
  decompress(data: Buffer, maxOut: number): Buffer;
}

// gzip is decoded here with node:zlib (no dependency); zstd, xz and lz4 come from util/codecs.ts.
const gzipDecoder: BlockDecoder = {
  // SquashFS "gzip" blocks are zlib streams (RFC 1950), not gzip files.
  decompress: (data, maxOut) => zlib.inflateSync(data, { maxOutputLength: maxOut }),
};

/** The decoder for an image's compressor; InputError when this reader cannot decompress it. */
export async function createDecoder(compressor: string, blockSize: number): Promise<BlockDecoder> {
  if (compressor === 'gzip') return gzipDecoder;
  if (compressor === 'zstd' || compressor === 'xz' || compressor === 'lz4') {
    try {
      return await createBlockDecoder(compressor, blockSize);
    } catch (err) {
      throw new InputError(`compressor ${compressor} not supported by this reader: ${describeSystemError(err)}`);
    }
  }
  throw new InputError(`compressor ${compressor} not supported by this reader`);
}

// ---------------------------------------------------------------------------------------------
// Raw structures

export interface MetaBlock {
  /** Absolute position of the block's 2-byte header. */
  pos: number;
  data: Buffer;
  /** Absolute position of the block that follows (pos + 2 + on-disk size). */
  next: number;
  diskSize: number;
  compressed: boolean;
}

export interface DirIndexEntry {
  /** Byte offset of a header from the start of the directory's listing. */
  index: number;
  /** Directory-table-relative position of the metadata block holding that header. */
  startBlock: number;
  name: string;
}

/** An inode as stored, with every field of its type (the others undefined). */
export interface RawInode {
  ref: number;
  /** 1..14 */
  type: number;
  /** The stored mode field (permission bits; should have nothing above 0o7777). */
  mode: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  number: number;
  /** Implied 1 for basic files. */
  nlink: number;
  /** Files: content bytes; directories: listing bytes + 3; symlinks: target bytes. */
  fileSize: number;
  xattr: number;
  // directories
  startBlock?: number;
  offset?: number;
  parentInode?: number;
  index?: DirIndexEntry[];
  // files
  blocksStart?: number;
  fragment?: number;
  fragmentOffset?: number;
  sparse?: number;
  blockSizes?: Uint32Array;
  // symlinks
  target?: string;
  // devices
  rdev?: number;
  /** Bytes the inode occupies in the inode table. */
  byteLength: number;
  /** Reference of whatever follows this inode in the inode table. */
  nextRef: number;
  /** The inode ends exactly at the end of the inode table. */
  atTableEnd: boolean;
}

export interface RawDirEntry {
  /** Byte offset of the entry from the start of the listing. */
  pos: number;
  offset: number;
  delta: number;
  /** As stored: must be a basic type 1..7. */
  type: number;
  name: string;
  inodeNumber: number;
  ref: number;
}

export interface RawDirHeader {
  /** Byte offset of the header from the start of the listing. */
  pos: number;
  /** Number of entries (stored count + 1). */
  count: number;
  startBlock: number;
  inodeNumber: number;
  entries: RawDirEntry[];
}

export interface RawListing {
  headers: RawDirHeader[];
  /** Listing bytes according to the inode (file_size − 3). */
  size: number;
  /** Why the listing could not be read to its end; entries read before that are kept. */
  error?: string;
}

export interface XattrIdEntry {
  ref: number;
  count: number;
  size: number;
}

/** Placement of one lookup table (fragment, export, id, xattr id), for checks. */
export interface TableLayout {
  name: string;
  /** Position of the u64 index array. */
  arrayStart: number;
  /** Where the last metadata block must end: the index array (the xattr id header for xattrs). */
  blocksEnd: number;
  /** Metadata block positions read from the index array. */
  blocks: number[];
  /** Bytes of entries the table must hold. */
  bytes: number;
}

// ---------------------------------------------------------------------------------------------
// Entries

/** An entry of the image with the SquashFS details behind it. */
export interface ImageEntry extends Entry {
  inodeNumber: number;
  /** Inode reference: (block << 16) | offset, block relative to inode_table_start. */
  inodeRef: number;
  /** Stored inode type 1..14. */
  squashfsType: number;
  inodeType: 'basic' | 'ext';
  nlink: number;
  /** file_size of the inode (files: content bytes, also for hard links; dirs: listing + 3). */
  fileSize: number;
  blocksStart?: number;
  /** Raw block size words: size | 1<<24 when stored uncompressed; 0 for a sparse block. */
  blockSizes?: Uint32Array;
  /** Fragment index, absent when the file has no fragment. */
  fragment?: number;
  fragmentOffset?: number;
  /** Bytes saved by sparse blocks (ext file inodes). */
  sparse?: number;
  xattrIndex?: number;
  /** Extended attributes: full name (byte string, with its `user.`/`trusted.`/`security.` prefix) and value. */
  xattrs?: Array<[string, Buffer]>;
  /** Directories: where the listing is. */
  dir?: { startBlock: number; offset: number; parentInode: number; indexCount: number };
}

export interface OpenOptions {
  /** Called for every layout violation the reader can read past (kernel-style table checks). */
  report?: (problem: string) => void;
  /** Metadata blocks kept decompressed (default 1024, 8 MiB). */
  cacheBlocks?: number;
}

const XATTR_PREFIXES = ['user.', 'trusted.', 'security.'];

/** Open an image and read its superblock and lookup tables. */
export async function openSquashfs(path: string, opts: OpenOptions = {}): Promise<SquashfsImage> {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new InputError(`${path}: ${describeSystemError(err)}`);
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    const head = Buffer.alloc(SUPERBLOCK_SIZE);
    const got = fs.readSync(fd, head, 0, SUPERBLOCK_SIZE, 0);
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

/** The superblock problem that makes reading impossible, if any. */
export function fatalSuperblockProblem(sb: Superblock): string | undefined {
  if (sb.magic !== SQUASHFS_MAGIC) return `not a SquashFS image (magic ${hex(sb.magic)})`;
  if (sb.versionMajor !== 4 || sb.versionMinor !== 0) return `SquashFS version ${sb.versionMajor}.${sb.versionMinor} (only 4.0 is supported)`;
  const bs = sb.blockSize;
  if (bs < 4096 || bs > 1 << 20 || (bs & (bs - 1)) !== 0) return `superblock: block_size ${bs} is not a power of two from 4096 to 1048576`;
  if (sb.blockLog > 20 || 1 << sb.blockLog !== bs) return `superblock: block_log ${sb.blockLog} does not match block_size ${bs}`;
  if (sb.compressor.startsWith('unknown')) return `superblock: unknown compression id ${sb.compression}`;
  return undefined;
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

  private readonly cache = new Map<number, MetaBlock>();
  private readonly cacheBlocks: number;
  private readonly fragmentCache = new Map<number, Buffer>();
  private readonly xattrCache = new Map<number, Array<[string, Buffer]>>();
  private readonly report: (problem: string) => void;
  private closed = false;

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
      const n = fs.readSync(this.fd, buf, done, len - done, pos + done);
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
    const header = this.pread(pos, 2).readUInt16LE(0);
    const diskSize = header & ~META_UNCOMPRESSED;
    const compressed = (header & META_UNCOMPRESSED) === 0;
    if (diskSize === 0) throw new InputError(`metadata block at ${hex(pos)} has size 0`);
    if (!compressed && diskSize > METADATA_SIZE) throw new InputError(`metadata block at ${hex(pos)}: stored size ${diskSize} > 8192`);
    const raw = this.pread(pos + 2, diskSize);
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
    return { pos, data, next: pos + 2 + diskSize, diskSize, compressed };
  }

  /** A reader of the metadata stream from (block, offset), not reading past `limit`. */
  cursor(block: number, offset: number, limit: number): MetaCursor {
    return new MetaCursor(this, block, offset, limit);
  }

  /** Read the compressor options and the lookup tables, checking placement like the kernel. */
  loadTables(): void {
    const sb = this.superblock;
    const report = this.report;
    if (sb.flags & Flag.compressorOptions) {
      try {
        const b = this.metaBlock(SUPERBLOCK_SIZE);
        if (b.compressed) report(`compressor options: the block at 0x60 must be stored uncompressed`);
        this.compressionOptions = decodeCompressionOptions(sb.compressor, b.data);
        this.dataStart = b.next;
      } catch (err) {
        report(`compressor options: ${describeSystemError(err)}`);
      }
    }
    // The kernel walks back from bytes_used: each table's index array must end where the next
    // table's first metadata block begins (super.c, id.c, export.c, fragment.c, xattr_id.c).
    // `next` becomes undefined when a table's first block position is implausible: the tables
    // before it cannot be placed then, and their exact-end checks are skipped.
    let next: number | undefined = sb.bytesUsed;
    const firstBlock = (layout: TableLayout): number | undefined => {
      const b = layout.blocks[0];
      return b !== undefined && b >= this.dataStart && b < layout.blocksEnd ? b : undefined;
    };
    const layouts: TableLayout[] = [];
    if (sb.hasXattrTable) {
      const start = sb.xattrIdTableStart;
      if (start + 16 > sb.bytesUsed) {
        report(`xattr id table: header at ${hex(start)} is beyond bytes_used ${hex(sb.bytesUsed)}`);
      } else {
        const h = this.pread(start, 16);
        const kvStart = Number(h.readBigUInt64LE(0));
        const count = h.readUInt32LE(8);
        if (count === 0) report(`xattr id table: xattr id count is 0`);
        const n = indexEntries(count, 16);
        const arrayStart = start + 16;
        if (arrayStart + n * 8 !== sb.bytesUsed) {
          report(`xattr id table: index array of ${n} entries at ${hex(arrayStart)} ends at ${hex(arrayStart + n * 8)}, not at bytes_used ${hex(sb.bytesUsed)}`);
        }
        const layout = this.readIndex('xattr id table', start, arrayStart, n, count * 16);
        if (layout) {
          layouts.push(layout);
          const first = layout.blocks[0] ?? start;
          if (kvStart >= first) report(`xattr id table: key/value table start ${hex(kvStart)} is not before the first id block ${hex(first)}`);
          this.xattr = { kvStart, count, table: this.readLookupTable(layout), idBlocksStart: first };
          next = kvStart >= this.dataStart && kvStart < first ? kvStart : undefined;
        } else {
          next = undefined;
        }
      }
    }
    /**
     * A lookup table (id, export, fragment): its index array must end exactly where the next
     * table begins (the kernel's rule, walked backwards); returns the table's bytes, if readable.
     */
    const lookup = (name: string, start: number, count: number, entrySize: number): Buffer | undefined => {
      const n = indexEntries(count, entrySize);
      if (next !== undefined && start + n * 8 !== next) {
        report(`${name}: index array of ${n} entries at ${hex(start)} ends at ${hex(start + n * 8)}, not where the next table begins (${hex(next)})`);
      }
      const layout = this.readIndex(name, start, start, n, count * entrySize);
      if (!layout) {
        next = undefined;
        return undefined;
      }
      layouts.push(layout);
      next = firstBlock(layout);
      return this.readLookupTable(layout);
    };
    if (sb.idCount === 0) report(`id table: id_count is 0 (there must be at least one id)`);
    const ids = lookup('id table', sb.idTableStart, sb.idCount, 4);
    if (ids) {
      this.ids = [];
      for (let i = 0; i < sb.idCount; i++) this.ids.push(ids.readUInt32LE(i * 4));
    }
    if (sb.hasExportTable) {
      if (sb.inodeCount === 0) report(`export table: inode_count is 0`);
      this.exportTable = lookup('export table', sb.lookupTableStart, sb.inodeCount, 8);
    }
    // The kernel only requires the fragment index to end by `next`; unsquashfs 4.5 wants it exact.
    if (sb.fragmentCount > 0) this.fragmentTable = lookup('fragment table', sb.fragmentTableStart, sb.fragmentCount, 16);
    if (next === undefined) {
      // Lost: end the directory table at the nearest table pointer after it.
      const after = [sb.idTableStart, sb.fragmentCount > 0 ? sb.fragmentTableStart : ABSENT, sb.lookupTableStart, sb.xattrIdTableStart, sb.bytesUsed];
      next = Math.min(...after.filter((v) => v > sb.directoryTableStart));
    } else if (sb.directoryTableStart > next) {
      report(`directory table: directory_table_start ${hex(sb.directoryTableStart)} is after the start of the next table (${hex(next)})`);
    }
    if (sb.inodeTableStart >= sb.directoryTableStart) {
      report(`inode table: inode_table_start ${hex(sb.inodeTableStart)} is not before directory_table_start ${hex(sb.directoryTableStart)}`);
    }
    if (sb.inodeTableStart < this.dataStart) {
      report(`inode table: inode_table_start ${hex(sb.inodeTableStart)} overlaps the superblock or compressor options (data starts at ${hex(this.dataStart)})`);
    }
    this.directoryTableEnd = next;
    this.tables.push(...layouts.reverse());
  }

  /**
   * Read an index array of `n` u64 block positions at `arrayStart` and check it like the kernel:
   * strictly increasing, at most 8194 bytes apart, the last block less than 8194 bytes before
   * `tableEnd` (the array itself, or the xattr id header).
   */
  private readIndex(name: string, tableEnd: number, arrayStart: number, n: number, bytes: number): TableLayout | undefined {
    const sb = this.superblock;
    if (n === 0) return { name, arrayStart, blocksEnd: tableEnd, blocks: [], bytes };
    if (arrayStart + n * 8 > sb.bytesUsed || arrayStart + n * 8 > this.fileSize) {
      this.report(`${name}: index array at ${hex(arrayStart)} (${n} entries) is beyond bytes_used ${hex(sb.bytesUsed)}`);
      return undefined;
    }
    const raw = this.pread(arrayStart, n * 8);
    const blocks: number[] = [];
    for (let i = 0; i < n; i++) blocks.push(Number(raw.readBigUInt64LE(i * 8)));
    for (let i = 0; i + 1 < n; i++) {
      const a = blocks[i]!;
      const b = blocks[i + 1]!;
      if (a >= b || b - a > METADATA_BLOCK_MAX) {
        this.report(`${name}: metadata block ${i + 1} at ${hex(b)} does not follow block ${i} at ${hex(a)} (must be increasing, at most 8194 bytes apart)`);
      }
    }
    const last = blocks[n - 1]!;
    if (last >= tableEnd || tableEnd - last > METADATA_BLOCK_MAX) {
      this.report(`${name}: last metadata block at ${hex(last)} must begin less than 8194 bytes before ${hex(tableEnd)}`);
    }
    return { name, arrayStart, blocksEnd: tableEnd, blocks, bytes };
  }

  /** The entries of a lookup table, or undefined (reported) when its blocks do not decode. */
  private readLookupTable(layout: TableLayout): Buffer | undefined {
    const parts: Buffer[] = [];
    let remaining = layout.bytes;
    const n = layout.blocks.length;
    for (let i = 0; i < n; i++) {
      const pos = layout.blocks[i]!;
      let b: MetaBlock;
      try {
        b = this.metaBlock(pos);
      } catch (err) {
        this.report(`${layout.name}: ${describeSystemError(err)}`);
        return undefined;
      }
      const want = Math.min(METADATA_SIZE, remaining);
      if (b.data.length !== want) {
        this.report(`${layout.name}: metadata block ${i} at ${hex(pos)} holds ${b.data.length} bytes, expected ${want}`);
        if (b.data.length < want) return undefined;
      }
      const end = i + 1 < n ? layout.blocks[i + 1]! : layout.blocksEnd;
      if (b.next !== end) {
        this.report(`${layout.name}: metadata block ${i} at ${hex(pos)} ends at ${hex(b.next)}, but ${i + 1 < n ? `block ${i + 1}` : 'the index array'} begins at ${hex(end)} (tables must be contiguous)`);
      }
      parts.push(b.data.subarray(0, want));
      remaining -= want;
    }
    return Buffer.concat(parts);
  }

  // -------------------------------------------------------------------------------------------
  // Inodes and directories

  /** The inode at reference `ref` (InputError when it cannot be read). */
  readInode(ref: number): RawInode {
    const sb = this.superblock;
    const block = sb.inodeTableStart + Math.floor(ref / 65536);
    const c = this.cursor(block, ref % 65536, sb.directoryTableStart);
    const where = `inode ${refString(ref)}`;
    let h: Buffer;
    try {
      h = c.read(16);
    } catch (err) {
      throw new InputError(`${where}: ${describeSystemError(err)}`);
    }
    const ino: RawInode = {
      ref,
      type: h.readUInt16LE(0),
      mode: h.readUInt16LE(2),
      uidIndex: h.readUInt16LE(4),
      gidIndex: h.readUInt16LE(6),
      mtime: h.readUInt32LE(8),
      number: h.readUInt32LE(12),
      nlink: 1,
      fileSize: 0,
      xattr: NO_XATTR,
      byteLength: 0,
      nextRef: 0,
      atTableEnd: false,
    };
    try {
      switch (ino.type) {
        case INODE.dir: {
          const b = c.read(16);
          ino.startBlock = b.readUInt32LE(0);
          ino.nlink = b.readUInt32LE(4);
          ino.fileSize = b.readUInt16LE(8);
          ino.offset = b.readUInt16LE(10);
          ino.parentInode = b.readUInt32LE(12);
          break;
        }
        case INODE.ldir: {
          const b = c.read(24);
          ino.nlink = b.readUInt32LE(0);
          ino.fileSize = b.readUInt32LE(4);
          ino.startBlock = b.readUInt32LE(8);
          ino.parentInode = b.readUInt32LE(12);
          const count = b.readUInt16LE(16);
          ino.offset = b.readUInt16LE(18);
          ino.xattr = b.readUInt32LE(20);
          ino.index = [];
          for (let i = 0; i < count; i++) {
            const e = c.read(12);
            const len = e.readUInt32LE(8) + 1;
            if (len > MAX_NAME) throw new InputError(`directory index entry ${i} has a name of ${len} bytes (> 256)`);
            ino.index.push({ index: e.readUInt32LE(0), startBlock: e.readUInt32LE(4), name: c.read(len).toString('latin1') });
          }
          break;
        }
        case INODE.file:
        case INODE.lfile: {
          if (ino.type === INODE.file) {
            const b = c.read(16);
            ino.blocksStart = b.readUInt32LE(0);
            ino.fragment = b.readUInt32LE(4);
            ino.fragmentOffset = b.readUInt32LE(8);
            ino.fileSize = b.readUInt32LE(12);
          } else {
            const b = c.read(40);
            ino.blocksStart = Number(b.readBigUInt64LE(0));
            ino.fileSize = Number(b.readBigUInt64LE(8));
            ino.sparse = Number(b.readBigUInt64LE(16));
            ino.nlink = b.readUInt32LE(24);
            ino.fragment = b.readUInt32LE(28);
            ino.fragmentOffset = b.readUInt32LE(32);
            ino.xattr = b.readUInt32LE(36);
          }
          const n = blockCount(ino.fileSize, sb.blockSize, ino.fragment !== NO_FRAGMENT);
          const words = new Uint32Array(n);
          // Read the block list in pieces so that a corrupt size fails at the end of the table.
          for (let i = 0; i < n; ) {
            const k = Math.min(n - i, 2048);
            const b = c.read(k * 4);
            for (let j = 0; j < k; j++) words[i + j] = b.readUInt32LE(j * 4);
            i += k;
          }
          ino.blockSizes = words;
          break;
        }
        case INODE.symlink:
        case INODE.lsymlink: {
          const b = c.read(8);
          ino.nlink = b.readUInt32LE(0);
          ino.fileSize = b.readUInt32LE(4);
          if (ino.fileSize > 65536) throw new InputError(`symlink target of ${ino.fileSize} bytes`);
          ino.target = c.read(ino.fileSize).toString('latin1');
          if (ino.type === INODE.lsymlink) ino.xattr = c.read(4).readUInt32LE(0);
          break;
        }
        case INODE.block:
        case INODE.char:
        case INODE.lblock:
        case INODE.lchar: {
          const ext = ino.type > 7;
          const b = c.read(ext ? 12 : 8);
          ino.nlink = b.readUInt32LE(0);
          ino.rdev = b.readUInt32LE(4);
          if (ext) ino.xattr = b.readUInt32LE(8);
          break;
        }
        case INODE.fifo:
        case INODE.socket:
        case INODE.lfifo:
        case INODE.lsocket: {
          const ext = ino.type > 7;
          const b = c.read(ext ? 8 : 4);
          ino.nlink = b.readUInt32LE(0);
          if (ext) ino.xattr = b.readUInt32LE(4);
          break;
        }
        default:
          throw new InputError(`unknown inode type ${ino.type}`);
      }
    } catch (err) {
      throw new InputError(`${where} (#${ino.number}): ${describeSystemError(err)}`);
    }
    ino.byteLength = c.consumed;
    ino.nextRef = (c.block - sb.inodeTableStart) * 65536 + c.offset;
    ino.atTableEnd = c.atEnd();
    return ino;
  }

  /** The listing of a directory inode, parsed as far as it goes (see `error`). */
  readListing(dir: RawInode): RawListing {
    const size = dir.fileSize - 3;
    const out: RawListing = { headers: [], size };
    if (size < 0) {
      out.error = `file_size ${dir.fileSize} is less than 3`;
      return out;
    }
    if (size === 0) return out;
    const sb = this.superblock;
    let buf: Buffer;
    try {
      buf = this.cursor(sb.directoryTableStart + dir.startBlock!, dir.offset!, this.directoryTableEnd).read(size);
    } catch (err) {
      out.error = `listing of ${size} bytes at ${refString(dir.startBlock! * 65536 + dir.offset!)} cannot be read: ${describeSystemError(err)}`;
      return out;
    }
    let p = 0;
    while (p < size) {
      if (size - p < 12) {
        out.error = `listing ends ${size - p} bytes into a directory header at byte ${p}`;
        return out;
      }
      const h: RawDirHeader = { pos: p, count: buf.readUInt32LE(p) + 1, startBlock: buf.readUInt32LE(p + 4), inodeNumber: buf.readUInt32LE(p + 8), entries: [] };
      out.headers.push(h);
      p += 12;
      if (h.count > MAX_DIR_COUNT) {
        out.error = `directory header at byte ${h.pos} has ${h.count} entries (at most 256)`;
        return out;
      }
      for (let i = 0; i < h.count; i++) {
        if (size - p < 8) {
          out.error = `listing ends inside entry ${i + 1} of ${h.count} of the header at byte ${h.pos}`;
          return out;
        }
        const offset = buf.readUInt16LE(p);
        const delta = buf.readInt16LE(p + 2);
        const type = buf.readUInt16LE(p + 4);
        const len = buf.readUInt16LE(p + 6) + 1;
        if (len > MAX_NAME) {
          out.error = `directory entry at byte ${p} has a name of ${len} bytes (at most 256)`;
          return out;
        }
        if (size - p - 8 < len) {
          out.error = `listing ends inside entry ${i + 1} of ${h.count} of the header at byte ${h.pos}`;
          return out;
        }
        const name = buf.toString('latin1', p + 8, p + 8 + len);
        const inodeNumber = h.inodeNumber + delta;
        h.entries.push({ pos: p, offset, delta, type, name, inodeNumber, ref: h.startBlock * 65536 + offset });
        p += 8 + len;
      }
    }
    return out;
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
    const x = this.xattr;
    if (!x || !x.table) throw new InputError(`${this.path}: xattr index ${index} but the image has no readable xattr table`);
    if (index >= x.count) throw new InputError(`${this.path}: xattr index ${index} is not below the xattr id count ${x.count}`);
    const t = x.table;
    return { ref: Number(t.readBigUInt64LE(index * 16)), count: t.readUInt32LE(index * 16 + 8), size: t.readUInt32LE(index * 16 + 12) };
  }

  /** The extended attributes of xattr id `index`. */
  readXattrs(index: number): Array<[string, Buffer]> {
    const cached = this.xattrCache.get(index);
    if (cached) return cached;
    const set = this.readXattrSet(index);
    this.xattrCache.set(index, set.pairs);
    return set.pairs;
  }

  /**
   * An xattr set with the two sizes a writer may store in its id entry: `listSize` = Σ (full name
   * + NUL + value), what mksquashfs writes; `diskSize` = bytes of its key/value records, what
   * squashfs-tools-ng writes. The kernel does not use the field.
   */
  readXattrSet(index: number): { entry: XattrIdEntry; pairs: Array<[string, Buffer]>; listSize: number; diskSize: number } {
    const x = this.xattr!;
    const e = this.xattrEntry(index);
    const out: Array<[string, Buffer]> = [];
    const where = `${this.path}: xattr id ${index}`;
    try {
      const c = this.cursor(x.kvStart + Math.floor(e.ref / 65536), e.ref % 65536, x.idBlocksStart);
      let size = 0;
      for (let i = 0; i < e.count; i++) {
        const k = c.read(4);
        const type = k.readUInt16LE(0);
        const prefix = XATTR_PREFIXES[type & 0xff];
        if (prefix === undefined || (type & ~0x1ff) !== 0) throw new InputError(`key ${i} has unknown type ${hex(type)}`);
        const name = prefix + c.read(k.readUInt16LE(2)).toString('latin1');
        const vsize = c.read(4).readUInt32LE(0);
        let value = c.read(vsize);
        if (type & 0x100) {
          if (vsize !== 8) throw new InputError(`out-of-line value of key ${i} has size ${vsize} (must be 8)`);
          const ref = Number(value.readBigUInt64LE(0));
          const vc = this.cursor(x.kvStart + Math.floor(ref / 65536), ref % 65536, x.idBlocksStart);
          value = vc.read(vc.read(4).readUInt32LE(0));
        }
        out.push([name, Buffer.from(value)]);
        size += name.length + 1 + value.length;
      }
      return { entry: e, pairs: out, listSize: size, diskSize: c.consumed };
    } catch (err) {
      throw new InputError(`${where}: ${describeSystemError(err)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Entries

  /** The entry for inode `ino` at `path` (no hard-link resolution). */
  toEntry(path: string, ino: RawInode, withXattrs = true): ImageEntry {
    const bt = basicType(ino.type);
    const type = BASIC_TYPE_NAMES[bt] as EntryType;
    const where = `inode #${ino.number} (${display(path)})`;
    const e: ImageEntry = {
      path,
      type,
      mode: ino.mode & 0o7777,
      uid: this.id(ino.uidIndex, `${where}: uid`),
      gid: this.id(ino.gidIndex, `${where}: gid`),
      mtime: ino.mtime,
      size: 0,
      reason: `squashfs image ${this.path}`,
      inodeNumber: ino.number,
      inodeRef: ino.ref,
      squashfsType: ino.type,
      inodeType: ino.type > 7 ? 'ext' : 'basic',
      nlink: ino.nlink,
      fileSize: ino.fileSize,
    };
    if (type === 'file') {
      e.size = ino.fileSize;
      e.blocksStart = ino.blocksStart!;
      e.blockSizes = ino.blockSizes!;
      if (ino.fragment !== NO_FRAGMENT) {
        e.fragment = ino.fragment!;
        e.fragmentOffset = ino.fragmentOffset!;
      }
      if (ino.sparse !== undefined) e.sparse = ino.sparse;
    } else if (type === 'symlink') {
      e.target = ino.target!;
      e.size = ino.target!.length;
    } else if (type === 'char' || type === 'block') {
      e.rdev = ino.rdev!;
    } else if (type === 'dir') {
      e.dir = { startBlock: ino.startBlock!, offset: ino.offset!, parentInode: ino.parentInode!, indexCount: ino.index?.length ?? 0 };
    }
    if (ino.xattr !== NO_XATTR) {
      e.xattrIndex = ino.xattr;
      if (withXattrs) e.xattrs = this.readXattrs(ino.xattr);
    }
    return e;
  }

  /** Children of a directory inode, sorted by raw bytes: [name, inode reference]. */
  children(dir: RawInode, path = '?'): Array<[string, number]> {
    const listing = this.readListing(dir);
    if (listing.error) throw new InputError(`${this.path}: directory ${display(path)}: ${listing.error}`);
    const out: Array<[string, number]> = [];
    let sorted = true;
    for (const h of listing.headers) {
      for (const d of h.entries) {
        if (out.length > 0 && comparePaths(out[out.length - 1]![0], d.name) >= 0) sorted = false;
        out.push([d.name, d.ref]);
      }
    }
    // A valid listing is already in raw byte order (= path order for names without '/').
    if (!sorted) out.sort((a, b) => comparePaths(a[0], b[0]));
    return out;
  }

  /** The root directory inode. */
  rootInode(): RawInode {
    const root = this.readInode(this.superblock.rootInode);
    if (basicType(root.type) !== INODE.dir) throw new InputError(`${this.path}: the root inode (${refString(root.ref)}) is not a directory (type ${root.type})`);
    return root;
  }

  /**
   * Every entry in path order ("/" first, a directory directly followed by its subtree, names in
   * raw byte order). The second and later names of a non-directory inode are type 'hardlink' with
   * `target` = the first name and size 0, as in the plan (model/plan.ts assignHardLinks).
   */
  *walk(): Generator<ImageEntry> {
    const root = this.rootInode();
    yield this.toEntry('/', root);
    const firstName = new Map<number, string>();
    const seenDirs = new Set<number>([root.ref]);
    const stack: Array<{ path: string; children: Array<[string, number]>; i: number }> = [{ path: '/', children: this.children(root, '/'), i: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.i >= top.children.length) {
        stack.pop();
        continue;
      }
      const [name, ref] = top.children[top.i++]!;
      const path = joinPath(top.path, name);
      const ino = this.readInode(ref);
      const e = this.toEntry(path, ino);
      if (e.type === 'dir') {
        if (seenDirs.has(ref)) throw new InputError(`${this.path}: directory ${display(path)} (inode ${refString(ref)}) appears twice in the tree`);
        seenDirs.add(ref);
        yield e;
        stack.push({ path, children: this.children(ino, path), i: 0 });
        continue;
      }
      if (ino.nlink > 1) {
        const first = firstName.get(ino.number);
        if (first === undefined) {
          firstName.set(ino.number, path);
        } else {
          e.type = 'hardlink';
          e.target = first;
          e.size = 0;
        }
      }
      yield e;
    }
  }

  /** The entry at an absolute path, without following symlinks (never type 'hardlink'). */
  lookup(path: string): ImageEntry | undefined {
    let ino = this.rootInode();
    let at = '/';
    for (const name of path.split('/')) {
      if (name === '') continue;
      if (basicType(ino.type) !== INODE.dir) return undefined;
      const child = this.children(ino, at).find(([n]) => n === name);
      if (!child) return undefined;
      at = joinPath(at, name);
      ino = this.readInode(child[1]);
    }
    return this.toEntry(at, ino);
  }

  /** The target of a symlink entry. */
  readlink(entry: ImageEntry): string {
    if (basicType(entry.squashfsType) !== INODE.symlink) throw new InputError(`${this.path}: ${display(entry.path)} is not a symlink`);
    return entry.target!;
  }

  // -------------------------------------------------------------------------------------------
  // Data

  /** The fragment table entry `index`: position, size word. */
  fragmentEntry(index: number): { start: number; sizeWord: number } {
    const t = this.fragmentTable;
    if (!t) throw new InputError(`${this.path}: fragment ${index} but the fragment table cannot be read`);
    if (index >= this.superblock.fragmentCount) throw new InputError(`${this.path}: fragment index ${index} is not below fragment_count ${this.superblock.fragmentCount}`);
    return { start: Number(t.readBigUInt64LE(index * 16)), sizeWord: t.readUInt32LE(index * 16 + 8) };
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
    if (word >>> 25 !== 0) throw new InputError(`${this.path}: ${what}: size word ${hex(word)} has bits 25..31 set`);
    const size = word & 0xffffff;
    const bs = this.superblock.blockSize;
    if (size > bs) throw new InputError(`${this.path}: ${what}: stored size ${size} is larger than the block size ${bs}`);
    if (pos + size > this.superblock.bytesUsed) throw new InputError(`${this.path}: ${what} at ${hex(pos)} (${size} bytes) is beyond bytes_used`);
    const raw = this.pread(pos, size);
    if (word & DATA_UNCOMPRESSED) return raw;
    try {
      return this.decoder.decompress(raw, bs);
    } catch (err) {
      throw new InputError(`${this.path}: ${what} at ${hex(pos)} does not decompress (${this.superblock.compressor}: ${describeSystemError(err)})`);
    }
  }

  /** The content of a file (or of the file a hard link names), one block at a time. */
  *readBlocks(entry: ImageEntry): Generator<Buffer> {
    if (basicType(entry.squashfsType) !== INODE.file) throw new InputError(`${this.path}: ${display(entry.path)} is not a regular file`);
    const bs = this.superblock.blockSize;
    const size = entry.fileSize;
    const words = entry.blockSizes!;
    const n = words.length;
    const hasFragment = entry.fragment !== undefined;
    let pos = entry.blocksStart!;
    for (let i = 0; i < n; i++) {
      const want = hasFragment || i + 1 < n ? bs : size - i * bs;
      const word = words[i]!;
      const what = `${display(entry.path)}: block ${i}`;
      if (word === 0) {
        yield Buffer.alloc(want);
        continue;
      }
      const data = this.readDataBlock(pos, word, what);
      pos += word & 0xffffff;
      if (data.length !== want) throw new InputError(`${this.path}: ${what} holds ${data.length} bytes, expected ${want}`);
      yield data;
    }
    if (hasFragment) {
      const tail = size - n * bs;
      const block = this.fragmentBlock(entry.fragment!);
      const off = entry.fragmentOffset!;
      if (tail <= 0 || off + tail > block.length) {
        throw new InputError(`${this.path}: ${display(entry.path)}: tail of ${tail} bytes at offset ${off} is outside fragment block ${entry.fragment} (${block.length} bytes)`);
      }
      yield block.subarray(off, off + tail);
    }
  }

  /** The whole content of a file. */
  readFile(entry: ImageEntry): Buffer {
    return Buffer.concat([...this.readBlocks(entry)]);
  }
}

/** Blocks in a file's block list: whole blocks, plus the tail when it is not in a fragment. */
export function blockCount(fileSize: number, blockSize: number, hasFragment: boolean): number {
  return hasFragment ? Math.floor(fileSize / blockSize) : Math.ceil(fileSize / blockSize);
}

/** Sequential reads of a metadata stream, across block boundaries. */
export class MetaCursor {
  /** Bytes read so far. */
  consumed = 0;

  constructor(
    private readonly image: SquashfsImage,
    /** Absolute position of the current block. */
    public block: number,
    /** Offset in the current block's uncompressed data. */
    public offset: number,
    private readonly limit: number,
  ) {}

  read(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    for (;;) {
      const b = this.image.metaBlock(this.block, this.limit);
      if (this.offset > b.data.length) throw new InputError(`offset ${this.offset} is beyond the ${b.data.length} bytes of the metadata block at ${hex(this.block)}`);
      const take = Math.min(need, b.data.length - this.offset);
      if (take > 0) parts.push(b.data.subarray(this.offset, this.offset + take));
      this.offset += take;
      need -= take;
      this.consumed += take;
      if (this.offset === b.data.length && b.next < this.limit) {
        this.block = b.next;
        this.offset = 0;
      } else if (need > 0) {
        throw new InputError(`read of ${n} bytes runs past the end of the table at ${hex(this.limit)}`);
      }
      if (need === 0) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** At the end of the last block before `limit` (false when the current block is unreadable). */
  atEnd(): boolean {
    try {
      const b = this.image.metaBlock(this.block, this.limit);
      return this.offset === b.data.length && b.next >= this.limit;
    } catch {
      return false;
    }
  }
}

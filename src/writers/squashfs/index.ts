// writers/squashfs: an image tree as a SquashFS 4.0 image that the Linux kernel mounts.
// Layout: superblock | compression options | data and fragment blocks | inode table | directory
// table | fragment table | export table | id table | xattr table | padding to 4 KiB. The data area
// is streamed (data.ts); the metadata is built in memory (a few dozen bytes per entry) and written
// at the end, then the superblock at offset 0.
import * as fs from 'node:fs';
import { display } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, devNumbers, entryName } from '../../model/entry.js';
import { BuildError, ShrinkwrapError, describeSystemError } from '../../model/errors.js';
import type { CodecName } from '../../codecs/index.js';
import { CompressPool } from '../../codecs/pool.js';
import type { FileLayout } from './data.js';
import { DataFeed } from './feed.js';
import { INODE, MAX_DIR_COUNT, MAX_NAME, MAX_SYMLINK, META_UNCOMPRESSED, SUPERBLOCK_SIZE } from '../../sources/squashfs/format.js';
import { COMPRESSION_ID, FLAG, NONE32, NONE64, PAD_TO, encodeDev, encodeSuperblock } from './format.js';
import { MetadataWriter } from './metadata.js';
import { compressionOptions } from './options.js';
import { lookupTable } from './tables.js';
import { XattrTable, xattrPrefix } from './xattrs.js';

export interface SquashfsOptions {
  compression: 'none' | CodecName;
  level: number;
  blockSize: number;
  /** Superblock time (SOURCE_DATE_EPOCH). */
  mkfsTime: number;
  /** Write the NFS export table (as mksquashfs does by default). */
  exportTable: boolean;
  dedup: boolean;
  /** Compression threads; 0 compresses on the main thread. */
  threads?: number;
  /** Bytes written between flushes to disk started while writing (default 64 MiB; tests set less). */
  syncEvery?: number;
  /** Called as file contents are read: bytes and files so far. */
  onProgress?: (bytes: number, files: number) => void;
  /** The compression pool, started earlier by startSquashfsPool() with the same options (its
   *  workers boot while the caller selects); writeSquashfs closes it. */
  pool?: Promise<CompressPool>;
  /** The output, opened earlier by openSquashfs() with the same options (its data feed may have
   *  taken files already); writeSquashfs finishes and closes it. */
  output?: SquashfsOutput;
}

export interface SquashfsResult {
  bytes: number;
  inodes: number;
  files: number;
  bytesIn: number;
  dataBytes: number;
  fragments: number;
  dedupFiles: number;
  dedupBytes: number;
  sparseBytes: number;
}

const BASIC_TYPE: Record<Entry['type'], number> = {
  dir: INODE.dir,
  file: INODE.file,
  hardlink: INODE.file,
  symlink: INODE.symlink,
  block: INODE.block,
  char: INODE.char,
  fifo: INODE.fifo,
  socket: INODE.socket,
};

/**
 * The image tree over the entries (path order, "/" first), one slot per entry: typed arrays
 * instead of an object per name, because a release has millions of names and every byte per name
 * is megabytes. A hard link's slot points at the slot that owns its inode.
 */
class Tree {
  /** Parent directory's slot; -1 for the root. */
  readonly parent: Int32Array;
  /** First child (children are in name order), -1 if none. */
  readonly firstChild: Int32Array;
  readonly nextSibling: Int32Array;
  /** The slot that owns this name's inode: itself, or a hard link's first name. */
  readonly owner: Int32Array;
  /** Inode numbers and link counts (meaningful on owners). */
  readonly number: Uint32Array;
  readonly nlink: Uint32Array;
  /** The inode's reference, block * 65536 + offset; -1 until it is written. */
  readonly ref: Float64Array;
  /** Slots in post-order: a directory's children (in name order) before the directory. */
  readonly order: Int32Array;

  constructor(readonly entries: readonly Entry[]) {
    const n = entries.length;
    if (entries[0]?.path !== '/' || entries[0].type !== 'dir') throw new Error('squashfs: the image tree must start with the root directory');
    this.parent = new Int32Array(n).fill(-1);
    this.firstChild = new Int32Array(n).fill(-1);
    this.nextSibling = new Int32Array(n).fill(-1);
    this.owner = new Int32Array(n);
    this.number = new Uint32Array(n);
    this.nlink = new Uint32Array(n).fill(1);
    this.ref = new Float64Array(n).fill(-1);
    // Only the first names that hard links point at need finding by path.
    const linked = new Set<string>();
    for (const e of entries) if (e.type === 'hardlink') linked.add(e.target!);
    const firstNames = new Map<string, number>();
    // The open directories from the root down to the previous entry's: in path order a directory
    // is followed by its whole subtree, so an entry's parent is on this stack.
    const open: number[] = [0];
    const openPaths: string[] = ['/'];
    /** Each open directory's last child so far, -1 for none yet. */
    const last: number[] = [-1];
    this.owner[0] = 0;
    for (let i = 1; i < n; i++) {
      const e = entries[i]!;
      const path = e.path;
      const slash = path.lastIndexOf('/');
      const parentLen = slash === 0 ? 1 : slash;
      while (open.length > 0) {
        const top = openPaths[openPaths.length - 1]!;
        if (top.length === parentLen && path.startsWith(top)) break;
        open.pop();
        openPaths.pop();
        last.pop();
      }
      if (open.length === 0) throw new Error(`squashfs: ${display(path)} has no parent directory in the tree`);
      if (path.length - slash - 1 > MAX_NAME) throw new BuildError(`${display(path)}: name longer than ${MAX_NAME} bytes`);
      const p = open[open.length - 1]!;
      this.parent[i] = p;
      // Path order is byte order of names within a directory.
      const prev = last[last.length - 1]!;
      if (prev < 0) this.firstChild[p] = i;
      else this.nextSibling[prev] = i;
      last[last.length - 1] = i;
      this.owner[i] = i;
      if (e.type === 'dir') {
        open.push(i);
        openPaths.push(path);
        last.push(-1);
      }
      if (linked.has(path)) firstNames.set(path, i);
      if (e.type === 'hardlink') {
        const t = firstNames.get(e.target!);
        const te = t === undefined ? undefined : entries[t]!;
        if (t === undefined || te!.type === 'dir' || te!.type === 'hardlink') {
          throw new Error(`squashfs: hard link ${display(path)} -> ${display(e.target!)} has no target before it`);
        }
        this.owner[i] = t;
        this.nlink[t]!++;
      }
    }
    this.order = this.postOrder();
  }

  private postOrder(): Int32Array {
    const out = new Int32Array(this.entries.length);
    let k = 0;
    // Each stacked directory with the child to visit next.
    const dirs: number[] = [0];
    const next: number[] = [this.firstChild[0]!];
    while (dirs.length > 0) {
      const top = dirs.length - 1;
      const c = next[top]!;
      if (c >= 0) {
        next[top] = this.nextSibling[c]!;
        if (this.entries[c]!.type === 'dir') {
          dirs.push(c);
          next.push(this.firstChild[c]!);
        } else out[k++] = c;
      } else {
        out[k++] = dirs.pop()!;
        next.pop();
      }
    }
    return out;
  }

  /** The block of an inode's reference (the metadata chunk's offset in the inode table). */
  block(slot: number): number {
    return Math.floor(this.ref[slot]! / 65536);
  }
}

/**
 * The data writer starts a flush to disk (fdatasync, on libuv's pool) after each 64 MiB written,
 * so that the disk writes the image while it is being compressed. Without it all of the image
 * was flushed by the fsync before the rename: 0.25 s for 500 MB on a local disk, and minutes for
 * a large image on a parallel file system.
 */
const SYNC_EVERY = 64 << 20;

/** Blocks (and file markers) in flight between reading and writing. */
function dataWindow(threads: number | undefined): number {
  return 4 * Math.max(1, threads ?? 4) + 8;
}

/**
 * The compression pool writeSquashfs() needs for these options. Starting it before the entries
 * are known lets the workers boot (~50 ms) while the caller selects; a rejection is left to
 * whoever awaits it (writeSquashfs), and the caller closes a pool it ends up not using.
 */
export function startSquashfsPool(opts: Pick<SquashfsOptions, 'compression' | 'level' | 'blockSize' | 'threads'>): Promise<CompressPool> {
  // The same codec compresses 8 KiB metadata chunks, and the kernel sizes its windows as
  // max(block size, 8 KiB) too, so a 4 KiB image still gets an 8 KiB codec.
  const codec = opts.compression === 'none' ? null : { name: opts.compression, level: opts.level, blockSize: Math.max(opts.blockSize, 8192) };
  // Shared slots for the blocks in flight: the data writer's window, a whole file's blocks (up to
  // 4 MiB) and the fragment being filled; more fall back to buffers of their own.
  const pool = CompressPool.create(codec, opts.threads, dataWindow(opts.threads) + 40);
  pool.catch(() => {}); // not unhandled while nobody awaits it yet
  return pool;
}

/**
 * An image being written: the output is open, the compression options block is in place, and the
 * data feed takes files. openSquashfs() lets a caller start the data area before it knows all the
 * entries (the CLI offers the selection walk's files as it finds them); writeSquashfs() finishes
 * the image and closes it.
 */
export interface SquashfsOutput {
  readonly fd: number;
  readonly feed: DataFeed;
  readonly pool: Promise<CompressPool>;
  /** Stop feeding, wait for writes in flight, close the pool and the file (idempotent). */
  close(): Promise<void>;
}

export function openSquashfs(outPath: string, opts: Pick<SquashfsOptions, 'compression' | 'level' | 'blockSize' | 'dedup' | 'threads' | 'pool' | 'syncEvery'>): SquashfsOutput {
  const pool = opts.pool ?? startSquashfsPool(opts);
  let fd = -1;
  let pos = SUPERBLOCK_SIZE;
  try {
    fd = fs.openSync(outPath, 'w', 0o644);
    const options = opts.compression === 'none' ? null : compressionOptions(opts.compression, opts.level, opts.blockSize);
    if (options) {
      // The options block is one metadata block that is always stored uncompressed.
      const block = Buffer.alloc(2 + options.length);
      block.writeUInt16LE(options.length | META_UNCOMPRESSED, 0);
      options.copy(block, 2);
      fs.writeSync(fd, block, 0, block.length, pos);
      pos += block.length;
    }
  } catch (err) {
    if (fd >= 0) fs.closeSync(fd);
    void pool.then((p) => p.close(), () => {});
    throw new BuildError(`cannot write ${outPath}: ${describeSystemError(err)}`);
  }
  const feed = new DataFeed(fd, pos, pool, { blockSize: opts.blockSize, dedup: opts.dedup, window: dataWindow(opts.threads), syncEvery: opts.syncEvery ?? SYNC_EVERY });
  let closing: Promise<void> | null = null;
  const close = async () => {
    await feed.abandon();
    fs.closeSync(fd);
    await (await pool.catch(() => null))?.close();
  };
  return { fd, feed, pool, close: () => (closing ??= close()) };
}

export async function writeSquashfs(entries: readonly Entry[], outPath: string, opts: SquashfsOptions, diag: Diagnostics): Promise<SquashfsResult> {
  const out = opts.output ?? openSquashfs(outPath, opts);
  try {
    return await write(out, new Tree(entries), opts, diag);
  } catch (err) {
    // A system error here is about the output (disk full, read-only): say so in one line.
    if (!(err instanceof ShrinkwrapError) && typeof (err as NodeJS.ErrnoException).code === 'string') {
      throw new BuildError(`cannot write ${outPath}: ${describeSystemError(err)}`);
    }
    throw err;
  } finally {
    await out.close();
  }
}

async function write(out: SquashfsOutput, tree: Tree, opts: SquashfsOptions, diag: Diagnostics): Promise<SquashfsResult> {
  const entries = tree.entries;
  const fd = out.fd;
  const pool = await out.pool;
  const compress = (b: Buffer) => pool.compressLocal(b);

  // Data: what the feed has taken already (the selection walk's files), then every other file in
  // path order. `slotOf`: each entry's file slot in the data writer's layout, -1 for non-files.
  const feed = out.feed;
  feed.onProgress = opts.onProgress;
  const slotOf = new Int32Array(entries.length);
  for (let i = 0; i < entries.length; i++) slotOf[i] = feed.place(entries[i]!);
  const { end, data } = await feed.finish();
  let pos = end;

  // Ids in order of first appearance; xattr sets likewise.
  const ids = new Map<number, number>();
  const idOf = (v: number) => {
    let i = ids.get(v);
    if (i === undefined) {
      i = ids.size;
      // id_count is a u16: at most 65535 distinct values.
      if (i >= 0xffff) throw new BuildError('more than 65535 distinct uids and gids: SquashFS cannot store them (try --owner)');
      ids.set(v, i);
    }
    return i;
  };
  for (const e of entries) {
    idOf(e.uid);
    idOf(e.gid);
  }
  const xattrs = new XattrTable();
  const xattrIdOf = (e: Entry) => {
    const storable = e.xattrs?.filter(([k]) => {
      if (!xattrPrefix(k)) {
        diag.warnPath('xattr-dropped', e.path, `extended attribute ${display(k)} dropped (SquashFS stores user., trusted. and security. only)`);
        return false;
      }
      // Linux allows user.* only on regular files and directories; unsquashfs -d fails on others.
      if (k.startsWith('user.') && e.type !== 'file' && e.type !== 'dir') {
        diag.warnPath('xattr-dropped', e.path, `extended attribute ${display(k)} dropped (Linux allows user. attributes only on files and directories)`);
        return false;
      }
      return true;
    });
    return xattrs.idOf(storable);
  };

  // Inode numbers in post-order: a directory's children first, the root last.
  let next = 1;
  for (const i of tree.order) {
    const o = tree.owner[i]!;
    if (tree.number[o] === 0) tree.number[o] = next++;
  }
  const inodeCount = next - 1;

  const inodeTable = new MetadataWriter(compress);
  const dirTable = new MetadataWriter(compress);
  const enc = new InodeEncoder(tree, data.layout, slotOf, inodeCount);
  for (const i of tree.order) {
    const o = tree.owner[i]!;
    if (tree.ref[o]! >= 0) continue;
    const e = entries[o]!;
    const listing = e.type === 'dir' ? writeListing(tree, o, dirTable, enc) : null;
    const at = inodeTable.position();
    tree.ref[o] = at.block * 65536 + at.offset;
    inodeTable.write(enc.inode(o, listing, idOf(e.uid), idOf(e.gid), xattrIdOf(e)));
  }

  // Tables, each starting where the previous ends: the kernel insists on exactly that.
  const inodeStart = pos;
  const inodeBytes = inodeTable.finish();
  const dirStart = inodeStart + inodeBytes.length;
  const dirBytes = dirTable.finish();
  pos = dirStart + dirBytes.length;
  const parts: Buffer[] = [inodeBytes, dirBytes];

  const fragEntries = Buffer.alloc(16 * data.fragments.length);
  data.fragments.forEach((f, i) => {
    fragEntries.writeBigUInt64LE(BigInt(f.start), 16 * i);
    fragEntries.writeUInt32LE(f.sizeWord, 16 * i + 8);
  });
  // With no fragments, point at where the table would be (mksquashfs does; old unsquashfs rejects all-ones).
  let fragmentTableStart = BigInt(pos);
  if (data.fragments.length > 0) {
    const t = lookupTable(fragEntries, pos, compress);
    parts.push(t.bytes);
    fragmentTableStart = BigInt(t.indexStart);
    pos += t.bytes.length;
  }

  let lookupTableStart = NONE64;
  if (opts.exportTable) {
    // Each inode's reference at its number's place (owners only: a hard link has no inode of its own).
    const refs = Buffer.alloc(8 * inodeCount);
    for (let i = 0; i < entries.length; i++) if (tree.owner[i] === i) writeU64(refs, tree.ref[i]!, 8 * (tree.number[i]! - 1));
    const t = lookupTable(refs, pos, compress);
    parts.push(t.bytes);
    lookupTableStart = BigInt(t.indexStart);
    pos += t.bytes.length;
  }

  const idEntries = Buffer.alloc(4 * ids.size);
  for (const [v, i] of ids) idEntries.writeUInt32LE(v >>> 0, 4 * i);
  const idTable = lookupTable(idEntries, pos, compress);
  parts.push(idTable.bytes);
  pos += idTable.bytes.length;

  let xattrIdTableStart = NONE64;
  if (xattrs.count > 0) {
    const t = xattrs.place(pos, compress);
    parts.push(t.bytes);
    xattrIdTableStart = BigInt(t.headerStart);
    pos += t.bytes.length;
  }
  const tables = Buffer.concat(parts);
  fs.writeSync(fd, tables, 0, tables.length, inodeStart);
  const bytesUsed = pos;
  const padded = Math.ceil(bytesUsed / PAD_TO) * PAD_TO;
  // Cut what a rewound duplicate may have left beyond the end, then pad with zeros.
  fs.ftruncateSync(fd, bytesUsed);
  fs.ftruncateSync(fd, padded);

  const none = opts.compression === 'none';
  let flags = FLAG.alwaysFragments;
  if (opts.dedup) flags |= FLAG.duplicates;
  if (opts.exportTable) flags |= FLAG.exportable;
  if (xattrs.count === 0) flags |= FLAG.noXattrs;
  if (data.fragments.length === 0) flags |= FLAG.noFragments;
  if (!none) flags |= FLAG.compressorOptions;
  if (none) flags |= FLAG.uncompressedInodes | FLAG.uncompressedData | FLAG.uncompressedFragments | FLAG.uncompressedXattrs | FLAG.uncompressedIds;
  const sb = encodeSuperblock({
    inodeCount,
    mkfsTime: clampU32(opts.mkfsTime),
    blockSize: opts.blockSize,
    fragmentCount: data.fragments.length,
    compression: none ? COMPRESSION_ID.gzip : COMPRESSION_ID[opts.compression as keyof typeof COMPRESSION_ID],
    flags,
    idCount: ids.size,
    rootInode: BigInt(tree.ref[0]!),
    bytesUsed: BigInt(bytesUsed),
    idTableStart: BigInt(idTable.indexStart),
    xattrIdTableStart,
    inodeTableStart: BigInt(inodeStart),
    directoryTableStart: BigInt(dirStart),
    fragmentTableStart,
    lookupTableStart,
  });
  fs.writeSync(fd, sb, 0, sb.length, 0);
  // No fsync here: the caller flushes while it reads the image back for its digest.

  const s = data.stats;
  return {
    bytes: padded,
    inodes: inodeCount,
    files: s.files,
    bytesIn: s.bytesIn,
    dataBytes: s.bytesOut,
    fragments: data.fragments.length,
    dedupFiles: s.dedupFiles,
    dedupBytes: s.dedupBytes,
    sparseBytes: s.sparseBytes,
  };
}

function clampU32(n: number): number {
  return Math.min(Math.max(Math.floor(n), 0), 0xffffffff);
}

/** A u64 from a number below 2^53. */
function writeU64(buf: Buffer, v: number, at: number): void {
  buf.writeUInt32LE(v % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(v / 2 ** 32), at + 4);
}

interface Listing {
  block: number;
  offset: number;
  /** Listing bytes + 3 (the kernel's "." and ".."). */
  fileSize: number;
  index: Array<{ index: number; block: number; name: string }>;
}

/**
 * A directory's listing: runs of entries under 12-byte headers. A new run starts at 256 entries,
 * when the child's inode is in another inode-table block, or when its inode number is too far
 * from the run's base for an s16 delta. Every run after the first gets a directory index entry.
 */
function writeListing(t: Tree, dir: number, table: MetadataWriter, enc: InodeEncoder): Listing {
  const start = table.position();
  const startLogical = table.logicalSize;
  const index: Listing['index'] = [];
  let c = t.firstChild[dir]!;
  while (c >= 0) {
    const first = t.owner[c]!;
    const block = t.block(first);
    const base = t.number[first]!;
    let n = 0;
    for (let d = c; d >= 0 && n < MAX_DIR_COUNT; d = t.nextSibling[d]!) {
      const o = t.owner[d]!;
      const delta = t.number[o]! - base;
      if (t.block(o) !== block || delta < -32768 || delta > 32767) break;
      n++;
    }
    const here = table.position();
    if (c !== t.firstChild[dir]) index.push({ index: table.logicalSize - startLogical, block: here.block, name: entryName(t.entries[c]!) });
    const header = enc.scratch(12);
    header.writeUInt32LE(n - 1, 0);
    header.writeUInt32LE(block, 4);
    header.writeUInt32LE(base, 8);
    table.write(header);
    for (let k = 0; k < n; k++, c = t.nextSibling[c]!) {
      const o = t.owner[c]!;
      const name = entryName(t.entries[c]!);
      const ent = enc.scratch(8 + name.length);
      ent.writeUInt16LE(t.ref[o]! % 65536, 0);
      ent.writeInt16LE(t.number[o]! - base, 2);
      ent.writeUInt16LE(BASIC_TYPE[t.entries[o]!.type], 4);
      ent.writeUInt16LE(name.length - 1, 6);
      ent.write(name, 8, 'latin1');
      table.write(ent);
    }
  }
  return { block: start.block, offset: start.offset, fileSize: table.logicalSize - startLogical + 3, index };
}

/**
 * Inodes, encoded into one reused buffer (the metadata writer copies them out at once): an inode
 * is a few dozen bytes, and millions of small Buffers cost more than the encoding.
 */
class InodeEncoder {
  private buf = Buffer.alloc(1 << 16);

  constructor(
    private readonly t: Tree,
    private readonly layout: FileLayout,
    /** Each entry's slot in `layout`. */
    private readonly slotOf: Int32Array,
    private readonly inodeCount: number,
  ) {}

  /** The shared buffer's first `n` bytes, zeroed (valid until the next call). */
  scratch(n: number): Buffer {
    if (n > this.buf.length) this.buf = Buffer.alloc(Math.max(n, 2 * this.buf.length));
    return this.buf.fill(0, 0, n).subarray(0, n);
  }

  /** The inode of owner slot `o`: 16-byte common header, then the type's fields. */
  inode(o: number, listing: Listing | null, uidIdx: number, gidIdx: number, xattr: number): Buffer {
    const t = this.t;
    const e = t.entries[o]!;
    const hasX = xattr !== NONE32;
    const head = (type: number, restBytes: number): Buffer => {
      const h = this.scratch(16 + restBytes);
      h.writeUInt16LE(type, 0);
      h.writeUInt16LE(e.mode & 0o7777, 2);
      h.writeUInt16LE(uidIdx, 4);
      h.writeUInt16LE(gidIdx, 6);
      h.writeUInt32LE(clampU32(e.mtime), 8);
      h.writeUInt32LE(t.number[o]!, 12);
      return h;
    };
    const nlink = t.nlink[o]!;
    switch (e.type) {
      case 'dir': {
        const l = listing!;
        let subdirs = 0;
        for (let c = t.firstChild[o]!; c >= 0; c = t.nextSibling[c]!) if (t.entries[c]!.type === 'dir') subdirs++;
        const parent = t.parent[o]! >= 0 ? t.number[t.parent[o]!]! : this.inodeCount + 1;
        if (l.fileSize < 0x10000 && l.index.length === 0 && !hasX && l.block <= 0xffffffff) {
          const b = head(INODE.dir, 16);
          b.writeUInt32LE(l.block, 16);
          b.writeUInt32LE(2 + subdirs, 20);
          b.writeUInt16LE(l.fileSize, 24);
          b.writeUInt16LE(l.offset, 26);
          b.writeUInt32LE(parent, 28);
          return b;
        }
        const names = l.index.map((x) => Buffer.from(x.name, 'latin1'));
        const b = head(INODE.ldir, 24 + names.reduce((sum, nm) => sum + 12 + nm.length, 0));
        b.writeUInt32LE(2 + subdirs, 16);
        b.writeUInt32LE(l.fileSize, 20);
        b.writeUInt32LE(l.block, 24);
        b.writeUInt32LE(parent, 28);
        b.writeUInt16LE(l.index.length, 32);
        b.writeUInt16LE(l.offset, 34);
        b.writeUInt32LE(xattr, 36);
        let at = 40;
        l.index.forEach((x, k) => {
          b.writeUInt32LE(x.index, at);
          b.writeUInt32LE(x.block, at + 4);
          b.writeUInt32LE(names[k]!.length - 1, at + 8);
          names[k]!.copy(b, at + 12);
          at += 12 + names[k]!.length;
        });
        return b;
      }
      case 'file': {
        const layout = this.layout;
        const slot = this.slotOf[o]!;
        const blocks = layout.blocksOf(slot);
        const size = e.size;
        const start = layout.blocksStart[slot]!;
        const fragment = layout.fragment[slot]!;
        const fragOffset = fragment === NONE32 ? 0 : layout.fragOffset[slot]!;
        const sparseBytes = layout.sparse.get(slot) ?? 0;
        const sparse = sparseBytes > 0 ? Math.min(sparseBytes, size - 1) : 0;
        if (nlink === 1 && size < 2 ** 32 && start < 2 ** 32 && sparse === 0 && !hasX) {
          const b = head(INODE.file, 16 + 4 * blocks.length);
          b.writeUInt32LE(start, 16);
          b.writeUInt32LE(fragment, 20);
          b.writeUInt32LE(fragOffset, 24);
          b.writeUInt32LE(size, 28);
          for (let k = 0; k < blocks.length; k++) b.writeUInt32LE(blocks[k]!, 32 + 4 * k);
          return b;
        }
        const b = head(INODE.lfile, 40 + 4 * blocks.length);
        writeU64(b, start, 16);
        writeU64(b, size, 24);
        writeU64(b, sparse, 32);
        b.writeUInt32LE(nlink, 40);
        b.writeUInt32LE(fragment, 44);
        b.writeUInt32LE(fragOffset, 48);
        b.writeUInt32LE(xattr, 52);
        for (let k = 0; k < blocks.length; k++) b.writeUInt32LE(blocks[k]!, 56 + 4 * k);
        return b;
      }
      case 'symlink': {
        const target = e.target!;
        if (target.length === 0 || target.length > MAX_SYMLINK) {
          throw new BuildError(`${display(e.path)}: symlink target of ${target.length} bytes (SquashFS readers take 1 to ${MAX_SYMLINK})`);
        }
        const b = head(hasX ? INODE.lsymlink : INODE.symlink, 8 + target.length + (hasX ? 4 : 0));
        b.writeUInt32LE(nlink, 16);
        b.writeUInt32LE(target.length, 20);
        b.write(target, 24, 'latin1');
        if (hasX) b.writeUInt32LE(xattr, 24 + target.length);
        return b;
      }
      case 'char':
      case 'block': {
        const [major, minor] = devNumbers(e.rdev ?? 0);
        const basic = e.type === 'char' ? INODE.char : INODE.block;
        const b = head(hasX ? basic + 7 : basic, hasX ? 12 : 8);
        b.writeUInt32LE(nlink, 16);
        b.writeUInt32LE(encodeDev(major, minor), 20);
        if (hasX) b.writeUInt32LE(xattr, 24);
        return b;
      }
      case 'fifo':
      case 'socket': {
        const basic = e.type === 'fifo' ? INODE.fifo : INODE.socket;
        const b = head(hasX ? basic + 7 : basic, hasX ? 8 : 4);
        b.writeUInt32LE(nlink, 16);
        if (hasX) b.writeUInt32LE(xattr, 20);
        return b;
      }
      case 'hardlink':
        throw new Error('squashfs: a hard link has no inode of its own');
    }
  }
}

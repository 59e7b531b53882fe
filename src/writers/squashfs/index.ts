// writers/squashfs: an image tree as a SquashFS 4.0 image that the Linux kernel mounts.
// Layout: superblock | compression options | data and fragment blocks | inode table | directory
// table | fragment table | export table | id table | xattr table | padding to 4 KiB. The data area
// is streamed (data.ts); the metadata is built in memory (a few dozen bytes per entry) and written
// at the end, then the superblock at offset 0.
import * as fs from 'node:fs';
import type { Diagnostics } from '../../model/diagnostics.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, InputError, ShrinkwrapError, describeSystemError } from '../../model/errors.js';
import type { CodecName } from '../../codecs/index.js';
import { CompressPool } from '../../codecs/pool.js';
import { PAD_TO, SUPERBLOCK_SIZE, blockSizeProblem, encodeMetaHeader, encodeSuperblock, initSuperblock, makeRef } from '../../formats/squashfs/index.js';
import { writeListing } from './directories.js';
import { DataFeed } from './feed.js';
import { IdTable } from './ids.js';
import { InodeEncoder, clampU32 } from './inodes.js';
import { type Compress, MetadataWriter } from './metadata.js';
import { compressionOptions } from './options.js';
import { compressorId, superblockFlags } from './superblock.js';
import { exportEntries, placeTables } from './tables.js';
import { Tree } from './tree.js';
import { XattrTable, storableXattrs } from './xattrs.js';

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
  // The format's rule, for every caller (the CLI says it first, in its own words).
  const bad = blockSizeProblem(opts.blockSize);
  if (bad) throw new InputError(`squashfs block size ${opts.blockSize}: ${bad.replace(/^superblock: block_size \d+ /, '')}`);
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
  /** Where the image starts in the file: 0, or a SIF container's partition offset. */
  readonly origin: number;
  readonly feed: DataFeed;
  readonly pool: Promise<CompressPool>;
  /** Stop feeding, wait for writes in flight, close the pool and the file (idempotent). */
  close(): Promise<void>;
}

/** An image written inside a file the caller opened and closes (a SIF container), from `origin` on. */
export interface SquashfsWithin {
  fd: number;
  origin: number;
}

export function openSquashfs(
  outPath: string,
  opts: Pick<SquashfsOptions, 'compression' | 'level' | 'blockSize' | 'dedup' | 'threads' | 'pool' | 'syncEvery'> & { within?: SquashfsWithin },
): SquashfsOutput {
  const pool = opts.pool ?? startSquashfsPool(opts);
  const within = opts.within;
  const origin = within?.origin ?? 0;
  let fd = -1;
  let pos = SUPERBLOCK_SIZE;
  try {
    fd = within ? within.fd : fs.openSync(outPath, 'w', 0o644);
    const options = opts.compression === 'none' ? null : compressionOptions(opts.compression, opts.level, opts.blockSize);
    if (options) {
      // The options block is one metadata block that is always stored uncompressed.
      const block = Buffer.concat([encodeMetaHeader(options.length, false), options]);
      fs.writeSync(fd, block, 0, block.length, origin + pos);
      pos += block.length;
    }
  } catch (err) {
    if (fd >= 0 && !within) fs.closeSync(fd);
    void pool.then((p) => p.close(), () => {});
    throw new BuildError(`cannot write ${outPath}: ${describeSystemError(err)}`);
  }
  const feed = new DataFeed(fd, pos, pool, { blockSize: opts.blockSize, dedup: opts.dedup, window: dataWindow(opts.threads), syncEvery: opts.syncEvery ?? SYNC_EVERY, origin, compressor: opts.compression === 'none' ? null : opts.compression });
  let closing: Promise<void> | null = null;
  const close = async () => {
    await feed.abandon();
    if (!within) fs.closeSync(fd);
    await (await pool.catch(() => null))?.close();
  };
  return { fd, origin, feed, pool, close: () => (closing ??= close()) };
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
  const pool = await out.pool;
  const compress = (b: Buffer) => pool.compressLocal(b);
  const { end, data, slotOf } = await finishData(out, tree.entries, opts);
  const ids = IdTable.of(tree.entries);
  const xattrs = new XattrTable();
  const inodeCount = tree.numberInodes();
  const enc = new InodeEncoder(tree, data.layout, slotOf, inodeCount);
  const { inodes, directories } = writeInodes(tree, enc, ids, (e) => xattrs.idOf(storableXattrs(e, diag)), compress);
  const exports = opts.exportTable ? exportEntries(tree, inodeCount) : null;
  const t = placeTables(end, { inodes, directories, fragments: data.fragments, exports, ids: ids.entries(), xattrs }, compress);
  fs.writeSync(out.fd, t.bytes, 0, t.bytes.length, out.origin + t.inodeTableStart);
  const padded = padImage(out.fd, out.origin, t.bytesUsed);

  const facts = { compression: opts.compression, dedup: opts.dedup, exportTable: opts.exportTable, xattrIds: xattrs.count, fragments: data.fragments.length };
  const { bytes: _, ...starts } = t;
  const sb = encodeSuperblock(
    initSuperblock({
      inodeCount,
      mkfsTime: clampU32(opts.mkfsTime),
      blockSize: opts.blockSize,
      fragmentCount: data.fragments.length,
      compression: compressorId(opts.compression),
      flags: superblockFlags(facts),
      idCount: ids.count,
      rootInode: tree.ref[0]!,
      ...starts,
    }),
  );
  fs.writeSync(out.fd, sb, 0, sb.length, out.origin);
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

/**
 * Finish the data area: what the feed has taken already (the selection walk's files), then every
 * other file in path order. `slotOf`: each entry's file slot in the data writer's layout, -1 for
 * non-files.
 */
async function finishData(out: SquashfsOutput, entries: readonly Entry[], opts: SquashfsOptions) {
  const feed = out.feed;
  feed.onProgress = opts.onProgress;
  const slotOf = new Int32Array(entries.length);
  for (let i = 0; i < entries.length; i++) slotOf[i] = feed.place(entries[i]!);
  const { end, data } = await feed.finish();
  return { end, data, slotOf };
}

/** The inode and directory tables: inodes in post-order, each directory's listing just before its inode. */
function writeInodes(tree: Tree, enc: InodeEncoder, ids: IdTable, xattrIdOf: (e: Entry) => number, compress: Compress): { inodes: Buffer; directories: Buffer } {
  const inodeTable = new MetadataWriter(compress);
  const dirTable = new MetadataWriter(compress);
  for (const i of tree.order) {
    const o = tree.owner[i]!;
    if (tree.ref[o]! >= 0) continue;
    const e = tree.entries[o]!;
    const listing = e.type === 'dir' ? writeListing(tree, o, dirTable, enc) : null;
    const at = inodeTable.position();
    tree.ref[o] = makeRef(at.block, at.offset);
    inodeTable.write(enc.inode(o, listing, ids.indexOf(e.uid), ids.indexOf(e.gid), xattrIdOf(e)));
  }
  return { inodes: inodeTable.finish(), directories: dirTable.finish() };
}

/**
 * Cut what a rewound duplicate may have left beyond the end, then pad with zeros to PAD_TO; returns
 * the padded size. The image ends the file: a container's objects after it are written later.
 */
function padImage(fd: number, origin: number, bytesUsed: number): number {
  const padded = Math.ceil(bytesUsed / PAD_TO) * PAD_TO;
  fs.ftruncateSync(fd, origin + bytesUsed);
  fs.ftruncateSync(fd, origin + padded);
  return padded;
}

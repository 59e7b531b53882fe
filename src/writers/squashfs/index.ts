// writers/squashfs: an image tree as a SquashFS 4.0 image that the Linux kernel mounts.
// Layout: superblock | compression options | data and fragment blocks | inode table | directory
// table | fragment table | export table | id table | xattr table | padding to 4 KiB. The data area
// is streamed (data.ts); the metadata is built in memory (a few dozen bytes per entry) and written
// at the end, then the superblock at offset 0.
import * as fs from 'node:fs';
import { display } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, devNumbers } from '../../model/entry.js';
import { BuildError, ShrinkwrapError, describeSystemError } from '../../model/errors.js';
import type { CodecName } from '../../util/codecs.js';
import { CompressPool } from '../../util/compress-pool.js';
import { DataWriter, type FileData } from './data.js';
import { INODE, MAX_DIR_COUNT, MAX_NAME, MAX_SYMLINK, META_UNCOMPRESSED, SUPERBLOCK_SIZE } from '../../sources/squashfs/format.js';
import { COMPRESSION_ID, FLAG, NONE32, NONE64, PAD_TO, encodeDev, encodeSuperblock } from './format.js';
import { MetadataWriter, ref } from './metadata.js';
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
  /** Called as file contents are read: bytes and files so far. */
  onProgress?: (bytes: number, files: number) => void;
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

/** One name in the image tree. Hard-link names point at the node that owns the inode. */
interface Node {
  entry: Entry;
  name: string;
  children: Node[];
  parent: Node | null;
  owner: Node;
  /** Inode data, on the owner only. */
  number: number;
  nlink: number;
  ref: bigint;
  written: boolean;
  data?: FileData;
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

const NO_CHILDREN: Node[] = [];

/** Build the tree from entries in path order ("/" first). */
function buildTree(entries: readonly Entry[]): Node {
  if (entries[0]?.path !== '/' || entries[0].type !== 'dir') throw new Error('squashfs: the image tree must start with the root directory');
  const byPath = new Map<string, Node>();
  const node = (entry: Entry, name: string, parent: Node | null): Node => {
    // Only directories have children: the others share one empty list.
    const n = { entry, name, children: entry.type === 'dir' ? [] : NO_CHILDREN, parent, number: 0, nlink: 1, ref: 0n, written: false } as unknown as Node;
    n.owner = n;
    return n;
  };
  const root = node(entries[0], '', null);
  byPath.set('/', root);
  for (let i = 1; i < entries.length; i++) {
    const e = entries[i]!;
    const slash = e.path.lastIndexOf('/');
    const parent = byPath.get(slash === 0 ? '/' : e.path.slice(0, slash));
    if (!parent || parent.entry.type !== 'dir') throw new Error(`squashfs: ${display(e.path)} has no parent directory in the tree`);
    const name = e.path.slice(slash + 1);
    if (name.length > MAX_NAME) throw new BuildError(`${display(e.path)}: name longer than ${MAX_NAME} bytes`);
    const n = node(e, name, parent);
    parent.children.push(n); // path order = byte order of names within a directory
    byPath.set(e.path, n);
    if (e.type === 'hardlink') {
      const target = byPath.get(e.target!);
      if (!target || target.entry.type === 'dir' || target.entry.type === 'hardlink') {
        throw new Error(`squashfs: hard link ${display(e.path)} -> ${display(e.target!)} has no target before it`);
      }
      n.owner = target;
      target.nlink++;
    }
  }
  return root;
}

/** Post-order (children in name order, then the directory), without recursion. */
function postOrder(root: Node, visit: (n: Node) => void): void {
  const stack: Array<[Node, number]> = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [n, i] = top;
    if (i < n.children.length) {
      top[1]++;
      const c = n.children[i]!;
      if (c.entry.type === 'dir') stack.push([c, 0]);
      else visit(c);
    } else {
      stack.pop();
      visit(n);
    }
  }
}

export async function writeSquashfs(entries: readonly Entry[], outPath: string, opts: SquashfsOptions, diag: Diagnostics): Promise<SquashfsResult> {
  const root = buildTree(entries);
  // The same codec compresses 8 KiB metadata chunks, and the kernel sizes its windows as
  // max(block size, 8 KiB) too, so a 4 KiB image still gets an 8 KiB codec.
  const codec = opts.compression === 'none' ? null : { name: opts.compression, level: opts.level, blockSize: Math.max(opts.blockSize, 8192) };
  const pool = await CompressPool.create(codec, opts.threads);
  let fd = -1;
  try {
    fd = fs.openSync(outPath, 'w', 0o644);
    return await write(fd, root, entries, pool, opts, diag);
  } catch (err) {
    // A system error here is about the output (disk full, read-only): say so in one line.
    if (!(err instanceof ShrinkwrapError) && typeof (err as NodeJS.ErrnoException).code === 'string') {
      throw new BuildError(`cannot write ${outPath}: ${describeSystemError(err)}`);
    }
    throw err;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
    await pool.close();
  }
}

async function write(fd: number, root: Node, entries: readonly Entry[], pool: CompressPool, opts: SquashfsOptions, diag: Diagnostics): Promise<SquashfsResult> {
  const compress = (b: Buffer) => pool.compressLocal(b);
  const options = opts.compression === 'none' ? null : compressionOptions(opts.compression, opts.level, opts.blockSize);
  let pos = SUPERBLOCK_SIZE;
  if (options) {
    // The options block is one metadata block that is always stored uncompressed.
    const head = Buffer.alloc(2);
    head.writeUInt16LE(options.length | META_UNCOMPRESSED, 0);
    fs.writeSync(fd, Buffer.concat([head, options]), 0, options.length + 2, pos);
    pos += 2 + options.length;
  }

  // Data: every file's content, in path order.
  const data = new DataWriter(fd, pos, pool, opts.blockSize, opts.dedup, 4 * Math.max(1, opts.threads ?? 4) + 8);
  const nodes: Node[] = [];
  postOrder(root, (n) => nodes.push(n));
  const files = new Map<Entry, Node>();
  for (const n of nodes) if (n.entry.type === 'file') files.set(n.entry, n);
  for (const e of entries) {
    const n = files.get(e);
    if (n) {
      n.data = await data.addFile(e.source!, e.size, e.offset);
      opts.onProgress?.(data.stats.bytesIn, data.stats.files);
    }
  }
  pos = await data.finish();

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
  for (const n of nodes) if (n.owner.number === 0) n.owner.number = next++;
  const inodeCount = next - 1;

  const inodeTable = new MetadataWriter(compress);
  const dirTable = new MetadataWriter(compress);
  const exportRefs: bigint[] = new Array(inodeCount);
  for (const n of nodes) {
    const o = n.owner;
    if (o.written) continue;
    const e = o.entry;
    const listing = e.type === 'dir' ? writeListing(o, dirTable) : null;
    const at = inodeTable.position();
    o.ref = ref(at.block, at.offset);
    exportRefs[o.number - 1] = o.ref;
    inodeTable.write(encodeInode(o, listing, idOf(e.uid), idOf(e.gid), xattrIdOf(e), inodeCount));
    o.written = true;
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
    const refs = Buffer.alloc(8 * inodeCount);
    exportRefs.forEach((r, i) => refs.writeBigUInt64LE(r, 8 * i));
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
  if (options) flags |= FLAG.compressorOptions;
  if (none) flags |= FLAG.uncompressedInodes | FLAG.uncompressedData | FLAG.uncompressedFragments | FLAG.uncompressedXattrs | FLAG.uncompressedIds;
  const sb = encodeSuperblock({
    inodeCount,
    mkfsTime: clampU32(opts.mkfsTime),
    blockSize: opts.blockSize,
    fragmentCount: data.fragments.length,
    compression: none ? COMPRESSION_ID.gzip : COMPRESSION_ID[opts.compression as keyof typeof COMPRESSION_ID],
    flags,
    idCount: ids.size,
    rootInode: root.ref,
    bytesUsed: BigInt(bytesUsed),
    idTableStart: BigInt(idTable.indexStart),
    xattrIdTableStart,
    inodeTableStart: BigInt(inodeStart),
    directoryTableStart: BigInt(dirStart),
    fragmentTableStart,
    lookupTableStart,
  });
  fs.writeSync(fd, sb, 0, sb.length, 0);
  fs.fsyncSync(fd);

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
function writeListing(dir: Node, table: MetadataWriter): Listing {
  const start = table.position();
  const startLogical = table.logicalSize;
  const index: Listing['index'] = [];
  let i = 0;
  const kids = dir.children;
  while (i < kids.length) {
    const first = kids[i]!.owner;
    const block = Number(first.ref >> 16n);
    const base = first.number;
    let n = 0;
    while (i + n < kids.length && n < MAX_DIR_COUNT) {
      const o = kids[i + n]!.owner;
      const delta = o.number - base;
      if (Number(o.ref >> 16n) !== block || delta < -32768 || delta > 32767) break;
      n++;
    }
    const here = table.position();
    if (i > 0) index.push({ index: table.logicalSize - startLogical, block: here.block, name: kids[i]!.name });
    const header = Buffer.alloc(12);
    header.writeUInt32LE(n - 1, 0);
    header.writeUInt32LE(block, 4);
    header.writeUInt32LE(base, 8);
    table.write(header);
    for (let k = 0; k < n; k++) {
      const c = kids[i + k]!;
      const o = c.owner;
      const name = Buffer.from(c.name, 'latin1');
      const ent = Buffer.alloc(8);
      ent.writeUInt16LE(Number(o.ref & 0xffffn), 0);
      ent.writeInt16LE(o.number - base, 2);
      ent.writeUInt16LE(BASIC_TYPE[o.entry.type], 4);
      ent.writeUInt16LE(name.length - 1, 6);
      table.write(ent);
      table.write(name);
    }
    i += n;
  }
  return { block: start.block, offset: start.offset, fileSize: table.logicalSize - startLogical + 3, index };
}

function encodeInode(o: Node, listing: Listing | null, uidIdx: number, gidIdx: number, xattr: number, inodeCount: number): Buffer {
  const e = o.entry;
  const hasX = xattr !== NONE32;
  const head = (type: number, rest: Buffer) => {
    const h = Buffer.alloc(16);
    h.writeUInt16LE(type, 0);
    h.writeUInt16LE(e.mode & 0o7777, 2);
    h.writeUInt16LE(uidIdx, 4);
    h.writeUInt16LE(gidIdx, 6);
    h.writeUInt32LE(clampU32(e.mtime), 8);
    h.writeUInt32LE(o.number, 12);
    return Buffer.concat([h, rest]);
  };
  switch (e.type) {
    case 'dir': {
      const l = listing!;
      const subdirs = o.children.filter((c) => c.entry.type === 'dir').length;
      const parent = o.parent ? o.parent.number : inodeCount + 1;
      if (l.fileSize < 0x10000 && l.index.length === 0 && !hasX && l.block <= 0xffffffff) {
        const b = Buffer.alloc(16);
        b.writeUInt32LE(l.block, 0);
        b.writeUInt32LE(2 + subdirs, 4);
        b.writeUInt16LE(l.fileSize, 8);
        b.writeUInt16LE(l.offset, 10);
        b.writeUInt32LE(parent, 12);
        return head(INODE.dir, b);
      }
      const parts: Buffer[] = [];
      const b = Buffer.alloc(24);
      b.writeUInt32LE(2 + subdirs, 0);
      b.writeUInt32LE(l.fileSize, 4);
      b.writeUInt32LE(l.block, 8);
      b.writeUInt32LE(parent, 12);
      b.writeUInt16LE(l.index.length, 16);
      b.writeUInt16LE(l.offset, 18);
      b.writeUInt32LE(xattr, 20);
      parts.push(b);
      for (const x of l.index) {
        const name = Buffer.from(x.name, 'latin1');
        const ib = Buffer.alloc(12);
        ib.writeUInt32LE(x.index, 0);
        ib.writeUInt32LE(x.block, 4);
        ib.writeUInt32LE(name.length - 1, 8);
        parts.push(ib, name);
      }
      return head(INODE.ldir, Buffer.concat(parts));
    }
    case 'file': {
      const d = o.data!;
      const sizes = Buffer.alloc(4 * d.blockSizes.length);
      d.blockSizes.forEach((s, i) => sizes.writeUInt32LE(s, 4 * i));
      const sparse = d.sparse > 0 ? Math.min(d.sparse, d.size - 1) : 0;
      if (o.nlink === 1 && d.size < 2 ** 32 && d.blocksStart < 2 ** 32 && sparse === 0 && !hasX) {
        const b = Buffer.alloc(16);
        b.writeUInt32LE(d.blocksStart, 0);
        b.writeUInt32LE(d.fragment, 4);
        b.writeUInt32LE(d.fragment === NONE32 ? 0 : d.fragOffset, 8);
        b.writeUInt32LE(d.size, 12);
        return head(INODE.file, Buffer.concat([b, sizes]));
      }
      const b = Buffer.alloc(40);
      b.writeBigUInt64LE(BigInt(d.blocksStart), 0);
      b.writeBigUInt64LE(BigInt(d.size), 8);
      b.writeBigUInt64LE(BigInt(sparse), 16);
      b.writeUInt32LE(o.nlink, 24);
      b.writeUInt32LE(d.fragment, 28);
      b.writeUInt32LE(d.fragment === NONE32 ? 0 : d.fragOffset, 32);
      b.writeUInt32LE(xattr, 36);
      return head(INODE.lfile, Buffer.concat([b, sizes]));
    }
    case 'symlink': {
      const target = Buffer.from(e.target!, 'latin1');
      if (target.length === 0 || target.length > MAX_SYMLINK) {
        throw new BuildError(`${display(e.path)}: symlink target of ${target.length} bytes (SquashFS readers take 1 to ${MAX_SYMLINK})`);
      }
      const b = Buffer.alloc(8);
      b.writeUInt32LE(o.nlink, 0);
      b.writeUInt32LE(target.length, 4);
      if (!hasX) return head(INODE.symlink, Buffer.concat([b, target]));
      const x = Buffer.alloc(4);
      x.writeUInt32LE(xattr, 0);
      return head(INODE.lsymlink, Buffer.concat([b, target, x]));
    }
    case 'char':
    case 'block': {
      const [major, minor] = devNumbers(e.rdev ?? 0);
      const b = Buffer.alloc(hasX ? 12 : 8);
      b.writeUInt32LE(o.nlink, 0);
      b.writeUInt32LE(encodeDev(major, minor), 4);
      if (hasX) b.writeUInt32LE(xattr, 8);
      const basic = e.type === 'char' ? INODE.char : INODE.block;
      return head(hasX ? basic + 7 : basic, b);
    }
    case 'fifo':
    case 'socket': {
      const b = Buffer.alloc(hasX ? 8 : 4);
      b.writeUInt32LE(o.nlink, 0);
      if (hasX) b.writeUInt32LE(xattr, 4);
      const basic = e.type === 'fifo' ? INODE.fifo : INODE.socket;
      return head(hasX ? basic + 7 : basic, b);
    }
    case 'hardlink':
      throw new Error('squashfs: a hard link has no inode of its own');
  }
}

// A structural checker for SquashFS 4.0 images: what the Linux kernel (>= 5.11) checks at mount
// and lookup time, what unsquashfs 4.5 checks when reading the tables, and the rules a writer has
// to keep for the image to read back correctly (see /work/shared/reference/squashfs.md §1, §4).
// Each problem is one line naming the table, inode or path concerned.
import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import { display, fromText } from '../../model/bytes.js';
import { type EntryType, joinPath } from '../../model/entry.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import {
  BASIC_TYPE_NAMES,
  DATA_UNCOMPRESSED,
  INODE,
  KNOWN_FLAGS,
  MAX_NAME,
  MAX_SYMLINK,
  METADATA_SIZE,
  NO_FRAGMENT,
  NO_XATTR,
  OPTIONS_SIZE,
  SQUASHFS_MAGIC,
  SUPERBLOCK_SIZE,
  type Superblock,
  basicType,
  hex,
  decodeSuperblock,
  refString,
} from '../../formats/squashfs/index.js';
import { type ImageEntry, type RawDirHeader, type RawInode, type SquashfsImage, openSquashfs } from './reader.js';
import { type Check, arr, int, obj, oneOf, optional, readJsonFile, size, str, uint } from '../../util/json-check.js';

const MAX_STRING_LENGTH = bufferConstants.MAX_STRING_LENGTH;

/** An entry of `shrinkwrap plan --json` (`entries`). */
export interface ManifestEntry {
  /** Text path (UTF-8); `pathBase64` holds the exact bytes when the name is not UTF-8. */
  path: string;
  pathBase64?: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  target?: string;
  targetBase64?: string;
  rdev?: number;
}

// A plan's entries are checked field by field: a null entry or a numeric path is a wrong input,
// not a crash in the comparison. Plans of millions of entries are hundreds of MB: the limit is
// what one string can hold, as JSON.parse needs the whole text as one.
const manifestEntryCheck: Check<ManifestEntry> = obj({
  path: str,
  pathBase64: optional(str),
  type: oneOf('dir', 'file', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'socket'),
  size,
  mode: uint,
  uid: uint,
  gid: uint,
  mtime: int,
  target: optional(str),
  targetBase64: optional(str),
  rdev: optional(uint),
});
const planCheck = obj({ entries: arr(manifestEntryCheck, 'an array (the output of shrinkwrap plan --json)') });

/** `verify --manifest FILE`: the entries of `shrinkwrap plan --json` output. InputError naming the option and file. */
export function readManifestFile(file: string): ManifestEntry[] {
  const label = `--manifest ${file}`;
  return readJsonFile(file, planCheck, label, { limit: MAX_STRING_LENGTH }).value.entries;
}

export interface VerifyOptions {
  /** Entries the image must hold exactly (paths and hard-link targets under `manifestRoot`). */
  manifest?: ManifestEntry[];
  /** Prefix of manifest paths that is the image root (default '/cvmfs'; '' or '/' = none). */
  manifestRoot?: string;
  /**
   * Where `manifestRoot` lands in the image (default '/': an image built without a base). For an
   * image with a base root filesystem it is '/cvmfs': only that subtree is compared.
   */
  imageRoot?: string;
  /** Also read and decompress every data and fragment block. */
  data?: boolean;
  /** Stop listing problems after this many (default 1000); the rest are counted. */
  maxProblems?: number;
  /**
   * Directory nlink rule: 'subdirs' (default) = 2 + subdirectories, what mksquashfs and shrinkwrap
   * write; 'any' skips the check (squashfs-tools-ng writes 2 + entries; the kernel does not care).
   */
  dirNlink?: 'subdirs' | 'any';
}

export interface VerifyStats {
  fileSize: number;
  bytesUsed: number;
  compressor: string;
  blockSize: number;
  /** Distinct inodes reachable from the root. */
  inodes: number;
  /** Names reachable from the root, the root included. */
  entries: number;
  dirs: number;
  files: number;
  symlinks: number;
  devices: number;
  fifos: number;
  sockets: number;
  /** Names beyond the first of an inode. */
  hardlinks: number;
  extendedInodes: number;
  /** Content bytes of distinct file inodes. */
  fileBytes: number;
  dataBlocks: number;
  sparseBlocks: number;
  fragments: number;
  ids: number;
  xattrIds: number;
  /** On-disk bytes of the inode and directory tables. */
  inodeTableBytes: number;
  directoryTableBytes: number;
  /** Directories with a directory index (ext dir, i_count > 0). */
  indexedDirs: number;
  /** Data and fragment blocks were read and decompressed. */
  dataChecked: boolean;
}

export interface VerifyResult {
  /** Violations: the image is wrong, or is not what a correct writer produces. */
  problems: string[];
  /** Oddities that readers accept (padding, flags, layout beyond what tools check). */
  warnings: string[];
  stats: VerifyStats;
}

interface ChainBlock {
  /** Uncompressed length. */
  len: number;
  /** Offset of its first byte in the uncompressed stream of the table. */
  stream: number;
}

/** A table read as a chain of metadata blocks from its start to where the next table begins. */
interface Chain {
  name: string;
  start: number;
  end: number;
  /** By position relative to `start`. */
  blocks: Map<number, ChainBlock>;
  /** Relative positions in order. */
  order: number[];
  diskBytes: number;
}

interface InodeInfo {
  raw: RawInode;
  /** First path that reached it. */
  path: string;
  names: number;
  subdirs: number;
}

class Problems {
  readonly list: string[] = [];
  readonly warnings: string[] = [];
  private dropped = 0;
  /** Reader messages name the image file; every problem here is about that file. */
  private readonly prefix: string;
  constructor(
    private readonly max: number,
    imagePath: string,
  ) {
    this.prefix = `${imagePath}: `;
  }
  add(msg: string): void {
    if (this.list.length < this.max) this.list.push(msg.replaceAll(this.prefix, ''));
    else this.dropped++;
  }
  warn(msg: string): void {
    if (this.warnings.length < this.max) this.warnings.push(msg.replaceAll(this.prefix, ''));
  }
  finish(): string[] {
    if (this.dropped > 0) this.list.push(`... and ${this.dropped} more problems`);
    return this.list;
  }
}

function emptyStats(fileSize: number): VerifyStats {
  return {
    fileSize,
    bytesUsed: 0,
    compressor: '',
    blockSize: 0,
    inodes: 0,
    entries: 0,
    dirs: 0,
    files: 0,
    symlinks: 0,
    devices: 0,
    fifos: 0,
    sockets: 0,
    hardlinks: 0,
    extendedInodes: 0,
    fileBytes: 0,
    dataBlocks: 0,
    sparseBlocks: 0,
    fragments: 0,
    ids: 0,
    xattrIds: 0,
    inodeTableBytes: 0,
    directoryTableBytes: 0,
    indexedDirs: 0,
    dataChecked: false,
  };
}

/** Superblock checks (kernel super.c and unsquashfs read_super/read_filesystem_tables). */
function checkSuperblock(sb: Superblock, fileSize: number, p: Problems): boolean {
  let fatal = false;
  if (sb.magic !== SQUASHFS_MAGIC) {
    p.add(`superblock: bad magic ${hex(sb.magic)} (expected 0x73717368, "hsqs")`);
    return false;
  }
  if (sb.versionMajor !== 4 || sb.versionMinor !== 0) {
    p.add(`superblock: version ${sb.versionMajor}.${sb.versionMinor}, expected 4.0`);
    fatal = true;
  }
  const bs = sb.blockSize;
  if (bs < 4096 || bs > 1 << 20 || (bs & (bs - 1)) !== 0) {
    p.add(`superblock: block_size ${bs} is not a power of two from 4096 to 1048576`);
    fatal = true;
  }
  if (sb.blockLog > 20 || 1 << sb.blockLog !== bs) {
    p.add(`superblock: block_log ${sb.blockLog} does not match block_size ${bs} (log2 = ${Math.log2(bs)})`);
    fatal = true;
  }
  if (sb.compressor.startsWith('unknown')) {
    p.add(`superblock: unknown compression id ${sb.compression}`);
    fatal = true;
  }
  if (sb.inodeCount === 0) p.add(`superblock: inode_count is 0`);
  if (sb.fragmentCount > sb.inodeCount) p.add(`superblock: fragment_count ${sb.fragmentCount} exceeds inode_count ${sb.inodeCount}`);
  if (sb.idCount > sb.inodeCount * 2) p.add(`superblock: id_count ${sb.idCount} exceeds twice inode_count ${sb.inodeCount}`);
  if (sb.rootInode % 65536 > METADATA_SIZE) p.add(`superblock: root inode offset ${sb.rootInode % 65536} exceeds 8192`);
  if (sb.bytesUsed > fileSize) {
    p.add(`superblock: bytes_used ${sb.bytesUsed} exceeds the file size ${fileSize}`);
  } else if (fileSize % 4096 !== 0) {
    p.warn(`file size ${fileSize} is not padded to a multiple of 4096 (loop devices and the kernel need 1 KiB or 4 KiB multiples)`);
  }
  if (sb.bytesUsed < SUPERBLOCK_SIZE) {
    p.add(`superblock: bytes_used ${sb.bytesUsed} is smaller than the superblock`);
    fatal = true;
  }
  const pointers: [string, number, boolean][] = [
    ['inode_table_start', sb.inodeTableStart, true],
    ['directory_table_start', sb.directoryTableStart, true],
    ['id_table_start', sb.idTableStart, true],
    ['fragment_table_start', sb.fragmentTableStart, sb.fragmentCount > 0],
    ['lookup_table_start', sb.lookupTableStart, sb.hasExportTable],
    ['xattr_id_table_start', sb.xattrIdTableStart, sb.hasXattrTable],
  ];
  for (const [name, v, used] of pointers) {
    if (used && v >= sb.bytesUsed) {
      p.add(`superblock: ${name} ${hex(v)} is not below bytes_used ${hex(sb.bytesUsed)}`);
      fatal = true;
    }
  }
  if (sb.flags & ~KNOWN_FLAGS) p.warn(`superblock: unknown flag bits ${hex(sb.flags & ~KNOWN_FLAGS)}`);
  if (sb.flagBits.exportable !== sb.hasExportTable) {
    p.warn(`superblock: flag "exportable" is ${sb.flagBits.exportable ? 'set' : 'clear'} but the export table is ${sb.hasExportTable ? 'present' : 'absent'}`);
  }
  return !fatal;
}

function checkCompressionOptions(image: SquashfsImage, p: Problems): void {
  const sb = image.superblock;
  const o = image.compressionOptions;
  if (!sb.flagBits.compressorOptions) {
    if (sb.compressor === 'lz4') p.add(`compressor options: lz4 images must carry compressor options (the kernel refuses to mount without them)`);
    return;
  }
  if (!o) return; // reported while opening
  const want = OPTIONS_SIZE[sb.compressor];
  if (want === undefined) p.add(`compressor options: ${sb.compressor} takes no options but the image has a ${o.raw.length}-byte block`);
  else if (o.raw.length !== want) p.add(`compressor options: ${o.raw.length} bytes, ${sb.compressor} options are ${want} bytes`);
  switch (sb.compressor) {
    case 'gzip':
      if (o.level !== undefined && (o.level < 1 || o.level > 9)) p.add(`compressor options: gzip level ${o.level} (1..9)`);
      if (o.windowSize !== undefined && (o.windowSize < 8 || o.windowSize > 15)) p.add(`compressor options: gzip window ${o.windowSize} (8..15)`);
      break;
    case 'xz': {
      const d = o.dictionarySize ?? 0;
      const n = 31 - Math.clz32(d);
      if (d < 8192 || (d !== 2 ** n && d !== 2 ** n + 2 ** (n - 1))) p.add(`compressor options: xz dictionary size ${d} is not 2^n or 2^n + 2^(n-1), >= 8192`);
      // The kernel's own default is max(block size, 8 KiB); a larger dictionary only costs memory,
      // but no writer has a reason for one.
      else if (d > Math.max(sb.blockSize, 8192)) p.add(`compressor options: xz dictionary size ${d} exceeds max(block size, 8 KiB) = ${Math.max(sb.blockSize, 8192)}`);
      break;
    }
    case 'lz4':
      if (o.version !== 1) p.add(`compressor options: lz4 version ${o.version} (the kernel accepts only 1)`);
      break;
    case 'zstd':
      if (o.level !== undefined && (o.level < 1 || o.level > 22)) p.add(`compressor options: zstd level ${o.level} (1..22)`);
      break;
  }
}

/** Follow a table's metadata blocks from `start`: each must decode, and they must end exactly at `end`. */
function walkChain(image: SquashfsImage, name: string, start: number, end: number, p: Problems): Chain {
  const chain: Chain = { name, start, end, blocks: new Map(), order: [], diskBytes: 0 };
  let pos = start;
  let stream = 0;
  let lastShort: number | undefined;
  while (pos < end) {
    let b;
    try {
      b = image.metaBlock(pos, end);
    } catch (err) {
      p.add(`${name}: ${describeSystemError(err)}`);
      break;
    }
    if (lastShort !== undefined) {
      p.add(`${name}: metadata block at ${hex(lastShort)} holds less than 8192 bytes but is not the last block of the table`);
      lastShort = undefined;
    }
    chain.blocks.set(pos - start, { len: b.data.length, stream });
    chain.order.push(pos - start);
    if (b.data.length !== METADATA_SIZE) lastShort = pos;
    stream += b.data.length;
    pos = b.next;
  }
  chain.diskBytes = pos - start;
  return chain;
}

/** Why `ref` does not address a byte of `chain`, if it does not. */
function refProblem(chain: Chain, ref: number): string | undefined {
  const block = Math.floor(ref / 65536);
  const offset = ref % 65536;
  const b = chain.blocks.get(block);
  if (!b) return `block ${hex(block)} is not the start of a metadata block of the ${chain.name}`;
  if (offset >= b.len) return `offset ${offset} is beyond the ${b.len} bytes of its metadata block`;
  return undefined;
}

/** Relative position of the chain block holding stream byte `at`. */
function blockAt(chain: Chain, at: number): number | undefined {
  let lo = 0;
  let hi = chain.order.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const pos = chain.order[mid]!;
    const b = chain.blocks.get(pos)!;
    if (at < b.stream) hi = mid - 1;
    else if (at >= b.stream + b.len) lo = mid + 1;
    else return pos;
  }
  return undefined;
}

function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME) return `name of ${name.length} bytes (at most 256)`;
  if (name === '.' || name === '..') return `name "${name}"`;
  if (name.includes('/')) return `name contains "/"`;
  if (name.includes('\0')) return `name contains NUL`;
  return undefined;
}

/** Check an image. Problems are returned, not thrown; InputError only when the file cannot be read at all. */
export async function verifySquashfs(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const p = new Problems(opts.maxProblems ?? 1000, path);
  let fileSize = 0;
  let head: Buffer;
  try {
    const fd = fs.openSync(path, 'r');
    try {
      fileSize = fs.fstatSync(fd).size;
      head = Buffer.alloc(SUPERBLOCK_SIZE);
      const got = fs.readSync(fd, head, 0, SUPERBLOCK_SIZE, 0);
      if (got < SUPERBLOCK_SIZE) {
        p.add(`superblock: the file has only ${got} bytes`);
        return { problems: p.finish(), warnings: p.warnings, stats: emptyStats(fileSize) };
      }
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new InputError(`${path}: ${describeSystemError(err)}`);
  }
  const stats = emptyStats(fileSize);
  const sb = decodeSuperblock(head);
  stats.bytesUsed = sb.bytesUsed;
  stats.compressor = sb.compressor;
  stats.blockSize = sb.blockSize;
  if (!checkSuperblock(sb, fileSize, p)) return { problems: p.finish(), warnings: p.warnings, stats };

  let image: SquashfsImage;
  try {
    image = await openSquashfs(path, { report: (m) => p.add(m) });
  } catch (err) {
    p.add(describeSystemError(err));
    return { problems: p.finish(), warnings: p.warnings, stats };
  }
  try {
    new Checker(image, p, stats, opts).run();
    if (opts.manifest) compareManifest(image, opts.manifest, opts.manifestRoot ?? '/cvmfs', opts.imageRoot ?? '/', p);
  } finally {
    image.close();
  }
  return { problems: p.finish(), warnings: p.warnings, stats };
}

class Checker {
  private readonly sb: Superblock;
  private inodeChain!: Chain;
  private dirChain!: Chain;
  /** Reachable inodes by reference. */
  private readonly inodes = new Map<number, InodeInfo>();
  /** Inode number → reference of the first inode with that number. */
  private readonly byNumber = new Map<number, number>();
  private readonly dirsSeen = new Set<number>();

  constructor(
    private readonly image: SquashfsImage,
    private readonly p: Problems,
    private readonly stats: VerifyStats,
    private readonly opts: VerifyOptions,
  ) {
    this.sb = image.superblock;
  }

  run(): void {
    const { image, sb, p, stats } = this;
    checkCompressionOptions(image, p);
    stats.ids = image.ids?.length ?? 0;
    stats.xattrIds = image.xattr?.count ?? 0;
    stats.fragments = sb.fragmentCount;
    if (sb.fragmentCount === 0 && sb.fragmentTableStart !== image.directoryTableEnd) {
      // unsquashfs 4.5 wants the pointer where the (empty) table would be; the kernel ignores it.
      const msg = `fragment table: fragment_count is 0 and fragment_table_start ${hex(sb.fragmentTableStart)} is not where the table would begin (${hex(image.directoryTableEnd)})`;
      // unsquashfs 4.5.1 and the kernel accept all-ones (what squashfs-tools-ng writes); recent
      // unsquashfs releases require the position, which is what mksquashfs writes.
      if (sb.fragmentTableStart === 2 ** 64) p.warn(msg + ' (all-ones: accepted by the kernel and unsquashfs 4.5, refused by recent unsquashfs)');
      else p.add(msg);
    }
    if (image.xattr) this.checkXattrTable();
    this.checkFragmentTable();

    this.inodeChain = walkChain(image, 'inode table', sb.inodeTableStart, sb.directoryTableStart, p);
    this.dirChain = walkChain(image, 'directory table', sb.directoryTableStart, image.directoryTableEnd, p);
    stats.inodeTableBytes = this.inodeChain.diskBytes;
    stats.directoryTableBytes = this.dirChain.diskBytes;

    // Without a readable root directory, counts and the export table would only repeat that.
    if (!this.walkTree()) return;
    this.checkCounts();
    this.scanInodeTable();
    this.checkExportTable();
    if (this.opts.data) this.checkData();
  }

  private checkXattrTable(): void {
    const { image, p } = this;
    const x = image.xattr!;
    if (!x.table) return;
    walkChain(image, 'xattr key/value table', x.kvStart, x.idBlocksStart, p);
    for (let i = 0; i < x.count; i++) {
      try {
        const set = image.readXattrSet(i);
        if (set.entry.size !== set.listSize && set.entry.size !== set.diskSize) {
          p.warn(`xattr table: xattr id ${i}: size ${set.entry.size}, expected ${set.listSize} (names with NUL plus values, as mksquashfs) or ${set.diskSize} (record bytes, as squashfs-tools-ng)`);
        }
      } catch (err) {
        p.add(`xattr table: ${describeSystemError(err)}`);
      }
    }
  }

  private checkFragmentTable(): void {
    const { image, sb, p } = this;
    if (!image.fragmentTable) return;
    for (let i = 0; i < sb.fragmentCount; i++) {
      const { start, sizeWord } = image.fragmentEntry(i);
      const size = sizeWord & 0xffffff;
      const where = `fragment table: fragment ${i}`;
      if (sizeWord >>> 25 !== 0) p.add(`${where}: size word ${hex(sizeWord)} has bits 25..31 set`);
      if (size === 0) p.add(`${where}: size 0`);
      if (size > sb.blockSize) p.add(`${where}: stored size ${size} exceeds the block size ${sb.blockSize}`);
      if (start < image.dataStart || start + size > sb.inodeTableStart) {
        p.add(`${where}: block [${hex(start)}, ${hex(start + size)}) is outside the data area [${hex(image.dataStart)}, ${hex(sb.inodeTableStart)})`);
      }
    }
  }

  /** The inode at `ref`, read and checked once; undefined (reported) when unreadable. */
  private inode(ref: number, path: string): InodeInfo | undefined {
    const known = this.inodes.get(ref);
    if (known) return known;
    const where = `${display(path)}: inode ${refString(ref)}`;
    const bad = refProblem(this.inodeChain, ref);
    if (bad) {
      this.p.add(`${where}: ${bad}`);
      return undefined;
    }
    let raw: RawInode;
    try {
      raw = this.image.readInode(ref);
    } catch (err) {
      this.p.add(`${display(path)}: ${describeSystemError(err)}`);
      return undefined;
    }
    const info: InodeInfo = { raw, path, names: 0, subdirs: 0 };
    this.inodes.set(ref, info);
    this.checkInode(info);
    return info;
  }

  private checkInode(info: InodeInfo): void {
    const { sb, p, stats, image } = this;
    const raw = info.raw;
    const where = `inode #${raw.number} ${refString(raw.ref)} (${display(info.path)})`;
    if (raw.number === 0 || raw.number > sb.inodeCount) p.add(`${where}: inode number ${raw.number} is not in 1..inode_count (${sb.inodeCount})`);
    const other = this.byNumber.get(raw.number);
    if (other === undefined) this.byNumber.set(raw.number, raw.ref);
    else p.add(`${where}: inode number ${raw.number} is also used by the different inode ${refString(other)} (${display(this.inodes.get(other)!.path)})`);
    if (raw.mode & ~0o7777) p.add(`${where}: mode ${raw.mode.toString(8)} has bits beyond 07777 (file type bits belong in the inode type)`);
    // (id_count 0 is reported once, with the id table.)
    if (sb.idCount > 0 && raw.uidIndex >= sb.idCount) p.add(`${where}: uid index ${raw.uidIndex} is not below id_count ${sb.idCount}`);
    if (sb.idCount > 0 && raw.gidIndex >= sb.idCount) p.add(`${where}: gid index ${raw.gidIndex} is not below id_count ${sb.idCount}`);
    if (raw.type > 7) stats.extendedInodes++;
    if (raw.xattr !== NO_XATTR) {
      if (!image.xattr) p.add(`${where}: xattr index ${raw.xattr} but the image has no xattr table`);
      else if (raw.xattr >= image.xattr.count) p.add(`${where}: xattr index ${raw.xattr} is not below the xattr id count ${image.xattr.count}`);
    }
    switch (basicType(raw.type)) {
      case INODE.dir:
        stats.dirs++;
        if (raw.fileSize < 3) p.add(`${where}: directory file_size ${raw.fileSize} is less than 3`);
        if (raw.index && raw.index.length > 0) stats.indexedDirs++;
        break;
      case INODE.file:
        stats.files++;
        this.checkFile(info, where);
        break;
      case INODE.symlink: {
        stats.symlinks++;
        const t = raw.target!;
        if (t.length === 0 || t.length > MAX_SYMLINK) p.add(`${where}: symlink target of ${t.length} bytes (must be 1..4096)`);
        if (t.includes('\0')) p.add(`${where}: symlink target contains NUL`);
        break;
      }
      case INODE.block:
      case INODE.char:
        stats.devices++;
        break;
      case INODE.fifo:
        stats.fifos++;
        break;
      case INODE.socket:
        stats.sockets++;
        break;
    }
  }

  private checkFile(info: InodeInfo, where: string): void {
    const { sb, p, stats, image } = this;
    const raw = info.raw;
    const bs = sb.blockSize;
    const size = raw.fileSize;
    const words = raw.blockSizes!;
    const n = words.length;
    const hasFragment = raw.fragment !== NO_FRAGMENT;
    stats.fileBytes += size;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = words[i]!;
      if (w === 0) {
        stats.sparseBlocks++;
        continue;
      }
      stats.dataBlocks++;
      const disk = w & 0xffffff;
      if (w >>> 25 !== 0) p.add(`${where}: block ${i} size word ${hex(w)} has bits 25..31 set`);
      if (disk > bs) p.add(`${where}: block ${i} stored size ${disk} exceeds the block size ${bs}`);
      if (w & DATA_UNCOMPRESSED) {
        const want = hasFragment || i + 1 < n ? bs : size - i * bs;
        if (disk !== want) p.add(`${where}: block ${i} is stored uncompressed with ${disk} bytes, expected ${want}`);
      }
      total += disk;
    }
    if (total > 0 && (raw.blocksStart! < image.dataStart || raw.blocksStart! + total > sb.inodeTableStart)) {
      p.add(`${where}: data blocks [${hex(raw.blocksStart!)}, ${hex(raw.blocksStart! + total)}) are outside the data area [${hex(image.dataStart)}, ${hex(sb.inodeTableStart)})`);
    }
    if (hasFragment) {
      const tail = size - n * bs;
      if (raw.fragment! >= sb.fragmentCount) p.add(`${where}: fragment index ${raw.fragment} is not below fragment_count ${sb.fragmentCount}`);
      if (tail <= 0) p.add(`${where}: has fragment ${raw.fragment} but no tail (file_size ${size} is a multiple of the block size)`);
      else if (raw.fragmentOffset! + tail > bs) p.add(`${where}: fragment offset ${raw.fragmentOffset} + tail ${tail} exceeds the block size ${bs}`);
    }
    if (raw.type === INODE.lfile && raw.sparse! > size) p.add(`${where}: sparse ${raw.sparse} exceeds file_size ${size}`);
  }

  /** Depth-first over directories from the root: listings, headers, entries, child inodes. */
  private walkTree(): boolean {
    const { sb, p } = this;
    const root = this.inode(sb.rootInode, '/');
    if (!root) {
      p.add(`superblock: the root inode ${refString(sb.rootInode)} cannot be read`);
      return false;
    }
    root.names = 1;
    if (basicType(root.raw.type) !== INODE.dir) {
      p.add(`superblock: the root inode ${refString(sb.rootInode)} is not a directory (type ${root.raw.type})`);
      return false;
    }
    this.dirsSeen.add(root.raw.ref);
    const stack: Array<{ info: InodeInfo; path: string; parent: number | undefined }> = [{ info: root, path: '/', parent: undefined }];
    while (stack.length > 0) {
      const { info, path, parent } = stack.pop()!;
      const subdirs = this.checkDirectory(info, path);
      if (parent !== undefined && info.raw.parentInode !== parent) {
        p.add(`directory ${display(path)}: parent_inode ${info.raw.parentInode}, but its parent is inode #${parent}`);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push({ info: subdirs[i]![0], path: subdirs[i]![1], parent: info.raw.number });
    }
    this.stats.inodes = this.inodes.size;
    return true;
  }

  /** Check one directory; returns its subdirectories to descend into. */
  private checkDirectory(info: InodeInfo, path: string): Array<[InodeInfo, string]> {
    const { image, p, stats } = this;
    const raw = info.raw;
    const where = `directory ${display(path)}`;
    const out: Array<[InodeInfo, string]> = [];
    const size = raw.fileSize - 3;
    if (size > 0) {
      const bad = refProblem(this.dirChain, raw.startBlock! * 65536 + raw.offset!);
      if (bad) {
        p.add(`${where}: listing at ${refString(raw.startBlock! * 65536 + raw.offset!)}: ${bad}`);
        return out;
      }
    }
    const listing = image.readListing(raw);
    if (listing.error) {
      let hint = '';
      if (raw.fileSize >= 0 && !image.readListing({ ...raw, fileSize: raw.fileSize + 3 }).error) hint = ' (file_size is 3 short: is the +3 for "." and ".." missing?)';
      p.add(`${where}: file_size ${raw.fileSize} (listing ${size} bytes): ${listing.error}${hint}`);
    }
    let prev: string | undefined;
    let subdirs = 0;
    for (const h of listing.headers) {
      if (!this.inodeChain.blocks.has(h.startBlock)) {
        p.add(`${where}: header at byte ${h.pos}: start_block ${hex(h.startBlock)} is not the start of an inode metadata block`);
        continue;
      }
      for (const d of h.entries) {
        const childPath = joinPath(path, d.name);
        const at = `${where}: entry "${display(d.name)}"`;
        const bad = nameProblem(d.name);
        if (bad) p.add(`${at}: ${bad}`);
        if (prev !== undefined && !(prev < d.name)) {
          p.add(`${at}: ${prev === d.name ? 'duplicate name' : `not sorted (after "${display(prev)}")`}; names must be strictly increasing by raw bytes`);
        }
        prev = d.name;
        stats.entries++;
        if (d.type < 1 || d.type > 7) p.add(`${at}: type ${d.type} is not a basic type 1..7`);
        if (d.offset >= (this.inodeChain.blocks.get(h.startBlock)?.len ?? 0)) {
          p.add(`${at}: inode offset ${d.offset} is outside the header's inode metadata block ${hex(h.startBlock)} (entries of a header must share one block)`);
          continue;
        }
        const child = this.inode(d.ref, childPath);
        if (!child) continue;
        child.names++;
        if (child.names > 1 && basicType(child.raw.type) !== INODE.dir) stats.hardlinks++;
        const bt = basicType(child.raw.type);
        if (d.type >= 1 && d.type <= 7 && d.type !== bt) {
          p.add(`${at}: entry type ${d.type} (${BASIC_TYPE_NAMES[d.type]}) but the inode is type ${child.raw.type} (${BASIC_TYPE_NAMES[bt] ?? '?'})`);
        }
        if (d.inodeNumber !== child.raw.number) {
          p.add(`${at}: header base ${h.inodeNumber} + delta ${d.delta} = inode number ${d.inodeNumber}, but the inode says #${child.raw.number}`);
        }
        if (bt === INODE.dir) {
          subdirs++;
          if (this.dirsSeen.has(d.ref)) {
            p.add(`${at}: directory inode ${refString(d.ref)} already appears at ${display(child.path)} (directories cannot be hard-linked)`);
          } else {
            this.dirsSeen.add(d.ref);
            out.push([child, childPath]);
          }
        }
      }
    }
    info.subdirs = subdirs;
    if (this.opts.dirNlink !== 'any' && raw.nlink !== 2 + subdirs) p.add(`${where}: nlink ${raw.nlink}, expected 2 + ${subdirs} subdirectories = ${2 + subdirs}`);
    if (raw.index && raw.index.length > 0) this.checkDirIndex(raw, where, listing.headers);
    return out;
  }

  /** Directory index entries must point at header starts and name their first entry. */
  private checkDirIndex(raw: RawInode, where: string, headers: RawDirHeader[]): void {
    const { p } = this;
    const byPos = new Map(headers.map((h) => [h.pos, h]));
    const start = this.dirChain.blocks.get(raw.startBlock!);
    let prev = -1;
    raw.index!.forEach((x, i) => {
      const at = `${where}: directory index entry ${i}`;
      if (x.index <= prev) p.add(`${at}: index ${x.index} is not after the previous one (${prev})`);
      prev = x.index;
      const h = byPos.get(x.index);
      if (!h) {
        p.add(`${at}: index ${x.index} is not the start of a directory header`);
        return;
      }
      const first = h.entries[0]?.name;
      if (first !== x.name) p.add(`${at}: name "${display(x.name)}" is not the first entry of its header ("${display(first ?? '')}")`);
      if (!start) return;
      const stream = start.stream + raw.offset! + x.index;
      const block = blockAt(this.dirChain, stream);
      if (block !== x.startBlock) {
        p.add(`${at}: start_block ${hex(x.startBlock)}, but the header is in the metadata block at ${block === undefined ? '?' : hex(block)}`);
      } else if (stream - this.dirChain.blocks.get(block)!.stream !== (x.index + raw.offset!) % METADATA_SIZE) {
        p.add(`${at}: the kernel would look for the header at offset ${(x.index + raw.offset!) % METADATA_SIZE} of its block, it is at ${stream - this.dirChain.blocks.get(block)!.stream}`);
      }
    });
  }

  private checkCounts(): void {
    const { sb, p, stats } = this;
    if (this.inodes.size !== sb.inodeCount) {
      p.add(`superblock: inode_count ${sb.inodeCount}, but ${this.inodes.size} distinct inodes are reachable from the root`);
    }
    for (const info of this.inodes.values()) {
      const raw = info.raw;
      if (basicType(raw.type) === INODE.dir) continue;
      if (raw.nlink !== info.names) {
        const implied = raw.type === INODE.file ? ' (a basic file inode implies nlink 1: use an extended inode)' : '';
        p.add(`inode #${raw.number} (${display(info.path)}): nlink ${raw.nlink}${implied}, but the image has ${info.names} name${info.names === 1 ? '' : 's'} for it`);
      }
    }
    stats.entries += 1; // the root
  }

  /** Inodes are stored back to back: every one in the table should be reachable. */
  private scanInodeTable(): void {
    const { image, p } = this;
    if (this.inodeChain.order.length === 0) return;
    let ref = 0;
    const unreachable: string[] = [];
    let count = 0;
    for (;;) {
      let raw: RawInode;
      try {
        raw = image.readInode(ref);
      } catch (err) {
        p.warn(`inode table: a sequential scan stopped at ${refString(ref)}: ${describeSystemError(err)}`);
        return;
      }
      if (!this.inodes.has(ref)) {
        count++;
        if (unreachable.length < 10) unreachable.push(`${refString(ref)} (#${raw.number})`);
      }
      if (raw.atTableEnd) break;
      ref = raw.nextRef;
    }
    if (count > 0) p.add(`inode table: ${count} inode${count === 1 ? '' : 's'} not reachable from the root: ${unreachable.join(', ')}${count > 10 ? ', ...' : ''}`);
  }

  private checkExportTable(): void {
    const { image, sb, p } = this;
    const t = image.exportTable;
    if (!t) return;
    let bad = 0;
    for (let n = 1; n <= sb.inodeCount; n++) {
      const stored = Number(t.readBigUInt64LE((n - 1) * 8));
      const ref = this.byNumber.get(n);
      if (ref === stored) continue;
      if (++bad <= 10) {
        p.add(
          ref === undefined
            ? `export table: inode number ${n} maps to ${refString(stored)}, but no reachable inode has that number`
            : `export table: inode number ${n} maps to ${refString(stored)}, but the inode is at ${refString(ref)} (${display(this.inodes.get(ref)!.path)})`,
        );
      }
    }
    if (bad > 10) p.add(`export table: ${bad - 10} more wrong entries`);
  }

  /** Read every file's blocks and every fragment. */
  private checkData(): void {
    const { image, sb, p } = this;
    this.stats.dataChecked = true;
    for (const info of this.inodes.values()) {
      const raw = info.raw;
      if (basicType(raw.type) !== INODE.file) continue;
      const entry = {
        path: info.path,
        squashfsType: raw.type,
        fileSize: raw.fileSize,
        blocksStart: raw.blocksStart!,
        blockSizes: raw.blockSizes!,
        ...(raw.fragment !== NO_FRAGMENT ? { fragment: raw.fragment!, fragmentOffset: raw.fragmentOffset! } : {}),
      } as ImageEntry;
      try {
        let got = 0;
        for (const b of image.readBlocks(entry)) got += b.length;
        if (got !== raw.fileSize) p.add(`data of ${display(info.path)}: read ${got} bytes, file_size is ${raw.fileSize}`);
      } catch (err) {
        p.add(`data: ${describeSystemError(err)}`);
      }
    }
    for (let i = 0; i < sb.fragmentCount && image.fragmentTable; i++) {
      try {
        image.fragmentBlock(i);
      } catch (err) {
        p.add(`data: ${describeSystemError(err)}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Manifest

/** Byte-string path of a manifest entry mapped into the image, or undefined outside `root`. */
function mapPath(path: string, root: string, imageRoot = '/'): string | undefined {
  let rest: string;
  if (root === '' || root === '/') rest = path;
  else if (path === root) rest = '/';
  else if (path.startsWith(root + '/')) rest = path.slice(root.length);
  else return undefined;
  if (imageRoot === '' || imageRoot === '/') return rest;
  return rest === '/' ? imageRoot : imageRoot + rest;
}

function compareManifest(image: SquashfsImage, manifest: ManifestEntry[], manifestRoot: string, imageRootText: string, p: Problems): void {
  const root = fromText(manifestRoot.replace(/\/+$/, ''));
  const imageRoot = fromText(imageRootText.replace(/\/+$/, '')) || '/';
  const inScope = (path: string) => imageRoot === '/' || path === imageRoot || path.startsWith(imageRoot + '/');
  const entries = new Map<string, ImageEntry>();
  try {
    for (const e of image.walk()) if (inScope(e.path)) entries.set(e.path, e);
  } catch (err) {
    p.add(`manifest: the image cannot be walked: ${describeSystemError(err)}`);
    return;
  }
  const seen = new Set<string>();
  let rootListed = false;
  for (const m of manifest) {
    const raw = m.pathBase64 !== undefined ? Buffer.from(m.pathBase64, 'base64').toString('latin1') : fromText(m.path);
    const path = mapPath(raw, root, imageRoot);
    if (path === undefined) {
      p.add(`manifest: ${display(raw)} is outside ${display(root)}`);
      continue;
    }
    if (path === imageRoot) rootListed = true;
    seen.add(path);
    const e = entries.get(path);
    const at = `manifest: ${display(raw)}`;
    if (!e) {
      p.add(`${at}: missing from the image`);
      continue;
    }
    const diffs: string[] = [];
    if (e.type !== m.type) diffs.push(`type ${e.type}, expected ${m.type}`);
    if (e.size !== m.size) diffs.push(`size ${e.size}, expected ${m.size}`);
    if (e.mode !== m.mode) diffs.push(`mode ${e.mode.toString(8)}, expected ${m.mode.toString(8)}`);
    if (e.uid !== m.uid) diffs.push(`uid ${e.uid}, expected ${m.uid}`);
    if (e.gid !== m.gid) diffs.push(`gid ${e.gid}, expected ${m.gid}`);
    if (e.mtime !== m.mtime) diffs.push(`mtime ${e.mtime}, expected ${m.mtime}`);
    if (m.target !== undefined || m.targetBase64 !== undefined) {
      let target = m.targetBase64 !== undefined ? Buffer.from(m.targetBase64, 'base64').toString('latin1') : fromText(m.target!);
      if (m.type === 'hardlink') target = mapPath(target, root, imageRoot) ?? target;
      if (e.target !== target) diffs.push(`${m.type === 'hardlink' ? 'hard link' : 'link'} target "${display(e.target ?? '')}", expected "${display(target)}"`);
    }
    if (m.rdev !== undefined && e.rdev !== m.rdev) diffs.push(`rdev ${e.rdev}, expected ${m.rdev}`);
    if (diffs.length > 0) p.add(`${at}: ${diffs.join('; ')}`);
  }
  // Empty repository directories (/cvmfs/<fqrn>, made for every repository of the source) are not
  // part of a selection: the manifest does not list them.
  const children = new Set<string>();
  for (const path of entries.keys()) children.add(path.slice(0, path.lastIndexOf('/')));
  const repoMountPoint = (path: string) =>
    entries.get(path)?.type === 'dir' && !children.has(path) && path.lastIndexOf('/') === (imageRoot === '/' ? 0 : imageRoot.length);
  for (const path of entries.keys()) {
    if (seen.has(path) || (path === imageRoot && !rootListed) || repoMountPoint(path)) continue;
    p.add(`manifest: ${display(path)} is in the image but not in the manifest`);
  }
}

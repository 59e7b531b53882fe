// Reading the compressor options and the lookup tables (fragment, export, id, xattr id), and
// checking where they are placed the way the kernel does; a violation goes to the image's
// `report` and reading goes on where it can.
import { describeSystemError } from '../../model/errors.js';
import {
  ABSENT,
  EXPORT_ENTRY_SIZE,
  FRAGMENT_ENTRY_SIZE,
  Flag,
  ID_ENTRY_SIZE,
  METADATA_BLOCK_MAX,
  METADATA_SIZE,
  SUPERBLOCK_SIZE,
  XATTR_ID_ENTRY_SIZE,
  XATTR_ID_HEADER_SIZE,
  decodeCompressionOptions,
  decodeIdEntry,
  decodeXattrIdHeader,
  hex,
  indexEntries,
  readU64,
} from '../../formats/squashfs/index.js';
import type { SquashfsImage } from './image.js';
import type { MetaBlock } from './metadata.js';

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

/** Read the compressor options and the lookup tables, checking placement like the kernel. */
export function loadTables(image: SquashfsImage): void {
  const sb = image.superblock;
  const report = image.report;
  readCompressorOptions(image);
  const layouts: TableLayout[] = [];
  // The kernel walks back from bytes_used: each table's index array must end where the next
  // table's first metadata block begins (super.c, id.c, export.c, fragment.c, xattr_id.c).
  // `next` becomes undefined when a table's first block position is implausible: the tables
  // before it cannot be placed then, and their exact-end checks are skipped.
  let next: number | undefined = sb.hasXattrTable ? readXattrIdTable(image, layouts) : sb.bytesUsed;
  const firstBlock = (layout: TableLayout): number | undefined => {
    const b = layout.blocks[0];
    return b !== undefined && b >= image.dataStart && b < layout.blocksEnd ? b : undefined;
  };
  /**
   * A lookup table (id, export, fragment): its index array must end exactly where the next
   * table begins (the kernel's rule, walked backwards); returns the table's bytes, if readable.
   */
  const lookup = (name: string, start: number, count: number, entrySize: number): Buffer | undefined => {
    const n = indexEntries(count, entrySize);
    if (next !== undefined && start + n * 8 !== next) {
      report(`${name}: index array of ${n} entries at ${hex(start)} ends at ${hex(start + n * 8)}, not where the next table begins (${hex(next)})`);
    }
    const layout = readIndex(image, name, start, start, n, count * entrySize);
    if (!layout) {
      next = undefined;
      return undefined;
    }
    layouts.push(layout);
    next = firstBlock(layout);
    return readLookupTable(image, layout);
  };
  if (sb.idCount === 0) report(`id table: id_count is 0 (there must be at least one id)`);
  const ids = lookup('id table', sb.idTableStart, sb.idCount, ID_ENTRY_SIZE);
  if (ids) {
    image.ids = [];
    for (let i = 0; i < sb.idCount; i++) image.ids.push(decodeIdEntry(ids, i));
  }
  if (sb.hasExportTable) {
    if (sb.inodeCount === 0) report(`export table: inode_count is 0`);
    image.exportTable = lookup('export table', sb.lookupTableStart, sb.inodeCount, EXPORT_ENTRY_SIZE);
  }
  // The kernel only requires the fragment index to end by `next`; unsquashfs 4.5 wants it exact.
  if (sb.fragmentCount > 0) image.fragmentTable = lookup('fragment table', sb.fragmentTableStart, sb.fragmentCount, FRAGMENT_ENTRY_SIZE);
  image.directoryTableEnd = directoryTableEnd(image, next);
  image.tables.push(...layouts.reverse());
}

/** The compressor options block, when the flag says there is one: decoded, and where data starts after it. */
function readCompressorOptions(image: SquashfsImage): void {
  const sb = image.superblock;
  if (!(sb.flags & Flag.compressorOptions)) return;
  try {
    const b = image.metaBlock(SUPERBLOCK_SIZE);
    if (b.compressed) image.report(`compressor options: the block at 0x60 must be stored uncompressed`);
    image.compressionOptions = decodeCompressionOptions(sb.compressor, b.data);
    image.dataStart = b.next;
  } catch (err) {
    image.report(`compressor options: ${describeSystemError(err)}`);
  }
}

/** The xattr id table (header, index array, id entries); returns where the table before it must end, undefined when lost. */
function readXattrIdTable(image: SquashfsImage, layouts: TableLayout[]): number | undefined {
  const sb = image.superblock;
  const report = image.report;
  const start = sb.xattrIdTableStart;
  if (start + XATTR_ID_HEADER_SIZE > sb.bytesUsed) {
    report(`xattr id table: header at ${hex(start)} is beyond bytes_used ${hex(sb.bytesUsed)}`);
    return sb.bytesUsed;
  }
  const { kvStart, count } = decodeXattrIdHeader(image.pread(start, XATTR_ID_HEADER_SIZE));
  if (count === 0) report(`xattr id table: xattr id count is 0`);
  const n = indexEntries(count, XATTR_ID_ENTRY_SIZE);
  const arrayStart = start + XATTR_ID_HEADER_SIZE;
  if (arrayStart + n * 8 !== sb.bytesUsed) {
    report(`xattr id table: index array of ${n} entries at ${hex(arrayStart)} ends at ${hex(arrayStart + n * 8)}, not at bytes_used ${hex(sb.bytesUsed)}`);
  }
  const layout = readIndex(image, 'xattr id table', start, arrayStart, n, count * XATTR_ID_ENTRY_SIZE);
  if (!layout) return undefined;
  layouts.push(layout);
  const first = layout.blocks[0] ?? start;
  if (kvStart >= first) report(`xattr id table: key/value table start ${hex(kvStart)} is not before the first id block ${hex(first)}`);
  image.xattr = { kvStart, count, table: readLookupTable(image, layout), idBlocksStart: first };
  return kvStart >= image.dataStart && kvStart < first ? kvStart : undefined;
}

/** Where the directory table ends (`next`: the first table after it, undefined when lost), and the inode and directory tables' order. */
function directoryTableEnd(image: SquashfsImage, next: number | undefined): number {
  const sb = image.superblock;
  const report = image.report;
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
  if (sb.inodeTableStart < image.dataStart) {
    report(`inode table: inode_table_start ${hex(sb.inodeTableStart)} overlaps the superblock or compressor options (data starts at ${hex(image.dataStart)})`);
  }
  return next;
}

/**
 * Read an index array of `n` u64 block positions at `arrayStart` and check it like the kernel:
 * strictly increasing, at most 8194 bytes apart, the last block less than 8194 bytes before
 * `tableEnd` (the array itself, or the xattr id header).
 */
function readIndex(image: SquashfsImage, name: string, tableEnd: number, arrayStart: number, n: number, bytes: number): TableLayout | undefined {
  const sb = image.superblock;
  if (n === 0) return { name, arrayStart, blocksEnd: tableEnd, blocks: [], bytes };
  if (arrayStart + n * 8 > sb.bytesUsed || arrayStart + n * 8 > image.fileSize) {
    image.report(`${name}: index array at ${hex(arrayStart)} (${n} entries) is beyond bytes_used ${hex(sb.bytesUsed)}`);
    return undefined;
  }
  const raw = image.pread(arrayStart, n * 8);
  const blocks: number[] = [];
  for (let i = 0; i < n; i++) blocks.push(readU64(raw, i * 8));
  for (let i = 0; i + 1 < n; i++) {
    const a = blocks[i]!;
    const b = blocks[i + 1]!;
    if (a >= b || b - a > METADATA_BLOCK_MAX) {
      image.report(`${name}: metadata block ${i + 1} at ${hex(b)} does not follow block ${i} at ${hex(a)} (must be increasing, at most 8194 bytes apart)`);
    }
  }
  const last = blocks[n - 1]!;
  if (last >= tableEnd || tableEnd - last > METADATA_BLOCK_MAX) {
    image.report(`${name}: last metadata block at ${hex(last)} must begin less than 8194 bytes before ${hex(tableEnd)}`);
  }
  return { name, arrayStart, blocksEnd: tableEnd, blocks, bytes };
}

/** The entries of a lookup table, or undefined (reported) when its blocks do not decode. */
function readLookupTable(image: SquashfsImage, layout: TableLayout): Buffer | undefined {
  const parts: Buffer[] = [];
  let remaining = layout.bytes;
  const n = layout.blocks.length;
  for (let i = 0; i < n; i++) {
    const pos = layout.blocks[i]!;
    let b: MetaBlock;
    try {
      b = image.metaBlock(pos);
    } catch (err) {
      image.report(`${layout.name}: ${describeSystemError(err)}`);
      return undefined;
    }
    const want = Math.min(METADATA_SIZE, remaining);
    if (b.data.length !== want) {
      image.report(`${layout.name}: metadata block ${i} at ${hex(pos)} holds ${b.data.length} bytes, expected ${want}`);
      if (b.data.length < want) return undefined;
    }
    const end = i + 1 < n ? layout.blocks[i + 1]! : layout.blocksEnd;
    if (b.next !== end) {
      image.report(`${layout.name}: metadata block ${i} at ${hex(pos)} ends at ${hex(b.next)}, but ${i + 1 < n ? `block ${i + 1}` : 'the index array'} begins at ${hex(end)} (tables must be contiguous)`);
    }
    parts.push(b.data.subarray(0, want));
    remaining -= want;
  }
  return Buffer.concat(parts);
}

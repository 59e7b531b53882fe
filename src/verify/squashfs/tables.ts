// Table placement beyond what the reader checks while opening: the metadata block chains of the
// inode, directory and xattr tables, the fragment and xattr id entries, the export table.
import { display } from '../../model/bytes.js';
import { describeSystemError } from '../../model/errors.js';
import { METADATA_SIZE, decodeExportEntry, hex, refString } from '../../formats/squashfs/index.js';
import type { SquashfsImage } from '../../sources/squashfs/reader.js';
import type { Problems } from './report.js';

interface ChainBlock {
  /** Uncompressed length. */
  len: number;
  /** Offset of its first byte in the uncompressed stream of the table. */
  stream: number;
}

/** A table read as a chain of metadata blocks from its start to where the next table begins. */
export interface Chain {
  name: string;
  start: number;
  end: number;
  /** By position relative to `start`. */
  blocks: Map<number, ChainBlock>;
  /** Relative positions in order. */
  order: number[];
  diskBytes: number;
}

/** Follow a table's metadata blocks from `start`: each must decode, and they must end exactly at `end`. */
export function walkChain(image: SquashfsImage, name: string, start: number, end: number, p: Problems): Chain {
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
export function refProblem(chain: Chain, ref: number): string | undefined {
  const block = Math.floor(ref / 65536);
  const offset = ref % 65536;
  const b = chain.blocks.get(block);
  if (!b) return `block ${hex(block)} is not the start of a metadata block of the ${chain.name}`;
  if (offset >= b.len) return `offset ${offset} is beyond the ${b.len} bytes of its metadata block`;
  return undefined;
}

/** Relative position of the chain block holding stream byte `at`. */
export function blockAt(chain: Chain, at: number): number | undefined {
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

/** The fragment table pointer, the xattr table and the fragment entries. */
export function checkLookupTables(image: SquashfsImage, p: Problems): void {
  const sb = image.superblock;
  if (sb.fragmentCount === 0 && sb.fragmentTableStart !== image.directoryTableEnd) {
    // unsquashfs 4.5 wants the pointer where the (empty) table would be; the kernel ignores it.
    const msg = `fragment table: fragment_count is 0 and fragment_table_start ${hex(sb.fragmentTableStart)} is not where the table would begin (${hex(image.directoryTableEnd)})`;
    // unsquashfs 4.5.1 and the kernel accept all-ones (what squashfs-tools-ng writes); recent
    // unsquashfs releases require the position, which is what mksquashfs writes.
    if (sb.fragmentTableStart === 2 ** 64) p.warn(msg + ' (all-ones: accepted by the kernel and unsquashfs 4.5, refused by recent unsquashfs)');
    else p.add(msg);
  }
  if (image.xattr) checkXattrTable(image, p);
  checkFragmentTable(image, p);
}

function checkXattrTable(image: SquashfsImage, p: Problems): void {
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

function checkFragmentTable(image: SquashfsImage, p: Problems): void {
  const sb = image.superblock;
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


/** Each inode number maps to the reachable inode that has it. */
export function checkExportTable(image: SquashfsImage, tree: { byNumber: ReadonlyMap<number, number>; inodes: ReadonlyMap<number, { path: string }> }, p: Problems): void {
  const sb = image.superblock;
  const t = image.exportTable;
  if (!t) return;
  let bad = 0;
  for (let n = 1; n <= sb.inodeCount; n++) {
    const stored = decodeExportEntry(t, n);
    const ref = tree.byNumber.get(n);
    if (ref === stored) continue;
    if (++bad <= 10) {
      p.add(
        ref === undefined
          ? `export table: inode number ${n} maps to ${refString(stored)}, but no reachable inode has that number`
          : `export table: inode number ${n} maps to ${refString(stored)}, but the inode is at ${refString(ref)} (${display(tree.inodes.get(ref)!.path)})`,
      );
    }
  }
  if (bad > 10) p.add(`export table: ${bad - 10} more wrong entries`);
}

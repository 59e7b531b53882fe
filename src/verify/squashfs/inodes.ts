// Each reachable inode, checked once: its number, mode, id and xattr indexes, and its type's
// record (a file's block list and fragment within the data area).
import { display } from '../../model/bytes.js';
import { DATA_UNCOMPRESSED, INODE, MAX_SYMLINK, NO_FRAGMENT, NO_XATTR, basicType, hex, refString } from '../../formats/squashfs/index.js';
import type { InodeInfo, TreeChecker } from './tree.js';

/** One inode's fields: number, mode, ids, xattr index, and its type's record. */
export function checkInode(t: TreeChecker, info: InodeInfo): void {
  const { sb, p, stats, image } = t;
  const raw = info.raw;
  const where = `inode #${raw.number} ${refString(raw.ref)} (${display(info.path)})`;
  if (raw.number === 0 || raw.number > sb.inodeCount) p.add(`${where}: inode number ${raw.number} is not in 1..inode_count (${sb.inodeCount})`);
  const other = t.byNumber.get(raw.number);
  if (other === undefined) t.byNumber.set(raw.number, raw.ref);
  else p.add(`${where}: inode number ${raw.number} is also used by the different inode ${refString(other)} (${display(t.inodes.get(other)!.path)})`);
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
      checkFile(t, info, where);
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

/** A file's block list and fragment: sizes, and within the data area. */
function checkFile(t: TreeChecker, info: InodeInfo, where: string): void {
  const { sb, p, stats, image } = t;
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

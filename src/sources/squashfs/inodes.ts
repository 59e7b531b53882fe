// Reading inodes: the common header, the type's record (formats/squashfs/inodes.ts), then what
// follows it (a directory index, a block list, a symlink target).
import { InputError, describeSystemError } from '../../model/errors.js';
import {
  DIR_INDEX_SIZE,
  INODE,
  INODE_HEADER_SIZE,
  INODE_RECORD,
  type InodeFields,
  type InodeHeader,
  MAX_NAME,
  NO_FRAGMENT,
  NO_XATTR,
  SYMLINK_XATTR_SIZE,
  basicType,
  blockCount,
  decodeDirIndex,
  decodeInodeHeader,
  decodeInodeRecord,
  refBlock,
  refOffset,
  refString,
} from '../../formats/squashfs/index.js';
import type { SquashfsImage } from './image.js';
import type { MetaCursor } from './metadata.js';

export interface DirIndexEntry {
  /** Byte offset of a header from the start of the directory's listing. */
  index: number;
  /** Directory-table-relative position of the metadata block holding that header. */
  startBlock: number;
  name: string;
}

/** An inode as stored: the header and every field of its type's record (the others undefined). */
export interface RawInode extends InodeHeader, Partial<InodeFields> {
  ref: number;
  /** Implied 1 for basic files. */
  nlink: number;
  /** Files: content bytes; directories: listing bytes + 3; symlinks: target bytes. */
  fileSize: number;
  xattr: number;
  // directories
  index?: DirIndexEntry[];
  // files
  blockSizes?: Uint32Array;
  // symlinks
  target?: string;
  /** Bytes the inode occupies in the inode table. */
  byteLength: number;
  /** Reference of whatever follows this inode in the inode table. */
  nextRef: number;
  /** The inode ends exactly at the end of the inode table. */
  atTableEnd: boolean;
}

/** The inode at reference `ref` (InputError when it cannot be read). */
export function readInode(image: SquashfsImage, ref: number): RawInode {
  const sb = image.superblock;
  const c = image.cursor(sb.inodeTableStart + refBlock(ref), refOffset(ref), sb.directoryTableStart);
  const where = `inode ${refString(ref)}`;
  let h: Buffer;
  try {
    h = c.read(INODE_HEADER_SIZE);
  } catch (err) {
    throw new InputError(`${where}: ${describeSystemError(err)}`);
  }
  const ino: RawInode = { ref, ...decodeInodeHeader(h), nlink: 1, fileSize: 0, xattr: NO_XATTR, byteLength: 0, nextRef: 0, atTableEnd: false };
  try {
    const record = INODE_RECORD[ino.type];
    if (!record) throw new InputError(`unknown inode type ${ino.type}`);
    decodeInodeRecord(c.read(record.size), ino.type, ino);
    switch (basicType(ino.type)) {
      case INODE.dir:
        if (ino.type === INODE.ldir) ino.index = readDirIndex(c, ino.indexCount!);
        break;
      case INODE.file:
        ino.blockSizes = readBlockList(c, blockCount(ino.fileSize, sb.blockSize, ino.fragment !== NO_FRAGMENT));
        break;
      case INODE.symlink:
        if (ino.fileSize > 65536) throw new InputError(`symlink target of ${ino.fileSize} bytes`);
        ino.target = c.read(ino.fileSize).toString('latin1');
        if (ino.type === INODE.lsymlink) ino.xattr = c.read(SYMLINK_XATTR_SIZE).readUInt32LE(0);
        break;
    }
  } catch (err) {
    throw new InputError(`${where} (#${ino.number}): ${describeSystemError(err)}`);
  }
  ino.byteLength = c.consumed;
  ino.nextRef = (c.block - sb.inodeTableStart) * 65536 + c.offset;
  ino.atTableEnd = c.atEnd();
  return ino;
}

function readDirIndex(c: MetaCursor, count: number): DirIndexEntry[] {
  const index: DirIndexEntry[] = [];
  for (let i = 0; i < count; i++) {
    const x = decodeDirIndex(c.read(DIR_INDEX_SIZE));
    if (x.nameLength > MAX_NAME) throw new InputError(`directory index entry ${i} has a name of ${x.nameLength} bytes (> 256)`);
    index.push({ index: x.index, startBlock: x.startBlock, name: c.read(x.nameLength).toString('latin1') });
  }
  return index;
}

function readBlockList(c: MetaCursor, n: number): Uint32Array {
  const words = new Uint32Array(n);
  // Read the block list in pieces so that a corrupt size fails at the end of the table.
  for (let i = 0; i < n; ) {
    const k = Math.min(n - i, 2048);
    const b = c.read(k * 4);
    for (let j = 0; j < k; j++) words[i + j] = b.readUInt32LE(j * 4);
    i += k;
  }
  return words;
}

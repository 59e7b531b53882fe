// The inode table's records: for each inode, the common header and its type's record (basic when
// it fits, extended when it needs 64-bit sizes, a link count, an xattr index or a directory index).
import { display } from '../../model/bytes.js';
import { devNumbers } from '../../model/entry.js';
import { BuildError } from '../../model/errors.js';
import {
  DIR_INDEX_SIZE,
  EXTENDED,
  INODE,
  INODE_HEADER_SIZE,
  SYMLINK_XATTR_SIZE,
  INODE_RECORD,
  type InodeFields,
  type InodeHeader,
  MAX_SYMLINK,
  NO_FRAGMENT,
  NO_XATTR,
  encodeDev,
  encodeDirIndex,
  encodeInodeHeader,
  encodeInodeRecord,
} from '../../formats/squashfs/index.js';
import type { FileLayout } from './data.js';
import type { Listing } from './directories.js';
import type { Tree } from './tree.js';

/** A number as a u32, clamped (times before 1970 or after 2106). */
export function clampU32(n: number): number {
  return Math.min(Math.max(Math.floor(n), 0), 0xffffffff);
}

/** The header fields of an inode, without its type. */
type Header = Omit<InodeHeader, 'type'>;

/**
 * Inodes, encoded into one reused buffer (the metadata writer copies them out at once): an inode
 * is a few dozen bytes, and millions of small Buffers cost more than the encoding.
 */
export class InodeEncoder {
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

  /** The inode of owner slot `o`: 16-byte common header, then the type's record. */
  inode(o: number, listing: Listing | null, uidIndex: number, gidIndex: number, xattr: number): Buffer {
    const t = this.t;
    const e = t.entries[o]!;
    const h: Header = { mode: e.mode & 0o7777, uidIndex, gidIndex, mtime: clampU32(e.mtime), number: t.number[o]! };
    const nlink = t.nlink[o]!;
    const ext = xattr !== NO_XATTR ? EXTENDED : 0;
    switch (e.type) {
      case 'dir':
        return this.directory(o, h, listing!, xattr);
      case 'file':
        return this.file(o, h, nlink, xattr);
      case 'symlink': {
        const target = e.target!;
        if (target.length === 0 || target.length > MAX_SYMLINK) {
          throw new BuildError(`${display(e.path)}: symlink target of ${target.length} bytes (SquashFS readers take 1 to ${MAX_SYMLINK})`);
        }
        const type = INODE.symlink + ext;
        const b = this.record(type, h, { nlink, fileSize: target.length }, target.length + (ext ? SYMLINK_XATTR_SIZE : 0));
        const at = INODE_HEADER_SIZE + INODE_RECORD[type]!.size;
        b.write(target, at, 'latin1');
        if (ext) b.writeUInt32LE(xattr, at + target.length);
        return b;
      }
      case 'char':
      case 'block': {
        const [major, minor] = devNumbers(e.rdev ?? 0);
        const basic = e.type === 'char' ? INODE.char : INODE.block;
        return this.record(basic + ext, h, { nlink, rdev: encodeDev(major, minor), xattr }, 0);
      }
      case 'fifo':
      case 'socket': {
        const basic = e.type === 'fifo' ? INODE.fifo : INODE.socket;
        return this.record(basic + ext, h, { nlink, xattr }, 0);
      }
      case 'hardlink':
        throw new Error('squashfs: a hard link has no inode of its own');
    }
  }

  /** Header and record of an inode of `type`, with `extra` zeroed bytes after them. */
  private record(type: number, h: Header, values: Partial<InodeFields>, extra: number): Buffer {
    const b = this.scratch(INODE_HEADER_SIZE + INODE_RECORD[type]!.size + extra);
    encodeInodeHeader(b, { type, ...h });
    encodeInodeRecord(b, INODE_HEADER_SIZE, type, values);
    return b;
  }

  private directory(o: number, h: Header, l: Listing, xattr: number): Buffer {
    const t = this.t;
    let subdirs = 0;
    for (let c = t.firstChild[o]!; c >= 0; c = t.nextSibling[c]!) if (t.entries[c]!.type === 'dir') subdirs++;
    const parentInode = t.parent[o]! >= 0 ? t.number[t.parent[o]!]! : this.inodeCount + 1;
    const values = { startBlock: l.block, nlink: 2 + subdirs, fileSize: l.fileSize, offset: l.offset, parentInode, indexCount: l.index.length, xattr };
    if (l.fileSize < 0x10000 && l.index.length === 0 && xattr === NO_XATTR && l.block <= 0xffffffff) return this.record(INODE.dir, h, values, 0);
    const names = l.index.map((x) => Buffer.from(x.name, 'latin1'));
    const b = this.record(INODE.ldir, h, values, names.reduce((sum, nm) => sum + DIR_INDEX_SIZE + nm.length, 0));
    let at = INODE_HEADER_SIZE + INODE_RECORD[INODE.ldir]!.size;
    l.index.forEach((x, k) => {
      encodeDirIndex(b, at, { index: x.index, startBlock: x.block }, names[k]!);
      at += DIR_INDEX_SIZE + names[k]!.length;
    });
    return b;
  }

  private file(o: number, h: Header, nlink: number, xattr: number): Buffer {
    const layout = this.layout;
    const slot = this.slotOf[o]!;
    const blocks = layout.blocksOf(slot);
    const fileSize = this.t.entries[o]!.size;
    const blocksStart = layout.blocksStart[slot]!;
    const fragment = layout.fragment[slot]!;
    const fragmentOffset = fragment === NO_FRAGMENT ? 0 : layout.fragOffset[slot]!;
    const sparseBytes = layout.sparse.get(slot) ?? 0;
    const sparse = sparseBytes > 0 ? Math.min(sparseBytes, fileSize - 1) : 0;
    const basic = nlink === 1 && fileSize < 2 ** 32 && blocksStart < 2 ** 32 && sparse === 0 && xattr === NO_XATTR;
    const type = basic ? INODE.file : INODE.lfile;
    const b = this.record(type, h, { blocksStart, fragment, fragmentOffset, fileSize, sparse, nlink, xattr }, 4 * blocks.length);
    const at = INODE_HEADER_SIZE + INODE_RECORD[type]!.size;
    for (let k = 0; k < blocks.length; k++) b.writeUInt32LE(blocks[k]!, at + 4 * k);
    return b;
  }
}

// The image as entries: each inode with its names, in path order (the shape of a plan), with the
// SquashFS details behind each.
import { display } from '../../model/bytes.js';
import { type Entry, type EntryType, comparePaths, joinPath } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import { BASIC_TYPE_NAMES, INODE, NO_FRAGMENT, NO_XATTR, basicType, refString } from '../../formats/squashfs/index.js';
import { readListing } from './directories.js';
import type { SquashfsImage } from './image.js';
import { type RawInode, readInode } from './inodes.js';

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

/** The entry for inode `ino` at `path` (no hard-link resolution). */
export function toEntry(image: SquashfsImage, path: string, ino: RawInode, withXattrs = true): ImageEntry {
  const bt = basicType(ino.type);
  const type = BASIC_TYPE_NAMES[bt] as EntryType;
  const where = `inode #${ino.number} (${display(path)})`;
  const e: ImageEntry = {
    path,
    type,
    mode: ino.mode & 0o7777,
    uid: image.id(ino.uidIndex, `${where}: uid`),
    gid: image.id(ino.gidIndex, `${where}: gid`),
    mtime: ino.mtime,
    size: 0,
    reason: `squashfs image ${image.path}`,
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
    if (withXattrs) e.xattrs = image.readXattrs(ino.xattr);
  }
  return e;
}

/** Children of a directory inode, sorted by raw bytes: [name, inode reference]. */
export function children(image: SquashfsImage, dir: RawInode, path = '?'): Array<[string, number]> {
  const listing = readListing(image, dir);
  if (listing.error) throw new InputError(`${image.path}: directory ${display(path)}: ${listing.error}`);
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
export function rootInode(image: SquashfsImage): RawInode {
  const root = readInode(image, image.superblock.rootInode);
  if (basicType(root.type) !== INODE.dir) throw new InputError(`${image.path}: the root inode (${refString(root.ref)}) is not a directory (type ${root.type})`);
  return root;
}

/**
 * Every entry in path order ("/" first, a directory directly followed by its subtree, names in
 * raw byte order). The second and later names of a non-directory inode are type 'hardlink' with
 * `target` = the first name and size 0, as in the plan (model/plan.ts assignHardLinks).
 */
export function* walk(image: SquashfsImage): Generator<ImageEntry> {
  const root = rootInode(image, );
  yield toEntry(image, '/', root);
  const firstName = new Map<number, string>();
  const seenDirs = new Set<number>([root.ref]);
  const stack: Array<{ path: string; children: Array<[string, number]>; i: number }> = [{ path: '/', children: children(image, root, '/'), i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.children.length) {
      stack.pop();
      continue;
    }
    const [name, ref] = top.children[top.i++]!;
    const path = joinPath(top.path, name);
    const ino = readInode(image, ref);
    const e = toEntry(image, path, ino);
    if (e.type === 'dir') {
      if (seenDirs.has(ref)) throw new InputError(`${image.path}: directory ${display(path)} (inode ${refString(ref)}) appears twice in the tree`);
      seenDirs.add(ref);
      yield e;
      stack.push({ path, children: children(image, ino, path), i: 0 });
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
export function lookup(image: SquashfsImage, path: string): ImageEntry | undefined {
  let ino = rootInode(image, );
  let at = '/';
  for (const name of path.split('/')) {
    if (name === '') continue;
    if (basicType(ino.type) !== INODE.dir) return undefined;
    const child = children(image, ino, at).find(([n]) => n === name);
    if (!child) return undefined;
    at = joinPath(at, name);
    ino = readInode(image, child[1]);
  }
  return toEntry(image, at, ino);
}

/** The target of a symlink entry. */
export function readlink(image: SquashfsImage, entry: ImageEntry): string {
  if (basicType(entry.squashfsType) !== INODE.symlink) throw new InputError(`${image.path}: ${display(entry.path)} is not a symlink`);
  return entry.target!;
}

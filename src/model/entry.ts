// The one data model every stage shares: an entry of an image tree.

export type EntryType = 'dir' | 'file' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface Entry {
  /** Absolute path in the image, a byte string (see bytes.ts), no trailing slash; "/" for the root. */
  path: string;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Bytes of content for files; length of the target for symlinks; 0 otherwise. */
  size: number;
  /** Symlink: the link text (a byte string). Hardlink: the image path of the first name of the inode. */
  target?: string;
  /** Device number for char and block devices. */
  rdev?: number;
  /** Where the bytes and metadata come from: a host path (byte string). */
  source?: string;
  /** Where the content starts in `source` when that is an archive (a base image layer); 0 if absent. */
  offset?: number;
  /** Extended attributes: full names (`user.x`, `security.capability`) with raw values. */
  xattrs?: Array<[string, Buffer]>;
  /** Host identity of the inode (`dev:ino`) when it has several names; used to find hard links. */
  inode?: string;
  /** Why the entry is in the image: a spec line, a closure step, the base image. */
  reason: string;
  /** Files: the content is these compressed blocks of a SquashFS image (merge, --reuse), not `source`. */
  stored?: StoredBlocks;
}

/**
 * A file's content as it is stored in a SquashFS image: its data blocks, compressed, and its tail
 * in a fragment block. The SquashFS writer copies the blocks as they are when the output has the
 * same compressor and block size (and packs the tail into its own fragments), and otherwise
 * decompresses them through `image` and compresses the file anew.
 */
export interface StoredBlocks {
  /** The image, shared by all its files' StoredBlocks. */
  image: StoredImage;
  /** Where the first block is, relative to the image's start. */
  blocksStart: number;
  /** One size word per block as in the inode: stored size | 1 << 24 when uncompressed, 0 for a sparse block. */
  words: Uint32Array;
  /** The fragment holding the tail and where in it; absent when the file has no fragment. */
  fragment?: number;
  fragmentOffset?: number;
}

/** The SquashFS image stored blocks are read from (an implementation: writers/squashfs/stored.ts). */
export interface StoredImage {
  /** The host file (for messages). */
  readonly file: string;
  /** Superblock facts: compressor name (`gzip`, `zstd`, …) and block size. */
  readonly compressor: string;
  readonly blockSize: number;
  /** Read `buf.length` bytes at `pos` (relative to the image's start) into `buf`: the compressed bytes as stored. */
  readRaw(buf: Buffer, pos: number): void;
  /** One data block decompressed (`word` not 0). */
  readBlock(pos: number, word: number): Buffer;
  /** `length` bytes at `offset` of fragment block `fragment`, decompressed (a view: do not change it). */
  tail(fragment: number, offset: number, length: number): Buffer;
  /** Where fragment block `fragment` is stored (relative to the image's start) and its size word. */
  fragmentAt(fragment: number): { start: number; sizeWord: number };
  /**
   * Decompress tails and pack them into the output's own fragments (true), or copy the image's
   * fragment blocks as they are (false: no decompression, but a fragment block holding tails of
   * files the output leaves out is copied whole all the same).
   */
  readonly repackTails: boolean;
}

/**
 * How the entries of one host tree find their paths. An entry stores its full path P as its
 * parent directory's path and its name; its image path is P without the first `pathCut`
 * characters, its host path `root` + P without the first `hostCut`. One per tree and placement,
 * shared by all its entries.
 */
export class SourceRoot {
  private readonly shifts = new Map<number, SourceRoot>();

  constructor(
    readonly root: string,
    readonly hostCut: number,
    readonly pathCut = 0,
  ) {}

  /** The root of the same entries once their image paths lose `n` more leading characters. */
  shifted(n: number): SourceRoot {
    let s = this.shifts.get(n);
    if (!s) this.shifts.set(n, (s = new SourceRoot(this.root, this.hostCut, this.pathCut + n)));
    return s;
  }
}

/**
 * An entry of a host tree (the /cvmfs source) that holds its name and its parent directory's path
 * (one string, shared by all siblings), not its whole path, and derives its host path instead of
 * holding it. A release has millions of entries, and whole paths of 100-200 bytes each, twice
 * over, were most of the memory. `path` and `source` are built when asked for.
 */
export class TreeEntry implements Entry {
  declare target?: string;
  declare rdev?: number;
  declare inode?: string;
  declare xattrs?: Array<[string, Buffer]>;
  declare offset?: number;

  constructor(
    /** Full path of the parent directory; '' for entries directly below "/". */
    private dir: string,
    /** The last component of the path. */
    readonly leaf: string,
    public type: EntryType,
    public mode: number,
    public uid: number,
    public gid: number,
    public mtime: number,
    public size: number,
    public reason: string,
    private from: SourceRoot,
  ) {}

  get path(): string {
    const cut = this.from.pathCut;
    return (cut === 0 ? this.dir : this.dir.slice(cut)) + '/' + this.leaf;
  }

  set path(_p: string) {
    // The host path is derived from the image path: assigning one would silently move the other.
    throw new Error('internal: a TreeEntry moves with moveUp(), its path is not assigned');
  }

  get source(): string {
    return this.from.root + this.dir.slice(this.from.hostCut) + '/' + this.leaf;
  }

  /** comparePaths(this.path, p), without building this.path. */
  comparePath(p: string): number {
    const d = this.dir;
    const cut = this.from.pathCut;
    const leaf = this.leaf;
    const dl = d.length - cut;
    const total = dl + 1 + leaf.length;
    const n = total < p.length ? total : p.length;
    for (let i = 0; i < n; i++) {
      const x = i < dl ? d.charCodeAt(cut + i) : i === dl ? 47 : leaf.charCodeAt(i - dl - 1);
      const y = p.charCodeAt(i);
      if (x !== y) return (x === 47 ? -1 : x) - (y === 47 ? -1 : y);
    }
    return total - p.length;
  }

  /** Drop the first `n` characters of the image path; the host path stays what it was. */
  moveUp(n: number): void {
    this.from = this.from.shifted(n);
  }
}

/**
 * A plain copy of an entry. A spread would not do: a TreeEntry's path and source are getters,
 * which `{ ...e }` leaves behind.
 */
export function copyEntry(e: Entry): Entry {
  const c: Entry = { path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, size: e.size, reason: e.reason };
  if (e.target !== undefined) c.target = e.target;
  if (e.rdev !== undefined) c.rdev = e.rdev;
  if (e.source !== undefined) c.source = e.source;
  if (e.offset !== undefined) c.offset = e.offset;
  if (e.xattrs !== undefined) c.xattrs = e.xattrs;
  if (e.inode !== undefined) c.inode = e.inode;
  if (e.stored !== undefined) c.stored = e.stored;
  return c;
}

/**
 * Order of entries everywhere: component by component, raw bytes. Equivalently, byte order with
 * '/' below every other byte, so that a directory is followed directly by its whole subtree.
 */
export function comparePaths(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return (x === 47 ? -1 : x) - (y === 47 ? -1 : y);
  }
  return a.length - b.length;
}

/** comparePaths(e.path, p), without building the path of a TreeEntry. */
export function compareEntryPath(e: Entry, p: string): number {
  return e instanceof TreeEntry ? e.comparePath(p) : comparePaths(e.path, p);
}

/** Index of `path` in entries sorted by path, or -1 (binary search). */
export function findPath(sorted: readonly Entry[], path: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareEntryPath(sorted[mid]!, path);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/** The last component of an entry's path ("" for the root). */
export function entryName(e: Entry): string {
  return e instanceof TreeEntry ? e.leaf : baseName(e.path);
}

export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? '/' + name : dir + '/' + name;
}

/**
 * Lexical normalisation of an absolute path: repeated `/`, `.` components, trailing `/`, and `..`
 * (resolved against the path itself, as strace shows paths and as setup scripts' arithmetic means them).
 */
export function normalizeAbsolute(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return '/' + out.join('/');
}

/** Ancestors of an absolute path, outermost first, excluding "/" and the path itself. */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  return out;
}

/** Major and minor numbers of a host dev_t (glibc's encoding, which Node's st_rdev carries). */
export function devNumbers(rdev: number): [major: number, minor: number] {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return [major, minor];
}

/** The host dev_t for major and minor numbers (glibc's encoding; the inverse of devNumbers). */
export function makeDev(major: number, minor: number): number {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return Number(((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n));
}

const typeChar: Record<EntryType, string> = {
  dir: 'd',
  file: '-',
  symlink: 'l',
  hardlink: 'h',
  char: 'c',
  block: 'b',
  fifo: 'p',
  socket: 's',
};

/** `ls -l` style mode string, e.g. drwxr-xr-x. */
export function modeString(type: EntryType, mode: number): string {
  const rwx = (bits: number, special: boolean, specialChar: string) =>
    (bits & 4 ? 'r' : '-') +
    (bits & 2 ? 'w' : '-') +
    (special ? (bits & 1 ? specialChar : specialChar.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    typeChar[type] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

// The growing set of selected entries, keyed by image path, and the mapping from image paths under
// /cvmfs to host paths under the source root.
import * as fs from 'node:fs';
import { display, fsArg, fsPath, isValidUtf8 } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { type Entry, SourceRoot, ancestors, baseName, findPath, parentPath } from '../model/entry.js';
import { mergeSorted } from '../model/plan.js';
import { BuildError, InputError, describeSystemError } from '../model/errors.js';
import { entryFromStat, listDir } from '../sources/posix.js';
import { XattrReader, keepCvmfsXattr, newXattrReport, readOneXattr, xattrMethod } from '../sources/xattrs.js';
import { isConfinedImagePath } from './paths.js';
import { MOUNT } from './spec/parse.js';

/**
 * The source tree. Lookups go through a working-directory cursor: the walk visits a directory's
 * children one after another, and lstat("name") from inside the directory costs one path component
 * where lstat("/abs/path/name") costs ten (this is how find(1) walks, with fstatat). Node has no
 * *at() calls, so the cursor is process.chdir(); the walk is synchronous, nothing else runs
 * meanwhile, and `release()` restores the working directory.
 */
export class CvmfsSource {
  private cwd: string | null = null;
  private readonly startCwd = process.cwd();

  /** How entries find their host paths: root + image path without "/cvmfs". */
  private readonly from: SourceRoot;
  /** The parent path of the last entry made, shared with its siblings (they come one after another). */
  private lastDir = '';

  /** @param root host path of the tree laid out like /cvmfs (byte string, absolute). */
  constructor(readonly root: string) {
    this.from = new SourceRoot(root, MOUNT.length);
  }

  /** Make `dir` (an image path) the working directory; false if it cannot be entered. */
  private enter(dir: string): boolean {
    const from = this.cwd;
    if (from === dir) return true;
    const host = this.host(dir);
    // chdir takes text only: a directory whose name is not UTF-8 is looked up by absolute path.
    if (!isValidUtf8(host)) {
      this.release();
      return false;
    }
    try {
      process.chdir(relativeMove(from, dir) ?? fsPath(host).toString('utf8'));
      this.cwd = dir;
      return true;
    } catch {
      this.release();
      return false;
    }
  }

  /** Go back to the working directory we started in. */
  release(): void {
    // Attributes the getfattr fallback has batched are read before anyone uses the entries.
    for (const r of this.xattrReaders.values()) r?.flush();
    if (this.cwd === null) return;
    this.cwd = null;
    process.chdir(this.startCwd);
  }

  /** Path for an fs call on `imagePath`: relative to the cursor when possible. */
  private local(imagePath: string): string {
    return this.enter(parentPath(imagePath)) ? baseName(imagePath) : this.host(imagePath);
  }

  /** Names in a directory of the source, sorted by raw bytes. */
  list(imagePath: string): string[] {
    return listDir(this.local(imagePath));
  }

  /**
   * The entry for `imagePath`, reading a symlink's target relative to the cursor. `dir` and `name`
   * split the path when the caller has them as strings of their own (the walk does): the entry
   * keeps those, where slices of `imagePath` would keep all of it alive.
   */
  entry(imagePath: string, st: fs.Stats, reason: string, dir?: string, name?: string): Entry {
    if (dir === undefined || name === undefined) {
      const i = imagePath.lastIndexOf('/');
      dir = imagePath.slice(0, i);
      name = imagePath.slice(i + 1);
    }
    // Siblings share one parent string.
    if (dir === this.lastDir) dir = this.lastDir;
    else this.lastDir = dir;
    const e = entryFromStat(imagePath, this.host(imagePath), st, reason, st.isSymbolicLink() ? this.local(imagePath) : undefined, { dir, name, from: this.from });
    const xattrs = this.xattrsOf(imagePath);
    if (xattrs) {
      // A repository root may be a link to where the repository is mounted: "/." reads what it points to.
      if (imagePath.indexOf('/', MOUNT.length + 1) < 0) xattrs.read(e, this.host(imagePath) + '/.');
      else xattrs.read(e, this.local(imagePath), () => this.host(imagePath));
    }
    return e;
  }

  /** Each repository's attribute reader, or null where there is nothing to read. */
  private readonly xattrReaders = new Map<string, XattrReader | null>();
  private lastXattrRepo: [prefix: string, reader: XattrReader | null] | null = null;

  private xattrsOf(imagePath: string): XattrReader | null {
    // Entries come repository by repository: the last one's reader is most often the one.
    const last = this.lastXattrRepo;
    if (last && imagePath.startsWith(last[0]) && (imagePath.length === last[0].length || imagePath.charCodeAt(last[0].length) === 47)) return last[1];
    const end = imagePath.indexOf('/', MOUNT.length + 1);
    const repo = imagePath.slice(MOUNT.length + 1, end < 0 ? undefined : end);
    let r = this.xattrReaders.get(repo);
    if (r === undefined) this.xattrReaders.set(repo, (r = this.xattrReaderFor(repo)));
    this.lastXattrRepo = [`${MOUNT}/${repo}`, r];
    return r;
  }

  /**
   * Listing a FUSE file's attributes is a round trip to its daemon (~25 µs: a minute for a
   * 2,000,000-entry release, where the walk's lstat calls are mostly cached). A mounted CVMFS
   * repository says how many of its entries have attributes in its catalog counters: when none do,
   * nothing is listed. Everywhere else (a copy on a local disk: ~3 µs an entry) every entry is
   * listed. CVMFS's magic attributes are left out either way (a copy may carry them as real ones).
   */
  private xattrReaderFor(repo: string): XattrReader | null {
    const host = this.root + '/' + repo + '/.'; // the repository, also where its root is a link
    const label = `${MOUNT}/${repo}`;
    let fuse = false;
    try {
      fuse = fs.statfsSync(fsArg(host)).type === FUSE_SUPER_MAGIC;
    } catch {
      // not there: nothing will be read from it anyway
    }
    const magic = 'CVMFS magic attributes left out';
    if (fuse) {
      const counters = readOneXattr(host, 'user.repo_counters');
      const n = counters ? attributeCount(counters.toString('latin1')) : null;
      if (n === 0) {
        newXattrReport(label, 'not read: a CVMFS mount whose catalog counters (user.repo_counters) count no entry with attributes');
        return null;
      }
      const why = n === null ? 'a FUSE mount without CVMFS catalog counters' : `a CVMFS mount whose catalog counters count ${n} entries with attributes`;
      return new XattrReader(keepCvmfsXattr, newXattrReport(label, `read (${xattrMethod()}; ${why}), ${magic}`));
    }
    return new XattrReader(keepCvmfsXattr, newXattrReport(label, `read (${xattrMethod()}), ${magic}`));
  }

  /** Host path of an image path under /cvmfs. */
  host(imagePath: string): string {
    return this.root + imagePath.slice(MOUNT.length);
  }

  isRepo(fqrn: string): boolean {
    if (fqrn === '' || fqrn === '.' || fqrn === '..' || fqrn.includes('/')) return false;
    try {
      return fs.statSync(fsPath(this.root + '/' + fqrn), { throwIfNoEntry: false })?.isDirectory() ?? false;
    } catch {
      return false;
    }
  }

  /** lstat, except that a repository root may be a symlink to where the repository really is. */
  stat(imagePath: string): fs.Stats | null {
    if (imagePath.indexOf('/', MOUNT.length + 1) < 0) {
      const host = this.host(imagePath);
      try {
        return fs.statSync(fsArg(host), { throwIfNoEntry: false }) ?? null;
      } catch (err) {
        throw new BuildError(`cannot stat ${display(host)}: ${describeSystemError(err)}`);
      }
    }
    const local = this.local(imagePath);
    try {
      return fs.lstatSync(fsArg(local), { throwIfNoEntry: false }) ?? null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR' || code === 'ENOENT') return null;
      throw new BuildError(`cannot stat ${display(this.host(imagePath))}: ${describeSystemError(err)}`);
    }
  }
}

/** statfs's f_type of FUSE file systems (linux/magic.h), CVMFS's client among them. */
const FUSE_SUPER_MAGIC = 0x65735546;

/**
 * Entries with attributes in a CVMFS repository, from its user.repo_counters (`self_xattr` and
 * `subtree_xattr` lines: the root catalog's and its nested catalogs'); null when it does not say.
 */
function attributeCount(counters: string): number | null {
  let n: number | null = null;
  for (const m of counters.matchAll(/^(?:self|subtree)_xattr\s*[,:=]\s*(\d+)\s*$/gm)) n = (n ?? 0) + Number(m[1]);
  return n;
}

/**
 * A relative chdir argument from one directory to another inside the same repository (a walk mostly
 * steps one level down, or up and over to a sibling), or null when an absolute path is needed.
 * Only real directories are ever entered, so ".." goes where it says, except above a repository
 * root, which may be a symlink: such moves are absolute.
 */
function relativeMove(from: string | null, to: string): string | null {
  if (from === null) return null;
  const repoEnd = (p: string) => {
    const i = p.indexOf('/', MOUNT.length + 1);
    return i < 0 ? p.length : i;
  };
  const repo = from.slice(0, repoEnd(from));
  if (to.slice(0, repoEnd(to)) !== repo) return null;
  let common = from;
  let ups = 0;
  while (!(to === common || to.startsWith(common + '/'))) {
    common = parentPath(common);
    ups++;
    if (common.length < repo.length) return null;
  }
  const down = to.slice(common.length + 1);
  const rel = '../'.repeat(ups) + down;
  return rel === '' ? '.' : fsPath(rel).toString('utf8');
}

/**
 * The selected entries. The spec walk yields them in path order without duplicates, so they are
 * appended to a sorted array and found by binary search; only closure additions, which come in
 * any order and may repeat, go through a map. (A map over millions of walk entries would hash
 * every path once more, for nothing.)
 */
export class Selection {
  /** Entries of the spec walk, in path order. */
  readonly walked: Entry[] = [];
  /** Entries added after the walk (closures), by path. */
  private readonly added = new Map<string, Entry>();
  /** True during the spec walk, which never selects a path twice. */
  walking = true;
  /** Symlinks selected under a recursive rule: their targets are taken recursively too. */
  readonly deepLinks = new Set<string>();
  /** Directories whose whole subtree has been walked (recursive rules, deep link targets). */
  readonly deepRoots = new Set<string>();

  constructor(
    readonly source: CvmfsSource,
    readonly diag: Diagnostics,
  ) {}

  /** The spec walk is over: from now on entries may come in any order. */
  endWalk(): void {
    this.walking = false;
  }

  get(imagePath: string): Entry | undefined {
    const e = this.added.get(imagePath);
    if (e) return e;
    const i = findPath(this.walked, imagePath);
    return i >= 0 ? this.walked[i] : undefined;
  }

  has(imagePath: string): boolean {
    return this.get(imagePath) !== undefined;
  }

  /** Told of each regular file the spec walk selects (SelectOptions.onWalkFile). */
  onWalkFile: ((e: Entry) => void) | null = null;

  /** Called every 8192 entries added (a synchronous walk cannot let a timer draw a progress bar). */
  onProgress: ((entries: number, bytes: number) => void) | null = null;
  private count = 0;
  private bytes = 0;

  /** During the walk: a new entry in path order. After it: an entry unless its path is selected. */
  add(e: Entry): boolean {
    if (this.onProgress) {
      this.bytes += e.type === 'file' ? e.size : 0;
      if ((++this.count & 8191) === 0) this.onProgress(this.count, this.bytes);
    }
    if (this.walking) {
      this.walked.push(e);
      if (e.type === 'file') this.onWalkFile?.(e);
      return true;
    }
    if (this.has(e.path)) return false;
    this.added.set(e.path, e);
    return true;
  }

  /** Has the subtree at `imagePath` been walked whole already (it or an ancestor is a deep root)? */
  coveredDeep(imagePath: string): boolean {
    for (let p = imagePath; p.length > MOUNT.length; p = parentPath(p)) if (this.deepRoots.has(p)) return true;
    return false;
  }

  /** Everything selected so far, in no particular order. */
  *all(): Iterable<Entry> {
    yield* this.walked;
    yield* this.added.values();
  }

  get size(): number {
    return this.walked.length + this.added.size;
  }

  /** Everything selected, in path order. */
  sorted(): Entry[] {
    return mergeSorted(this.walked, [...this.added.values()]);
  }

  /**
   * Make an entry from the source for an image path, or null (with a warning) for what cannot go in
   * an image from /cvmfs: FIFOs, sockets and devices (CVMFS has none; a POSIX copy may).
   */
  entryAt(imagePath: string, st: fs.Stats, reason: string, dir?: string, name?: string): Entry | null {
    // The walk's names come from readdir; every other path was made from input, and must be
    // canonical and inside a repository: an image must never get an entry named `.` or `..`.
    if (name === undefined && !isConfinedImagePath(imagePath)) {
      throw new InputError(`${display(imagePath)}: not a path inside a repository under ${MOUNT} (${reason})`);
    }
    const e = this.source.entry(imagePath, st, reason, dir, name);
    if (e.type === 'fifo' || e.type === 'socket' || e.type === 'char' || e.type === 'block') {
      this.diag.warnPath('special-skipped', this.source.host(imagePath), `${e.type === 'fifo' ? 'FIFO' : e.type} skipped`);
      return null;
    }
    // Linux's PATH_MAX: nothing can open such a path by name, in the source or in the image.
    const host = this.source.host(imagePath);
    if (host.length >= 4096 || imagePath.length >= 4096) {
      const shown = display(host);
      throw new BuildError(
        `${shown.slice(0, 60)}…${shown.slice(-60)}: a path of ${host.length} bytes, longer than PATH_MAX (4096); no tool can open it by name: leave it out with --exclude`,
      );
    }
    if ((e.type === 'file' || e.type === 'dir') && !readableByUs(st, e.type === 'dir')) {
      const host = display(this.source.host(imagePath));
      const why = `permission denied (mode ${(st.mode & 0o7777).toString(8).padStart(3, '0')}, owner ${st.uid}:${st.gid})`;
      if (!this.skipUnreadable) throw new BuildError(`cannot read ${host}: ${why}; run as a user who can, or give --skip-unreadable`);
      this.diag.warnPath('unreadable-skipped', this.source.host(imagePath), `${why}: left out of the image (--skip-unreadable)`);
      return null;
    }
    return e;
  }

  /** --skip-unreadable: leave out what we may not read, with a warning, instead of failing. */
  skipUnreadable = false;

  /** Select the ancestors of a path (below /cvmfs) that are not selected yet. */
  addAncestors(imagePath: string, reason: string): void {
    for (const a of ancestors(imagePath)) {
      if (a === MOUNT || this.has(a)) continue;
      const st = this.source.stat(a);
      if (!st) throw new BuildError(`${display(this.source.host(a))}: vanished during selection`);
      const e = this.entryAt(a, st, reason);
      if (e) this.add(e);
    }
  }
}

const uid = process.getuid?.() ?? 0;
const groups = new Set([process.getgid?.() ?? 0, ...(process.getgroups?.() ?? [])]);

/**
 * May this process read the file (list and enter the directory)? From the mode bits the walk has
 * already: no extra system call per entry. Root may read anything.
 */
function readableByUs(st: fs.Stats, dir: boolean): boolean {
  if (uid === 0) return true;
  const need = dir ? 5 : 4;
  const bits = st.uid === uid ? (st.mode >> 6) & 7 : groups.has(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & need) === need;
}

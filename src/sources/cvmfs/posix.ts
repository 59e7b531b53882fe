// The POSIX implementation of the /cvmfs tree: a mounted /cvmfs (each repository a CVMFS FUSE
// mount), or a directory laid out like one. Entries' sources are host paths, read as they are.
import * as fs from 'node:fs';
import { display, fsArg, fsPath, isValidUtf8 } from '../../model/bytes.js';
import { type Entry, SourceRoot, baseName, parentPath } from '../../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import { entryFromStat, listDir, readLink } from '../posix.js';
import { XattrReader, keepCvmfsXattr, newXattrReport, readOneXattr, xattrMethod } from '../xattrs.js';
import { type CvmfsTree, type FileReader, MOUNT, type TreeStat } from './tree.js';

/**
 * The source tree. Lookups go through a working-directory cursor: the walk visits a directory's
 * children one after another, and lstat("name") from inside the directory costs one path component
 * where lstat("/abs/path/name") costs ten (this is how find(1) walks, with fstatat). Node has no
 * *at() calls, so the cursor is process.chdir(); the walk is synchronous, nothing else runs
 * meanwhile, and `release()` restores the working directory.
 */
export class PosixTree implements CvmfsTree {
  private cwd: string | null = null;
  private readonly startCwd = process.cwd();

  /** How entries find their host paths: root + image path without "/cvmfs". */
  private readonly from: SourceRoot;
  /** The parent path of the last entry made, shared with its siblings (they come one after another). */
  private lastDir = '';

  /** @param root host path of the tree laid out like /cvmfs (byte string, absolute). */
  constructor(
    readonly root: string,
    private readonly opts: { xattrs?: boolean } = {},
  ) {
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
    if (imagePath === MOUNT) return listDir(this.root); // the repositories: no parent to list from
    return listDir(this.local(imagePath));
  }

  /**
   * The entry for `imagePath`, reading a symlink's target relative to the cursor. `dir` and `name`
   * split the path when the caller has them as strings of their own (the walk does): the entry
   * keeps those, where slices of `imagePath` would keep all of it alive.
   */
  entry(imagePath: string, st: TreeStat, reason: string, dir?: string, name?: string): Entry {
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
    if (this.opts.xattrs === false) {
      newXattrReport(label, 'not read (plan --xattrs reads them, as every build does)');
      return null;
    }
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

  where(imagePath: string): string {
    return this.host(imagePath);
  }

  readLink(imagePath: string): string {
    return readLink(this.host(imagePath));
  }

  readFile(imagePath: string): Buffer {
    return fs.readFileSync(fsPath(this.host(imagePath)));
  }

  openContent(source: string): FileReader {
    return openHostFile(source);
  }

  /** A mounted repository knows (its `user.hash` attribute), but nothing needs it yet: not asked. */
  contentHash(_imagePath: string): string | null {
    return null;
  }

  readable(st: TreeStat, dir: boolean): boolean {
    return readableByUs(st, dir);
  }

  isRepo(fqrn: string): boolean {
    if (fqrn === '' || fqrn === '.' || fqrn === '..' || fqrn.includes('/')) return false;
    let is = this.repos.get(fqrn);
    if (is === undefined) this.repos.set(fqrn, (is = this.checkRepo(fqrn)));
    return is;
  }

  private readonly repos = new Map<string, boolean>();

  /**
   * A directory of the root. An empty one is a repository not mounted, and a root with nothing in it
   * a CernVM-FS not mounted at all: both fail in one line that says so, where a walk would select
   * nothing and the messages would blame the spec or the release.
   */
  private checkRepo(fqrn: string): boolean {
    const host = this.root + '/' + fqrn;
    let dir: boolean;
    try {
      // stat, not lstat: naming the repository is what makes autofs mount it.
      dir = fs.statSync(fsPath(host), { throwIfNoEntry: false })?.isDirectory() ?? false;
    } catch {
      return false;
    }
    const root = display(this.root);
    if (dir && isEmptyDir(host)) {
      throw new InputError(`${root}/${display(fqrn)} is an empty directory: the repository is not mounted (check: cvmfs_config probe ${display(fqrn)}), or --cvmfs-root names the wrong tree`);
    }
    if (!dir && isEmptyDir(this.root)) {
      throw new InputError(`${root} is empty and has no ${display(fqrn)}: CernVM-FS is not mounted there, or autofs could not mount the repository (check: cvmfs_config probe ${display(fqrn)}); or give --cvmfs-root a copy or http://HOST/cvmfs`);
    }
    return dir;
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

/** Does the directory list nothing? (Unreadable counts as not empty: the walk reports that itself.) */
function isEmptyDir(hostPath: string): boolean {
  try {
    const d = fs.opendirSync(fsPath(hostPath));
    try {
      return d.readSync() === null;
    } finally {
      d.closeSync();
    }
  } catch {
    return false;
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

/** Positioned reads of a host file (a byte-string path, or its bytes). */
export function openHostFile(hostPath: string | Buffer): FileReader {
  const fd = fs.openSync(typeof hostPath === 'string' ? fsArg(hostPath) : hostPath, 'r');
  let size: number;
  try {
    size = fs.fstatSync(fd).size;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return {
    size,
    read: (buf, offset, length, position) => fs.readSync(fd, buf, offset, length, position),
    close: () => fs.closeSync(fd),
  };
}

const uid = process.getuid?.() ?? 0;
const groups = new Set([process.getgid?.() ?? 0, ...(process.getgroups?.() ?? [])]);

/**
 * May this process read the file (list and enter the directory)? From the mode bits the walk has
 * already: no extra system call per entry. Root may read anything.
 */
function readableByUs(st: TreeStat, dir: boolean): boolean {
  if (uid === 0) return true;
  const need = dir ? 5 : 4;
  const bits = st.uid === uid ? (st.mode >> 6) & 7 : groups.has(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & need) === need;
}

// The /cvmfs tree as select and the writers see it: one small interface, whatever holds the tree.
// A mounted /cvmfs or a copy of it on disk is the POSIX tree (posix.ts); a CernVM-FS repository
// read over HTTP (manifest, catalogs, content-addressed objects) is meant to be the second.
import type { Entry } from '../../model/entry.js';

/** Where the tree sits in an image, and the first component of every path a tree answers for. */
export const MOUNT = '/cvmfs';

/**
 * What a tree says of one of its objects, as lstat would. Node's fs.Stats has all of it, so the
 * POSIX tree hands its lstat over as it is (no object made per entry); a catalog-backed tree fills
 * these from a catalog row (`dev`/`ino` name its inode within the tree, `nlink` its hard links).
 */
export interface TreeStat {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly nlink: number;
  readonly dev: number;
  readonly ino: number;
  readonly rdev: number;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

/** Positioned reads of one file's bytes. */
export interface FileReader {
  /** Its size when opened. */
  readonly size: number;
  /** Up to `length` bytes at `position` into `buf` at `offset`: how many were read (0 at the end). */
  read(buf: Buffer, offset: number, length: number, position: number): number;
  close(): void;
}

/**
 * A tree laid out like /cvmfs: repositories below it, each a directory tree. Every path given and
 * taken is an image path (`/cvmfs/<repo>/...`, a byte string, see model/bytes.ts).
 *
 * An entry's `source` is a reference its tree can open (`openContent`): for the POSIX tree the host
 * path, which the writers read directly as they always have; a tree whose bytes are not host files
 * names them so that the writers can read them (see docs/architecture.md, sources).
 */
export interface CvmfsTree {
  /** Is `fqrn` a repository of this tree (a directory below its root)? */
  isRepo(fqrn: string): boolean;
  /** lstat, except that a repository root is followed where it is a link; null when absent. */
  stat(imagePath: string): TreeStat | null;
  /** Names in a directory, sorted by raw bytes. Throws the system error when it cannot be listed. */
  list(imagePath: string): string[];
  /** A symlink's target, as stored (a byte string). */
  readLink(imagePath: string): string;
  /**
   * The entry for `imagePath`, from its `stat`: link target, hard-link identity and extended
   * attributes filled in. `dir` and `name` split the path when the caller holds them as strings of
   * their own (the walk does): the entry keeps those, shared with its siblings.
   */
  entry(imagePath: string, st: TreeStat, reason: string, dir?: string, name?: string): Entry;
  /** May this process read the file (list and enter the directory)? From `st`, no further call. */
  readable(st: TreeStat, dir: boolean): boolean;
  /** A whole file's bytes. Throws the system error when it cannot be read. */
  readFile(imagePath: string): Buffer;
  /** Open an entry's content (its `source`) for positioned reads. Throws the system error. */
  openContent(source: string): FileReader;
  /** The content hash of a file where the tree knows it without reading (a catalog does), else null. */
  contentHash(imagePath: string): string | null;
  /** Where `imagePath` is, for messages: a host path, a URL. */
  where(imagePath: string): string;
  /** Give back what lookups held (a working directory, open catalogs); the tree stays usable. */
  release(): void;

  // A tree whose catalogs and content arrive over a network (the HTTP tree) fetches ahead of the
  // walk through these; the walk waits on the promises between its steps (util/steps.ts). Without
  // them (the POSIX tree) every lookup is simply answered when asked.

  /**
   * Open these repositories (names as the selection guesses them: spec files, recipes, --repo)
   * without blocking, so that their first lookups need nothing from the network; null: nothing
   * to wait for. A name that is no repository is the lookups' to report.
   */
  openAhead?(fqrns: readonly string[]): Promise<void> | null;
  /** Fetch what lookups at `imagePath` (and, when `deep`, anywhere below it) need; null: nothing to wait for. */
  prepare?(imagePath: string, deep: boolean): Promise<void> | null;
  /** Start fetching these sources' content, for openContent later. */
  prefetch?(sources: Iterable<string>): void;
  /** Resolves when `source` can be opened without waiting; null: it can now. */
  contentReady?(source: string): Promise<void> | null;
}

// The growing set of selected entries, keyed by image path, taken from a /cvmfs tree.
import { display } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { type Entry, ancestors, findPath, parentPath } from '../model/entry.js';
import { mergeSorted } from '../model/plan.js';
import { BuildError, InputError } from '../model/errors.js';
import { type CvmfsTree, MOUNT, type TreeStat } from '../sources/cvmfs/tree.js';
import { isConfinedImagePath } from './paths.js';

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
    readonly source: CvmfsTree,
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
  entryAt(imagePath: string, st: TreeStat, reason: string, dir?: string, name?: string): Entry | null {
    // The walk's names come from readdir; every other path was made from input, and must be
    // canonical and inside a repository: an image must never get an entry named `.` or `..`.
    if (name === undefined && !isConfinedImagePath(imagePath)) {
      throw new InputError(`${display(imagePath)}: not a path inside a repository under ${MOUNT} (${reason})`);
    }
    const e = this.source.entry(imagePath, st, reason, dir, name);
    if (e.type === 'fifo' || e.type === 'socket' || e.type === 'char' || e.type === 'block') {
      this.diag.warnPath('special-skipped', this.source.where(imagePath), `${e.type === 'fifo' ? 'FIFO' : e.type} skipped`);
      return null;
    }
    // Linux's PATH_MAX: nothing can open such a path by name, in the source or in the image.
    const host = this.source.where(imagePath);
    if (host.length >= 4096 || imagePath.length >= 4096) {
      const shown = display(host);
      throw new BuildError(
        `${shown.slice(0, 60)}…${shown.slice(-60)}: a path of ${host.length} bytes, longer than PATH_MAX (4096); no tool can open it by name: leave it out with --exclude`,
      );
    }
    if ((e.type === 'file' || e.type === 'dir') && !this.source.readable(st, e.type === 'dir')) {
      const host = display(this.source.where(imagePath));
      const why = `permission denied (mode ${(st.mode & 0o7777).toString(8).padStart(3, '0')}, owner ${st.uid}:${st.gid})`;
      if (!this.skipUnreadable) throw new BuildError(`cannot read ${host}: ${why}; run as a user who can, or give --skip-unreadable`);
      this.diag.warnPath('unreadable-skipped', this.source.where(imagePath), `${why}: left out of the image (--skip-unreadable)`);
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
      if (!st) throw new BuildError(`${display(this.source.where(a))}: vanished during selection`);
      const e = this.entryAt(a, st, reason);
      if (e) this.add(e);
    }
  }
}

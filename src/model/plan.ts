// A plan: the sorted entries of an image tree (or of its /cvmfs payload) and what they add up to.
import { type Entry, type EntryType, compareEntryPath, comparePaths } from './entry.js';

export interface RepositorySummary {
  entries: number;
  bytes: number;
}

export interface PlanSummary {
  entries: number;
  types: Record<EntryType, number>;
  /** Bytes of file content; each inode counted once. */
  bytes: number;
  repositories: Record<string, RepositorySummary>;
}

/** Sort in path order. */
export function sortEntries(entries: Entry[]): void {
  entries.sort((a, b) => comparePaths(a.path, b.path));
}

/**
 * `sorted` (in path order) with `extra` merged in: a walk's output is already sorted, and closures
 * add comparatively few entries, so each finds its place by binary search rather than the whole
 * list being compared again.
 */
export function mergeSorted(sorted: Entry[], extra: Entry[]): Entry[] {
  if (extra.length === 0) return sorted;
  sortEntries(extra);
  const out: Entry[] = new Array(sorted.length + extra.length);
  let from = 0;
  let k = 0;
  for (const e of extra) {
    const path = e.path;
    let lo = from;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      // Compared in place: a TreeEntry's path would be built anew for every probe.
      if (compareEntryPath(sorted[mid]!, path) < 0) lo = mid + 1;
      else hi = mid;
    }
    while (from < lo) out[k++] = sorted[from++]!;
    out[k++] = e;
  }
  while (from < sorted.length) out[k++] = sorted[from++]!;
  return out;
}

/**
 * Files sharing an inode: the first in path order stays a file, the others become hard links to it
 * (size 0, as in tar), so that every writer can reproduce them and byte counts are not doubled.
 */
export function assignHardLinks(sorted: Entry[]): void {
  const first = new Map<string, string>();
  for (const e of sorted) {
    // Files and symlinks (a hard-linked symlink is one inode too: CVMFS catalogs and `ln` make them).
    if ((e.type !== 'file' && e.type !== 'symlink') || e.inode === undefined) continue;
    const owner = first.get(e.inode);
    if (owner === undefined) {
      first.set(e.inode, e.path);
    } else {
      e.type = 'hardlink';
      e.target = owner;
      e.size = 0;
    }
  }
}

/** Summary of payload entries under `mount` (/cvmfs): repositories are its first-level names. */
export function summarize(entries: readonly Entry[], mount: string): PlanSummary {
  const types: Record<EntryType, number> = { dir: 0, file: 0, symlink: 0, hardlink: 0, char: 0, block: 0, fifo: 0, socket: 0 };
  const repositories: Record<string, RepositorySummary> = {};
  let bytes = 0;
  const prefix = mount + '/';
  for (const e of entries) {
    types[e.type]++;
    bytes += e.size * (e.type === 'file' ? 1 : 0);
    const path = e.path;
    if (!path.startsWith(prefix)) continue;
    const end = path.indexOf('/', prefix.length);
    const repo = end < 0 ? path.slice(prefix.length) : path.slice(prefix.length, end);
    const r = (repositories[repo] ??= { entries: 0, bytes: 0 });
    r.entries++;
    if (e.type === 'file') r.bytes += e.size;
  }
  return { entries: entries.length, types, bytes, repositories };
}

// The union of the parts' entries, in path order: each part's list is sorted already, so they are
// merged, never keyed in a map of every path. At a path several parts have, directories merge (the
// first part's, or the winning part's, metadata); anything else must be the same in each (type,
// mode, owner, time, attributes, content) unless a priority says which part wins. Hard links stay
// within their part: a link whose first name lost to another part's entry takes its content.
import { display } from '../../model/bytes.js';
import { type Entry, comparePaths, modeString } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import type { Steps } from '../../util/steps.js';
import { sameStoredContent } from '../../writers/squashfs/stored.js';
import type { Part } from './parts.js';

/** Who wins a conflict: the first part given, the last, or parts in this order (indexes; the rest after them, in order). */
export type PartPriority = 'first' | 'last' | number[];

/** Each part's rank (lower wins); null: no priority, conflicts are errors. */
export function ranks(n: number, priority: PartPriority | null): number[] | null {
  if (priority === null) return null;
  if (priority === 'first') return Array.from({ length: n }, (_, k) => k);
  if (priority === 'last') return Array.from({ length: n }, (_, k) => n - 1 - k);
  const rank = Array.from({ length: n }, (_, k) => priority.length + k);
  priority.forEach((k, i) => (rank[k] = i));
  return rank;
}

export interface Union {
  entries: Entry[];
  /** Paths several parts had, and how many of them were conflicts a priority settled. */
  shared: number;
  settled: number;
  /** Which part each entry of `entries` comes from (its index). */
  from: number[];
  /** Per part: how many of its entries lost a conflict (differed from the winner; a directory replaced by a non-directory counts once). */
  lost: number[];
}

type Lists = Array<Pick<Part, 'file' | 'entries' | 'firstNames'>>;

export function* unionOf(parts: Lists, rank: number[] | null): Steps<Union> {
  const n = parts.length;
  const at = new Array<number>(n).fill(0);
  /** A part's directory that lost to a non-directory: its subtree is dropped ("path/"). */
  const skip = new Array<string | null>(n).fill(null);
  const out: Entry[] = [];
  const outPart: number[] = [];
  /** First names of hard-linked files dropped for an equal file at their path (their links may point there). */
  const equalKept = new Set<Entry>();
  let shared = 0;
  let settled = 0;
  const lost = new Array<number>(n).fill(0);
  for (let step = 1; ; step++) {
    if ((step & 4095) === 0) yield;
    let min: string | null = null;
    let group: number[] = [];
    for (let k = 0; k < n; k++) {
      const list = parts[k]!.entries;
      const s = skip[k];
      if (s !== null) {
        while (at[k]! < list.length && list[at[k]!]!.path.startsWith(s)) at[k]!++;
        skip[k] = null; // a subtree is contiguous: once past it, it does not come back
      }
      if (at[k]! >= list.length) continue;
      const p = list[at[k]!]!.path;
      const c = min === null ? -1 : comparePaths(p, min);
      if (c < 0) {
        min = p;
        group = [k];
      } else if (c === 0) group.push(k);
    }
    if (min === null) break;
    if (group.length === 1) {
      const k = group[0]!;
      out.push(parts[k]!.entries[at[k]!++]!);
      outPart.push(k);
      continue;
    }
    shared++;
    const w = winner(parts, group, at, rank, min);
    if (w.settled) settled++;
    const we = parts[w.k]!.entries[at[w.k]!]!;
    out.push(we);
    outPart.push(w.k);
    for (const k of group) {
      const e = parts[k]!.entries[at[k]!++]!;
      if (k === w.k) continue;
      if (w.settled && (e.type !== 'dir' || we.type !== 'dir') && difference(parts, w.k, we, k, e) !== null) lost[k]!++;
      if (e.type === 'dir' && we.type !== 'dir') skip[k] = min + '/';
      if (we.type === 'file' && parts[k]!.firstNames.get(e.path) === e && difference(parts, w.k, we, k, e) === null) equalKept.add(e);
    }
  }
  relinkHardLinks(parts, out, outPart, equalKept);
  return { entries: out, shared, settled, from: outPart, lost };
}

/** The part whose entry stays at a path several parts have; an InputError naming both parts when they differ and no priority is given. */
function winner(parts: Lists, group: number[], at: number[], rank: number[] | null, path: string): { k: number; settled: boolean } {
  const entryOf = (k: number) => parts[k]!.entries[at[k]!]!;
  const best = rank === null ? group[0]! : group.reduce((a, b) => (rank[b]! < rank[a]! ? b : a));
  if (group.every((k) => entryOf(k).type === 'dir')) return { k: best, settled: false };
  let differs = false;
  for (const k of group) {
    if (k === group[0]) continue;
    const why = difference(parts, group[0]!, entryOf(group[0]!), k, entryOf(k));
    if (why === null) continue;
    if (rank === null) {
      throw new InputError(
        `${display(path)}: ${why(parts[group[0]!]!.file, parts[k]!.file)}: the parts conflict (--part-priority first or last, or a list of parts, says which wins)`,
      );
    }
    differs = true;
  }
  return { k: best, settled: differs };
}

/** The entry whose content and inode a name has: a hard link's first name in its part. */
function inodeOf(part: Lists[number], e: Entry): Entry {
  return e.type === 'hardlink' ? (part.firstNames.get(e.target!) ?? e) : e;
}

/** How two parts' entries at one path differ, as a message of the two part names; null when they do not. */
function difference(parts: Lists, ka: number, a0: Entry, kb: number, b0: Entry): ((pa: string, pb: string) => string) | null {
  const a = inodeOf(parts[ka]!, a0);
  const b = inodeOf(parts[kb]!, b0);
  const both = (what: string, x: string, y: string) => (pa: string, pb: string) => `${what} ${x} in ${pa}, ${y} in ${pb}`;
  if (a.type !== b.type) return (pa, pb) => `a ${a.type === 'dir' ? 'directory' : a.type} in ${pa}, a ${b.type === 'dir' ? 'directory' : b.type} in ${pb}`;
  if (a.mode !== b.mode) return both('mode', modeString(a.type, a.mode), modeString(b.type, b.mode));
  if (a.uid !== b.uid || a.gid !== b.gid) return both('owner', `${a.uid}:${a.gid}`, `${b.uid}:${b.gid}`);
  if (a.mtime !== b.mtime) return both('mtime', String(a.mtime), String(b.mtime));
  if (!sameXattrs(a.xattrs, b.xattrs)) return (pa, pb) => `other extended attributes in ${pa} than in ${pb}`;
  switch (a.type) {
    case 'file':
      if (a.size !== b.size) return both('size', String(a.size), String(b.size));
      if (!sameStoredContent(a.stored!, a.size, b.stored!, b.size)) return (pa, pb) => `other content in ${pa} than in ${pb}`;
      return null;
    case 'symlink':
      return a.target === b.target ? null : both('a link to', `'${display(a.target!)}'`, `'${display(b.target!)}'`);
    case 'char':
    case 'block':
      return a.rdev === b.rdev ? null : both('device', String(a.rdev), String(b.rdev));
    default:
      return null;
  }
}

function sameXattrs(a: Entry['xattrs'], b: Entry['xattrs']): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every(([name, value], i) => y[i]![0] === name && y[i]![1].equals(value));
}

/**
 * Hard links whose first name is gone (another part's entry won its path): the first remaining
 * name of the file takes its content, and the others link to it. Links whose first name gave way
 * to an equal file link to that one.
 */
function relinkHardLinks(parts: Lists, out: Entry[], outPart: number[], equalKept: Set<Entry>): void {
  const kept = new Set<Entry>();
  for (let i = 0; i < out.length; i++) {
    const e = out[i]!;
    if (e.type === 'file' && parts[outPart[i]!]!.firstNames.get(e.path) === e) kept.add(e);
  }
  const moved = new Map<Entry, string>();
  for (let i = 0; i < out.length; i++) {
    const e = out[i]!;
    if (e.type !== 'hardlink') continue;
    const first = parts[outPart[i]!]!.firstNames.get(e.target!);
    if (!first || kept.has(first) || equalKept.has(first)) continue;
    const to = moved.get(first);
    if (to !== undefined) {
      e.target = to;
      continue;
    }
    e.type = 'file';
    e.size = first.size;
    e.stored = first.stored!;
    delete e.target;
    moved.set(first, e.path);
  }
}

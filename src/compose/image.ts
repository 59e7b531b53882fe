// compose: one image tree from a base root filesystem (optional) and the /cvmfs payload.
import type { Diagnostics } from '../model/diagnostics.js';
import { display } from '../model/bytes.js';
import { type Entry, TreeEntry, comparePaths } from '../model/entry.js';
import { InputError } from '../model/errors.js';
import { sortEntries } from '../model/plan.js';

export interface ComposeOptions {
  /** Entries of the base root filesystem ("/" first), or null for a /cvmfs-only image. */
  base: Entry[] | null;
  /** Payload entries under `mount`, sorted. Without a base they are moved to the root in place. */
  payload: Entry[];
  mount: string;
  /** Time for directories shrinkwrap makes itself. */
  epoch: number;
  /** Generated entries in image coordinates (compose/generated.ts): files win, directories give way. */
  extra?: Entry[];
}

/** SOURCE_DATE_EPOCH when set (it must be an integer), else the newest mtime in the payload. */
export function imageEpoch(payload: readonly Entry[]): number {
  const env = process.env['SOURCE_DATE_EPOCH'];
  if (env !== undefined && env !== '') {
    if (!/^\d+$/.test(env)) throw new InputError(`SOURCE_DATE_EPOCH=${env}: not a whole number of seconds`);
    return Number(env);
  }
  let newest = 0;
  for (const e of payload) if (e.mtime > newest) newest = e.mtime;
  return newest;
}

function syntheticDir(path: string, epoch: number, reason: string): Entry {
  return { path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: epoch, size: 0, reason };
}

/**
 * The image tree, sorted. With a base, the payload lands under `mount` and wins over whatever the
 * base has at the same paths; without one, the payload is the image and `mount` becomes "/".
 */
export function composeImage(opts: ComposeOptions, diag: Diagnostics): Entry[] {
  const { base, payload, mount, epoch } = opts;
  if (!base) {
    // The payload's entries move to the root in place: a copy would double the memory of a
    // two-million-entry build (the caller is done with their /cvmfs paths).
    const cut = mount.length;
    const out: Entry[] = [syntheticDir('/', epoch, `image root (mounted at ${mount})`)];
    for (const e of payload) {
      if (e instanceof TreeEntry) e.moveUp(cut);
      else e.path = e.path.slice(cut);
      if (e.type === 'hardlink') e.target = e.target!.slice(cut);
      out.push(e);
    }
    return opts.extra?.length ? addExtra(out, opts.extra) : out;
  }

  // Both lists are in path order: merge them, rather than key millions of paths in a map.
  const mountAt = findPath(base, mount);
  const mountEntry = mountAt >= 0 ? base[mountAt]! : undefined;
  let fromBase: readonly Entry[] = base;
  if (mountEntry && mountEntry.type !== 'dir') {
    diag.warn('base-conflict', `base image has ${display(mount)} as a ${mountEntry.type}; replaced by a directory`);
    fromBase = base.filter((_, i) => i !== mountAt);
  }
  // The mount point sorts before everything below it, so it leads the payload's side.
  const payloadSide = mountEntry?.type === 'dir' ? payload : [syntheticDir(mount, epoch, 'mount point of the /cvmfs payload'), ...payload];
  const merged = mergeInto(fromBase, payloadSide, (_old, _new) => 'new');
  const out = opts.extra?.length ? addExtra(merged, opts.extra) : merged;
  // Hard links in the base whose first name went away point at nothing: fail loudly, not silently.
  const targets = new Set<string>();
  for (const e of out) if (e.type === 'hardlink') targets.add(e.target!);
  if (targets.size > 0) {
    const present = new Set<string>();
    for (const e of out) {
      const p = e.path;
      if (targets.has(p)) present.add(p);
    }
    for (const e of out) {
      if (e.type === 'hardlink' && !present.has(e.target!)) {
        throw new InputError(`base image: hard link ${display(e.path)} -> ${display(e.target!)} lost its target under ${display(mount)}`);
      }
    }
  }
  return out;
}

/** Index of `path` in entries sorted by path, or -1. */
function findPath(sorted: readonly Entry[], path: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = comparePaths(sorted[mid]!.path, path);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/**
 * Two lists in path order as one. Where both have a path, `pick` chooses; when the new entry wins
 * over an old directory without being one, the old directory's subtree goes with it.
 */
function mergeInto(old: readonly Entry[], add: readonly Entry[], pick: (o: Entry, n: Entry) => 'old' | 'new'): Entry[] {
  const out: Entry[] = [];
  let i = 0;
  let j = 0;
  /** An old directory replaced by a non-directory: its old descendants are dropped ("/x/"). */
  let dropped: string | null = null;
  let oldPath = old.length > 0 ? old[0]!.path : '';
  while (i < old.length || j < add.length) {
    if (i < old.length && dropped !== null && oldPath.startsWith(dropped)) {
      if (++i < old.length) oldPath = old[i]!.path;
      continue;
    }
    const c = i >= old.length ? 1 : j >= add.length ? -1 : comparePaths(oldPath, add[j]!.path);
    if (c < 0) {
      out.push(old[i]!);
      if (++i < old.length) oldPath = old[i]!.path;
    } else if (c > 0) {
      out.push(add[j++]!);
    } else {
      const o = old[i]!;
      const n = add[j]!;
      if (pick(o, n) === 'new') {
        out.push(n);
        if (o.type === 'dir' && n.type !== 'dir') dropped = oldPath + '/';
      } else out.push(o);
      j++;
      if (++i < old.length) oldPath = old[i]!.path;
    }
  }
  return out;
}

/** Generated entries into a sorted image: a generated file replaces what is there, a directory only fills a gap. */
function addExtra(image: Entry[], extra: Entry[]): Entry[] {
  const sorted = [...extra];
  sortEntries(sorted);
  return mergeInto(image, sorted, (old, e) => (e.type === 'dir' || old.type === 'dir' ? 'old' : 'new'));
}

/** --mtime: 'keep', 'clamp' (nothing newer than the image epoch), or one time for every entry. */
export type MtimePolicy = 'keep' | 'clamp' | number;

export function normaliseTimes(image: Entry[], policy: MtimePolicy, epoch: number): void {
  if (policy === 'keep') return;
  for (const e of image) e.mtime = policy === 'clamp' ? Math.min(e.mtime, epoch) : policy;
}

/** --owner UID:GID: one owner for the whole /cvmfs payload (the base image keeps its own). */
export function normaliseOwner(payload: Entry[], owner: [number, number] | null): void {
  if (!owner) return;
  for (const e of payload) [e.uid, e.gid] = owner;
}

// compose: one image tree from a base root filesystem (optional) and the /cvmfs payload.
import type { Diagnostics } from '../model/diagnostics.js';
import { display } from '../model/bytes.js';
import { type Entry, TreeEntry, comparePaths, findPath, parentPath } from '../model/entry.js';
import { InputError } from '../model/errors.js';
import { sortEntries } from '../model/plan.js';
import { keepsBaseEntry } from './generated.js';

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
    return opts.extra?.length ? addExtra(out, opts.extra, diag) : out;
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
  const lead = mountEntry?.type === 'dir' ? undefined : syntheticDir(mount, epoch, 'mount point of the /cvmfs payload');
  const merged = mergeInto(fromBase, payload, () => 'new', lead);
  const out = opts.extra?.length ? addExtra(merged, opts.extra, diag) : merged;
  // Hard links in the base whose first name went away (below the mount point, or below a path a
  // generated entry took over) point at nothing: fail loudly, not silently.
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
        throw new InputError(`base image: hard link ${display(e.path)} -> ${display(e.target!)} lost its target: the image replaces it (with ${display(mount)} or the entries shrinkwrap generates)`);
      }
    }
  }
  return out;
}

/**
 * Two lists in path order as one (`lead`, if given, goes before `add`'s first entry). Where both
 * have a path, `pick` chooses; when the new entry wins over an old directory without being one,
 * the old directory's subtree goes with it. Each path is built once (see TreeEntry).
 */
function mergeInto(old: readonly Entry[], add: readonly Entry[], pick: (o: Entry, n: Entry) => 'old' | 'new', lead?: Entry): Entry[] {
  const out: Entry[] = [];
  let i = 0;
  let j = lead ? -1 : 0;
  const addAt = (k: number) => (k < 0 ? lead! : add[k]!);
  /** An old directory replaced by a non-directory: its old descendants are dropped ("/x/"). */
  let dropped: string | null = null;
  let oldPath = old.length > 0 ? old[0]!.path : '';
  let addPath = j < add.length ? addAt(j).path : '';
  const nextOld = () => {
    if (++i < old.length) oldPath = old[i]!.path;
  };
  const nextAdd = () => {
    if (++j < add.length) addPath = addAt(j).path;
  };
  while (i < old.length || j < add.length) {
    if (j >= add.length && dropped === null) {
      // Nothing left to merge in: the rest of the old list as it is.
      for (; i < old.length; i++) out.push(old[i]!);
      break;
    }
    if (i < old.length && dropped !== null) {
      if (oldPath.startsWith(dropped)) {
        nextOld();
        continue;
      }
      dropped = null; // a subtree is contiguous: once past it, it does not come back
    }
    const c = i >= old.length ? 1 : j >= add.length ? -1 : comparePaths(oldPath, addPath);
    if (c < 0) {
      out.push(old[i]!);
      nextOld();
    } else if (c > 0) {
      out.push(addAt(j));
      nextAdd();
    } else {
      const o = old[i]!;
      const n = addAt(j);
      if (pick(o, n) === 'new') {
        out.push(n);
        if (o.type === 'dir' && n.type !== 'dir') dropped = oldPath + '/';
      } else out.push(o);
      nextAdd();
      nextOld();
    }
  }
  return out;
}

/**
 * Generated entries into a sorted image. A generated directory keeps a directory already there (and
 * its content); anything else in the way of a generated path is replaced, never kept: a base's
 * `/.shrinkwrap -> /host/dir` kept as a link would have the generated files written below it,
 * which a directory writer follows onto the host, and which no image format can hold.
 */
function addExtra(image: Entry[], extra: Entry[], diag: Diagnostics): Entry[] {
  const sorted = [...extra];
  sortEntries(sorted);
  dropWhereBaseHasOne(image, sorted);
  return mergeInto(image, sorted, (old, e) => {
    if (e.type === 'dir' && old.type === 'dir') return 'old';
    if (old.type === 'dir' || e.type === 'dir') {
      // A file over a file is the ordinary case (a base's own /release_setup.sh); a change of type is not.
      const was = old.type === 'symlink' ? `a symlink (to '${display(old.target!)}')` : `a ${old.type}`;
      diag.warn('base-conflict', `base image has ${display(e.path)} as ${was}; replaced by ${e.type === 'dir' ? 'a directory' : 'a file'} shrinkwrap generates`);
    }
    return 'new';
  });
}

/**
 * Removes (in place) the generated entries that give way to the base (`keepsBaseEntry`) where the
 * image has an entry at their path, or no directory to hold them (a base's `/etc -> elsewhere`).
 */
function dropWhereBaseHasOne(image: readonly Entry[], sortedExtra: Entry[]): void {
  /** Generated paths that will be directories of the image, in path order so parents come first. */
  const dirs = new Set<string>();
  let kept = 0;
  for (const e of sortedExtra) {
    if (keepsBaseEntry(e)) {
      const parent = parentPath(e.path);
      const at = findPath(image, parent);
      const parentIsDir = dirs.has(parent) || (at >= 0 && image[at]!.type === 'dir');
      if (findPath(image, e.path) >= 0 || !parentIsDir) continue;
    }
    if (e.type === 'dir') dirs.add(e.path);
    sortedExtra[kept++] = e;
  }
  sortedExtra.length = kept;
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

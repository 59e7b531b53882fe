// compose: one image tree from a base root filesystem (optional) and the /cvmfs payload.
import type { Diagnostics } from '../model/diagnostics.js';
import { display } from '../model/bytes.js';
import { type Entry, TreeEntry } from '../model/entry.js';
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

  const byPath = new Map<string, Entry>();
  for (const e of base) byPath.set(e.path, e);
  const mountEntry = byPath.get(mount);
  if (mountEntry && mountEntry.type !== 'dir') {
    diag.warn('base-conflict', `base image has ${display(mount)} as a ${mountEntry.type}; replaced by a directory`);
    byPath.delete(mount);
  }
  if (!byPath.has(mount)) byPath.set(mount, syntheticDir(mount, epoch, 'mount point of the /cvmfs payload'));
  const replaced: string[] = [];
  for (const e of payload) {
    const old = byPath.get(e.path);
    if (old && old.type === 'dir' && e.type !== 'dir') replaced.push(e.path);
    byPath.set(e.path, e);
  }
  // A base directory replaced by a payload file or link takes its subtree with it.
  let out = [...byPath.values()];
  if (replaced.length > 0) {
    const fromPayload = new Set(payload);
    out = out.filter((e) => fromPayload.has(e) || !replaced.some((r) => e.path.startsWith(r + '/')));
  }
  out = addExtra(out, opts.extra);
  // Hard links in the base whose first name went away point at nothing: fail loudly, not silently.
  const present = new Set(out.map((e) => e.path));
  for (const e of out) {
    if (e.type === 'hardlink' && !present.has(e.target!)) {
      throw new InputError(`base image: hard link ${display(e.path)} -> ${display(e.target!)} lost its target under ${display(mount)}`);
    }
  }
  return out;
}

/** Generated entries into a sorted image: a generated file replaces what is there, a directory only fills a gap. */
function addExtra(image: Entry[], extra: Entry[] | undefined): Entry[] {
  const byPath = new Map(image.map((e) => [e.path, e]));
  for (const e of extra ?? []) {
    const old = byPath.get(e.path);
    if (old && (e.type === 'dir' || old.type === 'dir')) continue;
    byPath.set(e.path, e);
  }
  const out = [...byPath.values()];
  sortEntries(out);
  return out;
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

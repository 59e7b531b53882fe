// Checking an image's tree against a plan manifest (`verify --manifest`: the output of `shrinkwrap
// plan --json`): every entry there with its type, size, mode, owner, time and target, and nothing
// else. The tree is any image's, as entries in path order (SquashFS walked, OCI layers flattened).
import { constants as bufferConstants } from 'node:buffer';
import { display, fromText } from '../model/bytes.js';
import type { Entry, EntryType } from '../model/entry.js';
import { describeSystemError } from '../model/errors.js';
import { type Check, arr, int, obj, oneOf, optional, readJsonFile, size, str, uint } from '../util/json-check.js';
import type { Problems } from './problems.js';

const MAX_STRING_LENGTH = bufferConstants.MAX_STRING_LENGTH;

/** An entry of `shrinkwrap plan --json` (`entries`). */
export interface ManifestEntry {
  /** Text path (UTF-8); `pathBase64` holds the exact bytes when the name is not UTF-8. */
  path: string;
  pathBase64?: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  target?: string;
  targetBase64?: string;
  rdev?: number;
}

// A plan's entries are checked field by field: a null entry or a numeric path is a wrong input,
// not a crash in the comparison. Plans of millions of entries are hundreds of MB: the limit is
// what one string can hold, as JSON.parse needs the whole text as one.
const manifestEntryCheck: Check<ManifestEntry> = obj({
  path: str,
  pathBase64: optional(str),
  type: oneOf('dir', 'file', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'socket'),
  size,
  mode: uint,
  uid: uint,
  gid: uint,
  mtime: int,
  target: optional(str),
  targetBase64: optional(str),
  rdev: optional(uint),
});
const planCheck = obj({ entries: arr(manifestEntryCheck, 'an array (the output of shrinkwrap plan --json)') });

/** `verify --manifest FILE`: the entries of `shrinkwrap plan --json` output. InputError naming the option and file. */
export function readManifestFile(file: string): ManifestEntry[] {
  const label = `--manifest ${file}`;
  return readJsonFile(file, planCheck, label, { limit: MAX_STRING_LENGTH }).value.entries;
}

/** Byte-string path of a manifest entry mapped into the image, or undefined outside `root`. */
function mapPath(path: string, root: string, imageRoot = '/'): string | undefined {
  let rest: string;
  if (root === '' || root === '/') rest = path;
  else if (path === root) rest = '/';
  else if (path.startsWith(root + '/')) rest = path.slice(root.length);
  else return undefined;
  if (imageRoot === '' || imageRoot === '/') return rest;
  return rest === '/' ? imageRoot : imageRoot + rest;
}

/** Where a plan's paths start: the payload, /cvmfs. */
export const PLAN_ROOT = '/cvmfs';
/**
 * What an image with a root filesystem says about itself (compose/provenance.ts): with it, the
 * payload is at /cvmfs, as in the plan; without it (a /cvmfs-only image), /cvmfs is the image root.
 */
export const SELF_DESCRIPTION = '/.shrinkwrap/plan.json';

/** Where the plan's /cvmfs is in an image: `given` (--image-root), else what the image says of itself. */
export function payloadRoot(given: string | undefined, has: (path: string) => boolean): string {
  if (given !== undefined) return given;
  return has(fromText(SELF_DESCRIPTION)) ? PLAN_ROOT : '/';
}

/** Compare the tree `walk()` gives (entries in path order, hard links as in a plan) with `manifest`. */
export function compareManifest(walk: () => Iterable<Entry>, manifest: ManifestEntry[], manifestRoot: string, imageRootText: string, p: Problems): void {
  const root = fromText(manifestRoot.replace(/\/+$/, ''));
  const imageRoot = fromText(imageRootText.replace(/\/+$/, '')) || '/';
  const inScope = (path: string) => imageRoot === '/' || path === imageRoot || path.startsWith(imageRoot + '/');
  const entries = new Map<string, Entry>();
  try {
    for (const e of walk()) if (inScope(e.path)) entries.set(e.path, e);
  } catch (err) {
    p.add(`manifest: the image cannot be walked: ${describeSystemError(err)}`);
    return;
  }
  const seen = new Set<string>();
  let rootListed = false;
  for (const m of manifest) {
    const raw = m.pathBase64 !== undefined ? Buffer.from(m.pathBase64, 'base64').toString('latin1') : fromText(m.path);
    const path = mapPath(raw, root, imageRoot);
    if (path === undefined) {
      p.add(`manifest: ${display(raw)} is outside ${display(root)}`);
      continue;
    }
    if (path === imageRoot) rootListed = true;
    seen.add(path);
    const e = entries.get(path);
    const at = `manifest: ${display(raw)}`;
    if (!e) {
      p.add(`${at}: missing from the image`);
      continue;
    }
    const diffs: string[] = [];
    if (e.type !== m.type) diffs.push(`type ${e.type}, expected ${m.type}`);
    if (e.size !== m.size) diffs.push(`size ${e.size}, expected ${m.size}`);
    if (e.mode !== m.mode) diffs.push(`mode ${e.mode.toString(8)}, expected ${m.mode.toString(8)}`);
    if (e.uid !== m.uid) diffs.push(`uid ${e.uid}, expected ${m.uid}`);
    if (e.gid !== m.gid) diffs.push(`gid ${e.gid}, expected ${m.gid}`);
    if (e.mtime !== m.mtime) diffs.push(`mtime ${e.mtime}, expected ${m.mtime}`);
    if (m.target !== undefined || m.targetBase64 !== undefined) {
      let target = m.targetBase64 !== undefined ? Buffer.from(m.targetBase64, 'base64').toString('latin1') : fromText(m.target!);
      if (m.type === 'hardlink') target = mapPath(target, root, imageRoot) ?? target;
      if (e.target !== target) diffs.push(`${m.type === 'hardlink' ? 'hard link' : 'link'} target "${display(e.target ?? '')}", expected "${display(target)}"`);
    }
    if (m.rdev !== undefined && e.rdev !== m.rdev) diffs.push(`rdev ${e.rdev}, expected ${m.rdev}`);
    if (diffs.length > 0) p.add(`${at}: ${diffs.join('; ')}`);
  }
  // Empty repository directories (/cvmfs/<fqrn>, made for every repository of the source) are not
  // part of a selection: the manifest does not list them.
  const children = new Set<string>();
  for (const path of entries.keys()) children.add(path.slice(0, path.lastIndexOf('/')));
  const repoMountPoint = (path: string) =>
    entries.get(path)?.type === 'dir' && !children.has(path) && path.lastIndexOf('/') === (imageRoot === '/' ? 0 : imageRoot.length);
  for (const path of entries.keys()) {
    if (seen.has(path) || (path === imageRoot && !rootListed) || repoMountPoint(path)) continue;
    p.add(`manifest: ${display(path)} is in the image but not in the manifest`);
  }
}

// How a composed image splits into OCI layers on top of the base's own: one layer per /cvmfs
// repository (default: a site that already has one repository's layer pulls only the others), or
// one per release part (`--layer-per release`: the release, each base project, the compiler, each
// LCG release, so that releases sharing externals share those layers), and a last layer with what
// shrinkwrap generates. Each layer carries the directories above its entries; base paths the image
// no longer has become whiteouts.
import { type Entry, ancestors, baseName, comparePaths, copyEntry, findPath, parentPath } from '../model/entry.js';

export type LayerPer = 'repository' | 'release';

export interface LayerGroup {
  label: string;
  entries: Entry[];
}

export interface LayerInput {
  image: readonly Entry[];
  /** Entries of the base (objects the image shares with it are not repeated in new layers). */
  base: readonly Entry[];
  /** The base has no layer blobs of its own (a directory): its entries become the first layer. */
  baseAsLayer: boolean;
  mount: string;
  per: LayerPer;
  /** Part label of payload entries, for per: 'release'. */
  partOf: ReadonlyMap<Entry, string>;
}

const GENERATED = 'added by shrinkwrap (setup script, mount points, provenance)';
const BASE = 'base root filesystem';

/** A group being filled: its entries, and the directories of its output above the last one. */
interface Filling {
  out: Entry[];
  chain: Entry[];
}

/**
 * One pass over the image in path order. Each entry goes to its group, preceded by the image's
 * directories above it that the group does not carry yet: the image's chain of directories above
 * the entry is known from the pass, and each group remembers the chain it has written, so groups
 * come out in path order without a map of millions of paths or a sort.
 */
export function layerGroups(input: LayerInput): LayerGroup[] {
  const { image, mount } = input;
  const fromBase = new Set(input.base);
  const filling = new Map<string, Filling>();
  const generated: Entry[] = [];
  // Hard links need to know where their first names went; only those names are remembered.
  const linkTargets = new Set<string>();
  for (const e of image) if (e.type === 'hardlink') linkTargets.add(e.target!);
  const groupOfTarget = new Map<string, string>();
  const hardLinks: Array<[label: string, index: number]> = [];
  // The image's directories above the current entry, outermost first ("/" left out), and their paths.
  const above: Entry[] = [];
  const abovePaths: string[] = [];
  const repoPrefix = mount + '/';
  for (const e of image) {
    const path = e.path;
    if (path === '/') continue;
    while (above.length > 0 && !path.startsWith(abovePaths[abovePaths.length - 1]! + '/')) {
      above.pop();
      abovePaths.pop();
    }
    let label: string | null;
    if (fromBase.has(e)) label = input.baseAsLayer ? BASE : null;
    else if (path.startsWith(repoPrefix)) {
      const end = path.indexOf('/', repoPrefix.length);
      const repo = end < 0 ? path.slice(repoPrefix.length) : path.slice(repoPrefix.length, end);
      label = input.per === 'release' ? (input.partOf.get(e) ?? `repository ${repo}`) : `repository ${repo}`;
    } else {
      label = null;
      generated.push(e);
    }
    if (label !== null) {
      let g = filling.get(label);
      if (!g) filling.set(label, (g = { out: [], chain: [] }));
      let k = 0;
      while (k < g.chain.length && k < above.length && g.chain[k] === above[k]) k++;
      g.chain.length = k;
      for (; k < above.length; k++) {
        g.out.push(above[k]!);
        g.chain.push(above[k]!);
      }
      if (e.type === 'hardlink') hardLinks.push([label, g.out.length]);
      if (linkTargets.has(path)) groupOfTarget.set(path, label);
      g.out.push(e);
      if (e.type === 'dir') g.chain.push(e);
    }
    if (e.type === 'dir') {
      above.push(e);
      abovePaths.push(path);
    }
  }
  // A hard link whose first name is in another layer could not be extracted: it becomes a copy.
  for (const [label, i] of hardLinks) {
    const out = filling.get(label)!.out;
    const link = out[i]!;
    if (groupOfTarget.get(link.target!) === label) continue;
    const at = findPath(image, link.target!);
    if (at >= 0) out[i] = { ...copyEntry(image[at]!), path: link.path, reason: link.reason };
  }

  // Base paths gone from the image (replaced by a payload directory's parent, say): whiteouts.
  // Only in a directory the image keeps: where the image has a file or link in place of a base
  // directory, that entry replaces the whole tree when the layer is applied, and a whiteout would
  // be an entry below a non-directory.
  if (!input.baseAsLayer) {
    const basePaths = new Set(input.base.map((b) => b.path));
    const kept = new Set<string>(['/']);
    const keptDirs = new Set<string>(['/']);
    for (const e of image) {
      const p = e.path;
      if (fromBase.has(e) || basePaths.has(p)) {
        kept.add(p);
        if (e.type === 'dir') keptDirs.add(p);
      }
    }
    for (const b of input.base) {
      if (b.path === '/' || kept.has(b.path) || !keptDirs.has(parentPath(b.path))) continue;
      const p = parentPath(b.path);
      const wh = (p === '/' ? '' : p) + '/.wh.' + baseName(b.path);
      generated.push({ path: wh, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, reason: `whiteout of base ${b.path}` });
    }
  }
  const groups: LayerGroup[] = [...filling].map(([label, g]) => ({ label, entries: g.out }));
  if (generated.length > 0) groups.push({ label: GENERATED, entries: withAncestors(generated, image) });
  const rank = (l: string) => (l === BASE ? 0 : l === GENERATED ? 2 : 1);
  return groups.sort((a, b) => rank(a.label) - rank(b.label) || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

/** A few entries with the image's directories above them, in path order. */
function withAncestors(own: Entry[], image: readonly Entry[]): Entry[] {
  const have = new Set(own.map((e) => e.path));
  const out = [...own];
  for (const e of own) {
    for (const a of ancestors(e.path)) {
      if (have.has(a)) continue;
      have.add(a);
      const at = findPath(image, a);
      if (at >= 0) out.push(image[at]!);
    }
  }
  out.sort((x, y) => comparePaths(x.path, y.path));
  return out;
}

// How a composed image splits into OCI layers on top of the base's own: one layer per /cvmfs
// repository (default: a site that already has one repository's layer pulls only the others), or
// one per release part (`--layer-per release`: the release, each base project, the compiler, each
// LCG release, so that releases sharing externals share those layers), and a last layer with what
// shrinkwrap generates. Each layer carries the directories above its entries; base paths the image
// no longer has become whiteouts.
import { type Entry, ancestors, baseName, comparePaths, parentPath } from '../model/entry.js';

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

export function layerGroups(input: LayerInput): LayerGroup[] {
  const { image, mount } = input;
  const byPath = new Map(image.map((e) => [e.path, e]));
  const fromBase = new Set(input.base);
  const groups = new Map<string, Entry[]>();
  const put = (label: string, e: Entry) => {
    let g = groups.get(label);
    if (!g) groups.set(label, (g = []));
    g.push(e);
  };
  const GENERATED = 'added by shrinkwrap (setup script, mount points, provenance)';
  const BASE = 'base root filesystem';
  for (const e of image) {
    if (e.path === '/') continue;
    if (fromBase.has(e)) {
      if (input.baseAsLayer) put(BASE, e);
      continue;
    }
    let label = GENERATED;
    if (e.path.startsWith(mount + '/')) {
      const rest = e.path.slice(mount.length + 1);
      const repo = rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : rest;
      label = input.per === 'release' ? (input.partOf.get(e) ?? `repository ${repo}`) : `repository ${repo}`;
    }
    put(label, e);
  }
  // Base paths gone from the image (replaced by a payload directory's parent, say): whiteouts.
  if (!input.baseAsLayer) {
    for (const b of input.base) {
      if (b.path === '/' || byPath.has(b.path) || !byPath.has(parentPath(b.path))) continue;
      const p = parentPath(b.path);
      const wh = (p === '/' ? '' : p) + '/.wh.' + baseName(b.path);
      put(GENERATED, { path: wh, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, reason: `whiteout of base ${b.path}` });
    }
  }
  const order = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  function rank(l: string): number {
    return l === BASE ? 0 : l === GENERATED ? 2 : 1;
  }
  return order.map((label) => {
    const own = groups.get(label)!;
    const have = new Set(own.map((e) => e.path));
    const out = [...own];
    for (const e of own) {
      for (const a of ancestors(e.path)) {
        if (have.has(a)) continue;
        have.add(a);
        const dir = byPath.get(a);
        if (dir) out.push(dir);
      }
    }
    // A hard link whose first name is in another layer could not be extracted: it becomes a copy.
    for (const [i, e] of out.entries()) {
      if (e.type === 'hardlink' && !have.has(e.target!)) out[i] = { ...byPath.get(e.target!)!, path: e.path, reason: e.reason };
    }
    out.sort((x, y) => comparePaths(x.path, y.path));
    return { label, entries: out };
  });
}

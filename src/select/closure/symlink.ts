// Symlink closure: the targets of selected symlinks are selected too, with every link met on the
// way and the ancestors of what they lead to, until nothing new appears. A link that dangles or
// leads outside the source tree stays in the image as a link and is reported.
import { display } from '../../model/bytes.js';
import { joinPath, parentPath } from '../../model/entry.js';
import type { Selection } from '../selection.js';
import { MOUNT, type SpecRule } from '../spec/parse.js';
import type { SpecTree } from '../spec/tree.js';
import { walkSteps } from '../walk.js';
import type { Steps } from '../../util/steps.js';

/** Linux gives up after 40 links in one lookup (ELOOP); so do we. */
const MAX_HOPS = 40;

export interface ClosureStats {
  linksFollowed: number;
  entriesAdded: number;
  dangling: number;
  outside: number;
}

/** Links followed between pauses (see util/steps.ts): a closure of a release follows hundreds of thousands. */
const PAUSE_EVERY = 256;

/** Follow links until no new one is selected; pauses now and then, and wherever a deep link's target is walked. */
export function* symlinkClosureSteps(sel: Selection, tree: SpecTree, initialLinks: Iterable<string>): Steps<ClosureStats> {
  const stats: ClosureStats = { linksFollowed: 0, entriesAdded: 0, dangling: 0, outside: 0 };
  const before = sel.size;
  const queue = [...initialLinks];
  const done = new Set<string>();
  while (queue.length > 0) {
    const link = queue.pop()!;
    if (done.has(link)) continue;
    done.add(link);
    if (++stats.linksFollowed % PAUSE_EVERY === 0) yield;
    for (const item of yield* follow(sel, tree, link, stats)) queue.push(item);
  }
  stats.entriesAdded = sel.size - before;
  return stats;
}

/** What the resolver needs to know of a path: from the selection when it is there, else from lstat. */
interface Node {
  type: 'dir' | 'symlink' | 'other';
  target?: string;
  known: boolean;
}

function lookup(sel: Selection, path: string): Node | null {
  const e = sel.get(path);
  if (e) return { type: e.type === 'dir' || e.type === 'symlink' ? e.type : 'other', target: e.target, known: true };
  const st = sel.source.stat(path);
  if (!st) return null;
  return { type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other', known: false };
}

/** Resolve one selected link the way the kernel would; returns links that still need following. */
function* follow(sel: Selection, tree: SpecTree, link: string, stats: ClosureStats): Steps<string[]> {
  const deep = sel.deepLinks.has(link);
  const target = sel.get(link)!.target!;
  const reason = () => `symlink closure: target of ${display(link)}`;
  const ancestorReason = () => `ancestor of a target of ${display(link)} (symlink closure)`;
  const newLinks: string[] = [];
  const warn = (kind: 'dangling' | 'outside', what: string) => {
    stats[kind]++;
    sel.diag.warn(kind === 'dangling' ? 'symlink-dangling' : 'symlink-outside', `${display(link)} -> ${display(target)}: ${what}; kept as a link`);
  };
  /** Select a path met on the way (with its ancestors) unless it is selected or excluded. */
  const select = (path: string, why: string): boolean => {
    const excluded = tree.exclusionOf(path);
    if (excluded) {
      sel.diag.warn('symlink-excluded', `${display(link)} -> ${display(target)}: ${display(path)} is excluded by ${excluded.origin} '${excluded.text}'; kept as a link`);
      return false;
    }
    sel.addAncestors(path, ancestorReason());
    const st = sel.source.stat(path);
    const e = st && sel.entryAt(path, st, why);
    if (e) sel.add(e);
    return true;
  };

  let dir = target.startsWith('/') ? '/' : parentPath(link);
  let rest = target.split('/');
  let at = 0;
  let hops = 0;
  const via: string[] = [];
  while (at < rest.length) {
    const c = rest[at++]!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      dir = parentPath(dir);
      continue;
    }
    const path = joinPath(dir, c);
    // Everything in the image under /cvmfs lives in a repository directory of the source root.
    if (dir === '/' ? c !== MOUNT.slice(1) : dir === MOUNT ? !sel.source.isRepo(c) : false) {
      warn('outside', dir === MOUNT ? `repository ${display(c)} is not in the source tree` : 'points outside /cvmfs');
      return newLinks;
    }
    if (path === MOUNT) {
      dir = path;
      continue;
    }
    const node = lookup(sel, path);
    if (!node) {
      warn('dangling', `${display(path)} does not exist`);
      return newLinks;
    }
    let last = true;
    for (let i = at; i < rest.length; i++) if (rest[i] !== '' && rest[i] !== '.') last = false;
    if (node.type === 'symlink') {
      if (++hops > MAX_HOPS) {
        warn('dangling', 'too many levels of symbolic links');
        return newLinks;
      }
      if (!node.known && !select(path, reason())) return newLinks;
      via.push(path);
      const t = node.target ?? sel.get(path)!.target!;
      if (t.startsWith('/')) dir = '/';
      rest = [...t.split('/'), ...rest.slice(at)];
      at = 0;
      continue;
    }
    if (!last) {
      if (node.type !== 'dir') {
        warn('dangling', `${display(path)} is not a directory`);
        return newLinks;
      }
      dir = path;
      continue;
    }
    // The end of the chain: select it, with its ancestors, and its subtree for a deep link.
    const endReason = via.length > 0 ? `${reason()} via ${via.map(display).join(', ')}` : reason();
    if (node.type === 'dir' && deep) {
      if (tree.exclusionOf(path) || sel.coveredDeep(path)) {
        if (!node.known) select(path, endReason);
        return newLinks;
      }
      sel.addAncestors(path, ancestorReason());
      sel.deepRoots.add(path);
      for (const item of yield* walkSteps(sel, tree, path, { reason: endReason, state: { node: tree.nodeAt(path), deep: closureRule(path, endReason), flat: null } })) newLinks.push(item);
      for (const l of newLinks) sel.deepLinks.add(l);
    } else if (!node.known) {
      select(path, endReason);
    }
    return newLinks;
  }
  return newLinks;
}

/** A recursive rule standing for "everything below this link target", for the walker. */
function closureRule(path: string, reason: string): SpecRule {
  return { kind: 'recursive', path, origin: 'symlink closure', text: display(path) + '/*', reason };
}

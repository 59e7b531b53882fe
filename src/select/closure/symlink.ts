// Symlink closure: the targets of selected symlinks are selected too, with every link met on the
// way and the ancestors of what they lead to, until nothing new appears. A link that dangles or
// leads outside the source tree stays in the image as a link and is reported.
import { display } from '../../model/bytes.js';
import { joinPath, parentPath } from '../../model/entry.js';
import type { Selection } from '../selection.js';
import { MOUNT, type SpecRule } from '../spec/parse.js';
import type { SpecTree } from '../spec/tree.js';
import { walkSelected } from '../walk.js';

/** Linux gives up after 40 links in one lookup (ELOOP); so do we. */
const MAX_HOPS = 40;

export interface ClosureStats {
  linksFollowed: number;
  entriesAdded: number;
  dangling: number;
  outside: number;
}

export function symlinkClosure(sel: Selection, tree: SpecTree, initialLinks: Iterable<string>): ClosureStats {
  const stats: ClosureStats = { linksFollowed: 0, entriesAdded: 0, dangling: 0, outside: 0 };
  const before = sel.entries.length;
  const queue = [...initialLinks];
  const done = new Set<string>();
  while (queue.length > 0) {
    const link = queue.pop()!;
    if (done.has(link)) continue;
    done.add(link);
    stats.linksFollowed++;
    queue.push(...follow(sel, tree, link, stats));
  }
  stats.entriesAdded = sel.entries.length - before;
  return stats;
}

/** Resolve one selected link the way the kernel would; returns links that still need following. */
function follow(sel: Selection, tree: SpecTree, link: string, stats: ClosureStats): string[] {
  const shown = display(link);
  const deep = sel.deepLinks.has(link);
  const reason = `symlink closure: target of ${shown}`;
  const ancestorReason = `ancestor of a target of ${shown} (symlink closure)`;
  const newLinks: string[] = [];
  const warn = (kind: 'dangling' | 'outside', what: string) => {
    stats[kind]++;
    sel.diag.warn(kind === 'dangling' ? 'symlink-dangling' : 'symlink-outside', `${shown} -> ${display(sel.byPath.get(link)!.target!)}: ${what}; kept as a link`);
  };
  const target = sel.byPath.get(link)!.target!;
  let dir = parentPath(link);
  let rest = target.split('/');
  if (target.startsWith('/')) dir = '/';
  let hops = 0;
  const via: string[] = [];
  while (rest.length > 0) {
    const c = rest.shift()!;
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
    const excluded = tree.exclusionOf(path);
    if (excluded) {
      sel.diag.warn('symlink-excluded', `${shown} -> ${display(target)}: ${display(path)} is excluded by ${excluded.origin} '${excluded.text}'; kept as a link`);
      return newLinks;
    }
    const st = sel.source.stat(path);
    if (!st) {
      warn('dangling', `${display(path)} does not exist`);
      return newLinks;
    }
    const last = rest.every((r) => r === '' || r === '.');
    if (st.isSymbolicLink()) {
      if (++hops > MAX_HOPS) {
        warn('dangling', 'too many levels of symbolic links');
        return newLinks;
      }
      if (!sel.has(path)) {
        sel.addAncestors(path, ancestorReason);
        const e = sel.entryAt(path, st, reason);
        if (e) sel.add(e);
      }
      via.push(display(path));
      const t = sel.byPath.get(path)!.target!;
      if (t.startsWith('/')) dir = '/';
      rest = [...t.split('/'), ...rest];
      continue;
    }
    if (!last) {
      if (!st.isDirectory()) {
        warn('dangling', `${display(path)} is not a directory`);
        return newLinks;
      }
      dir = path;
      continue;
    }
    // The end of the chain: select it, with its ancestors.
    const endReason = via.length > 0 ? `${reason} via ${via.join(', ')}` : reason;
    sel.addAncestors(path, ancestorReason);
    if (st.isDirectory() && deep) {
      newLinks.push(...walkSelected(sel, tree, path, { reason: endReason, state: { node: tree.nodeAt(path), deep: closureRule(path, endReason), flat: null } }));
      for (const l of newLinks) sel.deepLinks.add(l);
    } else if (!sel.has(path)) {
      const e = sel.entryAt(path, st, endReason);
      if (e) sel.add(e);
    }
    return newLinks;
  }
  return newLinks;
}

/** A recursive rule standing for "everything below this link target", for the walker. */
function closureRule(path: string, reason: string): SpecRule {
  return { kind: 'recursive', path, origin: 'symlink closure', text: display(path) + '/*', reason };
}

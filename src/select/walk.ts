// Walk the source tree where the spec tree says to, and nowhere else.
import { display } from '../model/bytes.js';
import { joinPath } from '../model/entry.js';
import { BuildError, ShrinkwrapError, describeSystemError } from '../model/errors.js';
import type { Selection } from './selection.js';
import type { Pick, SpecTree } from './spec/tree.js';
import type { Steps } from '../util/steps.js';

/** Entries visited between pauses of walkSteps(): a few milliseconds of work. */
const PAUSE_EVERY = 256;

/**
 * Select `imagePath` (already picked, with `pick`) and, if it is a directory, whatever the spec tree
 * selects below it. Pre-order with an explicit stack: trees can be deeper than the JS call stack.
 * Returns the symlinks it added, for the closure. Pauses every PAUSE_EVERY entries (see
 * util/steps.ts).
 */
export function* walkSteps(sel: Selection, tree: SpecTree, imagePath: string, pick: Pick): Steps<string[]> {
  const links: string[] = [];
  let visited = 0;
  // Each path with its parent's path and its name, the strings an entry keeps (see TreeEntry).
  const stack: Array<[string, Pick, string | undefined, string | undefined]> = [[imagePath, pick, undefined, undefined]];
  while (stack.length > 0) {
    if (++visited % PAUSE_EVERY === 0) yield;
    const [path, p, dir, name] = stack.pop()!;
    const st = sel.source.stat(path);
    if (!st) continue; // named by the spec but absent: reported once per rule by the caller
    // During the spec walk nothing is selected twice; closures revisit selected directories.
    let e = sel.walking ? null : (sel.get(path) ?? null);
    if (!e) {
      e = sel.entryAt(path, st, p.reason, dir, name);
      if (!e) continue;
      sel.add(e);
      if (e.type === 'symlink') {
        links.push(path);
        if (p.state.deep) sel.deepLinks.add(path);
      }
    }
    if (e.type !== 'dir') continue;
    // A tree read over the network fetches the catalogs this directory's walk needs (all those
    // below it, where everything below is selected) while the event loop turns.
    const ready = sel.source.prepare?.(path, p.state.deep !== null);
    if (ready) yield ready;
    const listing = tree.listing(p.state);
    let names: string[];
    if (listing === 'fs') {
      try {
        names = sel.source.list(path);
      } catch (err) {
        if (err instanceof ShrinkwrapError) throw err; // it names what failed (a catalog, an object)
        throw new BuildError(`cannot list ${display(sel.source.where(path))}: ${describeSystemError(err)}`);
      }
    } else {
      names = listing;
    }
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i]!;
      const childPick = tree.pick(p.state, name);
      if (!childPick) continue;
      const childPath = joinPath(path, name);
      if (tree.globs && tree.globExclusion(childPath, childPick.state.node)) continue;
      stack.push([childPath, childPick, path, name]);
    }
  }
  return links;
}

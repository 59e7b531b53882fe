// cvmfs's spec_builder.py selection (reference cvmfs-spec-and-trace.md §3.4), reimplemented: the
// output must be line for line what spec_builder.py writes for the same trace, policy and filters.
import type { TraceEvent, TraceEventName } from './types.js';

export type SpecPolicy = 'pdir' | 'exact';

export interface BuildSpecOptions {
  policy: SpecPolicy;
  /** Events left out (spec_builder's `--filters`). */
  filters: readonly TraceEventName[];
}

/** A spec line to be: `mode` 1 = the directory's flat listing (`^p/*`), 0 = the path itself (`^p`). */
interface Point {
  path: string;
  mode: 0 | 1;
}

/** Parent as spec_builder computes it: everything before the last `/`, '' (root) for `/a` and ''. */
function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : '';
}

/** `anc` is `p` itself, an ancestor of `p`, or the root. */
function covers(anc: string, p: string): boolean {
  return anc === '' || p === anc || p.startsWith(anc + '/');
}

function toPoint(e: TraceEvent, policy: SpecPolicy): Point {
  if (e.event === 'opendir') return { path: e.path, mode: 1 };
  if (policy === 'pdir' && e.event === 'open') return { path: parentOf(e.path), mode: 1 };
  return { path: e.path, mode: 0 };
}

function lineOf(p: Point): string {
  if (p.mode === 1) return `^${p.path}/*`;
  return `^${p.path === '' ? '/' : p.path}`;
}

/** The spec lines for the events of one repository, in spec_builder's order. */
function buildOne(events: readonly TraceEvent[], opts: BuildSpecOptions): string[] {
  const dropped = new Set<TraceEventName>(opts.filters);
  const points = events.filter((e) => !dropped.has(e.event)).map((e) => toPoint(e, opts.policy));
  // Stable (Array.prototype.sort is), by path alone, in code-unit order = byte order here.
  points.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  // Walk the sorted points keeping the chain of open ancestors; a point leaves the chain (and is
  // written) once a later point is outside it. The root is always at the bottom, so it is always
  // written (as `^/` unless something flattened it).
  const chain: Point[] = [{ path: '', mode: 0 }];
  const written: Point[] = [];
  for (const pt of points) {
    while (!covers(chain[chain.length - 1]!.path, pt.path)) written.push(chain.pop()!);
    const top = chain[chain.length - 1]!;
    if (top.path === pt.path) {
      if (pt.mode > top.mode) top.mode = pt.mode;
    } else if (!(pt.mode === 0 && top.mode === 1 && top.path === parentOf(pt.path))) {
      // An exact point directly inside a flat-listed parent adds nothing: the listing has it.
      chain.push({ path: pt.path, mode: pt.mode });
    }
  }
  written.push(...chain);
  return written.map(lineOf);
}

/**
 * spec_builder.py's selection, per repository (in order of first appearance): upstream-compatible
 * spec lines, repository-relative, every line `^`-anchored. Join with '\n' to get the file
 * spec_builder writes (it has no trailing newline).
 */
export function buildSpecs(events: readonly TraceEvent[], opts: BuildSpecOptions): Map<string, string[]> {
  const byRepo = new Map<string, TraceEvent[]>();
  for (const e of events) {
    let list = byRepo.get(e.repo);
    if (!list) byRepo.set(e.repo, (list = []));
    list.push(e);
  }
  const out = new Map<string, string[]>();
  for (const [repo, list] of byRepo) out.set(repo, buildOne(list, opts));
  return out;
}

// `--include GLOB`: spec rules from what the globs match in the source tree.
import { display } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { baseName, parentPath } from '../model/entry.js';
import { InputError } from '../model/errors.js';
import { throughLinks } from './closure/links.js';
import { type GlobExclusions, type GlobMatch, compileGlob, expandGlobMatches } from './glob.js';
import { isCvmfsUrl } from '../sources/cvmfs/open.js';
import type { CvmfsTree, TreeStat } from '../sources/cvmfs/tree.js';
import { MOUNT, type SpecRule } from './spec/parse.js';

/**
 * The rules of the --include globs, in order, to follow `earlier` (the spec, trace and release
 * rules): a rule for each match (recursive for a directory, else exact), through the links on its
 * way, unless an exclusion glob covers it.
 *
 * `prefix/**` matches every entry below prefix, and a rule each cost a stat and a lookup through
 * links per entry, then a spec-tree node each: 7x the spec line `prefix/*`. So a match reached
 * through no link, lying in a directory the same glob matched (its recursive rule selects the match
 * as it is, for the same reason), gets no rule of its own. The selection, the reasons and the
 * warnings stay what a rule per match gives, hence the exceptions: a match keeps its rule where an
 * earlier rule names it or a path between it and that directory (the last rule naming a path
 * decides), and below an earlier exclusion (each rule it shadows is reported). Where a later glob's
 * rule falls in such a directory (its entries would take that glob's reason, not their own), the
 * globs are taken a rule per match.
 */
export function includeRules(
  patterns: readonly string[],
  earlier: readonly SpecRule[],
  source: CvmfsTree,
  globs: GlobExclusions,
  rootText: string,
  diag: Diagnostics,
): SpecRule[] {
  const expanded: { g: string; matches: GlobMatch[] }[] = [];
  let rules = new IncludeRules(earlier, source, globs, true);
  for (const g of patterns) {
    const matches = expandInclude(g, source, rootText, diag);
    expanded.push({ g, matches });
    if (rules.add(g, matches)) continue;
    rules = new IncludeRules(earlier, source, globs, false);
    for (const e of expanded) rules.add(e.g, e.matches);
  }
  return rules.out;
}

/** What one --include glob matches, checked as the option it is. */
function expandInclude(g: string, source: CvmfsTree, rootText: string, diag: Diagnostics): GlobMatch[] {
  compileGlob(g, `--include ${g}`);
  const rel = g.replace(/^\/cvmfs\//, '');
  if (isCvmfsUrl(rootText) && (!rel.includes('/') || /[*?[{\\]/.test(rel.split('/')[0]!))) {
    // A server lists no repositories: which ones a glob may look in, it must say.
    throw new InputError(`--include ${g}: over HTTP, begin with the repository (the server cannot list its repositories), e.g. atlas.cern.ch/**/${g.split('/').pop()}`);
  }
  const matches = expandGlobMatches(source, rel, `--include ${g}`);
  if (matches.length === 0) diag.warn('include-nothing', `--include ${g}: matches nothing under ${rootText}`);
  return matches;
}

/** The rules of the globs so far; with `compact`, without the matches a directory's rule selects (see includeRules). */
class IncludeRules {
  readonly out: SpecRule[] = [];
  /** Paths below an earlier exclusion rule start with one of these. */
  private readonly exclusions: string[];
  /** What the globs so far left to a directory's rule (and those directories): no later rule may fall there. */
  private readonly whole = new Set<string>();
  /** Directories of matches found through links, resolved by throughLinks: its links and the path it leads to. */
  private readonly resolved = new Map<string, { links: string[]; to: string } | null>();

  constructor(
    private readonly earlier: readonly SpecRule[],
    private readonly source: CvmfsTree,
    private readonly globs: GlobExclusions,
    private readonly compact: boolean,
  ) {
    this.exclusions = earlier.filter((r) => r.kind === 'exclude').map((r) => r.path + '/');
  }

  /** One glob's rules; false (compact only) where one of them falls in what an earlier glob left to a directory's rule. */
  add(g: string, matches: readonly GlobMatch[]): boolean {
    const named = new Set([...this.earlier, ...this.out].map((r) => r.path));
    const whole = new Set<string>();
    const own = new Map<string, SpecRule['kind']>(); // this glob's last rule on each path
    const first = this.out.length;
    for (const { path: m, direct } of matches) {
      if (this.compact && direct && insideWhole(m, whole, named)) {
        whole.add(m); // a file's path too: nothing is reached directly below it
        continue;
      }
      // A glob is not a name: what it matches stays subject to the exclusion globs.
      if (this.globs.covering(m)) continue;
      // No link above a direct match's name: throughLinks would give back its rule, after a stat a component.
      const items = direct ? [ruleFor(m, this.source.stat(m), g)] : this.throughLinksBelow(m, g);
      const rule = items[items.length - 1];
      // Reached through links (a `current -> 1.2.3`): where it and the links all lie in what this
      // glob selects whole (and not where an exclusion glob would prune them: their rules would
      // keep them), or repeat its last rule on that path, they add nothing either. (A rule's text
      // is its match, which an exclusion above reports for each node: then the last one stays.)
      const redundant = (r: SpecRule) =>
        (this.exclusions.length === 0 && own.get(r.path) === r.kind) || (insideWhole(r.path, whole, named) && !this.globs.covering(r.path));
      if (this.compact && !direct && items.every(redundant)) continue;
      for (const item of items) {
        this.out.push(item);
        own.set(item.path, item.kind);
      }
      if (this.compact && direct && rule?.kind === 'recursive' && !this.exclusions.some((e) => m.startsWith(e))) whole.add(m);
    }
    if (!this.compact) return true;
    for (let i = first; i < this.out.length; i++) if (atOrInside(this.out[i]!.path, this.whole)) return false;
    for (const p of whole) this.whole.add(p);
    return true;
  }

  /**
   * throughLinks(rule) for a match found through a link: its directory resolved once for all its
   * entries (each resolution stats every component on the way), the entry looked at where it really
   * is (the tree's cursor only enters real directories).
   */
  private throughLinksBelow(m: string, g: string): SpecRule[] {
    const parent = parentPath(m);
    let dir = this.resolved.get(parent);
    if (dir === undefined) {
      const r = throughLinks({ ...ruleFor(parent, null, g), kind: 'recursive' }, this.source);
      const last = r[r.length - 1];
      // Resolved (not left outside /cvmfs, nor given up at 40 links, which keeps the path): the links and where they lead.
      dir = last?.kind === 'recursive' && last.path !== parent ? { links: r.slice(0, -1).map((l) => l.path), to: last.path } : null;
      this.resolved.set(parent, dir);
    }
    if (dir === null) return throughLinks(ruleFor(m, this.source.stat(m), g), this.source);
    const path = `${dir.to}/${baseName(m)}`;
    const rule = ruleFor(m, this.source.stat(path), g);
    return [...dir.links.map((p): SpecRule => ({ ...rule, kind: 'exact', path: p })), { ...rule, path }];
  }
}

/** The rule for a match: a directory's whole tree, else the entry. */
function ruleFor(m: string, st: TreeStat | null, g: string): SpecRule {
  return { kind: st?.isDirectory() ? 'recursive' : 'exact', path: m, origin: `--include ${g}`, text: display(m), reason: `--include ${g}` };
}

/** Is `m` below a directory in `whole`, with no path that an earlier rule names on the way (m included)? */
function insideWhole(m: string, whole: ReadonlySet<string>, named: ReadonlySet<string>): boolean {
  if (whole.size === 0 || named.has(m)) return false;
  for (let p = parentPath(m); p.length > MOUNT.length; p = parentPath(p)) {
    if (whole.has(p)) return true;
    if (named.has(p)) return false;
  }
  return false;
}

function atOrInside(path: string, dirs: ReadonlySet<string>): boolean {
  if (dirs.size === 0) return false;
  for (let p = path; p.length > MOUNT.length; p = parentPath(p)) if (dirs.has(p)) return true;
  return false;
}

// Globs over the /cvmfs tree, in fast-glob syntax: `*` and `?` within one path component, `**` for
// any number of components, `[...]` classes, `{a,b}` alternatives, `\` escapes. Patterns are paths
// relative to /cvmfs (`atlas.cern.ch/repo/...`; a leading `/cvmfs/` is accepted); a pattern without
// a `/` matches an entry's name at any depth (fast-glob's baseNameMatch), e.g. `*.pdf`.
//
// Inclusions are expanded against the source by expandGlob (it walks only below a pattern's
// literal components, never out of the source, never round a symlink loop). Exclusions are never expanded: walking
// a repository to find what to leave out would cost more than the build, so they are compiled to
// regular expressions and tested on each path the selection reaches.
import { fromText } from '../model/bytes.js';
import { InputError, ShrinkwrapError } from '../model/errors.js';
import type { CvmfsTree, TreeStat } from '../sources/cvmfs/tree.js';
import { type Bracket, PatternError, parseBracket } from './pattern.js';
import { MOUNT, type SpecRule } from './spec/parse.js';

export interface PathGlob {
  /** The pattern as written (display text), relative to /cvmfs. */
  pattern: string;
  /** No `/` in the pattern: it is tested on names, not paths. */
  baseName: boolean;
  regex: RegExp;
}

/** `/cvmfs/a/b` and `a/b` are the same pattern; `where` names it in errors. */
export function normaliseGlob(pattern: string, where: string): string {
  let p = pattern.trim();
  if (p.startsWith(MOUNT + '/')) p = p.slice(MOUNT.length + 1);
  else if (p.startsWith('/')) throw new InputError(`${where}: '${pattern}': globs are paths under ${MOUNT} (write atlas.cern.ch/... or ${MOUNT}/atlas.cern.ch/...)`);
  p = p.replace(/\/+$/, '');
  if (p === '') throw new InputError(`${where}: empty glob`);
  if (p.split('/').includes('..')) throw new InputError(`${where}: '${pattern}': '..' is not allowed in a glob`);
  return p;
}

export function compileGlob(pattern: string, where: string): PathGlob {
  const p = normaliseGlob(pattern, where);
  const source = globSource(p, where);
  let regex: RegExp;
  try {
    regex = new RegExp(`^${source}$`, 's');
  } catch (err) {
    // globSource escapes what it does not translate; this is the net under it.
    throw new InputError(`${where}: '${p}': not a valid glob (${(err as Error).message})`);
  }
  return { pattern: p, baseName: !p.includes('/'), regex };
}

/** Does `rel` (a path relative to /cvmfs, text) match? */
export function globMatches(g: PathGlob, rel: string): boolean {
  if (g.baseName) return g.regex.test(rel.slice(rel.lastIndexOf('/') + 1));
  return g.regex.test(rel);
}

function globSource(p: string, where: string): string {
  let out = '';
  let i = 0;
  const fail = (what: string): never => {
    throw new InputError(`${where}: '${p}': ${what}`);
  };
  while (i < p.length) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*' && (i === 0 || p[i - 1] === '/') && (i + 2 === p.length || p[i + 2] === '/')) {
      // `**` as a whole component: zero or more components.
      if (i + 2 === p.length) out += '.*';
      else out += '(?:[^/]*/)*';
      i += 3;
      continue;
    }
    if (c === '*') {
      out += '[^/]*';
      i++;
    } else if (c === '?') {
      out += '[^/]';
      i++;
    } else if (c === '[') {
      // Parsed here, not handed to RegExp: `[z-a]` must be an error naming the option, not a crash.
      let b: Bracket | null;
      try {
        b = parseBracket(p, i);
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        b = fail(err.message.slice(err.message.indexOf(': ') + 2));
      }
      if (!b) fail('unclosed [');
      const members = [...b!.chars].map(classChar).join('') + b!.ranges.map(([lo, hi]) => `${classChar(lo)}-${classChar(hi)}`).join('');
      out += b!.negate ? `[^/${members}]` : `[${members}]`;
      i = b!.end;
    } else if (c === '{') {
      const end = p.indexOf('}', i);
      if (end < 0) fail('unclosed {');
      const alts = p.slice(i + 1, end).split(',');
      if (alts.some((a) => /[{}]/.test(a))) fail('nested {} alternatives are not supported');
      out += `(?:${alts.map((a) => globSource(a, where)).join('|')})`;
      i = end + 1;
    } else if (c === '\\' && i + 1 < p.length) {
      out += escapeRegex(p[i + 1]!);
      i += 2;
    } else {
      out += escapeRegex(c);
      i++;
    }
  }
  return out;
}

/** One character inside a RegExp class, whatever it is. */
function classChar(c: string): string {
  return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Alternatives one glob may expand to (`{a,b}{c,d}…` multiplies). */
const MAX_ALTERNATIVES = 4096;
/** Expansions of a `**` directory already expanded (reached again by another route through links). */
const MAX_GLOB_REVISITS = 50_000;
/** Symlinks followed in resolving one path: the kernel's limit (ELOOP past it). */
const MAX_LINKS = 40;

/** The `**` directories above a state (canonical image paths), innermost first. */
interface Chain {
  dir: string;
  up: Chain | null;
}

/** Is this directory one of those above: would following the link to it loop? */
function onChain(chain: Chain | null, dir: string): boolean {
  for (let c = chain; c; c = c.up) if (c.dir === dir) return true;
  return false;
}

/**
 * The image paths (/cvmfs/...) a glob matches in the source tree, sorted.
 *
 * Walked here rather than by fast-glob, which follows every directory symlink with no memory of
 * where it has been: `l1 -> .` and `l2 -> .` made `repo/**` walk 2^n paths until the heap ran out,
 * and a link to `/usr` walked the host. Here a link is followed only while it resolves inside the
 * tree's /cvmfs (resolveImagePath; a repository root may itself be a link, which the tree follows;
 * a copy of /cvmfs elsewhere on the host does not follow absolute targets, as before); under `**` a link back to a directory above is matched as an entry but not
 * entered, and reaching directories again by other routes is bounded (MAX_GLOB_REVISITS), as are
 * `{…}` alternatives (MAX_ALTERNATIVES). Otherwise the matches are fast-glob's.
 */
export function expandGlob(tree: CvmfsTree, pattern: string, where = 'glob'): string[] {
  return expandGlobMatches(tree, pattern, where).map((m) => m.path);
}

/** One path a glob matches. */
export interface GlobMatch {
  /** The image path as matched (/cvmfs/..., through links where the walk went through them). */
  path: string;
  /**
   * No symlink above its last component: the path is where the entry really is, so a recursive
   * rule on a matched ancestor directory selects it as it is (the --include loop leans on this).
   * False where that is not known.
   */
  direct: boolean;
}

/** expandGlob, saying of each match whether it was reached without going through a link. */
export function expandGlobMatches(tree: CvmfsTree, pattern: string, where = 'glob'): GlobMatch[] {
  const found = new Map<string, boolean>();
  const text = pattern.includes('/') ? pattern : `**/${pattern}`;
  const walker = new GlobWalk(tree, found);
  const shown = `${where}: '${pattern}'`;
  for (const alt of expandBraces(fromText(text), shown)) walker.run(alt.split('/').filter((c) => c !== ''), shown);
  const rels = [...found.keys()].sort();
  return rels.map((rel) => ({ path: `${MOUNT}/${rel}`, direct: found.get(rel)! }));
}

/** A path with its links resolved: where it really is in the tree (no link in it), and its stat. */
export interface ResolvedPath {
  path: string;
  st: TreeStat;
}

/**
 * What `imagePath` names once every symlink on its way, the last one too, is followed as the kernel
 * follows them in the image, one component at a time: its canonical image path and stat. Null when
 * it is not there, when a link leads out of /cvmfs (an absolute target elsewhere, `..` above it and
 * not back), or past 40 links (ELOOP). The tree is /cvmfs as the image holds it, wherever a copy
 * of it sits on the host: an absolute `/cvmfs/…` target leads into it, as on a mount and over HTTP. A repository root is taken as it is:
 * where it is a link, the tree's stat follows it.
 */
export function resolveImagePath(tree: CvmfsTree, imagePath: string): ResolvedPath | null {
  return new LinkResolver(tree).resolve([], imagePath.split('/'), 0);
}

/** Symlinks resolved through a tree (stat and readLink), remembering which names are repositories. */
class LinkResolver {
  private readonly repos = new Map<string, boolean>();
  constructor(private readonly tree: CvmfsTree) {}

  /** The directory the link `dir/name` leads to (canonical image path), or null. `dir` is canonical. */
  directoryBehind(dir: string, name: string): string | null {
    const target = readLinkQuietly(this.tree, `${dir}/${name}`);
    if (target === null) return null;
    const r = this.resolve(target.startsWith('/') ? [] : dir.split('/'), target.split('/'), 1);
    return r?.st.isDirectory() ? r.path : null;
  }

  /**
   * Components `rest` followed from the canonical path `from` (its components: `['', 'cvmfs', …]`
   * or none), having followed `hops` links already.
   */
  resolve(from: string[], rest: string[], hops: number): ResolvedPath | null {
    const done = from.filter((c) => c !== '');
    const todo = rest.reverse(); // a stack: a link's target goes on top of what was left
    let st: TreeStat | null = null; // of done's last component, where known
    while (todo.length > 0) {
      const c = todo.pop()!;
      if (c === '' || c === '.') {
        if (c === '.' && st && !st.isDirectory()) return null; // ENOTDIR
        continue;
      }
      if (st && !st.isDirectory()) return null; // ENOTDIR
      st = null;
      if (c === '..') {
        done.pop(); // above `/` is `/`, as in the kernel
        continue;
      }
      // The first two components are the mount point and a repository of the tree.
      if (done.length < 2) {
        if (done.length === 0 ? c !== MOUNT.slice(1) : !this.isRepo(c)) return null;
        done.push(c);
        continue;
      }
      const p = `/${done.join('/')}/${c}`;
      const cst = statQuietly(this.tree, p);
      if (!cst) return null;
      if (!cst.isSymbolicLink()) {
        done.push(c);
        st = cst;
        continue;
      }
      if (++hops > MAX_LINKS) return null;
      const target = readLinkQuietly(this.tree, p);
      if (target === null) return null;
      if (target.startsWith('/')) done.length = 0;
      for (const t of target.split('/').reverse()) todo.push(t);
    }
    if (done.length === 0 || done[0] !== MOUNT.slice(1)) return null;
    const path = '/' + done.join('/');
    st ??= statQuietly(this.tree, path);
    return st ? { path, st } : null;
  }

  private isRepo(name: string): boolean {
    let is = this.repos.get(name);
    if (is === undefined) this.repos.set(name, (is = isRepoQuietly(this.tree, name)));
    return is;
  }
}

/** `{a,b}` alternatives expanded (they may hold `/`); nested braces are refused by compileGlob. */
function expandBraces(p: string, shown: string): string[] {
  let out = [p];
  for (;;) {
    const next: string[] = [];
    let changed = false;
    for (const q of out) {
      const open = unescapedIndex(q, '{', 0);
      const close = open < 0 ? -1 : unescapedIndex(q, '}', open);
      if (close < 0) {
        next.push(q);
        continue;
      }
      changed = true;
      for (const alt of splitUnescaped(q.slice(open + 1, close), ',')) next.push(q.slice(0, open) + alt + q.slice(close + 1));
    }
    if (next.length > MAX_ALTERNATIVES) throw new InputError(`${shown}: more than ${MAX_ALTERNATIVES} {…} alternatives`);
    out = next;
    if (!changed) return out;
  }
}

function unescapedIndex(s: string, c: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === c) return i;
  }
  return -1;
}

function splitUnescaped(s: string, sep: string): string[] {
  const parts: string[] = [];
  let at = 0;
  for (let i = unescapedIndex(s, sep, 0); i >= 0; i = unescapedIndex(s, sep, at)) {
    parts.push(s.slice(at, i));
    at = i + 1;
  }
  parts.push(s.slice(at));
  return parts;
}

/**
 * One expansion: the tree, what has been found, and what has been visited. A state is a path as
 * matched (through links: what is found) and the directory it really is (canonical: what the tree
 * is asked about, and a directory's identity).
 */
class GlobWalk {
  private readonly links: LinkResolver;
  /** `component index \0 relative path`: a directory is expanded once per pattern position. */
  private readonly visited = new Set<string>();
  private readonly matchers = new Map<string, RegExp | string>();

  constructor(
    private readonly tree: CvmfsTree,
    /** Relative path matched -> reached without a link above its last component (GlobMatch.direct). */
    private readonly found: Map<string, boolean>,
  ) {
    this.links = new LinkResolver(tree);
  }

  run(comps: string[], shown: string): void {
    this.visited.clear();
    // `**` directories expanded so far, per pattern position, and how often one was expanded again
    // by another route.
    const expanded = new Set<string>();
    let again = 0;
    // Explicit stack: `**` over a deep tree must not recurse in JS. Each state carries the chain of
    // `**` directories above it, to tell a link back up (a loop) from a link elsewhere, and whether
    // its route went through no link (`clean`: its directory is where its path says).
    const stack: [rel: string, dir: string, k: number, chain: Chain | null, clean: boolean][] = [['', MOUNT, 0, null, true]];
    let literal = 0;
    while (literal < comps.length && comps[literal] !== '**' && typeof this.matcher(comps[literal]!) === 'string') literal++;
    while (stack.length > 0) {
      const [rel, dir, k, chain, clean] = stack.pop()!;
      const key = `${k}\0${rel}`;
      if (this.visited.has(key)) continue;
      this.visited.add(key);
      if (k === comps.length) {
        if (rel !== '') this.add(rel, clean);
        continue;
      }
      const comp = comps[k]!;
      if (comp === '.' || comp === '..') continue; // refused by compileGlob; never walked up
      const last = k + 1 === comps.length;
      if (comp === '**') {
        // Routes to one directory through links are fine (LCG views are made of them); 2^n of them
        // (each level linking twice to the next) is an attack.
        if (expanded.has(`${k}:${dir}`) && ++again > MAX_GLOB_REVISITS) {
          throw new InputError(`${shown}: reaches directories again through symlinks more than ${MAX_GLOB_REVISITS} times`);
        }
        expanded.add(`${k}:${dir}`);
        const here: Chain = { dir, up: chain };
        // Zero components here, or one more directory and `**` again. A trailing `**` matches what
        // is below, and the directory itself unless it is the pattern's literal prefix (fast-glob
        // never tests the directory it starts in: `a/**` gives a's contents, `a/*\/b/**` gives a/x/b too).
        if (!last) stack.push([rel, dir, k + 1, here, clean]);
        else if (rel !== '' && rel.split('/').length > literal) this.add(rel, clean);
        for (const name of listQuietly(this.tree, dir)) {
          const child = rel === '' ? name : `${rel}/${name}`;
          if (last) this.add(child, clean);
          const real = `${dir}/${name}`;
          const st = statQuietly(this.tree, real);
          if (st?.isDirectory()) stack.push([child, real, k, here, clean]);
          else if (st?.isSymbolicLink()) {
            const to = this.links.directoryBehind(dir, name);
            if (to !== null && !onChain(here, to)) stack.push([child, to, k, here, false]);
          }
        }
        continue;
      }
      const m = this.matcher(comp);
      const names = typeof m === 'string' ? [m] : listQuietly(this.tree, dir).filter((n) => m.test(n));
      for (const name of names) {
        const child = rel === '' ? name : `${rel}/${name}`;
        const real = `${dir}/${name}`;
        // A listed name is there; a literal one is looked up (and its stat kept for entering it).
        const st = typeof m === 'string' || !last ? statQuietly(this.tree, real) : null;
        if (typeof m === 'string' && !st) continue;
        if (last) {
          this.add(child, clean);
          continue;
        }
        const to = st?.isDirectory() ? real : st?.isSymbolicLink() ? this.links.directoryBehind(dir, name) : null;
        if (to !== null) stack.push([child, to, k + 1, chain, clean && to === real]);
      }
    }
  }

  /** A match; `direct` where any route to it went through no link above its last component. */
  private add(rel: string, direct: boolean): void {
    if (!this.found.get(rel)) this.found.set(rel, direct);
  }

  /** A literal component (its name, unescaped), or a RegExp for one with wildcards. */
  private matcher(comp: string): RegExp | string {
    let m = this.matchers.get(comp);
    if (m === undefined) {
      m = /(^|[^\\])(\\\\)*[*?[]/.test(comp) ? new RegExp(`^${globSource(comp, 'glob')}$`, 's') : comp.replace(/\\(.)/gs, '$1');
      this.matchers.set(comp, m);
    }
    return m;
  }
}

// The walk reads what it can: a name it cannot stat or a directory it cannot list matches nothing.

// A name the walk cannot look at (gone, not a directory, not readable) is simply no match; a source
// that cannot be read at all (a catalog or object no server would give, a repository that failed
// its checks) stops the expansion: a glob matching nothing then would cost the image files silently.
function quietly<T>(fn: () => T, otherwise: T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ShrinkwrapError) throw err;
    return otherwise;
  }
}

function listQuietly(tree: CvmfsTree, dir: string): string[] {
  return quietly(() => tree.list(dir), []);
}

function statQuietly(tree: CvmfsTree, imagePath: string): TreeStat | null {
  return quietly(() => tree.stat(imagePath), null);
}

function readLinkQuietly(tree: CvmfsTree, imagePath: string): string | null {
  return quietly<string | null>(() => tree.readLink(imagePath), null);
}

function isRepoQuietly(tree: CvmfsTree, name: string): boolean {
  return quietly(() => tree.isRepo(name), false);
}

/**
 * Exclusion globs (`--exclude`, packs) with their exceptions (`keep` lines), tested on image paths
 * (byte strings) as the selection reaches them. Patterns are compiled from their UTF-8 bytes so that
 * paths need no decoding.
 */
export class GlobExclusions {
  private readonly excludes: { glob: PathGlob; rule: SpecRule }[] = [];
  private readonly keeps: PathGlob[] = [];

  get size(): number {
    return this.excludes.length;
  }

  exclude(pattern: string, origin: string): void {
    const glob = compileGlob(fromText(pattern), origin);
    if (this.excludes.some((e) => e.glob.pattern === glob.pattern)) return;
    const text = Buffer.from(glob.pattern, 'latin1').toString('utf8');
    this.excludes.push({ glob, rule: { kind: 'exclude', path: `${MOUNT}/${glob.pattern}`, origin, text, reason: '' } });
  }

  keep(pattern: string, origin: string): void {
    this.keeps.push(compileGlob(fromText(pattern), origin));
  }

  /** Take over another set's globs (a release plan's packs). */
  adopt(other: GlobExclusions): void {
    for (const e of other.excludes) if (!this.excludes.some((x) => x.glob.pattern === e.glob.pattern)) this.excludes.push(e);
    for (const item of other.keeps) this.keeps.push(item);
  }

  /** The exclusion that removes this path or one of its ancestors. */
  covering(imagePath: string): SpecRule | null {
    for (let i = imagePath.indexOf('/', MOUNT.length + 1); ; i = imagePath.indexOf('/', i + 1)) {
      const r = this.at(i < 0 ? imagePath : imagePath.slice(0, i));
      if (r || i < 0) return r;
    }
  }

  /** The exclusion that removes this very path (its ancestors are not looked at). */
  at(imagePath: string): SpecRule | null {
    if (this.excludes.length === 0 || !imagePath.startsWith(MOUNT + '/')) return null;
    const rel = imagePath.slice(MOUNT.length + 1);
    for (const e of this.excludes) {
      if (!globMatches(e.glob, rel)) continue;
      if (this.keeps.some((k) => globMatches(k, rel))) return null;
      return e.rule;
    }
    return null;
  }
}

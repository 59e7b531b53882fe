// Globs over the /cvmfs tree, in fast-glob syntax: `*` and `?` within one path component, `**` for
// any number of components, `[...]` classes, `{a,b}` alternatives, `\` escapes. Patterns are paths
// relative to /cvmfs (`atlas.cern.ch/repo/...`; a leading `/cvmfs/` is accepted); a pattern without
// a `/` matches an entry's name at any depth (fast-glob's baseNameMatch), e.g. `*.pdf`.
//
// Inclusions are expanded against the source with fast-glob (it walks only below a pattern's
// static prefix). Exclusions are never expanded: walking a repository to find what to leave out
// would cost more than the build, so they are compiled to regular expressions and tested on each
// path the selection reaches.
import fg from 'fast-glob';
import { fromText } from '../model/bytes.js';
import { InputError } from '../model/errors.js';
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

/**
 * The image paths (/cvmfs/...) a glob matches in the source at `root` (host path, text), sorted.
 * Matches may run through symlinks (fast-glob follows them, as a shell would); callers resolve them.
 */
export function expandGlob(root: string, pattern: string): string[] {
  const p = pattern.includes('/') ? pattern : `**/${pattern}`;
  const found = fg.sync(p, { cwd: root, dot: true, onlyFiles: false, followSymbolicLinks: true, suppressErrors: true, unique: true });
  return found.map((rel) => fromText(`${MOUNT}/${rel}`)).sort();
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

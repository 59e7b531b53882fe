// Release recipes and rule packs: data files in specs/ that say where an experiment's releases live
// and what comes with them. An operator of another experiment adds a file, not a function.
//
// Both are line files: `key value…`, `#` comments, an optional trailing `if KEY=GLOB[,GLOB…] …`
// condition (all must hold; keys: project, version, branch, platform). Paths are relative to /cvmfs
// and may use {repo} {area} {branch} {project} {version} {platform}; packs also {release} (the
// release's install area), {chain} (every install area of the release chain), {compiler},
// {dbrelease} and {lcg}. Formats: docs/recipes.md.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, describeSystemError } from '../../model/errors.js';
import { compileWildcard, wildcardMatches } from '../pattern.js';

export interface Condition {
  key: 'project' | 'version' | 'branch' | 'platform';
  globs: { test(value: string): boolean }[];
}

export interface Line {
  key: string;
  args: string[];
  when: Condition[];
  /** `file:line`, for messages and reasons. */
  origin: string;
}

export interface Recipe {
  name: string;
  file: string;
  repo: string;
  /** Matches a version; the named group `branch` gives the branch. */
  version: RegExp;
  versionText: string;
  projects: string[];
  area: string;
  /** Install area template; it must end in /{platform}. */
  release: string;
  setup: string;
  /** Sourced scripts matching these globs are the setups of base projects: their directories come along. */
  chain: Line[];
  /** Further base-project install areas, added when present (e.g. GAUDI for 21.x Gaudi projects). */
  also: Line[];
  /** Sourced scripts matching these globs belong to a compiler installation. */
  compiler: Line[];
  /** File name of an LCG release's package list (e.g. LCG_externals_{platform}.txt). */
  lcg: Line[];
  /** Directory holding DBRelease versions and the `current` link. */
  dbrelease: string | null;
  packs: Line[];
}

export type PackLineKind = 'include' | 'exclude' | 'keep';

export interface Pack {
  name: string;
  file: string;
  /** The first comment line: what the pack is for (shown in reasons). */
  about: string;
  lines: Line[];
}

const CONDITION_KEYS = new Set(['project', 'version', 'branch', 'platform']);

/** Split a data file into lines of words, with conditions and origins; comments and blanks skipped. */
export function readLines(file: string, shown: string): { lines: Line[]; about: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${shown}: ${describeSystemError(err)}`);
  }
  const lines: Line[] = [];
  let about = '';
  text.split(/\r?\n/).forEach((raw, i) => {
    const origin = `${shown}:${i + 1}`;
    const t = raw.trim();
    if (t.startsWith('#')) {
      if (about === '' && lines.length === 0) about = t.replace(/^#\s*/, '');
      return;
    }
    if (t === '') return;
    const words = t.split(/\s+/);
    const ifAt = words.indexOf('if');
    const when: Condition[] = [];
    if (ifAt >= 0) {
      for (const c of words.slice(ifAt + 1)) {
        const m = /^([a-z]+)=(.+)$/.exec(c);
        if (!m || !CONDITION_KEYS.has(m[1]!)) throw new InputError(`${origin}: condition '${c}': expected project=, version=, branch= or platform= followed by globs`);
        when.push({ key: m[1] as Condition['key'], globs: m[2]!.split(',').map(simpleGlob) });
      }
      if (when.length === 0) throw new InputError(`${origin}: 'if' without a condition`);
    }
    const kept = ifAt >= 0 ? words.slice(0, ifAt) : words;
    lines.push({ key: kept[0]!, args: kept.slice(1), when, origin });
  });
  return { lines, about };
}

/** `21.*` style globs of conditions: `*` and `?` only (`[` and `\` are literal), matched in linear time. */
function simpleGlob(g: string): { test(value: string): boolean } {
  const w = compileWildcard(g.replace(/[[\\]/g, '\\$&'));
  return { test: (value) => wildcardMatches(w, value) };
}

export function holds(when: readonly Condition[], vars: Readonly<Record<string, string>>): boolean {
  return when.every((c) => c.globs.some((g) => g.test(vars[c.key] ?? '')));
}

export function parseRecipe(file: string, shown = file): Recipe {
  const { lines } = readLines(file, shown);
  const one = (key: string, required: boolean): Line | null => {
    const found = lines.filter((l) => l.key === key);
    if (found.length > 1) throw new InputError(`${found[1]!.origin}: '${key}' given twice (first at ${found[0]!.origin})`);
    const l = found[0];
    if (!l && required) throw new InputError(`${shown}: recipe has no '${key}' line`);
    if (l && l.args.length !== 1 && key !== 'projects') throw new InputError(`${l.origin}: '${key}' takes one value`);
    if (l && l.when.length > 0) throw new InputError(`${l.origin}: '${key}' cannot have a condition`);
    return l ?? null;
  };
  const known = new Set(['name', 'repo', 'version', 'projects', 'area', 'release', 'setup', 'chain', 'also', 'compiler', 'lcg', 'dbrelease', 'packs']);
  for (const l of lines) if (!known.has(l.key)) throw new InputError(`${l.origin}: unknown recipe key '${l.key}' (expected one of ${[...known].join(', ')})`);
  const v = one('version', true)!;
  let version: RegExp;
  try {
    version = new RegExp(v.args[0]!);
  } catch (err) {
    throw new InputError(`${v.origin}: version pattern: ${(err as Error).message}`);
  }
  if (!v.args[0]!.includes('(?<branch>')) throw new InputError(`${v.origin}: the version pattern needs a named group (?<branch>...)`);
  const release = one('release', true)!;
  if (!release.args[0]!.endsWith('/{platform}')) throw new InputError(`${release.origin}: the release path must end in /{platform}`);
  for (const key of ['chain', 'also', 'compiler', 'lcg']) {
    for (const l of lines.filter((x) => x.key === key)) if (l.args.length !== 1) throw new InputError(`${l.origin}: '${key}' takes one path or glob`);
  }
  return {
    name: one('name', true)!.args[0]!,
    file: shown,
    repo: one('repo', true)!.args[0]!,
    version,
    versionText: v.args[0]!,
    projects: one('projects', true)!.args,
    area: one('area', true)!.args[0]!,
    release: release.args[0]!,
    setup: one('setup', false)?.args[0] ?? 'setup.sh',
    chain: lines.filter((l) => l.key === 'chain'),
    also: lines.filter((l) => l.key === 'also'),
    compiler: lines.filter((l) => l.key === 'compiler'),
    lcg: lines.filter((l) => l.key === 'lcg'),
    dbrelease: one('dbrelease', false)?.args[0] ?? null,
    packs: lines.filter((l) => l.key === 'packs'),
  };
}

export function parsePack(file: string, name: string, shown = file): Pack {
  const { lines, about } = readLines(file, shown);
  for (const l of lines) {
    if (l.key !== 'include' && l.key !== 'exclude' && l.key !== 'keep') throw new InputError(`${l.origin}: expected include, exclude or keep, not '${l.key}'`);
    if (l.args.length !== 1) throw new InputError(`${l.origin}: '${l.key}' takes one path or glob (no spaces; use ? for one)`);
  }
  return { name, file: shown, about: about || name, lines };
}

/** specs/ of this installation: beside package.json, above this module (in dist/ or, under test, src/). */
export function bundledSpecsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, 'specs');
}

export function bundledRecipes(): Recipe[] {
  const dir = path.join(bundledSpecsDir(), 'recipes');
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.recipe')).sort();
  } catch {
    return [];
  }
  return names.map((n) => parseRecipe(path.join(dir, n), `specs/recipes/${n}`));
}

/** A pack by name (specs/packs/<name>.pack) or by file path. */
export function loadPack(nameOrFile: string): Pack {
  if (nameOrFile.includes('/') || nameOrFile.endsWith('.pack')) {
    return parsePack(nameOrFile, path.basename(nameOrFile).replace(/\.pack$/, ''), nameOrFile);
  }
  const file = path.join(bundledSpecsDir(), 'packs', `${nameOrFile}.pack`);
  if (!fs.existsSync(file)) {
    const known = (() => {
      try {
        return fs.readdirSync(path.dirname(file)).filter((n) => n.endsWith('.pack')).map((n) => n.slice(0, -5)).sort();
      } catch {
        return [];
      }
    })();
    throw new InputError(`rule pack '${nameOrFile}' not found (bundled packs: ${known.join(', ') || 'none'}; or give a file path)`);
  }
  return parsePack(file, nameOrFile, `specs/packs/${nameOrFile}.pack`);
}

/**
 * Expand `{var}` in a template. Multi-valued variables give one result per value; a variable with no
 * value gives no result (the line does not apply). `{a,b}` groups are glob alternatives, left alone.
 */
export function expandTemplate(template: string, vars: Readonly<Record<string, string | readonly string[]>>, origin: string): string[] {
  let results = [''];
  let rest = template;
  for (;;) {
    const m = /\{([^{},]*)\}/.exec(rest);
    if (!m) break;
    const name = m[1]!;
    const value = vars[name];
    if (value === undefined) throw new InputError(`${origin}: unknown variable {${name}} (known: ${Object.keys(vars).map((k) => `{${k}}`).join(' ')})`);
    const values = typeof value === 'string' ? [value] : value;
    const before = rest.slice(0, m.index);
    results = results.flatMap((r) => values.map((v) => r + before + v));
    rest = rest.slice(m.index + m[0].length);
  }
  return results.map((r) => r + rest);
}

// `--release [PROJECT,]VERSION`: a release named the way operators name it becomes spec rules, glob
// exclusions and an LD_LIBRARY_PATH, driven by the recipes and rule packs in specs/:
//  1. resolve: the recipe whose version pattern matches; project and platform from what exists
//     under the source (ambiguity and unknown versions are errors that list what there is);
//  2. the setup chain: the release's setup.sh evaluated (never run), which gives the base projects
//     it sources (<Project>Externals, ...), the compiler setup, LD_LIBRARY_PATH and LCG releases;
//  3. rule packs: include/exclude/keep lines instantiated for the release.
import * as fs from 'node:fs';
import { display, fromText } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import type { BaseView } from '../../sources/base/view.js';
import { throughLinks } from '../closure/links.js';
import { GlobExclusions, compileGlob, expandGlob, globMatches } from '../glob.js';
import type { CvmfsTree } from '../../sources/cvmfs/tree.js';
import { MOUNT, type SpecRule } from '../spec/parse.js';
import { type Line, type Pack, type Recipe, expandTemplate, holds, loadPack } from './recipe.js';
import { type ScriptHost, type ShellResult, evaluateSetup, normalise } from './shell.js';
import { type Steps, runSteps } from '../../util/steps.js';

export interface ReleaseRequest {
  project: string | null;
  version: string;
  /** The platform asked for with this release (PROJECT,VERSION,PLATFORM); null: ReleaseOptions.platform, else resolved. */
  platform: string | null;
  /** Where it was asked for: `--release` or `file:line`. */
  origin: string;
}

export interface ReleaseOptions {
  requests: ReleaseRequest[];
  /** Default project for requests without one. */
  project: string | null;
  /** Platform of requests without one (--platform). */
  platform: string | null;
  recipes: Recipe[];
  /** Extra packs (names or files) and packs turned off (names). */
  packs: string[];
  dropPacks: string[];
  /** A DBRelease version, 'none', or null for what `current` points to. */
  dbrelease: string | null;
  /** The base image's OS as platforms name it (centos7, el9, ...): picks among several platforms. */
  baseOs?: string | null;
}

/** A part of the image, for the per-part summary: entries under these roots belong to it. */
export interface Part {
  label: string;
  roots: string[];
}

export interface ResolvedRelease {
  recipe: string;
  project: string;
  version: string;
  branch: string;
  platform: string;
  /** Image path of the install area. */
  path: string;
  /** Base projects, in the order the chain met them: label and install area. */
  bases: { label: string; path: string; why: string }[];
  compilers: string[];
  lcg: string[];
  dbrelease: { path: string; version: string; via: 'current' | 'option' } | null;
  packs: string[];
  ldLibraryPath: string[];
  /** Setup-script constructs the evaluator skipped. */
  unevaluated: string[];
  /** Image path of the release's own setup script (what /release_setup.sh sources). */
  setupScript: string;
  /** /cvmfs paths in the environment the setup chain builds (variable, path), to check against the image. */
  envPaths: { variable: string; path: string }[];
}

export interface ReleasePlan {
  rules: SpecRule[];
  globs: GlobExclusions;
  ldLibraryPath: string[];
  parts: Part[];
  releases: ResolvedRelease[];
}

/**
 * The OS of a base root filesystem as platform strings name it (`x86_64-<os>-gcc…`): from
 * /etc/os-release, or /etc/redhat-release on old images. Null when it cannot be told.
 */
export function baseOsTag(rootfs: BaseView): string | null {
  const read = (f: string) => rootfs.readText(f);
  const osr = read('/etc/os-release') ?? read('/usr/lib/os-release');
  if (osr) {
    const field = (k: string) => new RegExp(`^${k}=["']?([^"'\n]*)`, 'm').exec(osr)?.[1] ?? '';
    const id = field('ID');
    const major = field('VERSION_ID').split('.')[0]!;
    if (id === 'centos' && major !== '') return `centos${major}`;
    if (/^(rhel|almalinux|rocky|ol|centos)$/.test(id) || /\brhel\b/.test(field('ID_LIKE'))) return major !== '' ? `el${major}` : null;
  }
  const rh = read('/etc/redhat-release');
  if (rh) {
    const major = /release (\d+)/.exec(rh)?.[1];
    if (major && /Scientific Linux CERN|SLC/.test(rh)) return `slc${major}`;
    if (major && /CentOS/.test(rh)) return `centos${major}`;
    if (major) return `el${major}`;
  }
  return null;
}

export const RELEASE_FORM = '[PROJECT,]VERSION[,PLATFORM]';
const RELEASE_EXAMPLES = 'e.g. 21.2.75, AnalysisBase,21.2.75 or AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt';

/**
 * `[PROJECT,]VERSION[,PLATFORM]`, or asetup's `VERSION,PROJECT[,PLATFORM]`. The version is the field
 * that starts with a digit; of the others, the platform is the one with a `-` in it
 * (x86_64-slc6-gcc62-opt; project names have none), else the last of two.
 */
export function parseReleaseArg(text: string, origin: string): ReleaseRequest {
  const bad = (why = '') => new InputError(`${origin}: '${text}': ${why}expected ${RELEASE_FORM}, ${RELEASE_EXAMPLES}`);
  const parts = text.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '' || /[\s]/.test(p))) throw bad();
  // OS/ARCH is the base image's platform (--platform linux/amd64), never a release's.
  if (parts.some((p) => p.includes('/'))) throw bad(`a release's fields hold no '/' (--platform OS/ARCH is the base image's); `);
  const versions = parts.filter((p) => /^[0-9]/.test(p));
  const names = parts.filter((p) => !/^[0-9]/.test(p));
  if (parts.length > 3 || versions.length !== 1) throw bad();
  let project: string | null = null;
  let platform: string | null = null;
  if (names.length === 1) {
    if (names[0]!.includes('-')) platform = names[0]!;
    else project = names[0]!;
  } else if (names.length === 2) {
    const dashed = names.filter((n) => n.includes('-'));
    if (dashed.length === 2) throw bad('two platforms; ');
    platform = dashed[0] ?? names[1]!;
    project = names.find((n) => n !== platform)!;
  }
  return { project, version: versions[0]!, platform, origin };
}

/** A releases file: one release a line; `#` starts a comment (a whole line, or after the release). */
export function readReleasesFile(file: string): ReleaseRequest[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`${file}: ${describeSystemError(err)}`);
  }
  const out: ReleaseRequest[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    if (/\s/.test(line)) throw new InputError(`${file}:${i + 1}: one release per line, ${RELEASE_FORM} (commas, no spaces)`);
    out.push(parseReleaseArg(line, `${file}:${i + 1}`));
  });
  return out;
}

export function planReleases(opts: ReleaseOptions, source: CvmfsTree, rootText: string, diag: Diagnostics): ReleasePlan {
  return runSteps(planReleasesSteps(opts, source, rootText, diag));
}

/** planReleases(), pausing between releases and between the phases of each (a signal is handled at a pause). */
export function* planReleasesSteps(opts: ReleaseOptions, source: CvmfsTree, rootText: string, diag: Diagnostics): Steps<ReleasePlan> {
  if (opts.recipes.length === 0) throw new InputError('no release recipes found (specs/recipes/*.recipe, or --recipe FILE)');
  const plan: ReleasePlan = { rules: [], globs: new GlobExclusions(), ldLibraryPath: [], parts: [], releases: [] };
  const host = scriptHost(source);
  // Over HTTP, the recipes' repositories are opened without blocking first (signals are heard).
  const ahead = source.openAhead?.(opts.recipes.map((r) => r.repo));
  if (ahead) yield ahead;
  for (const req of opts.requests) {
    const r = resolve(req, opts, source, rootText);
    refuseSecondPlatform(r, plan.releases);
    yield;
    plan.releases.push(yield* addRelease(r, opts, source, host, plan, diag));
  }
  return plan;
}

/**
 * One platform of a release per image: /release_setup.sh (SHRINKWRAP_RELEASE=PROJECT,VERSION) and
 * the image's parts name a release by project and version.
 */
function refuseSecondPlatform(r: Resolution, planned: ResolvedRelease[]): void {
  const { project, version, platform } = r.vars;
  const other = planned.find((p) => p.project === project && p.version === version && p.platform !== platform);
  if (other) {
    throw new InputError(`${r.req.origin}: ${project} ${version} is already in the image for ${other.platform}; an image holds one platform of a release (build one image per platform)`);
  }
}

interface Resolution {
  req: ReleaseRequest;
  recipe: Recipe;
  vars: Record<string, string>;
}

/** Template variables → a glob (unknowns are `*`) and a regex that captures them back. */
function templateGlob(template: string, vars: Record<string, string>, unknown: Record<string, string>): string {
  return expandTemplate(template, { ...vars, ...unknown }, 'recipe')[0]!;
}

function templateRegex(template: string, vars: Record<string, string>): RegExp {
  let src = '';
  let rest = template;
  const captured = new Set<string>();
  for (;;) {
    const m = /\{([a-z]+)\}/.exec(rest);
    if (!m) break;
    const v = m[1]!;
    src += escapeRe(rest.slice(0, m.index));
    src += vars[v] !== undefined ? escapeRe(vars[v]!) : captured.has(v) ? `\\k<${v}>` : `(?<${v}>[^/]+)`;
    captured.add(v);
    rest = rest.slice(m.index + m[0].length);
  }
  return new RegExp(`^${src}${escapeRe(rest)}$`);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function resolve(req: ReleaseRequest, opts: ReleaseOptions, source: CvmfsTree, root: string): Resolution {
  const matching = opts.recipes.filter((r) => r.version.test(req.version));
  const project = req.project ?? opts.project;
  if (matching.length === 0) throw new InputError(`${req.origin}: ${notAVersion(req.version, project, opts.recipes, source, root)}`);
  const found: { recipe: Recipe; project: string; platforms: string[]; vars: Record<string, string> }[] = [];
  for (const recipe of matching) {
    if (!source.isRepo(recipe.repo)) continue;
    const branch = recipe.version.exec(req.version)!.groups!['branch']!;
    const base = { repo: recipe.repo, branch, version: req.version };
    const vars = { ...base, area: expandTemplate(recipe.area, base, recipe.file)[0]! };
    const projects = project ? [project] : recipe.projects;
    const pattern = templateGlob(recipe.release, vars, { project: braces(projects), platform: '*' });
    const re = templateRegex(recipe.release, vars);
    const byProject = new Map<string, string[]>();
    for (const p of expandGlob(source, pattern)) {
      const m = re.exec(display(p).slice(MOUNT.length + 1));
      if (!m) continue;
      // A layout without {project} in its path has one project: the recipe's first.
      const proj = m.groups?.['project'] ?? projects[0]!;
      const list = byProject.get(proj) ?? [];
      list.push(m.groups?.['platform'] ?? '');
      byProject.set(proj, list);
    }
    for (const [p, platforms] of [...byProject].sort()) found.push({ recipe, project: p, platforms: platforms.sort(), vars: { ...vars, project: p } });
  }
  const what = `${project ? `${project} ` : ''}${req.version}`;
  if (found.length === 0) {
    const near = nearestVersions(req.version, project, matching, source);
    throw new InputError(
      `${req.origin}: release ${what} not found under ${root}` +
        (project !== null && !knownProjects(opts.recipes).includes(project)
          ? `: ${unknownProject(project, knownProjects(opts.recipes))}`
          : near.length > 0 ? `; nearest: ${near.join(', ')}` : `; no ${project ?? 'release'} versions found there at all`),
    );
  }
  const wanted = req.platform ?? opts.platform;
  // A platform only one of the projects has names the release as well as a project would.
  const candidates = found.length > 1 && wanted && found.some((f) => f.platforms.includes(wanted)) ? found.filter((f) => f.platforms.includes(wanted)) : found;
  if (candidates.length > 1) {
    throw new InputError(
      `${req.origin}: release ${req.version} is ambiguous: ${candidates.map((f) => `${f.project},${req.version}`).join(', ')} (name one: --release PROJECT,${req.version} or --project)`,
    );
  }
  const f = candidates[0]!;
  const platform = pickPlatform(req, f, wanted, opts.baseOs ?? null);
  return { req, recipe: f.recipe, vars: { ...f.vars, platform } };
}

/** The platform asked for (the release's own, else --platform), the only one there, or the base image's OS's. */
function pickPlatform(req: ReleaseRequest, f: { project: string; platforms: string[] }, wanted: string | null, baseOs: string | null): string {
  const what = `${f.project} ${req.version}`;
  if (wanted) {
    if (!f.platforms.includes(wanted)) throw new InputError(`${req.origin}: ${what} has no platform ${wanted} (there: ${f.platforms.join(', ')})`);
    return wanted;
  }
  if (f.platforms.length === 1) return f.platforms[0]!;
  const forBase = baseOs ? f.platforms.filter((p) => p.split('-').includes(baseOs)) : [];
  if (forBase.length === 1) return forBase[0]!; // the one the base image runs
  throw new InputError(
    `${req.origin}: ${what} exists for several platforms: ${f.platforms.join(', ')} (choose one with --platform${baseOs ? `; none is the only one for the base image's ${baseOs}` : ''})`,
  );
}

/**
 * Why a version matches no recipe, in words (the recipes' patterns are regular expressions, no
 * help to a reader): a branch given for a release, with the releases there to choose from.
 */
function notAVersion(version: string, project: string | null, recipes: Recipe[], source: CvmfsTree, root: string): string {
  const near = nearestVersions(version, project, recipes, source);
  const branch = recipes.some((r) => r.version.test(`${version}.0`));
  const there = near.length > 0 ? `nearest under ${root}: ${near.join(', ')}` : `no release of ${recipes.map((r) => r.name).join(', ')} under ${root} to suggest`;
  return branch ? `'${version}' is a release branch, not a release: give the full version (${there})` : `'${version}' is not a release version (${there})`;
}

/** Every project the recipes name, sorted. */
function knownProjects(recipes: Recipe[]): string[] {
  return [...new Set(recipes.flatMap((r) => r.projects))].sort();
}

/** A project no recipe names: the known ones, and the nearest by spelling when one is near. */
function unknownProject(project: string, known: string[]): string {
  const best = known.map((k) => ({ k, d: editDistance(project.toLowerCase(), k.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
  const guess = best && best.d <= Math.max(2, Math.floor(project.length / 4)) ? ` (did you mean ${best.k}?)` : '';
  return `${project} is not a project the recipes know${guess}; they know ${known.join(', ')}`;
}

/** Levenshtein distance (names are short). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

const braces = (xs: string[]) => (xs.length === 1 ? xs[0]! : `{${xs.join(',')}}`);

/** Versions of the project(s) that exist, nearest to the one asked for (three below, three above). */
function nearestVersions(version: string, project: string | null, recipes: Recipe[], source: CvmfsTree): string[] {
  const key = (v: string) => v.split('.').map((n) => n.padStart(6, '0')).join('.');
  const all = new Set<string>();
  for (const recipe of recipes) {
    const pattern = templateGlob(recipe.release, { repo: recipe.repo }, {
      area: templateGlob(recipe.area, { repo: recipe.repo }, { branch: '*' }),
      branch: '*',
      project: braces(project ? [project] : recipe.projects),
      version: '*',
      platform: '*',
    });
    const re = templateRegex(recipe.release.replace('{area}', recipe.area), { repo: recipe.repo });
    for (const p of expandGlob(source, pattern)) {
      const m = re.exec(display(p).slice(MOUNT.length + 1));
      const v = m?.groups?.['version'];
      if (v && recipe.version.test(v)) all.add(`${m.groups?.['project'] ?? recipe.projects[0]},${v}`);
    }
  }
  const sorted = [...all].sort((a, b) => (key(a.split(',')[1]!) < key(b.split(',')[1]!) ? -1 : key(a.split(',')[1]!) > key(b.split(',')[1]!) ? 1 : a < b ? -1 : 1));
  const at = sorted.findIndex((v) => key(v.split(',')[1]!) > key(version));
  const i = at < 0 ? sorted.length : at;
  return sorted.slice(Math.max(0, i - 3), i + 3);
}

/** A script's text (latin1), or null when it cannot be read. */
function readScript(source: CvmfsTree, imagePath: string): string | null {
  try {
    return source.readFile(imagePath).toString('latin1');
  } catch {
    return null;
  }
}

/** Reading setup scripts from the source tree, resolving links as the kernel would. */
export function scriptHost(source: CvmfsTree): ScriptHost {
  /** The path with its links and `..` resolved, or null when that leads out of the source's repositories. */
  const inside = (p: string): string | null => {
    const rules = throughLinks({ kind: 'recursive', path: p, origin: '', text: '', reason: '' }, source);
    // throughLinks ends with the rule itself, resolved, unless the path leads outside (then only links).
    const last = rules[rules.length - 1];
    return last && last.kind === 'recursive' ? last.path : null;
  };
  return {
    resolve: (p) => inside(p) ?? p,
    read(p) {
      const r = inside(p);
      return r === null ? null : readScript(source, r);
    },
    kind(p) {
      const r = inside(p);
      if (r === null) return null;
      const st = source.stat(r);
      return !st ? null : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? null : 'file';
    },
  };
}

/** One release being planned: what every phase of addRelease reads, and what they fill in. */
interface ReleaseWork {
  res: Resolution;
  recipe: Recipe;
  vars: Record<string, string>;
  /** `Project version`, for reasons and messages. */
  name: string;
  /** Image path of the release (its InstallArea). */
  ia: string;
  opts: ReleaseOptions;
  source: CvmfsTree;
  host: ScriptHost;
  plan: ReleasePlan;
  diag: Diagnostics;
  out: ResolvedRelease;
  /** A rule for `path`, with the links on its way (plan.rules). */
  addRule: (kind: SpecRule['kind'], path: string, reason: string, origin: string) => void;
}

/**
 * The phases of one release, in order: each adds rules and parts to the plan, and the order of
 * those is the plan's (and the image's) order.
 */
function* addRelease(res: Resolution, opts: ReleaseOptions, source: CvmfsTree, host: ScriptHost, plan: ReleasePlan, diag: Diagnostics): Steps<ResolvedRelease> {
  const w = startRelease(res, opts, source, host, plan, diag);
  yield;
  const chain = evaluateChain(w);
  yield;
  selectChainScripts(w, chain);
  findCompilers(w, chain);
  readEnvironment(w, chain);
  yield;
  const lcgDirs = lcgReleases(w, chain);
  yield;
  const rel = (p: string) => display(p).slice(MOUNT.length + 1);
  const packVars: Record<string, string | string[]> = {
    ...w.vars,
    release: rel(w.ia),
    chain: [w.ia, ...w.out.bases.map((b) => b.path)].map(rel),
    compiler: w.out.compilers.map(rel),
    lcg: [...lcgDirs].map(rel),
    dbrelease: [],
  };
  // Resolved here for the packs' {dbrelease}; recorded in `out` only where the dbrelease pack puts it in the image.
  const resolvedDb = resolveDbRelease(w);
  if (resolvedDb) packVars['dbrelease'] = display(resolvedDb.version);
  yield;
  applyPacks(w, packVars, resolvedDb);
  return w.out;
}

/** The release itself: its names, its recursive rule, its part. */
function startRelease(res: Resolution, opts: ReleaseOptions, source: CvmfsTree, host: ScriptHost, plan: ReleasePlan, diag: Diagnostics): ReleaseWork {
  const { recipe, vars } = res;
  const name = `${vars['project']} ${vars['version']}`;
  const ia = `${MOUNT}/${fromText(expandTemplate(recipe.release, vars, recipe.file)[0]!)}`;
  const addRule = (kind: SpecRule['kind'], path: string, reason: string, origin: string) => {
    const rule: SpecRule = { kind, path, origin, text: display(path) + (kind === 'recursive' ? '/*' : ''), reason };
    for (const item of throughLinks(rule, source)) plan.rules.push(item);
  };
  const out: ResolvedRelease = {
    recipe: recipe.name,
    project: vars['project']!,
    version: vars['version']!,
    branch: vars['branch']!,
    platform: vars['platform']!,
    path: ia,
    bases: [],
    compilers: [],
    lcg: [],
    dbrelease: null,
    packs: [],
    ldLibraryPath: [],
    unevaluated: [],
    envPaths: [],
    setupScript: `${ia}/${recipe.setup}`,
  };
  addRule('recursive', ia, `release ${name} (${res.req.origin})`, res.req.origin);
  plan.parts.push({ label: `release ${name}`, roots: [host.resolve(ia)] });
  return { res, recipe, vars, name, ia, opts, source, host, plan, diag, out, addRule };
}

/**
 * The setup chain, evaluated, with the base projects it sources (<Project>Externals, ...), then
 * the extra base projects the recipe names (GAUDI for 21.x Gaudi projects) and their chains.
 */
function evaluateChain(w: ReleaseWork): ShellResult {
  const { recipe, vars, ia, host } = w;
  const chain = evaluateSetup(`${ia}/${recipe.setup}`, host);
  const projectOf = templateRegex(recipe.release, { repo: vars['repo']!, area: vars['area']!, platform: vars['platform']! });
  const addBase = (dir: string, why: string) => {
    if (dir === ia || w.out.bases.some((b) => b.path === dir)) return;
    const m = projectOf.exec(display(dir).slice(MOUNT.length + 1));
    const label = m ? `${m.groups!['project']} ${m.groups!['version']}` : display(dir);
    w.out.bases.push({ label, path: dir, why });
    w.addRule('recursive', dir, `base project ${label} of ${w.name}: ${why}`, why);
    w.plan.parts.push({ label: `base project ${label}`, roots: [host.resolve(dir)] });
  };
  const chainGlobs = lineGlobs(recipe.chain, vars);
  for (const s of chain.scripts) {
    if (!s.found || s.from === 'top') continue;
    const rel = s.path.slice(MOUNT.length + 1);
    if (chainGlobs.some((g) => globMatches(g, rel))) addBase(parent(s.path), `its setup is sourced by ${s.from}`);
  }
  for (const l of recipe.also) {
    if (!holds(l.when, vars)) continue;
    for (const t of expandTemplate(l.args[0]!, vars, l.origin)) {
      const dir = `${MOUNT}/${fromText(t)}`;
      if (host.kind(dir) !== 'dir') continue;
      addBase(dir, `recipe ${l.origin}`);
      if (host.kind(`${dir}/${recipe.setup}`) === 'file') {
        const more = evaluateSetup(`${dir}/${recipe.setup}`, host, chain.env);
        for (const item of more.scripts.map((s) => (s.from === 'top' ? { ...s, from: l.origin } : s))) chain.scripts.push(item);
        for (const item of more.unknown) chain.unknown.push(item);
      }
    }
  }
  return chain;
}

/** Every script the chain sources is needed to set the release up, wherever it lives. */
function selectChainScripts(w: ReleaseWork, chain: ShellResult): void {
  for (const s of chain.scripts) {
    if (!s.path.startsWith(MOUNT + '/')) continue;
    if (!s.found) {
      w.diag.warn('setup-missing', `setup chain of ${w.name}: ${s.from} sources ${display(s.path)}, which is not in the source tree`);
      continue;
    }
    w.addRule('exact', s.path, `setup chain of ${w.name}: sourced by ${s.from}`, s.from);
  }
  if (chain.unknown.length > 0) {
    w.out.unevaluated = chain.unknown;
    w.diag.warn('setup-unevaluated', `setup chain of ${w.name}: ${chain.unknown.length} construct(s) not evaluated, e.g. ${chain.unknown[0]} (plan --json lists them)`);
  }
}

/** Compilers: the directories of the chain's scripts that the recipe's compiler lines match, each a part. */
function findCompilers(w: ReleaseWork, chain: ShellResult): void {
  const { host } = w;
  const compilerGlobs = lineGlobs(w.recipe.compiler, w.vars);
  for (const s of chain.scripts) {
    if (!s.found || !s.path.startsWith(MOUNT + '/')) continue;
    const rel = s.path.slice(MOUNT.length + 1);
    const dir = parent(s.path);
    if (compilerGlobs.some((g) => globMatches(g, rel)) && !w.out.compilers.includes(dir)) {
      w.out.compilers.push(dir);
      const roots = ['', '/lib64', '/lib', '/bin'].map((sub) => host.resolve(dir + sub)).filter((r) => host.kind(r) === 'dir');
      const shown = display(dir);
      w.plan.parts.push({ label: `compiler ${shown.includes('/releases/') ? shown.slice(shown.lastIndexOf('/releases/') + 10) : shown}`, roots: [...new Set(roots)] });
    }
  }
}

/** What the chain's environment says: LD_LIBRARY_PATH for the ELF closure, /cvmfs paths to check against the image. */
function readEnvironment(w: ReleaseWork, chain: ShellResult): void {
  w.out.ldLibraryPath = (chain.env.get('LD_LIBRARY_PATH') ?? '').split(':').filter((d) => d.startsWith('/')).map(normalise);
  for (const d of w.out.ldLibraryPath) if (!w.plan.ldLibraryPath.includes(d)) w.plan.ldLibraryPath.push(d);
  for (const [variable, value] of [...chain.env].sort()) {
    for (const p of value.split(':')) if (p.startsWith(MOUNT + '/')) w.out.envPaths.push({ variable, path: normalise(p) });
  }
}

/** LCG releases the environment points into, and the packages their lists name: rules and a part each. */
function lcgReleases(w: ReleaseWork, chain: ShellResult): Set<string> {
  const { host, vars, name } = w;
  const lcgDirs = new Set<string>();
  for (const value of chain.env.values()) {
    for (const p of value.split(':')) {
      if (!p.startsWith(MOUNT + '/')) continue;
      const parts = normalise(p).split('/');
      const at = parts.findIndex((c, i) => i > 2 && c.startsWith('LCG_'));
      if (at > 0) lcgDirs.add(parts.slice(0, at + 1).join('/'));
    }
  }
  for (const dir of [...lcgDirs].sort()) {
    for (const l of w.recipe.lcg) {
      if (!holds(l.when, vars)) continue;
      for (const nameT of expandTemplate(l.args[0]!, vars, l.origin)) {
        const file = `${dir}/${fromText(nameT)}`;
        if (host.kind(file) !== 'file') continue;
        w.out.lcg.push(file);
        w.addRule('exact', file, `LCG package list of ${name} (its environment points into ${display(dir)})`, l.origin);
        const roots = [host.resolve(dir)];
        for (const pkg of lcgPackages(readScript(w.source, host.resolve(file)) ?? '', display(file))) {
          const pdir = normalise(`${dir}/${fromText(pkg.path)}`);
          if (host.kind(pdir) !== 'dir') {
            w.diag.warn('lcg-missing', `${display(file)}:${pkg.line}: ${pkg.name} ${pkg.version}: ${display(pdir)} is not in the source tree`);
            continue;
          }
          w.addRule('recursive', pdir, `LCG package ${pkg.name} ${pkg.version} of ${name} (${display(file)}:${pkg.line})`, `${display(file)}:${pkg.line}`);
          roots.push(host.resolve(pdir));
        }
        w.plan.parts.push({ label: `LCG ${display(dir).split('/').pop()}`, roots });
      }
    }
  }
  return lcgDirs;
}

/** DBRelease: the version asked for (`--dbrelease`), or the one `current` points to; null for none. */
function resolveDbRelease(w: ReleaseWork): ResolvedRelease['dbrelease'] {
  const { recipe, opts, host, source } = w;
  if (!recipe.dbrelease || opts.dbrelease === 'none') return null;
  const dbDir = `${MOUNT}/${fromText(expandTemplate(recipe.dbrelease, w.vars, recipe.file)[0]!)}`;
  if (opts.dbrelease) {
    if (/[/]/.test(opts.dbrelease) || opts.dbrelease === '.' || opts.dbrelease === '..') {
      throw new InputError(`--dbrelease ${opts.dbrelease}: expected a version (a name in ${display(dbDir)}), or none`);
    }
    if (host.kind(`${dbDir}/${fromText(opts.dbrelease)}`) !== 'dir') {
      const there = host.kind(dbDir) === 'dir' ? source.list(dbDir).filter((n) => /^[0-9]/.test(n)).map(display) : [];
      throw new InputError(`--dbrelease ${opts.dbrelease}: not found in ${display(source.where(dbDir))} (there: ${there.join(', ') || 'nothing'})`);
    }
    return { path: `${dbDir}/${fromText(opts.dbrelease)}`, version: opts.dbrelease, via: 'option' };
  }
  if (source.stat(`${dbDir}/current`)?.isSymbolicLink()) {
    const target = source.readLink(`${dbDir}/current`).replace(/\/+$/, '');
    const version = target.slice(target.lastIndexOf('/') + 1);
    if (host.kind(`${dbDir}/current`) === 'dir') return { path: host.resolve(`${dbDir}/current`), version, via: 'current' };
  }
  return null;
}

/** Rule packs: the recipe's (with their conditions) and the operator's, minus the ones turned off. */
function applyPacks(w: ReleaseWork, packVars: Record<string, string | string[]>, resolvedDb: ResolvedRelease['dbrelease']): void {
  const { recipe, vars, opts } = w;
  const packNames: string[] = [];
  for (const l of recipe.packs) if (holds(l.when, vars)) packNames.push(...l.args);
  if (opts.dbrelease && opts.dbrelease !== 'none') packNames.push('dbrelease');
  for (const item of opts.packs) packNames.push(item);
  const wanted = [...new Set(packNames)].filter((p) => !opts.dropPacks.includes(p) && !(p === 'dbrelease' && opts.dbrelease === 'none'));
  for (const p of wanted) {
    const pack = loadPack(p);
    w.out.packs.push(pack.name);
    const roots = applyPack(pack, packVars, vars, w.source, w.host, w.plan, w.addRule, w.name);
    if (pack.name === 'dbrelease' && resolvedDb) {
      w.out.dbrelease = resolvedDb;
      roots.push(resolvedDb.path);
    }
    if (roots.length > 0) w.plan.parts.push({ label: `pack ${pack.name}`, roots });
  }
}

function applyPack(
  pack: Pack,
  packVars: Record<string, string | string[]>,
  vars: Record<string, string>,
  source: CvmfsTree,
  host: ScriptHost,
  plan: ReleasePlan,
  addRule: (kind: SpecRule['kind'], path: string, reason: string, origin: string) => void,
  name: string,
): string[] {
  const roots: string[] = [];
  for (const l of pack.lines) {
    if (!holds(l.when, vars)) continue;
    for (const pattern of expandTemplate(l.args[0]!, packVars, l.origin)) {
      if (l.key === 'exclude') plan.globs.exclude(pattern, `pack ${pack.name} (${l.origin})`);
      else if (l.key === 'keep') plan.globs.keep(pattern, l.origin);
      else {
        compileGlob(pattern, l.origin); // syntax check, with the line in the message
        const matches = /[*?[{]/.test(pattern) ? expandGlob(source, pattern) : [`${MOUNT}/${fromText(pattern.replace(/^\/cvmfs\//, ''))}`];
        for (const m of matches) {
          const kind = host.kind(m);
          if (kind === null) continue; // packs name what may be there
          addRule(kind === 'dir' ? 'recursive' : 'exact', m, `pack ${pack.name} for ${name} (${l.origin}): ${pack.about}`, l.origin);
          roots.push(host.resolve(m));
        }
      }
    }
  }
  return roots;
}

function lineGlobs(lines: Line[], vars: Record<string, string>) {
  return lines.filter((l) => holds(l.when, vars)).flatMap((l) => expandTemplate(l.args[0]!, vars, l.origin).map((t) => compileGlob(fromText(t), l.origin)));
}

function parent(p: string): string {
  return p.slice(0, p.lastIndexOf('/')) || '/';
}

/** `NAME; HASH; VERSION; PATH; DEPS` lines of an LCG_externals file (header lines have a colon). */
export function lcgPackages(text: string, shown: string): { name: string; version: string; path: string; line: number }[] {
  const out: { name: string; version: string; path: string; line: number }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || /^[A-Za-z_]+:/.test(line) || !line.includes(';')) return;
    const f = line.split(';').map((x) => x.trim());
    if (f.length < 4 || f[3] === '') throw new InputError(`${shown}:${i + 1}: expected NAME; HASH; VERSION; PATH; DEPENDENCIES`);
    out.push({ name: f[0]!, version: f[2]!, path: f[3]!, line: i + 1 });
  });
  return out;
}

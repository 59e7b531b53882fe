// select: which entries of a /cvmfs tree go into the image, and why.
import * as path from 'node:path';
import { display, fromText } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { type Entry, findPath } from '../model/entry.js';
import { InputError } from '../model/errors.js';
import { type PlanSummary, assignHardLinks, summarize } from '../model/plan.js';
import { throughLinks } from './closure/links.js';
import type { BaseLibraries } from './closure/base-libs.js';
import { type ElfClosureStats, elfClosurePass } from './closure/elf-closure.js';
import { GlobExclusions } from './glob.js';
import { includeRules } from './include.js';
import { type Part, type ReleaseOptions, type ResolvedRelease, planReleasesSteps, scriptHost } from './release/index.js';
import { evaluateSetup, normalise } from './release/shell.js';
import { type ClosureStats, symlinkClosureSteps } from './closure/symlink.js';
import { explainPath } from './explain.js';
import { Selection } from './selection.js';
import { PosixTree } from '../sources/cvmfs/posix.js';
import { isCvmfsUrl, openCvmfsTree } from '../sources/cvmfs/open.js';
import type { CvmfsTree } from '../sources/cvmfs/tree.js';
import { MOUNT, type SpecRule, parseSpec, readSpecFile } from './spec/parse.js';
import { type FailedAccess, type TraceEvent, type TraceEventName, type TraceFormat, buildSpecs, readTraces } from './trace/index.js';
import { SpecTree } from './spec/tree.js';
import { walkSteps } from './walk.js';
import { type Steps, runSteps, runStepsAsync } from '../util/steps.js';

export interface TraceInput {
  /** Trace files (their union is taken). */
  files: string[];
  format?: TraceFormat;
  policy: 'pdir' | 'exact';
  filters: TraceEventName[];
}

export interface SelectOptions {
  /** The tree laid out like /cvmfs, or a server's /cvmfs URL (as typed by the user). */
  cvmfsRoot: string;
  /** The tree `cvmfsRoot` names, opened by the caller (sources/cvmfs/open.ts); needed for a URL. */
  source?: CvmfsTree;
  /** Spec files, in order. */
  specs: string[];
  /** Access traces, turned into spec lines as cvmfs's spec_builder.py would. */
  traces?: TraceInput;
  /** Repository of relative spec lines, overriding the file names. */
  repo: string | null;
  /** Follow selected symlinks (on by default). */
  closure: boolean;
  /**
   * ELF closure: add the shared libraries selected ELF objects need, searching `ldLibraryPath`
   * (image directories) as LD_LIBRARY_PATH, then the releases' and the traces' search paths. On
   * by default with releases (`elf: undefined`); null turns it off.
   */
  elf?: { ldLibraryPath: string[] } | null;
  /** Releases to select (`--release`), with their recipes and packs. */
  releases?: ReleaseOptions | null;
  /** `--include` / `--exclude` globs (paths under /cvmfs, fast-glob syntax). */
  include?: string[];
  exclude?: string[];
  /** The base image's loader directories: what it provides is never bundled. */
  base?: BaseLibraries | null;
  /** Leave out (with a warning) what this process may not read, instead of failing. */
  skipUnreadable?: boolean;
  /**
   * Read each /cvmfs entry's extended attributes (default true; builds need them). `plan` leaves
   * them out unless asked: one listxattr an entry is a third of a warm 1,000,000-entry walk.
   */
  xattrs?: boolean;
  /** Entries and bytes selected so far, now and then during the walk. */
  onProgress?: (entries: number, bytes: number) => void;
  /**
   * Each regular file the spec walk selects, as it is found, in path order (the SquashFS writer
   * starts on their content meanwhile). Closures add files later; those come only in `entries`.
   */
  onWalkFile?: (e: Entry) => void;
}

/** Bytes and entries a part of the request contributes (the release, its externals, a pack, ...). */
export interface PartSummary {
  label: string;
  entries: number;
  bytes: number;
}

export interface Payload {
  /** Selected entries under /cvmfs, in path order. */
  entries: Entry[];
  summary: PlanSummary;
  closure: ClosureStats | null;
  elf: ElfClosureStats | null;
  /** With releases: how much each part contributes (the rest is `other`). */
  parts: PartSummary[];
  /** With releases: the part label of each entry (same order as `entries`); `--layer-per release` groups by it. */
  partOf: string[];
  /** Every rule the selection applied (specs, traces, releases, globs): /.shrinkwrap/specs records them. */
  rules: SpecRule[];
  releases: ResolvedRelease[];
  /** LD_LIBRARY_PATH the ELF closure searched (image paths). */
  searchPath: string[];
  /** Why a path is (or is not) in the image: `plan --explain`. */
  explain: (imagePath: string) => string[];
  /** The tree the entries come from (their `source`s are its to open). */
  source: CvmfsTree;
}

export function selectPayload(opts: SelectOptions, diag: Diagnostics): Payload {
  return runSteps(selectSteps(opts, diag));
}

/**
 * selectPayload(), letting the event loop turn every few milliseconds of the spec walk, so that
 * work started before it (the SquashFS writer's) goes on meanwhile. `between` runs at each turn
 * and may throw to stop the selection.
 */
export function selectPayloadAsync(opts: SelectOptions, diag: Diagnostics, between?: () => void): Promise<Payload> {
  return runStepsAsync(selectSteps(opts, diag), between);
}

function* selectSteps(opts: SelectOptions, diag: Diagnostics): Steps<Payload> {
  const traceFiles = opts.traces?.files ?? [];
  const releases = opts.releases?.requests.length ? opts.releases : null;
  if (opts.specs.length === 0 && traceFiles.length === 0 && !releases && (opts.include ?? []).length === 0) {
    throw new InputError('nothing to select: give --release VERSION, --spec FILE, --trace FILE or --include GLOB');
  }
  // The caller's tree (it closes it), else the directory --cvmfs-root names.
  const rootText = isCvmfsUrl(opts.cvmfsRoot) ? opts.cvmfsRoot : path.resolve(opts.cvmfsRoot);
  const source = opts.source ?? openCvmfsTree(opts.cvmfsRoot, null, diag, { xattrs: opts.xattrs ?? true });
  try {
    return yield* selectFrom(source, rootText, releases, opts, diag);
  } finally {
    source.release();
  }
}

function* selectFrom(source: CvmfsTree, rootText: string, releases: ReleaseOptions | null, opts: SelectOptions, diag: Diagnostics): Steps<Payload> {
  const rules: SpecRule[] = [];
  const traceFiles = opts.traces?.files ?? [];
  const repo = opts.repo === null ? null : fromText(opts.repo);
  const globs = new GlobExclusions();
  let parts: Part[] = [];
  let resolved: ResolvedRelease[] = [];
  const searchPath = [...(opts.elf?.ldLibraryPath ?? [])];
  // Over HTTP, the repositories the spec files name (<fqrn>.spec, --repo) are opened without
  // blocking first, so a server that stalls cannot hold a signal; others are opened when met.
  const named = [...(repo !== null ? [repo] : []), ...opts.specs.map((f) => path.basename(f).replace(/\.spec$/, ''))];
  const ahead = source.openAhead?.(named);
  if (ahead) yield ahead;
  if (releases) {
    const plan = yield* planReleasesSteps(releases, source, rootText, diag);
    for (const item of plan.rules) rules.push(item);
    parts = plan.parts;
    resolved = plan.releases;
    for (const d of plan.ldLibraryPath) if (!searchPath.includes(d)) searchPath.push(d);
    globs.adopt(plan.globs);
  }
  for (const file of opts.specs) for (const item of readSpecFile(fromText(file), repo, (r) => source.isRepo(r), diag)) rules.push(item);
  let traced: string[] = [];
  if (opts.traces && traceFiles.length > 0) {
    const t = traceRules(opts.traces, repo, (r) => source.isRepo(r), diag);
    for (const r of t.rules) for (const item of throughLinks(r, source)) rules.push(item);
    traced = loaderDirs(t.events, t.failed, source);
  }
  for (const g of opts.exclude ?? []) globs.exclude(g, `--exclude ${g}`);
  for (const item of includeRules(opts.include ?? [], rules, source, globs, rootText, diag)) rules.push(item);
  const ruleRepos = source.openAhead?.(rules.map((r) => r.path.split('/')[2]!));
  if (ruleRepos) yield ruleRepos;
  for (const rule of rules) {
    const repo = rule.path.split('/')[2]!;
    if (!source.isRepo(repo)) {
      throw new InputError(`${rule.origin}: repository ${display(repo)} not found under ${rootText}`);
    }
  }

  const tree = new SpecTree(rules, diag, globs);
  const sel = new Selection(source, diag);
  sel.onProgress = opts.onProgress ?? null;
  sel.skipUnreadable = opts.skipUnreadable ?? false;
  sel.onWalkFile = opts.onWalkFile ?? null;
  // The ELF closure is on by default with releases: AtlasCMake builds have no RPATH (§1.6).
  const elf = opts.elf === null ? null : opts.elf !== undefined || releases ? { ldLibraryPath: searchPath, traced, base: opts.base ?? null } : null;
  if (elf) for (const p of opts.base?.problems ?? []) diag.warn('base-ldconf', `base image ${p}`);
  const payload = yield* finishSelection(opts, sel, tree, rules, elf, diag);
  if (releases) {
    payload.partOf = partLabels(payload.entries, parts);
    payload.parts = partSummary(payload.entries, parts, payload.partOf);
  }
  if (releases) reportEnvPathsNotInImage(resolved, payload.entries, source, diag);
  payload.releases = resolved;
  payload.searchPath = searchPath;
  return payload;
}

/**
 * Directories the traced loader searched: where it opened shared libraries or looked for them in
 * vain, and what the setup scripts the workload opened put on LD_LIBRARY_PATH.
 */
function loaderDirs(events: readonly TraceEvent[], failed: readonly FailedAccess[], source: CvmfsTree): string[] {
  const dirs: string[] = [];
  const add = (d: string) => {
    if (!dirs.includes(d)) dirs.push(d);
  };
  const isLib = (p: string) => /\/[^/]*\.so(\.[0-9][^/]*)?$/.test(p);
  const host = scriptHost(source);
  for (const a of [...events, ...failed]) {
    if (!isLib(a.path)) continue;
    if ('event' in a && a.event !== 'open' && a.event !== 'lookup' && a.event !== 'getattr') continue;
    add(`${MOUNT}/${a.repo}${a.path.slice(0, a.path.lastIndexOf('/'))}`);
  }
  const scripts = new Set<string>();
  for (const e of events) if (e.event === 'open' && /\.(sh|bash)$/.test(e.path)) scripts.add(`${MOUNT}/${e.repo}${e.path}`);
  for (const s of scripts) {
    const r = evaluateSetup(s, host);
    for (const d of (r.env.get('LD_LIBRARY_PATH') ?? '').split(':')) if (d.startsWith(MOUNT + '/')) add(normalise(d));
  }
  return dirs;
}

/**
 * Setup scripts hard-code /cvmfs paths (CALIBPATH, DATAPATH, ...): say which the image lacks, since
 * offline a job searching them finds nothing there (reference atlas-on-cvmfs.md §1.6).
 */
function reportEnvPathsNotInImage(releases: readonly ResolvedRelease[], entries: readonly Entry[], source: CvmfsTree, diag: Diagnostics): void {
  const seen = new Set<string>();
  for (const r of releases) {
    for (const { variable, path } of r.envPaths) {
      if (seen.has(path) || findPath(entries, path) >= 0) continue;
      seen.add(path);
      const there = source.stat(path) !== null;
      diag.warn(
        'setup-path-missing',
        `setup chain of ${r.project} ${r.version}: ${variable} names ${display(path)}, which ${there ? 'is in the source but not selected' : 'is not in the source tree'}: jobs will not find it in the image`,
      );
    }
  }
}

const OTHER_PART = 'other (spec lines, traces, closures, ancestors)';

/** The part of each entry: the earliest-named part whose root holds it, else "other". */
function partLabels(entries: readonly Entry[], parts: readonly Part[]): string[] {
  const rootPart = new Map<string, number>();
  parts.forEach((p, i) => {
    for (const r of p.roots) if (!rootPart.has(r)) rootPart.set(r, i);
  });
  return entries.map((e) => {
    let best = -1;
    for (let p = e.path; p.length > MOUNT.length; p = p.slice(0, p.lastIndexOf('/'))) {
      const i = rootPart.get(p);
      if (i !== undefined && (best < 0 || i < best)) best = i;
    }
    return best < 0 ? OTHER_PART : parts[best]!.label;
  });
}

/** Entries and bytes per part, in the order parts were named ("other" last). */
function partSummary(entries: readonly Entry[], parts: readonly Part[], labels: readonly string[]): PartSummary[] {
  // Parts that several releases share (one LCG release, one compiler) are listed once.
  const merged = new Map<string, PartSummary>();
  for (const p of parts) if (!merged.has(p.label)) merged.set(p.label, { label: p.label, entries: 0, bytes: 0 });
  for (const [i, e] of entries.entries()) {
    const label = labels[i]!;
    let m = merged.get(label);
    if (!m) merged.set(label, (m = { label, entries: 0, bytes: 0 }));
    m.entries++;
    if (e.type === 'file') m.bytes += e.size;
  }
  const other = merged.get(OTHER_PART);
  if (other) {
    merged.delete(OTHER_PART);
    merged.set(OTHER_PART, other);
  }
  // A part whose roots all lie inside an earlier one (a pack's files inside the release) shows as 0: leave it out.
  return [...merged.values()].filter((s) => s.entries > 0);
}

function* finishSelection(
  opts: SelectOptions,
  sel: Selection,
  tree: SpecTree,
  rules: SpecRule[],
  elfSearch: { ldLibraryPath: string[]; traced: string[]; base: BaseLibraries | null } | null,
  diag: Diagnostics,
): Steps<Payload> {
  const mount = tree.match(MOUNT);
  const links: string[] = [];
  if (mount) {
    for (const repo of tree.listing(mount.state) as string[]) {
      const pick = tree.pick(mount.state, repo);
      if (pick) for (const item of yield* walkSteps(sel, tree, `${MOUNT}/${repo}`, pick)) links.push(item);
    }
  }
  sel.endWalk();
  for (const r of rules) if (r.kind === 'recursive' && sel.has(r.path) && !tree.exclusionOf(r.path)) sel.deepRoots.add(r.path);
  reportUnmatchedRules(sel, tree, rules);

  const closure = opts.closure ? yield* symlinkClosureSteps(sel, tree, links) : null;
  let elf: ElfClosureStats | null = null;
  if (elfSearch) {
    // Libraries bring links, links bring libraries: alternate until nothing new appears.
    elf = { objects: 0, added: 0, unresolved: 0, fromBase: 0 };
    const seen = new Set<Entry>();
    for (;;) {
      const pass = yield* elfClosurePass(sel, tree, elfSearch, seen, elf, diag);
      if (pass.links.length > 0) yield* symlinkClosureSteps(sel, tree, pass.links);
      if (!pass.added) break;
    }
  }
  if (!opts.closure) {
    for (const l of links) {
      const t = sel.get(l)!.target!;
      diag.warn('symlink-not-followed', `${display(l)} -> ${display(t)}: not followed (--no-closure)`);
    }
  }

  const entries = sel.sorted();
  assignHardLinks(entries);
  let byPath: Map<string, Entry> | null = null; // built on the first --explain only
  // The closure keeps the source, not the selection: its lists would outlive the walk for nothing.
  const source = sel.source;
  const explain = (p: string) => {
    byPath ??= new Map(entries.map((e) => [e.path, e]));
    try {
      return explainPath({ entries: byPath, tree, source }, p);
    } finally {
      source.release(); // explaining looks things up through the working-directory cursor
    }
  };
  return { entries, summary: summarize(entries, MOUNT), closure, elf, explain, parts: [], partOf: [], rules, releases: [], searchPath: [], source };
}

/**
 * Spec rules from access traces: the events of all traces, per repository, through the same
 * selection as cvmfs's spec_builder.py; each rule's origin names the traces and the policy.
 */
export function traceRules(
  t: TraceInput,
  repo: string | null,
  isRepo: (fqrn: string) => boolean,
  diag: Diagnostics,
): { rules: SpecRule[]; events: TraceEvent[]; failed: FailedAccess[] } {
  const { events, failed } = readTraces(t.files, { format: t.format, repo, knownRepo: isRepo, filters: t.filters }, diag);
  const origin = `${t.files.length === 1 ? t.files[0] : `${t.files.length} traces`} (${t.policy})`;
  const rules: SpecRule[] = [];
  for (const [fqrn, lines] of buildSpecs(events, { policy: t.policy, filters: t.filters })) {
    // A workload may touch repositories the source does not have: that is worth a word, not a stop
    // (a spec file naming one is a request, and stays an error).
    if (!isRepo(fqrn)) {
      diag.warn('trace-repo-missing', `${origin}: the trace touches /cvmfs/${display(fqrn)}, which is not in the source tree; left out`);
      continue;
    }
    for (const item of parseSpec(lines.join('\n'), { file: origin, repo: fqrn }, isRepo, diag)) rules.push(item);
  }
  return { rules, events, failed };
}

/**
 * Spec lines that need no symlink to be followed: each repository's lines from a trace, resolved
 * through the links of the tree at `cvmfsRoot` (the links themselves become exact lines of their own
 * repositories). Used by `shrinkwrap trace`, whose specs must work as plain spec files.
 */
export function specsThroughLinks(specs: Map<string, string[]>, cvmfsRoot: string, diag: Diagnostics): Map<string, string[]> {
  const source = new PosixTree(fromText(path.resolve(cvmfsRoot)));
  const out = new Map<string, string[]>();
  try {
    for (const [fqrn, lines] of specs) {
      if (!source.isRepo(fqrn)) {
        for (const l of lines) push(out, fqrn, l); // nothing to resolve against: keep as traced
        continue;
      }
      for (const rule of parseSpec(lines.join('\n'), { file: 'trace', repo: fqrn }, (r) => source.isRepo(r), diag)) {
        for (const r of throughLinks(rule, source)) {
          const [, , repo, ...rest] = r.path.split('/');
          const rel = '/' + rest.join('/');
          push(out, repo!, r.kind === 'flat' ? `^${rel === '/' ? '' : rel}/*` : r.kind === 'recursive' ? `${rel === '/' ? '' : rel}/*` : `^${rel}`);
        }
      }
    }
  } finally {
    source.release();
  }
  return out;
}

function push(m: Map<string, string[]>, key: string, line: string): void {
  const list = m.get(key);
  if (!list) m.set(key, [line]);
  else if (!list.includes(line)) list.push(line);
}

/** Say why an inclusion line selected nothing: its path is missing, or it runs through a symlink. */
function reportUnmatchedRules(sel: Selection, tree: SpecTree, rules: SpecRule[]): void {
  for (const rule of rules) {
    if (rule.kind === 'exclude' || sel.has(rule.path)) continue;
    if (tree.exclusionOf(rule.path)) continue; // reported as shadowed when the tree was built
    const parts = rule.path.split('/');
    for (let i = 3; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const st = sel.source.stat(p);
      if (!st) {
        sel.diag.warn('spec-not-found', `${rule.origin}: '${rule.text}': ${display(sel.source.where(p))} does not exist`);
        break;
      }
      if (st.isSymbolicLink() && i < parts.length) {
        sel.diag.warn(
          'spec-through-symlink',
          `${rule.origin}: '${rule.text}': ${display(p)} is a symlink; spec paths are not followed through symlinks (name the target's path instead)`,
        );
        break;
      }
    }
  }
}

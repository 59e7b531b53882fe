// select: which entries of a /cvmfs tree go into the image, and why.
import * as path from 'node:path';
import { display, fromText } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import type { Entry } from '../model/entry.js';
import { InputError } from '../model/errors.js';
import { type PlanSummary, assignHardLinks, summarize } from '../model/plan.js';
import { requireDirectory } from '../sources/posix.js';
import { throughLinks } from './closure/links.js';
import { type ElfClosureStats, elfClosurePass } from './closure/elf-closure.js';
import { type ClosureStats, symlinkClosure } from './closure/symlink.js';
import { explainPath } from './explain.js';
import { CvmfsSource, Selection } from './selection.js';
import { MOUNT, type SpecRule, parseSpec, readSpecFile } from './spec/parse.js';
import { type TraceEventName, type TraceFormat, buildSpecs, readTraces } from './trace/index.js';
import { SpecTree } from './spec/tree.js';
import { walkSelected } from './walk.js';

export interface TraceInput {
  /** Trace files (their union is taken). */
  files: string[];
  format?: TraceFormat;
  policy: 'pdir' | 'exact';
  filters: TraceEventName[];
}

export interface SelectOptions {
  /** The tree laid out like /cvmfs (as typed by the user). */
  cvmfsRoot: string;
  /** Spec files, in order. */
  specs: string[];
  /** Access traces, turned into spec lines as cvmfs's spec_builder.py would. */
  traces?: TraceInput;
  /** Repository of relative spec lines, overriding the file names. */
  repo: string | null;
  /** Follow selected symlinks (on by default). */
  closure: boolean;
  /** ELF closure: add the shared libraries selected ELF objects need, searching these (image) directories as LD_LIBRARY_PATH. */
  elf?: { ldLibraryPath: string[] } | null;
}

export interface Payload {
  /** Selected entries under /cvmfs, in path order. */
  entries: Entry[];
  summary: PlanSummary;
  closure: ClosureStats | null;
  elf: ElfClosureStats | null;
  /** Why a path is (or is not) in the image: `plan --explain`. */
  explain: (imagePath: string) => string[];
}

export function selectPayload(opts: SelectOptions, diag: Diagnostics): Payload {
  const rootText = path.resolve(opts.cvmfsRoot);
  requireDirectory(fromText(rootText), '--cvmfs-root');
  const source = new CvmfsSource(fromText(rootText));
  const traceFiles = opts.traces?.files ?? [];
  if (opts.specs.length === 0 && traceFiles.length === 0) throw new InputError('nothing to select: give at least one --spec FILE or --trace FILE');

  const rules: SpecRule[] = [];
  const repo = opts.repo === null ? null : fromText(opts.repo);
  for (const file of opts.specs) rules.push(...readSpecFile(fromText(file), repo, (r) => source.isRepo(r), diag));
  if (opts.traces && traceFiles.length > 0) {
    for (const r of traceRules(opts.traces, repo, (r) => source.isRepo(r), diag)) rules.push(...throughLinks(r, source));
  }
  for (const rule of rules) {
    const repo = rule.path.split('/')[2]!;
    if (!source.isRepo(repo)) {
      throw new InputError(`${rule.origin}: repository ${display(repo)} not found under ${rootText}`);
    }
  }

  const tree = new SpecTree(rules, diag);
  const sel = new Selection(source, diag);
  try {
    return finishSelection(opts, sel, tree, rules, diag);
  } finally {
    source.release();
  }
}

function finishSelection(opts: SelectOptions, sel: Selection, tree: SpecTree, rules: SpecRule[], diag: Diagnostics): Payload {
  const mount = tree.match(MOUNT);
  const links: string[] = [];
  if (mount) {
    for (const repo of tree.listing(mount.state) as string[]) {
      const pick = tree.pick(mount.state, repo);
      if (pick) links.push(...walkSelected(sel, tree, `${MOUNT}/${repo}`, pick));
    }
  }
  sel.endWalk();
  for (const r of rules) if (r.kind === 'recursive' && sel.has(r.path) && !tree.exclusionOf(r.path)) sel.deepRoots.add(r.path);
  reportUnmatchedRules(sel, tree, rules);

  const closure = opts.closure ? symlinkClosure(sel, tree, links) : null;
  let elf: ElfClosureStats | null = null;
  if (opts.elf) {
    // Libraries bring links, links bring libraries: alternate until nothing new appears.
    elf = { objects: 0, added: 0, unresolved: 0 };
    const seen = new Set<string>();
    for (;;) {
      const pass = elfClosurePass(sel, tree, opts.elf.ldLibraryPath, seen, elf, diag);
      if (pass.links.length > 0) symlinkClosure(sel, tree, pass.links);
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
  const explain = (p: string) => {
    byPath ??= new Map(entries.map((e) => [e.path, e]));
    try {
      return explainPath({ entries: byPath, tree, source: sel.source }, p);
    } finally {
      sel.source.release(); // explaining looks things up through the working-directory cursor
    }
  };
  return { entries, summary: summarize(entries, MOUNT), closure, elf, explain };
}

/**
 * Spec rules from access traces: the events of all traces, per repository, through the same
 * selection as cvmfs's spec_builder.py; each rule's origin names the traces and the policy.
 */
export function traceRules(t: TraceInput, repo: string | null, isRepo: (fqrn: string) => boolean, diag: Diagnostics): SpecRule[] {
  const events = readTraces(t.files, { format: t.format, repo, knownRepo: isRepo, filters: t.filters }, diag);
  const origin = `${t.files.length === 1 ? t.files[0] : `${t.files.length} traces`} (${t.policy})`;
  const rules: SpecRule[] = [];
  for (const [fqrn, lines] of buildSpecs(events, { policy: t.policy, filters: t.filters })) {
    // A workload may touch repositories the source does not have: that is worth a word, not a stop
    // (a spec file naming one is a request, and stays an error).
    if (!isRepo(fqrn)) {
      diag.warn('trace-repo-missing', `${origin}: the trace touches /cvmfs/${display(fqrn)}, which is not in the source tree; left out`);
      continue;
    }
    rules.push(...parseSpec(lines.join('\n'), { file: origin, repo: fqrn }, isRepo, diag));
  }
  return rules;
}

/**
 * Spec lines that need no symlink to be followed: each repository's lines from a trace, resolved
 * through the links of the tree at `cvmfsRoot` (the links themselves become exact lines of their own
 * repositories). Used by `shrinkwrap trace`, whose specs must work as plain spec files.
 */
export function specsThroughLinks(specs: Map<string, string[]>, cvmfsRoot: string, diag: Diagnostics): Map<string, string[]> {
  const source = new CvmfsSource(fromText(path.resolve(cvmfsRoot)));
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
        sel.diag.warn('spec-not-found', `${rule.origin}: '${rule.text}': ${display(sel.source.host(p))} does not exist`);
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

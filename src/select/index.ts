// select: which entries of a /cvmfs tree go into the image, and why.
import * as path from 'node:path';
import { display, fromText } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import type { Entry } from '../model/entry.js';
import { InputError } from '../model/errors.js';
import { type PlanSummary, assignHardLinks, summarize } from '../model/plan.js';
import { requireDirectory } from '../sources/posix.js';
import { type ClosureStats, symlinkClosure } from './closure/symlink.js';
import { CvmfsSource, Selection } from './selection.js';
import { MOUNT, type SpecRule, readSpecFile } from './spec/parse.js';
import { SpecTree } from './spec/tree.js';
import { walkSelected } from './walk.js';

export interface SelectOptions {
  /** The tree laid out like /cvmfs (as typed by the user). */
  cvmfsRoot: string;
  /** Spec files, in order. */
  specs: string[];
  /** Repository of relative spec lines, overriding the file names. */
  repo: string | null;
  /** Follow selected symlinks (on by default). */
  closure: boolean;
}

export interface Payload {
  /** Selected entries under /cvmfs, in path order. */
  entries: Entry[];
  summary: PlanSummary;
  closure: ClosureStats | null;
}

export function selectPayload(opts: SelectOptions, diag: Diagnostics): Payload {
  const rootText = path.resolve(opts.cvmfsRoot);
  requireDirectory(fromText(rootText), '--cvmfs-root');
  const source = new CvmfsSource(fromText(rootText));
  if (opts.specs.length === 0) throw new InputError('nothing to select: give at least one --spec FILE');

  const rules: SpecRule[] = [];
  for (const file of opts.specs) {
    const repo = opts.repo === null ? null : fromText(opts.repo);
    rules.push(...readSpecFile(fromText(file), repo, (r) => source.isRepo(r), diag));
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
  if (!opts.closure) {
    for (const l of links) {
      const t = sel.get(l)!.target!;
      diag.warn('symlink-not-followed', `${display(l)} -> ${display(t)}: not followed (--no-closure)`);
    }
  }

  const entries = sel.sorted();
  assignHardLinks(entries);
  return { entries, summary: summarize(entries, MOUNT), closure };
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

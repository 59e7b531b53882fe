// `build --release A --release B … --parts DIR -o OUT [--base IMAGE]`: one part per release in DIR
// (`DIR/<PROJECT>-<VERSION>[-<PLATFORM>].part.sqfs`), reused where its index matches this build,
// built (or rebuilt, replacing it) where not, then merged onto the base without compressing the
// parts again (compose/merge). A part is selected without the base (so one part serves every base
// and a patched base reuses them all); the ELF closure therefore keeps libraries a base would
// provide, and a release with several platforms needs its platform named.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultLevel } from '../../codecs/index.js';
import { Diagnostics } from '../../model/diagnostics.js';
import { InputError } from '../../model/errors.js';
import type { ReleaseRequest } from '../../select/release/index.js';
import { selectPayloadAsync } from '../../select/index.js';
import { closeTree } from '../../sources/cvmfs/open.js';
import { AtomicOutput } from '../../util/atomic.js';
import { type BuildOptions, type BuildResult, build } from '../build.js';
import type { BuildHooks } from '../hooks.js';
import { openSource, selectOptions } from '../inputs.js';
import { type MergeResult, merge } from '../merge/index.js';
import { outputKind } from '../output.js';
import { mountedRevisions, revisionsOf, sourcePath } from '../provenance.js';
import { HttpTree } from '../../sources/cvmfs/http/tree.js';
import { checkPartRules } from './build-part.js';
import { type PartIndex, type Revision, matchDifferences, partMatch, readPartIndex, selectionStamp } from './index-file.js';

export interface PartOutcome {
  /** PROJECT,VERSION[,PLATFORM] */
  release: string;
  file: string;
  action: 'reused' | 'built' | 'rebuilt';
  /** Why, in a few words (the line printed says it after the action). */
  why: string;
  /** The build that wrote it (null when reused). */
  build: BuildResult | null;
}

export interface PartsResult {
  parts: PartOutcome[];
  merged: MergeResult;
}

export interface PartsHooks extends BuildHooks {
  /** One line per part as it is decided: "AnalysisBase,21.2.75: part reused (…)". */
  onPart?: (line: string) => void;
}

/** PROJECT,VERSION[,PLATFORM] → `PROJECT-VERSION[-PLATFORM].part.sqfs`: every byte but [A-Za-z0-9._+-] becomes _, and no leading dot. */
export function partFileName(project: string, version: string, platform: string | null): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._+-]/g, '_');
  return `${[project, version, ...(platform ? [platform] : [])].map(safe).join('-')}.part.sqfs`.replace(/^\.+/, (dots) => '_'.repeat(dots.length));
}

/** The release as the user named it, project and platform filled from --project and --platform. */
function named(q: ReleaseRequest, o: BuildOptions): { project: string; version: string; platform: string | null; text: string } {
  const r = o.selection.releases!;
  const project = q.project ?? r.project;
  if (project === null) throw new InputError(`${q.origin}: --parts names each part by its project: give PROJECT,${q.version} (or --project)`);
  const platform = q.platform ?? r.platform;
  return { project, version: q.version, platform, text: [project, q.version, ...(platform ? [platform] : [])].join(',') };
}

/** What --parts refuses besides what --part does: selections not of a release, and formats merge does not write. */
function checkPartsRules(o: BuildOptions): void {
  checkPartRules(o, '--parts');
  for (const [opt, given] of [['--spec', o.selection.specs.length], ['--trace', o.selection.traces?.files.length ?? 0], ['--include', o.selection.include?.length ?? 0]] as const) {
    if (given > 0) throw new InputError(`${opt} with --parts: a part is one release's selection (put other content in a part of its own: shrinkwrap merge takes any SquashFS part)`);
  }
  if (o.push) throw new InputError('--push with --parts: parts are merged into SquashFS, which is not pushed');
}

/** The whole --parts build: parts decided and written one release at a time, then merged. */
export async function buildFromParts(o: BuildOptions, dir: string, hooks: PartsHooks): Promise<PartsResult> {
  checkPartsRules(o);
  const releases = o.selection.releases!.requests.map((q) => ({ q, ...named(q, o) }));
  const byFile = new Map<string, string>();
  for (const r of releases) {
    const file = partFileName(r.project, r.version, r.platform);
    const other = byFile.get(file);
    if (other !== undefined) throw new InputError(`${r.q.origin}: ${r.text} is the same part as ${other} (${file})`);
    byFile.set(file, r.text);
  }
  checkOutput(o);
  makeDir(dir);
  const outcomes: PartOutcome[] = [];
  for (const r of releases) {
    const file = path.join(dir, partFileName(r.project, r.version, r.platform));
    const one: BuildOptions = {
      ...o,
      output: file,
      format: 'squashfs',
      base: null,
      selection: { ...o.selection, releases: { ...o.selection.releases!, requests: [r.q] } },
      part: true,
      push: null,
      commandLine: [],
    };
    const verdict = await decide(file, one);
    let built: BuildResult | null = null;
    if (verdict.action !== 'reused') built = await build({ ...one, force: verdict.action === 'rebuilt' }, hooks);
    const outcome: PartOutcome = { release: r.text, file, ...verdict, build: built };
    outcomes.push(outcome);
    hooks.onPart?.(`${r.text}: ${outcome.action === 'reused' ? 'part reused' : outcome.action} (${outcome.why})`);
  }
  const merged = await mergeParts(o, outcomes.map((p) => p.file), hooks);
  return { parts: outcomes, merged };
}

/** The output must be writable before any part is built (the same check the merge makes again). */
function checkOutput(o: BuildOptions): void {
  AtomicOutput.prepare(o.output, o.force ?? false, outputKind('squashfs', o.output)).abort();
}

function makeDir(dir: string): void {
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new InputError(`--parts ${dir}: not a directory`);
  if (!st) fs.mkdirSync(dir, { recursive: true });
}

/** Reuse the part in `file`, or build it, and why: its index against this build's options and selection. */
async function decide(file: string, one: BuildOptions): Promise<{ action: PartOutcome['action']; why: string }> {
  if (!fs.existsSync(file)) return { action: 'built', why: 'no part' };
  const read = await readPartIndex(file);
  if ('problem' in read) {
    if (!fs.lstatSync(file).isFile()) throw new InputError(`${file}: not a file; remove it to let --parts write the part there`);
    return { action: 'rebuilt', why: read.problem };
  }
  const was = read.index;
  const now = partMatch(one.selection, imageOptionsOf(one));
  const changed = matchDifferences(was.match, now);
  if (changed.length > 0) return { action: 'rebuilt', why: changed.join('; ') };
  const selected = await selectionNow(one);
  const revisions = revisionChanges(was.source.revisions, selected.revisions);
  if (revisions.length > 0) return { action: 'rebuilt', why: revisions.join('; ') };
  if (selected.stamp !== was.selected.stamp) {
    return { action: 'rebuilt', why: `the selection changed: ${was.selected.entries} → ${selected.entries} entries, stamp ${was.selected.stamp.slice(0, 12)} → ${selected.stamp.slice(0, 12)}` };
  }
  return { action: 'reused', why: reuseReason(was) };
}

function reuseReason(was: PartIndex): string {
  const revs = was.source.revisions;
  const source = revs && revs.length > 0 ? `revision ${revs.map((r) => `${r.fqrn}@${r.revision}`).join(' ')}` : `selection stamp ${was.selected.stamp.slice(0, 12)}`;
  return `same options and recipes, ${source}, ${was.selected.files} files`;
}

/** The build options the index keys on, with build.ts's defaults. */
function imageOptionsOf(o: BuildOptions) {
  return {
    compression: o.compression,
    level: o.level ?? (o.compression === 'none' ? 0 : defaultLevel(o.compression)),
    blockSize: o.blockSize ?? 128 * 1024,
    dedup: o.dedup ?? true,
    exportTable: o.exportTable ?? true,
    mtime: o.mtime ?? 'keep',
    owner: o.owner ?? null,
  };
}

/**
 * The release selected now, as a part build would select it (no base; before --owner and --mtime apply):
 * its stamp, and each repository's revision where the source tells it. This walk is what a reused
 * part costs.
 */
async function selectionNow(one: BuildOptions): Promise<{ stamp: string; entries: number; revisions: Revision[] | null }> {
  const quiet = new Diagnostics(null);
  const source = openSource(one.selection, quiet, { xattrs: true });
  try {
    const payload = await selectPayloadAsync({ ...selectOptions(one.selection, null), source }, quiet);
    const http = source instanceof HttpTree;
    const revisions = revisionsOf({
      cvmfsRoot: sourcePath(one.selection.cvmfsRoot),
      commandLine: [],
      created: 0,
      specs: [],
      traces: [],
      repositories: http ? source.opened() : null,
      mounted: http ? [] : mountedRevisions(one.selection.cvmfsRoot, Object.keys(payload.summary.repositories).sort()),
    }) as Revision[] | null;
    return { stamp: selectionStamp(payload.entries), entries: payload.entries.length, revisions };
  } finally {
    await closeTree(source);
  }
}

/** "source revision atlas.cern.ch 41 → 42" for each repository whose revision moved (known on both sides). */
function revisionChanges(was: Revision[] | null, now: Revision[] | null): string[] {
  if (!was || !now) return was || now ? [`source revisions ${was ? 'recorded' : 'unknown'} in the part, ${now ? 'known' : 'unknown'} now`] : [];
  const out: string[] = [];
  const before = new Map(was.map((r) => [r.fqrn, r]));
  for (const r of now) {
    const b = before.get(r.fqrn);
    if (!b) out.push(`source ${r.fqrn} not in the part`);
    else if (b.revision !== r.revision || b['rootCatalog'] !== r['rootCatalog']) out.push(`source revision ${r.fqrn} ${b.revision} → ${r.revision}`);
  }
  return out;
}

/** The parts merged onto the base into the output, in file-name order (as `DIR/*.part.sqfs` lists them). */
async function mergeParts(o: BuildOptions, files: string[], hooks: BuildHooks): Promise<MergeResult> {
  const sorted = [...files].sort((a, b) => (Buffer.compare(Buffer.from(path.basename(a)), Buffer.from(path.basename(b)))));
  return merge(
    {
      output: o.output,
      force: o.force,
      parts: sorted,
      base: o.base,
      compression: o.compression === 'none' ? undefined : o.compression,
      level: o.level,
      blockSize: o.blockSize,
      threads: o.threads,
      dedup: o.dedup,
      exportTable: o.exportTable,
      checksum: o.checksum,
      mountpoints: o.mountpoints,
      commandLine: o.commandLine,
    },
    hooks,
  );
}

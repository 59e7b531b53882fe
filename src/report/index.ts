// The HTML report of an image (issue 23): from a live plan (`plan --html`), a finished build
// (`build --report`), a plan document or an image (`report IMAGE`), or two of those (`report A B`).
// The page is written under a temporary name beside its target and renamed into place.
import type { BuildResult } from '../compose/build.js';
import { VERSION } from '../compose/provenance.js';
import { display, fromText } from '../model/bytes.js';
import type { Warning as Diagnostic } from '../model/diagnostics.js';
import type { Payload } from '../select/index.js';
import { AtomicOutput, writeNewFile } from '../util/atomic.js';
import { compareReport } from './diff.js';
import { renderHtml } from './html.js';
import { type BuildFacts, type ProvenanceFacts, type ReportModel, planReport } from './model.js';
import { type LoadedPlan, loadPlan } from './read.js';

export { compareReport } from './diff.js';
export { renderHtml } from './html.js';
export { planReport } from './model.js';
export { loadPlan } from './read.js';

/** Reserve the report's path (before a long build, so a bad path fails first); a report replaces an earlier file. */
export function reserveReport(file: string): AtomicOutput {
  // A report is a view of its input, made again at will: like `plan > FILE`, it replaces a file there (never a directory or link).
  return AtomicOutput.prepare(file, true, { type: 'file', what: 'an HTML report' });
}

export function writeReport(out: AtomicOutput, m: ReportModel): void {
  out.begin();
  try {
    writeNewFile(out.tmp, renderHtml(m));
    out.commit();
  } finally {
    out.abort();
  }
}

/** The provenance a live plan or build can state (no clock: the same plan gives the same page). */
function liveProvenance(payload: Payload, extra: Partial<ProvenanceFacts> = {}): ProvenanceFacts {
  return {
    tool: `shrinkwrap ${VERSION}`,
    created: null,
    base: null,
    source: null,
    releases: payload.releases.map((r) => `${r.project} ${r.version} ${r.platform}`),
    revisions: [],
    command: null,
    ...extra,
  };
}

function warningsOf(ws: readonly Diagnostic[]) {
  return ws.map((w) => ({ kind: w.kind, message: w.message }));
}

/** `plan --html`: the selection just made. */
export function payloadReport(payload: Payload, warnings: readonly Diagnostic[], title: string): ReportModel {
  return planReport({
    title,
    entries: payload.entries,
    text: display,
    sorted: true,
    summary: { closure: payload.closure, elf: payload.elf },
    warnings: warningsOf(warnings),
    provenance: liveProvenance(payload),
  });
}

/** What a build wrote, as the report's image section shows it. */
export function buildFacts(r: BuildResult): BuildFacts {
  const img = r.image;
  const content = r.payload.summary.bytes;
  if (img.format === 'squashfs' || img.format === 'sif') {
    const bytes = img.format === 'sif' ? img.sif.bytes : img.bytes;
    return { format: img.format, output: r.output, bytes, compression: img.compression === 'none' ? 'none' : `${img.compression} level ${img.level}`, contentBytes: content, dedupFiles: img.dedupFiles, dedupBytes: img.dedupBytes, layers: [] };
  }
  if (img.format === 'dir') return { format: 'dir', output: r.output, bytes: null, compression: null, contentBytes: content, dedupFiles: 0, dedupBytes: 0, layers: [] };
  // A new layer holds a repository or a release part (--layer-per): its file content is known, so its ratio is.
  const contentOf = (label: string): number | null => {
    const repo = label.startsWith('repository ') ? r.payload.summary.repositories[fromText(label.slice('repository '.length))] : undefined;
    return repo?.bytes ?? r.payload.parts.find((p) => p.label === label)?.bytes ?? null;
  };
  const layers = img.layers.map((l) => ({ label: l.label, size: l.size, kept: l.kept, contentBytes: l.kept ? null : contentOf(l.label) }));
  return { format: img.format, output: r.output, bytes: img.bytes, compression: null, contentBytes: content, dedupFiles: 0, dedupBytes: 0, layers };
}

/** `build --report`: the selection and what was written from it. */
export function buildReport(r: BuildResult, title: string): ReportModel {
  const m = payloadReport(r.payload, r.warnings, title);
  m.build = buildFacts(r);
  m.provenance = liveProvenance(r.payload, { base: r.base ? `${r.base.name}${r.base.digest ? ` (${r.base.digest})` : ''}` : null, created: process.env['SOURCE_DATE_EPOCH'] ? new Date(Number(process.env['SOURCE_DATE_EPOCH']) * 1000).toISOString() : null });
  return m;
}

function loadedReport(p: LoadedPlan): ReportModel {
  return planReport({ title: p.name, entries: p.entries, summary: p.summary, warnings: p.warnings, provenance: p.provenance });
}

/** `report A [B]`: one plan or image, or what changed from A to B. */
export async function reportOfFiles(files: readonly string[]): Promise<ReportModel> {
  const plans: LoadedPlan[] = [];
  for (const f of files) plans.push(await loadPlan(f));
  if (plans.length === 1) return loadedReport(plans[0]!);
  return compareReport(plans[0]!, plans[1]!);
}

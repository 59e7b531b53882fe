// `shrinkwrap plan`: the selection as text for people (the JSON document for programs is
// compose/plan-json.ts: the image carries it too).
import { display, displayLine } from '../model/bytes.js';
import type { Warning } from '../model/diagnostics.js';
import { type Entry, type EntryType, modeString } from '../model/entry.js';
import type { PlanSummary } from '../model/plan.js';
import type { PartSummary } from '../select/index.js';
import type { ResolvedRelease } from '../select/release/index.js';
import { xattrReports } from '../sources/xattrs.js';
import type { Out } from '../util/out.js';
import { humanBytes } from '../util/size.js';

// Trees share few distinct mtimes (releases are installed in one go): format each once.
let lastSeconds = NaN;
let lastText = '';
function isoMinute(seconds: number): string {
  if (seconds !== lastSeconds) {
    lastSeconds = seconds;
    lastText = new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' ');
  }
  return lastText;
}

export async function renderPlanText(entries: readonly Entry[], summary: PlanSummary, warnings: readonly Warning[], out: Out, release: ReleaseReport | null = null): Promise<void> {
  for (const e of entries) {
    // One entry, one line: a name may hold a newline or an escape sequence (displayLine; JSON
    // escapes them itself).
    const link = e.type === 'symlink' ? ` -> ${displayLine(e.target!)}` : e.type === 'hardlink' ? ` => ${displayLine(e.target!)}` : '';
    await out.write(`${modeString(e.type, e.mode)} ${`${e.uid}/${e.gid}`.padEnd(11)} ${String(e.size).padStart(12)} ${isoMinute(e.mtime)} ${displayLine(e.path)}${link}  [${displayLine(e.reason)}]\n`);
  }
  for (const line of summaryLines(summary, warnings.length)) await out.write(line + '\n');
  for (const line of xattrLines()) await out.write(line + '\n');
  if (release) for (const line of releaseLines(release)) await out.write(line + '\n');
  await out.flush();
}

const typeOrder: EntryType[] = ['dir', 'file', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'socket'];

/** What `--release` brought, and how much each part of it weighs. */
export interface ReleaseReport {
  releases: ResolvedRelease[];
  parts: PartSummary[];
}

export function releaseLines(r: ReleaseReport): string[] {
  const lines: string[] = [];
  for (const rel of r.releases) {
    const extra = [
      rel.bases.length > 0 ? `base projects ${rel.bases.map((b) => b.label).join(', ')}` : '',
      rel.compilers.length > 0 ? `compiler ${rel.compilers.map((c) => display(c)).join(', ')}` : '',
      rel.dbrelease ? `DBRelease ${display(rel.dbrelease.version)}${rel.dbrelease.via === 'current' ? ' (current)' : ''}` : '',
    ].filter((x) => x !== '');
    lines.push(`release: ${rel.project} ${rel.version} ${rel.platform} at ${display(rel.path)}${extra.length > 0 ? `; ${extra.join('; ')}` : ''}`);
  }
  if (r.parts.length > 0) {
    const width = Math.max(...r.parts.map((p) => p.label.length));
    lines.push('parts:');
    for (const p of r.parts) lines.push(`  ${p.label.padEnd(width)}  ${String(p.entries).padStart(9)} entries  ${humanBytes(p.bytes).padStart(10)}`);
  }
  return lines;
}

export function summaryLines(summary: PlanSummary, warnings: number): string[] {
  const counts = typeOrder.filter((t) => summary.types[t] > 0).map((t) => `${summary.types[t]} ${t}`);
  const lines = [`summary: ${summary.entries} entries (${counts.join(', ') || 'none'}), ${humanBytes(summary.bytes)} of file content`];
  const repos = Object.keys(summary.repositories).sort();
  const width = Math.max(0, ...repos.map((r) => display(r).length));
  for (const r of repos) {
    const s = summary.repositories[r]!;
    lines.push(`  ${display(r).padEnd(width)}  ${String(s.entries).padStart(9)} entries  ${humanBytes(s.bytes).padStart(10)}`);
  }
  if (warnings > 0) lines.push(`  ${warnings} warning${warnings === 1 ? '' : 's'} (on stderr)`);
  return lines;
}

/**
 * What each directory source did with extended attributes (tar and OCI bases keep theirs as
 * stored). Text plan only: the JSON plan is also the image's /.shrinkwrap/plan.json, whose bytes
 * must not depend on which reader this machine has.
 */
export function xattrLines(notableOnly = false): string[] {
  // A build's summary names only the sources where attributes were kept or left out.
  const reports = notableOnly ? xattrReports().filter((r) => r.entries > 0 || Object.keys(r.dropped).length > 0) : xattrReports();
  return reports.map((r) => {
    const dropped = Object.entries(r.dropped)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([name, n]) => `${display(name)} (${n})`);
    if (r.how.startsWith('not read')) return `xattrs: ${display(r.source)}: ${r.how}`;
    const kept = `${r.entries} entr${r.entries === 1 ? 'y keeps' : 'ies keep'} attributes`;
    return `xattrs: ${display(r.source)}: ${r.how}; ${kept}${dropped.length > 0 ? `; left out: ${dropped.join(', ')}` : ''}`;
  });
}

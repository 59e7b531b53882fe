// The plan as one JSON document: what `shrinkwrap plan --json` prints, and what the image carries
// as /.shrinkwrap/plan.json (its bytes must not depend on the machine: see cli/render-plan.ts xattrLines).
import { display, fsPath, isValidUtf8 } from '../model/bytes.js';
import type { Warning } from '../model/diagnostics.js';
import type { Entry } from '../model/entry.js';
import type { PlanSummary } from '../model/plan.js';
import type { Out } from '../util/out.js';

/** Text of a byte string for JSON, plus its exact bytes in base64 when it is not valid UTF-8. */
function jsonPathFields(key: string, bytes: string): string {
  let s = `${JSON.stringify(key)}:${JSON.stringify(display(bytes))}`;
  if (!isValidUtf8(bytes)) s += `,${JSON.stringify(key + 'Base64')}:${JSON.stringify(fsPath(bytes).toString('base64'))}`;
  return s;
}

export function entryJson(e: Entry): string {
  let s = `{${jsonPathFields('path', e.path)},"type":"${e.type}","size":${e.size},"mode":${e.mode},"uid":${e.uid},"gid":${e.gid},"mtime":${e.mtime}`;
  if (e.target !== undefined) s += ',' + jsonPathFields('target', e.target);
  if (e.rdev !== undefined) s += `,"rdev":${e.rdev}`;
  return s + `,"reason":${JSON.stringify(display(e.reason))}}`;
}

export async function renderPlanJson(
  entries: readonly Entry[],
  summary: PlanSummary & Record<string, unknown>,
  warnings: readonly Warning[],
  out: Out,
): Promise<void> {
  await out.write('{"entries":[');
  let first = true;
  for (const e of entries) {
    await out.write((first ? '\n' : ',\n') + entryJson(e));
    first = false;
  }
  const repositories: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(summary.repositories)) repositories[display(k)] = v;
  const doc = { ...summary, repositories, warnings: warnings.map((w) => ({ kind: w.kind, message: w.message })) };
  await out.write(`\n],\n"summary":${JSON.stringify(doc)}}\n`);
  await out.flush();
}

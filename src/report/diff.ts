// `shrinkwrap report A B`: what changed between two plans, as the same tree coloured by change.
// Each path counts once; its area is the larger of its two sizes, so what left still shows.
import { CHANGE, CHANGE_CATEGORIES } from './categories.js';
import { DEFAULT_MAX_NODES, type PlanEntryLike, type ReportModel, comparePathText, repositoriesOf, repositoryOf } from './model.js';
import { TreeBuilder } from './tree.js';

export interface ComparedPlan {
  name: string;
  entries: readonly PlanEntryLike[];
}

const TABLE_ROWS = 100;

function sortedByPath(entries: readonly PlanEntryLike[]): readonly PlanEntryLike[] {
  for (let i = 1; i < entries.length; i++) {
    if (comparePathText(entries[i - 1]!.path, entries[i]!.path) > 0) return [...entries].sort((x, y) => comparePathText(x.path, y.path));
  }
  return entries;
}

const fileBytes = (e: PlanEntryLike | undefined): number => (e !== undefined && e.type === 'file' ? e.size : 0);

function changeOf(a: PlanEntryLike | undefined, b: PlanEntryLike | undefined): number {
  if (a === undefined) return CHANGE.added;
  if (b === undefined) return CHANGE.removed;
  const x = fileBytes(a);
  const y = fileBytes(b);
  return y > x ? CHANGE.grown : y < x ? CHANGE.shrunk : CHANGE.same;
}

export function compareReport(first: ComparedPlan, second: ComparedPlan, maxNodes = DEFAULT_MAX_NODES): ReportModel {
  const as = sortedByPath(first.entries);
  const bs = sortedByPath(second.entries);
  const tree = new TreeBuilder({ categories: CHANGE_CATEGORIES.length, maxNodes, compare: true });
  let i = 0;
  let j = 0;
  let aBytes = 0;
  let bBytes = 0;
  // Per change: entries, and the bytes of the side that has them (the second's, the first's for removals).
  const changes = CHANGE_CATEGORIES.map((c, k) => ({ label: c.label, cat: k, entries: 0, bytes: 0 }));
  // A merge of two path-ordered lists.
  while (i < as.length || j < bs.length) {
    const c = i >= as.length ? 1 : j >= bs.length ? -1 : comparePathText(as[i]!.path, bs[j]!.path);
    const a = c <= 0 ? as[i++] : undefined;
    const b = c >= 0 ? bs[j++] : undefined;
    const e = (b ?? a)!;
    const where = repositoryOf(e.path);
    if (where === null) continue;
    const x = fileBytes(a);
    const y = fileBytes(b);
    aBytes += x;
    bBytes += y;
    const change = changeOf(a, b);
    tree.add(where.repo, null, e.path, where.relStart, e.type === 'dir', Math.max(x, y), change, x, y);
    changes[change]!.entries++;
    changes[change]!.bytes += change === CHANGE.removed ? x : y;
  }
  const finished = tree.finish();
  const data = finished.data();
  return {
    kind: 'compare',
    title: `${first.name} → ${second.name}`,
    categories: CHANGE_CATEGORIES,
    tree: data,
    threshold: finished.threshold,
    totals: { entries: data.entries[0]!, bytes: data.bytes[0]!, files: 0 },
    repositories: repositoriesOf(data),
    largestFiles: finished.largestFiles(TABLE_ROWS),
    largestDirs: finished.largestDirs(TABLE_ROWS),
    byCategory: changes.filter((c) => c.entries > 0),
    byPart: [],
    closure: null,
    elf: null,
    duplicates: null,
    warnings: [],
    build: null,
    provenance: null,
    compare: {
      a: first.name,
      b: second.name,
      aBytes,
      bBytes,
      aEntries: as.length,
      bEntries: bs.length,
      added: finished.largestFiles(TABLE_ROWS, (_bytes, _a, b, cat) => (cat === CHANGE.added ? b : 0)),
      removed: finished.largestFiles(TABLE_ROWS, (_bytes, a, _b, cat) => (cat === CHANGE.removed ? a : 0)),
      grown: finished.largestFiles(TABLE_ROWS, (_bytes, a, b, cat) => (cat === CHANGE.grown ? b - a : 0)),
    },
  };
}

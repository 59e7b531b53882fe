// What a report shows, computed once from a plan's entries: the tree, the largest files and
// directories, what each kind of reason and each part added, duplicates, warnings, and what the
// build and the provenance say. Everything here is plain data; html.ts draws it.
import { type Category, OTHER_PART, REASON_CATEGORIES, reasonCategory, reasonPart } from './categories.js';
import { type SizedPath, type TreeData, TreeBuilder } from './tree.js';

/** An entry as a plan has it (an Entry of a live plan, or an object of a plan.json). */
export interface PlanEntryLike {
  path: string;
  type: string;
  size: number;
  reason: string;
  target?: string;
}

/** What a build wrote, for the report's "image" section. */
export interface BuildFacts {
  format: string;
  output: string;
  /** The image's bytes (null for a directory image). */
  bytes: number | null;
  compression: string | null;
  contentBytes: number;
  dedupFiles: number;
  dedupBytes: number;
  /** OCI: the layers, each with its label (repository or part) and compressed size. */
  layers: { label: string; size: number; kept: boolean; contentBytes: number | null }[];
}

export interface ProvenanceFacts {
  tool: string;
  created: string | null;
  base: string | null;
  source: string | null;
  releases: string[];
  revisions: string[];
  command: string | null;
}

export interface Warning {
  kind: string;
  message: string;
}

export interface PlanInput {
  title: string;
  entries: readonly PlanEntryLike[];
  /** A path or reason as text (a live plan's are byte strings). */
  text?: (s: string) => string;
  /** The entries are in path order already (a live plan's); else they are checked, and sorted if not. */
  sorted?: boolean;
  /** The plan's own summary fields (closure and ELF statistics, per repository) where known. */
  summary: Record<string, unknown>;
  warnings: readonly Warning[];
  build?: BuildFacts | null;
  provenance?: ProvenanceFacts | null;
}

export interface Contribution {
  label: string;
  cat: number;
  entries: number;
  bytes: number;
}

export interface Duplicates {
  hardlinks: number;
  hardlinkRows: { path: string; target: string }[];
  /** Files of the same name and size (at least SAME_MIN bytes): likely copies, not compared byte for byte. */
  sameNameSize: { name: string; size: number; count: number; paths: string[] }[];
}

export interface ReportModel {
  kind: 'plan' | 'compare';
  title: string;
  categories: readonly Category[];
  tree: TreeData;
  /** Nodes of this many bytes or fewer are summed up as "smaller entries" (-1: none). */
  threshold: number;
  totals: { entries: number; bytes: number; files: number };
  repositories: { name: string; entries: number; bytes: number }[];
  largestFiles: SizedPath[];
  largestDirs: SizedPath[];
  byCategory: Contribution[];
  byPart: Contribution[];
  closure: Record<string, unknown> | null;
  elf: Record<string, unknown> | null;
  duplicates: Duplicates | null;
  warnings: readonly Warning[];
  build: BuildFacts | null;
  provenance: ProvenanceFacts | null;
  /** Comparisons: the two inputs' names and totals. */
  compare?: { a: string; b: string; aBytes: number; bBytes: number; aEntries: number; bEntries: number; added: SizedPath[]; removed: SizedPath[]; grown: SizedPath[] };
}

export const DEFAULT_MAX_NODES = 40_000;
const TABLE_ROWS = 100;
const SAME_MIN = 4096;
const MOUNT_PREFIX = '/cvmfs/';

let lastRepo = '';

/**
 * The repository of a path (its first component below /cvmfs; elsewhere, its first component) and
 * where the components below it start; null for /cvmfs itself. The last name found is reused: it
 * is a new string per entry otherwise.
 */
export function repositoryOf(path: string): { repo: string; relStart: number } | null {
  const relStart = repositoryEnd(path);
  return relStart < 0 ? null : { repo: lastRepo, relStart };
}

/** repositoryOf without an object per call: where the components below it start (-1: none), the name in `lastRepo`. */
function repositoryEnd(path: string): number {
  const from = path.startsWith(MOUNT_PREFIX) ? MOUNT_PREFIX.length : 1;
  if (from >= path.length) return -1;
  let end = path.indexOf('/', from);
  if (end < 0) end = path.length;
  if (end - from !== lastRepo.length || !path.startsWith(lastRepo, from)) lastRepo = path.slice(from, end);
  return end + 1;
}

/** Is this list in the order a tree walk gives (each directory followed by its subtree)? */
function inWalkOrder(paths: readonly string[]): boolean {
  for (let i = 1; i < paths.length; i++) if (comparePathText(paths[i - 1]!, paths[i]!) > 0) return false;
  return true;
}

/** Path order: component by component ('/' below every other character). */
export function comparePathText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return (x === 47 ? -1 : x) - (y === 47 ? -1 : y);
  }
  return a.length - b.length;
}

/** The report of one plan. */
export function planReport(input: PlanInput, maxNodes = DEFAULT_MAX_NODES): ReportModel {
  const text = input.text ?? ((s: string) => s);
  const n = input.entries.length;
  // Reasons repeat (one per rule, mostly): classify each text once.
  const byReason = new Map<string, { cat: number; part: string }>();
  let lastReason: string | null = null;
  let lastClass = { cat: 0, part: OTHER_PART };
  const reasonOf = (r: string) => {
    // Neighbours mostly share a reason (one rule selects a subtree).
    if (r === lastReason) return lastClass;
    let c = byReason.get(r);
    if (!c) byReason.set(r, (c = { cat: reasonCategory(text(r)), part: reasonPart(text(r)) }));
    lastReason = r;
    lastClass = c;
    return c;
  };
  let hasParts = false;
  for (let i = 0; i < n; i++) if (reasonOf(input.entries[i]!.reason).part !== OTHER_PART) hasParts = true;
  // Path order is checked (and made) only where the entries may not be in it: a document from elsewhere.
  let paths: string[] | null = null;
  let order: number[] | null = null;
  if (!input.sorted) {
    const all: string[] = new Array(n);
    for (let i = 0; i < n; i++) all[i] = text(input.entries[i]!.path);
    if (!inWalkOrder(all)) order = Array.from(all.keys()).sort((x, y) => comparePathText(all[x]!, all[y]!));
    paths = all;
  }
  const tree = new TreeBuilder({ categories: REASON_CATEGORIES.length, maxNodes });
  const cats = REASON_CATEGORIES.map((c, i) => ({ label: c.label, cat: i, entries: 0, bytes: 0 }));
  const parts = new Map<string, Contribution>();
  const dup = duplicateFinder();
  let bytes = 0;
  let files = 0;
  for (let k = 0; k < n; k++) {
    const i = order ? order[k]! : k;
    const e = input.entries[i]!;
    const path = paths ? paths[i]! : text(e.path);
    const { cat, part } = reasonOf(e.reason);
    const size = e.type === 'file' ? e.size : 0;
    const relStart = repositoryEnd(path);
    if (relStart < 0) continue; // /cvmfs itself: no repository to draw it under
    tree.add(lastRepo, hasParts ? part : null, path, relStart, e.type === 'dir', size, cat);
    bytes += size;
    if (e.type === 'file') files++;
    cats[cat]!.entries++;
    cats[cat]!.bytes += size;
    let p = parts.get(part);
    if (!p) parts.set(part, (p = { label: part, cat, entries: 0, bytes: 0 }));
    p.entries++;
    p.bytes += size;
    dup.add(e, path, text);
  }
  paths = null;
  const finished = tree.finish();
  const data = finished.data();
  return {
    kind: 'plan',
    title: input.title,
    categories: REASON_CATEGORIES,
    tree: data,
    threshold: finished.threshold,
    totals: { entries: data.entries[0]!, bytes, files },
    repositories: repositoriesOf(data),
    largestFiles: finished.largestFiles(TABLE_ROWS),
    largestDirs: finished.largestDirs(TABLE_ROWS),
    byCategory: cats.filter((c) => c.entries > 0),
    byPart: [...parts.values()].sort((x, y) => y.bytes - x.bytes || y.entries - x.entries || (x.label < y.label ? -1 : 1)),
    closure: objectOrNull(input.summary['closure']),
    elf: objectOrNull(input.summary['elf']),
    duplicates: dup.result(),
    warnings: input.warnings,
    build: input.build ?? null,
    provenance: input.provenance ?? null,
  };
}

function objectOrNull(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** The repositories (the root's children), as the tree counts them. */
export function repositoriesOf(t: TreeData): { name: string; entries: number; bytes: number }[] {
  const out: { name: string; entries: number; bytes: number }[] = [];
  for (let i = 1; i < t.name.length; i++) if (t.parent[i] === 0) out.push({ name: t.name[i]!, entries: t.entries[i]!, bytes: t.bytes[i]! });
  return out;
}

/** Hard links (exact: the plan says so) and files sharing a name and size (candidates only). */
function duplicateFinder() {
  let hardlinks = 0;
  const hardlinkRows: { path: string; target: string }[] = [];
  // By size first (a number key is cheap); the few sizes that repeat then compare names.
  const bySize = new Map<number, Array<{ name: string; count: number; paths: string[] }>>();
  return {
    add(e: PlanEntryLike, path: string, text: (s: string) => string): void {
      if (e.type === 'hardlink') {
        hardlinks++;
        if (hardlinkRows.length < TABLE_ROWS) hardlinkRows.push({ path, target: text(e.target ?? '') });
      } else if (e.type === 'file' && e.size >= SAME_MIN) {
        const name = path.slice(path.lastIndexOf('/') + 1);
        let group = bySize.get(e.size);
        if (!group) bySize.set(e.size, (group = []));
        const same = group.find((g) => g.name === name);
        if (!same) group.push({ name, count: 1, paths: [path] });
        else {
          same.count++;
          if (same.paths.length < 5) same.paths.push(path);
        }
      }
    },
    result(): Duplicates {
      const sameNameSize: Duplicates['sameNameSize'] = [];
      for (const [size, group] of bySize) for (const g of group) if (g.count > 1) sameNameSize.push({ name: g.name, size, count: g.count, paths: g.paths });
      sameNameSize.sort((x, y) => y.size * (y.count - 1) - x.size * (x.count - 1) || (x.name < y.name ? -1 : x.name > y.name ? 1 : x.size - y.size));
      return { hardlinks, hardlinkRows, sameNameSize: sameNameSize.slice(0, TABLE_ROWS) };
    },
  };
}

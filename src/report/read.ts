// A plan to report on: a plan document (`plan --json`'s output), or an image shrinkwrap wrote, of
// any format, through the /.shrinkwrap/plan.json and provenance.json it carries. The document is
// read a line at a time (plan-json.ts writes one entry a line): a 2,000,000-entry plan is larger
// than the longest string V8 makes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Diagnostics } from '../model/diagnostics.js';
import { type Entry } from '../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../model/errors.js';
import { openBase } from '../sources/base/index.js';
import { openSquashfs } from '../sources/squashfs/reader.js';
import { primaryPartition, readSif } from '../sources/sif/index.js';
import { imageFileKind } from '../sources/image-file.js';
import type { PlanEntryLike, ProvenanceFacts, Warning } from './model.js';

export interface LoadedPlan {
  /** For titles: the file's name. */
  name: string;
  entries: PlanEntryLike[];
  summary: Record<string, unknown>;
  warnings: Warning[];
  provenance: ProvenanceFacts | null;
}

const PLAN_IN_IMAGE = '/.shrinkwrap/plan.json';
const PROVENANCE_IN_IMAGE = '/.shrinkwrap/provenance.json';
const NOT_A_PLAN = 'expected a plan (shrinkwrap plan --json), or an image shrinkwrap wrote: SquashFS, an OCI layout, a docker-archive or an image directory';

/** Lines of a buffer or of a file, without holding it as one string. */
function* lines(chunks: Iterable<Buffer>): Generator<string> {
  let carry: Buffer = Buffer.alloc(0);
  for (const chunk of chunks) {
    let buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
      yield buf.toString('utf8', start, nl);
      start = nl + 1;
    }
    carry = Buffer.from(buf.subarray(start));
    buf = carry;
  }
  if (carry.length > 0) yield carry.toString('utf8');
}

function* fileChunks(file: string): Generator<Buffer> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n = fs.readSync(fd, buf); n > 0; n = fs.readSync(fd, buf)) yield Buffer.from(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
}

function checkedEntry(v: unknown, where: string): PlanEntryLike {
  const e = v as Record<string, unknown>;
  if (e === null || typeof e !== 'object' || typeof e['path'] !== 'string' || typeof e['type'] !== 'string' || typeof e['size'] !== 'number' || typeof e['reason'] !== 'string') {
    throw new InputError(`${where}: not a plan entry (path, type, size and reason expected)`);
  }
  return { path: e['path'], type: e['type'], size: e['size'], reason: e['reason'], ...(typeof e['target'] === 'string' ? { target: e['target'] } : {}) };
}

/** The plan document `plan --json` writes: `{"entries":[` line, an entry a line, `],` and the summary. */
export function parsePlanDocument(chunks: Iterable<Buffer>, name: string): Omit<LoadedPlan, 'provenance'> {
  const it = lines(chunks);
  const first = it.next();
  if (first.done || first.value.trim() !== '{"entries":[') return parseWhole(name, first.done ? '' : first.value, it);
  const entries: PlanEntryLike[] = [];
  let lineNo = 1;
  for (const line of it) {
    lineNo++;
    if (line === ']' || line === '],') continue;
    if (line.startsWith('"summary":')) {
      const doc = parseJson(line.slice('"summary":'.length).replace(/}\s*$/, ''), `${name}:${lineNo}`) as Record<string, unknown>;
      return { name: path.basename(name), entries, summary: doc, warnings: warningsOf(doc) };
    }
    entries.push(checkedEntry(parseJson(line.endsWith(',') ? line.slice(0, -1) : line, `${name}:${lineNo}`), `${name}:${lineNo}`));
  }
  throw new InputError(`${name}: the plan ends before its summary (cut short?)`);
}

/** A plan in another layout (pretty-printed, say): parsed whole. */
function parseWhole(name: string, firstLine: string, rest: Iterator<string>): Omit<LoadedPlan, 'provenance'> {
  const parts = [firstLine];
  for (let r = rest.next(); !r.done; r = rest.next()) parts.push(r.value);
  const doc = parseJson(parts.join('\n'), name) as Record<string, unknown>;
  if (doc === null || typeof doc !== 'object' || !Array.isArray(doc['entries'])) throw new InputError(`${name}: ${NOT_A_PLAN}`);
  const summary = (doc['summary'] ?? {}) as Record<string, unknown>;
  return { name: path.basename(name), entries: (doc['entries'] as unknown[]).map((e, i) => checkedEntry(e, `${name}: entries[${i}]`)), summary, warnings: warningsOf(summary) };
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${where}: not JSON (${(err as Error).message})`);
  }
}

function warningsOf(summary: Record<string, unknown>): Warning[] {
  const w = summary['warnings'];
  return Array.isArray(w) ? w.filter((x) => x && typeof x.kind === 'string' && typeof x.message === 'string').map((x) => ({ kind: x.kind, message: x.message })) : [];
}

/** provenance.json as the report shows it. */
export function provenanceFacts(text: string | null, name: string): ProvenanceFacts | null {
  if (text === null) return null;
  const p = parseJson(text, `${name}${PROVENANCE_IN_IMAGE}`) as Record<string, any>;
  if (p === null || typeof p !== 'object') return null;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const repos = Array.isArray(p['source']?.['repositories']) ? p['source']['repositories'] : [];
  return {
    tool: `${str(p['tool']?.['name']) ?? 'shrinkwrap'} ${str(p['tool']?.['version']) ?? '?'}`,
    created: str(p['created']),
    base: p['base'] ? `${str(p['base']['name']) ?? '?'}${p['base']['digest'] ? ` (${p['base']['digest']})` : ''}` : null,
    source: str(p['source']?.['cvmfsRoot']),
    releases: Array.isArray(p['releases']) ? p['releases'].map((r: any) => `${r.project} ${r.version} ${r.platform}`) : [],
    revisions: repos.map((r: any) => `${r.fqrn}@${r.revision}`),
    command: Array.isArray(p['command']) ? p['command'].join(' ') : null,
  };
}

/** The bytes of a file of a stored image's flattened tree. */
function readStored(e: Entry | undefined): Buffer | null {
  if (!e || e.type !== 'file') return null;
  const buf = Buffer.alloc(e.size);
  const fd = fs.openSync(e.source!, 'r');
  try {
    let done = 0;
    while (done < e.size) {
      const n = fs.readSync(fd, buf, done, e.size - done, (e.offset ?? 0) + done);
      if (n === 0) throw new BuildError(`${e.source}: ends before ${e.path}'s content`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Plan and provenance bytes of an image, by its format. */
async function imageDocuments(file: string, st: fs.Stats): Promise<{ plan: Buffer | null; provenance: Buffer | null; what: string }> {
  if (st.isDirectory()) {
    if (fs.existsSync(path.join(file, 'oci-layout')) || fs.existsSync(path.join(file, 'index.json'))) return stored(`oci:${file}`, 'an OCI layout');
    const read = (p: string) => (fs.statSync(path.join(file, p), { throwIfNoEntry: false })?.isFile() ? fs.readFileSync(path.join(file, p)) : null);
    return { plan: read(PLAN_IN_IMAGE), provenance: read(PROVENANCE_IN_IMAGE), what: 'an image directory' };
  }
  const kind = imageFileKind(file);
  if (kind === 'tar') return stored(`docker-archive:${file}`, 'a docker-archive');
  const sif = kind === 'sif';
  if (kind === 'squashfs' || sif) {
    // A SIF's image is its primary partition.
    const part = sif ? primaryPartition(readSif(file)) : null;
    if (sif && !part) throw new InputError(`${file}: a SIF without a primary partition; ${NOT_A_PLAN}`);
    const img = await openSquashfs(file, part ? { region: { offset: part.descriptor.offset, size: part.descriptor.size } } : {});
    try {
      const get = (p: string) => {
        const e = img.lookup(p);
        return e && e.type === 'file' ? img.readFile(e) : null;
      };
      return { plan: get(PLAN_IN_IMAGE), provenance: get(PROVENANCE_IN_IMAGE), what: sif ? 'a SIF image' : 'a SquashFS image' };
    } finally {
      img.close();
    }
  }
  throw new InputError(`${file}: ${NOT_A_PLAN}`);
}

async function stored(text: string, what: string): Promise<{ plan: Buffer | null; provenance: Buffer | null; what: string }> {
  const base = await openBase(text, { platform: null, epoch: 0 }, new Diagnostics(null));
  const find = (p: string) => base.entries.find((e) => e.path === p);
  return { plan: readStored(find(PLAN_IN_IMAGE)), provenance: readStored(find(PROVENANCE_IN_IMAGE)), what };
}

/** A plan document or an image's plan, with the image's provenance. */
export async function loadPlan(file: string): Promise<LoadedPlan> {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new InputError(`${file}: ${describeSystemError(err)}`);
  }
  if (!st.isFile() && !st.isDirectory()) throw new InputError(`${file}: not a regular file or directory; ${NOT_A_PLAN}`);
  if (st.isFile() && firstByte(file) === '{') return { ...parsePlanDocument(fileChunks(file), file), provenance: null };
  const docs = await imageDocuments(file, st);
  if (docs.plan === null) throw new InputError(`${file}: ${docs.what} without ${PLAN_IN_IMAGE} (shrinkwrap writes one into images with a root filesystem; a /cvmfs-only image has none)`);
  const plan = parsePlanDocument([docs.plan], `${file}:${PLAN_IN_IMAGE}`);
  return { ...plan, name: path.basename(file.replace(/\/+$/, '')), provenance: provenanceFacts(docs.provenance?.toString('utf8') ?? null, file) };
}

function firstByte(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(64);
    const n = fs.readSync(fd, b, 0, 64, 0);
    return b.toString('utf8', 0, n).trimStart().charAt(0);
  } finally {
    fs.closeSync(fd);
  }
}

// A part's index: `/.shrinkwrap/part.json` at the root of a part (`build --release X --part`), so
// that a part is one file. Where: `/.shrinkwrap/` is where every shrinkwrap image keeps what it says
// about itself (plan, provenance); a repository name always holds a dot and never starts with one,
// so no repository can be called `.shrinkwrap`; and `merge` leaves a part's `/.shrinkwrap/` out of
// the merged tree (it writes its own). What it holds:
//  - `match`: everything a part's bytes depend on besides the source's content: tool version,
//    the release asked for, the selection's options and the digests of the files they read (specs,
//    traces, recipes and rule packs), the source's root, and the image options (compressor, level,
//    block size, dedup, export table, mtime and owner policies). `build --parts` reuses a part only
//    when this is equal, key for key.
//  - `source`: each repository's revision where the source tells it (HTTP, or a mounted client).
//  - `selected`: the selection's size and `stamp`, a sha256 of every selected entry's metadata
//    (path, type, mode, owner, size, time, link target, device, attributes): what a directory
//    source without revisions is compared by.
//  - `releases`: what each release resolved to (platform, install area, setup script, compilers).
//  - `files`: [path in the part, size, sha256 of the content] of each regular file, in path order.
// Paths are as plan.json writes them (model/bytes.ts `display`: UTF-8 text, other bytes \xNN).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { display, fromText } from '../../model/bytes.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import type { Payload } from '../../select/index.js';
import { bundledSpecsDir } from '../../select/release/recipe.js';
import { MOUNT } from '../../select/spec/parse.js';
import { openSquashfs } from '../../sources/squashfs/reader.js';
import type { SelectionRequest } from '../inputs.js';
import type { MtimePolicy } from '../image.js';
import { type Sources, VERSION, revisionsOf, sourcePath } from '../provenance.js';
import { type HashJob, hashContents } from './hash.js';

/** Where a part keeps its index. */
export const PART_INDEX = '/.shrinkwrap/part.json';
export const PART_FORMAT = 'shrinkwrap-part';
export const PART_VERSION = 1;

/** The build options a part's bytes depend on. */
export interface PartImageOptions {
  compression: string;
  level: number;
  blockSize: number;
  dedup: boolean;
  exportTable: boolean;
  mtime: MtimePolicy;
  owner: [number, number] | null;
}

/** A repository's revision as provenance records it. */
export type Revision = Record<string, unknown> & { fqrn: string; revision: number };

export interface PartIndex {
  format: typeof PART_FORMAT;
  version: number;
  match: Record<string, unknown>;
  source: { cvmfsRoot: string; revisions: Revision[] | null };
  selected: { entries: number; files: number; bytes: number; stamp: string };
  releases: Array<{ project: string; version: string; platform: string; path: string; setupScript: string; compilers: string[] }>;
  files: Array<[string, number, string]>;
}

/** sha256 (hex) of a file's bytes; one line naming the option when it cannot be read. */
function fileDigest(file: string, what: string): string {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch (err) {
    throw new InputError(`${what} ${file}: ${describeSystemError(err)}`);
  }
}

/** The bundled recipes and rule packs (specs/recipes, specs/packs): name → sha256. Any of them may shape a release's selection. */
function bundledRuleDigests(): Record<string, string> {
  const out: Record<string, string> = {};
  const root = bundledSpecsDir();
  for (const sub of ['recipes', 'packs']) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(root, sub)).filter((n) => n.endsWith('.recipe') || n.endsWith('.pack')).sort();
    } catch {
      continue;
    }
    for (const n of names) out[`specs/${sub}/${n}`] = fileDigest(path.join(root, sub, n), 'bundled');
  }
  return out;
}

/**
 * What a part's bytes depend on besides the source's content, as plain JSON (compared key by key).
 * Digests of files stand for the files; paths that only say where something was are left out.
 */
export function partMatch(selection: SelectionRequest, image: PartImageOptions): Record<string, unknown> {
  const r = selection.releases;
  const userPacks = (r?.packs ?? []).filter((p) => p.includes('/') || p.endsWith('.pack'));
  const http = selection.http;
  return {
    tool: VERSION,
    releases: (r?.requests ?? []).map((q) => [q.project ?? r?.project ?? null, q.version, q.platform ?? r?.platform ?? null]),
    source: sourcePath(selection.cvmfsRoot),
    http: http ? { revision: http.revision, tag: http.tag, allowExpired: http.allowExpired, variants: [...http.variants].sort() } : null,
    selection: {
      closure: selection.closure ?? true,
      elf: selection.elf === undefined ? 'default' : selection.elf === null ? 'off' : selection.elf.ldLibraryPath,
      packs: r?.packs.map((p) => (userPacks.includes(p) ? path.basename(p) : p)) ?? [],
      dropPacks: r?.dropPacks ?? [],
      dbrelease: r?.dbrelease ?? null,
      include: selection.include ?? [],
      exclude: selection.exclude ?? [],
      repo: selection.repo ?? null,
      skipUnreadable: selection.skipUnreadable ?? false,
      traceOptions: selection.traces ? { format: selection.traces.format ?? null, policy: selection.traces.policy, filters: selection.traces.filters } : null,
    },
    files: {
      ...bundledRuleDigests(),
      ...Object.fromEntries((r?.recipes ?? []).filter((x) => !x.file.startsWith('specs/recipes/')).map((x) => [`recipe ${path.basename(x.file)}`, fileDigest(x.file, '--recipe')])),
      ...Object.fromEntries(userPacks.map((p) => [`pack ${path.basename(p)}`, fileDigest(p, '--pack')])),
      ...Object.fromEntries(selection.specs.map((f) => [`spec ${path.basename(f)}`, fileDigest(f, '--spec')])),
      ...Object.fromEntries((selection.traces?.files ?? []).map((f) => [`trace ${path.basename(f)}`, fileDigest(f, '--trace')])),
    },
    image: {
      ...image,
      // SOURCE_DATE_EPOCH moves times only where --mtime clamp clamps to it; elsewhere what it
      // changes (the part's root, its index) is not what a merge takes.
      sourceDateEpoch: image.mtime === 'clamp' ? (process.env['SOURCE_DATE_EPOCH'] ?? null) : null,
    },
  };
}

/** A sha256 of the selected entries' metadata in path order (what a directory source is compared by). */
export function selectionStamp(entries: readonly Entry[]): string {
  const h = createHash('sha256');
  for (const e of entries) {
    h.update(`${e.path}\0${e.type}\0${e.mode}\0${e.uid}\0${e.gid}\0${e.size}\0${e.mtime}\0${e.target ?? ''}\0${e.rdev ?? ''}`, 'latin1');
    for (const [name, value] of e.xattrs ?? []) h.update(`\0${name}=${value.toString('hex')}`, 'latin1');
    h.update('\n');
  }
  return h.digest('hex');
}

/** The index of a part being built: starts hashing its files at once; `write` waits for them. */
export function startPartIndex(payload: Payload, selection: SelectionRequest, image: PartImageOptions): { write: (sources: Sources, file: string) => Promise<PartIndex>; stop: () => void } {
  const match = partMatch(selection, image);
  const stamp = selectionStamp(payload.entries);
  const files: Entry[] = payload.entries.filter((e) => e.type === 'file');
  const paths = files.map((e) => display(e.path.slice(MOUNT.length)));
  let bytes = 0;
  for (const e of files) bytes += e.size;
  const jobs: HashJob[] = files.map((e) => ({ source: e.source!, offset: e.offset ?? 0, size: e.size }));
  const releases = payload.releases.map((r) => ({ project: r.project, version: r.version, platform: r.platform, path: display(r.path), setupScript: display(r.setupScript), compilers: r.compilers.map(display) }));
  const selected = { entries: payload.entries.length, files: files.length, bytes, stamp };
  const hashing = hashContents(jobs);
  return {
    stop: hashing.stop,
    write: async (sources, file) => {
      const digests = await hashing.digests;
      const index: PartIndex = {
        format: PART_FORMAT,
        version: PART_VERSION,
        match,
        source: { cvmfsRoot: sources.cvmfsRoot, revisions: (revisionsOf(sources) as Revision[] | null) ?? null },
        selected,
        releases,
        files: paths.map((p, k) => [p, files[k]!.size, digests[k]!]),
      };
      // One file entry a line: a reader can stream it, and a diff of two indexes reads.
      const { files: list, ...head } = index;
      const text = JSON.stringify(head, null, 1).replace(/\n}$/, ',\n "files": [\n') + list.map((f) => ' ' + JSON.stringify(f)).join(',\n') + '\n ]\n}\n';
      fs.writeFileSync(file, text);
      return index;
    },
  };
}

/** The index entries of a part: `/.shrinkwrap/` and its `part.json` (content in `file`), in image coordinates. */
export function partIndexEntries(file: string, epoch: number): Entry[] {
  const size = fs.statSync(file).size;
  const reason = 'the part index (shrinkwrap build --part)';
  return [
    { path: path.posix.dirname(PART_INDEX), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: epoch, size: 0, reason },
    { path: PART_INDEX, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: epoch, size, source: fromText(file), reason },
  ];
}

/** Read a part's index; null with the reason when the file is no part shrinkwrap can use. */
export async function readPartIndex(file: string): Promise<{ index: PartIndex } | { problem: string }> {
  let image;
  try {
    image = await openSquashfs(file);
  } catch (err) {
    return { problem: err instanceof InputError ? `not a SquashFS image: ${err.message}` : String(err) };
  }
  try {
    const e = image.lookup(PART_INDEX);
    if (!e || e.type !== 'file') return { problem: `no ${PART_INDEX} (not a part: shrinkwrap build --part writes one)` };
    if (e.size > 1 << 30) return { problem: `${PART_INDEX} is ${e.size} bytes` };
    const doc = JSON.parse(image.readFile(e).toString('utf8')) as Partial<PartIndex>;
    if (doc.format !== PART_FORMAT || typeof doc.match !== 'object' || typeof doc.selected?.stamp !== 'string' || !Array.isArray(doc.files)) return { problem: `${PART_INDEX} is no part index` };
    if (doc.version !== PART_VERSION) return { problem: `index version ${doc.version}, this shrinkwrap writes ${PART_VERSION}` };
    return { index: doc as PartIndex };
  } catch (err) {
    if (err instanceof SyntaxError) return { problem: `${PART_INDEX}: ${err.message}` };
    if (err instanceof InputError || err instanceof BuildError) return { problem: err.message };
    throw err;
  } finally {
    image.close();
  }
}

/** The keys whose values differ between two `match` documents, as `a.b: old → new` (at most `limit`). */
export function matchDifferences(was: unknown, now: unknown, limit = 3): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, key: string) => {
    if (out.length >= limit) return;
    const plain = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
    if (plain(a) && plain(b)) {
      const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
      for (const k of keys) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], key === '' ? k : `${key}.${k}`);
      return;
    }
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    out.push(`${key}: ${short(a)} → ${short(b)}`);
  };
  walk(was, now, '');
  return out;
}

function short(v: unknown): string {
  if (v === undefined) return 'none';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[0-9a-f]{64}$/.test(s) ? s.slice(0, 12) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

// The layer of a part, kept (`merge --format oci`): a part's tree as a tar layer blob is built once
// and kept beside the part (or in --layer-cache DIR), with a small JSON record of what it was
// built from; a later merge of the same part with the same layer options copies the blob as a
// build copies its base's layers. Whether the part is the same is decided cheaply, without reading
// it: its size, modification time (ns) and inode, and its superblock's facts. The record also
// keeps the part's sha256 (provenance names it), so a merge that finds every layer reads no part's data.
//
// Files, for PART = x.part.sqfs and gzip layers: x.part.sqfs.layer.tar.gz (the blob, as the layout
// stores it) and x.part.sqfs.layer.tar.gz.json (the record). Both are written under a temporary
// name and renamed into place, the blob first; the record names the blob's inode and time, so a
// blob replaced without its record (a run killed between the renames) is never taken for another.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LayerCompression } from '../../formats/oci.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import { removeOnInterrupt, sweepTemporaries, tempPathBeside, writeNewFile } from '../../util/atomic.js';
import type { LayerBlob } from '../../writers/tar/layer.js';
import { VERSION } from '../provenance.js';
import type { PartFacts } from './parts.js';

const FORMAT = 'shrinkwrap-part-layer';
/** Bump when a part's layer is made differently (entries, order, tar dialect). */
const LAYER_VERSION = 1;

export interface LayerSettings {
  compression: LayerCompression;
  level: number;
}

/** What a layer was built from, as the record has it (the same fields compared on lookup). */
interface PartKey {
  size: number;
  mtimeNs: string;
  ino: number;
  facts: PartFacts;
}

interface LayerRecord {
  format: string;
  version: number;
  shrinkwrap: string;
  part: PartKey & { file: string; sha256: string };
  layer: LayerSettings & { mediaType: string; digest: string; diffId: string; size: number; tarSize: number; entries: number };
  blob: { ino: number; mtimeNs: string };
}

/** A layer found in the cache, or just put there. */
export interface CachedLayer {
  file: string;
  digest: string;
  diffId: string;
  size: number;
  mediaType: string;
  /** The part's sha256 (hex) as recorded. */
  sha256: string;
}

const EXTENSION: Record<LayerCompression, string> = { gzip: '.tar.gz', zstd: '.tar.zst', none: '.tar' };

/** Where a part's layer and its record go: beside the part, or in `dir`. */
export function cachePaths(part: string, dir: string | null, compression: LayerCompression): { blob: string; record: string } {
  const blob = path.join(dir ?? path.dirname(part), `${path.basename(part)}.layer${EXTENSION[compression]}`);
  return { blob, record: `${blob}.json` };
}

/** Two parts of one merge whose layers would have one name (same file name, --layer-cache DIR): refused. */
export function checkCacheNames(parts: string[], dir: string | null, compression: LayerCompression): void {
  const seen = new Map<string, string>();
  for (const p of parts) {
    const { blob } = cachePaths(p, dir, compression);
    const abs = path.resolve(blob);
    const other = seen.get(abs);
    if (other !== undefined) throw new InputError(`--layer-cache ${dir}: parts ${other} and ${p} have the same file name, so their layers would too; give them other names or merge without --layer-cache`);
    seen.set(abs, p);
  }
  if (dir !== null) {
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) throw new InputError(`--layer-cache ${dir}: no such directory`);
    if (!st.isDirectory()) throw new InputError(`--layer-cache ${dir}: not a directory`);
  }
}

/** The part's key: its size, time and inode (stat, with ns times) and superblock facts. */
export function partKey(file: string, facts: PartFacts): PartKey {
  const st = fs.statSync(file, { bigint: true });
  return { size: Number(st.size), mtimeNs: String(st.mtimeNs), ino: Number(st.ino), facts };
}

function sameKey(a: PartKey, b: PartKey): boolean {
  const f = a.facts;
  const g = b.facts;
  return (
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ino === b.ino &&
    f.compressor === g.compressor &&
    f.blockSize === g.blockSize &&
    f.inodes === g.inodes &&
    f.bytesUsed === g.bytesUsed &&
    f.mkfsTime === g.mkfsTime
  );
}

/** The kept layer of this part with these settings, or null (none, another part, other settings, a record or blob that does not fit). */
export function findLayer(paths: { blob: string; record: string }, key: PartKey, settings: LayerSettings): CachedLayer | null {
  let rec: LayerRecord;
  try {
    const st = fs.lstatSync(paths.record, { throwIfNoEntry: false });
    if (!st || !st.isFile() || st.size > 1 << 20) return null;
    rec = JSON.parse(fs.readFileSync(paths.record, 'utf8')) as LayerRecord;
  } catch {
    return null;
  }
  if (rec?.format !== FORMAT || rec.version !== LAYER_VERSION || rec.shrinkwrap !== VERSION) return null;
  if (!rec.part || !rec.layer || !rec.blob || !rec.part.facts) return null;
  if (!sameKey(rec.part, key)) return null;
  if (rec.layer.compression !== settings.compression || rec.layer.level !== settings.level) return null;
  if (!/^sha256:[0-9a-f]{64}$/.test(rec.layer.digest) || !/^sha256:[0-9a-f]{64}$/.test(rec.layer.diffId) || !/^[0-9a-f]{64}$/.test(rec.part.sha256)) return null;
  const blob = fs.lstatSync(paths.blob, { bigint: true, throwIfNoEntry: false });
  if (!blob || !blob.isFile() || Number(blob.size) !== rec.layer.size || Number(blob.ino) !== rec.blob.ino || String(blob.mtimeNs) !== rec.blob.mtimeNs) return null;
  return { file: paths.blob, digest: rec.layer.digest, diffId: rec.layer.diffId, size: rec.layer.size, mediaType: rec.layer.mediaType, sha256: rec.part.sha256 };
}

/**
 * A place to write a part's layer: a temporary beside its cache name (removed on a signal), or
 * null when the cache's directory cannot be written (`why` then says so).
 */
export function reserveLayer(paths: { blob: string }): { tmp: string; release: () => void } | { why: string } {
  sweepTemporaries(path.dirname(paths.blob));
  const tmp = tempPathBeside(paths.blob);
  try {
    fs.closeSync(fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644));
  } catch (err) {
    return { why: describeSystemError(err) };
  }
  const forget = removeOnInterrupt(tmp);
  return {
    tmp,
    release: () => {
      fs.rmSync(tmp, { force: true });
      forget();
    },
  };
}

/** Put the layer written to `tmp` in place, then its record; the layer as found from now on. */
export function keepLayer(paths: { blob: string; record: string }, tmp: string, blob: LayerBlob, key: PartKey, part: { file: string; sha256: string }, settings: LayerSettings): CachedLayer {
  try {
    fs.renameSync(tmp, paths.blob);
    const st = fs.statSync(paths.blob, { bigint: true });
    const rec: LayerRecord = {
      format: FORMAT,
      version: LAYER_VERSION,
      shrinkwrap: VERSION,
      part: { file: path.basename(part.file), sha256: part.sha256, ...key },
      layer: { ...settings, mediaType: blob.mediaType, digest: blob.digest, diffId: blob.diffId, size: blob.size, tarSize: blob.tarSize, entries: blob.entries },
      blob: { ino: Number(st.ino), mtimeNs: String(st.mtimeNs) },
    };
    const recTmp = tempPathBeside(paths.record);
    const forget = removeOnInterrupt(recTmp);
    try {
      writeNewFile(recTmp, JSON.stringify(rec, null, 1) + '\n');
      fs.renameSync(recTmp, paths.record);
    } finally {
      fs.rmSync(recTmp, { force: true });
      forget();
    }
  } catch (err) {
    throw new BuildError(`cannot keep the layer of ${part.file} as ${paths.blob}: ${describeSystemError(err)}`);
  }
  return { file: paths.blob, digest: blob.digest, diffId: blob.diffId, size: blob.size, mediaType: blob.mediaType, sha256: part.sha256 };
}

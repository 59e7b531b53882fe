// `shrinkwrap merge --format oci|docker-archive`: an OCI image from parts, one layer per part. The
// base's layers are kept byte for byte (as a build keeps them), each part is one layer (the tar of
// its tree under /cvmfs, built once per part and kept: layer-cache.ts), and a last layer holds what
// shrinkwrap generates. A part's data is decompressed only to build its layer the first time; a
// merge that finds every layer copies blobs and writes the last layer, nothing more.
//
// Conflicts are settled as the SquashFS merge settles them (union.ts), and what the union keeps
// must be what the layers show: a part whose entries lost a conflict gets a layer of its surviving
// entries for this merge only (never kept), and directories whose metadata the union took from
// another part than the last layer holding them are set again in the last layer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type CodecName, codecFor, defaultLevel } from '../../codecs/index.js';
import type { LayerCompression } from '../../formats/oci.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, ancestors, comparePaths, copyEntry, findPath } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import { MOUNT } from '../../select/spec/parse.js';
import type { BaseImage } from '../../sources/base/index.js';
import { AtomicOutput, fsyncFile, obeySignals } from '../../util/atomic.js';
import { sha256File } from '../../util/digest.js';
import { runStepsAsync } from '../../util/steps.js';
import { type KeptLayer, type NewLayer, type OciWriteResult, writeOci } from '../../writers/oci/index.js';
import { writeLayer } from '../../writers/tar/layer.js';
import { StoredSource, storedContent } from '../../writers/squashfs/stored.js';
import { defaultImageName } from '../build.js';
import { DEFAULT_MOUNTPOINTS } from '../generated.js';
import { type BuildHooks, type ProgressHooks, silentProgress } from '../hooks.js';
import { composeImage, imageEpoch } from '../image.js';
import { openBaseImage } from '../inputs.js';
import { layerGroups } from '../layers.js';
import { checksumPath, outputKind } from '../output.js';
import { VERSION, absoluteBaseName, baseAnnotations } from '../provenance.js';
import { type MergeFacts, type MergeOptions, type MergedPart, generated, partReleases, readParts, refuseOutputAmongParts } from './index.js';
import { type CachedLayer, type LayerSettings, cachePaths, checkCacheNames, findLayer, keepLayer, partKey, reserveLayer } from './layer-cache.js';
import { type Part, hashFiles, openParts } from './parts.js';
import { type Union, ranks, unionOf } from './union.js';

export interface OciMergeOptions {
  format: 'oci' | 'docker-archive';
  /** Image name and tag (default: from the output's name, tag latest). */
  tag?: { name: string; tag: string };
  /** Where parts' layers are kept (default: beside each part). */
  layerCache?: string | null;
}

/** A layer of the merged image, as --json reports it. */
export interface MergedLayer {
  label: string;
  digest: string;
  diffId: string;
  size: number;
  /** The base's, copied byte for byte. */
  kept: boolean;
  /** A part's layer that was found kept (copied, not built). */
  cached: boolean;
  /** The part it holds (its file name), for part layers. */
  part?: string;
  /** A part's layer built for this merge only, without the part's entries that lost conflicts (how many). */
  rebuilt?: boolean;
  lost?: number;
}

export interface OciMergeResult extends MergeFacts {
  image: Omit<OciWriteResult, 'layers'> & { format: 'oci' | 'docker-archive'; name: string; compression: LayerCompression; level: number; layers: MergedLayer[] };
}

/** How a part becomes its layer in this merge. */
type PartPlan =
  | { kind: 'cached'; layer: CachedLayer }
  | { kind: 'build'; paths: { blob: string; record: string }; key: ReturnType<typeof partKey> }
  | { kind: 'rebuild' };

export async function mergeOci(options: MergeOptions & OciMergeOptions, hooks: BuildHooks): Promise<OciMergeResult> {
  obeySignals();
  const diag = hooks.diagnostics;
  const progress = hooks.progress ?? silentProgress;
  if (options.parts.length === 0) throw new InputError('merge: give the parts to merge (SquashFS images)');
  const settings = layerSettings(options);
  refuseOutputAmongParts(options.output, options.parts);
  const cacheDir = options.layerCache ?? null;
  checkCacheNames(options.parts, cacheDir, settings.compression);
  const output = AtomicOutput.prepare(options.output, options.force ?? false, outputKind(options.format, options.output));
  const opened = await openParts(options.parts);
  const sources = opened.map((p) => new StoredSource(p.image, p.file, 0));
  const lookups = opened.map((p) => {
    const paths = cachePaths(p.file, cacheDir, settings.compression);
    const key = partKey(p.file, p.facts);
    return { paths, key, found: findLayer(paths, key, settings) };
  });
  // Only parts whose layer is not kept are read whole (for their sha256); the rest have it recorded.
  const unhashed = opened.flatMap((p, k) => (lookups[k]!.found ? [] : [p.file]));
  const hashing = hashFiles(unhashed);
  try {
    if (settings.compression === 'zstd') diag.warn('zstd-layers', 'zstd layers: umoci 0.4, oci-image-tool, skopeo docker-archive and Docker < 23 reject them; use gzip for those');
    const baseImage = await openBaseImage(options.base, diag, progress);
    const parts = await readParts(opened, sources, progress);
    const union = await runStepsAsync(unionOf(parts, ranks(parts.length, options.priority ?? null)));
    const epoch = imageEpoch(union.entries);

    const hashed = unhashed.length > 0 ? await hashing.digests : [];
    const digests = lookups.map((l) => l.found?.sha256 ?? hashed.shift()!);
    const merged = parts.map((p, k): MergedPart => ({ file: path.basename(p.file), sha256: digests[k]!, ...p.facts, entries: p.entries.length, files: p.files, bytes: p.bytes, copied: false }));
    const base = baseImage ? { name: absoluteBaseName(baseImage.text), kind: baseImage.kind, digest: baseImage.digest } : null;
    const releases = partReleases(opened);
    const extra = generated({ parts: merged, base, baseImage, epoch, mountpoints: options.mountpoints ?? DEFAULT_MOUNTPOINTS, releases, rootfs: true, platform: options.base?.platform ?? null });
    // An OCI image is a root file system: without a base, the parts still sit at /cvmfs.
    const rootOnly: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: epoch, size: 0, reason: 'image root' }];
    const baseEntries = baseImage ? baseImage.entries : rootOnly;
    const image = composeImage({ base: baseEntries, payload: union.entries, mount: MOUNT, epoch, extra }, diag);

    const plans = parts.map((_, k): PartPlan => {
      // Its kept layer would show entries the union dropped: this merge gets a layer of the rest.
      if (union.lost[k]! > 0) return { kind: 'rebuild' };
      const l = lookups[k]!;
      return l.found ? { kind: 'cached', layer: l.found } : { kind: 'build', paths: l.paths, key: l.key };
    });
    const partLayers = await partLayersOf(parts, plans, union, image, merged, settings, options, diag, progress);
    const groups = layerGroups({ image, base: baseEntries, baseAsLayer: !baseImage || baseImage.layers.length === 0, mount: MOUNT, per: 'repository', partOf: new Map() });
    const baseGroup = groups.find((g) => g.label === 'base root filesystem' && g.entries.length > 0);
    const generatedGroup = groups.find((g) => g.label.startsWith('added by shrinkwrap'));
    const last = lastLayer(generatedGroup?.entries ?? [], reasserted(image, partLayers.map((l) => l.dirs)), image);

    const layers: NewLayer[] = [...(baseGroup ? [baseGroup] : []), ...partLayers.map((l) => l.layer), { label: generatedGroup?.label ?? 'added by shrinkwrap', entries: last }];
    const ref = options.tag ?? { name: defaultImageName(options.output), tag: 'latest' };
    output.begin();
    const writing = progress.writing(`writing ${path.basename(options.output)}`, contentBytes(last) + (baseGroup ? contentBytes(baseGroup.entries) : 0) + partLayers.reduce((n, l) => n + (l.layer.blob ? 0 : contentBytes(l.layer.entries)), 0));
    let r: OciWriteResult;
    try {
      r = await writeOci(
        output.tmp,
        {
          format: options.format,
          name: ref.name,
          tag: ref.tag,
          baseConfig: baseImage?.config ?? null,
          baseLayers: baseImage?.layers ?? [],
          layers,
          ...settings,
          threads: options.threads ?? os.availableParallelism(),
          // The parts' newest time (or SOURCE_DATE_EPOCH): the same parts make the same image.
          epoch,
          env: releases.length > 0 ? ['SHRINKWRAP_RELEASE_SETUP=/release_setup.sh', 'BASH_ENV=/release_setup.sh', 'ENV=/release_setup.sh'] : [],
          labels: labelsOf(merged, releases, baseImage, epoch),
          annotations: baseAnnotations(baseImage),
          createdBy: `shrinkwrap ${VERSION} merge`,
          onProgress: writing.update,
        },
        diag,
        output.extraTemporary('.stage'),
      );
    } finally {
      writing.stop();
    }
    const sha256 = await checksumAndCommit(output, options);
    const nBase = baseImage?.layers.length ?? 0;
    const first = nBase + (baseGroup ? 1 : 0);
    const described: MergedLayer[] = r.layers.map((l, i) => {
      const k = i - first;
      const forPart = k >= 0 && k < parts.length;
      return {
        ...l,
        cached: forPart && plans[k]!.kind === 'cached',
        ...(forPart ? { part: path.basename(parts[k]!.file), rebuilt: plans[k]!.kind === 'rebuild', lost: union.lost[k]! } : {}),
      };
    });
    return {
      output: options.output,
      image: { format: options.format, name: `${ref.name}:${ref.tag}`, manifestDigest: r.manifestDigest, configDigest: r.configDigest, bytes: r.bytes, ...settings, layers: described },
      sha256,
      parts: merged,
      base,
      shared: union.shared,
      settled: union.settled,
      warnings: diag.warnings,
    };
  } finally {
    hashing.stop();
    for (const [k, p] of opened.entries()) {
      sources[k]!.close();
      p.image.close();
    }
    output.abort(); // no-op after commit
  }
}

/** Layer compression and level: gzip by default; SquashFS-only compressors refused. */
function layerSettings(o: MergeOptions): LayerSettings {
  const c = (o.compression ?? 'gzip') as CodecName | 'none';
  if (c !== 'gzip' && c !== 'zstd' && c !== 'none') throw new InputError(`--compression ${c}: OCI layers are gzip (the default), zstd or none`);
  if (o.blockSize !== undefined) throw new InputError('--block-size: SquashFS only (an OCI merge writes tar layers)');
  if (c === 'none') return { compression: c, level: 0 };
  const { min, max } = codecFor(c).levels;
  if (o.level !== undefined && (o.level < min || o.level > max)) throw new InputError(`--level ${o.level}: ${c} takes ${min} to ${max}`);
  return { compression: c, level: o.level ?? defaultLevel(c) };
}

interface PartLayer {
  layer: NewLayer;
  /** The directories the layer writes, in path order (what it leaves visible). */
  dirs: Entry[];
}

/** Each part's layer: found kept, built and kept, or built for this merge from its surviving entries. */
async function partLayersOf(
  parts: Part[],
  plans: PartPlan[],
  union: Union,
  image: readonly Entry[],
  merged: MergedPart[],
  settings: LayerSettings,
  o: MergeOptions,
  diag: Diagnostics,
  progress: ProgressHooks,
): Promise<PartLayer[]> {
  const cvmfs = image[findPath(image, MOUNT)]!;
  const content = (e: Entry) => storedContent(e.stored!, e.size);
  const out: PartLayer[] = [];
  for (const [k, p] of parts.entries()) {
    const plan = plans[k]!;
    const label = `part ${path.basename(p.file)}`;
    if (plan.kind === 'rebuild') {
      const entries = survivingEntries(union, k, cvmfs);
      out.push({ layer: { label, entries, content }, dirs: entries.filter((e) => e.type === 'dir') });
      continue;
    }
    const entries = [partRootEntry(p), ...p.entries];
    const dirs = entries.filter((e) => e.type === 'dir');
    if (plan.kind === 'cached') {
      out.push({ layer: { label, entries: [], blob: keptLayerOf(plan.layer) }, dirs });
      continue;
    }
    const reserved = reserveLayer(plan.paths);
    if ('why' in reserved) {
      diag.warn('layer-cache', `cannot keep the layer of ${p.file} in ${path.dirname(plan.paths.blob)} (${reserved.why}): it is built for this merge only (--layer-cache DIR keeps layers elsewhere)`);
      out.push({ layer: { label, entries, content }, dirs });
      continue;
    }
    try {
      const building = progress.writing(`building the layer of ${path.basename(p.file)}`, p.bytes);
      let blob;
      try {
        blob = await writeLayer(entries, reserved.tmp, { ...settings, threads: o.threads ?? os.availableParallelism(), content, onProgress: building.update }, diag);
      } finally {
        building.stop();
      }
      const kept = keepLayer(plan.paths, reserved.tmp, blob, plan.key, { file: p.file, sha256: merged[k]!.sha256 }, settings);
      out.push({ layer: { label, entries: [], blob: keptLayerOf(kept) }, dirs });
    } finally {
      reserved.release();
    }
  }
  return out;
}

function keptLayerOf(l: CachedLayer): KeptLayer {
  return { blob: { file: l.file, offset: 0, length: l.size }, digest: l.digest, diffId: l.diffId, mediaType: l.mediaType };
}

/**
 * The /cvmfs directory of a part's kept layer: the part's root as it stands (a layer depends on
 * its part alone). What /cvmfs finally is, the last layer says.
 */
function partRootEntry(p: Part): Entry {
  const root = p.image.lookup('/');
  return { path: MOUNT, type: 'dir', mode: root?.mode ?? 0o755, uid: root?.uid ?? 0, gid: root?.gid ?? 0, mtime: root?.mtime ?? 0, size: 0, reason: `root of part ${p.file}` };
}

/**
 * The union's entries that come from part `k`, with the directories above them (the union's: the
 * winning part's metadata), under /cvmfs as the image has it. A hard link whose first name is not
 * in this layer (it gave way to an equal file of another part) becomes a copy of that file.
 */
function survivingEntries(union: Union, k: number, cvmfs: Entry): Entry[] {
  const all = union.entries;
  const out: Entry[] = [cvmfs];
  const chain: Entry[] = [];
  let written = 0; // how much of `chain` this layer has
  const files = new Set<string>();
  for (let i = 0; i < all.length; i++) {
    const e = all[i]!;
    while (chain.length > 0 && !e.path.startsWith(chain[chain.length - 1]!.path + '/')) chain.pop();
    written = Math.min(written, chain.length);
    if (union.from[i] === k) {
      for (; written < chain.length; written++) out.push(chain[written]!);
      if (e.type === 'hardlink' && !files.has(e.target!)) {
        const at = findPath(all, e.target!);
        out.push(at >= 0 ? { ...copyEntry(all[at]!), path: e.path, reason: e.reason } : e);
      } else out.push(e);
      if (e.type === 'file') files.add(e.path);
    }
    if (e.type === 'dir') {
      chain.push(e);
      if (union.from[i] === k) written = chain.length;
    }
  }
  return out;
}

/**
 * Directories of the image under /cvmfs whose metadata differs from what the part layers leave
 * (the last layer holding each writes its own): set again in the last layer.
 */
function reasserted(image: readonly Entry[], layerDirs: Entry[][]): Entry[] {
  const visible = new Map<string, Entry>();
  for (const dirs of layerDirs) for (const d of dirs) visible.set(d.path, d);
  const out: Entry[] = [];
  for (const e of image) {
    if (e.type !== 'dir') continue;
    const v = visible.get(e.path);
    if (v !== undefined && v !== e && !sameDirMeta(v, e)) out.push(e);
  }
  return out;
}

function sameDirMeta(a: Entry, b: Entry): boolean {
  const x = a.xattrs ?? [];
  const y = b.xattrs ?? [];
  return a.type === b.type && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtime === b.mtime && x.length === y.length && x.every(([n, v], i) => y[i]![0] === n && y[i]![1].equals(v));
}

/** The last layer: what shrinkwrap generates (and whiteouts), the directories set again, and the image's directories above them. */
function lastLayer(generatedEntries: Entry[], dirs: Entry[], image: readonly Entry[]): Entry[] {
  const byPath = new Map<string, Entry>();
  for (const e of [...generatedEntries, ...dirs]) if (!byPath.has(e.path)) byPath.set(e.path, e);
  for (const e of dirs) {
    for (const a of ancestors(e.path)) {
      if (byPath.has(a)) continue;
      const at = findPath(image, a);
      if (at >= 0) byPath.set(a, image[at]!);
    }
  }
  return [...byPath.values()].sort((x, y) => comparePaths(x.path, y.path));
}

function contentBytes(entries: readonly Entry[]): number {
  let n = 0;
  for (const e of entries) if (e.type === 'file') n += e.size;
  return n;
}

/** The config's labels: what a merged image records of itself (as its Apptainer labels say). */
function labelsOf(parts: MergedPart[], releases: ReturnType<typeof partReleases>, baseImage: BaseImage | null, epoch: number): Record<string, string> {
  const labels: Record<string, string> = {
    'org.opencontainers.image.created': new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'),
    'io.shrinkwrap.version': VERSION,
    'io.shrinkwrap.parts': parts.map((p) => `${p.file}@sha256:${p.sha256}`).join(' '),
  };
  if (releases.length > 0) labels['io.shrinkwrap.releases'] = releases.map((r) => `${r.project},${r.version}`).join(' ');
  if (baseImage) {
    labels['org.opencontainers.image.base.name'] = absoluteBaseName(baseImage.text);
    const fileDigest = baseImage.kind === 'tarball' || baseImage.kind === 'sif' || baseImage.kind === 'squashfs';
    if (baseImage.digest) labels[baseImage.kind === 'docker-archive' ? 'io.shrinkwrap.base.image-id' : fileDigest ? 'io.shrinkwrap.base.sha256' : 'org.opencontainers.image.base.digest'] = baseImage.digest;
  }
  return labels;
}

/** A docker-archive's `.sha256` side file (a layout has none), the flush, then the output into place. */
async function checksumAndCommit(output: AtomicOutput, o: MergeOptions): Promise<string | null> {
  if (!fs.statSync(output.tmp).isFile()) {
    output.commit();
    return null;
  }
  const [digest] = await Promise.all([(o.checksum ?? true) ? sha256File(output.tmp) : null, fsyncFile(output.tmp)]);
  const sum = digest ? digest.slice('sha256:'.length) : null;
  if (sum) output.writeSide(checksumPath(o.output), `${sum}  ${path.basename(o.output)}\n`);
  output.commit();
  return sum;
}


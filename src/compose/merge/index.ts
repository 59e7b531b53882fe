// `shrinkwrap merge`: one SquashFS image from parts (SquashFS images holding <fqrn>/ directories)
// under /cvmfs, on a base or alone, without compressing their data again: the writer copies each
// file's compressed blocks (entries with `stored`, writers/squashfs/stored.ts) and packs their
// tails into new fragments; inodes, directories and tables are written anew. Output, checksum,
// signals and progress as a build has them (compose/build.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Diagnostics, Warning } from '../../model/diagnostics.js';
import type { Entry } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import { type CodecName, codecChoices, codecFor, defaultLevel } from '../../codecs/index.js';
import { MOUNT } from '../../select/spec/parse.js';
import type { BaseImage } from '../../sources/base/index.js';
import { AtomicOutput, fsyncFile, obeySignals } from '../../util/atomic.js';
import { sha256File } from '../../util/digest.js';
import { runStepsAsync } from '../../util/steps.js';
import { makeWorkDir } from '../../util/workdir.js';
import { type SquashfsOutput, type SquashfsResult, openSquashfs, startSquashfsPool, writeSquashfs } from '../../writers/squashfs/index.js';
import { StoredSource } from '../../writers/squashfs/stored.js';
import { DEFAULT_MOUNTPOINTS, generatedEntries } from '../generated.js';
import { type BuildHooks, silentProgress } from '../hooks.js';
import { composeImage, imageEpoch } from '../image.js';
import { type BaseRequest, openBaseImage } from '../inputs.js';
import { checksumPath, outputKind } from '../output.js';
import { VERSION, absoluteBaseName } from '../provenance.js';
import { apptainerFiles, imageArch } from '../apptainer.js';
import { PART_INDEX } from '../parts/index-file.js';
import { type Part, type PartFacts, hashFiles, openParts, partEntries } from './parts.js';
import { type PartPriority, ranks, unionOf } from './union.js';

export type { PartPriority } from './union.js';

export interface MergeOptions {
  output: string;
  force?: boolean;
  /** The parts, in order (the order decides nothing but ties: see priority). */
  parts: string[];
  base: BaseRequest | null;
  /** Default: the first part's compressor (gzip if we cannot write it) and block size; the codec's level. */
  compression?: CodecName;
  level?: number;
  blockSize?: number;
  /** A part with another compressor or block size is compressed anew (with a warning); false: refused. */
  recompress?: boolean;
  /** Which part wins at a path where parts differ; null: that is an error. */
  priority?: PartPriority | null;
  threads?: number;
  dedup?: boolean;
  exportTable?: boolean;
  checksum?: boolean;
  /** Site mount points made on a base (default DEFAULT_MOUNTPOINTS). */
  mountpoints?: string[];
  commandLine?: string[];
}

export interface MergedPart extends PartFacts {
  file: string;
  sha256: string;
  entries: number;
  files: number;
  bytes: number;
  /** Its blocks were copied (same compressor and block size as the output), not compressed anew. */
  copied: boolean;
}

/** What every merge reports, whatever it wrote. */
export interface MergeFacts {
  output: string;
  sha256: string | null;
  parts: MergedPart[];
  base: { name: string; kind: string; digest: string | null } | null;
  /** Paths several parts had, and conflicts the priority settled among them. */
  shared: number;
  settled: number;
  warnings: readonly Warning[];
}

export interface MergeResult extends MergeFacts {
  image: SquashfsResult & { format: 'squashfs'; compression: CodecName; level: number; blockSize: number };
}

/** The compressor names we write SquashFS with (the superblock's names for them are the same). */
const WRITABLE = new Set<string>(codecChoices('squashfs'));

export async function merge(options: MergeOptions, hooks: BuildHooks): Promise<MergeResult> {
  obeySignals();
  const diag = hooks.diagnostics;
  const progress = hooks.progress ?? silentProgress;
  if (options.parts.length === 0) throw new InputError('merge: give the parts to merge (SquashFS images)');
  refuseOutputAmongParts(options.output, options.parts);
  const output = AtomicOutput.prepare(options.output, options.force ?? false, outputKind('squashfs', options.output));
  const opened = await openParts(options.parts);
  const sources = opened.map((p) => new StoredSource(p.image, p.file, 0));
  const hashing = hashFiles(options.parts);
  let sqfs: SquashfsOutput | null = null;
  let pool: ReturnType<typeof startSquashfsPool> | null = null;
  try {
    const out = outputFormat(options, opened[0]!.facts, opened[0]!.file, diag);
    const copied = opened.map((p) => checkPart(p.file, p.facts, out, options.recompress ?? true, diag));
    if (out.compression === 'zstd') diag.warn('zstd-squashfs', 'zstd SquashFS: Linux before 4.14 (RHEL/CentOS 7) cannot mount it; use --compression gzip or xz for images such hosts mount');
    pool = startSquashfsPool({ ...out, threads: options.threads });
    const baseImage = await openBaseImage(options.base, diag, progress);
    const parts = await readParts(opened, sources, progress);
    const rank = ranks(parts.length, options.priority ?? null);
    const union = await runStepsAsync(unionOf(parts, rank));
    const epoch = imageEpoch(union.entries);

    // The data area starts with the parts' files, in path order, while their sha256 is computed;
    // the provenance file that records them comes after (files not offered go last).
    output.createFile();
    sqfs = openSquashfs(output.tmp, { ...out, dedup: options.dedup ?? true, threads: options.threads, pool });
    for (const e of union.entries) if (e.type === 'file') sqfs.feed.offerWalked(e);
    const digests = await hashing.digests;
    const merged = parts.map((p, k): MergedPart => ({ file: path.basename(p.file), sha256: digests[k]!, ...p.facts, entries: p.entries.length, files: p.files, bytes: p.bytes, copied: copied[k]! }));
    const base = baseImage ? { name: absoluteBaseName(baseImage.text), kind: baseImage.kind, digest: baseImage.digest } : null;
    const releases = partReleases(opened);
    const extra = generated({ parts: merged, base, baseImage, epoch, mountpoints: options.mountpoints ?? DEFAULT_MOUNTPOINTS, releases, rootfs: baseImage !== null, platform: options.base?.platform ?? null });
    const image = composeImage({ base: baseImage ? baseImage.entries : null, payload: union.entries, mount: MOUNT, epoch, extra }, diag);

    let total = 0;
    for (const e of image) if (e.type === 'file') total += e.size;
    const writing = progress.writing(`writing ${path.basename(options.output)}`, total);
    let written: SquashfsResult;
    try {
      const s = sqfs;
      sqfs = null; // writeSquashfs closes it
      pool = null;
      written = await writeSquashfs(image, output.tmp, { ...out, mkfsTime: epoch, exportTable: options.exportTable ?? true, dedup: options.dedup ?? true, threads: options.threads, onProgress: writing.update, output: s }, diag);
    } finally {
      writing.stop();
    }
    const sha256 = await checksumAndCommit(output, options);
    return { output: options.output, image: { format: 'squashfs', ...written, ...out }, sha256, parts: merged, base, shared: union.shared, settled: union.settled, warnings: diag.warnings };
  } finally {
    hashing.stop();
    if (sqfs) await sqfs.close();
    else if (pool) await (await pool.catch(() => null))?.close();
    for (const [k, p] of opened.entries()) {
      sources[k]!.close();
      p.image.close();
    }
    output.abort(); // no-op after commit
  }
}

/** Writing the output over a part it reads would destroy the part (--force) or be read into itself. */
export function refuseOutputAmongParts(output: string, parts: string[]): void {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const out = real(output);
  const seen = new Map<string, string>();
  for (const p of parts) {
    const r = real(p);
    if (r === out) throw new InputError(`output ${output} is one of the parts (${p}): write the merged image elsewhere`);
    const before = seen.get(r);
    if (before !== undefined) throw new InputError(`${p}: given twice (as ${before} and ${p})`);
    seen.set(r, p);
  }
}

interface OutputFormat {
  compression: CodecName;
  level: number;
  blockSize: number;
}

/** The output's compressor, level and block size: as given, else the first part's. */
function outputFormat(o: MergeOptions, first: PartFacts, firstFile: string, diag: Diagnostics): OutputFormat {
  let compression = o.compression;
  if (compression === undefined) {
    if (WRITABLE.has(first.compressor)) compression = first.compressor as CodecName;
    else {
      compression = 'gzip';
      diag.warn('merge-recompress', `${firstFile}: ${first.compressor} is no compressor shrinkwrap writes: the image is gzip (--compression chooses)`);
    }
  }
  const { min, max } = codecFor(compression).levels;
  if (o.level !== undefined && (o.level < min || o.level > max)) throw new InputError(`--level ${o.level}: ${compression} takes ${min} to ${max}`);
  return { compression, level: o.level ?? defaultLevel(compression), blockSize: o.blockSize ?? first.blockSize };
}

/** Are the part's blocks copied (true) or compressed anew (false, with a warning)? Refused with --no-recompress. */
function checkPart(file: string, f: PartFacts, out: OutputFormat, recompress: boolean, diag: Diagnostics): boolean {
  if (f.compressor === out.compression && f.blockSize === out.blockSize) return true;
  const what = `${file} is ${f.compressor} with ${f.blockSize}-byte blocks, the image ${out.compression} with ${out.blockSize}-byte blocks`;
  if (!recompress) throw new InputError(`${what}: --no-recompress refuses to compress its files anew`);
  diag.warn('merge-recompress', `${what}: its files are decompressed and compressed anew (slower; --no-recompress refuses)`);
  return false;
}

/** Each part's entries, read with pauses (a signal stops the merge at once). */
export async function readParts(opened: Array<{ file: string; image: Part['image']; facts: PartFacts }>, sources: StoredSource[], progress: NonNullable<BuildHooks['progress']>): Promise<Part[]> {
  const reading = progress.stage('reading parts');
  const parts: Part[] = [];
  let entries = 0;
  let bytes = 0;
  try {
    for (const [k, p] of opened.entries()) {
      const r = await runStepsAsync(partEntries(p.file, p.image, sources[k]!, MOUNT));
      parts.push({ ...p, source: sources[k]!, ...r });
      entries += r.entries.length;
      bytes += r.bytes;
      reading.tick(entries, bytes);
    }
  } finally {
    reading.done();
  }
  return parts;
}

/** A release a part was built from (its /.shrinkwrap/part.json, written by build --part). */
export interface PartRelease {
  project: string;
  version: string;
  platform: string;
  setupScript: string;
  compilers: string[];
}

/**
 * The releases of parts built by `build --part`, from their indexes: on a base, the merged image
 * sets them up as a build does (/release_setup.sh, Apptainer's environment). Parts without an
 * index (mksquashfs) have none; an index that cannot be read is no release, not an error: the
 * part's files are merged all the same.
 */
export function partReleases(opened: ReadonlyArray<{ image: Part['image'] }>): PartRelease[] {
  const out: PartRelease[] = [];
  const seen = new Set<string>();
  for (const p of opened) {
    let doc: { releases?: unknown };
    try {
      const e = p.image.lookup(PART_INDEX);
      if (!e || e.type !== 'file' || e.size > 1 << 30) continue;
      doc = JSON.parse(p.image.readFile(e).toString('utf8')) as { releases?: unknown };
    } catch {
      continue;
    }
    if (!Array.isArray(doc.releases)) continue;
    for (const r of doc.releases as PartRelease[]) {
      if (typeof r?.project !== 'string' || typeof r.version !== 'string' || typeof r.setupScript !== 'string' || !Array.isArray(r.compilers)) continue;
      const key = `${r.project},${r.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ project: r.project, version: r.version, platform: String(r.platform ?? ''), setupScript: r.setupScript, compilers: r.compilers.map(String) });
    }
  }
  return out;
}

export interface GeneratedInput {
  parts: MergedPart[];
  base: MergeResult['base'];
  baseImage: BaseImage | null;
  epoch: number;
  mountpoints: string[];
  releases: PartRelease[];
  /** The image is a root file system (a base, or any OCI image): it gets what a build adds to one. */
  rootfs: boolean;
  /** `os/arch` asked for (--platform), for the image's architecture when the base does not say it. */
  platform: string | null;
}

/**
 * /.shrinkwrap/provenance.json (which parts, their sha256 and superblocks), and on a base what a
 * build adds: the mount points, the parts' releases' /release_setup.sh and Apptainer's files.
 */
export function generated(input: GeneratedInput): Entry[] {
  const { parts, base, epoch, mountpoints, releases, rootfs } = input;
  const doc = {
    tool: { name: 'shrinkwrap', version: VERSION },
    merged: parts.map((p) => ({
      file: p.file,
      sha256: p.sha256,
      compressor: p.compressor,
      blockSize: p.blockSize,
      inodes: p.inodes,
      bytesUsed: p.bytesUsed,
      mkfsTime: p.mkfsTime,
      copied: p.copied,
    })),
    base,
    releases: releases.map((r) => ({ project: r.project, version: r.version, platform: r.platform })),
  };
  const work = makeWorkDir('merge');
  const apptainer = rootfs ? mergedApptainerFiles(input) : undefined;
  return generatedEntries(
    {
      releases: rootfs ? releases.map((r) => ({ name: `${r.project},${r.version}`, setup: r.setupScript, compilers: r.compilers })) : [],
      repositories: [],
      mountpoints: rootfs ? mountpoints : [],
      files: [{ name: 'provenance.json', content: JSON.stringify(doc, null, 1) + '\n' }],
      apptainer,
      epoch,
      mount: rootfs ? MOUNT : '',
    },
    VERSION,
    work,
  );
}

/** Apptainer's files for a merged image on a base, as a build writes them (compose/apptainer.ts). */
function mergedApptainerFiles(input: GeneratedInput): ReturnType<typeof apptainerFiles> {
  const { parts, baseImage, epoch, releases } = input;
  const labels: Record<string, string> = {
    'io.shrinkwrap.version': VERSION,
    'io.shrinkwrap.parts': parts.map((p) => `${p.file}@sha256:${p.sha256}`).join(' '),
  };
  if (releases.length > 0) labels['io.shrinkwrap.releases'] = releases.map((r) => `${r.project},${r.version}`).join(' ');
  if (input.base) labels['org.opencontainers.image.base.name'] = input.base.name;
  // No command: a merge of the same parts is the same image however it was asked for (by hand,
  // by build --parts, by a Slurm job).
  const sources = { cvmfsRoot: `parts ${parts.map((p) => p.file).join(', ')}`, commandLine: [], created: epoch, specs: [], traces: [] };
  return apptainerFiles({ sources, releases, baseImage, labels, arch: imageArch(baseImage, input.platform), version: VERSION });
}

/** The `.sha256` side file (unless turned off) and the flush to disk, then the image into place. */
async function checksumAndCommit(output: AtomicOutput, o: MergeOptions): Promise<string | null> {
  const [digest] = await Promise.all([(o.checksum ?? true) ? sha256File(output.tmp) : null, fsyncFile(output.tmp)]);
  const sum = digest ? digest.slice('sha256:'.length) : null;
  if (sum) output.writeSide(checksumPath(o.output), `${sum}  ${path.basename(o.output)}\n`);
  output.commit();
  return sum;
}

// The build, one function of typed options: read the base, select the payload, compose the image,
// write it in its format under a temporary name, checksum it, commit it (util/atomic.ts), push
// it. It returns what it wrote; the caller parses options and renders progress and results.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromText } from '../model/bytes.js';
import type { Diagnostics, Warning } from '../model/diagnostics.js';
import type { Entry } from '../model/entry.js';
import { BuildError, InputError, ShrinkwrapError, describeSystemError } from '../model/errors.js';
import { type Payload, selectPayloadAsync } from '../select/index.js';
import { MOUNT } from '../select/spec/parse.js';
import type { BaseImage } from '../sources/base/index.js';
import { credentialsFor } from '../registry/auth.js';
import { type ImageReference, parseImageReference } from '../registry/reference.js';
import { AtomicOutput, fsyncFile, obeySignals } from '../util/atomic.js';
import { type CodecName, codecFor, defaultLevel } from '../codecs/index.js';
import { sha256File } from '../util/digest.js';
import { makeWorkDir } from '../util/workdir.js';
import { writeDir } from '../writers/dir/index.js';
import { type OciWriteResult, writeOci } from '../writers/oci/index.js';
import { type PushResult, pushLayout } from '../registry/push.js';
import { type SquashfsOutput, type SquashfsResult, openSquashfs, startSquashfsPool, writeSquashfs } from '../writers/squashfs/index.js';
import { PARTITION_OFFSET, type SifWritten, finishSif } from '../writers/sif/index.js';
import { DataType } from '../formats/sif.js';
import { type ApptainerFiles, imageArch } from './apptainer.js';
import { DEFAULT_MOUNTPOINTS } from './generated.js';
import { type BuildHooks, type ProgressHooks, type WriteProgress, silentProgress } from './hooks.js';
import { type MtimePolicy, composeImage, imageEpoch, normaliseOwner, normaliseTimes } from './image.js';
import { type BaseRequest, type SelectionRequest, openBaseImage, openSource, selectOptions } from './inputs.js';
import { closeTree } from '../sources/cvmfs/open.js';
import { HttpTree } from '../sources/cvmfs/http/tree.js';
import type { FetchStats } from '../sources/cvmfs/http/fetch/fetcher.js';
import type { CvmfsTree } from '../sources/cvmfs/tree.js';
import { type LayerPer, layerGroups } from './layers.js';
import { PreviousImage, type ReuseCounts } from './reuse.js';
import { DIR_MARKER, type ImageFormat, checkFreeSpace, checksumPath, dirMarkerPath, outputKind, refuseOutputInSource, spaceNeeds } from './output.js';
import { checkPartRules, startPartIndex, writePartIndex } from './parts/build-part.js';
import { type Sources, VERSION, baseAnnotations, createdTime, generatedFor, mountedRevisions, provenanceLabels, sourcePath } from './provenance.js';

export type { ImageFormat } from './output.js';

/** Push the OCI layout once written. */
export interface PushRequest {
  /** As the user wrote it (reports name it). */
  to: string;
  ref: ImageReference;
  tlsVerify: boolean;
  creds?: string;
  timeoutMs: number;
}

export interface BuildOptions {
  /** Where the image goes, as the user gave it (messages and the checksum file name it). */
  output: string;
  /** Replace an earlier output of the same kind. */
  force?: boolean;
  format: ImageFormat;
  /** The image to build on; null: the /cvmfs payload alone (an OCI image still gets a root). */
  base: BaseRequest | null;
  selection: SelectionRequest;
  /** SquashFS compressor, or OCI layer compression. */
  compression: 'none' | CodecName;
  /** Default: the codec's (0 for none). */
  level?: number;
  /** SquashFS block size (default 128 KiB). */
  blockSize?: number;
  /** Compression threads (default: one per CPU); the image is the same whatever the number. */
  threads?: number;
  mtime?: MtimePolicy;
  /** Owner of every /cvmfs payload entry. */
  owner?: [number, number] | null;
  dedup?: boolean;
  exportTable?: boolean;
  /** Write `<output>.sha256` beside an image file (default true). */
  checksum?: boolean;
  /** dir: create device nodes (root only). */
  devices?: boolean;
  /** dir: keep setuid/setgid bits and capabilities. */
  keepSetuid?: boolean;
  layerPer?: LayerPer;
  /** oci, docker-archive: image name and tag (default: from the output's name, tag latest). */
  tag?: { name: string; tag: string };
  /** Empty directories for site file systems (default DEFAULT_MOUNTPOINTS). */
  mountpoints?: string[];
  push?: PushRequest | null;
  /** Check the free space of the output's file system and $TMPDIR before writing (default true). */
  spaceCheck?: boolean;
  /** The command as typed, for provenance (default: none recorded). */
  commandLine?: string[];
  /** Write a part (compose/parts): the /cvmfs selection alone, with its index at /.shrinkwrap/part.json. */
  part?: boolean;
  /** SquashFS, SIF: an earlier image whose compressed blocks unchanged files take (compose/reuse.ts); null: none. */
  reuse?: string | null;
}

export interface SquashfsWritten extends SquashfsResult {
  format: 'squashfs';
  compression: 'none' | CodecName;
  level: number;
  blockSize: number;
}

export interface SifImageWritten extends Omit<SquashfsWritten, 'format'> {
  format: 'sif';
  sif: SifWritten;
}

export interface OciWritten extends OciWriteResult {
  format: 'oci' | 'docker-archive';
  /** name:tag */
  name: string;
}

export interface DirWritten {
  format: 'dir';
  entries: number;
  files: number;
  /** File content written. */
  contentBytes: number;
}

export type WrittenImage = SquashfsWritten | SifImageWritten | OciWritten | DirWritten;

export interface BuildResult {
  output: string;
  format: ImageFormat;
  image: WrittenImage;
  /** Of an image file (hex), unless checksum was turned off; null for a directory. */
  sha256: string | null;
  push: (PushResult & { to: string }) | null;
  base: { name: string; kind: string; digest: string | null } | null;
  /** The selection (summary, releases, parts). */
  payload: Payload;
  warnings: readonly Warning[];
  /** What an HTTP source fetched (null for a directory source). */
  fetched: FetchStats | null;
  /** --reuse: the files that took the previous image's blocks (absent without --reuse; 0 files when it was ignored). */
  reused?: ReuseCounts & { from: string };
}

type Resolved = Required<Omit<BuildOptions, 'tag' | 'push' | 'threads'>> & Pick<BuildOptions, 'tag' | 'push' | 'threads'>;

function resolve(o: BuildOptions): Resolved {
  return {
    force: false,
    level: o.compression === 'none' ? 0 : defaultLevel(o.compression),
    blockSize: 128 * 1024,
    mtime: 'keep',
    owner: null,
    dedup: true,
    exportTable: true,
    checksum: true,
    devices: false,
    keepSetuid: false,
    layerPer: 'repository',
    mountpoints: DEFAULT_MOUNTPOINTS,
    spaceCheck: true,
    commandLine: [],
    part: false,
    reuse: null,
    // An option given as undefined takes its default too.
    ...(Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as BuildOptions),
  };
}

const isOci = (format: ImageFormat): format is 'oci' | 'docker-archive' => format === 'oci' || format === 'docker-archive';

/** Which options go with which format. */
export function checkFormatRules(o: Pick<BuildOptions, 'format' | 'compression' | 'devices' | 'keepSetuid'> & { push?: unknown; base?: unknown; reuse?: unknown }): void {
  if (isOci(o.format) && o.compression !== 'none' && !codecFor(o.compression).serves.layers) {
    throw new InputError(`--compression ${o.compression}: OCI layers are gzip (the default), zstd or none`);
  }
  if (o.format === 'sif' && o.base === null) {
    throw new InputError('--format sif needs --base: a SIF holds a container\'s root filesystem (a /cvmfs-only image is --format squashfs, which sites bind at /cvmfs)');
  }
  if (o.devices && o.format !== 'dir') throw new InputError('--devices needs --format dir (images record device nodes as data; only a directory makes real ones)');
  if (o.keepSetuid && o.format !== 'dir') throw new InputError('--keep-setuid needs --format dir (images keep setuid bits and capabilities as data; a runtime mounts them nosuid)');
  if (o.push !== undefined && o.push !== null && o.format !== 'oci') throw new InputError(`--push needs --format oci (the pushed image is the OCI layout written)`);
  if (o.reuse !== undefined && o.reuse !== null && o.format !== 'squashfs' && o.format !== 'sif') throw new InputError('--reuse needs --format squashfs or sif (it copies the compressed blocks of a SquashFS image)');
}

/** The output's file name as an image name registries accept: `AB_21.2.75.tar` → `ab_21.2.75`. */
export function defaultImageName(output: string): string {
  const name = path.basename(output).replace(/\.(tar|oci)$/, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name === '' ? 'image' : name.replace(/[._-]{2,}/g, '-');
}

/** A build under way: its output, and the SquashFS writer started before the selection. */
interface Run {
  o: Resolved;
  diag: Diagnostics;
  progress: ProgressHooks;
  output: AtomicOutput;
  squashfs: { compression: 'none' | CodecName; level: number; blockSize: number } | null;
  sqfs: SquashfsOutput | null;
  /** SIF: the output's descriptor, which the SquashFS writer writes the partition into. */
  sifFd: number | null;
  /** The /cvmfs tree read, once opened. */
  source?: CvmfsTree;
  /** --reuse: the previous image, open while the image is written (null: none, or ignored). */
  previous: PreviousImage | null;
}

/** The whole build. Checks every option before the long part, and refuses an existing output before it too. */
export async function build(options: BuildOptions, hooks: BuildHooks): Promise<BuildResult> {
  // Ctrl-C and SIGTERM stop every phase (each pauses often enough) and remove what it left.
  obeySignals();
  const o = resolve(options);
  checkFormatRules(o);
  if (o.part) checkPartRules(o);
  if ((o.format === 'squashfs' || o.format === 'sif') && o.compression === 'zstd') {
    hooks.diagnostics.warn('zstd-squashfs', 'zstd SquashFS: Linux before 4.14 (RHEL/CentOS 7) cannot mount it; use --compression gzip or xz for images such hosts mount');
  }
  refuseOutputInSource(o.output, o.selection.cvmfsRoot, o.base?.text ?? null);
  const output = AtomicOutput.prepare(o.output, o.force, outputKind(o.format, o.output));
  const squashfs = o.format === 'squashfs' || o.format === 'sif' ? { compression: o.compression, level: o.level, blockSize: o.blockSize } : null;
  // The compression workers boot while the base image is read; closed below if never handed over.
  const pool = squashfs ? startSquashfsPool({ ...squashfs, threads: o.threads }) : null;
  const run: Run = { o, diag: hooks.diagnostics, progress: hooks.progress ?? silentProgress, output, squashfs, sqfs: null, sifFd: null, previous: null };
  try {
    if (o.reuse !== null && squashfs) run.previous = await PreviousImage.open(o.reuse, { ...squashfs, mtime: o.mtime }, run.diag);
    const baseImage = await openBaseImage(o.base, run.diag, run.progress);
    const payload = await select(run, baseImage, pool);
    if (o.spaceCheck) checkSpace(run, payload, baseImage);
    const { image, ...composed } = await composeFor(run, payload, baseImage);
    const written = await writeAndCommit(run, image, { payload, baseImage, ...composed });
    const pushed = o.push ? await push(o.push, o.output, baseImage) : null;
    return {
      output: o.output,
      format: o.format,
      image: written.image,
      sha256: written.sha256,
      push: pushed,
      base: baseImage ? { name: baseImage.text, kind: baseImage.kind, digest: baseImage.digest } : null,
      payload,
      warnings: run.diag.warnings,
      fetched: run.source instanceof HttpTree ? run.source.fetcher.stats() : null,
      ...(o.reuse !== null ? { reused: { from: o.reuse, ...(composed.reused ?? { files: 0, bytes: 0 }) } } : {}),
    };
  } finally {
    // writeSquashfs closed them unless it never ran; the temporary output goes after its descriptor.
    if (run.sqfs) await run.sqfs.close();
    else if (pool) await (await pool.catch(() => null))?.close();
    if (run.sifFd !== null) fs.closeSync(run.sifFd);
    if (run.source) await closeTree(run.source);
    run.previous?.close();
    output.abort(); // no-op after commit
  }
}

/** Will the image fit where it goes, and the generated files in $TMPDIR? One line if not (see output.ts). */
function checkSpace(run: Run, payload: Payload, baseImage: BaseImage | null): void {
  const { o, output } = run;
  const oci = isOci(o.format);
  const baseBlobs = oci && baseImage ? baseImage.layers.map((l) => l.blob.length) : [];
  const repositoryBytes = Object.values(payload.summary.repositories).map((r) => r.bytes);
  const written = run.sqfs ? (fs.statSync(output.tmp, { throwIfNoEntry: false })?.size ?? 0) : 0;
  const needs = spaceNeeds(
    {
      format: o.format,
      compression: o.compression,
      payload: payload.entries,
      base: baseImage ? baseImage.entries : null,
      baseBlobBytes: baseBlobs.reduce((a, b) => a + b, 0),
      largestLayerBytes: Math.max(0, ...baseBlobs, ...repositoryBytes),
      written,
    },
    path.dirname(output.target),
    os.tmpdir(),
  );
  checkFreeSpace(needs);
}

/** The payload. For SquashFS the image's data area starts meanwhile (see below). */
async function select(run: Run, baseImage: BaseImage | null, pool: ReturnType<typeof startSquashfsPool> | null): Promise<Payload> {
  const { o, diag } = run;
  const source = openSource(o.selection, diag, { xattrs: true });
  run.source = source;
  const selection = { ...selectOptions(o.selection, baseImage), source };
  // A tree read over HTTP starts fetching each file the walk selects at once (a batch at a time),
  // and the SquashFS writer takes them once fetched, in the order the walk found them (the image
  // depends on the order of offers), so that the image is the one a directory of the same tree gives.
  const remote = source instanceof HttpTree ? new RemoteFeed(source) : null;
  const selecting = run.progress.stage('selecting');
  let payload: Payload;
  if (run.squashfs) {
    // The image's data area starts while the selection walks: the walk's files are offered as
    // it finds them, and their content is read and compressed meanwhile.
    run.output.createFile();
    // A SIF's partition is the same image, written into the container at its place.
    const within = o.format === 'sif' ? { fd: (run.sifFd = openForWriting(run.output.tmp, o.output)), origin: PARTITION_OFFSET } : undefined;
    const started = openSquashfs(run.output.tmp, { ...run.squashfs, dedup: o.dedup, threads: o.threads, pool: pool!, within });
    run.sqfs = started;
    // --reuse: a walked file that matches the previous image takes its blocks before it is offered (and is never read).
    const previous = run.previous;
    const imagePath = baseImage ? (e: Entry) => e.path : (e: Entry) => e.path.slice(MOUNT.length);
    const reuse = previous ? (e: Entry) => previous.walked(e, imagePath(e)) : null;
    const onWalkFile = remote ? (e: Entry) => remote.walked(e, reuse) : reuse
        ? (e: Entry) => {
            reuse(e);
            started.feed.offerWalked(e);
          }
        : (e: Entry) => started.feed.offerWalked(e);
    payload = await selectPayloadAsync({ ...selection, onProgress: selecting.tick, onWalkFile }, diag, () => started.feed.check());
  } else {
    // Asynchronously even from a directory: the event loop turns at the walk's pauses, and a signal is handled there.
    const onWalkFile = remote ? (e: Entry) => remote.walked(e) : undefined;
    payload = await selectPayloadAsync({ ...selection, onProgress: selecting.tick, onWalkFile }, diag);
  }
  selecting.done();
  if (remote) {
    const fetching = run.progress.stage(`fetching from ${o.selection.cvmfsRoot}`, 'objects');
    const tick = () => {
      const s = remote.tree.fetcher.stats();
      fetching.tick(s.objects, s.bytesWire);
    };
    const sqfs = run.sqfs;
    if (sqfs) await remote.offerInOrder(sqfs.feed, tick);
    // What closures added, and the rest for other formats (not what takes the previous image's blocks).
    await remote.tree.materialize(run.previous ? payload.entries.filter((e) => !e.stored) : payload.entries, tick);
    fetching.done();
  }
  return payload;
}

/** The walk's files of an HTTP tree: fetched as they are found, offered to the writer in walk order once there. */
class RemoteFeed {
  private readonly order: Entry[] = [];
  private batch: string[] = [];

  constructor(readonly tree: HttpTree) {}

  walked(e: Entry, reuse: ((e: Entry) => void) | null = null): void {
    this.order.push(e);
    reuse?.(e);
    if (e.stored) return; // the previous image's blocks: nothing to fetch
    this.batch.push(e.source!);
    if (this.batch.length >= 256) this.flush();
  }

  private flush(): void {
    if (this.batch.length > 0) this.tree.prefetch(this.batch);
    this.batch = [];
  }

  /** Offer each file when its content is in the cache, in walk order: the writer compresses while the rest arrives. */
  async offerInOrder(feed: SquashfsOutput['feed'], tick: () => void): Promise<void> {
    this.flush();
    for (const [i, e] of this.order.entries()) {
      const ready = e.stored ? null : this.tree.contentReady(e.source!);
      if (ready) await ready;
      feed.offerWalked(e);
      if (i % 256 === 0) {
        feed.check();
        tick();
      }
    }
    feed.check();
  }
}

function openForWriting(tmp: string, output: string): number {
  try {
    return fs.openSync(tmp, 'r+');
  } catch (err) {
    throw new BuildError(`cannot write ${output}: ${describeSystemError(err)}`);
  }
}

/** The image tree: base, payload and generated files, owners and times as asked. */
async function composeFor(run: Run, payload: Payload, baseImage: BaseImage | null): Promise<Omit<Composed, 'payload' | 'baseImage'> & { image: Entry[] }> {
  const { o, diag } = run;
  const oci = isOci(o.format);
  // A part's index hashes the files (on a thread) from now on, and records the selection as selected.
  const part = o.part ? startPartIndex(payload, o.selection, { compression: o.compression, level: o.level, blockSize: o.blockSize, dedup: o.dedup, exportTable: o.exportTable, mtime: o.mtime, owner: o.owner }) : null;
  normaliseOwner(payload.entries, o.owner);
  const epoch = imageEpoch(payload.entries);
  const rootOnly: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: epoch, size: 0, reason: 'image root' }];
  // OCI images are root file systems: without a base, the payload still sits at /cvmfs.
  const base = baseImage ? baseImage.entries : oci ? rootOnly : null;
  if (oci && o.compression === 'zstd') {
    diag.warn('zstd-layers', 'zstd layers: umoci 0.4, oci-image-tool, skopeo docker-archive and Docker < 23 reject them; use gzip for those');
  }
  if (base) diag.warn('cvmfs-bind', 'the image carries its own /cvmfs: a site that binds the host /cvmfs into containers (apptainer.conf "bind path", a Shifter siteFs entry, podman-hpc --cvmfs) hides it; run without that bind (docs/site-install.md)');
  const work = makeWorkDir('build');
  const sources = sourcesOf(o, payload);
  const arch = imageArch(baseImage, o.base?.platform ?? null);
  const generated = part
    ? { entries: await inWorkDir(work, () => writePartIndex(part, sources, work, epoch)), apptainer: null }
    : await inWorkDir(work, () => generatedFor({ sources, payload, baseImage, rootfs: base !== null, mountpoints: o.mountpoints, epoch, work, arch }, diag));
  const image = composeImage({ base, payload: payload.entries, mount: MOUNT, epoch, extra: generated.entries }, diag);
  normaliseTimes(image, o.mtime, epoch);
  // --reuse: the files the selection's walk did not offer (closures, the base) are matched now, before the writer takes them.
  const reused = run.previous ? run.previous.composed(image, new Set(generated.entries), epoch) : null;
  return { image, base, epoch, sources, apptainer: generated.apptainer, arch, reused };
}

/** What provenance records of the inputs: the command, absolute paths, each repository's revision. */
function sourcesOf(o: Resolved, payload: Payload): Sources {
  const http = payload.source instanceof HttpTree;
  return {
    cvmfsRoot: sourcePath(o.selection.cvmfsRoot),
    commandLine: o.commandLine,
    created: createdTime(),
    specs: o.selection.specs,
    traces: o.selection.traces?.files ?? [],
    repositories: http ? (payload.source as HttpTree).opened() : null,
    mounted: http ? [] : mountedRevisions(o.selection.cvmfsRoot, Object.keys(payload.summary.repositories).sort()),
  };
}

interface Composed {
  payload: Payload;
  baseImage: BaseImage | null;
  /** The base's entries in the image (a lone root for an OCI image without a base), or null. */
  base: Entry[] | null;
  epoch: number;
  sources: Sources;
  /** Apptainer's metadata (a SIF's objects); null for a /cvmfs-only image. */
  apptainer: ApptainerFiles | null;
  arch: string;
  /** --reuse: the files that take the previous image's blocks (null without it). */
  reused: ReuseCounts | null;
}

/** Write the image under its temporary name, checksum it, and move it and its side files into place. */
async function writeAndCommit(run: Run, image: Entry[], c: Composed): Promise<{ image: WrittenImage; sha256: string | null }> {
  const { o, output } = run;
  let totalBytes = 0;
  for (const e of image) if (e.type === 'file') totalBytes += e.size;
  const progress = run.progress.writing(`writing ${path.basename(o.output)}`, totalBytes);
  try {
    output.begin(); // SquashFS began before selecting (a no-op then)
    const written = await writeImage(run, image, c, progress);
    progress.stop();
    // A checksum file beside every image file, for the copy to the site (sha256sum -c), unless
    // --no-checksum: reading the image back is a serial ~0.27 s per 500 MB at the very end.
    let sum: string | null = null;
    if (fs.statSync(output.tmp).isFile()) {
      // The flush to disk (writers leave it to us) runs while the image is read back and hashed.
      const [digest] = await Promise.all([o.checksum ? sha256File(output.tmp) : null, fsyncFile(output.tmp)]);
      if (digest) sum = digest.slice('sha256:'.length);
    }
    // The side files are written before the image is committed, and commit with it (an old
    // checksum never outlives the image it describes; util/atomic.ts).
    if (sum) output.writeSide(checksumPath(o.output), `${sum}  ${path.basename(o.output)}\n`);
    if (o.format === 'dir' && c.base === null) output.writeSide(dirMarkerPath(o.output), DIR_MARKER);
    output.commit();
    return { image: written, sha256: sum };
  } finally {
    progress.stop();
  }
}

function writeImage(run: Run, image: Entry[], c: Composed, progress: WriteProgress): Promise<WrittenImage> {
  const format = run.o.format;
  if (format === 'squashfs') return writeSquashfsImage(run, image, c.epoch, progress);
  if (format === 'sif') return writeSifImage(run, image, c, progress);
  if (isOci(format)) return writeOciImage(run, format, image, c, progress);
  return writeDirImage(run, image, progress);
}

async function writeSquashfsImage(run: Run, image: Entry[], epoch: number, progress: WriteProgress): Promise<SquashfsWritten> {
  const { o } = run;
  const squashfs = run.squashfs!;
  const r = await writeSquashfs(
    image,
    run.output.tmp,
    { ...squashfs, mkfsTime: epoch, exportTable: o.exportTable, dedup: o.dedup, threads: o.threads, onProgress: progress.update, output: run.sqfs ?? undefined },
    run.diag,
  );
  return { format: 'squashfs', ...r, ...squashfs };
}

/** The SquashFS image as the container's partition (already streaming into it), then the container around it. */
async function writeSifImage(run: Run, image: Entry[], c: Composed, progress: WriteProgress): Promise<SifImageWritten> {
  const { format: _, ...squashfs } = await writeSquashfsImage(run, image, c.epoch, progress);
  const meta = c.apptainer!;
  const sif = finishSif(run.sifFd!, run.o.output, {
    objects: [
      { dataType: DataType.deffile, name: '', data: Buffer.from(meta.definition) },
      { dataType: DataType.genericJson, name: 'inspect-metadata.json', data: Buffer.from(meta.inspectMetadata) },
    ],
    partitionSize: squashfs.bytes,
    arch: c.arch,
    time: c.sources.created,
  });
  return { format: 'sif', ...squashfs, sif };
}

async function writeOciImage(run: Run, format: 'oci' | 'docker-archive', image: Entry[], c: Composed, progress: WriteProgress): Promise<OciWritten> {
  const { o } = run;
  const { payload, baseImage } = c;
  const ref = o.tag ?? { name: defaultImageName(o.output), tag: 'latest' };
  // Parts matter only to --layer-per release (a map over every entry is not free).
  const partOf = new Map<Entry, string>();
  if (o.layerPer === 'release') payload.entries.forEach((e, i) => partOf.set(e, payload.partOf[i] ?? ''));
  const groups = layerGroups({ image, base: c.base!, baseAsLayer: !baseImage || baseImage.layers.length === 0, mount: MOUNT, per: o.layerPer, partOf });
  // A directory base has no blobs: its entries are the first group (empty for no base).
  const layers = groups.filter((g) => g.entries.length > 0);
  // The progress total counts every file of the image: those of a base's kept layers are done once
  // their blobs are copied (first), the rest as the new layers are written.
  const kept = contentOf(image);
  for (const l of layers) {
    const inLayer = contentOf(l.entries);
    kept.bytes -= inLayer.bytes;
    kept.files -= inLayer.files;
  }
  const r = await writeOci(
    run.output.tmp,
    {
      format,
      name: ref.name,
      tag: ref.tag,
      baseConfig: baseImage?.config ?? null,
      baseLayers: baseImage?.layers ?? [],
      layers,
      compression: o.compression as 'gzip' | 'zstd' | 'none',
      level: o.level,
      threads: o.threads ?? os.availableParallelism(),
      // The config's and history's time: when the image was made (SOURCE_DATE_EPOCH, or now), as its label says.
      epoch: c.sources.created,
      env: payload.releases.length > 0 ? ['SHRINKWRAP_RELEASE_SETUP=/release_setup.sh', 'BASH_ENV=/release_setup.sh', 'ENV=/release_setup.sh'] : [],
      labels: provenanceLabels(c.sources, payload, baseImage),
      annotations: baseAnnotations(baseImage),
      createdBy: `shrinkwrap ${VERSION} build`,
      onProgress: (bytes, files) => progress.update(kept.bytes + bytes, kept.files + files),
    },
    run.diag,
    // docker-archive: the layout is staged beside the output, on its file system, not in $TMPDIR.
    run.output.extraTemporary('.stage'),
  );
  return { format, ...r, name: `${ref.name}:${ref.tag}` };
}

/** Bytes and number of the files among `entries`. */
function contentOf(entries: readonly Entry[]): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const e of entries) {
    if (e.type !== 'file') continue;
    bytes += e.size;
    files++;
  }
  return { bytes, files };
}

async function writeDirImage(run: Run, image: Entry[], progress: WriteProgress): Promise<DirWritten> {
  const isRoot = process.getuid?.() === 0;
  const r = await writeDir(image, fromText(run.output.tmp), { keepOwnership: isRoot, devices: run.o.devices, keepSetuid: run.o.keepSetuid, onProgress: progress.update }, run.diag);
  return { format: 'dir', entries: r.entries, files: r.files, contentBytes: r.bytes };
}

/** Push the committed layout. A base pulled from the same registry lends its blobs: mount them instead of uploading. */
async function push(request: PushRequest, layout: string, baseImage: BaseImage | null): Promise<PushResult & { to: string }> {
  const mountFrom = baseImage?.kind === 'registry' ? sameRegistryRepo(baseImage.text, request.ref) : [];
  const credentials = credentialsFor(request.ref.registry, request.creds);
  const pushed = await pushLayout(layout, null, request.ref, { tlsVerify: request.tlsVerify, credentials, mountFrom, timeoutMs: request.timeoutMs });
  return { to: request.to, ...pushed };
}

function sameRegistryRepo(baseText: string, to: ImageReference): string[] {
  const from = parseImageReference(baseText);
  return from.registry === to.registry && from.repository !== to.repository ? [from.repository] : [];
}

/** Work in the run's work directory ($TMPDIR): its failures say where, and how to choose another. */
async function inWorkDir<T>(work: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const where = `the work directory is in $TMPDIR (${os.tmpdir()}): set TMPDIR to use another`;
    if (err instanceof ShrinkwrapError) {
      if (err.message.includes(work)) throw new BuildError(`${err.message}; ${where}`);
      throw err;
    }
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
    throw new BuildError(`cannot write in ${work}: ${describeSystemError(err)}; ${where}`);
  }
}

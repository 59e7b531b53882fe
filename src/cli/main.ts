#!/usr/bin/env node
// The shrinkwrap command line: options in, stages called, results out. No logic of its own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import * as os from 'node:os';
import { DEFAULT_MOUNTPOINTS, generatedEntries } from '../compose/generated.js';
import { composeImage, imageEpoch, normaliseOwner, normaliseTimes } from '../compose/image.js';
import { type LayerPer, layerGroups } from '../compose/layers.js';
import type { Entry } from '../model/entry.js';
import { specFilesOf } from '../select/spec/write.js';
import { credentialsFor } from '../registry/auth.js';
import { type ImageReference, parseImageLocation, parseImageReference } from '../registry/reference.js';
import { type PushResult, pushLayout } from '../registry/push.js';
import { sha256, sha256File } from '../util/digest.js';
import { makeWorkDir } from '../util/workdir.js';
import { writeOci } from '../writers/oci/index.js';
import { display, fromBuffer, fromText } from '../model/bytes.js';
import { Diagnostics } from '../model/diagnostics.js';
import { BuildError, EXIT, InputError, ShrinkwrapError, describeSystemError } from '../model/errors.js';
import { type Payload, type SelectOptions, selectPayload, selectPayloadAsync, specsThroughLinks } from '../select/index.js';
import { baseLibraries } from '../select/closure/base-libs.js';
import { type ReleaseOptions, type ResolvedRelease, baseOsTag, parseReleaseArg, readReleasesFile } from '../select/release/index.js';
import { bundledRecipes, parseRecipe } from '../select/release/recipe.js';
import { type TraceEventName, type TraceFormat, buildSpecs, parseTrace, readTraces } from '../select/trace/index.js';
import { recordTrace } from '../select/trace/record.js';
import { MOUNT } from '../select/spec/parse.js';
import { DEFAULT_MAX_LAYER_SIZE_TEXT, parseLayerSize } from '../sources/base/blob.js';
import { type BaseImage, openBase } from '../sources/base/index.js';
import { AtomicOutput, type OutputKind, fsyncFile, interrupting, writeNewFile } from '../util/atomic.js';
import { type CodecName, defaultLevel, levelRange } from '../util/codecs.js';
import { writeDir } from '../writers/dir/index.js';
import { type SquashfsOutput, openSquashfs, startSquashfsPool, writeSquashfs } from '../writers/squashfs/index.js';
import { singleLine } from '../util/json-check.js';
import { readManifestFile, verifySquashfs } from '../sources/squashfs/verify.js';
import { parseBlockSize, parseMtime, parseOwner, parseThreads } from './build-options.js';
import { Out, humanBytes } from './output.js';
import { progressFor, stageProgress } from './progress.js';
import { releaseLines, renderPlanJson, renderPlanText, summaryLines } from './render-plan.js';

/** A resolved release for JSON: paths as text. */
function releaseJson(r: ResolvedRelease): Record<string, unknown> {
  return {
    ...r,
    path: display(r.path),
    bases: r.bases.map((b) => ({ ...b, path: display(b.path) })),
    compilers: r.compilers.map(display),
    lcg: r.lcg.map(display),
    dbrelease: r.dbrelease ? { ...r.dbrelease, path: display(r.dbrelease.path), version: display(r.dbrelease.version) } : null,
    ldLibraryPath: r.ldLibraryPath.map(display),
    envPaths: r.envPaths.map((e) => ({ variable: e.variable, path: display(e.path) })),
  };
}

const VERSION: string = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;

interface TraceFlags {
  traceFormat?: TraceFormat;
  policy: 'pdir' | 'exact';
  filters?: TraceEventName[];
}

interface SelectionFlags extends TraceFlags {
  /** undefined (neither option), false (--no-closure), or the kinds given to --closure. */
  closure?: boolean | string;
  envFile?: string;
  ldLibraryPath?: string;
  cvmfsRoot: string;
  spec?: string[];
  trace?: string[];
  repo?: string;
  quiet?: boolean;
  release?: string[];
  releasesFile?: string[];
  project?: string;
  platform?: string;
  recipe?: string[];
  pack?: string[];
  dropPack?: string[];
  defaultExclusions: boolean;
  dbrelease?: string;
  include?: string[];
  exclude?: string[];
  base?: string;
  tlsVerify: boolean;
  creds?: string;
  registryTimeout: string;
  maxLayerSize: string;
  skipUnreadable?: boolean;
}

interface BuildFlags extends SelectionFlags {
  output: string;
  format?: 'dir' | 'squashfs' | 'oci' | 'docker-archive';
  tag?: string;
  layerPer: LayerPer;
  mountpoint?: string[];
  defaultMountpoints: boolean;
  json?: boolean;
  push?: string;
  force?: boolean;
  compression: 'none' | CodecName;
  level?: string;
  blockSize: string;
  mtime: string;
  owner?: string;
  dedup: boolean;
  exportTable: boolean;
  checksum: boolean;
  progress?: boolean;
  threads?: string;
  devices?: boolean;
  keepSetuid?: boolean;
}

interface PlanFlags extends SelectionFlags {
  json?: boolean;
  explain?: string[];
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

const TRACE_EVENTS = ['open', 'opendir', 'lookup', 'statfs', 'getattr', 'listxattr', 'getxattr', 'readlink'];

/** How traces become spec lines: the same choices as cvmfs's spec_builder.py. */
function addTraceOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--trace-format <format>', 'trace format (default: detected)').choices(['cvmfs', 'strace', 'parrot', 'paths']))
    .addOption(new Option('--policy <policy>', 'pdir: an opened file brings its whole directory (flat); exact: only what was touched').choices(['pdir', 'exact']).default('pdir'))
    .addOption(new Option('--filters <event...>', 'leave out these trace events').choices(TRACE_EVENTS));
}

function addSelectionOptions(cmd: Command): Command {
  return addTraceOptions(cmd)
    .option('--cvmfs-root <dir>', 'the source: a tree laid out like /cvmfs, one directory per repository', '/cvmfs')
    .addOption(new Option('--spec <file>', 'cvmfs_shrinkwrap spec file (repeatable; specs union)').argParser(collect))
    .addOption(new Option('--trace <file>', 'access trace: CVMFS tracer log, strace -f output, Parrot name list or path list (repeatable; traces union)').argParser(collect))
    .option('--repo <fqrn>', 'repository of relative spec lines and tracer logs (default: from the file name <fqrn>.spec, <fqrn>.trace.log)')
    .option('--closure <kinds>', 'closures to apply: symlink (the default), elf (shared libraries the selected ELF objects need), or symlink,elf')
    .option('--no-closure', 'do not follow selected symlinks to their targets')
    .option('--env-file <file>', "a recorded environment (`env` output after the release's setup): its LD_LIBRARY_PATH guides the ELF closure")
    .option('--ld-library-path <dirs>', 'LD_LIBRARY_PATH for the ELF closure (colon-separated /cvmfs directories)')
    .addOption(new Option('--release <[project,]version>', 'a release to put in the image, e.g. 21.2.75 or AnalysisBase,21.2.75 (repeatable)').argParser(collect))
    .addOption(new Option('--releases-file <file>', 'releases, one [PROJECT,]VERSION per line (# comments)').argParser(collect))
    .option('--project <name>', 'project of releases given without one (AnalysisBase, Athena, ...)')
    .option('--platform <platform>', 'release platform, e.g. x86_64-centos7-gcc8-opt (needed when a release has several), or the base image platform OS/ARCH[/VARIANT] to take from an index (default: this machine\'s); repeat for both')
    .addOption(new Option('--recipe <file>', 'a release recipe besides the bundled specs/recipes/*.recipe (repeatable)').argParser(collect))
    .addOption(new Option('--pack <name|file>', 'a rule pack to apply besides the recipe\'s (specs/packs/<name>.pack or a file; repeatable)').argParser(collect))
    .addOption(new Option('--drop-pack <name>', "leave out one of the recipe's rule packs (repeatable)").argParser(collect))
    .option('--no-default-exclusions', 'keep what the default-exclusions pack leaves out (other platforms, docs, old DBReleases, images)')
    .option('--dbrelease <version>', "DBRelease to include: a version, or none (default: what DBRelease/current points to, for releases whose recipe takes one)")
    .addOption(new Option('--include <glob>', 'also select what this glob matches under /cvmfs (fast-glob syntax, e.g. atlas.cern.ch/repo/sw/database/GroupData/dev/SUSYTools/**; repeatable)').argParser(collect))
    .addOption(new Option('--exclude <glob>', 'leave out what this glob matches: a path under /cvmfs, or a name at any depth like *.pdf (repeatable)').argParser(collect))
    .option('--base <image>', 'the image to build on: a root filesystem DIR or tarball (.tar, .tar.gz, .tar.zst), oci:DIR[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO:TAG; its ld.so.conf tells the ELF closure what it provides')
    .option('--tls-verify <bool>', 'docker:// base: verify the registry\'s TLS certificate (false also allows plain HTTP)', (v) => parseBool(v, '--tls-verify'), true)
    .option('--creds <user:password>', 'docker:// base: registry credentials (default: $SHRINKWRAP_REGISTRY_AUTH, then containers/auth.json, ~/.docker/config.json)')
    .option('--registry-timeout <seconds>', REGISTRY_TIMEOUT_HELP, '60')
    .option('--max-layer-size <size>', 'the most one compressed base layer or tarball may decompress to (K, M, G, T suffixes)', DEFAULT_MAX_LAYER_SIZE_TEXT)
    .option('--skip-unreadable', 'leave out files and directories this user may not read (each a warning, listed in --json) instead of failing')
    .option('-q, --quiet', 'print errors only');
}

/** --platform is two things, told apart by their shape: OS/ARCH for the base image, the rest for releases. */
function releasePlatform(flags: SelectionFlags): string | null {
  return flags.platform !== undefined && !flags.platform.includes('/') ? flags.platform : null;
}

function imagePlatform(flags: SelectionFlags): string | null {
  return flags.platform !== undefined && flags.platform.includes('/') ? flags.platform : null;
}

const REGISTRY_TIMEOUT_HELP = 'give up on a registry request that makes no progress for this long, or that takes longer in all (plus 1 s per 64 KiB of a blob)';

function registryTimeout(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InputError(`--registry-timeout ${text}: expected whole seconds, at least 1`);
  return Number(text) * 1000;
}

function parseBool(v: string, opt: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InputError(`${opt} ${v}: expected true or false`);
}

/** --base in any of its forms, flattened; null without --base. */
async function baseOf(flags: SelectionFlags, diag: Diagnostics): Promise<BaseImage | null> {
  if (flags.base === undefined) return null;
  const epoch = Number(process.env['SOURCE_DATE_EPOCH'] ?? 0) || 0;
  const reading = stageProgress(flags as { quiet?: boolean; progress?: boolean }, `reading base ${flags.base}`, 'layers');
  try {
    return await openBase(flags.base, { platform: imagePlatform(flags), epoch, registry: { tlsVerify: flags.tlsVerify, creds: flags.creds, timeoutMs: registryTimeout(flags.registryTimeout) }, onLayer: reading.tick, maxLayerSize: parseLayerSize(flags.maxLayerSize) }, diag);
  } finally {
    reading.done();
  }
}

function diagnostics(quiet: boolean | undefined): Diagnostics {
  // One line each: a name from the input may hold a newline or an escape sequence.
  return new Diagnostics(quiet ? null : (w) => process.stderr.write(`shrinkwrap: warning: ${singleLine(w.message)}\n`));
}

function finishWarnings(diag: Diagnostics, quiet: boolean | undefined): void {
  if (quiet) return;
  for (const line of diag.suppressedSummary()) process.stderr.write(`shrinkwrap: ${line}\n`);
}

/** --closure symlink,elf / --no-closure → which closures run. */
function closures(flags: SelectionFlags): { symlink: boolean; elf: boolean; explicit: boolean } {
  if (flags.closure === false) return { symlink: false, elf: false, explicit: true };
  if (flags.closure === undefined || flags.closure === true) return { symlink: true, elf: false, explicit: false };
  const kinds = flags.closure.split(',').map((k) => k.trim());
  for (const k of kinds) if (k !== 'symlink' && k !== 'elf') throw new InputError(`--closure ${flags.closure}: expected symlink, elf or symlink,elf`);
  // ELF libraries are reached through links: the ELF closure implies the symlink closure.
  return { symlink: true, elf: kinds.includes('elf'), explicit: true };
}

/** LD_LIBRARY_PATH for the ELF closure: --ld-library-path, else the one in --env-file. */
function ldLibraryPath(flags: SelectionFlags): string[] {
  let value = flags.ldLibraryPath;
  if (value === undefined && flags.envFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(flags.envFile, 'latin1');
    } catch (err) {
      throw new InputError(`--env-file ${flags.envFile}: ${describeSystemError(err)}`);
    }
    const line = text.split('\n').find((l) => l.startsWith('LD_LIBRARY_PATH=') || l.startsWith('export LD_LIBRARY_PATH='));
    if (!line) throw new InputError(`--env-file ${flags.envFile}: no LD_LIBRARY_PATH= line (record it with: env > FILE, after the release's setup)`);
    value = line.slice(line.indexOf('=') + 1).replace(/^["']|["']\r?$/g, '').replace(/\r$/, '');
  }
  return (value ?? '').split(':').filter((d) => d.startsWith('/'));
}

/** --release, --releases-file and friends; null when no release is asked for. */
function releasesOf(flags: SelectionFlags, base: BaseImage | null): ReleaseOptions | null {
  const requests = (flags.release ?? []).map((r) => parseReleaseArg(r, `--release ${r}`));
  for (const f of flags.releasesFile ?? []) requests.push(...readReleasesFile(f));
  if (requests.length === 0) {
    for (const [opt, v] of [['--project', flags.project], ['--platform', releasePlatform(flags) ?? undefined], ['--dbrelease', flags.dbrelease], ['--pack', flags.pack], ['--drop-pack', flags.dropPack]] as const) {
      if (v !== undefined) throw new InputError(`${opt} needs --release or --releases-file`);
    }
    return null;
  }
  return {
    requests,
    project: flags.project ?? null,
    platform: releasePlatform(flags),
    recipes: [...bundledRecipes(), ...(flags.recipe ?? []).map((f) => parseRecipe(f))],
    packs: flags.pack ?? [],
    dropPacks: [...(flags.dropPack ?? []), ...(flags.defaultExclusions ? [] : ['default-exclusions'])],
    dbrelease: flags.dbrelease ?? null,
    baseOs: base ? baseOsTag(base.view) : null,
  };
}

function selectionOf(flags: SelectionFlags, baseImage: BaseImage | null): SelectOptions {
  const c = closures(flags);
  const base = baseImage ? baseLibraries(baseImage.view) : null;
  return {
    cvmfsRoot: flags.cvmfsRoot,
    specs: flags.spec ?? [],
    traces: { files: flags.trace ?? [], format: flags.traceFormat, policy: flags.policy, filters: flags.filters ?? [] },
    repo: flags.repo ?? null,
    closure: c.symlink,
    // undefined: the default (on with releases); an explicit --closure decides.
    elf: c.elf ? { ldLibraryPath: ldLibraryPath(flags) } : c.explicit ? null : undefined,
    releases: releasesOf(flags, baseImage),
    include: flags.include ?? [],
    exclude: flags.exclude ?? [],
    base,
    skipUnreadable: flags.skipUnreadable ?? false,
  };
}

async function runPlan(flags: PlanFlags): Promise<void> {
  const diag = diagnostics(flags.quiet);
  const payload = selectPayload(selectionOf(flags, await baseOf(flags, diag)), diag);
  const out = new Out();
  if (flags.explain) {
    for (const p of flags.explain) for (const line of payload.explain(fromText(path.posix.normalize(p)))) await out.write(line + '\n');
    await out.flush();
  } else if (flags.json) {
    const extra = payload.releases.length > 0 ? { releases: payload.releases.map(releaseJson), parts: payload.parts, ldLibraryPath: payload.searchPath.map(display) } : {};
    await renderPlanJson(payload.entries, { ...payload.summary, closure: payload.closure, elf: payload.elf, ...extra }, diag.warnings, out);
  } else {
    await renderPlanText(payload.entries, payload.summary, diag.warnings, out, payload.releases.length > 0 ? payload : null);
  }
  finishWarnings(diag, flags.quiet);
}

/** The compression level: given and in range, or the codec's default. */
function compressionLevel(flags: BuildFlags): number {
  if (flags.compression === 'none') {
    if (flags.level !== undefined) throw new InputError('--level makes no sense with --compression none');
    return 0;
  }
  if (flags.level === undefined) return defaultLevel(flags.compression);
  const [lo, hi] = levelRange(flags.compression);
  const n = Number(flags.level);
  if (!/^\d+$/.test(flags.level) || n < lo || n > hi) throw new InputError(`--level ${flags.level}: ${flags.compression} takes ${lo} to ${hi}`);
  return n;
}

async function runBuild(flags: BuildFlags): Promise<void> {
  const diag = diagnostics(flags.quiet);
  const format = flags.format ?? 'squashfs';
  const oci = format === 'oci' || format === 'docker-archive';
  // Check every option before the long part, and refuse an existing output before it too.
  if (oci && (flags.compression === 'xz' || flags.compression === 'lz4')) {
    throw new InputError(`--compression ${flags.compression}: OCI layers are gzip (the default), zstd or none`);
  }
  const squashfs =
    format === 'squashfs'
      ? { compression: flags.compression, level: compressionLevel(flags), blockSize: parseBlockSize(flags.blockSize) }
      : null;
  const layerLevel = oci ? compressionLevel(flags) : 0;
  const threads = flags.threads === undefined ? undefined : parseThreads(flags.threads);
  const mtime = parseMtime(flags.mtime);
  const owner = flags.owner === undefined ? null : parseOwner(flags.owner);
  if (flags.devices && format !== 'dir') throw new InputError('--devices needs --format dir (images record device nodes as data; only a directory makes real ones)');
  if (flags.keepSetuid && format !== 'dir') throw new InputError('--keep-setuid needs --format dir (images keep setuid bits and capabilities as data; a runtime mounts them nosuid)');
  if (flags.push !== undefined && format !== 'oci') throw new InputError(`--push needs --format oci (the pushed image is the OCI layout written)`);
  const pushRef = flags.push === undefined ? null : parseImageLocation(flags.push, '--push', ['registry']).reference;
  const ref = oci ? parseTag(flags.tag ?? defaultImageName(flags.output)) : null;
  const mountpoints = [...(flags.defaultMountpoints ? DEFAULT_MOUNTPOINTS : []), ...(flags.mountpoint ?? []).map((m) => checkMountpoint(m))];
  refuseOutputInSource(flags);
  const output = AtomicOutput.prepare(flags.output, flags.force ?? false, outputKind(format, flags.output));
  // The compression workers boot while the base image is read; closed below if never handed over.
  const pool = squashfs ? startSquashfsPool({ ...squashfs, threads }) : null;
  let sqfs: SquashfsOutput | null = null;
  try {
    const baseImage = await baseOf(flags, diag);
    const selection = selectionOf(flags, baseImage);
    const selecting = stageProgress(flags, 'selecting');
    let payload: Payload;
    if (squashfs) {
      // The image's data area starts while the selection walks: the walk's files are offered as
      // it finds them, and their content is read and compressed meanwhile.
      output.createFile();
      const started = openSquashfs(output.tmp, { ...squashfs, dedup: flags.dedup, threads, pool: pool! });
      sqfs = started;
      payload = await selectPayloadAsync({ ...selection, onProgress: selecting.tick, onWalkFile: (e) => started.feed.offerWalked(e) }, diag, () => started.feed.check());
    } else {
      payload = selectPayload({ ...selection, onProgress: selecting.tick }, diag);
    }
    selecting.done();
    normaliseOwner(payload.entries, owner);
    const epoch = imageEpoch(payload.entries);
    const rootOnly: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: epoch, size: 0, reason: 'image root' }];
    // OCI images are root file systems: without a base, the payload still sits at /cvmfs.
    const base = baseImage ? baseImage.entries : oci ? rootOnly : null;
    if (oci && flags.compression === 'zstd') {
      diag.warn('zstd-layers', 'zstd layers: umoci 0.4, oci-image-tool, skopeo docker-archive and Docker < 23 reject them; use gzip for those');
    }
    if (base) diag.warn('cvmfs-bind', 'the image carries its own /cvmfs: a site that binds the host /cvmfs into containers (apptainer.conf "bind path", a Shifter siteFs entry, podman-hpc --cvmfs) hides it; run without that bind (docs/site-install.md)');
    const work = makeWorkDir('build');
    const extra = await inWorkDir(work, () => generatedFor(flags, payload, baseImage, base !== null, mountpoints, epoch, work, diag));
    const image = composeImage({ base, payload: payload.entries, mount: MOUNT, epoch, extra }, diag);
    normaliseTimes(image, mtime, epoch);
    let totalBytes = 0;
    for (const e of image) if (e.type === 'file') totalBytes += e.size;
    const progress = progressFor(flags, totalBytes, `writing ${path.basename(flags.output)}`);
    const report: Record<string, unknown> = { output: flags.output, format };
    try {
      output.begin(); // SquashFS began before selecting (a no-op then)
      let written: string;
      if (squashfs) {
        const r = await writeSquashfs(
          image,
          output.tmp,
          { ...squashfs, mkfsTime: epoch, exportTable: flags.exportTable, dedup: flags.dedup, threads, onProgress: progress.update, output: sqfs ?? undefined },
          diag,
        );
        const comp = squashfs.compression === 'none' ? 'uncompressed' : `${squashfs.compression} level ${squashfs.level}`;
        written =
          `${humanBytes(r.bytes)} (squashfs, ${comp}, ${humanBytes(squashfs.blockSize)} blocks): ${r.inodes} inodes, ` +
          `${r.files} files, ${humanBytes(r.bytesIn)} of content` +
          (r.dedupFiles > 0 ? `; ${r.dedupFiles} duplicate files, ${humanBytes(r.dedupBytes)} saved` : '') +
          (r.sparseBytes > 0 ? `; ${humanBytes(r.sparseBytes)} of zero blocks not stored` : '');
        Object.assign(report, { bytes: r.bytes, inodes: r.inodes, files: r.files, contentBytes: r.bytesIn, dedupFiles: r.dedupFiles, dedupBytes: r.dedupBytes });
      } else if (oci) {
        // Parts matter only to --layer-per release (a map over every entry is not free).
        const partOf = new Map<Entry, string>();
        if (flags.layerPer === 'release') payload.entries.forEach((e, i) => partOf.set(e, payload.partOf[i] ?? ''));
        const groups = layerGroups({ image, base: base!, baseAsLayer: !baseImage || baseImage.layers.length === 0, mount: MOUNT, per: flags.layerPer, partOf });
        // A directory base has no blobs: its entries are the first group (empty for no base).
        const layers = groups.filter((g) => g.entries.length > 0);
        const r = await writeOci(
          output.tmp,
          {
            format,
            name: ref!.name,
            tag: ref!.tag,
            baseConfig: baseImage?.config ?? null,
            baseLayers: baseImage?.layers ?? [],
            layers,
            compression: flags.compression as 'gzip' | 'zstd' | 'none',
            level: layerLevel,
            threads: threads ?? os.availableParallelism(),
            epoch,
            env: payload.releases.length > 0 ? ['SHRINKWRAP_RELEASE_SETUP=/release_setup.sh', 'BASH_ENV=/release_setup.sh', 'ENV=/release_setup.sh'] : [],
            labels: provenanceLabels(flags, payload, baseImage, epoch),
            annotations: baseAnnotations(baseImage),
            createdBy: `shrinkwrap ${VERSION} build`,
            onProgress: (b) => progress.update(b, 0),
          },
          diag,
          // docker-archive: the layout is staged beside the output, on its file system, not in $TMPDIR.
          output.extraTemporary('.stage'),
        );
        const kept = r.layers.filter((l) => l.kept).length;
        written = `${humanBytes(r.bytes)} (${format}, ${ref!.name}:${ref!.tag}, manifest ${r.manifestDigest.slice(0, 19)}…): ${kept} base layers kept, ${r.layers.length - kept} new (${r.layers
          .filter((l) => !l.kept)
          .map((l) => `${l.label} ${humanBytes(l.size)}`)
          .join(', ')})`;
        Object.assign(report, { bytes: r.bytes, manifestDigest: r.manifestDigest, configDigest: r.configDigest, layers: r.layers, name: `${ref!.name}:${ref!.tag}` });
      } else {
        const isRoot = process.getuid?.() === 0;
        const r = await writeDir(image, fromText(output.tmp), { keepOwnership: isRoot, devices: flags.devices ?? false, keepSetuid: flags.keepSetuid ?? false, onProgress: progress.update }, diag);
        written = `dir: ${r.entries} entries, ${r.files} files, ${humanBytes(r.bytes)}`;
        Object.assign(report, { entries: r.entries, files: r.files, contentBytes: r.bytes });
      }
      progress.stop();
      // A checksum file beside every image file, for the copy to the site (sha256sum -c), unless
      // --no-checksum: reading the image back is a serial ~0.27 s per 500 MB at the very end.
      let sum: string | null = null;
      if (fs.statSync(output.tmp).isFile()) {
        // The flush to disk (writers leave it to us) runs while the image is read back and hashed.
        const [digest] = await Promise.all([flags.checksum ? sha256File(output.tmp) : null, fsyncFile(output.tmp)]);
        if (digest) {
          sum = digest.slice('sha256:'.length);
          report['sha256'] = sum;
        }
      }
      // The side files are written before the image is committed, and commit with it (an old
      // checksum never outlives the image it describes; util/atomic.ts).
      if (sum) output.writeSide(checksumPath(flags.output), `${sum}  ${path.basename(flags.output)}\n`);
      if (format === 'dir' && base === null) output.writeSide(dirMarkerPath(flags.output), DIR_MARKER);
      output.commit();
      if (pushRef) {
        // A base pulled from the same registry lends its blobs: mount them instead of uploading.
        const mountFrom = baseImage?.kind === 'registry' ? sameRegistryRepo(baseImage.text, pushRef) : [];
        const pushed = await pushLayout(flags.output, null, pushRef, { tlsVerify: flags.tlsVerify, credentials: credentialsFor(pushRef.registry, flags.creds), mountFrom, timeoutMs: registryTimeout(flags.registryTimeout) });
        report['push'] = { to: flags.push, ...pushed };
        if (!flags.quiet && !flags.json) process.stderr.write(`shrinkwrap: ${pushSummary(flags.push!, pushed)}\n`);
      }
      if (!flags.quiet && !flags.json) {
        for (const line of summaryLines(payload.summary, diag.warnings.length)) process.stderr.write(`shrinkwrap: ${line}\n`);
        if (payload.releases.length > 0) for (const line of releaseLines(payload)) process.stderr.write(`shrinkwrap: ${line}\n`);
        process.stderr.write(`shrinkwrap: wrote ${flags.output}: ${written}\n`);
        if (sum) process.stderr.write(`shrinkwrap: wrote ${flags.output}.sha256: ${sum}\n`);
      }
      if (flags.json) {
        const repositories: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(payload.summary.repositories)) repositories[display(k)] = v;
        const doc = {
          ...report,
          base: baseImage ? { name: baseImage.text, kind: baseImage.kind, digest: baseImage.digest } : null,
          selection: { entries: payload.summary.entries, bytes: payload.summary.bytes, repositories, parts: payload.parts, releases: payload.releases.map((r) => `${r.project},${r.version}`) },
          warnings: diag.warnings.map((w) => ({ kind: w.kind, message: w.message })),
        };
        process.stdout.write(JSON.stringify(doc, null, 1) + '\n');
      }
    } finally {
      progress.stop();
    }
    finishWarnings(diag, flags.quiet || flags.json);
  } finally {
    // writeSquashfs closed them unless it never ran; the temporary output goes after its descriptor.
    if (sqfs) await sqfs.close();
    else if (pool) await (await pool.catch(() => null))?.close();
    output.abort(); // no-op after commit
  }
}

function sameRegistryRepo(baseText: string, to: ImageReference): string[] {
  const from = parseImageReference(baseText);
  return from.registry === to.registry && from.repository !== to.repository ? [from.repository] : [];
}

function pushSummary(to: string, r: PushResult): string {
  return `pushed ${to} (${r.manifestDigest}): ${r.uploaded} blobs uploaded (${humanBytes(r.bytesUploaded)}), ${r.skipped} already there, ${r.mounted} mounted from another repository`;
}

interface PushFlags {
  tlsVerify: boolean;
  creds?: string;
  mountFrom?: string[];
  chunkSize?: string;
  registryTimeout: string;
  quiet?: boolean;
}

/** `shrinkwrap push oci:DIR[:TAG] docker://HOST/REPO:TAG` */
async function runPush(source: string, dest: string, flags: PushFlags): Promise<void> {
  const { dir, tag } = parseImageLocation(source, 'push', ['oci']);
  if (!fs.existsSync(path.join(dir, 'index.json'))) throw new InputError(`push ${source}: ${dir} is not an OCI image layout (no index.json)`);
  const to = parseImageLocation(dest, 'push', ['registry']).reference;
  let chunkSize = 0;
  if (flags.chunkSize !== undefined) {
    chunkSize = flags.chunkSize === '0' ? 0 : parseBlockSizeLike(flags.chunkSize);
  }
  const timeoutMs = registryTimeout(flags.registryTimeout);
  const r = await pushLayout(dir, tag, to, { tlsVerify: flags.tlsVerify, credentials: credentialsFor(to.registry, flags.creds), mountFrom: flags.mountFrom ?? [], chunkSize, timeoutMs });
  if (!flags.quiet) process.stderr.write(`shrinkwrap: ${pushSummary(dest, r)}\n`);
}

/** A byte count with an optional K/M/G suffix. */
function parseBlockSizeLike(text: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(text);
  const n = m ? Number(m[1]) * ({ '': 1, k: 1024, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[m[2]!.toLowerCase()]! : NaN;
  if (!m || n < 1) throw new InputError(`--chunk-size ${text}: expected bytes, e.g. 5M`);
  return n;
}

/** The output's file name as an image name registries accept: `AB_21.2.75.tar` → `ab_21.2.75`. */
function defaultImageName(output: string): string {
  const name = path.basename(output).replace(/\.(tar|oci)$/, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name === '' ? 'image' : name.replace(/[._-]{2,}/g, '-');
}

/** --tag NAME[:TAG] (default tag latest); names as registries take them. */
function parseTag(text: string): { name: string; tag: string } {
  const m = /^([a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+(?=\/))?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?$/.exec(text);
  if (!m) throw new InputError(`--tag ${text}: expected NAME[:TAG], e.g. atlas/analysisbase:21.2.75`);
  return { name: m[1]!, tag: m[2] ?? 'latest' };
}

function checkMountpoint(m: string): string {
  const p = path.posix.normalize(m);
  if (!p.startsWith('/') || p === '/' || p.split('/').includes('..') || p === MOUNT || p.startsWith(MOUNT + '/')) {
    throw new InputError(`--mountpoint ${m}: expected an absolute path outside /cvmfs, e.g. /lustre`);
  }
  return fromText(p.replace(/\/+$/, ''));
}

/** `<output>.sha256` (sha256sum's format): a side file of every image file. */
function checksumPath(output: string): string {
  return `${path.resolve(output)}.sha256`;
}

/**
 * A directory image without a base is an exact mirror of the selection, with nothing of ours in
 * it; this hidden file beside it says that shrinkwrap wrote it, so that --force may replace it.
 */
function dirMarkerPath(output: string): string {
  const abs = path.resolve(output);
  return path.join(path.dirname(abs), `.${path.basename(abs)}.shrinkwrap`);
}

const DIR_MARKER = 'a directory image written by shrinkwrap: --force may replace it\n';

/** What each format writes, and what --force may replace (an earlier output of the same kind only). */
function outputKind(format: NonNullable<BuildFlags['format']>, output: string): OutputKind {
  const isFile = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
  if (format === 'squashfs' || format === 'docker-archive') {
    return { type: 'file', what: `a ${format} image`, sides: [{ path: checksumPath(output), tag: '.sha256', stale: 'refuse' }] };
  }
  if (format === 'oci') {
    return { type: 'dir', what: 'an OCI image layout', isEarlierOutput: (d) => isFile(path.join(d, 'oci-layout')) && isFile(path.join(d, 'index.json')) };
  }
  const marker = dirMarkerPath(output);
  return {
    type: 'dir',
    what: 'a directory image',
    // With a base, the image holds /.shrinkwrap/; without, the marker beside it (made by the same user).
    isEarlierOutput: (d) => {
      if (fs.lstatSync(path.join(d, '.shrinkwrap'), { throwIfNoEntry: false })?.isDirectory()) return true;
      const m = fs.lstatSync(marker, { throwIfNoEntry: false });
      return m !== undefined && m.isFile() && m.uid === fs.lstatSync(d).uid;
    },
    sides: [{ path: marker, tag: '.image', stale: 'replace' }],
  };
}

/**
 * An output inside a source would be selected into itself (its own temporary file in the image),
 * and a source inside a directory output could be replaced by --force: both refused, comparing
 * real paths (links and `..` resolved).
 */
function refuseOutputInSource(flags: BuildFlags): void {
  const abs = path.resolve(flags.output);
  let out: string;
  try {
    out = path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return; // AtomicOutput.prepare says what is wrong with the directory
  }
  const sources: Array<[string, string]> = [[flags.cvmfsRoot, '--cvmfs-root']];
  if (flags.base !== undefined && !/^(oci|docker-archive|docker):/.test(flags.base)) sources.push([flags.base, '--base']);
  for (const [dir, option] of sources) {
    let real: string;
    try {
      real = fs.realpathSync(dir);
      if (!fs.statSync(real).isDirectory()) continue;
    } catch {
      continue; // reading the source reports it
    }
    const within = (inner: string, outer: string) => outer === '/' || inner === outer || inner.startsWith(outer + '/');
    if (within(out, real)) throw new InputError(`output ${flags.output} is inside ${option} ${dir}: the image would contain itself; write it elsewhere`);
    if (within(real, out)) throw new InputError(`output ${flags.output} contains ${option} ${dir}: write the image elsewhere`);
  }
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

function provenance(flags: BuildFlags, payload: Payload, baseImage: BaseImage | null, epoch: number): Record<string, unknown> {
  const digestOf = (f: string) => sha256(fs.readFileSync(f));
  return {
    tool: { name: 'shrinkwrap', version: VERSION },
    created: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'),
    base: baseImage ? { name: baseImage.text, kind: baseImage.kind, digest: baseImage.digest } : null,
    source: { cvmfsRoot: flags.cvmfsRoot },
    releases: payload.releases.map((r) => ({ project: r.project, version: r.version, platform: r.platform, path: display(r.path) })),
    specs: (flags.spec ?? []).map((f) => ({ file: path.basename(f), digest: digestOf(f) })),
    traces: (flags.trace ?? []).map((f) => ({ file: path.basename(f), digest: digestOf(f) })),
    selection: { entries: payload.summary.entries, bytes: payload.summary.bytes, repositories: Object.keys(payload.summary.repositories).map(display).sort() },
  };
}

function provenanceLabels(flags: BuildFlags, payload: Payload, baseImage: BaseImage | null, epoch: number): Record<string, string> {
  const labels: Record<string, string> = {
    'org.opencontainers.image.created': new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'),
    'io.shrinkwrap.version': VERSION,
    'io.shrinkwrap.source': flags.cvmfsRoot,
    'io.shrinkwrap.repositories': Object.keys(payload.summary.repositories).map(display).sort().join(','),
  };
  if (payload.releases.length > 0) labels['io.shrinkwrap.releases'] = payload.releases.map((r) => `${r.project},${r.version}`).join(' ');
  if (baseImage) {
    labels['org.opencontainers.image.base.name'] = baseImage.text;
    // A manifest digest where the base has one; a docker-archive has only its image ID (config digest).
    if (baseImage.digest) labels[baseImage.kind === 'docker-archive' ? 'io.shrinkwrap.base.image-id' : baseImage.kind === 'tarball' ? 'io.shrinkwrap.base.sha256' : 'org.opencontainers.image.base.digest'] = baseImage.digest;
  }
  return labels;
}

function baseAnnotations(baseImage: BaseImage | null): Record<string, string> {
  if (!baseImage) return {};
  const out: Record<string, string> = { 'org.opencontainers.image.base.name': baseImage.text };
  if (baseImage.digest && (baseImage.kind === 'oci' || baseImage.kind === 'registry')) out['org.opencontainers.image.base.digest'] = baseImage.digest;
  return out;
}

/** The generated files: setup script, mount points, /cvmfs/<fqrn>, /.shrinkwrap/. */
async function generatedFor(
  flags: BuildFlags,
  payload: Payload,
  baseImage: BaseImage | null,
  rootfs: boolean,
  mountpoints: string[],
  epoch: number,
  work: string,
  diag: Diagnostics,
): Promise<Entry[]> {
  // A /cvmfs-only image (no base) stays an exact mirror of the selection: nothing is added to it.
  if (!rootfs) return [];
  const planFile = path.join(work, 'plan.json');
  const plan = new Out(fs.createWriteStream(planFile), planFile);
  await renderPlanJson(payload.entries, { ...payload.summary, closure: payload.closure, elf: payload.elf }, diag.warnings, plan);
  await plan.end();
  const files: Array<{ name: string; content?: string; hostFile?: string }> = [
    { name: 'plan.json', hostFile: planFile },
    { name: 'provenance.json', content: JSON.stringify(provenance(flags, payload, baseImage, epoch), null, 1) + '\n' },
  ];
  for (const [repo, text] of specFilesOf(payload.rules)) files.push({ name: `specs/${repo}.spec`, content: text });
  let repositories: string[] = [];
  try {
    repositories = fs
      .readdirSync(flags.cvmfsRoot, { withFileTypes: true, encoding: 'latin1' })
      .filter((d) => d.isDirectory() && d.name.includes('.'))
      .map((d) => d.name)
      .sort();
  } catch {
    /* selectPayload has checked the source already */
  }
  return generatedEntries(
    {
      releases: payload.releases.map((r) => ({ name: `${r.project},${r.version}`, setup: display(r.setupScript), compilers: r.compilers.map(display) })),
      repositories,
      mountpoints: rootfs ? mountpoints : [],
      files,
      epoch,
      mount: rootfs ? MOUNT : '',
    },
    VERSION,
    work,
  );
}

interface SpecFlags extends TraceFlags {
  fromTrace?: string[];
  repo?: string;
  output?: string;
  force?: boolean;
  quiet?: boolean;
}

/** A spec file's bytes: its lines, newline-terminated (no blank lines, as upstream wants). */
function specBytes(lines: string[]): Buffer {
  return Buffer.from(lines.join('\n') + '\n', 'latin1');
}

/** One `<fqrn>.spec` per repository in `dir` (the name carries the repository, as upstream's tools expect). */
function writeSpecFiles(dir: string, specs: Map<string, string[]>): void {
  for (const [repo, lines] of specs) fs.writeFileSync(Buffer.from(`${dir}/${Buffer.from(repo, 'latin1').toString('utf8')}.spec`), specBytes(lines));
}

/** Is `dir` a directory of `<fqrn>.spec` files (what `spec -o DIR/` writes), which --force may replace? */
function onlySpecFiles(dir: string): boolean {
  return fs.readdirSync(dir, { withFileTypes: true }).every((d) => d.isFile() && d.name.endsWith('.spec'));
}

/** `spec --from-trace`: what spec_builder.py would write, one spec per repository. */
async function runSpec(flags: SpecFlags): Promise<void> {
  const diag = diagnostics(flags.quiet);
  const files = flags.fromTrace ?? [];
  if (files.length === 0) throw new InputError('give at least one --from-trace FILE');
  const repo = flags.repo === undefined ? null : fromText(flags.repo);
  const { events } = readTraces(files, { format: flags.traceFormat, repo, filters: flags.filters ?? [] }, diag);
  const specs = buildSpecs(events, { policy: flags.policy, filters: flags.filters ?? [] });
  if (specs.size === 0) throw new InputError(`${files.join(', ')}: no accesses under /cvmfs to make a spec from`);
  const repos = [...specs.keys()].sort();
  if (flags.output === undefined) {
    if (specs.size > 1) throw new InputError(`the traces touch ${specs.size} repositories (${repos.map(display).join(', ')}): give -o DIR for one spec per repository`);
    process.stdout.write(specBytes(specs.get(repos[0]!)!));
  } else {
    const oneFile = specs.size === 1 && !flags.output.endsWith('/');
    const out = AtomicOutput.prepare(flags.output, flags.force ?? false, oneFile ? { type: 'file', what: 'a spec' } : { type: 'dir', what: 'a directory of specs', isEarlierOutput: onlySpecFiles });
    out.begin();
    try {
      if (oneFile) {
        writeNewFile(out.tmp, specBytes(specs.get(repos[0]!)!));
      } else {
        fs.mkdirSync(out.tmp);
        writeSpecFiles(out.tmp, specs);
      }
      out.commit();
    } finally {
      out.abort();
    }
  }
  if (!flags.quiet) {
    const per = repos.map((r) => `${display(r)} ${specs.get(r)!.length} lines`).join(', ');
    process.stderr.write(`shrinkwrap: ${flags.output ?? 'stdout'}: ${per} (policy ${flags.policy}, ${events.length} events, ${diag.warnings.filter((w) => w.kind === 'trace-failed').length} failed accesses left out)\n`);
  }
  finishWarnings(diag, flags.quiet);
}

interface RecordFlags extends TraceFlags {
  output: string;
  cvmfsRoot: string;
  force?: boolean;
  quiet?: boolean;
}

/** `trace -- CMD`: run a workload under strace, keep the trace and the specs of what it touched. */
async function runRecord(argv: string[], flags: RecordFlags): Promise<number> {
  const diag = diagnostics(flags.quiet);
  const out = AtomicOutput.prepare(flags.output, flags.force ?? false, {
    type: 'dir',
    what: 'a trace directory',
    isEarlierOutput: (d) => fs.lstatSync(path.join(d, 'trace.strace'), { throwIfNoEntry: false })?.isFile() ?? false,
  });
  out.begin();
  let status: number;
  try {
    fs.mkdirSync(out.tmp);
    const traceFile = path.join(out.tmp, 'trace.strace');
    status = recordTrace(argv, traceFile).status;
    // Messages name the trace where it will be, not where it is being written.
    const t = parseTrace(fromBuffer(fs.readFileSync(traceFile)), `${flags.output}/trace.strace`, { format: 'strace', filters: flags.filters ?? [] }, diag);
    let specs = buildSpecs(t.events, { policy: flags.policy, filters: flags.filters ?? [] });
    // Where the tree is mounted, resolve traced paths through its links: the specs then work as
    // plain spec files (spec_builder's would select nothing through a link to another repository).
    if (fs.existsSync(flags.cvmfsRoot)) specs = specsThroughLinks(specs, flags.cvmfsRoot, diag);
    writeSpecFiles(out.tmp, specs);
    out.commit();
    if (!flags.quiet) {
      const per = [...specs].map(([r, l]) => `${display(r)}.spec (${l.length} lines)`).join(', ') || 'no /cvmfs accesses';
      process.stderr.write(
        `shrinkwrap: ${flags.output}: trace.strace, ${per}; ${t.events.length} accesses under /cvmfs, ${t.failed.length} failed, ${t.ignoredOutside} outside; command exited ${status}\n`,
      );
    }
  } finally {
    out.abort();
  }
  finishWarnings(diag, flags.quiet);
  return status;
}

interface VerifyFlags {
  manifest?: string;
  imageRoot?: string;
  data?: boolean;
  json?: boolean;
}

/** `verify`: our own reader checks an image the way the kernel does, and against a plan if given. */
async function runVerify(image: string, flags: VerifyFlags): Promise<void> {
  const manifest = flags.manifest === undefined ? undefined : readManifestFile(flags.manifest);
  if (!fs.existsSync(image)) throw new InputError(`${image}: no such file`);
  const r = await verifySquashfs(image, { manifest, manifestRoot: '/cvmfs', imageRoot: flags.imageRoot ?? '/', data: flags.data ?? false });
  if (flags.json) {
    process.stdout.write(JSON.stringify({ image, ok: r.problems.length === 0, problems: r.problems, warnings: r.warnings, stats: r.stats }, null, 1) + '\n');
  } else {
    for (const w of r.warnings) process.stderr.write(`shrinkwrap: warning: ${w}\n`);
    for (const p of r.problems) process.stdout.write(`${image}: ${p}\n`);
    const s = r.stats;
    process.stdout.write(
      `${image}: ${r.problems.length === 0 ? 'OK' : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`}: ` +
        `${s.inodes} inodes, ${s.entries} entries, ${s.compressor}, ${s.blockSize}-byte blocks${flags.data ? ', all data blocks read' : ''}` +
        `${manifest ? `, ${manifest.length} manifest entries compared` : ''}\n`,
    );
  }
  if (r.problems.length > 0) throw new VerifyFailed();
}

/** The traced command failed: exit with its status, after the outputs are written. */
class CommandStatus extends ShrinkwrapError {
  constructor(status: number) {
    super('', status);
  }
}

/** verify found problems: they are printed already; exit 1 without another message. */
class VerifyFailed extends ShrinkwrapError {
  constructor() {
    super('', EXIT.failed);
  }
}

export function makeProgram(): Command {
  const program = new Command('shrinkwrap')
    .description(
      'Build self-contained container images for sites without CVMFS: select what releases need from a /cvmfs tree, ' +
        'complete it (symlink targets), put it into a base root filesystem and write the image.',
    )
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .showSuggestionAfterError(true);

  addSelectionOptions(
    program
      .command('build', { isDefault: true })
      .description('write an image (the default command: `shrinkwrap --spec S -o OUT` is `shrinkwrap build --spec S -o OUT`)'),
  )
    .requiredOption('-o, --output <path>', 'where to write the image (written beside it under a temporary name, renamed when complete)')
    .addOption(new Option('--format <format>', 'image format (default: squashfs)').choices(['squashfs', 'dir', 'oci', 'docker-archive']))
    .option('--tag <name[:tag]>', 'oci, docker-archive: image name and tag (default: the output name, tag latest)')
    .addOption(new Option('--layer-per <unit>', 'oci, docker-archive: one new layer per /cvmfs repository, or per release part (release, base projects, compiler, LCG)').choices(['repository', 'release']).default('repository'))
    .addOption(new Option('--mountpoint <path>', 'an empty directory for a site file system to be bound on (repeatable; adds to the defaults)').argParser(collect))
    .option('--no-default-mountpoints', `do not create the default site mount points (${DEFAULT_MOUNTPOINTS.join(' ')})`)
    .option('--json', 'print a machine-readable report of the build on stdout')
    .option('--push <docker://host/repo:tag>', 'oci: push the image to a registry once written (same --tls-verify and --creds as a docker:// base)')
    .option('--force', 'replace an existing output')
    .addOption(new Option('--compression <name>', 'squashfs compressor, or OCI layer compression (gzip, zstd, none)').choices(['gzip', 'zstd', 'xz', 'lz4', 'none']).default('gzip'))
    .option('--level <n>', 'compression level (default: gzip 6, zstd 3, xz 6)')
    .option('--block-size <size>', 'squashfs block size, 4K to 1M', '128K')
    .option('--mtime <policy>', 'entry times: keep, clamp (to SOURCE_DATE_EPOCH or the newest payload time), or SECONDS for all', 'keep')
    .option('--owner <uid:gid>', 'owner of every /cvmfs payload entry (e.g. 0:0)')
    .option('--no-dedup', 'store duplicate files again instead of sharing their blocks')
    .option('--no-export-table', 'leave out the NFS export table')
    .option('--no-checksum', 'do not write OUTPUT.sha256 (saves reading the whole image back at the end)')
    .option('--threads <n>', 'compression threads (default: one per CPU); the image is the same whatever the number')
    .option('--progress', 'report progress (a bar on a terminal, which is the default there; a line every 10 s elsewhere)')
    .option('--devices', "dir: create the image's character and block devices as real nodes (root only; default: skip them, each a warning)")
    .option('--keep-setuid', 'dir: keep setuid/setgid bits and file capabilities (default: leave them out, each a warning: a base\'s setuid-root files would be runnable by any local user)')
    .action((flags: BuildFlags) => runBuild(flags));

  addSelectionOptions(program.command('plan').description("list what the image's /cvmfs will hold, and why"))
    .option('--json', 'print one JSON document {"entries":[...],"summary":{...}}')
    .addOption(new Option('--explain <path>', 'say why /cvmfs/<fqrn>/... is in the image, or why not, instead of listing the plan (repeatable)').argParser(collect))
    .action((flags: PlanFlags) => runPlan(flags));

  addTraceOptions(program.command('spec').description('write a cvmfs_shrinkwrap spec from access traces, as cvmfs spec_builder.py would'))
    .addOption(new Option('--from-trace <file>', 'access trace (repeatable; traces union)').argParser(collect))
    .option('--repo <fqrn>', 'repository of a CVMFS tracer log (default: from its name <fqrn>.trace.log)')
    .option('-o, --output <path>', 'the spec file; a directory of <fqrn>.spec files when the traces touch several repositories')
    .option('--force', 'replace an existing output')
    .option('-q, --quiet', 'print errors only')
    .action((flags: SpecFlags) => runSpec(flags));

  addTraceOptions(program.command('trace').description('run a command under strace -f and write its trace and the specs of the /cvmfs paths it touched'))
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('-o, --output <dir>', 'directory for trace.strace and <fqrn>.spec files', 'shrinkwrap-trace')
    .option('--cvmfs-root <dir>', 'where the repositories are, to resolve traced paths through symlinks', '/cvmfs')
    .option('--force', 'replace an existing output')
    .option('-q, --quiet', 'print errors only')
    .action(async (argv: string[], flags: RecordFlags) => {
      const status = await runRecord(argv, flags);
      if (status !== 0) throw new CommandStatus(status);
    });

  program
    .command('verify <image>')
    .description('check a SquashFS image the way the Linux kernel does, and optionally against a plan')
    .option('--manifest <plan.json>', 'the output of `shrinkwrap plan --json`: the image must hold exactly these /cvmfs entries')
    .option('--image-root <path>', "where the plan's /cvmfs is in the image: / for an image built without --base (default), /cvmfs with one")
    .option('--data', 'also read and decompress every data block')
    .option('--json', 'print one JSON report')
    .action((image: string, flags: VerifyFlags) => runVerify(image, flags));

  program
    .command('push <source> <destination>')
    .description('push an OCI image layout (oci:DIR[:TAG], as --format oci writes) to a registry (docker://HOST/REPO:TAG): blobs the registry has are skipped, the manifest goes last')
    .option('--tls-verify <bool>', "verify the registry's TLS certificate (false also allows plain HTTP)", (v) => parseBool(v, '--tls-verify'), true)
    .option('--creds <user:password>', 'registry credentials (default: $SHRINKWRAP_REGISTRY_AUTH, then containers/auth.json, ~/.docker/config.json)')
    .addOption(new Option('--mount-from <repository>', 'a repository on the same registry to mount blobs from instead of uploading them (repeatable)').argParser(collect))
    .option('--chunk-size <bytes>', 'upload blobs in chunks of this size (e.g. 16M; default: one request per blob)')
    .option('--registry-timeout <seconds>', REGISTRY_TIMEOUT_HELP, '60')
    .option('-q, --quiet', 'print errors only')
    .action((source: string, destination: string, flags: PushFlags) => runPush(source, destination, flags));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await makeProgram().parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    // A signal is being handled (util/atomic.ts): what fails meanwhile is its doing, not news.
    if (interrupting()) return new Promise<number>(() => {});
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      process.stderr.write(`shrinkwrap: error: ${err.message.replace(/^error: /, '')} (see shrinkwrap --help)\n`);
      return EXIT.badInput;
    }
    if (err instanceof ShrinkwrapError) {
      // One line whatever the message echoes (a name with a newline in it).
      if (err.message !== '') process.stderr.write(`shrinkwrap: error: ${singleLine(err.message)}\n`);
      return err.exitCode;
    }
    // A bug: say so in one line; the stack only on request.
    const e = err as Error;
    process.stderr.write(`shrinkwrap: internal error: ${e?.message ?? String(err)} (set SHRINKWRAP_DEBUG=1 for details)\n`);
    if (process.env['SHRINKWRAP_DEBUG']) process.stderr.write(`${e?.stack}\n`);
    return 3;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

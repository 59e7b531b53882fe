// The shrinkwrap command line: options in, stages called, results out. No logic of its own.
// main() runs from the bin entry (shrinkwrap.cts); importing this module runs nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { build } from '../compose/build.js';
import { buildFromParts } from '../compose/parts/index.js';
import { DEFAULT_MOUNTPOINTS } from '../compose/generated.js';
import type { ProgressHooks } from '../compose/hooks.js';
import { openBaseImage, openSource, selectOptions } from '../compose/inputs.js';
import { renderPlanJson } from '../compose/plan-json.js';
import { VERSION } from '../compose/provenance.js';
import { credentialsFor } from '../registry/auth.js';
import { parseImageLocation } from '../registry/reference.js';
import { pushLayout } from '../registry/push.js';
import { display, fromBuffer, fromText } from '../model/bytes.js';
import { Diagnostics } from '../model/diagnostics.js';
import { EXIT, InputError, ShrinkwrapError } from '../model/errors.js';
import { type SelectOptions, selectPayloadAsync, specsThroughLinks } from '../select/index.js';
import { closeTree } from '../sources/cvmfs/open.js';
import type { ResolvedRelease } from '../select/release/index.js';
import { buildSpecs, parseTrace, readTraces } from '../select/trace/index.js';
import { recordTrace } from '../select/trace/record.js';
import { AtomicOutput, interrupting, obeySignals, writeNewFile } from '../util/atomic.js';
import { codecChoices, codecFor } from '../codecs/index.js';
import { singleLine } from '../util/json-check.js';
import { Out } from '../util/out.js';
import { parseSize } from '../util/size.js';
import { type ImageVerifyResult, readManifestFile, verifyImage } from '../verify/index.js';
import { type BuildFlags, buildOptionsOf } from './build-options.js';
import { groupOptions, withExamples } from './help.js';
import { addMergeCommand } from './merge.js';
import { warningLine } from './warnings.js';
import { progressFor, stageProgress } from './progress.js';
import { addSlurmCommand } from './slurm.js';
import { buildJson, buildSummaryLines, pushSummary } from './render-build.js';
import { renderPlanText, xattrLines } from './render-plan.js';
import { buildReport, payloadReport, reportOfFiles, reserveReport, writeReport } from '../report/index.js';
import { REGISTRY_TIMEOUT_HELP, type SelectionFlags, type TraceFlags, addSelectionOptions, addTraceOptions, baseRequestOf, collect, parseBool, registryTimeout, selectionRequestOf } from './selection-options.js';

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

interface PlanFlags extends SelectionFlags {
  json?: boolean;
  html?: string;
  progress?: boolean;
  xattrs?: boolean;
  explain?: string[];
}

/** Progress as the options ask: a bar or line on a terminal, lines every 10 s with --progress, nothing with --quiet. */
function progressHooks(flags: { quiet?: boolean; progress?: boolean }): ProgressHooks {
  return {
    stage: (label, unit) => stageProgress(flags, label, unit),
    writing: (label, totalBytes) => progressFor(flags, totalBytes, label),
  };
}

function diagnostics(quiet: boolean | undefined): Diagnostics {
  // One line each: a name from the input may hold a newline or an escape sequence.
  return new Diagnostics(quiet ? null : (w) => process.stderr.write(`shrinkwrap: warning: ${singleLine(warningLine(w))}\n`));
}

function finishWarnings(diag: Diagnostics, quiet: boolean | undefined): void {
  if (quiet) return;
  for (const line of diag.suppressedSummary()) process.stderr.write(`shrinkwrap: ${line}\n`);
}

async function runPlan(flags: PlanFlags): Promise<void> {
  obeySignals(); // a signal in any phase exits at once, with the base's work directory removed
  const diag = diagnostics(flags.quiet);
  const request = selectionRequestOf(flags);
  const baseImage = await openBaseImage(baseRequestOf(flags), diag, progressHooks(flags));
  const xattrs = flags.xattrs ?? false;
  const source = openSource(request, diag, { xattrs });
  try {
    await planWith({ ...selectOptions(request, baseImage), xattrs, source }, flags, diag);
  } finally {
    await closeTree(source);
  }
  finishWarnings(diag, flags.quiet);
}

async function planWith(options: SelectOptions, flags: PlanFlags, diag: Diagnostics): Promise<void> {
  // The event loop turns at the walk's pauses: a tree read over HTTP fetches ahead meanwhile, and signals are handled.
  const selecting = progressHooks(flags).stage('selecting');
  const report = flags.html === undefined ? null : reserveReport(flags.html);
  const payload = await selectPayloadAsync({ ...options, onProgress: selecting.tick }, diag);
  selecting.done();
  const out = new Out();
  if (report) {
    writeReport(report, payloadReport(payload, diag.warnings, reportTitle(payload)));
    if (!flags.quiet) process.stderr.write(`shrinkwrap: wrote ${flags.html}: ${payload.summary.entries} entries, ${payload.summary.bytes} bytes\n`);
  } else if (flags.explain) {
    for (const p of flags.explain) for (const line of payload.explain(fromText(path.posix.normalize(p)))) await out.write(line + '\n');
    await out.flush();
  } else if (flags.json) {
    const extra = payload.releases.length > 0 ? { releases: payload.releases.map(releaseJson), parts: payload.parts, ldLibraryPath: payload.searchPath.map(display) } : {};
    await renderPlanJson(payload.entries, { ...payload.summary, closure: payload.closure, elf: payload.elf, ...extra }, diag.warnings, out);
  } else {
    await renderPlanText(payload.entries, payload.summary, diag.warnings, out, payload.releases.length > 0 ? payload : null);
  }
}

/** A report's title: the releases, else the repositories. */
function reportTitle(payload: { releases: ResolvedRelease[]; summary: { repositories: Record<string, unknown> } }): string {
  if (payload.releases.length > 0) return payload.releases.map((r) => `${r.project} ${r.version}`).join(', ');
  return Object.keys(payload.summary.repositories).map(display).sort().join(', ') || 'empty plan';
}

// Each fits an 80-column terminal (commander wraps a longer line without indent).
const BUILD_EXAMPLES = [
  'shrinkwrap build --release AnalysisBase,21.2.75 --base rootfs/ -o ab.sqfs',
  'shrinkwrap build --spec atlas.cern.ch.spec --base el9.tar --format oci -o img',
  'shrinkwrap build --trace run1/trace.strace --base rootfs/ -o job.sqfs',
  'shrinkwrap build --release AnalysisBase,21.2.75 --base el9.sif -o ab.sif',
];

const PLAN_EXAMPLES = [
  'shrinkwrap plan --release AnalysisBase,21.2.75',
  'shrinkwrap plan --spec atlas.cern.ch.spec --json > plan.json',
  'shrinkwrap plan --release 21.2.75 --cvmfs-root http://HOST/cvmfs',
];

/** `build`: the image, then its summary on stderr or its report on stdout. */
async function runBuild(flags: BuildFlags): Promise<void> {
  if (flags.output === undefined) throw new InputError('-o, --output <path>: say where to write the image (see shrinkwrap build --help)');
  const diag = diagnostics(flags.quiet);
  if (flags.parts !== undefined) return runBuildFromParts(flags, flags.parts, diag);
  const report = flags.report === undefined ? null : reserveReport(flags.report);
  const result = await build(buildOptionsOf(flags), { diagnostics: diag, progress: progressHooks(flags) });
  if (report) writeReport(report, buildReport(result, reportTitle(result.payload)));
  if (!flags.quiet && !flags.json) for (const line of [...buildSummaryLines(result), ...xattrLines(true)]) process.stderr.write(`shrinkwrap: ${line}\n`);
  if (flags.json) process.stdout.write(buildJson(result));
  finishWarnings(diag, flags.quiet || flags.json);
}

/** `build --parts DIR`: a line per part (reused, built, rebuilt, and why), then the merged image's. */
async function runBuildFromParts(flags: BuildFlags, dir: string, diag: Diagnostics): Promise<void> {
  if (flags.report !== undefined) throw new InputError('--report with --parts: the merged image has no plan to report (report each part: shrinkwrap report PART)');
  const say = (line: string) => {
    if (!flags.quiet) process.stderr.write(`shrinkwrap: ${line}\n`);
  };
  const r = await buildFromParts(buildOptionsOf(flags), dir, { diagnostics: diag, progress: progressHooks(flags), onPart: say });
  const i = r.merged.image;
  const counts = (['reused', 'built', 'rebuilt'] as const).map((a) => `${r.parts.filter((p) => p.action === a).length} ${a}`).join(', ');
  if (flags.json) {
    const parts = r.parts.map((p) => ({ release: p.release, file: p.file, action: p.action, why: p.why }));
    process.stdout.write(JSON.stringify({ output: r.merged.output, sha256: r.merged.sha256, parts, image: i, base: r.merged.base }, null, 1) + '\n');
  } else {
    say(`wrote ${r.merged.output}: ${i.bytes} bytes, ${i.inodes} inodes, ${i.files} files, squashfs ${i.compression} ${i.blockSize >> 10}K blocks${r.merged.base ? ` on ${r.merged.base.name}` : ''}, from ${r.parts.length} parts (${counts})`);
    if (r.merged.sha256) say(`sha256 ${r.merged.sha256} (in ${r.merged.output}.sha256)`);
  }
  finishWarnings(diag, flags.quiet || flags.json);
}

interface ReportFlags {
  output: string;
  quiet?: boolean;
}

/** `report A [B]`: the page of a plan or image, or of what changed between two. */
async function runReport(files: string[], flags: ReportFlags): Promise<void> {
  const out = reserveReport(flags.output);
  const model = await reportOfFiles(files);
  writeReport(out, model);
  if (!flags.quiet) process.stderr.write(`shrinkwrap: wrote ${flags.output}: ${model.title}: ${model.totals.entries} entries\n`);
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
    chunkSize = parseChunkSize(flags.chunkSize);
  }
  const timeoutMs = registryTimeout(flags.registryTimeout);
  const r = await pushLayout(dir, tag, to, { tlsVerify: flags.tlsVerify, credentials: credentialsFor(to.registry, flags.creds), mountFrom: flags.mountFrom ?? [], chunkSize, timeoutMs });
  if (!flags.quiet) process.stderr.write(`shrinkwrap: ${pushSummary(dest, r)}\n`);
}

/** --chunk-size: bytes, or with a K, M, G or T suffix; 0 is one request per blob. */
function parseChunkSize(text: string): number {
  return text === '0' ? 0 : parseSize(text, '--chunk-size', { expected: 'expected bytes, e.g. 5M' });
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
    // (An empty /cvmfs is no tree to resolve against, and not worth failing a recorded run for.)
    if (fs.existsSync(flags.cvmfsRoot) && fs.readdirSync(flags.cvmfsRoot).length > 0) specs = specsThroughLinks(specs, flags.cvmfsRoot, diag);
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

/** `verify`: our own readers check an image (SquashFS as the kernel does; OCI layouts and docker-archives blob by blob), and against a plan if given. */
async function runVerify(image: string, flags: VerifyFlags): Promise<void> {
  const manifest = flags.manifest === undefined ? undefined : readManifestFile(flags.manifest);
  if (!fs.existsSync(image)) throw new InputError(`${image}: no such file`);
  const r = await verifyImage(image, { manifest, imageRoot: flags.imageRoot, data: flags.data ?? false });
  if (flags.json) {
    process.stdout.write(JSON.stringify({ image, format: r.format, ok: r.problems.length === 0, problems: r.problems, warnings: r.warnings, stats: r.stats }, null, 1) + '\n');
  } else {
    for (const w of r.warnings) process.stderr.write(`shrinkwrap: warning: ${w}\n`);
    for (const p of r.problems) process.stdout.write(`${image}: ${p}\n`);
    const n = r.problems.length;
    process.stdout.write(
      `${image}: ${n === 0 ? 'OK' : `${n} problem${n === 1 ? '' : 's'}`}: ${verifySummary(r, flags.data ?? false)}${manifest ? `, ${manifest.length} manifest entries compared` : ''}\n`,
    );
  }
  if (r.problems.length > 0) throw new VerifyFailed();
}

function verifySummary(r: ImageVerifyResult, data: boolean): string {
  if (r.format === 'squashfs' || r.format === 'sif') {
    const s = r.stats;
    const squashfs = `${s.inodes} inodes, ${s.entries} entries, ${s.compressor}, ${s.blockSize}-byte blocks${data ? ', all data blocks read' : ''}`;
    if (r.format === 'squashfs') return squashfs;
    const sif = r.stats.sif;
    const objects = sif.objects.map((o) => `${o.id} ${o.type}${o.name ? ` ${o.name}` : ''}`).join(', ');
    const labels = Object.keys(sif.labels).length;
    return `sif ${sif.arch}, ${sif.objects.length} objects (${objects}), ${labels} labels${sif.partition ? `; partition ${sif.partition.id}: ${squashfs}` : ''}`;
  }
  const s = r.stats;
  return `${r.format}, ${s.manifests} manifest${s.manifests === 1 ? '' : 's'}, ${s.layers} layers, ${s.blobs} blobs (${s.blobBytes} bytes) checked, ${s.entries} entries`;
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
    .showSuggestionAfterError(true)
    .addHelpText('after', '\nStart with `shrinkwrap build --help`: its options in groups, after three examples.');

  const build = addSelectionOptions(
    program
      .command('build', { isDefault: true })
      .summary('write an image (the default command: `shrinkwrap --spec S -o OUT` is `shrinkwrap build --spec S -o OUT`)')
      .description(withExamples('Write an image: select from /cvmfs, complete the selection, put it on a base and write it (the default command).', BUILD_EXAMPLES)),
  )
    // Checked in runBuild, not by commander: commander checks required options before it names an unknown one.
    .option('-o, --output <path>', 'where to write the image (written beside it under a temporary name, renamed when complete; required)')
    .addOption(new Option('--format <format>', 'image format (default: from the output name: .sqfs or .squashfs squashfs, .sif sif, .tar docker-archive, a trailing / dir)').choices(['squashfs', 'sif', 'dir', 'oci', 'docker-archive']))
    .option('--tag <name[:tag]>', 'oci, docker-archive: image name and tag (default: the output name, tag latest)')
    .addOption(new Option('--layer-per <unit>', 'oci, docker-archive: one new layer per /cvmfs repository, or per release part (release, base projects, compiler, LCG)').choices(['repository', 'release']).default('repository'))
    .addOption(new Option('--mountpoint <path>', 'an empty directory for a site file system to be bound on (repeatable; adds to the defaults)').argParser(collect))
    .option('--no-default-mountpoints', `do not create the default site mount points (${DEFAULT_MOUNTPOINTS.join(' ')})`)
    .option('--json', 'print a machine-readable report of the build on stdout')
    .option('--report <file.html>', 'also write an HTML report of the image: what it holds, why, and what it costs (one self-contained page)')
    .option('--push <docker://host/repo:tag>', 'oci: push the image to a registry once written (same --tls-verify and --creds as a docker:// base)')
    .option('--force', 'replace an existing output')
    .option('--part', 'write a part: the releases\' /cvmfs selection alone, with its index (/.shrinkwrap/part.json: each file\'s sha256, the options and source revisions), for merge and --parts')
    .option('--parts <dir>', 'keep one part per release in DIR (PROJECT-VERSION[-PLATFORM].part.sqfs): reuse those that match, build the others, merge them into the image')
    .option('--reuse <previous.sqfs>', 'squashfs, sif: copy the compressed blocks of files whose path, size and time are those in an earlier image (a .sqfs or .sif of the same compressor and block size) instead of compressing them again')
    .addOption(new Option('--compression <name>', `squashfs compressor, or OCI layer compression (${[...codecChoices('layers'), 'none'].join(', ')})`).choices([...codecChoices(), 'none']).default('gzip'))
    .option('--level <n>', `compression level (default: ${codecChoices().map((n) => `${n} ${codecFor(n).levels.default}`).join(', ')})`)
    .option('--block-size <size>', 'squashfs block size, 4K to 1M', '128K')
    .option('--mtime <policy>', 'entry times: keep, clamp (to SOURCE_DATE_EPOCH or the newest payload time), or SECONDS for all', 'keep')
    .option('--owner <uid:gid>', 'owner of every /cvmfs payload entry (e.g. 0:0)')
    .option('--no-dedup', 'store duplicate files again instead of sharing their blocks')
    .option('--no-export-table', 'leave out the NFS export table')
    .option('--no-space-check', "do not check before writing that the output's file system and $TMPDIR have room for the image")
    .option('--no-checksum', 'do not write OUTPUT.sha256 (saves reading the whole image back at the end)')
    .option('--threads <n>', 'compression threads (default: one per CPU); the image is the same whatever the number')
    .option('--progress', 'report progress (a bar on a terminal, which is the default there; a line every 10 s elsewhere)')
    .option('--devices', "dir: create the image's character and block devices as real nodes (root only; default: skip them, each a warning)")
    .option('--keep-setuid', 'dir: keep setuid/setgid bits and file capabilities (default: leave them out, each a warning: a base\'s setuid-root files would be runnable by any local user)')
    .action((flags: BuildFlags) => runBuild(flags));
  groupOptions(build);

  const plan = addSelectionOptions(
    program
      .command('plan')
      .summary("list what the image's /cvmfs will hold, and why")
      .description(withExamples("List what the image's /cvmfs will hold, and why: what a build of the same options would select.", PLAN_EXAMPLES)),
  )
    .option('--json', 'print one JSON document {"entries":[...],"summary":{...}}')
    .option('--html <file.html>', 'write an HTML report of the plan (treemap, largest files, reasons, warnings) instead of listing it')
    .option('--xattrs', "also read every /cvmfs entry's extended attributes, as a build does, and say which are kept (costs one system call an entry)")
    .addOption(new Option('--explain <path>', 'say why /cvmfs/<fqrn>/... is in the image, or why not, instead of listing the plan (repeatable)').argParser(collect))
    .option('--progress', 'progress of the selection on stderr: a line as it starts, then every 10 s (a bar on a terminal anyway)')
    .action((flags: PlanFlags) => runPlan(flags));
  groupOptions(plan);

  addSlurmCommand(program, build);

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

  addMergeCommand(program, { diagnostics, progress: progressHooks, finishWarnings });

  program
    .command('verify <image>')
    .description('check an image (SquashFS the way the Linux kernel does; a SIF container, then its SquashFS partition; an OCI layout or docker-archive blob by blob, every layer decompressed and applied), and optionally against a plan')
    .option('--manifest <plan.json>', 'the output of `shrinkwrap plan --json`: the image must hold exactly these /cvmfs entries')
    .option('--image-root <path>', "where the plan's /cvmfs is in the image (default: /cvmfs where the image has /.shrinkwrap/plan.json, an image with a root filesystem; else /)")
    .option('--data', 'SquashFS: also read and decompress every data block')
    .option('--json', 'print one JSON report')
    .action((image: string, flags: VerifyFlags) => runVerify(image, flags));

  program
    .command('report <plan-or-image> [second]')
    .description(
      'write an HTML report of a plan (shrinkwrap plan --json) or of an image shrinkwrap wrote (SquashFS, OCI layout, docker-archive, directory: ' +
        'from its /.shrinkwrap/plan.json); with two, what changed from the first to the second',
    )
    .requiredOption('-o, --output <file.html>', 'the report (written beside it under a temporary name, then renamed; replaces an earlier file)')
    .option('-q, --quiet', 'print errors only')
    .action((first: string, second: string | undefined, flags: ReportFlags) => runReport(second === undefined ? [first] : [first, second], flags));

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

/** The first word names no command (build takes no arguments, so it cannot be one of build's). */
function unknownCommand(program: Command, argv: string[]): string | null {
  const first = argv[0];
  if (first === undefined || first.startsWith('-')) return null;
  const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  return names.includes(first) || first === 'help' ? null : `unknown command '${first}' (commands: ${names.join(', ')}, help)`;
}

export async function main(argv: string[]): Promise<number> {
  const program = makeProgram();
  // Bare `shrinkwrap`: the help, on stderr, and exit 2 as for any other incomplete command line
  // (git exits 1, docker 0: a job whose arguments expanded to nothing must not pass).
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT.badInput;
  }
  const unknown = unknownCommand(program, argv);
  if (unknown !== null) {
    process.stderr.write(`shrinkwrap: error: ${unknown}\n`);
    return EXIT.badInput;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    // A signal is being handled (util/atomic.ts): what fails meanwhile is its doing, not news.
    if (interrupting()) return new Promise<number>(() => {});
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      // One line: commander puts its "(Did you mean --format?)" on a line of its own.
      process.stderr.write(`shrinkwrap: error: ${err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')} (see shrinkwrap --help)\n`);
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

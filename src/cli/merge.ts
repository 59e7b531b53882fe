// `shrinkwrap merge -o OUT.sqfs [--base IMAGE] PART.sqfs…`: options in, compose/merge out, a summary.
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { DEFAULT_MOUNTPOINTS } from '../compose/generated.js';
import { type MergeOptions, type MergeResult, type PartPriority, merge } from '../compose/merge/index.js';
import { type OciMergeResult, mergeOci } from '../compose/merge/oci.js';
import { formatFromName } from '../compose/output.js';
import { type CodecName, codecChoices, codecFor } from '../codecs/index.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { InputError } from '../model/errors.js';
import { DEFAULT_MAX_LAYER_SIZE_TEXT } from '../sources/base/blob.js';
import { checkMountpoint, parseBlockSize, parseTag, parseThreads } from './build-options.js';
import { groupOptions, withExamples } from './help.js';
import { REGISTRY_TIMEOUT_HELP, type SelectionFlags, baseRequestOf, collect, parseBool } from './selection-options.js';
import type { ProgressHooks } from '../compose/hooks.js';

interface MergeFlags {
  output?: string;
  format?: string;
  base?: string;
  platform?: string[];
  tlsVerify: boolean;
  creds?: string;
  registryTimeout: string;
  maxLayerSize: string;
  compression?: CodecName | 'none';
  tag?: string;
  layerCache?: string;
  level?: string;
  blockSize?: string;
  recompress: boolean;
  partPriority?: string;
  force?: boolean;
  checksum: boolean;
  dedup: boolean;
  exportTable: boolean;
  threads?: string;
  mountpoint?: string[];
  defaultMountpoints: boolean;
  json?: boolean;
  progress?: boolean;
  quiet?: boolean;
}

const MERGE_EXAMPLES = [
  'shrinkwrap merge -o all.sqfs atlas.sqfs sft.sqfs',
  'shrinkwrap merge --base el9.tar -o img.sqfs A.part.sqfs B.part.sqfs',
  'mksquashfs /cvmfs/sft.cern.ch sft.sqfs -keep-as-directory',
  'shrinkwrap merge --format oci --base docker://almalinux:9 -o img-oci A.part.sqfs B.part.sqfs',
];

export interface MergeCli {
  diagnostics: (quiet: boolean | undefined) => Diagnostics;
  progress: (flags: { quiet?: boolean; progress?: boolean }) => ProgressHooks;
  finishWarnings: (diag: Diagnostics, quiet: boolean | undefined) => void;
}

export function addMergeCommand(program: Command, cli: MergeCli): void {
  const cmd = program
    .command('merge')
    .argument('<parts...>', 'SquashFS images whose root holds <fqrn>/ directories')
    .summary('one image from SquashFS parts, their compressed blocks copied, not compressed again')
    .description(
      withExamples(
        'Write one SquashFS image holding each part under /cvmfs, on a base or alone. Data blocks are copied as they are (parts with the ' +
          "image's compressor and block size: by default the first part's), tails packed anew; inodes, directories and tables are written anew. " +
          "--format oci or docker-archive writes an OCI image instead, one layer per part: a part's layer is built once and kept beside it (or in --layer-cache DIR), " +
          'so a later merge of the same part copies it.',
        MERGE_EXAMPLES,
      ),
    )
    .option('-o, --output <path>', 'where to write the image (written beside it under a temporary name, renamed when complete; required)')
    .addOption(new Option('--format <format>', 'image format (default: from the output name: .tar docker-archive, else squashfs)').choices(['squashfs', 'oci', 'docker-archive']))
    .option('--tag <name[:tag]>', 'oci, docker-archive: image name and tag (default: from the output name, tag latest)')
    .option('--layer-cache <dir>', "oci, docker-archive: where each part's layer is kept, to be copied by later merges (default: beside each part)")
    .option('--base <image>', 'the root file system to put /cvmfs on: a DIR or tarball, oci:DIR[:TAG], docker-archive:FILE[:REF], docker://HOST/REPO:TAG, a SquashFS or SIF image')
    .addOption(new Option('--platform <os/arch>', "the base image platform to take from an index (default: this machine's)").argParser(collect))
    .option('--tls-verify <bool>', "docker:// base: verify the registry's TLS certificate (false also allows plain HTTP)", (v) => parseBool(v, '--tls-verify'), true)
    .option('--creds <user:password>', 'docker:// base: registry credentials (default: $SHRINKWRAP_REGISTRY_AUTH, then containers/auth.json, ~/.docker/config.json)')
    .option('--registry-timeout <seconds>', REGISTRY_TIMEOUT_HELP, '60')
    .option('--max-layer-size <size>', 'the most one compressed base layer or tarball may decompress to (K, M, G, T suffixes)', DEFAULT_MAX_LAYER_SIZE_TEXT)
    .addOption(new Option('--compression <name>', "squashfs compressor (default: the first part's); oci: layer compression gzip (default), zstd or none").choices([...codecChoices('squashfs'), 'none']))
    .option('--level <n>', 'compression level of what is compressed anew (the base, generated files, parts with another compressor)')
    .option('--block-size <size>', "squashfs block size, 4K to 1M (default: the first part's)")
    .option('--no-recompress', 'refuse parts with another compressor or block size (default: compress their files anew, with a warning)')
    .option('--part-priority <first|last|PART,...>', 'at a path where parts differ, take the first part\'s entry, the last\'s, or those of the parts listed first (default: an error naming both)')
    .option('--force', 'replace an existing output')
    .option('--no-checksum', 'do not write OUTPUT.sha256')
    .option('--no-dedup', 'store duplicate files again instead of sharing their blocks')
    .option('--no-export-table', 'leave out the NFS export table')
    .option('--threads <n>', 'compression threads (default: one per CPU); the image is the same whatever the number')
    .addOption(new Option('--mountpoint <path>', 'with --base: an empty directory for a site file system (repeatable; adds to the defaults)').argParser(collect))
    .option('--no-default-mountpoints', `with --base: do not create the default site mount points (${DEFAULT_MOUNTPOINTS.join(' ')})`)
    .option('--json', 'print a machine-readable report on stdout')
    .option('--progress', 'report progress (a bar on a terminal, which is the default there; a line every 10 s elsewhere)')
    .option('-q, --quiet', 'print errors only')
    .action((parts: string[], flags: MergeFlags) => runMerge(parts, flags, cli));
  groupOptions(cmd);
}

async function runMerge(parts: string[], flags: MergeFlags, cli: MergeCli): Promise<void> {
  if (flags.output === undefined) throw new InputError('-o, --output <path>: say where to write the merged image (see shrinkwrap merge --help)');
  const format = mergeFormat(flags);
  const oci = format !== 'squashfs';
  if (!oci) {
    if (flags.tag !== undefined) throw new InputError('--tag needs --format oci or docker-archive');
    if (flags.layerCache !== undefined) throw new InputError('--layer-cache needs --format oci or docker-archive');
    if (flags.compression === 'none') throw new InputError('--compression none: OCI layers only (a SquashFS image is compressed)');
  }
  const diag = cli.diagnostics(flags.quiet);
  const base = baseRequestOf(flags as unknown as SelectionFlags);
  const options: MergeOptions = {
    output: flags.output,
    force: flags.force ?? false,
    parts,
    base,
    compression: flags.compression as CodecName | undefined,
    level: flags.level === undefined ? undefined : parseLevel(flags),
    blockSize: flags.blockSize === undefined ? undefined : parseBlockSize(flags.blockSize),
    recompress: flags.recompress,
    priority: flags.partPriority === undefined ? null : parsePriority(flags.partPriority, parts),
    threads: flags.threads === undefined ? undefined : parseThreads(flags.threads),
    dedup: flags.dedup,
    exportTable: flags.exportTable,
    checksum: flags.checksum,
    mountpoints: [...(flags.defaultMountpoints ? DEFAULT_MOUNTPOINTS : []), ...(flags.mountpoint ?? []).map((m) => checkMountpoint(m))],
  };
  const hooks = { diagnostics: diag, progress: cli.progress(flags) };
  const result = oci
    ? await mergeOci({ ...options, format, tag: flags.tag === undefined ? undefined : parseTag(flags.tag), layerCache: flags.layerCache ?? null }, hooks)
    : await merge(options, hooks);
  if (flags.json) process.stdout.write(JSON.stringify(mergeJson(result), null, 1) + '\n');
  else if (!flags.quiet) for (const line of 'layers' in result.image ? ociSummaryLines(result as OciMergeResult) : summaryLines(result as MergeResult)) process.stderr.write(`shrinkwrap: ${line}\n`);
  cli.finishWarnings(diag, flags.quiet || flags.json);
}

/** --format, else from the output's name as a build has it (.tar a docker-archive); a name it cannot tell is SquashFS, as merge always wrote. */
function mergeFormat(flags: MergeFlags): 'squashfs' | 'oci' | 'docker-archive' {
  if (flags.format !== undefined) return flags.format as 'squashfs' | 'oci' | 'docker-archive';
  let named: string;
  try {
    named = formatFromName(flags.output!);
  } catch {
    return 'squashfs';
  }
  if (named === 'squashfs' || named === 'docker-archive') return named;
  throw new InputError(`-o ${flags.output}: merge writes squashfs, oci or docker-archive, not ${named} (give --format)`);
}

/** --level: needs --compression, or the first part's compressor; checked against the codec once that is known. */
function parseLevel(flags: MergeFlags): number {
  const text = flags.level!;
  if (!/^\d+$/.test(text)) throw new InputError(`--level ${text}: expected a whole number`);
  if (flags.compression !== undefined && flags.compression !== 'none') {
    const { min, max } = codecFor(flags.compression).levels;
    if (Number(text) < min || Number(text) > max) throw new InputError(`--level ${text}: ${flags.compression} takes ${min} to ${max}`);
  }
  return Number(text);
}

/** --part-priority first | last | PART,PART… (parts as given, or their file names). */
export function parsePriority(text: string, parts: string[]): PartPriority {
  if (text === 'first' || text === 'last') return text;
  const order: number[] = [];
  for (const name of text.split(',')) {
    let k = parts.indexOf(name);
    if (k < 0) {
      const byBase = parts.flatMap((p, i) => (path.basename(p) === name ? [i] : []));
      if (byBase.length > 1) throw new InputError(`--part-priority ${text}: ${name} names ${byBase.length} parts; give their paths as on the command line`);
      k = byBase[0] ?? -1;
    }
    if (k < 0) throw new InputError(`--part-priority ${text}: ${name} is none of the parts (expected first, last, or parts as given, comma-separated)`);
    if (order.includes(k)) throw new InputError(`--part-priority ${text}: ${name} is listed twice`);
    order.push(k);
  }
  return order;
}

function summaryLines(r: MergeResult): string[] {
  const i = r.image;
  const copied = r.parts.filter((p) => p.copied).length;
  const lines = [
    `wrote ${r.output}: ${i.bytes} bytes, ${i.inodes} inodes, ${i.files} files (${i.bytesIn} bytes), squashfs ${i.compression} ${i.blockSize >> 10}K blocks` +
      `${r.base ? ` on ${r.base.name}` : ''}`,
    `${r.parts.length} parts, ${copied} of them copied block for block${copied < r.parts.length ? `, ${r.parts.length - copied} compressed anew` : ''}; ` +
      `${r.shared} paths in several parts${r.settled > 0 ? `, ${r.settled} conflicts settled by --part-priority` : ''}; ${i.dedupFiles} duplicate files stored once`,
  ];
  if (r.sha256) lines.push(`sha256 ${r.sha256} (in ${r.output}.sha256)`);
  return lines;
}

function ociSummaryLines(r: OciMergeResult): string[] {
  const i = r.image;
  const partLayers = i.layers.filter((l) => l.part !== undefined);
  const cached = partLayers.filter((l) => l.cached).length;
  const lines = [
    `wrote ${r.output}: ${i.format} ${i.name}, ${i.layers.length} layers (${i.compression}), ${i.bytes} bytes written${r.base ? ` on ${r.base.name}` : ''}`,
    `${r.parts.length} parts, one layer each: ${cached} copied from their kept layers, ${partLayers.length - cached} built; ` +
      `${r.shared} paths in several parts${r.settled > 0 ? `, ${r.settled} conflicts settled by --part-priority` : ''}`,
  ];
  for (const l of partLayers) if (l.rebuilt) lines.push(`${l.part}: ${l.lost} of its entries lost a conflict: its layer was built for this merge without them (not kept)`);
  if (r.sha256) lines.push(`sha256 ${r.sha256} (in ${r.output}.sha256)`);
  return lines;
}

function mergeJson(r: MergeResult | OciMergeResult): Record<string, unknown> {
  return { output: r.output, sha256: r.sha256, image: r.image, parts: r.parts, base: r.base, shared: r.shared, settled: r.settled, warnings: r.warnings.map((w) => ({ kind: w.kind, message: w.message })) };
}

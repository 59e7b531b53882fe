// `build`'s flags parsed into the typed options of compose/build.ts, checked in the order they
// always were (the first bad option is the one reported).
import * as path from 'node:path';
import { type BuildOptions, checkFormatRules, defaultImageName } from '../compose/build.js';
import { formatFromName } from '../compose/output.js';
import { checkPartRules } from '../compose/parts/build-part.js';
import type { MtimePolicy } from '../compose/image.js';
import { DEFAULT_MOUNTPOINTS } from '../compose/generated.js';
import type { LayerPer } from '../compose/layers.js';
import { fromText } from '../model/bytes.js';
import { InputError } from '../model/errors.js';
import { MOUNT } from '../select/spec/parse.js';
import { parseImageLocation } from '../registry/reference.js';
import { type CodecName, codecFor } from '../codecs/index.js';
import { blockSizeProblem } from '../formats/squashfs/index.js';
import { parseSize } from '../util/size.js';
import { type SelectionFlags, baseRequestOf, registryTimeout, selectionRequestOf } from './selection-options.js';

export interface BuildFlags extends SelectionFlags {
  output: string;
  /** An HTML report of the image, written beside the build (a side output: not recorded, no effect on the image). */
  report?: string;
  format?: 'dir' | 'squashfs' | 'sif' | 'oci' | 'docker-archive';
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
  spaceCheck: boolean;
  /** Write a part (compose/parts). */
  part?: boolean;
  /** Build from parts kept in this directory (compose/parts). */
  parts?: string;
  /** An earlier SquashFS image or SIF whose blocks unchanged files take. */
  reuse?: string;
}

/** The flags as compose/build.ts takes them; `argv` is the command's arguments as typed, for provenance. */
export function buildOptionsOf(flags: BuildFlags, argv: readonly string[] = process.argv.slice(2)): BuildOptions {
  // --format wins; else the output's name says it (.sqfs, .tar, a trailing /), or the build is refused.
  const format = flags.format ?? formatFromName(flags.output);
  if (flags.part && flags.parts !== undefined) throw new InputError('--part and --parts: give one (--part writes one part; --parts DIR builds the image from parts kept in DIR)');
  const oci = format === 'oci' || format === 'docker-archive';
  checkFormatRules({ format, compression: flags.compression, devices: flags.devices, keepSetuid: flags.keepSetuid, push: flags.push, base: flags.base ?? null, reuse: flags.reuse });
  const squashfs = format === 'squashfs' || format === 'sif';
  const level = squashfs || oci ? compressionLevel(flags) : 0;
  const blockSize = squashfs ? parseBlockSize(flags.blockSize) : undefined;
  const threads = flags.threads === undefined ? undefined : parseThreads(flags.threads);
  const mtime = parseMtime(flags.mtime);
  const owner = flags.owner === undefined ? null : parseOwner(flags.owner);
  const pushRef = flags.push === undefined ? null : parseImageLocation(flags.push, '--push', ['registry']).reference;
  const tag = oci ? parseTag(flags.tag ?? defaultImageName(flags.output)) : undefined;
  const mountpoints = [...(flags.defaultMountpoints ? DEFAULT_MOUNTPOINTS : []), ...(flags.mountpoint ?? []).map((m) => checkMountpoint(m))];
  const push = pushRef ? { to: flags.push!, ref: pushRef, tlsVerify: flags.tlsVerify, creds: flags.creds, timeoutMs: registryTimeout(flags.registryTimeout) } : null;
  const options: BuildOptions = {
    output: flags.output,
    force: flags.force ?? false,
    format,
    base: baseRequestOf(flags),
    selection: selectionRequestOf(flags),
    compression: flags.compression,
    level,
    blockSize,
    threads,
    mtime,
    owner,
    dedup: flags.dedup,
    exportTable: flags.exportTable,
    checksum: flags.checksum,
    devices: flags.devices ?? false,
    keepSetuid: flags.keepSetuid ?? false,
    layerPer: flags.layerPer,
    tag,
    mountpoints,
    push,
    spaceCheck: flags.spaceCheck,
    commandLine: commandLineOf(argv, flags.output),
    part: flags.part ?? false,
    reuse: flags.reuse ?? null,
  };
  if (options.part) checkPartRules(options);
  return options;
}

/**
 * Options that never change an image's bytes (what is printed, threads, where it is pushed, what
 * may be replaced), left out of the recorded command with their values (true: takes one). --creds
 * is a secret: it never goes into an image.
 */
const NOT_RECORDED: ReadonlyMap<string, boolean> = new Map([
  ['--threads', true],
  ['--push', true],
  ['--creds', true],
  ['-q', false],
  ['--quiet', false],
  ['--progress', false],
  ['--json', false],
  ['--report', true],
  ['--force', false],
  ['--no-checksum', false],
  ['--no-space-check', false],
  // The image's format is the image itself; and a SIF's partition is byte for byte the SquashFS
  // image of the same command, which it could not be if the format were recorded inside.
  ['--format', true],
  // Which earlier image lends its blocks: the image holds the same content with it or without it.
  ['--reuse', true],
]);

/**
 * The command as provenance records it: as typed, but the output's path replaced by OUTPUT and
 * the options of NOT_RECORDED left out. Where an image was written is not something it is built
 * from, and the same inputs written elsewhere, or with more threads, give the same bytes (the
 * inputs' paths stay: they are inputs).
 */
export function commandLineOf(argv: readonly string[], output: string): string[] {
  const out = ['shrinkwrap'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = a.startsWith('--') ? a.split('=')[0]! : a;
    const takesValue = NOT_RECORDED.get(name);
    if (takesValue !== undefined) {
      if (takesValue && !a.includes('=')) i++;
    } else if ((a === '-o' || a === '--output') && argv[i + 1] === output) {
      out.push(a, 'OUTPUT');
      i++;
    } else if (a === `--output=${output}`) out.push('--output=OUTPUT');
    else if (a === `-o${output}`) out.push('-oOUTPUT');
    else out.push(a);
  }
  return out;
}

/** The compression level: given and in range, or the codec's default. */
export function compressionLevel(flags: Pick<BuildFlags, 'compression' | 'level'>): number {
  if (flags.compression === 'none') {
    if (flags.level !== undefined) throw new InputError('--level makes no sense with --compression none');
    return 0;
  }
  const { min, max, default: level } = codecFor(flags.compression).levels;
  if (flags.level === undefined) return level;
  const n = Number(flags.level);
  if (!/^\d+$/.test(flags.level) || n < min || n > max) throw new InputError(`--level ${flags.level}: ${flags.compression} takes ${min} to ${max}`);
  return n;
}

/** --block-size: bytes, or with a K/M suffix; a power of two from 4 KiB to 1 MiB. */
export function parseBlockSize(text: string): number {
  const expected = 'must be a power of two from 4K to 1M (e.g. 131072, 128K, 1M)';
  const n = parseSize(text, '--block-size', { expected });
  // The rule is the format's (formats/squashfs); the words are the option's.
  if (blockSizeProblem(n)) throw new InputError(`--block-size ${text}: ${expected}`);
  return n;
}

/** --mtime keep | clamp | SECONDS */
export function parseMtime(text: string): MtimePolicy {
  if (text === 'keep' || text === 'clamp') return text;
  if (/^\d+$/.test(text) && Number(text) <= 0xffffffff) return Number(text);
  throw new InputError(`--mtime ${text}: expected keep, clamp (to SOURCE_DATE_EPOCH) or a time in seconds since 1970`);
}

/** --owner UID:GID (numeric) */
export function parseOwner(text: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[1]) > 0xffffffff || Number(m[2]) > 0xffffffff) throw new InputError(`--owner ${text}: expected numeric UID:GID, e.g. 0:0`);
  return [Number(m[1]), Number(m[2])];
}

/** --threads N: compression threads, 1 to 256. */
export function parseThreads(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 256) throw new InputError(`--threads ${text}: expected a number of threads from 1 to 256`);
  return n;
}

/** --tag NAME[:TAG] (default tag latest); names as registries take them. */
export function parseTag(text: string): { name: string; tag: string } {
  const m = /^([a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+(?=\/))?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?$/.exec(text);
  if (!m) throw new InputError(`--tag ${text}: expected NAME[:TAG], e.g. atlas/analysisbase:21.2.75`);
  return { name: m[1]!, tag: m[2] ?? 'latest' };
}

/** --mountpoint PATH: absolute, outside /cvmfs. */
export function checkMountpoint(m: string): string {
  const p = path.posix.normalize(m);
  if (!p.startsWith('/') || p === '/' || p.split('/').includes('..') || p === MOUNT || p.startsWith(MOUNT + '/')) {
    throw new InputError(`--mountpoint ${m}: expected an absolute path outside /cvmfs, e.g. /lustre`);
  }
  return fromText(p.replace(/\/+$/, ''));
}

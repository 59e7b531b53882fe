// Where a build writes: what each format's output is (a file or a directory), what --force may
// replace (an earlier output of the same kind only), and the side files that commit with it
// (util/atomic.ts writes them all under temporary names first).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BuildError, InputError } from '../model/errors.js';
import type { OutputKind } from '../util/atomic.js';

export type ImageFormat = 'squashfs' | 'sif' | 'dir' | 'oci' | 'docker-archive';

/** `<output>.sha256` (sha256sum's format): a side file of every image file. */
export function checksumPath(output: string): string {
  return `${path.resolve(output)}.sha256`;
}

/**
 * A directory image without a base is an exact mirror of the selection, with nothing of ours in
 * it; this hidden file beside it says that shrinkwrap wrote it, so that --force may replace it.
 */
export function dirMarkerPath(output: string): string {
  const abs = path.resolve(output);
  return path.join(path.dirname(abs), `.${path.basename(abs)}.shrinkwrap`);
}

export const DIR_MARKER = 'a directory image written by shrinkwrap: --force may replace it\n';

/** What each format writes, and what --force may replace (an earlier output of the same kind only). */
export function outputKind(format: ImageFormat, output: string): OutputKind {
  const isFile = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
  if (format === 'squashfs' || format === 'sif' || format === 'docker-archive') {
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
 * real paths (links and `..` resolved). `base` is --base as given (only a directory or a tarball
 * is a path here).
 */
export function refuseOutputInSource(output: string, cvmfsRoot: string, base: string | null): void {
  const abs = path.resolve(output);
  let out: string;
  try {
    out = path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return; // AtomicOutput.prepare says what is wrong with the directory
  }
  const sources: Array<[string, string]> = [[cvmfsRoot, '--cvmfs-root']];
  if (base !== null && !/^(oci|docker-archive|docker):/.test(base)) sources.push([base, '--base']);
  for (const [dir, option] of sources) {
    let real: string;
    try {
      real = fs.realpathSync(dir);
      if (!fs.statSync(real).isDirectory()) continue;
    } catch {
      continue; // reading the source reports it
    }
    const within = (inner: string, outer: string) => outer === '/' || inner === outer || inner.startsWith(outer + '/');
    if (within(out, real)) throw new InputError(`output ${output} is inside ${option} ${dir}: the image would contain itself; write it elsewhere`);
    if (within(real, out)) throw new InputError(`output ${output} contains ${option} ${dir}: write the image elsewhere`);
  }
}

/**
 * The format an output's name implies, when --format is not given: `.sqfs`/`.squashfs` SquashFS,
 * `.sif` SIF, `.tar` a docker-archive, a trailing `/` a directory. Anything else is refused rather than
 * guessed (`-o x.tar` once wrote SquashFS without a word).
 */
export function formatFromName(output: string): ImageFormat {
  if (output.endsWith('/')) return 'dir';
  const ext = path.extname(output).toLowerCase();
  if (ext === '.sqfs' || ext === '.squashfs') return 'squashfs';
  if (ext === '.tar') return 'docker-archive';
  if (ext === '.sif') return 'sif';
  throw new InputError(`-o ${output}: cannot tell the image format from the name; give --format squashfs|sif|dir|oci|docker-archive, or a name ending in .sqfs, .squashfs, .sif, .tar or /`);
}

// ---------------------------------------------------------------------------------------------
// Free space, checked once the selection is known and before the image is composed and written.

/** What one place must hold: bytes and inodes, and what they are for (messages). */
export interface SpaceNeed {
  /** An existing directory on the file system that must hold it. */
  dir: string;
  /** How the user names it in a message: "the output's directory /scratch", "$TMPDIR (/tmp)". */
  label: string;
  bytes: number;
  inodes: number;
  what: string;
}

/** What the build's estimate is made of (known after the selection). */
export interface SpaceInput {
  format: ImageFormat;
  compression: string;
  /** The selected /cvmfs entries, and the base's root filesystem entries (null: none). */
  payload: readonly { type: string; size: number }[];
  base: readonly { type: string; size: number }[] | null;
  /** Blobs an OCI image copies from the base byte for byte. */
  baseBlobBytes: number;
  /** The largest single blob an OCI image stages (docker-archive: one blob is in the layout and the archive at once). */
  largestLayerBytes: number;
  /** Bytes the output's temporary holds already (SquashFS writes its data area while selecting). */
  written: number;
}

/** Margin on every estimate: file system overhead, the generated files, rounding. */
const MARGIN = 1.05;
const MARGIN_BYTES = 1 << 20;

/**
 * How much the output's file system and $TMPDIR must hold. Compressed formats are estimated by the
 * uncompressed size: an upper bound (SquashFS stores a block that would not shrink as it is; a
 * gzip or zstd layer grows by a few bytes a block at worst), not a guess at a ratio.
 */
export function spaceNeeds(input: SpaceInput, outputDir: string, tmpDir: string): SpaceNeed[] {
  const all = input.base ? [input.payload, input.base] : [input.payload];
  let entries = 0;
  let content = 0;
  for (const list of all) {
    entries += list.length;
    for (const e of list) if (e.type === 'file') content += e.size;
  }
  let bytes: number;
  let inodes = 1;
  let what: string;
  if (input.format === 'dir') {
    // Each file takes whole blocks, each directory at least one; every entry an inode.
    const block = Math.max(512, fs.statfsSync(outputDir).bsize);
    bytes = 0;
    for (const list of all) for (const e of list) bytes += e.type === 'file' ? Math.ceil(e.size / block) * block : e.type === 'dir' ? block : 0;
    inodes = entries;
    what = 'the directory image';
  } else if (input.format === 'squashfs' || input.format === 'sif') {
    // Data (at most the content) and metadata: an inode, a directory entry and table slots, under 128 bytes an entry.
    bytes = content + entries * 128;
    what = input.compression === 'none' ? 'the SquashFS image' : 'the SquashFS image (at most its uncompressed size)';
  } else {
    // New layers are tar streams (a 512-byte header, often a PAX one, and content padded to 512);
    // base blobs are copied as they are.
    let tar = 0;
    for (const e of input.payload) tar += 1024 + (e.type === 'file' ? Math.ceil(e.size / 512) * 512 : 0);
    if (input.baseBlobBytes === 0 && input.base) for (const e of input.base) tar += 1024 + (e.type === 'file' ? Math.ceil(e.size / 512) * 512 : 0);
    bytes = tar + input.baseBlobBytes;
    if (input.format === 'docker-archive') bytes += Math.min(input.largestLayerBytes, bytes);
    inodes = 64;
    what = `the ${input.format === 'oci' ? 'OCI layout' : 'docker-archive'}${input.compression === 'none' ? '' : ' (at most its uncompressed size)'}`;
  }
  bytes = Math.max(0, Math.ceil(bytes * MARGIN) + MARGIN_BYTES - input.written);
  // $TMPDIR holds the generated files until they are written into the image: plan.json is the
  // largest, about 300 bytes an entry (the example's), 400 with margin.
  const tmp = input.base !== null || input.format === 'oci' || input.format === 'docker-archive' ? input.payload.length * 400 : 0;
  return [
    { dir: outputDir, label: `the output's directory ${outputDir}`, bytes, inodes, what },
    { dir: tmpDir, label: `$TMPDIR (${tmpDir})`, bytes: tmp, inodes: tmp > 0 ? 8 : 0, what: 'the generated files (plan.json)' },
  ];
}

/** Refuse, in one line, a build that cannot fit: the needs of places on one file system add up. */
export function checkFreeSpace(needs: SpaceNeed[]): void {
  const byDevice = new Map<number, SpaceNeed[]>();
  for (const n of needs) {
    if (n.bytes === 0 && n.inodes === 0) continue;
    const dev = fs.statSync(n.dir).dev;
    byDevice.set(dev, [...(byDevice.get(dev) ?? []), n]);
  }
  for (const group of byDevice.values()) {
    const st = fs.statfsSync(group[0]!.dir);
    const bytes = group.reduce((s, n) => s + n.bytes, 0);
    const inodes = group.reduce((s, n) => s + n.inodes, 0);
    const free = st.bavail * st.bsize;
    const where = group.map((n) => `${n.what} in ${n.label}`).join(' and ');
    const hint = 'free some, write elsewhere (-o, TMPDIR), or skip this check with --no-space-check';
    if (bytes > free) throw new BuildError(`not enough free space: ${where}: about ${humanBytes(bytes)} needed, ${humanBytes(free)} free; ${hint}`);
    // A file system that reports no inode count (btrfs) has no such limit.
    if (st.files > 0 && inodes > st.ffree) throw new BuildError(`not enough free inodes: ${where}: about ${inodes} needed, ${st.ffree} free; ${hint}`);
  }
}

function humanBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

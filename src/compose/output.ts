// Where a build writes: what each format's output is (a file or a directory), what --force may
// replace (an earlier output of the same kind only), and the side files that commit with it
// (util/atomic.ts writes them all under temporary names first).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../model/errors.js';
import type { OutputKind } from '../util/atomic.js';

export type ImageFormat = 'squashfs' | 'dir' | 'oci' | 'docker-archive';

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

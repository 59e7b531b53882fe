// The content-addressed cache: `objects/ab/<rest>` holds verified, inflated objects (named as the
// repository names them, `data/ab/<rest>`), `files/ab/<key>` files assembled from chunks. A name
// appears only complete and verified (written beside it under a temporary name, renamed after the
// hash matched); what killed runs left is swept at start.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BuildError, InputError, describeSystemError } from '../../../../model/errors.js';
import { sweepTemporaries } from '../../../../util/atomic.js';
import { type ChunkedRequest, type ObjectRequest, isChunked } from './types.js';

/** An object's path in a repository: two hex digits, the rest of the hash, the algorithm, the type. */
const OBJECT_PATH = /^data\/([0-9a-f]{2})\/([0-9a-f]{38}(?:[0-9a-f]{2})?(?:-rmd160|-shake128)?[A-Z]?)$/;
/** A chunked file's key: a plain name (a hash string), never a path or a hidden name. */
const FILE_KEY = /^[0-9A-Za-z][0-9A-Za-z_+-]*$/;

export function objectCachePath(cacheDir: string, r: ObjectRequest): string {
  const m = OBJECT_PATH.exec(r.path);
  if (!m) throw new InputError(`${r.fqrn}: ${r.path}: not an object path (data/XX/<hash>[suffix])`);
  return path.join(cacheDir, 'objects', m[1]!, m[2]!);
}

export function fileCachePath(cacheDir: string, r: ChunkedRequest): string {
  if (!FILE_KEY.test(r.key) || r.key.length < 3) throw new InputError(`${r.fqrn}: ${r.key}: not a cache key for a chunked file`);
  return path.join(cacheDir, 'files', r.key.slice(0, 2), r.key);
}

export function cachePathOf(cacheDir: string, r: ObjectRequest | ChunkedRequest): string {
  return isChunked(r) ? fileCachePath(cacheDir, r) : objectCachePath(cacheDir, r);
}

/** Create the cache root (0700: what a user fetched is theirs) and its two areas. */
export function ensureCacheDir(cacheDir: string): void {
  try {
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    for (const area of ['objects', 'files']) fs.mkdirSync(path.join(cacheDir, area), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new BuildError(`cvmfs cache ${cacheDir}: ${describeSystemError(err)}`);
  }
}

/** Remove temporaries that killed runs left in every cache directory. */
export function sweepCache(cacheDir: string): void {
  for (const area of ['objects', 'files']) {
    let subdirs: string[];
    try {
      subdirs = fs.readdirSync(path.join(cacheDir, area));
    } catch {
      continue;
    }
    for (const d of subdirs) if (/^[0-9a-zA-Z]{2}$/.test(d)) sweepTemporaries(path.join(cacheDir, area, d));
  }
}

/** Does a complete cache file exist (a regular file, never through a link)? */
export function cached(p: string): boolean {
  return fs.lstatSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

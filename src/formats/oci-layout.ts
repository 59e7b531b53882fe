// The OCI image layout on disk (image-spec image-layout.md): the `oci-layout` marker, `index.json`,
// and content-addressed `blobs/sha256/<hex>`. Both directions live here: the base reader and push
// read a layout, the OCI writer and pull write one. Files are written under an exclusive temporary
// name beside them (util/atomic.ts) and renamed into place, so a reader never sees half a blob and
// a pull into a shared cache cannot be redirected by a name planted there.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../model/errors.js';
import { sweepTemporaries, tempPathBeside, writeNewFile } from '../util/atomic.js';
import { sha256 } from '../util/digest.js';
import { type Check, MAX_DOCUMENT, obj, parseJson, readJsonFile, readRegularFile, singleLine, str } from '../util/json-check.js';
import { type Descriptor, type Index, indexCheck } from './oci.js';

export const MARKER_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
const MARKER = JSON.stringify({ imageLayoutVersion: '1.0.0' });
const markerCheck = obj({ imageLayoutVersion: str });

const SHA256 = /^sha256:([a-f0-9]{64})$/;

/** `blobs/sha256/<hex>` (relative to the layout), or null for a digest we cannot store (another algorithm). */
export function blobName(digest: string): string | null {
  const m = SHA256.exec(digest);
  return m ? `blobs/sha256/${m[1]!}` : null;
}

/** The file of blob `digest` under `layoutDir`, or null for a digest we cannot store. */
export function blobPath(layoutDir: string, digest: string): string | null {
  const name = blobName(digest);
  return name === null ? null : path.join(layoutDir, name);
}

/** Where blobs go: made (with its parents) when missing. */
export function makeBlobsDir(layoutDir: string): string {
  const dir = path.join(layoutDir, 'blobs', 'sha256');
  fs.mkdirSync(dir, { recursive: true });
  // A pull killed half-way (a shared cache is written again and again) left its temporaries.
  sweepTemporaries(dir);
  sweepTemporaries(layoutDir);
  return dir;
}

/** `data` into `file` through an exclusive temporary beside it, renamed into place. */
export function writeFileAtomic(file: string, data: Buffer | string): void {
  const tmp = tempPathBeside(file);
  try {
    writeNewFile(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** The marker, then the index: a layout whose index.json is there is complete. */
export function writeLayoutFiles(layoutDir: string, index: Index): void {
  writeFileAtomic(path.join(layoutDir, MARKER_FILE), MARKER);
  writeFileAtomic(path.join(layoutDir, INDEX_FILE), JSON.stringify(index));
}

/**
 * index.json of the layout in `dir`, with its `oci-layout` marker checked first when `marker`.
 * Both are read as regular files, not through links (nothing in a layout needs to point
 * elsewhere). `labelOf` names a file in messages.
 */
export function readLayoutIndex(dir: string, labelOf: (file: string) => string, opts: { marker: boolean }): Index {
  const read = <T>(name: string, check: Check<T>) => {
    const file = path.join(dir, name);
    return readJsonFile(file, check, labelOf(file), { limit: MAX_DOCUMENT, noFollow: true }).value;
  };
  if (opts.marker) read(MARKER_FILE, markerCheck);
  return read(INDEX_FILE, indexCheck);
}

/** Reads blobs of a layout, each verified against the descriptor that names it. */
export class LayoutReader {
  constructor(
    readonly dir: string,
    readonly label: string,
  ) {}

  /** Descriptors were checked (digest grammar) when their document was read; we store sha256 only. */
  blobPath(d: Descriptor, what: string): string {
    const file = blobPath(this.dir, d.digest);
    if (file === null) throw new InputError(`${this.label}: ${what} ${singleLine(d.digest, 80)}: only sha256 blobs can be read`);
    return file;
  }

  /** A small JSON document, verified against its descriptor, then checked against its schema. */
  json<T>(d: Descriptor, what: string, check: Check<T>, limit = MAX_DOCUMENT): { value: T; bytes: Buffer } {
    const file = this.blobPath(d, what);
    const name = `${this.label}: ${what} ${d.digest}`;
    // The descriptor's size first: no need to open a blob that cannot be the one named.
    if (d.size > limit) throw new InputError(`${name}: its descriptor says ${d.size} bytes, more than the ${limit} allowed`);
    const bytes = readRegularFile(file, `${name} (${file})`, { limit });
    const digest = sha256(bytes);
    if (digest !== d.digest) throw new InputError(`${this.label}: ${what} blob ${d.digest} has digest ${digest} (corrupt layout)`);
    if (d.size !== bytes.length) throw new InputError(`${name} is ${bytes.length} bytes, its descriptor says ${d.size}`);
    return { value: parseJson(bytes, check, name), bytes };
  }
}

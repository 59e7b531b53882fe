// The body of `.cvmfspublished` (cvmfs/manifest.cc): one `<key letter><value>` per line, the
// last line of a key winning, read up to the `--` line. Signing and splitting: ./signed.ts.
import { type ContentHash, FormatError, hashString, parseHashString, printable } from './hash.js';

export interface Manifest {
  /** C: the root catalog. */
  rootCatalog: ContentHash;
  /** R: MD5 (hex) of the root path, '' for a repository's own root. */
  rootPathHash: string | null;
  /** B: the root catalog's size in bytes, uncompressed (the SQLite file, not the object). */
  catalogSize: number | null;
  /** D: how long a client may keep this manifest, seconds. */
  ttl: number | null;
  /** S */
  revision: number;
  /** G: `yes` when garbage collection may remove unreferenced objects. */
  garbageCollectable: boolean | null;
  /** N: the fully qualified repository name. */
  fqrn: string;
  /** X: the certificate that signs this manifest. */
  certificate: ContentHash;
  /** H: the history (tags) database. */
  history: ContentHash | null;
  /** T: publication time, seconds since the epoch (0 when absent). */
  timestamp: number;
  /** M: the meta-info JSON object. */
  metainfo: ContentHash | null;
  /** Y: the reflog database. */
  reflog: ContentHash | null;
  /** A: `yes` when objects also have `.cvmfsalt-<hash>` shortcuts (newer servers always write A; absent: no line). */
  altCatalogPath?: boolean | null;
  /** L: a micro catalog (reserved by cvmfs, unused; absent: no line). */
  microCatalog?: ContentHash | null;
}

/** The lines of a key-value letter up to `--` (ParseKeyvalMem), by key; the last line of a key wins. */
function keyValues(body: Buffer): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of body.toString('latin1').split('\n')) {
    if (line === '--') break;
    if (line !== '') values.set(line[0]!, line.slice(1));
  }
  return values;
}

function required(values: Map<string, string>, key: string, what: string): string {
  const value = values.get(key);
  if (value === undefined) throw new FormatError(`the manifest has no ${key} line (${what})`);
  return value;
}

function hashValue(key: string, value: string): ContentHash {
  try {
    return parseHashString(value);
  } catch {
    throw new FormatError(`manifest line ${key}: '${printable(value)}' is not a content hash`);
  }
}

function integerValue(key: string, value: string): number {
  const n = Number(value);
  if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(n)) throw new FormatError(`manifest line ${key}: '${printable(value)}' is not a whole number`);
  return n;
}

function optional<T>(values: Map<string, string>, key: string, parse: (key: string, value: string) => T): T | null {
  const value = values.get(key);
  return value === undefined ? null : parse(key, value);
}

/** cvmfs reads `yes` as true and anything else as false. */
const yesNo = (_key: string, value: string): boolean => value === 'yes';

function md5Hex(key: string, value: string): string {
  if (!/^[0-9a-f]{32}$/.test(value)) throw new FormatError(`manifest line ${key}: '${printable(value)}' is not an MD5 in hex`);
  return value;
}

/** A manifest body (or the whole file: reading stops at `--`). Needs the C, S, N and X lines. */
export function parseManifest(body: Buffer): Manifest {
  const values = keyValues(body);
  const manifest: Manifest = {
    rootCatalog: hashValue('C', required(values, 'C', 'root catalog')),
    rootPathHash: optional(values, 'R', md5Hex),
    catalogSize: optional(values, 'B', integerValue),
    ttl: optional(values, 'D', integerValue),
    revision: integerValue('S', required(values, 'S', 'revision')),
    garbageCollectable: optional(values, 'G', yesNo),
    fqrn: required(values, 'N', 'repository name'),
    certificate: hashValue('X', required(values, 'X', 'certificate')),
    history: optional(values, 'H', hashValue),
    timestamp: optional(values, 'T', integerValue) ?? 0,
    metainfo: optional(values, 'M', hashValue),
    reflog: optional(values, 'Y', hashValue),
  };
  // A and L are set only when their lines are there, so a Manifest without them round-trips.
  if (values.has('A')) manifest.altCatalogPath = yesNo('A', values.get('A')!);
  if (values.has('L')) manifest.microCatalog = hashValue('L', values.get('L')!);
  if (manifest.fqrn === '') throw new FormatError('the manifest has an empty N line (repository name)');
  return manifest;
}

/** The manifest body in Manifest::ExportString's order; absent (null) keys are left out. */
export function encodeManifest(m: Manifest): Buffer {
  const lines: Array<[string, string | null | undefined]> = [
    ['C', hashString(m.rootCatalog)],
    ['B', m.catalogSize?.toString()],
    ['R', m.rootPathHash],
    ['D', m.ttl?.toString()],
    ['S', m.revision.toString()],
    ['G', yesNoText(m.garbageCollectable)],
    ['A', yesNoText(m.altCatalogPath)],
    ['L', m.microCatalog ? hashString(m.microCatalog) : null],
    ['N', m.fqrn === '' ? null : m.fqrn],
    ['X', hashString(m.certificate)],
    ['H', m.history ? hashString(m.history) : null],
    ['T', m.timestamp > 0 ? m.timestamp.toString() : null],
    ['M', m.metainfo ? hashString(m.metainfo) : null],
    ['Y', m.reflog ? hashString(m.reflog) : null],
  ];
  let text = '';
  for (const [key, value] of lines) {
    if (value === null || value === undefined) continue;
    if (/[\n\r]/.test(value)) throw new Error(`manifest line ${key}: a value cannot hold a newline`);
    text += `${key}${value}\n`;
  }
  return Buffer.from(text, 'latin1');
}

function yesNoText(v: boolean | null | undefined): string | null {
  return v === null || v === undefined ? null : v ? 'yes' : 'no';
}

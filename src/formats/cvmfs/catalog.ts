// CernVM-FS file catalogs (SQLite, schema 2.5; cvmfs/catalog_sql.{h,cc}, xattr.cc,
// directory_entry.h) and the history database (history_sql.cc): the columns' encodings, both ways.
// Reading and writing the database itself is util/sqlite.ts; this file knows what the values mean.
import { createHash } from 'node:crypto';
import { FormatError, type HashAlgorithm } from './hash.js';

// ---- flags (SqlDirent::kFlag*) ----

export const FLAG_DIR = 1;
/** A directory whose subtree is in a nested catalog: the link in the parent catalog. */
export const FLAG_NESTED_MOUNTPOINT = 2;
export const FLAG_FILE = 4;
/** With FLAG_FILE. */
export const FLAG_LINK = 8;
/** With FLAG_FILE: a fifo, socket or device (schema revision 5). Its type is in `mode`; a device's dev_t is in `size`. */
export const FLAG_SPECIAL = 16;
/** The root directory of a nested catalog: its row in the child catalog. */
export const FLAG_NESTED_ROOT = 32;
/** A file stored in chunks (`chunks` table, objects with suffix P). */
export const FLAG_CHUNKED = 64;
/** A file whose bytes are not in the repository but on external storage (revision 3). */
export const FLAG_EXTERNAL = 128;
/** 3 bits from here: the content hash's algorithm, 0 SHA-1, 1 RIPEMD-160, 2 SHAKE-128. */
export const FLAG_POS_HASH = 8;
/** 3 bits from here: how the file's object is compressed, 0 zlib, 1 none (revision 3). */
export const FLAG_POS_COMPRESSION = 11;
/** A link to another root catalog, e.g. a snapshot (revision 4; table bind_mountpoints). */
export const FLAG_BIND_MOUNTPOINT = 0x4000;
/** Left out of listings, e.g. /.cvmfs (revision 4). */
export const FLAG_HIDDEN = 0x8000;
/** A regular file to be opened with direct I/O (revision 6). */
export const FLAG_DIRECT_IO = 0x10000;

const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['sha1', 'rmd160', 'shake128'];
const COMPRESSIONS = ['zlib', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export function hashAlgorithmOfFlags(flags: number): HashAlgorithm {
  const code = (flags >>> FLAG_POS_HASH) & 7;
  const algorithm = HASH_ALGORITHMS[code];
  if (algorithm === undefined) throw new FormatError(`catalog flags ${flags}: unknown hash algorithm ${code}`);
  return algorithm;
}

export function compressionOfFlags(flags: number): Compression {
  const code = (flags >>> FLAG_POS_COMPRESSION) & 7;
  const compression = COMPRESSIONS[code];
  if (compression === undefined) throw new FormatError(`catalog flags ${flags}: unknown compression ${code}`);
  return compression;
}

export type CatalogEntryType = 'dir' | 'file' | 'symlink' | 'special';

/** What a row's flags say; for a special file, `mode` says which kind. */
export interface DecodedFlags {
  type: CatalogEntryType;
  nestedMountpoint: boolean;
  nestedRoot: boolean;
  bindMountpoint: boolean;
  chunked: boolean;
  external: boolean;
  hidden: boolean;
  directIo: boolean;
  hashAlgorithm: HashAlgorithm;
  compression: Compression;
}

export function typeOfFlags(flags: number): CatalogEntryType {
  if (flags & FLAG_DIR) return 'dir';
  if (!(flags & FLAG_FILE)) throw new FormatError(`catalog flags ${flags}: neither a directory nor a file`);
  if (flags & FLAG_LINK) return 'symlink';
  if (flags & FLAG_SPECIAL) return 'special';
  return 'file';
}

export function decodeFlags(flags: number): DecodedFlags {
  return {
    type: typeOfFlags(flags),
    nestedMountpoint: (flags & FLAG_NESTED_MOUNTPOINT) !== 0,
    nestedRoot: (flags & FLAG_NESTED_ROOT) !== 0,
    bindMountpoint: (flags & FLAG_BIND_MOUNTPOINT) !== 0,
    chunked: (flags & FLAG_CHUNKED) !== 0,
    external: (flags & FLAG_EXTERNAL) !== 0,
    hidden: (flags & FLAG_HIDDEN) !== 0,
    directIo: (flags & FLAG_DIRECT_IO) !== 0,
    hashAlgorithm: hashAlgorithmOfFlags(flags),
    compression: compressionOfFlags(flags),
  };
}

export interface FlagsSpec {
  type: CatalogEntryType;
  /** Nested catalog root, nested catalog mountpoint or bind mountpoint (directories; one at most). */
  transition?: 'nestedRoot' | 'nestedMountpoint' | 'bindMountpoint';
  /** The content hash's algorithm, when the entry has a hash or is chunked. */
  hashAlgorithm?: HashAlgorithm;
  /** Regular files: default zlib. */
  compression?: Compression;
  chunked?: boolean;
  external?: boolean;
  directIo?: boolean;
  hidden?: boolean;
}

/** The flags column for an entry (SqlDirent::CreateDatabaseFlags). */
export function flagsFor(spec: FlagsSpec): number {
  let flags = 0;
  if (spec.transition === 'nestedRoot') flags |= FLAG_NESTED_ROOT;
  else if (spec.transition === 'nestedMountpoint') flags |= FLAG_NESTED_MOUNTPOINT;
  else if (spec.transition === 'bindMountpoint') flags |= FLAG_BIND_MOUNTPOINT;
  if (spec.type === 'dir') flags |= FLAG_DIR;
  else if (spec.type === 'symlink') flags |= FLAG_FILE | FLAG_LINK;
  else if (spec.type === 'special') flags |= FLAG_FILE | FLAG_SPECIAL;
  else {
    flags |= FLAG_FILE | (COMPRESSIONS.indexOf(spec.compression ?? 'zlib') << FLAG_POS_COMPRESSION);
    if (spec.chunked) flags |= FLAG_CHUNKED;
    if (spec.external) flags |= FLAG_EXTERNAL;
    if (spec.directIo) flags |= FLAG_DIRECT_IO;
  }
  if (spec.hashAlgorithm !== undefined) flags |= HASH_ALGORITHMS.indexOf(spec.hashAlgorithm) << FLAG_POS_HASH;
  if (spec.hidden) flags |= FLAG_HIDDEN;
  return flags;
}

// ---- path hashes ----

/**
 * The key of a path's row: the MD5 of the repository path (a byte string; '' for the
 * repository's root, `/a/b` below it), bytes 0-7 and 8-15 each as a signed little-endian int64.
 */
export function md5Path(repoPath: string): [bigint, bigint] {
  return md5Halves(createHash('md5').update(Buffer.from(repoPath, 'latin1')).digest());
}

/** The two halves of a 16-byte MD5 (also for the manifest's R line, after hex decoding). */
export function md5Halves(digest: Buffer): [bigint, bigint] {
  if (digest.length !== 16) throw new FormatError(`an MD5 path hash has 16 bytes, not ${digest.length}`);
  return [digest.readBigInt64LE(0), digest.readBigInt64LE(8)];
}

// ---- hardlinks column ----

/** `hardlinks` = group << 32 | link count (SqlDirent::Hardlinks2*); group 0 is no hardlink group. */
export function decodeHardlinks(v: bigint): { group: number; linkCount: number } {
  const u = BigInt.asUintN(64, v);
  return { group: Number(u >> 32n), linkCount: Number(u & 0xffffffffn) };
}

/** The column's value, as SQLite stores it (a signed 64-bit integer). */
export function encodeHardlinks(group: number, linkCount: number): bigint {
  if (!isUint32(group) || !isUint32(linkCount) || linkCount === 0) throw new Error(`hardlinks: group ${group} and link count ${linkCount} must be 32-bit, the count above 0`);
  return BigInt.asIntN(64, (BigInt(group) << 32n) | BigInt(linkCount));
}

function isUint32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

// ---- xattr column (XattrList::Serialize / Deserialize) ----
//
//   u8 version (1), u8 count, then per attribute: u8 key length, u8 value length, key, value.
// Keys are sorted (a std::map) and unique, 1-255 bytes with no NUL; values 0-255 bytes.
// A NULL column is no attributes; cvmfs writes NULL rather than an empty list.

const XATTR_VERSION = 1;

/** Attributes as [key (byte string), value]. Throws FormatError on a malformed blob. */
export function decodeXattrs(blob: Uint8Array | null | undefined): Array<[string, Buffer]> {
  if (blob === null || blob === undefined) return [];
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (buf.length < 2) throw new FormatError(`xattr list of ${buf.length} bytes: shorter than its header`);
  if (buf[0] !== XATTR_VERSION) throw new FormatError(`xattr list version ${buf[0]}, not ${XATTR_VERSION}`);
  const count = buf[1]!;
  const byKey = new Map<string, Buffer>();
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > buf.length) throw new FormatError(`xattr list: attribute ${i + 1} of ${count} is cut off`);
    const keyLength = buf[pos]!;
    const valueLength = buf[pos + 1]!;
    pos += 2;
    if (pos + keyLength + valueLength > buf.length) throw new FormatError(`xattr list: attribute ${i + 1} of ${count} is cut off`);
    const key = buf.toString('latin1', pos, pos + keyLength);
    if (keyLength === 0 || key.includes('\0')) throw new FormatError(`xattr list: attribute ${i + 1} has an empty key or one with a NUL byte`);
    byKey.set(key, Buffer.from(buf.subarray(pos + keyLength, pos + keyLength + valueLength)));
    pos += keyLength + valueLength;
  }
  return sortedXattrs(byKey);
}

/** The blob for a list of attributes (the last value of a repeated key wins); null for none. */
export function encodeXattrs(list: Iterable<readonly [string, Uint8Array]>): Buffer | null {
  const byKey = new Map<string, Buffer>();
  for (const [key, value] of list) {
    if (key.length === 0 || key.length > 255 || key.includes('\0')) throw new Error(`xattr key '${key}': 1-255 bytes without NUL`);
    if (value.length > 255) throw new Error(`xattr ${key}: a value has at most 255 bytes, not ${value.length}`);
    byKey.set(key, Buffer.from(value));
  }
  if (byKey.size > 255) throw new Error(`at most 255 xattrs per entry, not ${byKey.size}`);
  if (byKey.size === 0) return null;
  const parts: Buffer[] = [Buffer.from([XATTR_VERSION, byKey.size])];
  for (const [key, value] of sortedXattrs(byKey)) parts.push(Buffer.from([key.length, value.length]), Buffer.from(key, 'latin1'), value);
  return Buffer.concat(parts);
}

function sortedXattrs(byKey: Map<string, Buffer>): Array<[string, Buffer]> {
  // Byte order of the keys, as std::map<std::string> sorts them (latin1 code units are the bytes).
  return [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---- variant symlinks (SqlDirent::ExpandSymlink) ----

/**
 * A symlink target with `$(VAR)` and `$(VAR:-default)` expanded as the client does:
 * `lookup(VAR)` is the client's environment; a set variable gives its value (even ''), an unset one
 * its default or '' (onUnset is called then, when there is no default). A `$(` with no `)` after it,
 * and a `$(` that ends the target, stay as they are.
 */
export function expandVariantSymlink(target: string, lookup: (name: string) => string | undefined, onUnset: (name: string) => void): string {
  if (!target.includes('$')) return target;
  let out = '';
  let i = 0;
  while (i < target.length) {
    // cvmfs needs a character after the `$(` (c < cEnd-2).
    if (target[i] === '$' && target[i + 1] === '(' && i + 2 < target.length) {
      const close = target.indexOf(')', i + 2);
      if (close < 0) return out + target.slice(i);
      const inner = target.slice(i + 2, close);
      const sep = inner.indexOf(':-');
      const name = sep < 0 ? inner : inner.slice(0, sep);
      const value = lookup(name);
      if (value !== undefined) out += value;
      else if (sep >= 0) out += inner.slice(sep + 2);
      else onUnset(name);
      i = close + 1;
    } else {
      out += target[i];
      i++;
    }
  }
  return out;
}

// ---- special files ----

/** A special file's kind from its mode's S_IFMT bits; its dev_t is the `size` column (char and block). */
export function specialKindOfMode(mode: number): 'char' | 'block' | 'fifo' | 'socket' {
  switch (mode & 0o170000) {
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      throw new FormatError(`mode ${mode.toString(8)} is not that of a special file`);
  }
}

// ---- the catalog database ----

export const CATALOG_SCHEMA_VERSION = '2.5';
/** The newest revision of schema 2.5 (catalog_sql.cc kLatestSchemaRevision): 7, with mtimens. */
export const CATALOG_SCHEMA_REVISION = 7;

/** The columns of the catalog table, in cvmfs's order (revision 7; mtimens is new in 7, xattr in 2). */
export const CATALOG_COLUMNS = ['md5path_1', 'md5path_2', 'parent_1', 'parent_2', 'hardlinks', 'hash', 'size', 'mode', 'mtime', 'mtimens', 'flags', 'name', 'symlink', 'uid', 'gid', 'xattr'] as const;

/**
 * The statistics counters, `self_*` (this catalog) and `subtree_*` (its nested catalogs), in the
 * order cvmfs inserts them (a std::map: by name). Revision 2 has no external*, special.
 */
export const STATISTICS_COUNTERS: readonly string[] = ['self', 'subtree'].flatMap((scope) =>
  ['chunked', 'chunked_size', 'chunks', 'dir', 'external', 'external_file_size', 'file_size', 'nested', 'regular', 'special', 'symlink', 'xattr'].map((c) => `${scope}_${c}`),
);

const PROPERTIES_TABLE = 'CREATE TABLE properties (key TEXT, value TEXT, CONSTRAINT pk_properties PRIMARY KEY (key))';

/**
 * The statements that make an empty catalog of revision 7, as cvmfs_server does
 * (Database::Create, CatalogDatabase::CreateEmptyDatabase, InsertInitialValues): the tables, the
 * schema properties, `revision` 0, and every counter at 0. The caller adds the rows, sets the
 * counters (`UPDATE statistics SET value = ? WHERE counter = ?`) and the properties
 * `revision`, `last_modified` (seconds), `previous_revision` (hash of the previous root catalog)
 * and, for a nested catalog, `root_prefix` (its path).
 */
export const CATALOG_SCHEMA: string[] = [
  PROPERTIES_TABLE,
  'CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER, hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, mtimens INTEGER, flags INTEGER, name TEXT, symlink TEXT, uid INTEGER, gid INTEGER, xattr BLOB,  CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2))',
  'CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2)',
  'CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER,  hash BLOB,  CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size),  FOREIGN KEY (md5path_1, md5path_2) REFERENCES    catalog(md5path_1, md5path_2))',
  'CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_nested_catalogs PRIMARY KEY (path))',
  'CREATE TABLE bind_mountpoints (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_bind_mountpoints PRIMARY KEY (path))',
  'CREATE TABLE statistics (counter TEXT, value INTEGER, CONSTRAINT pk_statistics PRIMARY KEY (counter))',
  `INSERT INTO properties (key, value) VALUES ('schema', '${CATALOG_SCHEMA_VERSION}')`,
  `INSERT INTO properties (key, value) VALUES ('schema_revision', '${CATALOG_SCHEMA_REVISION}')`,
  "INSERT INTO properties (key, value) VALUES ('revision', '0')",
  ...STATISTICS_COUNTERS.map((c) => `INSERT INTO statistics (counter, value) VALUES ('${c}', 0)`),
];

/** Counters of revision 2 catalogs (the 2015 legacy fixture): no external*, no special. */
export const STATISTICS_COUNTERS_R2: readonly string[] = STATISTICS_COUNTERS.filter((c) => !/_(external|external_file_size|special)$/.test(c));

/**
 * The same for revision 2, as cvmfs_server 2.1 wrote it (and the legacy fixture has it, byte for
 * byte in sqlite_master): no mtimens column, no bind_mountpoints table, fewer counters.
 */
export const CATALOG_SCHEMA_R2: string[] = [
  PROPERTIES_TABLE,
  'CREATE TABLE catalog (md5path_1 INTEGER, md5path_2 INTEGER, parent_1 INTEGER, parent_2 INTEGER, hardlinks INTEGER, hash BLOB, size INTEGER, mode INTEGER, mtime INTEGER, flags INTEGER, name TEXT, symlink TEXT, uid INTEGER, gid INTEGER,  xattr BLOB,  CONSTRAINT pk_catalog PRIMARY KEY (md5path_1, md5path_2))',
  'CREATE INDEX idx_catalog_parent ON catalog (parent_1, parent_2)',
  'CREATE TABLE chunks (md5path_1 INTEGER, md5path_2 INTEGER, offset INTEGER, size INTEGER,  hash BLOB,  CONSTRAINT pk_chunks PRIMARY KEY (md5path_1, md5path_2, offset, size),  FOREIGN KEY (md5path_1, md5path_2) REFERENCES    catalog(md5path_1, md5path_2))',
  'CREATE TABLE nested_catalogs (path TEXT, sha1 TEXT, size INTEGER, CONSTRAINT pk_nested_catalogs PRIMARY KEY (path))',
  'CREATE TABLE statistics (counter TEXT, value INTEGER, CONSTRAINT pk_statistics PRIMARY KEY (counter))',
  `INSERT INTO properties (key, value) VALUES ('schema', '${CATALOG_SCHEMA_VERSION}')`,
  "INSERT INTO properties (key, value) VALUES ('schema_revision', '2')",
  "INSERT INTO properties (key, value) VALUES ('revision', '0')",
  ...STATISTICS_COUNTERS_R2.map((c) => `INSERT INTO statistics (counter, value) VALUES ('${c}', 0)`),
];

// ---- the history database (object suffix H) ----

export const HISTORY_SCHEMA_VERSION = '1.0';
/** history_sql.cc kLatestSchemaRevision: 3 adds `branches` and tags.branch (and empties recycle_bin). */
export const HISTORY_SCHEMA_REVISION = 3;

/**
 * Columns of `tags`: name, hash (the root catalog's hash string, no suffix letter), revision,
 * timestamp (seconds), channel (0 trunk … ), description, size (the root catalog's, uncompressed),
 * branch ('' for the trunk; revision 3).
 */
export const TAG_COLUMNS = ['name', 'hash', 'revision', 'timestamp', 'channel', 'description', 'size', 'branch'] as const;

/**
 * An empty history database of revision 3 (HistoryDatabase::CreateEmptyDatabase): the caller adds
 * `fqrn` (and `previous_revision`) to properties and its tags.
 */
export const HISTORY_SCHEMA: string[] = [
  PROPERTIES_TABLE,
  "CREATE TABLE branches (branch TEXT, parent TEXT, initial_revision INTEGER,  CONSTRAINT pk_branch PRIMARY KEY (branch),   FOREIGN KEY (parent) REFERENCES branches (branch),   CHECK ((branch <> '') OR (parent IS NULL)),   CHECK ((branch = '') OR (parent IS NOT NULL)))",
  "INSERT INTO branches (branch, parent, initial_revision) VALUES ('', NULL, 0)",
  'CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER,   timestamp INTEGER, channel INTEGER, description TEXT, size INTEGER,   branch TEXT, CONSTRAINT pk_tags PRIMARY KEY (name),   FOREIGN KEY (branch) REFERENCES branches (branch))',
  'CREATE TABLE recycle_bin (hash TEXT, flags INTEGER,   CONSTRAINT pk_hash PRIMARY KEY (hash))',
  `INSERT INTO properties (key, value) VALUES ('schema', '${HISTORY_SCHEMA_VERSION}')`,
  `INSERT INTO properties (key, value) VALUES ('schema_revision', '${HISTORY_SCHEMA_REVISION}')`,
];

/** Revision 2 (the legacy fixture's, byte for byte in sqlite_master): tags without branch, no branches table. */
export const HISTORY_SCHEMA_R2: string[] = [
  PROPERTIES_TABLE,
  'CREATE TABLE tags (name TEXT, hash TEXT, revision INTEGER,   timestamp INTEGER, channel INTEGER, description TEXT, size INTEGER,   CONSTRAINT pk_tags PRIMARY KEY (name))',
  'CREATE TABLE recycle_bin (hash TEXT, flags INTEGER,   CONSTRAINT pk_hash PRIMARY KEY (hash))',
  `INSERT INTO properties (key, value) VALUES ('schema', '${HISTORY_SCHEMA_VERSION}')`,
  "INSERT INTO properties (key, value) VALUES ('schema_revision', '2')",
];

// One CernVM-FS catalog: an SQLite database describing a subtree of a repository, opened from the
// object cache. Rows are keyed by the MD5 of their repository path (formats/cvmfs/catalog.ts);
// a directory's children are the rows whose parent key is its key.
import { display, fromBuffer } from '../../../model/bytes.js';
import { BuildError } from '../../../model/errors.js';
import {
  FLAG_CHUNKED,
  FLAG_DIR,
  FLAG_EXTERNAL,
  FLAG_HIDDEN,
  FLAG_LINK,
  FLAG_NESTED_MOUNTPOINT,
  FLAG_SPECIAL,
  compressionOfFlags,
  decodeHardlinks,
  decodeXattrs,
  hashAlgorithmOfFlags,
  md5Path,
} from '../../../formats/cvmfs/catalog.js';
import { type ContentHash, DIGEST_SIZE, parseHashString } from '../../../formats/cvmfs/hash.js';
import { type SqlDatabase, type SqlRow, type SqlStatement, openDatabase } from '../../../util/sqlite.js';

/** A row of the `catalog` table, decoded. Paths and names are byte strings (model/bytes.ts). */
export interface CatalogRow {
  name: string;
  flags: number;
  mode: number;
  size: number;
  mtime: number;
  /** Link target as stored (variants not yet expanded), for symlinks. */
  symlink: string;
  hash: ContentHash | null;
  compressed: boolean;
  hardlinkGroup: number;
  linkCount: number;
  xattrs: Array<[string, Buffer]> | null;
  /** The catalog the row came from (hard-link groups are numbered per catalog). */
  catalog: Catalog;
}

export interface NestedCatalog {
  /** Repository path of the mount point ('/a/b'). */
  path: string;
  hash: ContentHash;
  size: number;
}

export interface Chunk {
  offset: number;
  size: number;
  hash: ContentHash;
}

// Names, link targets and paths as stored, byte for byte: SQLite's TEXT read as a string would be
// decoded as UTF-8, turning a name that is not into U+FFFD (and losing its subtree, whose parent
// key is the MD5 of the real bytes).
const COLUMNS = 'CAST(name AS BLOB) AS name, flags, mode, size, mtime, CAST(symlink AS BLOB) AS symlink, hash, hardlinks, xattr';

/** Catalogs open at once: each holds a file descriptor and a page cache; a release enters thousands. */
const MAX_OPEN = 64;
/** Open catalogs, least recently used first. */
const open = new Set<Catalog>();

/** Bytes of a BLOB (or TEXT cast to one) as a byte string. */
const bytesOf = (v: unknown): string => (v instanceof Uint8Array ? fromBuffer(Buffer.from(v.buffer, v.byteOffset, v.byteLength)) : v === null || v === undefined ? '' : fromBuffer(Buffer.from(String(v), 'utf8')));

interface Statements {
  db: SqlDatabase;
  byKey: SqlStatement;
  byParent: SqlStatement;
  chunksOf: SqlStatement;
}

export class Catalog {
  private handle: Statements | null = null;
  private readonly columns: string;
  /** Nested catalogs, by mount point, deepest first; each strictly below this catalog's root. */
  readonly nested: NestedCatalog[];
  readonly properties: Map<string, string>;

  /**
   * @param file the decompressed catalog in the cache
   * @param mountpoint repository path of its root ('' for the root catalog)
   * @param id a number unique among the run's catalogs (hard links are grouped per catalog)
   * @param label repository and object, for messages
   */
  constructor(
    private readonly file: string,
    readonly mountpoint: string,
    readonly id: number,
    readonly label: string,
  ) {
    const db = this.guard(() => openDatabase(file, { readOnly: true }));
    try {
      const read = this.guard(() => {
        // A crafted catalog cannot run code through its schema (a view named catalog, triggers).
        db.exec('PRAGMA trusted_schema = OFF');
        const kinds = new Map(db.prepare("SELECT name, type FROM sqlite_master WHERE name IN ('catalog', 'chunks', 'nested_catalogs', 'properties', 'bind_mountpoints')").all().map((r) => [String(r.name), String(r.type)]));
        for (const t of ['catalog', 'chunks', 'nested_catalogs', 'properties']) if (kinds.get(t) !== 'table') throw new BuildError(`${label}: not a catalog (no table ${t})`);
        const columns = new Set(db.prepare("SELECT name FROM pragma_table_info('catalog')").all().map((r) => String(r.name)));
        const selected = columns.has('xattr') ? COLUMNS : COLUMNS.replace(', xattr', ', NULL AS xattr');
        const properties = new Map(db.prepare('SELECT key, value FROM properties').all().map((r) => [String(r.key), String(r.value)]));
        // A catalog planted elsewhere than where it is mounted (bind mount points, a root prefix that is
        // not its mount point) keys its rows by other paths: not read rather than read wrong.
        const prefix = properties.get('root_prefix');
        if (prefix !== undefined && prefix.replace(/\/$/, '') !== mountpoint) throw new BuildError(`${label}: a catalog planted at ${prefix}, mounted at ${mountpoint || '/'}: not supported`);
        if (kinds.get('bind_mountpoints') === 'table' && db.prepare('SELECT count(*) AS n FROM bind_mountpoints').get()!.n !== 0n) {
          throw new BuildError(`${label}: bind mount points are not supported`);
        }
        return { selected, properties, nested: this.nestedRows(db) };
      });
      this.columns = read.selected;
      this.properties = read.properties;
      this.nested = read.nested;
    } finally {
      db.close();
    }
  }

  /** A failure of SQLite or of a row's format, as one line naming the catalog. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof BuildError) throw err;
      throw new BuildError(`${this.label}: not a readable catalog (${(err as Error).message})`);
    }
  }

  private nestedRows(db: SqlDatabase): NestedCatalog[] {
    const rows = db.prepare('SELECT CAST(path AS BLOB) AS path, sha1, size FROM nested_catalogs').all();
    const out = rows.map((r) => {
      const p = bytesOf(r.path);
      // Strictly below this catalog's root: a catalog listing itself or an ancestor would loop.
      if (!p.startsWith(this.mountpoint + '/') || !isRepoPath(p)) throw new BuildError(`${this.label}: nested catalog at ${JSON.stringify(display(p))}, not below ${this.mountpoint || '/'}`);
      let hash: ContentHash;
      try {
        hash = parseHashString(String(r.sha1));
      } catch {
        throw new BuildError(`${this.label}: nested catalog at ${display(p)}: ${JSON.stringify(String(r.sha1))} is not a content hash`);
      }
      return { path: p, hash, size: Number(r.size ?? 0) };
    });
    return out.sort((a, b) => b.path.length - a.path.length);
  }

  /** The statements, the database opened again if it was closed to keep the number open bounded. */
  private db(): Statements {
    if (this.handle) {
      open.delete(this);
      open.add(this);
      return this.handle;
    }
    if (open.size >= MAX_OPEN) open.values().next().value!.close();
    this.handle = this.guard(() => {
      const db = openDatabase(this.file, { readOnly: true });
      db.exec('PRAGMA trusted_schema = OFF');
      return {
        db,
        byKey: db.prepare(`SELECT ${this.columns} FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?`),
        byParent: db.prepare(`SELECT ${this.columns} FROM catalog WHERE parent_1 = ? AND parent_2 = ?`),
        chunksOf: db.prepare('SELECT offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ? ORDER BY offset'),
      };
    });
    open.add(this);
    return this.handle;
  }

  /** The nested catalog whose subtree holds `repoPath` (itself included), if any. */
  nestedFor(repoPath: string): NestedCatalog | null {
    for (const n of this.nested) {
      if (repoPath === n.path || (repoPath.startsWith(n.path) && repoPath.charCodeAt(n.path.length) === 47)) return n;
    }
    return null;
  }

  /** The row at `repoPath`, or null. */
  lookup(repoPath: string): CatalogRow | null {
    const [a, b] = md5Path(repoPath);
    const r = this.guard(() => this.db().byKey.get(a, b));
    return r ? this.decode(r, repoPath) : null;
  }

  /** The rows of a directory's children, in no particular order. */
  children(repoPath: string): CatalogRow[] {
    const [a, b] = md5Path(repoPath);
    return this.guard(() => this.db().byParent.all(a, b)).map((r) => this.decode(r, null, repoPath));
  }

  /** A chunked file's chunks, in order; their hashes are of the file's algorithm. */
  chunks(row: CatalogRow, repoPath: string): Chunk[] {
    const [a, b] = md5Path(repoPath);
    const algorithm = hashAlgorithmOfFlags(row.flags);
    return this.guard(() => this.db().chunksOf.all(a, b)).map((r) => {
      const digest = r.hash instanceof Uint8Array ? Buffer.from(r.hash) : null;
      if (!digest || digest.length !== DIGEST_SIZE) throw new BuildError(`${this.label}: ${display(repoPath)}: a chunk at ${r.offset} without a content hash`);
      return { offset: Number(r.offset), size: Number(r.size), hash: { algorithm, digest } };
    });
  }

  /** A row as the tree uses it; `path` is the row's own path, or `parent` its directory's. */
  private decode(r: SqlRow, path: string | null, parent?: string): CatalogRow {
    const name = bytesOf(r.name);
    const at = path ?? `${parent}/${name}`;
    // A name the kernel would never show (`..`, `a/b`, NUL): an image holding it could escape where it is unpacked.
    if (path === null ? !isName(name) : at !== '' && !isName(name)) throw new BuildError(`${this.label}: a row named ${JSON.stringify(display(name))} in ${display(parent ?? at) || '/'}: not a file name`);
    return this.guard(() => {
      const flags = Number(r.flags);
      const hardlinks = decodeHardlinks(BigInt((r.hardlinks as bigint | number | null) ?? 0));
      const raw = r.hash as Uint8Array | null;
      const hash = raw && raw.length > 0 ? { algorithm: hashAlgorithmOfFlags(flags), digest: Buffer.from(raw) } : null;
      return {
        name,
        flags,
        mode: Number(r.mode),
        size: Number(r.size ?? 0),
        mtime: Number(r.mtime ?? 0),
        symlink: bytesOf(r.symlink),
        hash,
        compressed: compressionOfFlags(flags) === 'zlib',
        hardlinkGroup: hardlinks.group,
        linkCount: hardlinks.linkCount,
        xattrs: r.xattr ? decodeXattrs(r.xattr as Uint8Array) : null,
        catalog: this,
      };
    });
  }

  close(): void {
    this.handle?.db.close();
    this.handle = null;
    open.delete(this);
  }
}

/** A name of a directory entry: not empty, not `.` or `..`, no `/` and no NUL. */
function isName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/** A repository path below the root: `/a/b`, every component a name. */
function isRepoPath(p: string): boolean {
  return p.startsWith('/') && p.slice(1).split('/').every(isName);
}

export const isDirRow = (r: CatalogRow) => (r.flags & FLAG_DIR) !== 0;
export const isLinkRow = (r: CatalogRow) => (r.flags & FLAG_LINK) !== 0;
export const isSpecialRow = (r: CatalogRow) => (r.flags & FLAG_SPECIAL) !== 0;
export const isChunkedRow = (r: CatalogRow) => (r.flags & FLAG_CHUNKED) !== 0;
export const isExternalRow = (r: CatalogRow) => (r.flags & FLAG_EXTERNAL) !== 0;
export const isHiddenRow = (r: CatalogRow) => (r.flags & FLAG_HIDDEN) !== 0;
export const isMountpointRow = (r: CatalogRow) => (r.flags & FLAG_NESTED_MOUNTPOINT) !== 0;

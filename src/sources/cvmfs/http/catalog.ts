// One CernVM-FS catalog: an SQLite database describing a subtree of a repository, opened from the
// object cache. Rows are keyed by the MD5 of their repository path (formats/cvmfs/catalog.ts);
// a directory's children are the rows whose parent key is its key.
import { fromBuffer } from '../../../model/bytes.js';
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
import { type ContentHash, parseHashString } from '../../../formats/cvmfs/hash.js';
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

const COLUMNS = 'name, flags, mode, size, mtime, symlink, hash, hardlinks, xattr';

export class Catalog {
  private readonly db: SqlDatabase;
  private readonly byKey: SqlStatement;
  private readonly byParent: SqlStatement;
  private readonly chunksOf: SqlStatement;
  /** Nested catalogs, by mount point. */
  readonly nested: NestedCatalog[];
  readonly properties: Map<string, string>;
  readonly hasXattrColumn: boolean;

  /**
   * @param file the decompressed catalog in the cache
   * @param mountpoint repository path of its root ('' for the root catalog)
   * @param id a number unique among the run's catalogs (hard links are grouped per catalog)
   * @param label repository and object, for messages
   */
  constructor(
    file: string,
    readonly mountpoint: string,
    readonly id: number,
    readonly label: string,
  ) {
    try {
      this.db = openDatabase(file, { readOnly: true });
      this.properties = new Map(this.db.prepare('SELECT key, value FROM properties').all().map((r) => [String(r.key), String(r.value)]));
      const columns = new Set(this.db.prepare("SELECT name FROM pragma_table_info('catalog')").all().map((r) => String(r.name)));
      this.hasXattrColumn = columns.has('xattr');
      const cols = this.hasXattrColumn ? COLUMNS : COLUMNS.replace(', xattr', ', NULL AS xattr');
      this.byKey = this.db.prepare(`SELECT ${cols} FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?`);
      this.byParent = this.db.prepare(`SELECT ${cols} FROM catalog WHERE parent_1 = ? AND parent_2 = ?`);
      this.chunksOf = this.db.prepare('SELECT offset, size, hash FROM chunks WHERE md5path_1 = ? AND md5path_2 = ? ORDER BY offset');
      this.nested = this.nestedRows();
    } catch (err) {
      if (err instanceof BuildError) throw err;
      throw new BuildError(`${label}: not a readable catalog (${(err as Error).message})`);
    }
  }

  private nestedRows(): NestedCatalog[] {
    const tables = new Set(this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => String(r.name)));
    const rows: SqlRow[] = this.db.prepare('SELECT path, sha1, size FROM nested_catalogs').all();
    // Bind mount points (schema revision 6) are nested catalogs the client mounts the same way.
    if (tables.has('bind_mountpoints')) for (const r of this.db.prepare('SELECT path, sha1, size FROM bind_mountpoints').all()) rows.push(r);
    return rows
      .map((r) => ({ path: fromBuffer(Buffer.from(String(r.path), 'utf8')), hash: parseHashString(String(r.sha1)), size: Number(r.size ?? 0) }))
      .sort((a, b) => b.path.length - a.path.length);
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
    const r = this.byKey.get(a, b);
    return r ? this.decode(r) : null;
  }

  /** The rows of a directory's children, in no particular order. */
  children(repoPath: string): CatalogRow[] {
    const [a, b] = md5Path(repoPath);
    return this.byParent.all(a, b).map((r) => this.decode(r));
  }

  /** A chunked file's chunks, in order; their hashes are of the file's algorithm. */
  chunks(row: CatalogRow, repoPath: string): Chunk[] {
    const [a, b] = md5Path(repoPath);
    const algorithm = hashAlgorithmOfFlags(row.flags);
    return this.chunksOf.all(a, b).map((r) => ({ offset: Number(r.offset), size: Number(r.size), hash: { algorithm, digest: Buffer.from(r.hash as Uint8Array) } }));
  }

  private decode(r: SqlRow): CatalogRow {
    const flags = Number(r.flags);
    const hardlinks = decodeHardlinks(BigInt((r.hardlinks as bigint | number | null) ?? 0));
    const raw = r.hash as Uint8Array | null;
    const hash = raw && raw.length > 0 ? { algorithm: hashAlgorithmOfFlags(flags), digest: Buffer.from(raw) } : null;
    return {
      name: fromBuffer(Buffer.from(String(r.name ?? ''), 'utf8')),
      flags,
      mode: Number(r.mode),
      size: Number(r.size ?? 0),
      mtime: Number(r.mtime ?? 0),
      symlink: fromBuffer(Buffer.from(String(r.symlink ?? ''), 'utf8')),
      hash,
      compressed: compressionOfFlags(flags) === 'zlib',
      hardlinkGroup: hardlinks.group,
      linkCount: hardlinks.linkCount,
      xattrs: r.xattr ? decodeXattrs(r.xattr as Uint8Array) : null,
      catalog: this,
    };
  }

  close(): void {
    this.db.close();
  }
}

export const isDirRow = (r: CatalogRow) => (r.flags & FLAG_DIR) !== 0;
export const isLinkRow = (r: CatalogRow) => (r.flags & FLAG_LINK) !== 0;
export const isSpecialRow = (r: CatalogRow) => (r.flags & FLAG_SPECIAL) !== 0;
export const isChunkedRow = (r: CatalogRow) => (r.flags & FLAG_CHUNKED) !== 0;
export const isExternalRow = (r: CatalogRow) => (r.flags & FLAG_EXTERNAL) !== 0;
export const isHiddenRow = (r: CatalogRow) => (r.flags & FLAG_HIDDEN) !== 0;
export const isMountpointRow = (r: CatalogRow) => (r.flags & FLAG_NESTED_MOUNTPOINT) !== 0;

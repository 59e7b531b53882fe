// The /cvmfs tree of CernVM-FS repositories read over HTTP: the CvmfsTree the selection walks, with
// metadata from the catalogs (no lstat, no client) and content from the fetcher's object cache.
//
// The selection is synchronous; catalogs and objects arrive over the network. The tree offers both:
// `prepare` and `contentReady` return promises the walk waits for between its steps (util/steps.ts),
// so catalogs and files are fetched many at a time while the walk goes on; a lookup that finds its
// catalog not yet loaded loads it there and then, blocking (the fetcher's synchronous path).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { display, fromBuffer, fsPath } from '../../../model/bytes.js';
import type { Diagnostics } from '../../../model/diagnostics.js';
import type { Entry, EntryType } from '../../../model/entry.js';
import { BuildError } from '../../../model/errors.js';
import { expandVariantSymlink } from '../../../formats/cvmfs/catalog.js';
import { type ContentHash, hashString, objectPath } from '../../../formats/cvmfs/hash.js';
import { type CvmfsTree, type FileReader, MOUNT, type TreeStat } from '../tree.js';
import { openHostFile } from '../posix.js';
import { keepCvmfsXattr } from '../../xattrs.js';
import { Catalog, type CatalogRow, type NestedCatalog, isChunkedRow, isDirRow, isExternalRow, isHiddenRow, isLinkRow, isMountpointRow, isSpecialRow } from './catalog.js';
import type { ChunkedRequest, Fetcher, ObjectRequest } from './fetch/fetcher.js';
import { FQRN as FQRN_PLACEHOLDER } from './fetch/servers.js';
import { type OpenRepository, type TrustOptions, fetchRepositoryAhead, objectRequest, openRepository } from './repository.js';

/** A repository name is a host-like name: it goes into URLs and messages as it is. */
const VALID_FQRN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface HttpTreeOptions extends TrustOptions {
  /** --cvmfs-variant VAR=VALUE: values for `$(VAR)` in symlinks. */
  variants: Map<string, string>;
  /** The base URL(s) as the user gave them, for messages. */
  label: string;
  /** Give entries their catalog's extended attributes (builds do; `plan` only with --xattrs, as from a directory). */
  xattrs: boolean;
}

const S_IFMT = 0o170000;
const TYPE_OF: Record<number, EntryType> = { 0o040000: 'dir', 0o100000: 'file', 0o120000: 'symlink', 0o020000: 'char', 0o060000: 'block', 0o010000: 'fifo', 0o140000: 'socket' };

/** A catalog row as lstat would describe it. Owned by root: what a client shows with CVMFS_CLAIM_OWNERSHIP. */
class RowStat implements TreeStat {
  readonly uid = 0;
  readonly gid = 0;
  readonly rdev = 0;
  constructor(
    readonly row: CatalogRow,
    readonly repoPath: string,
    readonly mode: number,
    readonly size: number,
    readonly ino: number,
  ) {}
  get mtimeMs(): number {
    return this.row.mtime * 1000;
  }
  get nlink(): number {
    return this.row.hardlinkGroup > 0 ? Math.max(1, this.row.linkCount) : 1;
  }
  get dev(): number {
    return this.row.catalog.id;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000;
  }
}

interface RepoState {
  open: OpenRepository;
  root: Catalog;
  /** Catalogs loaded, by mount point ('' for the root). */
  catalogs: Map<string, Catalog>;
  /** Loads under way (async), by mount point. */
  loading: Map<string, Promise<Catalog>>;
}

export class HttpTree implements CvmfsTree {
  private readonly repos = new Map<string, RepoState | null>();
  private nextCatalogId = 1;
  private nextIno = 1;
  /** What each entry's `source` (a cache path) is made from, to fetch it when it is opened. */
  private readonly requests = new Map<string, ObjectRequest | ChunkedRequest>();
  private readonly unsetVariants = new Set<string>();
  private readonly externalWarned = new Set<string>();
  /** Children rows of directories listed lately, by image path: the walk stats each child after listing. */
  private readonly listed = new Map<string, Map<string, CatalogRow>>();
  private readonly deepPrepared = new Set<string>();

  constructor(
    readonly fetcher: Fetcher,
    private readonly o: HttpTreeOptions,
    private readonly diag: Diagnostics,
    private readonly onClose: () => void = () => {},
  ) {}

  /** The repositories opened, for provenance: name, revision, root catalog; by name. */
  opened(): OpenRepository[] {
    return [...this.repos.values()]
      .filter((r): r is RepoState => r !== null)
      .map((r) => r.open)
      .sort((a, b) => (a.fqrn < b.fqrn ? -1 : a.fqrn > b.fqrn ? 1 : 0));
  }

  private readonly fetchedAhead = new Map<string, Promise<void>>();

  openAhead(fqrns: readonly string[]): Promise<void> | null {
    const pending = [...new Set(fqrns)].filter((f) => VALID_FQRN.test(f) && !this.repos.has(f)).map((f) => this.fetchAhead(f));
    return pending.length === 0 ? null : Promise.all(pending).then(() => undefined);
  }

  /** What opening `fqrn` reads first, fetched without blocking (repository.ts fetchRepositoryAhead). */
  private fetchAhead(fqrn: string): Promise<void> {
    let p = this.fetchedAhead.get(fqrn);
    if (!p) this.fetchedAhead.set(fqrn, (p = fetchRepositoryAhead(fqrn, this.fetcher, this.o)));
    return p;
  }

  private repo(fqrn: string): RepoState | null {
    let r = this.repos.get(fqrn);
    if (r !== undefined) return r;
    r = null;
    if (VALID_FQRN.test(fqrn)) {
      const open = openRepository(fqrn, this.fetcher, this.o, this.diag);
      if (open) {
        // The manifest's B is the root catalog's size; a revision or tag chose another root.
        const size = open.rootCatalog === open.manifest.rootCatalog ? (open.manifest.catalogSize ?? 0) : 0;
        const root = this.loadCatalogSync(fqrn, '', open.rootCatalog, size);
        // The revision's own time, not the newest manifest's: an old revision's image stays the same.
        const modified = Number(root.properties.get('last_modified'));
        if (Number.isSafeInteger(modified)) open.published = modified;
        r = { open, root, catalogs: new Map([['', root]]), loading: new Map() };
      }
    }
    this.repos.set(fqrn, r);
    return r;
  }

  private loadCatalogSync(fqrn: string, mountpoint: string, hash: ContentHash, size: number): Catalog {
    const file = this.fetcher.objectSync(objectRequest(fqrn, hash, 'C', true, size));
    return new Catalog(file, mountpoint, this.nextCatalogId++, `${fqrn}: ${objectPath(hash, 'C')}`);
  }

  /** Split an image path into its repository and repository path ('' for the root, '/a/b'). */
  private split(imagePath: string): { fqrn: string; repoPath: string } | null {
    if (!imagePath.startsWith(MOUNT + '/')) return null;
    const end = imagePath.indexOf('/', MOUNT.length + 1);
    return end < 0 ? { fqrn: imagePath.slice(MOUNT.length + 1), repoPath: '' } : { fqrn: imagePath.slice(MOUNT.length + 1, end), repoPath: imagePath.slice(end) };
  }

  /** The catalog holding `repoPath`, loading nested catalogs on the way (blocking). */
  private catalogFor(state: RepoState, repoPath: string): Catalog {
    let cat = state.root;
    for (;;) {
      const n = cat.nestedFor(repoPath);
      if (!n) return cat;
      let next = state.catalogs.get(n.path);
      if (!next) {
        next = this.loadCatalogSync(state.open.fqrn, n.path, n.hash, n.size);
        state.catalogs.set(n.path, next);
      }
      cat = next;
    }
  }

  /**
   * A path's row from its parent directory's catalog: a nested catalog's mount point is described
   * there too (cvmfs keeps the two rows alike), so a stat does not load the catalog below it; the
   * nested catalog's own root row is used once that catalog is loaded.
   */
  private lookup(state: RepoState, repoPath: string): CatalogRow | null {
    if (repoPath === '') return state.root.lookup('');
    const r = this.catalogFor(state, repoPath.slice(0, repoPath.lastIndexOf('/'))).lookup(repoPath);
    if (!r || !isMountpointRow(r)) return r;
    return state.catalogs.get(repoPath)?.lookup(repoPath) ?? r;
  }

  private row(imagePath: string): { state: RepoState; row: CatalogRow; repoPath: string } | null {
    const s = this.split(imagePath);
    if (!s) return null;
    const state = this.repo(s.fqrn);
    if (!state) return null;
    const dir = imagePath.slice(0, imagePath.lastIndexOf('/'));
    const cached = this.listed.get(dir)?.get(imagePath.slice(dir.length + 1));
    const row = cached ?? this.lookup(state, s.repoPath);
    if (!row || isHiddenRow(row)) return null;
    if (isExternalRow(row) && !isDirRow(row)) {
      if (!this.externalWarned.has(s.fqrn)) {
        this.externalWarned.add(s.fqrn);
        this.diag.warn('cvmfs-external', `${s.fqrn}: external files (data outside the repository, CVMFS_EXTERNAL_URL) are left out, e.g. ${display(imagePath)}`);
      }
      return null;
    }
    return { state, row, repoPath: s.repoPath };
  }

  isRepo(fqrn: string): boolean {
    return this.repo(fqrn) !== null;
  }

  stat(imagePath: string): TreeStat | null {
    const r = this.row(imagePath);
    if (!r) return null;
    const { row } = r;
    let size = row.size;
    let mode = row.mode;
    if (isDirRow(row)) mode = (mode & 0o7777) | 0o040000;
    else if (isLinkRow(row)) {
      mode = (mode & 0o7777) | 0o120000;
      size = this.expand(row, imagePath).length;
    } else if (!isSpecialRow(row)) mode = (mode & 0o7777) | 0o100000;
    const ino = row.hardlinkGroup > 0 ? row.hardlinkGroup : 0x40000000 + this.nextIno++;
    return new RowStat(row, r.repoPath, mode, size, ino);
  }

  list(imagePath: string): string[] {
    // A server cannot list its repositories: /cvmfs holds those opened so far.
    if (imagePath === MOUNT) return this.opened().map((r) => r.fqrn);
    const s = this.split(imagePath);
    const state = s ? this.repo(s.fqrn) : null;
    if (!s || !state) throw Object.assign(new Error(`no such directory: ${display(imagePath)}`), { code: 'ENOENT' });
    const rows = this.catalogFor(state, s.repoPath).children(s.repoPath).filter((r) => !isHiddenRow(r));
    // Keep the rows for the stat of each child that follows; a few hundred directories at most.
    if (this.listed.size >= 512) this.listed.delete(this.listed.keys().next().value!);
    this.listed.set(imagePath, new Map(rows.map((r) => [r.name, r])));
    return rows.map((r) => r.name).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private expand(row: CatalogRow, imagePath: string): string {
    if (!row.symlink.includes('$(')) return row.symlink;
    return expandVariantSymlink(
      row.symlink,
      (name) => this.o.variants.get(name),
      (name) => {
        if (this.unsetVariants.has(name)) return;
        this.unsetVariants.add(name);
        this.diag.warn('cvmfs-variant-unset', `${display(imagePath)} -> ${display(row.symlink)}: $(${name}) has no value and no default (--cvmfs-variant ${name}=VALUE sets one)`);
      },
    );
  }

  readLink(imagePath: string): string {
    const r = this.row(imagePath);
    if (!r || !isLinkRow(r.row)) throw Object.assign(new Error(`not a symbolic link: ${display(imagePath)}`), { code: 'EINVAL' });
    return this.expand(r.row, imagePath);
  }

  entry(imagePath: string, st: TreeStat, reason: string): Entry {
    const { row, repoPath } = st as RowStat;
    const type = TYPE_OF[st.mode & S_IFMT] ?? 'file';
    const e: Entry = { path: imagePath, type, mode: st.mode & 0o7777, uid: 0, gid: 0, mtime: row.mtime, size: type === 'file' ? row.size : 0, reason };
    if (type === 'symlink') {
      e.target = this.expand(row, imagePath);
      e.size = e.target.length;
    } else if (type === 'char' || type === 'block') {
      e.rdev = row.size;
    } else if (type === 'file') {
      e.source = this.sourceOf(row, repoPath, imagePath);
    }
    if ((type === 'file' || type === 'symlink') && row.hardlinkGroup > 0 && row.linkCount > 1) e.inode = `${row.catalog.id}:${row.hardlinkGroup}`;
    if (this.o.xattrs && row.xattrs) {
      // As from a mounted repository: what a client shows of its own (magic attributes) stays out.
      const kept = row.xattrs.filter(([name]) => keepCvmfsXattr(name));
      if (kept.length > 0) e.xattrs = kept;
    }
    return e;
  }

  /** The cache path a file's content will be at, with what makes it remembered. */
  private sourceOf(row: CatalogRow, repoPath: string, imagePath: string): string {
    const fqrn = this.split(imagePath)!.fqrn;
    let req: ObjectRequest | ChunkedRequest;
    if (isChunkedRow(row)) {
      const chunks = row.catalog.chunks(row, repoPath).map((c) => ({ ...objectRequest(fqrn, c.hash, 'P', row.compressed, c.size), offset: c.offset, size: c.size }));
      if (chunks.length === 0) throw new BuildError(`${fqrn}: ${display(repoPath)}: a chunked file with no chunks in its catalog`);
      // The file is named by its chunks: cvmfs leaves a chunked file's own hash empty (no bulk object).
      const key = createHash('sha1').update(chunks.map((c) => `${c.path}@${c.offset}+${c.size}`).join('\n')).digest('hex');
      req = { fqrn, key: `chunked-${key}`, size: row.size, chunks };
    } else {
      if (!row.hash) throw new BuildError(`${fqrn}: ${display(repoPath)}: a file without a content hash in its catalog`);
      req = objectRequest(fqrn, row.hash, '', row.compressed, row.size);
    }
    const source = fromBuffer(Buffer.from(this.fetcher.cachePathOf(req)));
    this.requests.set(source, req);
    return source;
  }

  readable(): boolean {
    return true;
  }

  readFile(imagePath: string): Buffer {
    const st = this.stat(imagePath);
    if (!st || st.isDirectory()) throw Object.assign(new Error(`no such file: ${display(imagePath)}`), { code: st ? 'EISDIR' : 'ENOENT' });
    if (st.isSymbolicLink()) throw Object.assign(new Error(`a symbolic link: ${display(imagePath)}`), { code: 'ELOOP' });
    const source = this.entry(imagePath, st, '').source!;
    return fs.readFileSync(fsPath(this.ensure(source)));
  }

  /** The cache file of a source (a byte string, as every source is), fetched now if it is not there yet. */
  private ensure(source: string): string {
    const req = this.requests.get(source);
    if (req) this.fetcher.objectSync(req);
    return source;
  }

  openContent(source: string): FileReader {
    return openHostFile(this.ensure(source));
  }

  contentHash(imagePath: string): string | null {
    const r = this.row(imagePath);
    return r?.row.hash ? hashString(r.row.hash) : null;
  }

  where(imagePath: string): string {
    const s = this.split(imagePath);
    if (!s) return imagePath;
    // A server URL may name the repository itself (`…/@fqrn@`, as CVMFS_SERVER_URL does): filled in, not appended.
    const repo = this.o.label.includes(FQRN_PLACEHOLDER) ? this.o.label.replaceAll(FQRN_PLACEHOLDER, s.fqrn) : `${this.o.label}/${s.fqrn}`;
    return `${repo}${s.repoPath} (in the catalogs)`;
  }

  release(): void {}

  // ---- the asynchronous side: fetch ahead of the walk ----

  /**
   * Load, ahead of the walk, the catalogs below `imagePath` that a walk of it needs: the one holding
   * it and, when `deep`, every nested catalog below (those the walk will enter). Null when all are
   * loaded already.
   */
  prepare(imagePath: string, deep: boolean): Promise<void> | null {
    const s = this.split(imagePath);
    if (!s) return null;
    // A repository not opened yet is fetched ahead first (the walk waits here, signals are heard).
    if (!this.repos.has(s.fqrn) && VALID_FQRN.test(s.fqrn)) return this.fetchAhead(s.fqrn).then(() => this.prepare(imagePath, deep) ?? undefined);
    if (deep) {
      // Below a directory prepared deep, everything is loaded already (the walk waited for it).
      for (let a = imagePath; a.length > MOUNT.length; a = a.slice(0, a.lastIndexOf('/'))) if (this.deepPrepared.has(a)) return null;
      this.deepPrepared.add(imagePath);
    }
    const state = this.repo(s.fqrn);
    if (!state) return null;
    const pending: Array<Promise<unknown>> = [];
    const visit = (cat: Catalog) => {
      for (const n of cat.nested) {
        const under = n.path.startsWith(s.repoPath) && (s.repoPath === '' || n.path.length === s.repoPath.length || n.path.charCodeAt(s.repoPath.length) === 47);
        const above = s.repoPath.startsWith(n.path) && s.repoPath.charCodeAt(n.path.length) === 47;
        if (!(above || (deep && under) || n.path === s.repoPath)) continue;
        const have = state.catalogs.get(n.path);
        if (have) visit(have);
        else pending.push(this.loadCatalog(state, n).then(visit));
      }
    };
    visit(state.root);
    return pending.length === 0 ? null : Promise.all(pending).then(() => undefined);
  }

  private loadCatalog(state: RepoState, n: NestedCatalog): Promise<Catalog> {
    const loading = state.loading.get(n.path);
    if (loading) return loading;
    const fqrn = state.open.fqrn;
    const p = this.fetcher.object(objectRequest(fqrn, n.hash, 'C', true, n.size)).then((file: string) => {
        let cat = state.catalogs.get(n.path);
        if (!cat) state.catalogs.set(n.path, (cat = new Catalog(file, n.path, this.nextCatalogId++, `${fqrn}: ${objectPath(n.hash, 'C')}`)));
        return cat;
      });
    state.loading.set(n.path, p);
    return p;
  }

  /** Start fetching these files' content (entries' `source`s). */
  prefetch(sources: Iterable<string>): void {
    const reqs: Array<ObjectRequest | ChunkedRequest> = [];
    for (const s of sources) {
      const r = this.requests.get(s);
      if (r) reqs.push(r);
    }
    if (reqs.length > 0) this.fetcher.prefetch(reqs);
  }

  /** A promise that resolves when a source's content is in the cache; null if it is there. */
  contentReady(source: string): Promise<void> | null {
    const req = this.requests.get(source);
    if (!req || fs.existsSync(fsPath(source))) return null;
    return this.fetcher.object(req).then(() => undefined);
  }

  /** Every file of `entries` in the cache, fetched many at a time: before the writers read them. */
  async materialize(entries: readonly Entry[], onProgress?: (done: number, total: number) => void): Promise<void> {
    const reqs: Array<ObjectRequest | ChunkedRequest> = [];
    const seen = new Set<string>();
    for (const e of entries) {
      if (e.type !== 'file' || e.source === undefined || seen.has(e.source)) continue;
      seen.add(e.source);
      const r = this.requests.get(e.source);
      if (r) reqs.push(r);
    }
    this.fetcher.prefetch(reqs);
    let done = 0;
    await Promise.all(
      reqs.map((r) =>
        this.fetcher.object(r).then(() => {
          onProgress?.(++done, reqs.length);
        }),
      ),
    );
  }

  close(): Promise<void> {
    this.onClose();
    for (const s of this.repos.values()) if (s) for (const c of s.catalogs.values()) c.close();
    return this.fetcher.close();
  }
}

// Extended attributes of host files: read for the directory sources (a base root filesystem, the
// /cvmfs tree) and set by the directory writer. Node has no xattr calls. The optional dependency
// @napi-rs/xattr (prebuilt N-API binaries from the npm registry) makes them one system call each;
// without it, getfattr(1) and setfattr(1) from the attr package do the same work, many paths per
// process.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { display, fsArg, fsPath, isValidUtf8 } from '../model/bytes.js';
import type { Entry, EntryType } from '../model/entry.js';
import { BuildError } from '../model/errors.js';

export type Xattrs = Array<[string, Buffer]>;

/** The parts of @napi-rs/xattr's API used here; its calls never follow a final symlink. */
interface Binding {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
  setAttributeSync(path: string, name: string, value: Uint8Array): void;
}

const NATIVE_PKG = '@napi-rs/xattr';
let binding: Binding | null | undefined;

/**
 * The native binding, or null when it is not installed (or has no binary for this platform).
 * SHRINKWRAP_XATTRS=getfattr forces the fallback (tests and benchmarks only).
 */
function native(): Binding | null {
  if (binding !== undefined) return binding;
  binding = null;
  if (process.env['SHRINKWRAP_XATTRS'] === 'getfattr') return binding;
  try {
    binding = createRequire(import.meta.url)(NATIVE_PKG) as Binding;
  } catch {
    // optional: getfattr/setfattr below
  }
  return binding;
}

/** How attributes are read and written in this process: 'native' or 'getfattr'. */
export function xattrMethod(): 'native' | 'getfattr' {
  return native() ? 'native' : 'getfattr';
}

// ---------------------------------------------------------------------------------------------
// Which attributes an image keeps.

/**
 * CVMFS client's "magic" attributes: computed by the client on every getxattr (content hash,
 * current proxy, pid, counters…) and listed by listxattr on every entry of a mounted repository
 * (unless CVMFS_HIDE_MAGIC_XATTRS). They describe the mount on this host, not the files, and a copy
 * of a repository made with attributes (rsync -X, cp -a) carries them as real ones. The names are
 * those the client registers (cvmfs/magic_xattr.cc) and those its older releases documented.
 */
export const CVMFS_MAGIC_XATTRS: ReadonlySet<string> = new Set([
  'user.authz',
  'user.catalog_counters',
  'user.chunk_list',
  'user.chunks',
  'user.compression',
  'user.direct_io',
  'user.expires',
  'user.external_file',
  'user.external_host',
  'user.external_timeout',
  'user.external_url',
  'user.fqrn',
  'user.hash',
  'user.hitrate',
  'user.host',
  'user.host_list',
  'user.inode_max',
  'user.lhash',
  'user.logbuffer',
  'user.maxfd',
  'user.ncleanup24',
  'user.nclg',
  'user.ndiropen',
  'user.ndownload',
  'user.nioerr',
  'user.nopen',
  'user.pid',
  'user.proxy',
  'user.proxy_list',
  'user.proxy_list_external',
  'user.pubkeys',
  'user.rawlink',
  'user.repo_counters',
  'user.repo_metainfo',
  'user.revision',
  'user.root_hash',
  'user.rx',
  'user.speed',
  'user.tag',
  'user.timeout',
  'user.timeout_direct',
  'user.timestamp_last_ioerr',
  'user.uptime',
  'user.usedfd',
  'user.useddirp',
  'user.version',
  'xfsroot.rawlink',
]);

/**
 * The host's SELinux label says how this machine's policy treats the file, not what the image is:
 * the runtime labels the container's files itself, and a stale label would deny access there.
 */
const HOST_ONLY = 'security.selinux';

/** Attributes of a base root filesystem that go into the image: all but the host's label. */
export function keepBaseXattr(name: string): boolean {
  return name !== HOST_ONLY;
}

/** Attributes of the /cvmfs tree that go into the image: real ones, never CVMFS's magic ones. */
export function keepCvmfsXattr(name: string): boolean {
  return name !== HOST_ONLY && !CVMFS_MAGIC_XATTRS.has(name);
}

// ---------------------------------------------------------------------------------------------
// What was done, for `plan`.

/** What one source did with extended attributes, for `plan` to say. */
export interface XattrReport {
  /** The source: "base DIR", "/cvmfs/REPO". */
  source: string;
  /** What was done, in a few words. */
  how: string;
  /** Entries that carry attributes into the image. */
  entries: number;
  /** Attributes left out (CVMFS's magic ones, host labels), by name. */
  dropped: Record<string, number>;
}

const reports: XattrReport[] = [];

/** Every source's report so far, in the order the sources were read. */
export function xattrReports(): readonly XattrReport[] {
  return reports;
}

export function newXattrReport(source: string, how: string): XattrReport {
  const r: XattrReport = { source, how, entries: 0, dropped: {} };
  reports.push(r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reading.

/**
 * Reads the attributes of entries of one source and sets `xattrs` on those that have any (others
 * get no field: a release has millions of entries and almost none has attributes). With the
 * native binding each entry is read at once; with getfattr, entries wait in a batch (one process
 * per ~1,000 paths) until `flush()`, which the source calls before its entries are used.
 */
export class XattrReader {
  private batch: Array<[Entry, string]> = [];
  private batchBytes = 0;

  constructor(
    private readonly keep: (name: string) => boolean,
    readonly report: XattrReport,
  ) {}

  /**
   * Read the attributes of `e`, whose host object is at `hostPath` (a byte string, relative to the
   * working directory or absolute). The fallback runs later, so it needs the path absolute:
   * `absolute()` (made only then: a walk of millions of entries would build the strings for nothing).
   */
  read(e: Entry, hostPath: string, absolute?: () => string): void {
    if (e.type === 'hardlink') return; // shares its first name's inode
    const b = binding === undefined ? native() : binding;
    if (b) {
      this.take(e, readNative(b, hostPath, e.type));
      return;
    }
    const p = absolute ? absolute() : hostPath;
    this.batch.push([e, p]);
    this.batchBytes += p.length + 1;
    // Well below the kernel's argument limit (ARG_MAX is 2 MiB; one argument at most 128 KiB).
    if (this.batchBytes > 256 * 1024 || this.batch.length >= 4096) this.flush();
  }

  /** Read what the fallback has batched. */
  flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const byPath = new Map<string, Entry>();
    const text: string[] = [];
    const viaFd: Array<[Entry, string]> = [];
    for (const [e, p] of batch) {
      if (isValidUtf8(p)) {
        byPath.set(p, e);
        text.push(fsPath(p).toString('utf8'));
      } else {
        viaFd.push([e, p]);
      }
    }
    if (text.length > 0) {
      for (const [p, x] of getfattr(text, true)) {
        const e = byPath.get(p);
        if (e) this.take(e, x);
      }
    }
    for (const [e, p] of viaFd) this.take(e, readThroughDescriptor(p, e.type));
  }

  private take(e: Entry, all: Xattrs): void {
    if (all.length === 0) return;
    const kept: Xattrs = [];
    for (const x of all) {
      if (this.keep(x[0])) kept.push(x);
      else this.report.dropped[x[0]] = (this.report.dropped[x[0]] ?? 0) + 1;
    }
    if (kept.length === 0) return;
    // One order whatever the file system's: images are reproducible.
    kept.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    e.xattrs = kept;
    this.report.entries++;
  }
}

/** One attribute's value, or null (absent, unsupported, unreadable). For CVMFS's counters. */
export function readOneXattr(hostPath: string, name: string): Buffer | null {
  const b = native();
  try {
    if (b) return b.getAttributeSync(textOf(hostPath), name);
    const r = spawnSync('getfattr', ['-h', '--absolute-names', '--only-values', '-n', name, textOf(hostPath)], { maxBuffer: 1 << 24 });
    return r.status === 0 && r.stdout ? r.stdout : null;
  } catch {
    return null;
  }
}

function textOf(p: string): string {
  return fsPath(p).toString('utf8');
}

function fromUtf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Errors that mean "no attributes here", not a failure. */
function noAttributes(message: string): boolean {
  // ENOENT (vanished), ENODATA, EOPNOTSUPP/ENOTSUP (a file system or object type without them).
  return /os error (2|61|95)\b|No such file|No data|not supported/i.test(message);
}

const ASCII = /^[\x00-\x7f]*$/;
const NONE: Xattrs = [];

function readNative(b: Binding, hostPath: string, type: EntryType): Xattrs {
  // The binding takes text paths and never follows the last link, so it cannot name this file
  // through /proc/PID/fd either: getfattr can (rare: names that are not UTF-8 with attributes).
  if (!isValidUtf8(hostPath)) return readThroughDescriptor(hostPath, type);
  const p = ASCII.test(hostPath) ? hostPath : textOf(hostPath);
  try {
    const names = b.listAttributesSync(p);
    if (names.length === 0) return NONE;
    const out: Xattrs = [];
    for (const name of names) {
      const v = b.getAttributeSync(p, name);
      if (v) out.push([name, Buffer.from(v)]);
    }
    return out;
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (noAttributes(msg)) return [];
    throw new BuildError(`cannot read extended attributes of ${display(hostPath)}: ${msg}`);
  }
}

/** getfattr takes text arguments: a path that is not UTF-8 is named through our descriptor. */
function readThroughDescriptor(hostPath: string, type: EntryType): Xattrs {
  return withDescriptor(hostPath, type, (fdPath) => getfattr([fdPath], false).get(fromUtf8(fdPath)) ?? []);
}

/**
 * Run `fn` on /proc/PID/fd/N of `hostPath` opened without following it: the way to name a file
 * whose path is not text. Only files and directories are opened (opening a device or FIFO can
 * have effects); other objects with such names are read without attributes.
 */
function withDescriptor(hostPath: string, type: EntryType, fn: (fdPath: string) => Xattrs): Xattrs {
  if (type !== 'file' && type !== 'dir') return [];
  let fd: number;
  try {
    fd = fs.openSync(fsArg(hostPath), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return [];
  }
  try {
    return fn(`/proc/${process.pid}/fd/${fd}`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * getfattr --dump of `paths` (text), attributes by byte-string path as printed. `noFollow`: the
 * attributes of a symlink itself (-h), as lgetxattr; false for /proc/PID/fd links, which must be
 * followed to the file.
 */
function getfattr(paths: string[], noFollow: boolean): Map<string, Xattrs> {
  const args = [...(noFollow ? ['-h'] : []), '--absolute-names', '--dump', '--match=-', '--encoding=hex', '--', ...paths];
  const r = spawnSync('getfattr', args, { maxBuffer: 1 << 30 });
  if (r.error) {
    throw new BuildError(`cannot read extended attributes: getfattr: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed (install the attr package, or the optional @napi-rs/xattr)' : r.error.message}`);
  }
  const problems = r.stderr
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '' && !noAttributes(l));
  if (problems.length > 0) throw new BuildError(`cannot read extended attributes: ${problems[0]}`);
  return parseDump(r.stdout.toString('latin1'));
}

/**
 * getfattr's dump: blocks of `# file: PATH` then `name=0xHEX` lines, separated by blank lines.
 * PATH has backslash and unprintable bytes as \ooo; names are escaped the same way.
 */
export function parseDump(text: string): Map<string, Xattrs> {
  const out = new Map<string, Xattrs>();
  let current: Xattrs | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      out.set(unescapeOctal(line.slice(8)), current);
    } else if (line !== '' && current) {
      const eq = line.indexOf('=');
      const name = unescapeOctal(eq < 0 ? line : line.slice(0, eq));
      const raw = eq < 0 ? '' : line.slice(eq + 1);
      // Empty values print as `name` or `name=""`/`name=0x`, depending on the version.
      const value = raw.startsWith('0x') ? Buffer.from(raw.slice(2), 'hex') : Buffer.alloc(0);
      current.push([name, value]);
    }
  }
  return out;
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

// ---------------------------------------------------------------------------------------------
// Writing (the directory writer).

/**
 * Set attributes on a written object (a Buffer path; a final symlink is not followed). Returns the
 * attributes that could not be set, each with why (a user.* one on a symlink, a security.* one
 * without CAP_SETFCAP, a file system without them): the caller warns, the rest is kept.
 */
export function setXattrs(path: Buffer, xattrs: Xattrs): Array<[name: string, why: string]> {
  const failed: Array<[string, string]> = [];
  const b = native();
  const text = path.toString('latin1');
  for (const [name, value] of xattrs) {
    try {
      if (b && isValidUtf8(text)) b.setAttributeSync(path.toString('utf8'), name, value);
      else setfattr(text, name, value);
    } catch (err) {
      const e = err as Error & { stderr?: Buffer };
      failed.push([name, (e.stderr?.toString('utf8').trim() || e.message).split('\n')[0]!]);
    }
  }
  return failed;
}

/** setfattr --restore reads the dump format, path included, from stdin: bytes stay bytes. */
function setfattr(path: string, name: string, value: Buffer): void {
  const dump = `# file: ${escapeOctal(path)}\n${escapeOctal(name)}=0x${value.toString('hex')}\n\n`;
  execFileSync('setfattr', ['-h', '--restore=-'], { input: Buffer.from(dump, 'latin1'), stdio: ['pipe', 'pipe', 'pipe'] });
}

function escapeOctal(s: string): string {
  return s.replace(/[\\\x00-\x20\x7f-\xff=]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}

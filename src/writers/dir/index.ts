// writers/dir: an image tree as a plain directory (a sandbox for Apptainer/Charliecloud, or a tree to
// bind-mount at /cvmfs). Contents are copied straight from their sources; no staging.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { display, fsPath } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, devNumbers, findPath, parentPath } from '../../model/entry.js';
import { BuildError, describeSystemError } from '../../model/errors.js';
import { Pool } from '../../util/pool.js';
import { setXattrs } from '../../sources/xattrs.js';

export interface DirWriteResult {
  entries: number;
  files: number;
  bytes: number;
  /** Character and block devices left out (created only with `devices`). */
  devicesSkipped: number;
}

export interface DirWriteOptions {
  /** Keep uid/gid (needs root); otherwise everything belongs to the user running shrinkwrap. */
  keepOwnership: boolean;
  /**
   * Create the image's character and block devices as real nodes (root only). Off by default: a
   * base's `dev/sda 8,0 0666` made on the host is a disk any local user can write.
   */
  devices?: boolean;
  /**
   * Keep what grants privileges to whoever runs a file: setuid and setgid bits and file capabilities
   * (`security.capability`). Off by default: a base's setuid-root binaries (an old `pkexec`, say)
   * copied onto the host would be runnable by every local user who can reach the directory.
   */
  keepSetuid?: boolean;
  /** Copies in flight: file copies are I/O-bound, and a parallel file system rewards depth. */
  concurrency?: number;
  /** Called as files are copied: bytes and files so far. */
  onProgress?: (bytes: number, files: number) => void;
}

/**
 * Write `entries` (sorted, "/" first) into the directory `out` (a byte string; must not exist).
 * Directories are made writable while they fill, and get their real modes and times at the end,
 * children before parents, so that creating a child does not change a parent's mtime.
 *
 * No link is ever followed: every entry's parent must be a directory this call made (checked in
 * the pass, see `parents`), and every name is created exclusively (mkdir, symlink, mknod, link and
 * O_EXCL opens all fail on an existing name, a link included), so nothing made here can lead
 * outside `out`. The directories stay 0700 until the end, so no other user can swap a name either.
 */
export async function writeDir(entries: readonly Entry[], out: string, opts: DirWriteOptions, diag: Diagnostics): Promise<DirWriteResult> {
  const dest = (e: Entry) => fsPath(e.path === '/' ? out : out + e.path);
  const result: DirWriteResult = { entries: 0, files: 0, bytes: 0, devicesSkipped: 0 };
  const pool = new Pool(opts.concurrency ?? 16);
  const written: Entry[] = [];
  const hardLinks: Entry[] = [];
  /** Paths left out (devices, sockets): few, and a hard link to one is left out with it. */
  const skipped = new Set<string>();
  const fail = (e: Entry, what: string, err: unknown): never => {
    throw new BuildError(`${what} ${display(e.source ?? e.path)}: ${describeSystemError(err)}`);
  };

  const parents = new DirChain(out);
  try {
    for (const e of entries) {
      parents.enter(e);
      const to = dest(e);
      switch (e.type) {
        case 'dir':
          try {
            fs.mkdirSync(to, { mode: 0o700 });
          } catch (err) {
            fail(e, 'cannot create directory for', err);
          }
          break;
        case 'file':
          result.files++;
          result.bytes += e.size;
          opts.onProgress?.(result.bytes, result.files);
          await pool.run(async () => {
            try {
              // EXCL: the destination is opened O_CREAT|O_EXCL, which fails on any existing name, a link included.
              if (e.offset === undefined) await fs.promises.copyFile(fsPath(e.source!), to, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
              else await copyRange(fsPath(e.source!), e.offset, e.size, to);
              // The file may have changed since the selection saw it: an image must not mix versions silently.
              const size = (await fs.promises.lstat(to)).size;
              if (size !== e.size) throw new BuildError(`${display(e.source!)} changed size while the image was written (${e.size} bytes when selected, ${size} now)`);
            } catch (err) {
              if (err instanceof BuildError) throw err;
              fail(e, 'cannot copy', err);
            }
          });
          break;
        case 'hardlink':
          hardLinks.push(e);
          continue; // after the copies: the first name must exist
        case 'symlink':
          try {
            fs.symlinkSync(fsPath(e.target!), to);
          } catch (err) {
            fail(e, 'cannot create symlink for', err);
          }
          break;
        case 'fifo':
        case 'char':
        case 'block': {
          if (e.type !== 'fifo' && !(opts.devices && opts.keepOwnership)) {
            const [major, minor] = devNumbers(e.rdev ?? 0);
            const why = opts.devices ? 'creating devices needs root' : '--devices creates device nodes';
            diag.warnPath('device-skipped', e.path, `${e.type} device ${major},${minor} skipped (${why})`);
            result.devicesSkipped++;
            skipped.add(e.path);
            continue;
          }
          const args = e.type === 'fifo' ? ['p'] : [e.type === 'char' ? 'c' : 'b', ...devNumbers(e.rdev ?? 0).map(String)];
          try {
            // Node has no mknod(2); mknod(1) from coreutils is everywhere shrinkwrap runs.
            execFileSync('mknod', ['-m', (e.mode & 0o777).toString(8), to.toString('latin1'), ...args], { stdio: 'pipe' });
          } catch (err) {
            fail(e, `cannot create ${e.type} for`, err);
          }
          break;
        }
        case 'socket':
          diag.warnPath('socket-skipped', e.path, 'socket skipped');
          skipped.add(e.path);
          continue;
      }
      written.push(e);
    }
    await pool.drain();
  } catch (err) {
    // Copies still in flight would go on writing into the tree the caller is about to remove.
    await pool.settle();
    throw err;
  }

  for (const e of hardLinks) {
    // The first name must be an entry this pass made, not a directory: then `out + target` runs
    // through directories made here only, and link(2) does not follow a symlink it names.
    const first = entries[findPath(entries, e.target!)];
    if (first && skipped.has(first.path)) {
      diag.warnPath(first.type === 'socket' ? 'socket-skipped' : 'device-skipped', e.path, `hard link to ${display(first.path)} skipped with it`);
      continue;
    }
    if (!first || first.type === 'dir' || first.type === 'hardlink') {
      throw new Error(`internal: dir writer: hard link ${display(e.path)} -> ${display(e.target!)}: no such first name in the image`);
    }
    try {
      fs.linkSync(fsPath(out + e.target!), dest(e));
    } catch (err) {
      fail(e, 'cannot create hard link for', err);
    }
    written.push(e);
  }

  // Metadata, deepest first. chown before chmod: chown clears setuid/setgid bits.
  for (let i = written.length - 1; i >= 0; i--) {
    const e = written[i]!;
    const to = dest(e);
    try {
      if (e.type === 'hardlink') continue; // shares the inode of its first name
      if (opts.keepOwnership) fs.lchownSync(to, e.uid, e.gid);
      const { mode, xattrs } = opts.keepSetuid ? e : withoutPrivileges(e, diag);
      if (e.type !== 'symlink') fs.chmodSync(to, mode);
      // After chown, which clears security.capability; a failure costs that attribute only.
      if (xattrs) for (const [name, why] of setXattrs(to, xattrs)) diag.warnPath('xattr-dropped', e.path, `extended attribute ${display(name)} not set: ${why}`);
      fs.lutimesSync(to, e.mtime, e.mtime);
    } catch (err) {
      fail(e, 'cannot set metadata of', err);
    }
  }
  result.entries = written.length;
  return result;
}

/** Content that lives inside another file (a member of a base image layer); `to` is created, never reused. */
async function copyRange(from: Buffer, offset: number, size: number, to: Buffer): Promise<void> {
  if (size === 0) {
    fs.writeFileSync(to, '', { mode: 0o600, flag: 'wx' }); // a read stream cannot be given an empty range
    return;
  }
  await pipeline(fs.createReadStream(from, { start: offset, end: offset + size - 1, highWaterMark: 1 << 20 }), fs.createWriteStream(to, { mode: 0o600, flags: 'wx' }));
}

/**
 * The directories above the current entry, as the sorted pass meets them. An entry whose parent is
 * not a directory entered before it would be created through something this writer did not make
 * as a directory (a base's symlink, say): refused whatever the composer let through, as the bug
 * it would be.
 */
class DirChain {
  /** Directory paths, each inside the one before it ("/" first). */
  private readonly chain: string[] = [];

  constructor(private readonly out: string) {}

  enter(e: Entry): void {
    const p = e.path;
    if (p === '/') {
      if (this.chain.length > 0) this.refuse(e);
    } else {
      const parent = parentPath(p);
      // Leave the directories the pass has moved out of; what remains holds the parent, or misses it.
      while (this.chain.length > 1 && !isAtOrBelow(parent, this.chain[this.chain.length - 1]!)) this.chain.pop();
      if (this.chain[this.chain.length - 1] !== parent) this.refuse(e);
    }
    if (e.type === 'dir') this.chain.push(p);
  }

  private refuse(e: Entry): never {
    throw new Error(`internal: dir writer, ${display(this.out)}: ${display(e.path)} does not follow its parent directory`);
  }
}

function isAtOrBelow(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === '/' ? '/' : dir + '/');
}

const CAPABILITY = 'security.capability';

/** A file's mode and attributes without setuid, setgid and file capabilities, each removal a warning. */
function withoutPrivileges(e: Entry, diag: Diagnostics): Pick<Entry, 'mode' | 'xattrs'> {
  if (e.type !== 'file') return e; // setgid on a directory only passes its group on
  let { mode, xattrs } = e;
  const dropped: string[] = [];
  if (mode & 0o6000) {
    dropped.push(mode & 0o4000 ? (mode & 0o2000 ? 'setuid and setgid bits' : 'setuid bit') : 'setgid bit');
    mode &= ~0o6000;
  }
  if (xattrs?.some(([name]) => name === CAPABILITY)) {
    dropped.push('file capabilities');
    xattrs = xattrs.filter(([name]) => name !== CAPABILITY);
  }
  if (dropped.length > 0) diag.warnPath('setuid-dropped', e.path, `${dropped.join(' and ')} left out (--keep-setuid keeps them)`);
  return { mode, xattrs };
}

// writers/dir: an image tree as a plain directory (a sandbox for Apptainer/Charliecloud, or a tree to
// bind-mount at /cvmfs). Contents are copied straight from their sources; no staging.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { display, fsPath } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, devNumbers } from '../../model/entry.js';
import { BuildError, describeSystemError } from '../../model/errors.js';
import { Pool } from '../../util/pool.js';
import { setXattrs } from '../../sources/xattrs.js';

export interface DirWriteResult {
  entries: number;
  files: number;
  bytes: number;
}

export interface DirWriteOptions {
  /** Keep uid/gid (needs root); otherwise everything belongs to the user running shrinkwrap. */
  keepOwnership: boolean;
  /** Copies in flight: file copies are I/O-bound, and a parallel file system rewards depth. */
  concurrency?: number;
  /** Called as files are copied: bytes and files so far. */
  onProgress?: (bytes: number, files: number) => void;
}

/**
 * Write `entries` (sorted, "/" first) into the directory `out` (a byte string; must not exist).
 * Directories are made writable while they fill, and get their real modes and times at the end,
 * children before parents, so that creating a child does not change a parent's mtime.
 */
export async function writeDir(entries: readonly Entry[], out: string, opts: DirWriteOptions, diag: Diagnostics): Promise<DirWriteResult> {
  const dest = (e: Entry) => fsPath(e.path === '/' ? out : out + e.path);
  const result: DirWriteResult = { entries: 0, files: 0, bytes: 0 };
  const pool = new Pool(opts.concurrency ?? 16);
  const written: Entry[] = [];
  const hardLinks: Entry[] = [];
  const fail = (e: Entry, what: string, err: unknown): never => {
    throw new BuildError(`${what} ${display(e.source ?? e.path)}: ${describeSystemError(err)}`);
  };

  for (const e of entries) {
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
            if (e.offset === undefined) await fs.promises.copyFile(fsPath(e.source!), to, fs.constants.COPYFILE_FICLONE);
            else await copyRange(fsPath(e.source!), e.offset, e.size, to);
            // The file may have changed since the selection saw it: an image must not mix versions silently.
            const size = (await fs.promises.stat(to)).size;
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
        if (e.type !== 'fifo' && !opts.keepOwnership) {
          diag.warnPath('device-skipped', e.path, `${e.type} device skipped (creating devices needs root)`);
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
        continue;
    }
    written.push(e);
  }
  await pool.drain();

  for (const e of hardLinks) {
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
      if (e.type !== 'symlink') fs.chmodSync(to, e.mode);
      // After chown, which clears security.capability; a failure costs that attribute only.
      if (e.xattrs) for (const [name, why] of setXattrs(to, e.xattrs)) diag.warnPath('xattr-dropped', e.path, `extended attribute ${display(name)} not set: ${why}`);
      fs.lutimesSync(to, e.mtime, e.mtime);
    } catch (err) {
      fail(e, 'cannot set metadata of', err);
    }
  }
  result.entries = written.length;
  return result;
}

/** Content that lives inside another file (a member of a base image layer). */
async function copyRange(from: Buffer, offset: number, size: number, to: Buffer): Promise<void> {
  if (size === 0) {
    fs.writeFileSync(to, '', { mode: 0o600 }); // a read stream cannot be given an empty range
    return;
  }
  await pipeline(fs.createReadStream(from, { start: offset, end: offset + size - 1, highWaterMark: 1 << 20 }), fs.createWriteStream(to, { mode: 0o600 }));
}

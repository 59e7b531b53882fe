// A POSIX directory tree as a source of entries: the /cvmfs tree, or a base root filesystem.
import * as fs from 'node:fs';
import { display, fsArg, fsPath } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { type Entry, type EntryType, type SourceRoot, TreeEntry, joinPath } from '../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../model/errors.js';
import type { TreeStat } from './cvmfs/tree.js';
import { XattrReader, keepBaseXattr, newXattrReport, xattrMethod } from './xattrs.js';

const S_IFMT = fs.constants.S_IFMT;

export function entryType(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case fs.constants.S_IFDIR:
      return 'dir';
    case fs.constants.S_IFREG:
      return 'file';
    case fs.constants.S_IFLNK:
      return 'symlink';
    case fs.constants.S_IFCHR:
      return 'char';
    case fs.constants.S_IFBLK:
      return 'block';
    case fs.constants.S_IFIFO:
      return 'fifo';
    default:
      return 'socket';
  }
}

/** lstat a host path (byte string); null when it does not exist. */
export function lstatOrNull(hostPath: string): fs.Stats | null {
  try {
    return fs.lstatSync(fsArg(hostPath), { throwIfNoEntry: false }) ?? null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ENOENT') return null;
    throw new BuildError(`cannot stat ${display(hostPath)}: ${describeSystemError(err)}`);
  }
}

export function readLink(hostPath: string): string {
  // latin1 decoding turns the raw bytes straight into a byte string.
  return fs.readlinkSync(fsArg(hostPath), { encoding: 'latin1' });
}

/** Where an entry of a source tree sits: its parent directory's path (shared), its name, its tree. */
export interface TreePlace {
  dir: string;
  name: string;
  from: SourceRoot;
}

/**
 * The entry for an existing host object, placed at `imagePath`. `linkPath` is where to read a
 * symlink's target from, when that differs from `hostPath` (a path relative to the cwd).
 */
export function entryFromStat(imagePath: string, hostPath: string, st: TreeStat, reason: string, linkPath = hostPath, at?: TreePlace): Entry {
  const type = entryType(st.mode);
  const mode = st.mode & 0o7777;
  const mtime = Math.floor(st.mtimeMs / 1000);
  const size = type === 'file' ? st.size : 0;
  // In a source tree, the paths are derived from the parent's path and the name.
  const e: Entry = at
    ? new TreeEntry(at.dir, at.name, type, mode, st.uid, st.gid, mtime, size, reason, at.from)
    : { path: imagePath, type, mode, uid: st.uid, gid: st.gid, mtime, size, source: hostPath, reason };
  if (type === 'symlink') {
    e.target = readLink(linkPath);
    e.size = e.target.length;
  } else if (type === 'char' || type === 'block') {
    e.rdev = st.rdev;
  }
  if ((type === 'file' || type === 'symlink') && st.nlink > 1) e.inode = `${st.dev}:${st.ino}`;
  return e;
}

/** Names in a host directory, sorted by raw bytes. */
export function listDir(hostDir: string): string[] {
  const names = fs.readdirSync(fsArg(hostDir), { encoding: 'latin1' });
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A directory that must exist, for `--cvmfs-root` and `--base`. */
export function requireDirectory(hostPath: string, what: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(fsPath(hostPath), { throwIfNoEntry: false });
  } catch (err) {
    throw new InputError(`${what} ${display(hostPath)}: ${describeSystemError(err)}`);
  }
  if (!st) throw new InputError(`${what} ${display(hostPath)}: no such directory`);
  if (!st.isDirectory()) throw new InputError(`${what} ${display(hostPath)}: not a directory`);
}

/**
 * Every entry of a host tree, placed under `imagePrefix` ("/" for a root filesystem), in path
 * order. Nothing is followed. Sockets are left out with a warning: no image format can carry a live
 * socket usefully and tar drops them too. Extended attributes come along (ping's
 * security.capability, user.* ones), except the host's SELinux labels (see xattrs.ts).
 */
export function walkTree(hostRoot: string, imagePrefix: string, reason: string, diag: Diagnostics): Entry[] {
  const out: Entry[] = [];
  const xattrs = new XattrReader(keepBaseXattr, newXattrReport(reason, `read (${xattrMethod()})`));
  // Pre-order with an explicit stack (trees can be deeper than the JS call stack); children are
  // pushed in reverse so that entries come out in path order.
  const stack: Array<[string, string]> = [[hostRoot, imagePrefix]];
  while (stack.length > 0) {
    const [hostPath, imagePath] = stack.pop()!;
    const st = lstatOrNull(hostPath);
    if (!st) continue; // vanished between readdir and lstat
    const e = entryFromStat(imagePath, hostPath, st, reason);
    if (e.type === 'socket') {
      diag.warnPath('socket-skipped', hostPath, 'socket skipped');
      continue;
    }
    out.push(e);
    xattrs.read(e, hostPath);
    if (e.type !== 'dir') continue;
    let names: string[];
    try {
      names = listDir(hostPath);
    } catch (err) {
      throw new BuildError(`cannot list ${display(hostPath)}: ${describeSystemError(err)}`);
    }
    for (let i = names.length - 1; i >= 0; i--) {
      stack.push([hostPath + '/' + names[i], joinPath(imagePath, names[i]!)]);
    }
  }
  xattrs.flush();
  return out;
}

// The growing set of selected entries, keyed by image path, and the mapping from image paths under
// /cvmfs to host paths under the source root.
import * as fs from 'node:fs';
import { display, fsPath } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { type Entry, ancestors } from '../model/entry.js';
import { BuildError, describeSystemError } from '../model/errors.js';
import { entryFromStat, lstatOrNull } from '../sources/posix.js';
import { MOUNT } from './spec/parse.js';

export class CvmfsSource {
  /** @param root host path of the tree laid out like /cvmfs (byte string, absolute). */
  constructor(readonly root: string) {}

  /** Host path of an image path under /cvmfs. */
  host(imagePath: string): string {
    return this.root + imagePath.slice(MOUNT.length);
  }

  isRepo(fqrn: string): boolean {
    if (fqrn === '' || fqrn === '.' || fqrn === '..' || fqrn.includes('/')) return false;
    try {
      return fs.statSync(fsPath(this.root + '/' + fqrn), { throwIfNoEntry: false })?.isDirectory() ?? false;
    } catch {
      return false;
    }
  }

  /** lstat, except that a repository root may be a symlink to where the repository really is. */
  stat(imagePath: string): fs.Stats | null {
    const host = this.host(imagePath);
    if (imagePath.indexOf('/', MOUNT.length + 1) < 0) {
      try {
        return fs.statSync(fsPath(host), { throwIfNoEntry: false }) ?? null;
      } catch (err) {
        throw new BuildError(`cannot stat ${display(host)}: ${describeSystemError(err)}`);
      }
    }
    return lstatOrNull(host);
  }
}

export class Selection {
  readonly byPath = new Map<string, Entry>();
  readonly entries: Entry[] = [];
  /** Symlinks selected under a recursive rule: their targets are taken recursively too. */
  readonly deepLinks = new Set<string>();

  constructor(
    readonly source: CvmfsSource,
    readonly diag: Diagnostics,
  ) {}

  has(imagePath: string): boolean {
    return this.byPath.has(imagePath);
  }

  /** Add an entry unless its path is already selected; true when it was added. */
  add(e: Entry): boolean {
    if (this.byPath.has(e.path)) return false;
    this.byPath.set(e.path, e);
    this.entries.push(e);
    return true;
  }

  /**
   * Make an entry from the source for an image path, or null (with a warning) for what cannot go in
   * an image from /cvmfs: FIFOs, sockets and devices (CVMFS has none; a POSIX copy may).
   */
  entryAt(imagePath: string, st: fs.Stats, reason: string): Entry | null {
    const e = entryFromStat(imagePath, this.source.host(imagePath), st, reason);
    if (e.type === 'fifo' || e.type === 'socket' || e.type === 'char' || e.type === 'block') {
      this.diag.warnPath('special-skipped', this.source.host(imagePath), `${e.type === 'fifo' ? 'FIFO' : e.type} skipped`);
      return null;
    }
    return e;
  }

  /** Select the ancestors of a path (below /cvmfs) that are not selected yet. */
  addAncestors(imagePath: string, reason: string): void {
    for (const a of ancestors(imagePath)) {
      if (a === MOUNT || this.byPath.has(a)) continue;
      const st = this.source.stat(a);
      if (!st) throw new BuildError(`${display(this.source.host(a))}: vanished during selection`);
      const e = this.entryAt(a, st, reason);
      if (e) this.add(e);
    }
  }
}

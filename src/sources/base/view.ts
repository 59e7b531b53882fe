// Read access to a base image's tree as the image itself would see it: symlinks resolved inside the
// image (an absolute target is relative to the image root, never the host's), content read from
// wherever the entry keeps it. Used for /etc/os-release, ld.so.conf and the libraries it provides.
import * as fs from 'node:fs';
import { fsArg } from '../../model/bytes.js';
import { type Entry, baseName, comparePaths, parentPath } from '../../model/entry.js';

export class BaseView {
  private readonly byPath = new Map<string, Entry>();
  private children: Map<string, string[]> | null = null;

  constructor(entries: readonly Entry[]) {
    for (const e of entries) this.byPath.set(e.path, e);
  }

  /** The entry at `path` with every symlink on the way (and at the end, if `follow`) resolved. */
  lookup(path: string, follow: boolean): Entry | null {
    let hops = 0;
    let todo = path.split('/').filter((c) => c !== '' && c !== '.');
    let at = '/';
    while (todo.length > 0) {
      const c = todo.shift()!;
      if (c === '..') {
        at = parentPath(at);
        continue;
      }
      const next = at === '/' ? '/' + c : at + '/' + c;
      const e = this.byPath.get(next);
      if (!e) return null;
      if (e.type === 'symlink' && (todo.length > 0 || follow)) {
        if (++hops > 40) return null; // ELOOP
        const t = e.target!;
        todo = [...t.split('/').filter((x) => x !== '' && x !== '.'), ...todo];
        if (t.startsWith('/')) at = '/';
        continue;
      }
      if (e.type === 'hardlink') return this.byPath.get(e.target!) ?? null;
      at = next;
      if (todo.length === 0) return e;
    }
    return this.byPath.get(at) ?? null;
  }

  /** Does the image have `path` (a dangling symlink counts, as lstat would)? */
  exists(path: string): boolean {
    return this.lookup(path, false) !== null;
  }

  /** A small text file's content, or null when it is missing or not a file. */
  readText(path: string): string | null {
    const e = this.lookup(path, true);
    if (!e || e.type !== 'file' || e.size > 1 << 20) return null;
    if (e.size === 0) return '';
    const buf = Buffer.alloc(e.size);
    const fd = fs.openSync(fsArg(e.source!), 'r');
    try {
      fs.readSync(fd, buf, 0, e.size, e.offset ?? 0);
    } finally {
      fs.closeSync(fd);
    }
    return buf.toString('utf8');
  }

  /** Names in a directory of the image, sorted. */
  list(dirPath: string): string[] {
    const d = this.lookup(dirPath, true);
    if (!d || d.type !== 'dir') return [];
    if (!this.children) {
      this.children = new Map();
      for (const p of [...this.byPath.keys()].sort(comparePaths)) {
        if (p === '/') continue;
        const parent = parentPath(p);
        const list = this.children.get(parent);
        if (list) list.push(baseName(p));
        else this.children.set(parent, [baseName(p)]);
      }
    }
    return this.children.get(d.path) ?? [];
  }
}

// What the base image's dynamic loader finds by itself: the directories of its /etc/ld.so.conf
// (with `include` globs, as ldconfig reads them) and the loader's default directories. The ELF
// closure never bundles a library the loader would take from there.
import * as path from 'node:path';
import type { BaseView } from '../../sources/base/view.js';

/** glibc's trusted directories (x86_64 and aarch64 builds put lib64 first). */
const DEFAULT_DIRS = ['/lib64', '/usr/lib64', '/lib', '/usr/lib'];

export interface BaseLibraries {
  /** Search directories in the base image (image paths), ld.so.conf order then defaults. */
  dirs: string[];
  /** Does the base image have `dir/name` (image paths; links count, even to elsewhere in the base)? */
  has(imagePath: string): boolean;
}

/** The loader's view of a base image (any form of --base). */
export function baseLibraries(rootfs: BaseView): BaseLibraries {
  const dirs: string[] = [];
  const seen = new Set<string>();
  const add = (d: string) => {
    const n = path.posix.normalize(d).replace(/\/+$/, '') || '/';
    if (!seen.has(n)) {
      seen.add(n);
      dirs.push(n);
    }
  };
  readConf(rootfs, '/etc/ld.so.conf', add, new Set());
  for (const d of DEFAULT_DIRS) add(d);
  return {
    dirs,
    has(imagePath: string): boolean {
      return rootfs.exists(imagePath);
    },
  };
}

function readConf(rootfs: BaseView, file: string, add: (dir: string) => void, visited: Set<string>): void {
  if (visited.has(file) || visited.size > 64) return;
  visited.add(file);
  const text = rootfs.readText(file);
  if (text === null) return;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const inc = /^include\s+(.+)$/.exec(line);
    if (inc) {
      for (const pattern of inc[1]!.split(/\s+/)) {
        const abs = pattern.startsWith('/') ? pattern : path.posix.join(path.posix.dirname(file), pattern);
        for (const f of globConf(rootfs, abs)) readConf(rootfs, f, add, visited);
      }
      continue;
    }
    // `dir` or the old `dir=TYPE` form; hwcap lines are not directories.
    if (line.startsWith('hwcap')) continue;
    for (const d of line.split(/[\s:,]+/)) if (d.startsWith('/')) add(d.replace(/=.*$/, ''));
  }
}

/** ld.so.conf include patterns are `dir/*.conf`-style: a glob in the last component only. */
function globConf(rootfs: BaseView, pattern: string): string[] {
  const dir = path.posix.dirname(pattern);
  const base = path.posix.basename(pattern);
  if (!/[*?[]/.test(base)) return [pattern];
  const re = new RegExp('^' + base.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
  return rootfs
    .list(dir).filter((n) => re.test(n)).sort().map((n) => path.posix.join(dir, n));
}

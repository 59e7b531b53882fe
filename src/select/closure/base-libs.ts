// What the base image's dynamic loader finds by itself: the directories of its /etc/ld.so.conf
// (with `include` globs, as ldconfig reads them) and the loader's default directories. The ELF
// closure never bundles a library the loader would take from there.
import * as path from 'node:path';
import type { BaseView } from '../../sources/base/view.js';
import { PatternError, compileWildcard, wildcardMatches } from '../pattern.js';

/** glibc's trusted directories (x86_64 and aarch64 builds put lib64 first). */
const DEFAULT_DIRS = ['/lib64', '/usr/lib64', '/lib', '/usr/lib'];

export interface BaseLibraries {
  /** Search directories in the base image (image paths), ld.so.conf order then defaults. */
  dirs: string[];
  /** Does the base image have `dir/name` (image paths; links count, even to elsewhere in the base)? */
  has(imagePath: string): boolean;
  /**
   * What was wrong in the base's ld.so.conf files (`file:line: ...`), skipped as ldconfig would:
   * a base image is someone else's, and a bad line there must not stop every build on it.
   */
  problems: string[];
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
  const problems: string[] = [];
  readConf(rootfs, '/etc/ld.so.conf', add, new Set(), problems);
  for (const d of DEFAULT_DIRS) add(d);
  return {
    dirs,
    problems,
    has(imagePath: string): boolean {
      return rootfs.exists(imagePath);
    },
  };
}

function readConf(rootfs: BaseView, file: string, add: (dir: string) => void, visited: Set<string>, problems: string[]): void {
  if (visited.has(file) || visited.size > 64) return;
  visited.add(file);
  const text = rootfs.readText(file);
  if (text === null) return;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const inc = /^include\s+(.+)$/.exec(line);
    if (inc) {
      for (const pattern of inc[1]!.split(/\s+/)) {
        const abs = pattern.startsWith('/') ? pattern : path.posix.join(path.posix.dirname(file), pattern);
        let files: string[];
        try {
          files = globConf(rootfs, abs);
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          problems.push(`${file}:${i + 1}: include ${pattern}: ${err.message}; skipped`);
          continue;
        }
        for (const f of files) readConf(rootfs, f, add, visited, problems);
      }
      continue;
    }
    // `dir` or the old `dir=TYPE` form; hwcap lines are not directories.
    if (line.startsWith('hwcap')) continue;
    for (const d of line.split(/[\s:,]+/)) if (d.startsWith('/')) add(d.replace(/=.*$/, ''));
  }
}

/**
 * ld.so.conf include patterns are `dir/*.conf`-style: a glob in the last component only, matched
 * as glob(3) does (an unclosed `[` is a literal). Throws PatternError for `[z-a]`.
 */
function globConf(rootfs: BaseView, pattern: string): string[] {
  const dir = path.posix.dirname(pattern);
  const base = path.posix.basename(pattern);
  if (!/[*?[]/.test(base)) return [pattern];
  const w = compileWildcard(base);
  return rootfs
    .list(dir).filter((n) => wildcardMatches(w, n)).sort().map((n) => path.posix.join(dir, n));
}

// Image paths made from input: every path string that comes from something we read (an ELF need
// or search path, a symlink target, a trace line, a setup script, a recipe) and becomes an entry's
// path passes here, so that no entry is ever named `.` or `..` or lies outside a repository.
import { MOUNT } from './spec/parse.js';

/**
 * The path with `//`, `.` and `..` resolved lexically, if it lies inside a repository
 * (`/cvmfs/<fqrn>` or below); null when it does not (`/cvmfs/r/../..` is `/`, not an image path
 * under /cvmfs). Lexical: use it on paths whose links are resolved (throughLinks does that).
 */
export function confineImagePath(p: string): string | null {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      // Above /cvmfs there is nothing of ours: a path that climbs that far is outside for good.
      if (out.length <= 1) return null;
      out.pop();
    } else out.push(c);
  }
  if (out.length < 2 || '/' + out[0] !== MOUNT) return null;
  return '/' + out.join('/');
}

/** Is this an image path we may make an entry of: canonical and inside a repository? */
export function isConfinedImagePath(p: string): boolean {
  return confineImagePath(p) === p;
}

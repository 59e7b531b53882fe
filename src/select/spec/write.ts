// The selection's rules written back in the cvmfs_shrinkwrap grammar, one spec per repository:
// what /.shrinkwrap/specs/<fqrn>.spec records, so that the image says how to rebuild its /cvmfs
// with cvmfs_shrinkwrap or shrinkwrap alone. Each group of lines names its origin.
import { display } from '../../model/bytes.js';
import { MOUNT, type SpecRule } from './parse.js';

export function specFilesOf(rules: readonly SpecRule[]): Map<string, string> {
  const perRepo = new Map<string, string[]>();
  const lastOrigin = new Map<string, string>();
  for (const r of rules) {
    if (!r.path.startsWith(MOUNT + '/')) continue;
    const rest = r.path.slice(MOUNT.length + 1);
    const slash = rest.indexOf('/');
    const repo = display(slash < 0 ? rest : rest.slice(0, slash));
    const rel = slash < 0 ? '' : display(rest.slice(slash));
    const line = r.kind === 'exact' ? rel || '/' : r.kind === 'recursive' ? `${rel}/*` : r.kind === 'flat' ? `^${rel}/*` : `!${rel}/*`;
    let lines = perRepo.get(repo);
    if (!lines) perRepo.set(repo, (lines = []));
    const from = r.origin.replace(/:\d+$/, '');
    if (lastOrigin.get(repo) !== from) {
      lines.push(`# from ${from}`);
      lastOrigin.set(repo, from);
    }
    lines.push(line);
  }
  const out = new Map<string, string>();
  for (const [repo, lines] of [...perRepo].sort((a, b) => (a[0] < b[0] ? -1 : 1))) out.set(repo, lines.join('\n') + '\n');
  return out;
}

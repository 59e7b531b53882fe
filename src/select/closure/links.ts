// Paths resolved through symlinks the way the kernel resolves them, as spec rules.
import type { CvmfsTree } from '../../sources/cvmfs/tree.js';
import { confineImagePath } from '../paths.js';
import { MOUNT, type SpecRule } from '../spec/parse.js';

/**
 * A traced path is what the kernel resolved, symlinks and all: `…/gcc/6.2.0/x86_64/setup.sh` may
 * run through a link into another repository. Spec semantics never look through links, so a rule
 * from a trace is resolved here one component at a time, like the kernel: each link met is
 * selected (exact), and the rule continues at the link's target. The last component of an exact
 * rule stays as it is (the link is the entry; the closure follows it). Spec files keep upstream's
 * meaning: a line through a link selects nothing, and is reported.
 */
export function throughLinks(rule: SpecRule, source: CvmfsTree): SpecRule[] {
  const links: SpecRule[] = [];
  let done: string[] = [];
  let rest = rule.path.split('/').filter((c) => c !== '');
  let hops = 0;
  // A flat or tree rule is about a directory's contents: its last component is resolved too. So is
  // a last `.` or `..` (an ELF need `/cvmfs/r/lib/..`): it is no name an entry can have.
  const keep = rule.kind === 'exact' ? 1 : 0;
  while (rest.length > keep || (rest.length > 0 && (rest[0] === '.' || rest[0] === '..'))) {
    const c = rest.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    // The first two components are the mount point and a repository of the source.
    if (done.length < 2) {
      if (done.length === 0 ? c !== MOUNT.slice(1) : !source.isRepo(c)) return links; // leads outside: the links stay, reported by the closure
      done.push(c);
      continue;
    }
    const p = '/' + [...done, c].join('/');
    const st = source.stat(p);
    if (!st?.isSymbolicLink()) {
      done.push(c);
      continue;
    }
    if (++hops > 40) return confineImagePath(rule.path) === rule.path ? [...links, rule] : links; // ELOOP: as given, if it is a path we may name
    links.push({ ...rule, kind: 'exact', path: p });
    const target = source.readLink(p);
    if (target.startsWith('/')) done = [];
    rest = [...target.split('/').filter((x) => x !== ''), ...rest];
  }
  // `..` may have climbed to /cvmfs or above it: that is no path in a repository.
  const path = confineImagePath('/' + [...done, ...rest].join('/'));
  if (path === null) return links;
  return [...links, path === rule.path ? rule : { ...rule, path }];
}


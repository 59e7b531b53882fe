// Build a spec tree from spec text for repository r.ch, and query it with repository-relative paths.
import { Diagnostics } from '../../src/model/diagnostics.js';
import { fromText } from '../../src/model/bytes.js';
import { parseSpec } from '../../src/select/spec/parse.js';
import { SpecTree } from '../../src/select/spec/tree.js';

export const REPO = 'r.ch';

export function specTree(text: string, repos: string[] = [REPO]) {
  const diag = new Diagnostics();
  const rules = parseSpec(fromText(text), { file: 'test.spec', repo: REPO }, (r) => repos.includes(r), diag);
  const tree = new SpecTree(rules, diag);
  const abs = (p: string) => `/cvmfs/${REPO}${p === '/' ? '' : p.replace(/\/$/, '')}`;
  return {
    tree,
    rules,
    diag,
    /** Is the repository-relative path selected (assuming every ancestor is a directory)? */
    selected: (p: string) => tree.match(abs(p)) !== null,
    /** 'fs', the spec-named children, or null when the directory is not selected. */
    listing: (p: string) => {
      const pick = tree.match(abs(p));
      return pick ? tree.listing(pick.state) : null;
    },
    reason: (p: string) => tree.match(abs(p))?.reason ?? null,
  };
}

// `plan --explain PATH`: why a path is in the image (the spec line, trace, rule or closure step,
// and what that step came from), or why it is not (excluded by which line, runs through a link,
// absent from the source, or nothing selects it).
import { display } from '../model/bytes.js';
import type { Entry } from '../model/entry.js';
import type { CvmfsTree } from '../sources/cvmfs/tree.js';
import { MOUNT } from './spec/parse.js';
import type { SpecTree } from './spec/tree.js';

export interface Explainer {
  entries: ReadonlyMap<string, Entry>;
  tree: SpecTree;
  source: CvmfsTree;
}

/** Lines explaining `path` (an image path, /cvmfs/<fqrn>/...). */
export function explainPath(x: Explainer, path: string): string[] {
  const lines: string[] = [];
  const seen = new Set<string>();
  let current: string | null = path;
  let indent = '';
  // Follow "target of X" / "needed by X" back to where the chain started (a spec line or a trace).
  while (current !== null && !seen.has(current)) {
    seen.add(current);
    const e = x.entries.get(current);
    if (!e) {
      lines.push(`${indent}${display(current)}: not in the image: ${whyNot(x, current)}`);
      break;
    }
    lines.push(`${indent}${display(current)}: in the image (${e.type}${e.target !== undefined ? ` -> ${display(e.target)}` : ''}): ${display(e.reason)}`);
    const m = /(?:target of|needed by|ancestor of a target of) (\/cvmfs\/\S+)/.exec(display(e.reason));
    current = m ? m[1]!.replace(/[),]$/, '') : null;
    indent += '  ';
  }
  return lines;
}

function whyNot(x: Explainer, path: string): string {
  if (!path.startsWith(MOUNT + '/')) return `only paths under ${MOUNT} come from the source`;
  const excluded = x.tree.exclusionOf(path);
  if (excluded) return `excluded by ${excluded.origin} '${excluded.text}'`;
  const parts = path.split('/');
  for (let i = 3; i <= parts.length; i++) {
    const p = parts.slice(0, i).join('/');
    if (i === 3 && !x.source.isRepo(parts[2]!)) return `repository ${display(parts[2]!)} is not in the source tree`;
    const st = x.source.stat(p);
    if (!st) return `${display(x.source.where(p))} does not exist in the source`;
    if (st.isSymbolicLink() && i < parts.length) {
      return `it runs through the symlink ${display(p)}; spec lines are not followed through links (select the link with a tree line, or name the target's path)`;
    }
  }
  // The deepest selected ancestor says what the selection stopped at.
  for (let i = parts.length - 1; i >= 3; i--) {
    const a = parts.slice(0, i).join('/');
    const e = x.entries.get(a);
    if (e) return `no spec line, trace or closure step selects it; its nearest selected ancestor ${display(a)} is there because: ${display(e.reason)}`;
  }
  return 'no spec line, trace or closure step selects it, nor anything in its repository';
}

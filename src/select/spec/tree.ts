// The matcher: spec rules arranged as a tree of path components, queried one directory at a time
// while a source tree is walked. Semantics (order-independent where upstream depends on line order,
// see reference cvmfs-spec-and-trace.md §1.6 and §7):
//  - the last rule naming a path decides that path's mode;
//  - an exclusion removes its whole subtree, whatever the order of the lines;
//  - every inclusion makes its ancestors pass-through directories listing only spec-named children;
//  - a flat rule selects a directory's files and symlinks, and its subdirectories as empty
//    directories unless a deeper rule includes more; an exclusion below a flat child does not hide it;
//  - an exact rule on a directory selects it empty (plus whatever deeper rules name);
//  - symlinks are entries like any other: the matcher never looks through them.
import type { Diagnostics } from '../../model/diagnostics.js';
import type { GlobExclusions } from '../glob.js';
import type { SpecRule } from './parse.js';

export interface SpecNode {
  children: Map<string, SpecNode> | null;
  /** The last rule naming exactly this path. */
  rule: SpecRule | null;
  /** Some inclusion rule at or below this node is in force. */
  wanted: boolean;
  /** Reason for a pass-through directory: it is an ancestor of this rule's path. */
  passReason: string;
}

/** What the walker knows about a directory it is listing. */
export interface DirState {
  /** The spec node of this directory, if any rule mentions it or something below it. */
  node: SpecNode | null;
  /** The recursive rule in force here (on this directory or an ancestor). */
  deep: SpecRule | null;
  /** The flat rule on this very directory: its direct children are selected. */
  flat: SpecRule | null;
}

/** A selected child: why, and the state to list it with if it is a directory. */
export interface Pick {
  reason: string;
  state: DirState;
}

function newNode(): SpecNode {
  return { children: null, rule: null, wanted: false, passReason: '' };
}

export class SpecTree {
  readonly root: SpecNode = newNode();
  private readonly deepStates = new Map<SpecRule, DirState>();

  /**
   * @param globs exclusion globs (`--exclude`, rule packs). They prune what tree and flat lines and
   * the closures bring in; a path that a rule names, or an ancestor of one, is never pruned by them.
   */
  constructor(
    rules: readonly SpecRule[],
    diag: Diagnostics | null = null,
    readonly globs: GlobExclusions | null = null,
  ) {
    if (globs && globs.size === 0) this.globs = null;
    for (const rule of rules) {
      let node = this.root;
      for (const c of rule.path.split('/')) {
        if (c === '') continue;
        node.children ??= new Map();
        let next = node.children.get(c);
        if (!next) {
          next = newNode();
          node.children.set(c, next);
        }
        node = next;
      }
      node.rule = rule; // last line wins
    }
    this.settle(this.root, diag);
  }

  /** Compute `wanted` bottom-up from the final rules; report inclusions hidden by an exclusion. */
  private settle(top: SpecNode, diag: Diagnostics | null): void {
    // Post-order without recursion: spec trees from traces can be thousands of levels in total.
    const order: SpecNode[] = [];
    const stack = [top];
    while (stack.length > 0) {
      const n = stack.pop()!;
      order.push(n);
      if (n.children) for (const c of n.children.values()) stack.push(c);
    }
    const firstIncluded = new Map<SpecNode, SpecRule>();
    for (let i = order.length - 1; i >= 0; i--) {
      const n = order[i]!;
      let below: SpecRule | null = null;
      if (n.children) {
        for (const c of n.children.values()) {
          const r = firstIncluded.get(c);
          if (r && below === null) below = r; // Map order is rule order: deterministic
        }
      }
      const own = n.rule && n.rule.kind !== 'exclude' ? n.rule : null;
      if (n.rule?.kind === 'exclude') {
        if (below && diag) this.reportShadowed(n, n.rule, diag);
        n.wanted = false;
        continue;
      }
      n.wanted = own !== null || below !== null;
      const via = below ?? own;
      if (via) {
        firstIncluded.set(n, via);
        n.passReason = `ancestor of ${via.origin}`;
      }
    }
  }

  private reportShadowed(excluded: SpecNode, by: SpecRule, diag: Diagnostics): void {
    const stack = [...(excluded.children?.values() ?? [])];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.rule && n.rule.kind !== 'exclude') {
        diag.warn('spec-shadowed', `${n.rule.origin}: '${n.rule.text}' has no effect: ${by.origin} '${by.text}' excludes an ancestor`);
      }
      if (n.children) for (const c of n.children.values()) stack.push(c);
    }
  }

  rootState(): DirState {
    return { node: this.root, deep: null, flat: null };
  }

  /** 'fs' when the directory's real listing is needed, else the spec-named children to look for. */
  listing(state: DirState): 'fs' | string[] {
    if (state.deep || state.flat) return 'fs';
    const out: string[] = [];
    const children = state.node?.children;
    if (children) for (const [name, child] of children) if (child.wanted) out.push(name);
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** The exclusion rule on a child, if there is one. */
  excludedBy(state: DirState, name: string): SpecRule | null {
    const r = state.node?.children?.get(name)?.rule;
    return r && r.kind === 'exclude' ? r : null;
  }

  /** Is this child of a directory selected, and how? null: not selected (or excluded). */
  pick(state: DirState, name: string): Pick | null {
    const child = state.node?.children?.get(name) ?? null;
    const rule = child?.rule ?? null;
    if (rule?.kind === 'exclude') return null;
    if (state.deep) {
      if (!child) return { reason: state.deep.reason, state: this.deepState(state.deep) };
      const deep = rule?.kind === 'recursive' ? rule : state.deep;
      return { reason: rule ? rule.reason : deep.reason, state: { node: child, deep, flat: rule?.kind === 'flat' ? rule : null } };
    }
    if (rule) {
      return {
        reason: rule.reason,
        state: { node: child, deep: rule.kind === 'recursive' ? rule : null, flat: rule.kind === 'flat' ? rule : null },
      };
    }
    if (child?.wanted) return { reason: child.passReason, state: { node: child, deep: null, flat: null } };
    // A flat parent selects every child; a directory child is listed by its own spec node only.
    if (state.flat) return { reason: state.flat.reason, state: { node: child, deep: null, flat: null } };
    return null;
  }

  /** State of a directory with no spec node below a recursive rule (shared: the common case). */
  private deepState(rule: SpecRule): DirState {
    let s = this.deepStates.get(rule);
    if (!s) {
      s = { node: null, deep: rule, flat: null };
      this.deepStates.set(rule, s);
    }
    return s;
  }

  /** The exclusion glob that prunes a picked child at `imagePath`, if any (see the constructor). */
  globExclusion(imagePath: string, node: SpecNode | null): SpecRule | null {
    if (!this.globs || node?.wanted) return null;
    return this.globs.at(imagePath);
  }

  /** Follow an absolute image path from the root; null when it (or an ancestor) is not selected. */
  match(imagePath: string): Pick | null {
    let pick: Pick = { reason: '', state: this.rootState() };
    let p = '';
    for (const c of imagePath.split('/')) {
      if (c === '') continue;
      p += '/' + c;
      const next = this.pick(pick.state, c);
      if (!next || this.globExclusion(p, next.state.node)) return null;
      pick = next;
    }
    return pick;
  }

  /** The exclusion rule or glob that removes an image path (on the path or an ancestor), if any. */
  exclusionOf(imagePath: string): SpecRule | null {
    let node: SpecNode | undefined = this.root;
    let p = '';
    for (const c of imagePath.split('/')) {
      if (c === '') continue;
      p += '/' + c;
      node = node?.children?.get(c);
      if (node?.rule?.kind === 'exclude') return node.rule;
      const g = this.globExclusion(p, node ?? null);
      if (g) return g;
      if (!node && !this.globs) return null;
    }
    return null;
  }

  /** The spec node at an image path, if any (for starting a walk below the root). */
  nodeAt(imagePath: string): SpecNode | null {
    let node: SpecNode | undefined = this.root;
    for (const c of imagePath.split('/')) {
      if (c === '') continue;
      node = node.children?.get(c);
      if (!node) return null;
    }
    return node;
  }
}

// The image tree over the entries, as typed arrays by entry slot: parents, children in name
// order, hard links' owners, inode numbers (post-order) and inode references.
import { display } from '../../model/bytes.js';
import type { Entry } from '../../model/entry.js';
import { BuildError } from '../../model/errors.js';
import { MAX_NAME, refBlock } from '../../formats/squashfs/index.js';

/**
 * The image tree over the entries (path order, "/" first), one slot per entry: typed arrays
 * instead of an object per name, because a release has millions of names and every byte per name
 * is megabytes. A hard link's slot points at the slot that owns its inode.
 */
export class Tree {
  /** Parent directory's slot; -1 for the root. */
  readonly parent: Int32Array;
  /** First child (children are in name order), -1 if none. */
  readonly firstChild: Int32Array;
  readonly nextSibling: Int32Array;
  /** The slot that owns this name's inode: itself, or a hard link's first name. */
  readonly owner: Int32Array;
  /** Inode numbers and link counts (meaningful on owners). */
  readonly number: Uint32Array;
  readonly nlink: Uint32Array;
  /** The inode's reference, block * 65536 + offset; -1 until it is written. */
  readonly ref: Float64Array;
  /** Slots in post-order: a directory's children (in name order) before the directory. */
  readonly order: Int32Array;

  constructor(readonly entries: readonly Entry[]) {
    const n = entries.length;
    if (entries[0]?.path !== '/' || entries[0].type !== 'dir') throw new Error('squashfs: the image tree must start with the root directory');
    this.parent = new Int32Array(n).fill(-1);
    this.firstChild = new Int32Array(n).fill(-1);
    this.nextSibling = new Int32Array(n).fill(-1);
    this.owner = new Int32Array(n);
    this.number = new Uint32Array(n);
    this.nlink = new Uint32Array(n).fill(1);
    this.ref = new Float64Array(n).fill(-1);
    // Only the first names that hard links point at need finding by path.
    const linked = new Set<string>();
    for (const e of entries) if (e.type === 'hardlink') linked.add(e.target!);
    const firstNames = new Map<string, number>();
    // The open directories from the root down to the previous entry's: in path order a directory
    // is followed by its whole subtree, so an entry's parent is on this stack.
    const open: number[] = [0];
    const openPaths: string[] = ['/'];
    /** Each open directory's last child so far, -1 for none yet. */
    const last: number[] = [-1];
    this.owner[0] = 0;
    for (let i = 1; i < n; i++) {
      const e = entries[i]!;
      const path = e.path;
      const slash = path.lastIndexOf('/');
      const parentLen = slash === 0 ? 1 : slash;
      while (open.length > 0) {
        const top = openPaths[openPaths.length - 1]!;
        if (top.length === parentLen && path.startsWith(top)) break;
        open.pop();
        openPaths.pop();
        last.pop();
      }
      if (open.length === 0) throw new Error(`squashfs: ${display(path)} has no parent directory in the tree`);
      if (path.length - slash - 1 > MAX_NAME) throw new BuildError(`${display(path)}: name longer than ${MAX_NAME} bytes`);
      const p = open[open.length - 1]!;
      this.parent[i] = p;
      // Path order is byte order of names within a directory.
      const prev = last[last.length - 1]!;
      if (prev < 0) this.firstChild[p] = i;
      else this.nextSibling[prev] = i;
      last[last.length - 1] = i;
      this.owner[i] = i;
      if (e.type === 'dir') {
        open.push(i);
        openPaths.push(path);
        last.push(-1);
      }
      if (linked.has(path)) firstNames.set(path, i);
      if (e.type === 'hardlink') {
        const t = firstNames.get(e.target!);
        const te = t === undefined ? undefined : entries[t]!;
        if (t === undefined || te!.type === 'dir' || te!.type === 'hardlink') {
          throw new Error(`squashfs: hard link ${display(path)} -> ${display(e.target!)} has no target before it`);
        }
        this.owner[i] = t;
        this.nlink[t]!++;
      }
    }
    this.order = this.postOrder();
  }

  private postOrder(): Int32Array {
    const out = new Int32Array(this.entries.length);
    let k = 0;
    // Each stacked directory with the child to visit next.
    const dirs: number[] = [0];
    const next: number[] = [this.firstChild[0]!];
    while (dirs.length > 0) {
      const top = dirs.length - 1;
      const c = next[top]!;
      if (c >= 0) {
        next[top] = this.nextSibling[c]!;
        if (this.entries[c]!.type === 'dir') {
          dirs.push(c);
          next.push(this.firstChild[c]!);
        } else out[k++] = c;
      } else {
        out[k++] = dirs.pop()!;
        next.pop();
      }
    }
    return out;
  }

  /**
   * Number the inodes in post-order (a directory's children first, the root last), a hard link
   * sharing its owner's number; returns the inode count.
   */
  numberInodes(): number {
    let next = 1;
    for (const i of this.order) {
      const o = this.owner[i]!;
      if (this.number[o] === 0) this.number[o] = next++;
    }
    return next - 1;
  }

  /** The block of an inode's reference (the metadata chunk's offset in the inode table). */
  block(slot: number): number {
    return refBlock(this.ref[slot]!);
  }
}

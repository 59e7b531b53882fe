// The tree a report draws: root → repository → (part) → directories → files, with bytes, entries
// and bytes per category summed up every level. Entries arrive in path order, so each group keeps
// only the chain of directories it is in (a stack), never a map of every path: a 2,000,000-entry
// plan makes one small record per directory and three typed-array slots per file.
// `finish()` keeps the largest nodes (at most `maxNodes`; everything below a size threshold is
// summed into one "smaller entries" node per directory), which is what the page embeds.

/** Node kinds, as the page knows them. */
export const KIND = { root: 0, repository: 1, part: 2, dir: 3, file: 4, rest: 5 } as const;

/** A growable Float64Array (a plain array of 2,000,000 numbers costs twice the memory). */
class Numbers {
  data = new Float64Array(1024);
  length = 0;
  push(v: number): number {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length] = v;
    return this.length++;
  }
}

/** One item of the embedded tree (arrays by node number; a parent's number is below its children's). */
export interface TreeData {
  name: string[];
  parent: number[];
  kind: number[];
  bytes: number[];
  entries: number[];
  cat: number[];
  /** Comparisons only: bytes in the first and second plan. */
  a?: number[];
  b?: number[];
}

/** A row of a "largest" table. */
export interface SizedPath {
  path: string;
  part: string;
  bytes: number;
  entries: number;
  cat: number;
  a?: number;
  b?: number;
}

export interface TreeOptions {
  categories: number;
  /** The most nodes the page gets (the root, repositories and parts are always kept). */
  maxNodes: number;
  /** Keep bytes of the first and second plan per node (a comparison). */
  compare?: boolean;
}

export class TreeBuilder {
  // Directory-like nodes: the root, repositories, parts, directories.
  private readonly name: string[] = ['/cvmfs'];
  private readonly parent: number[] = [-1];
  private readonly kind: number[] = [KIND.root];
  private readonly children: number[] = [0];
  private readonly ownCat: number[] = [0];
  private entries = new Numbers();
  private bytes = new Numbers();
  private catBytes: Float64Array;
  private catEntries: Float64Array;
  private readonly a = new Numbers();
  private readonly b = new Numbers();
  // Files (every entry that is not a directory).
  private readonly fileParent = new Numbers();
  private readonly fileName: string[] = [];
  private readonly fileBytes = new Numbers();
  private readonly fileA = new Numbers();
  private readonly fileB = new Numbers();
  private fileCat = new Uint8Array(1024);
  private readonly groups = new Map<string, number>();
  private readonly stacks = new Map<number, number[]>();

  constructor(private readonly o: TreeOptions) {
    this.catBytes = new Float64Array(1024 * o.categories);
    this.catEntries = new Float64Array(1024 * o.categories);
    this.entries.push(0);
    this.bytes.push(0);
    this.a.push(0);
    this.b.push(0);
  }

  private newNode(name: string, parent: number, kind: number, cat: number): number {
    const id = this.name.length;
    this.name.push(name);
    this.parent.push(parent);
    this.kind.push(kind);
    this.children.push(0);
    this.children[parent]!++;
    this.ownCat.push(cat);
    this.entries.push(0);
    this.bytes.push(0);
    this.a.push(0);
    this.b.push(0);
    const need = (id + 1) * this.o.categories;
    if (need > this.catBytes.length) {
      const grow = (arr: Float64Array) => {
        const next = new Float64Array(arr.length * 2);
        next.set(arr);
        return next;
      };
      this.catBytes = grow(this.catBytes);
      this.catEntries = grow(this.catEntries);
    }
    return id;
  }

  private group(parent: number, name: string, kind: number, cat: number): number {
    const key = `${parent}\0${name}`;
    let id = this.groups.get(key);
    if (id === undefined) this.groups.set(key, (id = this.newNode(name, parent, kind, cat)));
    return id;
  }

  private count(node: number, bytes: number, cat: number, a: number, b: number): void {
    this.entries.data[node]! += 1;
    this.bytes.data[node]! += bytes;
    this.catBytes[node * this.o.categories + cat]! += bytes;
    this.catEntries[node * this.o.categories + cat]! += 1;
    this.a.data[node]! += a;
    this.b.data[node]! += b;
  }

  /**
   * One entry: its repository, its part (null: no part level), its path components below the
   * repository (none: the repository's own directory), whether it is a directory, its bytes and
   * category. Entries of one repository and part must come in path order.
   */
  add(repo: string, part: string | null, rel: readonly string[], isDir: boolean, bytes: number, cat: number, a = 0, b = 0): void {
    const repoNode = this.group(0, repo, KIND.repository, cat);
    if (rel.length === 0) {
      this.ownCat[repoNode] = cat;
      this.count(repoNode, bytes, cat, a, b);
      return;
    }
    const top = part === null ? repoNode : this.group(repoNode, part, KIND.part, cat);
    let stack = this.stacks.get(top);
    if (!stack) this.stacks.set(top, (stack = []));
    const depth = isDir ? rel.length : rel.length - 1;
    let i = 0;
    while (i < stack.length && i < depth && this.name[stack[i]!] === rel[i]) i++;
    stack.length = i;
    while (stack.length < depth) stack.push(this.newNode(rel[stack.length]!, stack.length > 0 ? stack[stack.length - 1]! : top, KIND.dir, cat));
    if (isDir) {
      const node = stack[depth - 1]!;
      this.ownCat[node] = cat;
      this.count(node, bytes, cat, a, b);
      return;
    }
    const parent = depth > 0 ? stack[depth - 1]! : top;
    const f = this.fileParent.push(parent);
    this.children[parent]!++;
    this.fileName.push(rel[rel.length - 1]!);
    this.fileBytes.push(bytes);
    this.fileA.push(a);
    this.fileB.push(b);
    if (f === this.fileCat.length) {
      const next = new Uint8Array(this.fileCat.length * 2);
      next.set(this.fileCat);
      this.fileCat = next;
    }
    this.fileCat[f] = cat;
    this.count(parent, bytes, cat, a, b);
  }

  /** Sum every directory into its parent (children are numbered after their parents). */
  private sumUp(): void {
    const n = this.name.length;
    const c = this.o.categories;
    for (let i = n - 1; i > 0; i--) {
      const p = this.parent[i]!;
      this.entries.data[p]! += this.entries.data[i]!;
      this.bytes.data[p]! += this.bytes.data[i]!;
      this.a.data[p]! += this.a.data[i]!;
      this.b.data[p]! += this.b.data[i]!;
      for (let k = 0; k < c; k++) {
        this.catBytes[p * c + k]! += this.catBytes[i * c + k]!;
        this.catEntries[p * c + k]! += this.catEntries[i * c + k]!;
      }
    }
  }

  /** The category with the most bytes below a node (with none, the most entries; then its own). */
  private nodeCat(i: number): number {
    const c = this.o.categories;
    let best = -1;
    let bestValue = 0;
    for (const arr of [this.catBytes, this.catEntries]) {
      for (let k = 0; k < c; k++) {
        const v = arr[i * c + k]!;
        if (v > bestValue) {
          best = k;
          bestValue = v;
        }
      }
      if (best >= 0) return best;
    }
    return this.ownCat[i]!;
  }

  /** The size below which a directory or file is summed into its parent's "smaller entries". */
  private threshold(): number {
    const dirs = this.name.length;
    const files = this.fileParent.length;
    if (dirs + files <= this.o.maxNodes) return -1;
    const sizes = new Float64Array(dirs + files);
    sizes.set(this.bytes.data.subarray(0, dirs));
    sizes.set(this.fileBytes.data.subarray(0, files), dirs);
    sizes.sort();
    // Strictly above the size of the maxNodes-th largest: ties are all in or all out.
    return sizes[sizes.length - this.o.maxNodes]!;
  }

  finish(): FinishedTree {
    this.sumUp();
    return new FinishedTree(this, this.threshold());
  }

  /** For FinishedTree: the raw arrays. */
  raw() {
    return {
      name: this.name,
      parent: this.parent,
      kind: this.kind,
      children: this.children,
      entries: this.entries.data,
      bytes: this.bytes.data,
      a: this.a.data,
      b: this.b.data,
      fileParent: this.fileParent.data,
      fileName: this.fileName,
      fileBytes: this.fileBytes.data,
      fileA: this.fileA.data,
      fileB: this.fileB.data,
      fileCat: this.fileCat,
      files: this.fileParent.length,
      nodeCat: (i: number) => this.nodeCat(i),
      compare: this.o.compare ?? false,
    };
  }
}

type Raw = ReturnType<TreeBuilder['raw']>;

/** A child in the embedded tree before numbering: a directory node, a file, or a parent's "smaller entries". */
interface Item {
  kind: number;
  name: string;
  bytes: number;
  entries: number;
  cat: number;
  a: number;
  b: number;
  /** Directory-like node number, or -1. */
  node: number;
}

export class FinishedTree {
  private readonly r: Raw;

  constructor(
    builder: TreeBuilder,
    /** Nodes of this size or less are summed into their parent's "smaller entries"; -1 keeps all. */
    readonly threshold: number,
  ) {
    this.r = builder.raw();
  }

  /** The full path of a directory-like node (parts are groupings, not path components). */
  private pathOf(node: number): string {
    const parts: string[] = [];
    for (let i = node; i > 0; i = this.r.parent[i]!) if (this.r.kind[i] !== KIND.part) parts.push(this.r.name[i]!);
    return '/cvmfs/' + parts.reverse().join('/');
  }

  private partOf(node: number): string {
    for (let i = node; i > 0; i = this.r.parent[i]!) if (this.r.kind[i] === KIND.part) return this.r.name[i]!;
    return '';
  }

  private kept(bytes: number): boolean {
    return this.threshold < 0 || bytes > this.threshold;
  }

  /** The page's tree: kept nodes in pre-order, children by bytes (largest first), then name. */
  data(): TreeData {
    const r = this.r;
    const kids: Item[][] = r.name.map(() => []);
    for (let i = 1; i < r.name.length; i++) {
      kids[r.parent[i]!]!.push({ kind: r.kind[i]!, name: r.name[i]!, bytes: r.bytes[i]!, entries: r.entries[i]!, cat: r.nodeCat(i), a: r.a[i]!, b: r.b[i]!, node: i });
    }
    for (let f = 0; f < r.files; f++) {
      kids[r.fileParent[f]!]!.push({ kind: KIND.file, name: r.fileName[f]!, bytes: r.fileBytes[f]!, entries: 1, cat: r.fileCat[f]!, a: r.fileA[f]!, b: r.fileB[f]!, node: -1 });
    }
    const out: TreeData = { name: [], parent: [], kind: [], bytes: [], entries: [], cat: [] };
    if (r.compare) {
      out.a = [];
      out.b = [];
    }
    const emit = (it: Item, parent: number): number => {
      out.name.push(it.name);
      out.parent.push(parent);
      out.kind.push(it.kind);
      out.bytes.push(it.bytes);
      out.entries.push(it.entries);
      out.cat.push(it.cat);
      out.a?.push(it.a);
      out.b?.push(it.b);
      return out.name.length - 1;
    };
    const walk = (node: number, at: number): void => {
      const shown = this.shownChildren(kids[node]!);
      // A directory whose only content is one directory is drawn as one node, `a/b`.
      for (const it of shown) {
        let item = it;
        let inner = it.node;
        while (item.kind === KIND.dir && inner >= 0 && r.children[inner] === 1 && kids[inner]![0]?.kind === KIND.dir) {
          const only = kids[inner]![0]!;
          item = { ...item, name: `${item.name}/${only.name}` };
          inner = only.node;
        }
        const id = emit(item, at);
        if (inner >= 0) walk(inner, id);
      }
    };
    const root = emit({ kind: KIND.root, name: r.name[0]!, bytes: r.bytes[0]!, entries: r.entries[0]!, cat: r.nodeCat(0), a: r.a[0]!, b: r.b[0]!, node: 0 }, -1);
    walk(0, root);
    return out;
  }

  /** The children a node shows: the kept ones, and the rest summed into one "smaller entries" item. */
  private shownChildren(items: Item[]): Item[] {
    const shown: Item[] = [];
    let rest: Item | null = null;
    const restCats = new Map<number, number>();
    for (const it of items) {
      if (it.kind === KIND.repository || it.kind === KIND.part || this.kept(it.bytes)) {
        shown.push(it);
        continue;
      }
      rest ??= { kind: KIND.rest, name: '', bytes: 0, entries: 0, cat: it.cat, a: 0, b: 0, node: -1 };
      rest.bytes += it.bytes;
      rest.entries += it.entries;
      rest.a += it.a;
      rest.b += it.b;
      restCats.set(it.cat, (restCats.get(it.cat) ?? 0) + it.bytes + 1e-9);
    }
    if (rest) {
      rest.name = `(${rest.entries.toLocaleString('en-US')} smaller entries)`;
      rest.cat = [...restCats].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0]![0];
      shown.push(rest);
    }
    return shown.sort((x, y) => y.bytes - x.bytes || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  }

  /** The `n` files of the highest score (default: bytes), then in path order. */
  largestFiles(n: number, score: (bytes: number, a: number, b: number, cat: number) => number = (bytes) => bytes): SizedPath[] {
    const r = this.r;
    const picks = topIndices(r.files, n, (f) => score(r.fileBytes[f]!, r.fileA[f]!, r.fileB[f]!, r.fileCat[f]!)).map((f) => {
      const p = r.fileParent[f]!;
      const row: SizedPath = { path: `${this.pathOf(p)}/${r.fileName[f]}`, part: this.partOf(p), bytes: r.fileBytes[f]!, entries: 1, cat: r.fileCat[f]! };
      if (r.compare) Object.assign(row, { a: r.fileA[f]!, b: r.fileB[f]! });
      return row;
    });
    return picks;
  }

  /** The `n` largest directories (a directory under two parts is two rows: each part's share). */
  largestDirs(n: number): SizedPath[] {
    const r = this.r;
    const dirs: number[] = [];
    for (let i = 0; i < r.name.length; i++) if (r.kind[i] === KIND.dir) dirs.push(i);
    const picks = topIndices(dirs.length, n, (k) => r.bytes[dirs[k]!]!).map((k) => {
      const i = dirs[k]!;
      return { path: this.pathOf(i), part: this.partOf(i), bytes: r.bytes[i]!, entries: r.entries[i]!, cat: r.nodeCat(i) };
    });
    return picks;
  }
}

/** Indices of the `n` largest positive values of `key` over 0..count-1, largest first (ties: lower index, i.e. path order). */
export function topIndices(count: number, n: number, key: (i: number) => number): number[] {
  if (count === 0 || n === 0) return [];
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = key(i);
  const sorted = values.slice().sort();
  const cut = sorted[Math.max(0, count - n)]!;
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (values[i]! >= cut && values[i]! > 0) out.push(i);
  out.sort((x, y) => values[y]! - values[x]! || x - y);
  return out.slice(0, n);
}

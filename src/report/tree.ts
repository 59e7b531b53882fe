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

  private lastRepo = '';
  private lastPart: string | null = null;
  private lastTop = -1;
  private lastRepoNode = -1;

  /**
   * One entry: its repository, its part (null: no part level), its path, where in the path the
   * components below the repository start (at its end: the repository's own directory), whether it
   * is a directory, its bytes and category. Entries of one repository and part must come in path
   * order. Components are compared in place: a 2,000,000-entry plan would otherwise make
   * 2,000,000 arrays of strings.
   */
  add(repo: string, part: string | null, path: string, relStart: number, isDir: boolean, bytes: number, cat: number, a = 0, b = 0): void {
    if (repo !== this.lastRepo || this.lastRepoNode < 0) {
      this.lastRepoNode = this.group(0, repo, KIND.repository, cat);
      this.lastRepo = repo;
      this.lastTop = -1;
    }
    if (relStart >= path.length) {
      // The repository's own directory: counted at the repository, in no part.
      this.ownCat[this.lastRepoNode] = cat;
      this.count(this.lastRepoNode, bytes, cat, a, b);
      return;
    }
    if (part !== this.lastPart || this.lastTop < 0) {
      this.lastTop = part === null ? this.lastRepoNode : this.group(this.lastRepoNode, part, KIND.part, cat);
      this.lastPart = part;
    }
    const top = this.lastTop;
    let stack = this.stacks.get(top);
    if (!stack) this.stacks.set(top, (stack = []));
    let level = 0;
    let pos = relStart;
    let leaf: string | null = null;
    for (;;) {
      const slash = path.indexOf('/', pos);
      const end = slash < 0 ? path.length : slash;
      if (slash < 0 && !isDir) {
        leaf = path.slice(pos);
        break;
      }
      // A directory on the way (or the entry itself): the stack's at this level, or a new one.
      const known = level < stack.length ? this.name[stack[level]!]! : null;
      if (known === null || known.length !== end - pos || !path.startsWith(known, pos)) {
        stack.length = level;
        stack.push(this.newNode(path.slice(pos, end), level > 0 ? stack[level - 1]! : top, KIND.dir, cat));
      }
      level++;
      if (slash < 0) break;
      pos = slash + 1;
    }
    stack.length = level;
    if (leaf === null) {
      const node = stack[level - 1]!;
      this.ownCat[node] = cat;
      this.count(node, bytes, cat, a, b);
      return;
    }
    const parent = level > 0 ? stack[level - 1]! : top;
    const f = this.fileParent.push(parent);
    this.children[parent]!++;
    this.fileName.push(leaf);
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

/** What a directory's children below the threshold add up to. */
interface Rest {
  bytes: number;
  entries: number;
  a: number;
  b: number;
  /** Bytes per category (plus a hair per entry, so that byte-less entries still count). */
  cats: Map<number, number>;
}

/** The children a node shows: the kept ones, and the rest as one "smaller entries" item, largest first. */
function shownChildren(items: Item[], rest: Rest | undefined): Item[] {
  const shown = [...items];
  if (rest) {
    const cat = [...rest.cats].sort((x, y) => y[1] - x[1] || x[0] - y[0])[0]![0];
    shown.push({ kind: KIND.rest, name: `(${rest.entries.toLocaleString('en-US')} smaller entries)`, bytes: rest.bytes, entries: rest.entries, cat, a: rest.a, b: rest.b, node: -1 });
  }
  return shown.sort((x, y) => y.bytes - x.bytes || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
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
    const rests: Array<Rest | undefined> = new Array(r.name.length);
    const sumInto = (p: number, bytes: number, entries: number, a: number, b: number, cat: number) => {
      const rest = (rests[p] ??= { bytes: 0, entries: 0, a: 0, b: 0, cats: new Map() });
      rest.bytes += bytes;
      rest.entries += entries;
      rest.a += a;
      rest.b += b;
      rest.cats.set(cat, (rest.cats.get(cat) ?? 0) + bytes + 1e-9);
    };
    // A directory below the threshold goes whole into its parent's rest (when the parent is shown).
    const shownDir = (i: number) => r.kind[i] !== KIND.dir || this.kept(r.bytes[i]!);
    for (let i = 1; i < r.name.length; i++) {
      const p = r.parent[i]!;
      if (!shownDir(p)) continue;
      if (!shownDir(i)) sumInto(p, r.bytes[i]!, r.entries[i]!, r.a[i]!, r.b[i]!, r.nodeCat(i));
      else kids[p]!.push({ kind: r.kind[i]!, name: r.name[i]!, bytes: r.bytes[i]!, entries: r.entries[i]!, cat: r.nodeCat(i), a: r.a[i]!, b: r.b[i]!, node: i });
    }
    for (let f = 0; f < r.files; f++) {
      const p = r.fileParent[f]!;
      if (!shownDir(p)) continue;
      if (this.kept(r.fileBytes[f]!)) kids[p]!.push({ kind: KIND.file, name: r.fileName[f]!, bytes: r.fileBytes[f]!, entries: 1, cat: r.fileCat[f]!, a: r.fileA[f]!, b: r.fileB[f]!, node: -1 });
      else sumInto(p, r.fileBytes[f]!, 1, r.fileA[f]!, r.fileB[f]!, r.fileCat[f]!);
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
      // A directory whose only content is one directory is drawn as one node, `a/b`.
      for (const it of shownChildren(kids[node]!, rests[node])) {
        let item = it;
        let inner = it.node;
        while (item.kind === KIND.dir && inner >= 0 && r.children[inner] === 1 && kids[inner]!.length === 1 && kids[inner]![0]!.kind === KIND.dir) {
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
  // The best n so far, kept sorted (largest first): most values fail the first comparison.
  const best: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = key(i);
    if (!(v > 0) || (best.length === n && v <= values[n - 1]!)) continue;
    let at: number;
    if (best.length < n) {
      at = best.length;
      best.push(i);
      values.push(v);
    } else {
      at = n - 1;
      best[at] = i;
      values[at] = v;
    }
    // Up past the smaller ones (an equal one stays first: it came first).
    while (at > 0 && values[at - 1]! < v) {
      best[at] = best[at - 1]!;
      values[at] = values[at - 1]!;
      best[at - 1] = i;
      values[at - 1] = v;
      at--;
    }
  }
  return best;
}

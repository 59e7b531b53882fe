// Layers applied with the OCI rules (image-spec layer.md) into one tree of entries, never written to
// disk: a later entry replaces an earlier one (two directories merge), `.wh.NAME` deletes NAME from
// lower layers, `.wh..wh..opq` hides every lower-layer child of its directory. Content stays where
// the layer has it (file + offset). Anything that would write outside the image if extracted, a
// `..` path, an absolute path, a path through a symlink, a hard link to a name the image lacks, a
// symlink climbing above `/`, a whiteout of the root, is refused, naming the layer and the entry.
import { fromText } from '../../model/bytes.js';
import { type Entry, comparePaths, makeDev, parentPath } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import { type TarMember, shortName } from '../tar/reader.js';
import { type Steps, runSteps } from '../../util/steps.js';

const WHITEOUT = '.wh.';
/** Members applied between two pauses: a few milliseconds' worth. */
const PAUSE_EVERY = 1024;

// The limits Linux puts on what can be opened by name, as on /cvmfs entries (selection.ts): a path
// of PATH_MAX bytes or more, or a name of more than NAME_MAX, cannot be extracted, opened or
// listed by the tools that will use the image. The depth limit has no Linux counterpart: no real
// root filesystem comes near it, and it bounds the parent directories one member can imply.
export const PATH_MAX = 4096;
export const NAME_MAX = 255;
export const MAX_DEPTH = 256;
const OPAQUE = '.wh..wh..opq';

interface Placed {
  entry: Entry;
  layer: number;
  /** For files: the identity of the inode (hard links share it). */
  inode?: object;
}

export class LayerStack {
  private readonly tree = new Map<string, Placed>();
  /**
   * The paths in `tree` under each directory path, so that deleting a subtree costs its size, not
   * the whole tree's: a scan of the tree per whiteout made a layer of many opaque directories
   * quadratic. (A set may outlive its directory: a same-layer child survives a lower one's whiteout.)
   */
  private readonly children = new Map<string, Set<string>>();
  /** Directories made opaque in the current layer: a repeated marker has nothing left to hide. */
  private opaqued = new Set<string>();
  private layer = -1;

  constructor(private readonly epoch: number) {
    this.tree.set('/', { entry: dir('/', 0o755, 0, 0, epoch, 'base image root'), layer: -1 });
  }

  /** Apply one layer's members, and say how many there were. `file` is the uncompressed tar the members' offsets point into. */
  apply(members: Iterable<TarMember>, file: string, label: string): number {
    return runSteps(this.applySteps(members, file, label));
  }

  /** apply(), pausing every PAUSE_EVERY members (a layer of a million members is read for seconds). */
  *applySteps(members: Iterable<TarMember>, file: string, label: string): Steps<number> {
    this.layer++;
    this.opaqued = new Set();
    const layer = this.layer;
    const source = fromText(file);
    let count = 0;
    for (const m of members) {
      if (++count % PAUSE_EVERY === 0) yield;
      const fail = (why: string): never => {
        throw new InputError(`${label}: entry '${shortName(m.name)}': ${why}`);
      };
      const path = imagePath(m.name, fail);
      const name = path.slice(path.lastIndexOf('/') + 1);
      if (name.startsWith(WHITEOUT)) {
        const dirPath = parentPath(path);
        this.checkParents(path, fail);
        if (name === OPAQUE) {
          if (!this.opaqued.has(dirPath)) this.removeBelow(dirPath, layer, false);
          this.opaqued.add(dirPath);
          continue;
        }
        const victim = name.slice(WHITEOUT.length);
        if (victim === '' || victim === '.' || victim === '..') fail('a whiteout of the directory itself or of its parent');
        this.removeBelow(dirPath === '/' ? '/' + victim : dirPath + '/' + victim, layer, true);
        continue;
      }
      if (path === '/') {
        if (m.type !== 'dir') fail('the image root must be a directory');
        const root = this.tree.get('/')!;
        root.entry = { ...root.entry, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, xattrs: m.xattrs.length ? m.xattrs : undefined, reason: `base ${label}` };
        continue;
      }
      this.checkParents(path, fail);
      const reason = `base ${label}`;
      const e: Entry = { path, type: m.type === 'hardlink' ? 'file' : m.type, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, size: 0, reason };
      if (m.xattrs.length > 0) e.xattrs = m.xattrs;
      let inode: object | undefined;
      switch (m.type) {
        case 'file':
          Object.assign(e, { size: m.size, source, offset: m.offset });
          inode = {};
          break;
        case 'symlink':
          if (m.linkname === '') fail('symlink with an empty target');
          if (m.linkname.includes('\0')) fail(`symlink target '${shortName(m.linkname)}' has a NUL byte`);
          if (m.linkname.length >= PATH_MAX) fail(`symlink target of ${m.linkname.length} bytes, longer than PATH_MAX (${PATH_MAX})`);
          if (!m.linkname.startsWith('/') && climbsAbove(parentPath(path), m.linkname)) fail(`symlink to '${shortName(m.linkname)}' climbs above the image root`);
          e.target = m.linkname;
          e.size = m.linkname.length;
          break;
        case 'hardlink': {
          const targetPath = imagePath(m.linkname, (why) => fail(`hard link target '${shortName(m.linkname)}': ${why}`));
          const target = this.tree.get(targetPath);
          if (!target) fail(`hard link to '${shortName(m.linkname)}', which is not in the image`);
          if (target!.entry.type !== 'file') fail(`hard link to '${shortName(m.linkname)}', a ${target!.entry.type}`);
          // A hard link is another name of the same inode: content and metadata come from the target.
          const t = target!.entry;
          Object.assign(e, { mode: t.mode, uid: t.uid, gid: t.gid, mtime: t.mtime, size: t.size, source: t.source, offset: t.offset, xattrs: t.xattrs });
          inode = target!.inode;
          break;
        }
        case 'char':
        case 'block':
          e.rdev = makeDev(m.devmajor, m.devminor);
          break;
      }
      const old = this.tree.get(path);
      if (old && old.entry.type === 'dir' && e.type === 'dir') {
        old.entry = { ...e }; // attributes replaced, children kept
        old.layer = layer;
        continue;
      }
      if (old) this.removeBelow(path, Infinity, true);
      this.put(path, { entry: e, layer, inode });
    }
    return count;
  }

  /** The flattened tree in path order; names of one inode become a file and hard links to it. */
  entries(): Entry[] {
    const paths = [...this.tree.keys()].sort(comparePaths);
    const firstName = new Map<object, string>();
    const out: Entry[] = [];
    for (const p of paths) {
      const placed = this.tree.get(p)!;
      const e = placed.entry;
      if (placed.inode) {
        const first = firstName.get(placed.inode);
        if (first !== undefined) {
          out.push({ ...e, type: 'hardlink', target: first, size: 0, source: undefined, offset: undefined });
          continue;
        }
        firstName.set(placed.inode, p);
      }
      out.push(e);
    }
    return out;
  }

  /** Parents missing from the tar are made (layers often omit them); a parent that is not a directory is refused. */
  private checkParents(path: string, fail: (why: string) => never): void {
    const missing: string[] = [];
    for (let p = parentPath(path); ; p = parentPath(p)) {
      const placed = this.tree.get(p);
      if (placed) {
        if (placed.entry.type === 'symlink') fail(`its parent '${shortName(p)}' is a symlink (to '${shortName(placed.entry.target!)}'): extracting it would write through the link`);
        if (placed.entry.type !== 'dir') fail(`its parent '${shortName(p)}' is a ${placed.entry.type}`);
        break;
      }
      missing.push(p);
    }
    for (const p of missing) this.put(p, { entry: dir(p, 0o755, 0, 0, this.epoch, 'parent directory missing from the base layer'), layer: this.layer });
  }

  /**
   * Delete `path` (with `self`) or only its children (without), and their subtrees, where they come
   * from a layer below `below`.
   */
  private removeBelow(path: string, below: number, self: boolean): void {
    if (!self) {
      for (const p of [...(this.children.get(path) ?? [])]) this.prune(p, below);
      return;
    }
    const placed = this.tree.get(path);
    if (placed && placed.layer < below) this.prune(path, below);
  }

  /**
   * Delete the entries of layers below `below` in the subtree at `path`; true if anything of a
   * later layer stays there. A whiteout hides lower layers only: a directory it deletes that its own
   * layer writes below stays, as the plain directory those entries imply (recursion is bounded by
   * MAX_DEPTH).
   */
  private prune(path: string, below: number): boolean {
    let kept = false;
    for (const p of [...(this.children.get(path) ?? [])]) if (this.prune(p, below)) kept = true;
    const placed = this.tree.get(path)!;
    if (placed.layer >= below) return true;
    if (kept) {
      this.tree.set(path, { entry: dir(path, 0o755, 0, 0, this.epoch, 'parent directory of entries of a later layer'), layer: this.layer });
      return true;
    }
    this.drop(path);
    return false;
  }

  private put(path: string, placed: Placed): void {
    if (!this.tree.has(path) && path !== '/') {
      const parent = parentPath(path);
      const kids = this.children.get(parent);
      if (kids) kids.add(path);
      else this.children.set(parent, new Set([path]));
    }
    this.tree.set(path, placed);
  }

  private drop(path: string): void {
    this.tree.delete(path);
    this.children.get(parentPath(path))?.delete(path);
  }
}

function dir(path: string, mode: number, uid: number, gid: number, mtime: number, reason: string): Entry {
  return { path, type: 'dir', mode, uid, gid, mtime, size: 0, reason };
}

/**
 * A tar member name as an image path: `./` prefixes, empty components and trailing slashes go;
 * `..`, absolute names, empty names, NUL bytes and names beyond the limits above are refused. All
 * of it in linear time, before the name is used for anything else (its parents, its subtree).
 */
function imagePath(name: string, fail: (why: string) => never): string {
  if (name === '') fail('an empty name');
  if (name.includes('\0')) fail('a name with a NUL byte');
  if (name.startsWith('/')) fail('an absolute path');
  const parts: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') fail('a path with ".." (path traversal)');
    parts.push(c);
  }
  const path = '/' + parts.join('/');
  if (path.length >= PATH_MAX) fail(`a path of ${path.length} bytes, longer than PATH_MAX (${PATH_MAX})`);
  if (parts.length > MAX_DEPTH) fail(`a path of ${parts.length} components, deeper than ${MAX_DEPTH}`);
  const long = parts.find((c) => c.length > NAME_MAX);
  if (long !== undefined) fail(`a name of ${long.length} bytes, longer than NAME_MAX (${NAME_MAX})`);
  return path;
}

/** Does a relative link in `dir` climb above `/` (lexically, as a symlink escape would)? */
function climbsAbove(dirPath: string, target: string): boolean {
  let depth = dirPath === '/' ? 0 : dirPath.split('/').length - 1;
  for (const c of target.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (--depth < 0) return true;
    } else depth++;
  }
  return false;
}

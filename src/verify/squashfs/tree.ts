// The directory tree and its inodes, walked from the root: listings, headers, entries, each
// reachable inode once (inodes.ts), directory indexes, link counts, and inodes no name reaches.
import { display } from '../../model/bytes.js';
import { joinPath } from '../../model/entry.js';
import { describeSystemError } from '../../model/errors.js';
import { BASIC_TYPE_NAMES, INODE, MAX_NAME, METADATA_SIZE, type Superblock, basicType, hex, refString } from '../../formats/squashfs/index.js';
import type { RawDirHeader, RawInode, SquashfsImage } from '../../sources/squashfs/reader.js';
import { checkInode } from './inodes.js';
import type { Problems, VerifyOptions, VerifyStats } from './report.js';
import { type Chain, blockAt, refProblem } from './tables.js';

export interface InodeInfo {
  raw: RawInode;
  /** First path that reached it. */
  path: string;
  names: number;
  subdirs: number;
}

function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME) return `name of ${name.length} bytes (at most 256)`;
  if (name === '.' || name === '..') return `name "${name}"`;
  if (name.includes('/')) return `name contains "/"`;
  if (name.includes('\0')) return `name contains NUL`;
  return undefined;
}

export class TreeChecker {
  readonly sb: Superblock;
  /** Reachable inodes by reference. */
  readonly inodes = new Map<number, InodeInfo>();
  /** Inode number → reference of the first inode with that number. */
  readonly byNumber = new Map<number, number>();
  private readonly dirsSeen = new Set<number>();

  constructor(
    readonly image: SquashfsImage,
    readonly p: Problems,
    readonly stats: VerifyStats,
    private readonly opts: VerifyOptions,
    private readonly inodeChain: Chain,
    private readonly dirChain: Chain,
  ) {
    this.sb = image.superblock;
  }

  /** The inode at `ref`, read and checked once; undefined (reported) when unreadable. */
  private inode(ref: number, path: string): InodeInfo | undefined {
    const known = this.inodes.get(ref);
    if (known) return known;
    const where = `${display(path)}: inode ${refString(ref)}`;
    const bad = refProblem(this.inodeChain, ref);
    if (bad) {
      this.p.add(`${where}: ${bad}`);
      return undefined;
    }
    let raw: RawInode;
    try {
      raw = this.image.readInode(ref);
    } catch (err) {
      this.p.add(`${display(path)}: ${describeSystemError(err)}`);
      return undefined;
    }
    const info: InodeInfo = { raw, path, names: 0, subdirs: 0 };
    this.inodes.set(ref, info);
    checkInode(this, info);
    return info;
  }

  /** Depth-first over directories from the root: listings, headers, entries, child inodes. */
  walkTree(): boolean {
    const { sb, p } = this;
    const root = this.inode(sb.rootInode, '/');
    if (!root) {
      p.add(`superblock: the root inode ${refString(sb.rootInode)} cannot be read`);
      return false;
    }
    root.names = 1;
    if (basicType(root.raw.type) !== INODE.dir) {
      p.add(`superblock: the root inode ${refString(sb.rootInode)} is not a directory (type ${root.raw.type})`);
      return false;
    }
    this.dirsSeen.add(root.raw.ref);
    const stack: Array<{ info: InodeInfo; path: string; parent: number | undefined }> = [{ info: root, path: '/', parent: undefined }];
    while (stack.length > 0) {
      const { info, path, parent } = stack.pop()!;
      const subdirs = this.checkDirectory(info, path);
      if (parent !== undefined && info.raw.parentInode !== parent) {
        p.add(`directory ${display(path)}: parent_inode ${info.raw.parentInode}, but its parent is inode #${parent}`);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push({ info: subdirs[i]![0], path: subdirs[i]![1], parent: info.raw.number });
    }
    this.stats.inodes = this.inodes.size;
    return true;
  }

  /** Check one directory; returns its subdirectories to descend into. */
  private checkDirectory(info: InodeInfo, path: string): Array<[InodeInfo, string]> {
    const { image, p, stats } = this;
    const raw = info.raw;
    const where = `directory ${display(path)}`;
    const out: Array<[InodeInfo, string]> = [];
    const size = raw.fileSize - 3;
    if (size > 0) {
      const bad = refProblem(this.dirChain, raw.startBlock! * 65536 + raw.offset!);
      if (bad) {
        p.add(`${where}: listing at ${refString(raw.startBlock! * 65536 + raw.offset!)}: ${bad}`);
        return out;
      }
    }
    const listing = image.readListing(raw);
    if (listing.error) {
      let hint = '';
      if (raw.fileSize >= 0 && !image.readListing({ ...raw, fileSize: raw.fileSize + 3 }).error) hint = ' (file_size is 3 short: is the +3 for "." and ".." missing?)';
      p.add(`${where}: file_size ${raw.fileSize} (listing ${size} bytes): ${listing.error}${hint}`);
    }
    let prev: string | undefined;
    let subdirs = 0;
    for (const h of listing.headers) {
      if (!this.inodeChain.blocks.has(h.startBlock)) {
        p.add(`${where}: header at byte ${h.pos}: start_block ${hex(h.startBlock)} is not the start of an inode metadata block`);
        continue;
      }
      for (const d of h.entries) {
        const childPath = joinPath(path, d.name);
        const at = `${where}: entry "${display(d.name)}"`;
        const bad = nameProblem(d.name);
        if (bad) p.add(`${at}: ${bad}`);
        if (prev !== undefined && !(prev < d.name)) {
          p.add(`${at}: ${prev === d.name ? 'duplicate name' : `not sorted (after "${display(prev)}")`}; names must be strictly increasing by raw bytes`);
        }
        prev = d.name;
        stats.entries++;
        if (d.type < 1 || d.type > 7) p.add(`${at}: type ${d.type} is not a basic type 1..7`);
        if (d.offset >= (this.inodeChain.blocks.get(h.startBlock)?.len ?? 0)) {
          p.add(`${at}: inode offset ${d.offset} is outside the header's inode metadata block ${hex(h.startBlock)} (entries of a header must share one block)`);
          continue;
        }
        const child = this.inode(d.ref, childPath);
        if (!child) continue;
        child.names++;
        if (child.names > 1 && basicType(child.raw.type) !== INODE.dir) stats.hardlinks++;
        const bt = basicType(child.raw.type);
        if (d.type >= 1 && d.type <= 7 && d.type !== bt) {
          p.add(`${at}: entry type ${d.type} (${BASIC_TYPE_NAMES[d.type]}) but the inode is type ${child.raw.type} (${BASIC_TYPE_NAMES[bt] ?? '?'})`);
        }
        if (d.inodeNumber !== child.raw.number) {
          p.add(`${at}: header base ${h.inodeNumber} + delta ${d.delta} = inode number ${d.inodeNumber}, but the inode says #${child.raw.number}`);
        }
        if (bt === INODE.dir) {
          subdirs++;
          if (this.dirsSeen.has(d.ref)) {
            p.add(`${at}: directory inode ${refString(d.ref)} already appears at ${display(child.path)} (directories cannot be hard-linked)`);
          } else {
            this.dirsSeen.add(d.ref);
            out.push([child, childPath]);
          }
        }
      }
    }
    info.subdirs = subdirs;
    if (this.opts.dirNlink !== 'any' && raw.nlink !== 2 + subdirs) p.add(`${where}: nlink ${raw.nlink}, expected 2 + ${subdirs} subdirectories = ${2 + subdirs}`);
    if (raw.index && raw.index.length > 0) this.checkDirIndex(raw, where, listing.headers);
    return out;
  }

  /** Directory index entries must point at header starts and name their first entry. */
  private checkDirIndex(raw: RawInode, where: string, headers: RawDirHeader[]): void {
    const { p } = this;
    const byPos = new Map(headers.map((h) => [h.pos, h]));
    const start = this.dirChain.blocks.get(raw.startBlock!);
    let prev = -1;
    raw.index!.forEach((x, i) => {
      const at = `${where}: directory index entry ${i}`;
      if (x.index <= prev) p.add(`${at}: index ${x.index} is not after the previous one (${prev})`);
      prev = x.index;
      const h = byPos.get(x.index);
      if (!h) {
        p.add(`${at}: index ${x.index} is not the start of a directory header`);
        return;
      }
      const first = h.entries[0]?.name;
      if (first !== x.name) p.add(`${at}: name "${display(x.name)}" is not the first entry of its header ("${display(first ?? '')}")`);
      if (!start) return;
      const stream = start.stream + raw.offset! + x.index;
      const block = blockAt(this.dirChain, stream);
      if (block !== x.startBlock) {
        p.add(`${at}: start_block ${hex(x.startBlock)}, but the header is in the metadata block at ${block === undefined ? '?' : hex(block)}`);
      } else if (stream - this.dirChain.blocks.get(block)!.stream !== (x.index + raw.offset!) % METADATA_SIZE) {
        p.add(`${at}: the kernel would look for the header at offset ${(x.index + raw.offset!) % METADATA_SIZE} of its block, it is at ${stream - this.dirChain.blocks.get(block)!.stream}`);
      }
    });
  }

  checkCounts(): void {
    const { sb, p, stats } = this;
    if (this.inodes.size !== sb.inodeCount) {
      p.add(`superblock: inode_count ${sb.inodeCount}, but ${this.inodes.size} distinct inodes are reachable from the root`);
    }
    for (const info of this.inodes.values()) {
      const raw = info.raw;
      if (basicType(raw.type) === INODE.dir) continue;
      if (raw.nlink !== info.names) {
        const implied = raw.type === INODE.file ? ' (a basic file inode implies nlink 1: use an extended inode)' : '';
        p.add(`inode #${raw.number} (${display(info.path)}): nlink ${raw.nlink}${implied}, but the image has ${info.names} name${info.names === 1 ? '' : 's'} for it`);
      }
    }
    stats.entries += 1; // the root
  }

  /** Inodes are stored back to back: every one in the table should be reachable. */
  scanInodeTable(): void {
    const { image, p } = this;
    if (this.inodeChain.order.length === 0) return;
    let ref = 0;
    const unreachable: string[] = [];
    let count = 0;
    for (;;) {
      let raw: RawInode;
      try {
        raw = image.readInode(ref);
      } catch (err) {
        p.warn(`inode table: a sequential scan stopped at ${refString(ref)}: ${describeSystemError(err)}`);
        return;
      }
      if (!this.inodes.has(ref)) {
        count++;
        if (unreachable.length < 10) unreachable.push(`${refString(ref)} (#${raw.number})`);
      }
      if (raw.atTableEnd) break;
      ref = raw.nextRef;
    }
    if (count > 0) p.add(`inode table: ${count} inode${count === 1 ? '' : 's'} not reachable from the root: ${unreachable.join(', ')}${count > 10 ? ', ...' : ''}`);
  }
}

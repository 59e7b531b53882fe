// The directory table: each directory's listing, written just before its inode (whose children's
// inodes are all written already: inodes go in post-order).
import { entryName } from '../../model/entry.js';
import type { Entry } from '../../model/entry.js';
import { DIR_ENTRY_SIZE, DIR_HEADER_SIZE, INODE, MAX_DIR_COUNT, encodeDirEntry, encodeDirHeader, refOffset } from '../../formats/squashfs/index.js';
import type { InodeEncoder } from './inodes.js';
import type { MetadataWriter } from './metadata.js';
import type { Tree } from './tree.js';

export interface Listing {
  block: number;
  offset: number;
  /** Listing bytes + 3 (the kernel's "." and ".."). */
  fileSize: number;
  index: Array<{ index: number; block: number; name: string }>;
}

const BASIC_TYPE: Record<Entry['type'], number> = {
  dir: INODE.dir,
  file: INODE.file,
  hardlink: INODE.file,
  symlink: INODE.symlink,
  block: INODE.block,
  char: INODE.char,
  fifo: INODE.fifo,
  socket: INODE.socket,
};

/**
 * A directory's listing: runs of entries under 12-byte headers. A new run starts at 256 entries,
 * when the child's inode is in another inode-table block, or when its inode number is too far
 * from the run's base for an s16 delta. Every run after the first gets a directory index entry.
 */
export function writeListing(t: Tree, dir: number, table: MetadataWriter, enc: InodeEncoder): Listing {
  const start = table.position();
  const startLogical = table.logicalSize;
  const index: Listing['index'] = [];
  let c = t.firstChild[dir]!;
  while (c >= 0) {
    const first = t.owner[c]!;
    const block = t.block(first);
    const base = t.number[first]!;
    let n = 0;
    for (let d = c; d >= 0 && n < MAX_DIR_COUNT; d = t.nextSibling[d]!) {
      const o = t.owner[d]!;
      const delta = t.number[o]! - base;
      if (t.block(o) !== block || delta < -32768 || delta > 32767) break;
      n++;
    }
    const here = table.position();
    if (c !== t.firstChild[dir]) index.push({ index: table.logicalSize - startLogical, block: here.block, name: entryName(t.entries[c]!) });
    const header = enc.scratch(DIR_HEADER_SIZE);
    encodeDirHeader(header, 0, { count: n, startBlock: block, inodeNumber: base });
    table.write(header);
    for (let k = 0; k < n; k++, c = t.nextSibling[c]!) {
      const o = t.owner[c]!;
      const name = entryName(t.entries[c]!);
      const ent = enc.scratch(DIR_ENTRY_SIZE + name.length);
      encodeDirEntry(ent, 0, { offset: refOffset(t.ref[o]!), delta: t.number[o]! - base, type: BASIC_TYPE[t.entries[o]!.type] }, name);
      table.write(ent);
    }
  }
  return { block: start.block, offset: start.offset, fileSize: table.logicalSize - startLogical + 3, index };
}

// Reading directory listings: runs of entries under headers (formats/squashfs/directory.ts),
// parsed as far as they go.
import { describeSystemError } from '../../model/errors.js';
import { DIR_ENTRY_SIZE, DIR_HEADER_SIZE, MAX_DIR_COUNT, MAX_NAME, decodeDirEntry, decodeDirHeader, makeRef, refString } from '../../formats/squashfs/index.js';
import type { SquashfsImage } from './image.js';
import type { RawInode } from './inodes.js';

export interface RawDirEntry {
  /** Byte offset of the entry from the start of the listing. */
  pos: number;
  offset: number;
  delta: number;
  /** As stored: must be a basic type 1..7. */
  type: number;
  name: string;
  inodeNumber: number;
  ref: number;
}

export interface RawDirHeader {
  /** Byte offset of the header from the start of the listing. */
  pos: number;
  /** Number of entries (stored count + 1). */
  count: number;
  startBlock: number;
  inodeNumber: number;
  entries: RawDirEntry[];
}

export interface RawListing {
  headers: RawDirHeader[];
  /** Listing bytes according to the inode (file_size − 3). */
  size: number;
  /** Why the listing could not be read to its end; entries read before that are kept. */
  error?: string;
}

/** The listing of a directory inode, parsed as far as it goes (see `error`). */
export function readListing(image: SquashfsImage, dir: RawInode): RawListing {
  const size = dir.fileSize - 3;
  const out: RawListing = { headers: [], size };
  if (size < 0) {
    out.error = `file_size ${dir.fileSize} is less than 3`;
    return out;
  }
  if (size === 0) return out;
  let buf: Buffer;
  try {
    buf = image.cursor(image.superblock.directoryTableStart + dir.startBlock!, dir.offset!, image.directoryTableEnd).read(size);
  } catch (err) {
    out.error = `listing of ${size} bytes at ${refString(makeRef(dir.startBlock!, dir.offset!))} cannot be read: ${describeSystemError(err)}`;
    return out;
  }
  const error = parseListing(buf, out);
  if (error) out.error = error;
  return out;
}

/** Parse `out.size` bytes of listing into `out.headers`; why it stops early, if it does. */
function parseListing(buf: Buffer, out: RawListing): string | undefined {
  const size = out.size;
  let p = 0;
  while (p < size) {
    if (size - p < DIR_HEADER_SIZE) return `listing ends ${size - p} bytes into a directory header at byte ${p}`;
    const h: RawDirHeader = { pos: p, ...decodeDirHeader(buf, p), entries: [] };
    out.headers.push(h);
    p += DIR_HEADER_SIZE;
    if (h.count > MAX_DIR_COUNT) return `directory header at byte ${h.pos} has ${h.count} entries (at most 256)`;
    for (let i = 0; i < h.count; i++) {
      const cut = `listing ends inside entry ${i + 1} of ${h.count} of the header at byte ${h.pos}`;
      if (size - p < DIR_ENTRY_SIZE) return cut;
      const d = decodeDirEntry(buf, p);
      if (d.nameLength > MAX_NAME) return `directory entry at byte ${p} has a name of ${d.nameLength} bytes (at most 256)`;
      if (size - p - DIR_ENTRY_SIZE < d.nameLength) return cut;
      const name = buf.toString('latin1', p + DIR_ENTRY_SIZE, p + DIR_ENTRY_SIZE + d.nameLength);
      h.entries.push({ pos: p, offset: d.offset, delta: d.delta, type: d.type, name, inodeNumber: h.inodeNumber + d.delta, ref: makeRef(h.startBlock, d.offset) });
      p += DIR_ENTRY_SIZE + d.nameLength;
    }
  }
  return undefined;
}

// What an image file is, by its first bytes: the one sniffing that --base, --reuse, verify and
// report share (each then reads the file with its own reader).
import * as fs from 'node:fs';
import { SQUASHFS_MAGIC } from '../formats/squashfs/index.js';
import { SIF_MAGIC } from '../formats/sif.js';

export type ImageFileKind = 'sif' | 'squashfs' | 'tar';

/** Bytes read: a ustar header's magic is at 257. */
const HEAD = 263;

/**
 * `SIF_MAGIC` at byte 32 (a SIF container), the SquashFS magic at 0, or `ustar` at 257 (a tar:
 * POSIX "ustar\0" and GNU "ustar  "); null for anything else. System errors (no such file, not
 * readable) are thrown for the caller to word.
 */
export function imageFileKind(file: string): ImageFileKind | null {
  const head = Buffer.alloc(HEAD);
  let got: number;
  const fd = fs.openSync(file, 'r');
  try {
    got = fs.readSync(fd, head, 0, HEAD, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (got >= 32 + SIF_MAGIC.length + 1 && head.toString('latin1', 32, 32 + SIF_MAGIC.length + 1) === `${SIF_MAGIC}\0`) return 'sif';
  if (got >= 4 && head.readUInt32LE(0) === SQUASHFS_MAGIC) return 'squashfs';
  if (got >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return null;
}

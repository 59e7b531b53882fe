// What a check produces: problems (the image is wrong), warnings (oddities readers accept) and
// statistics; and the options of a check.
import type { ManifestEntry } from '../manifest.js';
export { Problems } from '../problems.js';

export interface VerifyOptions {
  /** Entries the image must hold exactly (paths and hard-link targets under `manifestRoot`). */
  manifest?: ManifestEntry[];
  /** Prefix of manifest paths that is the image root (default '/cvmfs'; '' or '/' = none). */
  manifestRoot?: string;
  /**
   * Where `manifestRoot` lands in the image: '/' for an image built without a base, '/cvmfs' for one
   * with a root filesystem (only that subtree is compared). Default: what the image says of itself
   * (`/.shrinkwrap/plan.json` is there: '/cvmfs'; else '/').
   */
  imageRoot?: string;
  /** Also read and decompress every data and fragment block. */
  data?: boolean;
  /** Stop listing problems after this many (default 1000); the rest are counted. */
  maxProblems?: number;
  /**
   * Directory nlink rule: 'subdirs' (default) = 2 + subdirectories, what mksquashfs and shrinkwrap
   * write; 'any' skips the check (squashfs-tools-ng writes 2 + entries; the kernel does not care).
   */
  dirNlink?: 'subdirs' | 'any';
  /** The image is this part of the file (a SIF container's partition). */
  region?: { offset: number; size: number };
}

export interface VerifyStats {
  fileSize: number;
  bytesUsed: number;
  compressor: string;
  blockSize: number;
  /** Distinct inodes reachable from the root. */
  inodes: number;
  /** Names reachable from the root, the root included. */
  entries: number;
  dirs: number;
  files: number;
  symlinks: number;
  devices: number;
  fifos: number;
  sockets: number;
  /** Names beyond the first of an inode. */
  hardlinks: number;
  extendedInodes: number;
  /** Content bytes of distinct file inodes. */
  fileBytes: number;
  dataBlocks: number;
  sparseBlocks: number;
  fragments: number;
  ids: number;
  xattrIds: number;
  /** On-disk bytes of the inode and directory tables. */
  inodeTableBytes: number;
  directoryTableBytes: number;
  /** Directories with a directory index (ext dir, i_count > 0). */
  indexedDirs: number;
  /** Data and fragment blocks were read and decompressed. */
  dataChecked: boolean;
}

export interface VerifyResult {
  /** Violations: the image is wrong, or is not what a correct writer produces. */
  problems: string[];
  /** Oddities that readers accept (padding, flags, layout beyond what tools check). */
  warnings: string[];
  stats: VerifyStats;
}

export function emptyStats(fileSize: number): VerifyStats {
  return {
    fileSize,
    bytesUsed: 0,
    compressor: '',
    blockSize: 0,
    inodes: 0,
    entries: 0,
    dirs: 0,
    files: 0,
    symlinks: 0,
    devices: 0,
    fifos: 0,
    sockets: 0,
    hardlinks: 0,
    extendedInodes: 0,
    fileBytes: 0,
    dataBlocks: 0,
    sparseBlocks: 0,
    fragments: 0,
    ids: 0,
    xattrIds: 0,
    inodeTableBytes: 0,
    directoryTableBytes: 0,
    indexedDirs: 0,
    dataChecked: false,
  };
}

// The superblock shrinkwrap writes: its flags, from the options and what the image holds.
import { Compressor, Flag } from '../../formats/squashfs/index.js';
import type { CodecName } from '../../codecs/index.js';

export interface ImageFacts {
  compression: 'none' | CodecName;
  dedup: boolean;
  exportTable: boolean;
  xattrIds: number;
  fragments: number;
}

/** Superblock flags: always-fragments, and what the image has and lacks. */
export function superblockFlags(f: ImageFacts): number {
  const none = f.compression === 'none';
  let flags = Flag.alwaysFragments;
  if (f.dedup) flags |= Flag.duplicates;
  if (f.exportTable) flags |= Flag.exportable;
  if (f.xattrIds === 0) flags |= Flag.noXattrs;
  if (f.fragments === 0) flags |= Flag.noFragments;
  if (!none) flags |= Flag.compressorOptions;
  if (none) flags |= Flag.inodesUncompressed | Flag.dataUncompressed | Flag.fragmentsUncompressed | Flag.xattrsUncompressed | Flag.idsUncompressed;
  return flags;
}

/** Compressor id: an uncompressed image names gzip (an id must be valid; nothing uses it). */
export function compressorId(compression: 'none' | CodecName): number {
  return compression === 'none' ? Compressor.gzip : Compressor[compression];
}

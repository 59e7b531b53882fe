// With `verify --data`: every file's blocks and every fragment block read and decompressed.
import { display } from '../../model/bytes.js';
import { describeSystemError } from '../../model/errors.js';
import { INODE, NO_FRAGMENT, basicType } from '../../formats/squashfs/index.js';
import type { ImageEntry, SquashfsImage } from '../../sources/squashfs/reader.js';
import type { Problems, VerifyStats } from './report.js';
import type { InodeInfo } from './tree.js';

/** Read every file's blocks and every fragment. */
export function checkData(image: SquashfsImage, inodes: Iterable<InodeInfo>, p: Problems, stats: VerifyStats): void {
  const sb = image.superblock;
  stats.dataChecked = true;
  for (const info of inodes) {
    const raw = info.raw;
    if (basicType(raw.type) !== INODE.file) continue;
    const entry = {
      path: info.path,
      squashfsType: raw.type,
      fileSize: raw.fileSize,
      blocksStart: raw.blocksStart!,
      blockSizes: raw.blockSizes!,
      ...(raw.fragment !== NO_FRAGMENT ? { fragment: raw.fragment!, fragmentOffset: raw.fragmentOffset! } : {}),
    } as ImageEntry;
    try {
      let got = 0;
      for (const b of image.readBlocks(entry)) got += b.length;
      if (got !== raw.fileSize) p.add(`data of ${display(info.path)}: read ${got} bytes, file_size is ${raw.fileSize}`);
    } catch (err) {
      p.add(`data: ${describeSystemError(err)}`);
    }
  }
  for (let i = 0; i < sb.fragmentCount && image.fragmentTable; i++) {
    try {
      image.fragmentBlock(i);
    } catch (err) {
      p.add(`data: ${describeSystemError(err)}`);
    }
  }
}

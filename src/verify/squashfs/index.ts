// A structural checker for SquashFS 4.0 images: what the Linux kernel (>= 5.11) checks at mount
// and lookup time, what unsquashfs 4.5 checks when reading the tables, and the rules a writer has
// to keep for the image to read back correctly (see /work/shared/reference/squashfs.md §1, §4).
// Each problem is one line naming the table, inode or path concerned. The parts: superblock.ts
// (superblock, compressor options), tables.ts (table placement), tree.ts and inodes.ts (the
// directory tree and its inodes), data.ts (data blocks), manifest.ts (against a plan).
import * as fs from 'node:fs';
import { InputError, describeSystemError } from '../../model/errors.js';
import { SUPERBLOCK_SIZE, decodeSuperblock } from '../../formats/squashfs/index.js';
import { type SquashfsImage, openSquashfs, regionSize } from '../../sources/squashfs/reader.js';
import { checkData } from './data.js';
import { PLAN_ROOT, compareManifest, payloadRoot } from '../manifest.js';
import { Problems, type VerifyOptions, type VerifyResult, type VerifyStats, emptyStats } from './report.js';
import { checkCompressionOptions, checkSuperblock } from './superblock.js';
import { checkExportTable, checkLookupTables, walkChain } from './tables.js';
import { TreeChecker } from './tree.js';

export { type ManifestEntry, readManifestFile } from '../manifest.js';
export type { VerifyOptions, VerifyResult, VerifyStats } from './report.js';

/** Check an image. Problems are returned, not thrown; InputError only when the file cannot be read at all. */
export async function verifySquashfs(path: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const p = new Problems(opts.maxProblems ?? 1000, path);
  let fileSize = 0;
  let head: Buffer;
  try {
    const fd = fs.openSync(path, 'r');
    try {
      fileSize = regionSize(fs.fstatSync(fd).size, opts.region);
      head = Buffer.alloc(SUPERBLOCK_SIZE);
      const got = fileSize < SUPERBLOCK_SIZE ? fileSize : fs.readSync(fd, head, 0, SUPERBLOCK_SIZE, opts.region?.offset ?? 0);
      if (got < SUPERBLOCK_SIZE) {
        p.add(`superblock: the file has only ${got} bytes`);
        return { problems: p.finish(), warnings: p.warnings, stats: emptyStats(fileSize) };
      }
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new InputError(`${path}: ${describeSystemError(err)}`);
  }
  const stats = emptyStats(fileSize);
  const sb = decodeSuperblock(head);
  stats.bytesUsed = sb.bytesUsed;
  stats.compressor = sb.compressor;
  stats.blockSize = sb.blockSize;
  if (!checkSuperblock(sb, fileSize, p)) return { problems: p.finish(), warnings: p.warnings, stats };

  let image: SquashfsImage;
  try {
    image = await openSquashfs(path, { report: (m) => p.add(m), region: opts.region });
  } catch (err) {
    p.add(describeSystemError(err));
    return { problems: p.finish(), warnings: p.warnings, stats };
  }
  try {
    check(image, p, stats, opts);
    if (opts.manifest) {
      const root = payloadRoot(opts.imageRoot, (path) => {
        try {
          return image.lookup(path) !== undefined;
        } catch {
          return false; // a damaged tree: reported by the checks above
        }
      });
      compareManifest(() => image.walk(), opts.manifest, opts.manifestRoot ?? PLAN_ROOT, root, p);
    }
  } finally {
    image.close();
  }
  return { problems: p.finish(), warnings: p.warnings, stats };
}

function check(image: SquashfsImage, p: Problems, stats: VerifyStats, opts: VerifyOptions): void {
  const sb = image.superblock;
  checkCompressionOptions(image, p);
  stats.ids = image.ids?.length ?? 0;
  stats.xattrIds = image.xattr?.count ?? 0;
  stats.fragments = sb.fragmentCount;
  checkLookupTables(image, p);

  const inodeChain = walkChain(image, 'inode table', sb.inodeTableStart, sb.directoryTableStart, p);
  const dirChain = walkChain(image, 'directory table', sb.directoryTableStart, image.directoryTableEnd, p);
  stats.inodeTableBytes = inodeChain.diskBytes;
  stats.directoryTableBytes = dirChain.diskBytes;

  const tree = new TreeChecker(image, p, stats, opts, inodeChain, dirChain);
  // Without a readable root directory, counts and the export table would only repeat that.
  if (!tree.walkTree()) return;
  tree.checkCounts();
  tree.scanInodeTable();
  checkExportTable(image, tree, p);
  if (opts.data) checkData(image, tree.inodes.values(), p, stats);
}

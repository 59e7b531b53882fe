// Superblock and compressor options checks (kernel super.c, unsquashfs read_super and
// read_filesystem_tables).
import { KNOWN_FLAGS, METADATA_SIZE, OPTIONS_SIZE, SQUASHFS_MAGIC, SUPERBLOCK_SIZE, type Superblock, blockLogProblem, blockSizeProblem, hex } from '../../formats/squashfs/index.js';
import type { SquashfsImage } from '../../sources/squashfs/reader.js';
import type { Problems } from './report.js';

/** Superblock checks (kernel super.c and unsquashfs read_super/read_filesystem_tables). */
export function checkSuperblock(sb: Superblock, fileSize: number, p: Problems): boolean {
  let fatal = false;
  if (sb.magic !== SQUASHFS_MAGIC) {
    p.add(`superblock: bad magic ${hex(sb.magic)} (expected 0x73717368, "hsqs")`);
    return false;
  }
  if (sb.versionMajor !== 4 || sb.versionMinor !== 0) {
    p.add(`superblock: version ${sb.versionMajor}.${sb.versionMinor}, expected 4.0`);
    fatal = true;
  }
  const bs = sb.blockSize;
  const badSize = blockSizeProblem(bs);
  if (badSize) p.add(badSize);
  const badLog = blockLogProblem(bs, sb.blockLog);
  if (badLog) p.add(`${badLog} (log2 = ${Math.log2(bs)})`);
  if (badSize || badLog) fatal = true;
  if (sb.compressor.startsWith('unknown')) {
    p.add(`superblock: unknown compression id ${sb.compression}`);
    fatal = true;
  }
  if (sb.inodeCount === 0) p.add(`superblock: inode_count is 0`);
  if (sb.fragmentCount > sb.inodeCount) p.add(`superblock: fragment_count ${sb.fragmentCount} exceeds inode_count ${sb.inodeCount}`);
  if (sb.idCount > sb.inodeCount * 2) p.add(`superblock: id_count ${sb.idCount} exceeds twice inode_count ${sb.inodeCount}`);
  if (sb.rootInode % 65536 > METADATA_SIZE) p.add(`superblock: root inode offset ${sb.rootInode % 65536} exceeds 8192`);
  if (sb.bytesUsed > fileSize) {
    p.add(`superblock: bytes_used ${sb.bytesUsed} exceeds the file size ${fileSize}`);
  } else if (fileSize % 4096 !== 0) {
    p.warn(`file size ${fileSize} is not padded to a multiple of 4096 (loop devices and the kernel need 1 KiB or 4 KiB multiples)`);
  }
  if (sb.bytesUsed < SUPERBLOCK_SIZE) {
    p.add(`superblock: bytes_used ${sb.bytesUsed} is smaller than the superblock`);
    fatal = true;
  }
  const pointers: [string, number, boolean][] = [
    ['inode_table_start', sb.inodeTableStart, true],
    ['directory_table_start', sb.directoryTableStart, true],
    ['id_table_start', sb.idTableStart, true],
    ['fragment_table_start', sb.fragmentTableStart, sb.fragmentCount > 0],
    ['lookup_table_start', sb.lookupTableStart, sb.hasExportTable],
    ['xattr_id_table_start', sb.xattrIdTableStart, sb.hasXattrTable],
  ];
  for (const [name, v, used] of pointers) {
    if (used && v >= sb.bytesUsed) {
      p.add(`superblock: ${name} ${hex(v)} is not below bytes_used ${hex(sb.bytesUsed)}`);
      fatal = true;
    }
  }
  if (sb.flags & ~KNOWN_FLAGS) p.warn(`superblock: unknown flag bits ${hex(sb.flags & ~KNOWN_FLAGS)}`);
  if (sb.flagBits.exportable !== sb.hasExportTable) {
    p.warn(`superblock: flag "exportable" is ${sb.flagBits.exportable ? 'set' : 'clear'} but the export table is ${sb.hasExportTable ? 'present' : 'absent'}`);
  }
  return !fatal;
}

export function checkCompressionOptions(image: SquashfsImage, p: Problems): void {
  const sb = image.superblock;
  const o = image.compressionOptions;
  if (!sb.flagBits.compressorOptions) {
    if (sb.compressor === 'lz4') p.add(`compressor options: lz4 images must carry compressor options (the kernel refuses to mount without them)`);
    return;
  }
  if (!o) return; // reported while opening
  const want = OPTIONS_SIZE[sb.compressor];
  if (want === undefined) p.add(`compressor options: ${sb.compressor} takes no options but the image has a ${o.raw.length}-byte block`);
  else if (o.raw.length !== want) p.add(`compressor options: ${o.raw.length} bytes, ${sb.compressor} options are ${want} bytes`);
  switch (sb.compressor) {
    case 'gzip':
      if (o.level !== undefined && (o.level < 1 || o.level > 9)) p.add(`compressor options: gzip level ${o.level} (1..9)`);
      if (o.windowSize !== undefined && (o.windowSize < 8 || o.windowSize > 15)) p.add(`compressor options: gzip window ${o.windowSize} (8..15)`);
      break;
    case 'xz': {
      const d = o.dictionarySize ?? 0;
      const n = 31 - Math.clz32(d);
      if (d < 8192 || (d !== 2 ** n && d !== 2 ** n + 2 ** (n - 1))) p.add(`compressor options: xz dictionary size ${d} is not 2^n or 2^n + 2^(n-1), >= 8192`);
      // The kernel's own default is max(block size, 8 KiB); a larger dictionary only costs memory,
      // but no writer has a reason for one.
      else if (d > Math.max(sb.blockSize, 8192)) p.add(`compressor options: xz dictionary size ${d} exceeds max(block size, 8 KiB) = ${Math.max(sb.blockSize, 8192)}`);
      break;
    }
    case 'lz4':
      if (o.version !== 1) p.add(`compressor options: lz4 version ${o.version} (the kernel accepts only 1)`);
      break;
    case 'zstd':
      if (o.level !== undefined && (o.level < 1 || o.level > 22)) p.add(`compressor options: zstd level ${o.level} (1..22)`);
      break;
  }
}

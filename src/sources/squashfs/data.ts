// Reading file data: data blocks (size words: stored size | DATA_UNCOMPRESSED, 0 for a sparse
// block) and fragment blocks holding files' tails.
import { display } from '../../model/bytes.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import { DATA_UNCOMPRESSED, type FragmentEntry, INODE, basicType, decodeFragmentEntry, hex } from '../../formats/squashfs/index.js';
import type { ImageEntry } from './entries.js';
import type { SquashfsImage } from './image.js';

/** The fragment table entry `index`: position, size word. */
export function fragmentEntry(image: SquashfsImage, index: number): FragmentEntry {
  const t = image.fragmentTable;
  if (!t) throw new InputError(`${image.path}: fragment ${index} but the fragment table cannot be read`);
  if (index >= image.superblock.fragmentCount) throw new InputError(`${image.path}: fragment index ${index} is not below fragment_count ${image.superblock.fragmentCount}`);
  return decodeFragmentEntry(t, index);
}

/** Decode one data or fragment block stored at `pos` with size word `word` (not 0). */
export function readDataBlock(image: SquashfsImage, pos: number, word: number, what: string): Buffer {
  if (word >>> 25 !== 0) throw new InputError(`${image.path}: ${what}: size word ${hex(word)} has bits 25..31 set`);
  const size = word & 0xffffff;
  const bs = image.superblock.blockSize;
  if (size > bs) throw new InputError(`${image.path}: ${what}: stored size ${size} is larger than the block size ${bs}`);
  if (pos + size > image.superblock.bytesUsed) throw new InputError(`${image.path}: ${what} at ${hex(pos)} (${size} bytes) is beyond bytes_used`);
  const raw = image.pread(pos, size);
  if (word & DATA_UNCOMPRESSED) return raw;
  try {
    return image.decoder.decompress(raw, bs);
  } catch (err) {
    throw new InputError(`${image.path}: ${what} at ${hex(pos)} does not decompress (${image.superblock.compressor}: ${describeSystemError(err)})`);
  }
}

/** The content of a file (or of the file a hard link names), one block at a time. */
export function* readBlocks(image: SquashfsImage, entry: ImageEntry): Generator<Buffer> {
  if (basicType(entry.squashfsType) !== INODE.file) throw new InputError(`${image.path}: ${display(entry.path)} is not a regular file`);
  const bs = image.superblock.blockSize;
  const size = entry.fileSize;
  const words = entry.blockSizes!;
  const n = words.length;
  const hasFragment = entry.fragment !== undefined;
  let pos = entry.blocksStart!;
  for (let i = 0; i < n; i++) {
    const want = hasFragment || i + 1 < n ? bs : size - i * bs;
    const word = words[i]!;
    const what = `${display(entry.path)}: block ${i}`;
    if (word === 0) {
      yield Buffer.alloc(want);
      continue;
    }
    const data = readDataBlock(image, pos, word, what);
    pos += word & 0xffffff;
    if (data.length !== want) throw new InputError(`${image.path}: ${what} holds ${data.length} bytes, expected ${want}`);
    yield data;
  }
  if (hasFragment) {
    const tail = size - n * bs;
    const block = image.fragmentBlock(entry.fragment!);
    const off = entry.fragmentOffset!;
    if (tail <= 0 || off + tail > block.length) {
      throw new InputError(`${image.path}: ${display(entry.path)}: tail of ${tail} bytes at offset ${off} is outside fragment block ${entry.fragment} (${block.length} bytes)`);
    }
    yield block.subarray(off, off + tail);
  }
}

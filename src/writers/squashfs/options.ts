// The compression options block (flag 0x0400): what `unsquashfs -s` shows, and what the kernel
// needs for xz (dictionary size) and lz4 (format version).
import type { CodecName } from '../../codecs/index.js';

export function compressionOptions(name: CodecName, level: number, blockSize: number): Buffer | null {
  switch (name) {
    case 'gzip': {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(level, 0);
      b.writeUInt16LE(15, 4); // window bits
      b.writeUInt16LE(0, 6); // strategies: default
      return b;
    }
    case 'zstd': {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(level, 0);
      return b;
    }
    case 'xz': {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(Math.max(blockSize, 8192), 0); // dictionary size = block size (kernel preallocates it)
      b.writeUInt32LE(0, 4); // no BCJ filters
      return b;
    }
    case 'lz4': {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(1, 0); // LZ4_LEGACY: raw blocks
      b.writeUInt32LE(0, 4);
      return b;
    }
  }
  return null;
}

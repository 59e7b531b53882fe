// The compression options block shrinkwrap writes (records: formats/squashfs/options.ts): what
// `unsquashfs -s` shows, and what the kernel needs for xz (dictionary size) and lz4 (format version).
import type { CodecName } from '../../codecs/index.js';
import { encodeCompressionOptions } from '../../formats/squashfs/index.js';

export function compressionOptions(name: CodecName, level: number, blockSize: number): Buffer | null {
  switch (name) {
    case 'gzip':
      return encodeCompressionOptions('gzip', { level, windowSize: 15, strategies: 0 }); // window bits 15, default strategies
    case 'zstd':
      return encodeCompressionOptions('zstd', { level });
    case 'xz':
      // Dictionary size = block size (the kernel preallocates it); no BCJ filters.
      return encodeCompressionOptions('xz', { dictionarySize: Math.max(blockSize, 8192), filters: 0 });
    case 'lz4':
      return encodeCompressionOptions('lz4', { version: 1, lz4Flags: 0 }); // LZ4_LEGACY: raw blocks
  }
  return null;
}

// The compression options block (superblock flag 0x0400): one metadata block, always stored
// uncompressed, right after the superblock. What `unsquashfs -s` shows, and what the kernel needs
// for xz (dictionary size) and lz4 (format version).
import { type Field, decodeFields, encodeFields } from './fields.js';

/** Compressor options, decoded per compressor. */
export interface CompressionOptions {
  raw: Buffer;
  /** gzip, zstd, lzo */
  level?: number;
  /** gzip */
  windowSize?: number;
  /** gzip: bitmask 1 default, 2 filtered, 4 huffman only, 8 rle, 16 fixed */
  strategies?: number;
  /** xz */
  dictionarySize?: number;
  /** xz: BCJ filter bitmask */
  filters?: number;
  /** lz4: must be 1 */
  version?: number;
  /** lz4: 1 = high compression */
  lz4Flags?: number;
  /** lzo */
  algorithm?: number;
}

type OptionFields = Omit<CompressionOptions, 'raw'>;

/** Each compressor's record (lzma has none). */
const RECORDS: Readonly<Record<string, { size: number; fields: readonly Field<keyof OptionFields>[] }>> = {
  gzip: {
    size: 8,
    fields: [
      ['level', 4, 0],
      ['windowSize', 2, 4],
      ['strategies', 2, 6],
    ],
  },
  xz: {
    size: 8,
    fields: [
      ['dictionarySize', 4, 0],
      ['filters', 4, 4],
    ],
  },
  lz4: {
    size: 8,
    fields: [
      ['version', 4, 0],
      ['lz4Flags', 4, 4],
    ],
  },
  zstd: { size: 4, fields: [['level', 4, 0]] },
  lzo: {
    size: 8,
    fields: [
      ['algorithm', 4, 0],
      ['level', 4, 4],
    ],
  },
};

/** Payload size of the options block per compressor (lzma has none). */
export const OPTIONS_SIZE: Readonly<Record<string, number>> = Object.fromEntries(Object.entries(RECORDS).map(([name, r]) => [name, r.size]));

/** Decode an options block; fields a short block lacks are left out. */
export function decodeCompressionOptions(compressor: string, raw: Buffer): CompressionOptions {
  const o: CompressionOptions = { raw };
  const r = RECORDS[compressor];
  if (r) decodeFields(raw, 0, r.fields, o, true);
  return o;
}

export function encodeCompressionOptions(compressor: string, o: OptionFields): Buffer | null {
  const r = RECORDS[compressor];
  if (!r) return null;
  const b = Buffer.alloc(r.size);
  encodeFields(b, 0, r.fields, o);
  return b;
}

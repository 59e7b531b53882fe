// The block decoder of an image's compressor.
import * as zlib from 'node:zlib';
import { InputError, describeSystemError } from '../../model/errors.js';
import { createBlockDecoder } from '../../codecs/index.js';

/** What the reader needs from a compressor (the shape of `createBlockDecoder` in codecs/index.ts). */
export interface BlockDecoder {
  /** Decompress one block; throws when the data is corrupt or inflates beyond `maxOut` bytes. */
  decompress(data: Buffer, maxOut: number): Buffer;
}

// gzip is decoded here with node:zlib (no dependency); zstd, xz and lz4 come from src/codecs/.
const gzipDecoder: BlockDecoder = {
  // SquashFS "gzip" blocks are zlib streams (RFC 1950), not gzip files.
  decompress: (data, maxOut) => zlib.inflateSync(data, { maxOutputLength: maxOut }),
};

/** The decoder for an image's compressor; InputError when this reader cannot decompress it. */
export async function createDecoder(compressor: string, blockSize: number): Promise<BlockDecoder> {
  if (compressor === 'gzip') return gzipDecoder;
  if (compressor === 'zstd' || compressor === 'xz' || compressor === 'lz4') {
    try {
      return await createBlockDecoder(compressor, blockSize);
    } catch (err) {
      throw new InputError(`compressor ${compressor} not supported by this reader: ${describeSystemError(err)}`);
    }
  }
  throw new InputError(`compressor ${compressor} not supported by this reader`);
}

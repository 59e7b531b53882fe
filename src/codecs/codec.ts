// What every codec of the table (index.ts) is: its types, and the checks all of them share.
import { BuildError } from '../model/errors.js';

export type CodecName = 'gzip' | 'zstd' | 'xz' | 'lz4';
export type CodecBackend = 'auto' | 'node' | 'native' | 'wasm';
export const BACKENDS: readonly CodecBackend[] = ['auto', 'node', 'native', 'wasm'];

export interface CodecOptions {
  name: CodecName;
  level: number;
  /** Largest input block; bounds the window/dictionary. */
  blockSize: number;
  /** Tests and benchmarks only: 'node' forces node:zlib (gzip, zstd), 'native' the zstd-napi
   *  binding (zstd), 'wasm' the WASM packages (libdeflate, zstd-wasm); xz has one backend. */
  backend?: CodecBackend;
}

export interface BlockCodec {
  readonly name: CodecName;
  readonly level: number;
  /** Human text naming the implementation, as codecBackend(). */
  readonly backend: string;
  /**
   * Compress one block (<= blockSize bytes) into a self-contained unit a SquashFS reader decodes:
   * gzip = zlib stream (RFC 1950); zstd = one frame whose window is <= max(blockSize, 8 KiB)
   * (single segment with content size); xz = .xz stream, LZMA2 only, dictionary
   * xzDictSize(blockSize), check CRC32; the output may be larger than the input (the writer
   * then stores the block uncompressed). Synchronous on every backend.
   */
  compress(block: Buffer): Buffer;
  /**
   * Where the backend can write straight into the caller's memory (shared slots): compress()'s
   * bytes, written into dst (dst.length >= block.length); returns their length, or -1 when they
   * would not fit in dst. A length >= block.length means: store the block uncompressed.
   */
  compressInto?(block: Buffer, dst: Buffer): number;
}

export interface BlockDecoder {
  /** Decode one unit made by compress() (or by mksquashfs). Throws BuildError on corrupt data,
   *  on output larger than maxOut, and on frames the kernel would refuse (window/dictionary larger
   *  than max(blockSize, 8 KiB), xz check other than CRC32/none, zlib/zstd preset dictionaries). */
  decompress(data: Buffer, maxOut: number): Buffer;
}

/** A codec that exists here: one entry of the table in index.ts, made by one file. */
export interface Codec {
  readonly name: Exclude<CodecName, 'lz4'>;
  /** Levels accepted, and the default (each codec's file says why that one). */
  readonly levels: { readonly min: number; readonly max: number; readonly default: number };
  /** Backends in order of preference, as 'auto' chooses them, each with what makes it usable. */
  readonly backends: readonly { readonly backend: Exclude<CodecBackend, 'auto'>; readonly what: string }[];
  /** What it compresses: SquashFS blocks, and/or OCI layer blobs (written by writers/tar/layer.ts). */
  readonly serves: { readonly squashfs: boolean; readonly layers: boolean };
  /** Why it cannot be used on this Node with this backend choice, or null when it can. */
  unavailable(backend: CodecBackend): string | null;
  /** Human text naming the implementation a backend choice gives here (it is usable). */
  describe(backend: CodecBackend): string;
  /** The encoder, for options the table has checked. */
  encoder(o: CodecOptions, backend: string): Promise<BlockCodec>;
  /** The decoder of units made with blocks of at most blockSize bytes (checked by the table). */
  decoder(blockSize: number): Promise<BlockDecoder>;
}

/** A codec the table names but this build cannot make, and why. */
export interface MissingCodec {
  readonly name: CodecName;
  readonly missing: string;
}

/** Block sizes every codec takes: zstd decoders refuse windows > 2^27 by default. */
export const BLOCK_SIZES = { min: 1, max: 128 * 1024 * 1024 } as const;
/** The smallest window/dictionary: the kernel's SQUASHFS_METADATA_SIZE. */
export const MIN_WINDOW = 8 * 1024;

/** A BlockCodec around compress functions, refusing blocks larger than the block size. */
export function blockCodec(
  o: CodecOptions,
  backend: string,
  compress: (b: Buffer) => Buffer,
  compressInto?: (b: Buffer, dst: Buffer) => number,
): BlockCodec {
  const { name, level, blockSize } = o;
  return {
    name,
    level,
    backend,
    compress(block: Buffer): Buffer {
      checkBlock(block, blockSize, name);
      return compress(block);
    },
    ...(compressInto && {
      compressInto(block: Buffer, dst: Buffer): number {
        checkBlock(block, blockSize, name);
        if (dst.length < block.length) throw new RangeError(`${name}: output room ${dst.length} is less than the block (${block.length})`);
        return compressInto(block, dst);
      },
    }),
  };
}

function checkBlock(block: Buffer, blockSize: number, name: CodecName): void {
  // A programming error, not bad input: larger blocks could get a window the kernel refuses.
  if (block.length > blockSize) throw new RangeError(`${name}: block of ${block.length} bytes exceeds the block size ${blockSize}`);
}

/** The failures a decoder reports, as one-line BuildErrors naming the codec. */
export function decodeFailures(name: CodecName) {
  const fail = (what: string): never => {
    throw new BuildError(`corrupt ${name} block: ${what}`);
  };
  return {
    fail,
    /** `out`, unless it is larger than maxOut. */
    bounded: (out: Buffer, maxOut: number): Buffer => (out.length > maxOut ? fail(`decodes to ${out.length} bytes, more than ${maxOut}`) : out),
    /** node:zlib's ways of saying that the output passed maxOutputLength. */
    tooBig: (err: unknown): boolean => err instanceof RangeError || (err as NodeJS.ErrnoException)?.code === 'ERR_BUFFER_TOO_LARGE',
  };
}

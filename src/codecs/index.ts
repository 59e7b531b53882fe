// The codec table: one-shot block compression for SquashFS data/fragment/metadata blocks and OCI
// layer pieces, one file per codec (gzip.ts, zstd.ts, xz.ts) behind this one table. The CLI's
// --compression choices and default levels, the writers and the SquashFS reader all go through it;
// a codec's level range and block size are checked here when a codec is made, so a library caller
// gets the same one-line InputError as the CLI user.
//
// Every compress() call turns one block into one self-contained unit that the Linux kernel,
// unsquashfs and squashfuse decode on their own; compress() is synchronous on every backend, so a
// worker_thread can run it in a tight loop (each worker calls createBlockCodec() once; pool.ts).
//
// Backends and why: in each codec's file. Speeds there: one thread on the project's 2-core
// machine, best of 3 runs on an idle machine, 64 MiB of 128 KiB blocks cut from
// /usr/lib/x86_64-linux-gnu/*.so and /usr/share text (slow levels on an evenly spread subset);
// MB/s of input, output as % of input.
//
// lz4: not available. The clean raw-block binding (lz4-napi, 4-byte size prefix to strip) would be
// a third runtime dependency.
import { InputError } from '../model/errors.js';
import {
  BACKENDS,
  BLOCK_SIZES,
  type BlockCodec,
  type BlockDecoder,
  type Codec,
  type CodecBackend,
  type CodecName,
  type CodecOptions,
  type MissingCodec,
} from './codec.js';
import { gzip } from './gzip.js';
import { xz } from './xz.js';
import { zstd } from './zstd.js';

export type { BlockCodec, BlockDecoder, Codec, CodecBackend, CodecName, CodecOptions } from './codec.js';
export { xzDictSize, xzStreamHeader, type XzStreamHeader } from './xz.js';
export { zstdWindowLog } from './zstd.js';
export { zstdFrameHeader, type ZstdFrameHeader } from './zstd-frames.js';

const LZ4_MISSING = 'lz4 is not supported by this build (no dependency-free raw LZ4 block encoder); use gzip, zstd or xz';

/** Every codec name SquashFS knows that shrinkwrap can write, in the order offered. */
export const CODECS: Readonly<Record<CodecName, Codec | MissingCodec>> = {
  gzip,
  zstd,
  xz,
  lz4: { name: 'lz4', missing: LZ4_MISSING },
};

const ALL = Object.keys(CODECS) as CodecName[];

/** The codecs this build can make. */
const MADE = ALL.flatMap((n) => ('missing' in CODECS[n] ? [] : [CODECS[n] as Codec]));

/** The table's entry for `name`, made or missing; InputError for names it does not know. */
function entry(name: CodecName): Codec | MissingCodec {
  if (!ALL.includes(name)) throw new InputError(`unknown compressor '${String(name)}': use one of ${MADE.map((c) => c.name).join(', ')}`);
  return CODECS[name];
}

/** The table's entry for `name`; InputError for names it does not know, and for lz4. */
export function codecFor(name: CodecName): Codec {
  const c = entry(name);
  if ('missing' in c) throw new InputError(c.missing);
  return c;
}

/** The codecs this build has (whether their package loads here or not), for `part` or for
 *  either: what the CLI's --compression offers, besides 'none'. */
export function codecChoices(part?: 'squashfs' | 'layers'): Codec['name'][] {
  return MADE.filter((c) => part === undefined || c.serves[part]).map((c) => c.name);
}

/** gzip 6, zstd 3, xz 6 (the reasons are in each codec's file). InputError for lz4. */
export function defaultLevel(name: CodecName): number {
  return codecFor(name).levels.default;
}

export function levelRange(name: CodecName): [number, number] {
  const { min, max } = codecFor(name).levels;
  return [min, max];
}

/** Why a codec cannot be used on this Node, or null when it can. */
function unavailable(name: CodecName, backend: CodecBackend = 'auto'): string | null {
  const c = entry(name);
  return 'missing' in c ? c.missing : c.unavailable(backend);
}

/** Human text naming the implementation a codec has here, or why it has none. */
export function codecBackend(name: CodecName, backend: CodecBackend = 'auto'): string {
  const why = unavailable(name, backend);
  return why ? `unavailable: ${why}` : codecFor(name).describe(backend);
}

export function availableCodecs(): CodecName[] {
  return ALL.filter((n) => unavailable(n) === null);
}

// ---------------------------------------------------------------------------------------------
// Validation

function checkOptions(o: CodecOptions): Codec {
  const codec = codecFor(o.name);
  const { min, max } = codec.levels;
  if (!Number.isInteger(o.level) || o.level < min || o.level > max) {
    throw new InputError(`${o.name} compression level ${String(o.level)} is out of range: use ${min}-${max}`);
  }
  if (!Number.isInteger(o.blockSize) || o.blockSize < BLOCK_SIZES.min || o.blockSize > BLOCK_SIZES.max) {
    throw new InputError(`block size ${String(o.blockSize)} is out of range: use ${BLOCK_SIZES.min}-${BLOCK_SIZES.max} bytes`);
  }
  if (o.backend !== undefined && !BACKENDS.includes(o.backend)) {
    throw new InputError(`unknown codec backend '${String(o.backend)}'`);
  }
  const why = codec.unavailable(o.backend ?? 'auto');
  if (why) throw new InputError(`${o.name} is not available: ${why}`);
  return codec;
}

// ---------------------------------------------------------------------------------------------
// Making codecs

export async function createBlockCodec(o: CodecOptions): Promise<BlockCodec> {
  const codec = checkOptions(o);
  return codec.encoder(o, codecBackend(o.name, o.backend));
}

export async function createBlockDecoder(name: CodecName, blockSize: number): Promise<BlockDecoder> {
  // InputError for lz4, unavailable codecs, bad sizes
  const codec = checkOptions({ name, level: defaultLevel(name), blockSize });
  return codec.decoder(blockSize);
}

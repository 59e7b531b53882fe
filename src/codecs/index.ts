// One-shot block compression for SquashFS data/fragment/metadata blocks (and later tar layers).
//
// Every compress() call turns one block into one self-contained unit that the Linux kernel,
// unsquashfs and squashfuse decode on their own; compress() is synchronous on every backend, so a
// worker_thread can run it in a tight loop (each worker calls createBlockCodec() once).
//
// Backends and why. Speeds: one thread on the project's 2-core machine, best of 3 runs on an idle
// machine, 64 MiB of 128 KiB blocks cut from /usr/lib/x86_64-linux-gnu/*.so and /usr/share text
// (slow levels on an evenly spread subset); MB/s of input, output as % of input:
//
// * gzip: node:zlib deflateSync, a zlib stream (RFC 1950), the only gzip flavour the kernel reads.
//   L1 138 MB/s (31.3 %), L6 60 (28.2 %), L9 25 (28.1 %). Default 6: level 9 costs 2.4-3x the CPU
//   for < 0.5 % smaller images.
//
// * zstd: node:zlib zstdCompressSync where it exists (Node >= 22.15; Node 22.23: L1 482, L3 374,
//   L9 79, L15 10.8, L19 4.0 MB/s), with the window log forced to floor(log2(max(blockSize,
//   8 KiB))) and the content size flag on. Before Node 22.15, the optional dependency zstd-napi
//   0.0.13 (L3 449, L15 12.5 MB/s; ZSTD_compressCCtx, as mksquashfs calls it) when it was built
//   at install, else the dependency @bokuweb/zstd-wasm 0.0.27 (L1 286, L3 201, L9 44, L15 7.5,
//   L19 2.8 MB/s). All three write the same bytes (test/unit/codecs.test.ts): the images do not
//   depend on which one a machine has.
//   Why these: they are zstd itself (the reference C library, native or compiled to WASM), which
//   no 100 lines of ours replace, and they make the frame the kernel's SquashFS decoder (window =
//   max(block size, 8 KiB)) accepts: ZSTD_compress/ZSTD_compressCCtx given the whole block write
//   one single-segment frame with the content size, unlike the streaming frames (2 MiB+ window)
//   of @mongodb-js/zstd and @toondepauw/node-zstd (ours: checked by loop-mounting patched images
//   in test/unit/codecs.test.ts). zstd-wasm installs from the npm registry alone (no dependencies,
//   no install script, one 250 KB .wasm). zstd-napi's tarball carries zstd's sources and its
//   install script compiles them with node-gyp (python3, make, a C/C++ compiler, Node's headers;
//   ~25 s) after prebuild-install, which would fetch a prebuilt binary from GitHub, is told not
//   to by .prebuild-installrc in the repository: no download. It is optional, so an install
//   without a compiler still succeeds and falls back to WASM; on Node 20 it halves the CPU zstd
//   costs (WASM needs ~7.4 CPU-s for the 1.48 GB bench tree, as much as mksquashfs's whole run).
//   Both work inside worker_threads (WASM: ~6-10 ms to instantiate per worker).
//   Default level 3, not mksquashfs's 15: whoever picks zstd here picks it for build speed. Level 3
//   is zstd's own default and 27-35x cheaper than 15 (level 15 is slower than gzip-6) for images
//   ~12 % larger (28.5 % vs 25.4 % of the input above; mksquashfs on a 1.8 GB tree: 570 vs
//   510 MB). Operators who want mksquashfs's output ask for level 15; the writer records the level
//   in the compression options block, so `unsquashfs -s` shows it either way.
//
// * xz: the dependency lzma-native 8.0.6 (bundles liblzma 5.2.3): L0 15.6, L3 13.2, L6 3.4,
//   L9 3.5 MB/s (xz is slow by nature: mksquashfs -comp xz managed 6.4 MB/s per core). Dependency
//   reason: an LZMA2 encoder is liblzma itself, nothing we write in 100 lines; lzma-native ships
//   prebuilt N-API binaries for linux/darwin/win32 x64 and arm64 inside its npm tarball (its
//   install script, node-gyp-build, only compiles when no prebuild matches, and the module loads
//   from the bundled prebuild even with --ignore-scripts), loads in worker_threads, and lets us give
//   the LZMA2 filter chain explicitly: dictionary = xzDictSize(blockSize), the largest valid xz
//   dictionary size <= max(blockSize, 8 KiB) (the kernel preallocates that much and rejects
//   larger: the easy presets use 8 MiB), and check = CRC32. Its liblzma is driven synchronously
//   through the native Stream object (code(buf, false) runs on the calling thread and delivers
//   the output through bufferHandler before returning). Node has no built-in xz. @napi-rs/lzma was
//   rejected: 1.5.x requires Node ^22.20 || >= 24.12, and 1.4.5 takes no options (8 MiB
//   dictionary, check none, output stored rather than compressed).
//   Default level 6 = mksquashfs's xz preset. Levels are xz presets 0-9 (no -e), given to liblzma
//   as explicit LZMA2 options per xz(1)'s preset table, because a preset would override the
//   dictionary size.
//
// * lz4: not available. The clean raw-block binding (lz4-napi, 4-byte size prefix to strip) would be
//   a third runtime dependency.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import zlib from 'node:zlib';
import { BuildError, InputError } from '../model/errors.js';

export type CodecName = 'gzip' | 'zstd' | 'xz' | 'lz4';
export type CodecBackend = 'auto' | 'node' | 'native' | 'wasm';

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

const ALL: readonly CodecName[] = ['gzip', 'zstd', 'xz', 'lz4'];
const MAX_BLOCK = 128 * 1024 * 1024; // zstd decoders refuse windows > 2^27 by default
const MIN_WINDOW = 8 * 1024; // the kernel's SQUASHFS_METADATA_SIZE

const LZ4_MISSING = 'lz4 is not supported by this build (no dependency-free raw LZ4 block encoder); use gzip, zstd or xz';

/** Levels per codec: gzip = zlib levels, zstd = libzstd levels (no negative "fast" levels),
 *  xz = xz presets without -e. Both zstd backends accept 1-22. */
const RANGES: Record<Exclude<CodecName, 'lz4'>, [number, number]> = {
  gzip: [1, 9],
  zstd: [1, 22],
  xz: [0, 9],
};

/** gzip 6, zstd 3, xz 6 (the reasons are at the top of this file). InputError for lz4. */
export function defaultLevel(name: CodecName): number {
  switch (checkName(name)) {
    case 'gzip':
      return 6;
    case 'zstd':
      return 3;
    case 'xz':
      return 6;
    case 'lz4':
      throw new InputError(LZ4_MISSING);
  }
}

export function levelRange(name: CodecName): [number, number] {
  if (checkName(name) === 'lz4') throw new InputError(LZ4_MISSING);
  const r = RANGES[name as Exclude<CodecName, 'lz4'>];
  return [r[0], r[1]];
}

/** The xz/LZMA2 dictionary size for a block size: the largest 2^n or 3*2^(n-1) that is
 *  <= max(blockSize, 8 KiB) (the values the LZMA2 header can express exactly and the kernel's
 *  option check accepts). The writer puts this value in the xz compression options block. */
export function xzDictSize(blockSize: number): number {
  const limit = Math.max(blockSize, MIN_WINDOW);
  const p = 2 ** Math.floor(Math.log2(limit));
  return p + p / 2 <= limit ? p + p / 2 : p;
}

/** zstd window log used for a block size: floor(log2(max(blockSize, 8 KiB))). */
export function zstdWindowLog(blockSize: number): number {
  return Math.floor(Math.log2(Math.max(blockSize, MIN_WINDOW)));
}

// ---------------------------------------------------------------------------------------------
// Backends (loaded lazily, once per thread)

const require = createRequire(import.meta.url);

interface NodeZstd {
  zstdCompressSync(buf: Buffer, opts: object): Buffer;
  zstdDecompressSync(buf: Buffer, opts: object): Buffer;
  constants: Record<string, number>;
}

/** The parts of node:zlib's ZstdCompress stream that keep a native context between frames. */
interface ZstdStreamInternals {
  _handle?: {
    writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  };
  _writeState?: Uint32Array;
  destroyed: boolean;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * node:zlib zstd with one native context kept for all blocks. zstdCompressSync creates and frees a
 * context and its buffers for every call: for 128 KiB blocks that costs a good part of the
 * compression time and, through the allocator, about 250 MiB of memory per worker thread. Here a
 * ZstdCompress stream's handle is fed each block whole with ZSTD_e_end (what node:zlib's own sync
 * path does with a fresh context); after a frame ends, libzstd starts the next one with the same
 * parameters, and a frame given whole in one call carries its content size, so the bytes are
 * those of zstdCompressSync. The handle is internal to node:zlib, so this is checked at start,
 * byte for byte against zstdCompressSync at the configured level on varied blocks of several
 * sizes, and not used if anything differs or is missing; any later failure falls back for good.
 */
function keptZstdContext(z: NodeZstd, params: Record<number, number>, oneShot: (b: Buffer) => Buffer): ((b: Buffer) => Buffer) | null {
  const Stream = (z as unknown as { ZstdCompress?: new (o: object) => ZstdStreamInternals }).ZstdCompress;
  const endFrame = z.constants['ZSTD_e_end'];
  if (typeof Stream !== 'function' || endFrame === undefined) return null;
  let stream: ZstdStreamInternals;
  try {
    stream = new Stream({ params });
  } catch {
    return null;
  }
  let error = false;
  stream.on('error', () => (error = true));
  const handle = stream._handle;
  const state = stream._writeState;
  if (!handle || !state || typeof handle.writeSync !== 'function') return null;
  let out = Buffer.allocUnsafe(0);
  const compress = (b: Buffer): Buffer => {
    const bound = zstdBound(b.length);
    if (out.length < bound) out = Buffer.allocUnsafe(bound);
    // A failed write leaves the state alone: start from values that fail the check below.
    state[0] = 0;
    state[1] = b.length;
    handle.writeSync(endFrame, b, 0, b.length, out, 0, out.length);
    // All input taken and room left over means the frame is complete.
    if (error || stream.destroyed || state[1] !== 0 || state[0] === 0) throw new Error('the kept zstd context did not finish the frame');
    return Buffer.from(out.subarray(0, out.length - state[0]!));
  };
  try {
    // Blocks that tell levels and window sizes apart: text, then pseudo-random bytes over a small alphabet.
    let x = 12345;
    const sample = Buffer.alloc(1 << 17);
    for (let i = 0; i < sample.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      sample[i] = i < 1 << 16 ? 97 + ((x >>> 24) % 9) + (i % 7 === 0 ? 1 : 0) : x >>> 24;
    }
    for (const n of [1 << 17, 8192, 70001, 1 << 17]) {
      const block = sample.subarray(0, n);
      if (!compress(block).equals(oneShot(block))) return null;
    }
  } catch {
    return null;
  }
  let broken = false;
  return (b) => {
    if (!broken) {
      try {
        return compress(b);
      } catch {
        broken = true; // never seen; a one-shot frame is the same bytes, so carry on with those
      }
    }
    return oneShot(b);
  };
}

/** ZSTD_compressBound(n), rounded up: room for any frame of n bytes. */
function zstdBound(n: number): number {
  return n + (n >> 7) + 1024;
}

function nodeZstd(): NodeZstd | null {
  const z = zlib as unknown as Partial<NodeZstd>;
  return typeof z.zstdCompressSync === 'function' && typeof z.zstdDecompressSync === 'function'
    ? (z as NodeZstd)
    : null;
}

interface WasmZstd {
  init(): Promise<void>;
  compress(buf: Uint8Array, level?: number): Uint8Array;
  decompress(buf: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
}

/**
 * Run `load` and remove the process-wide 'uncaughtException'/'unhandledRejection' handlers it
 * installs: emscripten glue built for Node adds handlers that rethrow and print the module's whole
 * source; shrinkwrap reports errors itself, in one line.
 */
async function withoutGlobalHandlers<T>(load: () => Promise<T>): Promise<T> {
  const emitter = process as NodeJS.EventEmitter;
  const events = ['uncaughtException', 'unhandledRejection'];
  const before = events.map((e) => emitter.listeners(e));
  try {
    return await load();
  } finally {
    events.forEach((e, i) => {
      for (const l of emitter.listeners(e)) if (!before[i]!.includes(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
    });
  }
}

const WASM_PKG = '@bokuweb/zstd-wasm';
let wasmReady: Promise<WasmZstd> | null = null;

/** Instantiates the WASM module once per thread (~6-10 ms: reads and compiles a 250 KB .wasm). */
function loadWasmZstd(): Promise<WasmZstd> {
  if (!wasmReady) {
    const ready = withoutGlobalHandlers(async () => {
      const z = require(WASM_PKG) as WasmZstd;
      await z.init();
      return z;
    });
    ready.catch(() => {
      if (wasmReady === ready) wasmReady = null; // a later call retries and reports its own failure
    });
    wasmReady = ready;
  }
  return wasmReady;
}

const NATIVE_ZSTD_PKG = 'zstd-napi';
/** The parts of zstd-napi's raw binding this module uses. */
interface NativeZstd {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  versionString(): string;
}
let nativeZstd: NativeZstd | Error | null = null;

/** zstd-napi's binding, an optional dependency compiled at install (.npmrc: from its bundled
 *  zstd sources, no download); an Error when it is not installed or was not built. */
function loadNativeZstd(): NativeZstd | Error {
  if (nativeZstd === null) {
    try {
      const n = require(`${NATIVE_ZSTD_PKG}/binding`) as NativeZstd;
      if (typeof n.CCtx !== 'function' || typeof n.versionString !== 'function') throw new Error('unexpected binding API');
      nativeZstd = n;
    } catch (err) {
      nativeZstd = err instanceof Error ? err : new Error(String(err));
    }
  }
  return nativeZstd;
}

/**
 * zstd through zstd-napi: ZSTD_compressCCtx with one context kept per thread, as mksquashfs does.
 * Given the whole block, libzstd sizes the window to it and writes a single-segment frame with the
 * content size (the frame of ZSTD_compress, which the WASM backend calls). compressInto() writes
 * straight into the caller's memory: no copy of the output at all.
 */
function nativeZstdCodec(
  codec: (compress: (b: Buffer) => Buffer, compressInto?: (b: Buffer, dst: Buffer) => number) => BlockCodec,
  n: NativeZstd,
  level: number,
  blockSize: number,
): BlockCodec {
  const cctx = new n.CCtx();
  const into = (b: Buffer, dst: Buffer): number => {
    try {
      return cctx.compress(dst, b, level);
    } catch (err) {
      if (/too small/i.test((err as Error).message)) return -1; // larger than dst: the caller stores the block
      throw err;
    }
  };
  const scratch = Buffer.allocUnsafe(zstdBound(blockSize)); // every block fits
  return codec((b) => Buffer.from(scratch.subarray(0, into(b, scratch))), into);
}

/** The parts of lzma-native's native Stream this module uses. */
interface LzmaStream {
  bufferHandler: (buf: Buffer | null | undefined, chunks: unknown, err: Error | null | undefined) => void;
  streamEncoder_(filters: object[], check: number): number;
  streamDecoder_(memlimit: number | null, flags: number): number;
  code(buf: Buffer | null, async: boolean): void;
  setBufsize(n: number): number;
  resetUnderlying(): void;
}
interface LzmaNative {
  Stream: new () => LzmaStream;
  OK: number;
  CHECK_CRC32: number;
  FILTER_LZMA2: number;
  MODE_FAST: number;
  MODE_NORMAL: number;
  MF_HC3: number;
  MF_HC4: number;
  MF_BT4: number;
  versionString(): string;
}

const XZ_PKG = 'lzma-native';
let lzma: LzmaNative | Error | null = null;

function loadLzma(): LzmaNative | Error {
  if (lzma === null) {
    try {
      lzma = require(XZ_PKG) as LzmaNative;
    } catch (err) {
      lzma = err instanceof Error ? err : new Error(String(err));
    }
  }
  return lzma;
}

const versions = new Map<string, string>();

/** Version of an installed package, found from its entry point (packages whose "exports" hide
 *  package.json included); '?' when it cannot be read. */
const DEFLATE_PKG = 'libdeflate';
interface Libdeflate {
  zlib(input: Uint8Array, level?: number): Uint8Array;
}
/** undefined: not tried yet; false: failed to load (node:zlib is used). */
let libdeflateLoaded: Libdeflate | false | undefined;

async function loadLibdeflate(): Promise<Libdeflate | null> {
  if (libdeflateLoaded === undefined) {
    try {
      libdeflateLoaded = await withoutGlobalHandlers(async () => {
        const ld = (await import(DEFLATE_PKG)) as Libdeflate;
        ld.zlib(new Uint8Array(1), 6); // instantiate now (and its handlers), not on the first block
        return ld;
      });
    } catch {
      libdeflateLoaded = false;
    }
  }
  return libdeflateLoaded || null;
}

function toBuffer(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function packageVersion(pkg: string): string {
  let v = versions.get(pkg);
  if (v === undefined) {
    v = '?';
    try {
      let dir = dirname(require.resolve(pkg));
      for (let i = 0; i < 6; i++, dir = dirname(dir)) {
        try {
          const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
          if (json.name === pkg) {
            v = json.version ?? '?';
            break;
          }
        } catch {
          // no package.json at this level
        }
      }
    } catch {
      // not installed
    }
    versions.set(pkg, v);
  }
  return v;
}

function resolvable(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/** Why a codec cannot be used on this Node, or null when it can. */
function unavailable(name: CodecName, backend: CodecBackend = 'auto'): string | null {
  switch (name) {
    case 'gzip':
      return null;
    case 'zstd':
      if (backend === 'node') return nodeZstd() ? null : `this Node (${process.version}) has no built-in zstd (needs >= 22.15)`;
      if (backend === 'native') {
        const n = loadNativeZstd();
        return n instanceof Error ? `the package ${NATIVE_ZSTD_PKG} is not usable: ${n.message.split('\n')[0]}` : null;
      }
      if (backend === 'auto' && zstdBackend('auto') !== 'wasm') return null;
      return resolvable(WASM_PKG) ? null : `Node ${process.version} has no built-in zstd and the package ${WASM_PKG} is not installed`;
    case 'xz': {
      const l = loadLzma();
      return l instanceof Error ? `the package ${XZ_PKG} failed to load: ${l.message.split('\n')[0]}` : null;
    }
    case 'lz4':
      return LZ4_MISSING;
  }
}

/** Which zstd implementation a backend choice means here: 'auto' takes node:zlib's where Node has
 *  it (>= 22.15), else the native binding if it was built at install, else WASM. */
function zstdBackend(backend: CodecBackend = 'auto'): 'node' | 'native' | 'wasm' {
  if (backend !== 'auto') return backend;
  if (nodeZstd()) return 'node';
  return loadNativeZstd() instanceof Error ? 'wasm' : 'native';
}

function zstdBackendName(which: 'node' | 'native' | 'wasm'): string {
  switch (which) {
    case 'node':
      return `node:zlib zstd (libzstd ${(process.versions as Record<string, string | undefined>)['zstd'] ?? '?'})`;
    case 'native':
      return `${NATIVE_ZSTD_PKG} ${packageVersion(NATIVE_ZSTD_PKG)} (libzstd ${(loadNativeZstd() as NativeZstd).versionString()}, native)`;
    case 'wasm':
      return `${WASM_PKG} ${packageVersion(WASM_PKG)} (WASM)`;
  }
}

export function codecBackend(name: CodecName, backend: CodecBackend = 'auto'): string {
  const why = unavailable(checkName(name), backend);
  if (why) return `unavailable: ${why}`;
  switch (name) {
    case 'gzip':
      return backend !== 'node' && libdeflateLoaded !== false
        ? `${DEFLATE_PKG} ${packageVersion(DEFLATE_PKG)} (WASM)`
        : `node:zlib deflate (zlib ${process.versions.zlib})`;
    case 'zstd':
      return zstdBackendName(zstdBackend(backend));
    case 'xz':
      return `${XZ_PKG} ${packageVersion(XZ_PKG)} (liblzma ${(loadLzma() as LzmaNative).versionString()})`;
    case 'lz4':
      return 'unavailable';
  }
}

export function availableCodecs(): CodecName[] {
  return ALL.filter((n) => unavailable(n) === null);
}

// ---------------------------------------------------------------------------------------------
// Validation

function checkName(name: CodecName): CodecName {
  if (!ALL.includes(name)) throw new InputError(`unknown compressor '${String(name)}': use one of gzip, zstd, xz`);
  return name;
}

function checkOptions(o: CodecOptions): void {
  if (checkName(o.name) === 'lz4') throw new InputError(LZ4_MISSING);
  const [lo, hi] = levelRange(o.name);
  if (!Number.isInteger(o.level) || o.level < lo || o.level > hi) {
    throw new InputError(`${o.name} compression level ${String(o.level)} is out of range: use ${lo}-${hi}`);
  }
  if (!Number.isInteger(o.blockSize) || o.blockSize < 1 || o.blockSize > MAX_BLOCK) {
    throw new InputError(`block size ${String(o.blockSize)} is out of range: use 1-${MAX_BLOCK} bytes`);
  }
  if (o.backend !== undefined && !['auto', 'node', 'native', 'wasm'].includes(o.backend)) {
    throw new InputError(`unknown codec backend '${String(o.backend)}'`);
  }
  const why = unavailable(o.name, o.backend);
  if (why) throw new InputError(`${o.name} is not available: ${why}`);
}

function checkBlock(block: Buffer, blockSize: number, name: CodecName): void {
  // A programming error, not bad input: larger blocks could get a window the kernel refuses.
  if (block.length > blockSize) throw new RangeError(`${name}: block of ${block.length} bytes exceeds the block size ${blockSize}`);
}

// ---------------------------------------------------------------------------------------------
// Encoders

export async function createBlockCodec(o: CodecOptions): Promise<BlockCodec> {
  checkOptions(o);
  const { name, level, blockSize } = o;
  const backend = codecBackend(name, o.backend);
  const codec = (compress: (b: Buffer) => Buffer, compressInto?: (b: Buffer, dst: Buffer) => number): BlockCodec => ({
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
  });

  switch (name) {
    case 'gzip': {
      const ld = o.backend === 'node' ? null : await loadLibdeflate();
      if (ld) return codec((b) => toBuffer(ld.zlib(b, level)));
      const opts: zlib.ZlibOptions = { level, windowBits: 15, memLevel: 8, strategy: zlib.constants.Z_DEFAULT_STRATEGY };
      return codec((b) => zlib.deflateSync(b, opts));
    }
    case 'zstd': {
      const which = zstdBackend(o.backend);
      if (which === 'node') {
        const z = nodeZstd()!;
        const C = z.constants;
        const params = {
          [C['ZSTD_c_compressionLevel']!]: level,
          [C['ZSTD_c_windowLog']!]: zstdWindowLog(blockSize),
          [C['ZSTD_c_contentSizeFlag']!]: 1,
          [C['ZSTD_c_checksumFlag']!]: 0,
        };
        // The whole block goes in with ZSTD_e_end in one call, so libzstd knows the content size
        // and writes a single-segment frame; pledgedSrcSize says so explicitly where supported.
        const oneShot = (b: Buffer) => z.zstdCompressSync(b, { params, pledgedSrcSize: b.length });
        return codec(keptZstdContext(z, params, oneShot) ?? oneShot);
      }
      if (which === 'native') return nativeZstdCodec(codec, loadNativeZstd() as NativeZstd, level, blockSize);
      const z = await loadWasmZstd();
      return codec((b) => {
        const out = z.compress(b, level);
        return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      });
    }
    case 'xz':
      return codec(xzEncoder(loadLzma() as LzmaNative, level, xzDictSize(blockSize), blockSize));
    case 'lz4':
      throw new InputError(LZ4_MISSING); // unreachable: checkOptions refused it
  }
}

/** LZMA2 options equivalent to xz preset `level` (xz(1), "custom compressor filter chains"),
 *  with our dictionary size instead of the preset's. */
function lzma2Options(lz: LzmaNative, level: number, dictSize: number): object {
  const fast = level <= 3;
  return {
    dictSize,
    lc: 3,
    lp: 0,
    pb: 2,
    mode: fast ? lz.MODE_FAST : lz.MODE_NORMAL,
    mf: level === 0 ? lz.MF_HC3 : fast ? lz.MF_HC4 : lz.MF_BT4,
    niceLen: fast ? (level <= 1 ? 128 : 273) : level === 4 ? 16 : level === 5 ? 32 : 64,
    depth: fast ? [4, 8, 24, 48][level]! : 0,
  };
}

const lzmaBusy = new WeakSet<LzmaStream>();

/** Runs the liblzma coder just initialised on `s` over `input`, synchronously on this thread. */
function runLzma(s: LzmaStream, input: Buffer, what: string): Buffer {
  // liblzma output reaches us through a JS callback; refuse re-entry from anything run during it.
  if (lzmaBusy.has(s)) throw new Error('xz codec re-entered: use one codec or decoder per concurrent caller');
  lzmaBusy.add(s);
  try {
    return runLzmaOnce(s, input, what);
  } finally {
    lzmaBusy.delete(s);
  }
}

function runLzmaOnce(s: LzmaStream, input: Buffer, what: string): Buffer {
  const parts: Buffer[] = [];
  let failure: Error | null = null;
  let ended = false;
  s.bufferHandler = (buf, _chunks, err) => {
    if (err) failure = err;
    else if (buf) parts.push(buf);
    else if (buf === null) ended = true;
  };
  if (input.length > 0) s.code(input, false);
  if (!failure && !ended) s.code(null, false);
  if (failure) {
    s.resetUnderlying();
    throw new BuildError(`${what}: ${(failure as Error).message}`);
  }
  if (!ended) {
    s.resetUnderlying();
    throw new BuildError(`${what}: truncated xz stream`);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function xzEncoder(lz: LzmaNative, level: number, dictSize: number, blockSize: number): (b: Buffer) => Buffer {
  const s = new lz.Stream();
  s.setBufsize(blockSize + 4096); // one output chunk per block in the usual case
  const filters = [{ id: lz.FILTER_LZMA2, options: lzma2Options(lz, level, dictSize) }];
  // lzma-native refuses shared memory ("Error in native callback"), which the compression pool's
  // slots are: such input is copied into a buffer of our own first.
  let own: Buffer | null = null;
  return (b) => {
    const rc = s.streamEncoder_(filters, lz.CHECK_CRC32);
    if (rc !== lz.OK) throw new BuildError(`xz encoder initialisation failed (liblzma code ${rc})`);
    if (b.buffer instanceof SharedArrayBuffer) {
      if (!own || own.length < b.length) own = Buffer.allocUnsafeSlow(Math.max(b.length, blockSize));
      b = own.subarray(0, b.copy(own));
    }
    return runLzma(s, b, 'xz compression failed');
  };
}

// ---------------------------------------------------------------------------------------------
// Decoders

export interface ZstdFrameHeader {
  singleSegment: boolean;
  /** Window the decoder must hold (= content size for single-segment frames). */
  windowSize: number;
  /** Declared content size, or null when absent. */
  contentSize: number | null;
  checksum: boolean;
  dictId: number;
  headerSize: number;
}

/** Parses the header of the zstd frame at the start of `f` (RFC 8878 §3.1.1); null if not one. */
export function zstdFrameHeader(f: Buffer): ZstdFrameHeader | null {
  if (f.length < 6 || f.readUInt32LE(0) !== 0xfd2fb528) return null;
  const fhd = f[4]!;
  if (fhd & 0x08) return null; // reserved bit
  const singleSegment = (fhd & 0x20) !== 0;
  let p = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = f[p++]!;
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const didSize = [0, 1, 2, 4][fhd & 3]!;
  const fcsFlag = fhd >> 6;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [1, 2, 4, 8][fcsFlag]!;
  if (f.length < p + didSize + fcsSize) return null;
  const dictId = didSize === 0 ? 0 : f.readUIntLE(p, didSize);
  p += didSize;
  let contentSize: number | null = null;
  if (fcsSize === 1) contentSize = f[p]!;
  else if (fcsSize === 2) contentSize = f.readUInt16LE(p) + 256;
  else if (fcsSize === 4) contentSize = f.readUInt32LE(p);
  else if (fcsSize === 8) contentSize = Number(f.readBigUInt64LE(p));
  p += fcsSize;
  if (singleSegment) windowSize = contentSize!;
  return { singleSegment, windowSize, contentSize, checksum: (fhd & 0x04) !== 0, dictId, headerSize: p };
}

export interface XzStreamHeader {
  /** xz check id: 0 none, 1 CRC32, 4 CRC64, 10 SHA-256. */
  check: number;
  /** Filter ids of the first block, in order (0x21 = LZMA2; 0x04-0x09 BCJ); [] for an empty stream. */
  filters: number[];
  /** LZMA2 dictionary size of the first block, or null without a block. */
  dictSize: number | null;
}

/** Reads the stream header and the first block header of an .xz stream; null if malformed. */
export function xzStreamHeader(x: Buffer): XzStreamHeader | null {
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  if (x.length < 13 || !x.subarray(0, 6).equals(magic) || x[6] !== 0 || (x[7]! & 0xf0) !== 0) return null;
  const check = x[7]!;
  if (x[12] === 0) return { check, filters: [], dictSize: null }; // index indicator: no blocks
  const end = 12 + (x[12]! + 1) * 4;
  if (x.length < end) return null;
  let p = 13;
  const vli = (): number => {
    let v = 0;
    for (let i = 0; i < 9 && p < end; i++) {
      const b = x[p++]!;
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    return -1;
  };
  const flags = x[p++]!;
  if (flags & 0x40) vli(); // compressed size
  if (flags & 0x80) vli(); // uncompressed size
  const filters: number[] = [];
  let dictSize: number | null = null;
  for (let i = 0; i <= (flags & 3); i++) {
    const id = vli();
    const propSize = vli();
    if (id < 0 || propSize < 0 || p + propSize > end) return null;
    if (id === 0x21) {
      const bits = x[p]! & 0x3f;
      if (propSize !== 1 || bits > 40) return null;
      dictSize = bits === 40 ? 0xffffffff : (2 | (bits & 1)) * 2 ** (Math.floor(bits / 2) + 11);
    }
    filters.push(id);
    p += propSize;
  }
  return { check, filters, dictSize };
}

export async function createBlockDecoder(name: CodecName, blockSize: number): Promise<BlockDecoder> {
  checkOptions({ name, level: defaultLevel(name), blockSize }); // InputError for lz4, unavailable codecs, bad sizes
  const window = Math.max(blockSize, MIN_WINDOW);
  const fail = (what: string): never => {
    throw new BuildError(`corrupt ${name} block: ${what}`);
  };
  const bounded = (out: Buffer, maxOut: number): Buffer =>
    out.length > maxOut ? fail(`decodes to ${out.length} bytes, more than ${maxOut}`) : out;
  const tooBig = (err: unknown): boolean =>
    err instanceof RangeError || (err as NodeJS.ErrnoException)?.code === 'ERR_BUFFER_TOO_LARGE';

  switch (name) {
    case 'gzip':
      return {
        decompress(data, maxOut) {
          if (data.length < 2 || (data[0]! & 0x0f) !== 8 || data[0]! >> 4 > 7 || data.readUInt16BE(0) % 31 !== 0) {
            fail('no zlib header');
          }
          if (data[1]! & 0x20) fail('zlib stream needs a preset dictionary');
          try {
            return bounded(zlib.inflateSync(data, { maxOutputLength: Math.max(maxOut, 1) }), maxOut);
          } catch (err) {
            if (err instanceof BuildError) throw err;
            return fail(tooBig(err) ? `decodes to more than ${maxOut} bytes` : (err as Error).message);
          }
        },
      };
    case 'zstd': {
      const check = (data: Buffer, maxOut: number): void => {
        const h = zstdFrameHeader(data);
        if (!h) return fail('no zstd frame header');
        if (h.windowSize > window) fail(`window ${h.windowSize} exceeds max(block size, 8 KiB) = ${window}`);
        if (h.dictId !== 0) fail('frame needs a dictionary');
        if (h.contentSize !== null && h.contentSize > maxOut) fail(`decodes to ${h.contentSize} bytes, more than ${maxOut}`);
        // Walk the block headers: node:zlib returns what it has for a truncated frame, silently.
        let p = h.headerSize;
        for (;;) {
          if (p + 3 > data.length) return fail('truncated frame');
          const bh = data.readUIntLE(p, 3);
          const type = (bh >> 1) & 3;
          if (type === 3) return fail('reserved block type');
          p += 3 + (type === 1 ? 1 : bh >>> 3);
          if (bh & 1) break;
        }
        if (p + (h.checksum ? 4 : 0) > data.length) fail('truncated frame');
      };
      const complete = (out: Buffer, data: Buffer): Buffer => {
        const size = zstdFrameHeader(data)!.contentSize;
        return size !== null && out.length !== size ? fail(`decoded ${out.length} bytes, frame declares ${size}`) : out;
      };
      const z = nodeZstd();
      if (z) {
        const C = z.constants;
        const opts = { params: { [C['ZSTD_d_windowLogMax']!]: Math.ceil(Math.log2(window)) } };
        return {
          decompress(data, maxOut) {
            check(data, maxOut);
            try {
              return complete(bounded(z.zstdDecompressSync(data, { ...opts, maxOutputLength: Math.max(maxOut, 1) }), maxOut), data);
            } catch (err) {
              if (err instanceof BuildError) throw err;
              return fail(tooBig(err) ? `decodes to more than ${maxOut} bytes` : (err as Error).message);
            }
          },
        };
      }
      const w = await loadWasmZstd();
      return {
        decompress(data, maxOut) {
          check(data, maxOut);
          let out: Uint8Array;
          try {
            // The WASM build sizes its output from the content size, else from defaultHeapSize.
            out = w.decompress(data, { defaultHeapSize: Math.max(maxOut, 1) });
          } catch (err) {
            return fail((err as Error).message);
          }
          return complete(bounded(Buffer.from(out.buffer, out.byteOffset, out.byteLength), maxOut), data);
        },
      };
    }
    case 'xz': {
      const lz = loadLzma() as LzmaNative;
      const s = new lz.Stream();
      const dictLimit = xzDictSize(blockSize);
      return {
        decompress(data, maxOut) {
          const h = xzStreamHeader(data);
          if (!h) return fail('no xz stream header');
          if (h.check !== 0 && h.check !== 1) fail(`check type ${h.check} (the kernel reads CRC32 or none)`);
          if (h.filters.length > 0 && h.filters[h.filters.length - 1] !== 0x21) fail('last filter is not LZMA2');
          if (h.filters.slice(0, -1).some((id) => id < 4 || id > 9)) fail('filter other than BCJ before LZMA2');
          if (h.dictSize !== null && h.dictSize > dictLimit) fail(`dictionary ${h.dictSize} exceeds ${dictLimit}`);
          const rc = s.streamDecoder_(null, 0);
          if (rc !== lz.OK) fail(`decoder initialisation failed (liblzma code ${rc})`);
          try {
            return bounded(runLzma(s, data, `corrupt xz block`), maxOut);
          } catch (err) {
            if (err instanceof BuildError) throw err;
            return fail((err as Error).message);
          }
        },
      };
    }
    case 'lz4':
      throw new InputError(LZ4_MISSING);
  }
}

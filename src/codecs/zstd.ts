// zstd (how the speeds were measured: index.ts).
//
// node:zlib zstdCompressSync where it exists (Node >= 22.15; Node 22.23: L1 482, L3 374,
// L9 79, L15 10.8, L19 4.0 MB/s), with the window log forced to floor(log2(max(blockSize,
// 8 KiB))) and the content size flag on. Before Node 22.15, the optional dependency zstd-napi
// 0.0.13 (L3 449, L15 12.5 MB/s; ZSTD_compressCCtx, as mksquashfs calls it) when it was built
// at install, else the dependency @bokuweb/zstd-wasm 0.0.27 (L1 286, L3 201, L9 44, L15 7.5,
// L19 2.8 MB/s). All three write the same bytes (test/unit/codecs.test.ts): the images do not
// depend on which one a machine has.
// Why these: they are zstd itself (the reference C library, native or compiled to WASM), which
// no 100 lines of ours replace, and they make the frame the kernel's SquashFS decoder (window =
// max(block size, 8 KiB)) accepts: ZSTD_compress/ZSTD_compressCCtx given the whole block write
// one single-segment frame with the content size, unlike the streaming frames (2 MiB+ window)
// of @mongodb-js/zstd and @toondepauw/node-zstd (ours: checked by loop-mounting patched images
// in test/unit/codecs.test.ts). zstd-wasm installs from the npm registry alone (no dependencies,
// no install script, one 250 KB .wasm). zstd-napi's tarball carries zstd's sources and its
// install script compiles them with node-gyp (python3, make, a C/C++ compiler, Node's headers;
// ~25 s) after prebuild-install, which would fetch a prebuilt binary from GitHub, is told not
// to by .prebuild-installrc in the repository: no download. It is optional, so an install
// without a compiler still succeeds and falls back to WASM; on Node 20 it halves the CPU zstd
// costs (WASM needs ~7.4 CPU-s for the 1.48 GB bench tree, as much as mksquashfs's whole run).
// Both work inside worker_threads (WASM: ~6-10 ms to instantiate per worker).
// Default level 3, not mksquashfs's 15: whoever picks zstd here picks it for build speed. Level 3
// is zstd's own default and 27-35x cheaper than 15 (level 15 is slower than gzip-6) for images
// ~12 % larger (28.5 % vs 25.4 % of the input above; mksquashfs on a 1.8 GB tree: 570 vs
// 510 MB). Operators who want mksquashfs's output ask for level 15; the writer records the level
// in the compression options block, so `unsquashfs -s` shows it either way.
import zlib from 'node:zlib';
import { BuildError } from '../model/errors.js';
import { type BlockCodec, type Codec, type CodecBackend, type CodecOptions, MIN_WINDOW, blockCodec, decodeFailures } from './codec.js';
import { nodeRequire, packageVersion, resolvable, withoutGlobalHandlers } from './packages.js';
import { zstdFrameEnd, zstdFrameHeader } from './zstd-frames.js';

/** zstd window log used for a block size: floor(log2(max(blockSize, 8 KiB))). */
export function zstdWindowLog(blockSize: number): number {
  return Math.floor(Math.log2(Math.max(blockSize, MIN_WINDOW)));
}

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

const WASM_PKG = '@bokuweb/zstd-wasm';
let wasmReady: Promise<WasmZstd> | null = null;

/** Instantiates the WASM module once per thread (~6-10 ms: reads and compiles a 250 KB .wasm). */
function loadWasmZstd(): Promise<WasmZstd> {
  if (!wasmReady) {
    const ready = withoutGlobalHandlers(async () => {
      const z = nodeRequire(WASM_PKG) as WasmZstd;
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
      const n = nodeRequire(`${NATIVE_ZSTD_PKG}/binding`) as NativeZstd;
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
function nativeZstdCodec(o: CodecOptions, backend: string, n: NativeZstd): BlockCodec {
  const cctx = new n.CCtx();
  const into = (b: Buffer, dst: Buffer): number => {
    try {
      return cctx.compress(dst, b, o.level);
    } catch (err) {
      if (/too small/i.test((err as Error).message)) return -1; // larger than dst: the caller stores the block
      throw err;
    }
  };
  const scratch = Buffer.allocUnsafe(zstdBound(o.blockSize)); // every block fits
  return blockCodec(o, backend, (b) => Buffer.from(scratch.subarray(0, into(b, scratch))), into);
}

/** Which zstd implementation a backend choice means here: 'auto' takes node:zlib's where Node has
 *  it (>= 22.15), else the native binding if it was built at install, else WASM. */
function zstdBackend(backend: CodecBackend = 'auto'): 'node' | 'native' | 'wasm' {
  if (backend !== 'auto') return backend;
  if (nodeZstd()) return 'node';
  return loadNativeZstd() instanceof Error ? 'wasm' : 'native';
}

/** The encoder through node:zlib, one native context kept (keptZstdContext) where it can be. */
function nodeZstdCodec(o: CodecOptions, backend: string, z: NodeZstd): BlockCodec {
  const C = z.constants;
  const params = {
    [C['ZSTD_c_compressionLevel']!]: o.level,
    [C['ZSTD_c_windowLog']!]: zstdWindowLog(o.blockSize),
    [C['ZSTD_c_contentSizeFlag']!]: 1,
    [C['ZSTD_c_checksumFlag']!]: 0,
  };
  // The whole block goes in with ZSTD_e_end in one call, so libzstd knows the content size
  // and writes a single-segment frame; pledgedSrcSize says so explicitly where supported.
  const oneShot = (b: Buffer) => z.zstdCompressSync(b, { params, pledgedSrcSize: b.length });
  return blockCodec(o, backend, keptZstdContext(z, params, oneShot) ?? oneShot);
}

async function wasmZstdCodec(o: CodecOptions, backend: string): Promise<BlockCodec> {
  const z = await loadWasmZstd();
  return blockCodec(o, backend, (b) => {
    const out = z.compress(b, o.level);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  });
}

/** The decoder (node:zlib's where Node has one, else WASM), after the checks of the frame the
 *  kernel makes: window, no dictionary, complete, no larger than maxOut. */
async function zstdDecoder(blockSize: number) {
  const window = Math.max(blockSize, MIN_WINDOW);
  const { fail, bounded, tooBig } = decodeFailures('zstd');
  const check = (data: Buffer, maxOut: number): void => {
    const h = zstdFrameHeader(data);
    if (!h) return fail('no zstd frame header');
    if (h.windowSize > window) fail(`window ${h.windowSize} exceeds max(block size, 8 KiB) = ${window}`);
    if (h.dictId !== 0) fail('frame needs a dictionary');
    if (h.contentSize !== null && h.contentSize > maxOut) fail(`decodes to ${h.contentSize} bytes, more than ${maxOut}`);
    const end = zstdFrameEnd(data, h);
    if (typeof end === 'string') fail(end);
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
      decompress(data: Buffer, maxOut: number) {
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
    decompress(data: Buffer, maxOut: number) {
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

export const zstd: Codec = {
  name: 'zstd',
  // libzstd levels, no negative "fast" levels; every backend accepts 1-22.
  levels: { min: 1, max: 22, default: 3 },
  backends: [
    { backend: 'node', what: 'node:zlib zstd, where Node has it (>= 22.15)' },
    { backend: 'native', what: `${NATIVE_ZSTD_PKG}, where it was built at install` },
    { backend: 'wasm', what: WASM_PKG },
  ],
  serves: { squashfs: true, layers: true },

  unavailable(backend: CodecBackend): string | null {
    if (backend === 'node') return nodeZstd() ? null : `this Node (${process.version}) has no built-in zstd (needs >= 22.15)`;
    if (backend === 'native') {
      const n = loadNativeZstd();
      return n instanceof Error ? `the package ${NATIVE_ZSTD_PKG} is not usable: ${n.message.split('\n')[0]}` : null;
    }
    if (backend === 'auto' && zstdBackend('auto') !== 'wasm') return null;
    return resolvable(WASM_PKG) ? null : `Node ${process.version} has no built-in zstd and the package ${WASM_PKG} is not installed`;
  },

  describe(backend: CodecBackend): string {
    switch (zstdBackend(backend)) {
      case 'node':
        return `node:zlib zstd (libzstd ${(process.versions as Record<string, string | undefined>)['zstd'] ?? '?'})`;
      case 'native':
        return `${NATIVE_ZSTD_PKG} ${packageVersion(NATIVE_ZSTD_PKG)} (libzstd ${(loadNativeZstd() as NativeZstd).versionString()}, native)`;
      case 'wasm':
        return `${WASM_PKG} ${packageVersion(WASM_PKG)} (WASM)`;
    }
  },

  async encoder(o, backend) {
    const which = zstdBackend(o.backend);
    if (which === 'node') return nodeZstdCodec(o, backend, nodeZstd()!);
    if (which === 'native') return nativeZstdCodec(o, backend, loadNativeZstd() as NativeZstd);
    return wasmZstdCodec(o, backend);
  },

  decoder: zstdDecoder,
};

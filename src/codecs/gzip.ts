// gzip: SquashFS's "gzip", which is a zlib stream (RFC 1950), the only gzip flavour the kernel
// reads. OCI layers take the deflate part of it (writers/tar/layer.ts wraps it in gzip members).
//
// The libdeflate package (WASM) compresses; node:zlib's deflateSync is the fallback when it does
// not load, and the decoder. node:zlib deflateSync: L1 138 MB/s (31.3 %), L6 60 (28.2 %), L9 25
// (28.1 %) (how these were measured: index.ts). Default 6: level 9 costs 2.4-3x the CPU for
// < 0.5 % smaller images.
import zlib from 'node:zlib';
import { BuildError } from '../model/errors.js';
import { type Codec, type CodecBackend, blockCodec, decodeFailures } from './codec.js';
import { packageVersion, withoutGlobalHandlers } from './packages.js';

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

export const gzip: Codec = {
  name: 'gzip',
  levels: { min: 1, max: 9, default: 6 },
  backends: [
    { backend: 'wasm', what: `${DEFLATE_PKG} (WASM), unless backend 'node' is asked for` },
    { backend: 'node', what: 'node:zlib deflate, when libdeflate does not load' },
  ],
  serves: { squashfs: true, layers: true },

  unavailable: () => null,

  describe(backend: CodecBackend): string {
    return backend !== 'node' && libdeflateLoaded !== false
      ? `${DEFLATE_PKG} ${packageVersion(DEFLATE_PKG)} (WASM)`
      : `node:zlib deflate (zlib ${process.versions.zlib})`;
  },

  async encoder(o, backend) {
    const ld = o.backend === 'node' ? null : await loadLibdeflate();
    if (ld) return blockCodec(o, backend, (b) => toBuffer(ld.zlib(b, o.level)));
    const opts: zlib.ZlibOptions = { level: o.level, windowBits: 15, memLevel: 8, strategy: zlib.constants.Z_DEFAULT_STRATEGY };
    return blockCodec(o, backend, (b) => zlib.deflateSync(b, opts));
  },

  async decoder() {
    const { fail, bounded, tooBig } = decodeFailures('gzip');
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
  },
};

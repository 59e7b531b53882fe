// xz (how the speeds were measured: index.ts).
//
// The dependency lzma-native 8.0.6 (bundles liblzma 5.2.3): L0 15.6, L3 13.2, L6 3.4,
// L9 3.5 MB/s (xz is slow by nature: mksquashfs -comp xz managed 6.4 MB/s per core). Dependency
// reason: an LZMA2 encoder is liblzma itself, nothing we write in 100 lines; lzma-native ships
// prebuilt N-API binaries for linux/darwin/win32 x64 and arm64 inside its npm tarball (its
// install script, node-gyp-build, only compiles when no prebuild matches, and the module loads
// from the bundled prebuild even with --ignore-scripts), loads in worker_threads, and lets us give
// the LZMA2 filter chain explicitly: dictionary = xzDictSize(blockSize), the largest valid xz
// dictionary size <= max(blockSize, 8 KiB) (the kernel preallocates that much and rejects
// larger: the easy presets use 8 MiB), and check = CRC32. Its liblzma is driven synchronously
// through the native Stream object (code(buf, false) runs on the calling thread and delivers
// the output through bufferHandler before returning). Node has no built-in xz. @napi-rs/lzma was
// rejected: 1.5.x requires Node ^22.20 || >= 24.12, and 1.4.5 takes no options (8 MiB
// dictionary, check none, output stored rather than compressed).
// Default level 6 = mksquashfs's xz preset. Levels are xz presets 0-9 (no -e), given to liblzma
// as explicit LZMA2 options per xz(1)'s preset table, because a preset would override the
// dictionary size.
//
import { BuildError } from '../model/errors.js';
import { type Codec, MIN_WINDOW, blockCodec, decodeFailures } from './codec.js';
import { nodeRequire, packageVersion } from './packages.js';

/** The xz/LZMA2 dictionary size for a block size: the largest 2^n or 3*2^(n-1) that is
 *  <= max(blockSize, 8 KiB) (the values the LZMA2 header can express exactly and the kernel's
 *  option check accepts). The writer puts this value in the xz compression options block. */
export function xzDictSize(blockSize: number): number {
  const limit = Math.max(blockSize, MIN_WINDOW);
  const p = 2 ** Math.floor(Math.log2(limit));
  return p + p / 2 <= limit ? p + p / 2 : p;
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
      lzma = nodeRequire(XZ_PKG) as LzmaNative;
    } catch (err) {
      lzma = err instanceof Error ? err : new Error(String(err));
    }
  }
  return lzma;
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

export const xz: Codec = {
  name: 'xz',
  // xz presets without -e.
  levels: { min: 0, max: 9, default: 6 },
  backends: [{ backend: 'native', what: `${XZ_PKG} (liblzma), whatever backend is asked for` }],
  serves: { squashfs: true, layers: false },

  unavailable(): string | null {
    const l = loadLzma();
    return l instanceof Error ? `the package ${XZ_PKG} failed to load: ${l.message.split('\n')[0]}` : null;
  },

  describe(): string {
    return `${XZ_PKG} ${packageVersion(XZ_PKG)} (liblzma ${(loadLzma() as LzmaNative).versionString()})`;
  },

  async encoder(o, backend) {
    return blockCodec(o, backend, xzEncoder(loadLzma() as LzmaNative, o.level, xzDictSize(o.blockSize), o.blockSize));
  },

  async decoder(blockSize) {
    const { fail, bounded } = decodeFailures('xz');
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
  },
};

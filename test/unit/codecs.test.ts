// Block codecs: round trips, the frame/stream headers the kernel depends on, decoding of our output
// by the reference tools, and refusal of what the kernel refuses.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/model/errors.js';
import {
  availableCodecs,
  codecBackend,
  createBlockCodec,
  createBlockDecoder,
  defaultLevel,
  levelRange,
  xzDictSize,
  zstdWindowLog,
  type CodecBackend,
  type CodecName,
} from '../../src/codecs/index.js';

const KiB = 1024;
const BS = 128 * KiB;
const repo = new URL('../..', import.meta.url).pathname;

/** Deterministic pseudo-random bytes (xorshift32). */
function noise(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Compressible text-like data: words drawn from a small vocabulary, plus some numbers. */
function text(n: number, seed = 7): Buffer {
  const words = 'the of squashfs block inode fragment directory table kernel zstd window lzma2 dictionary compress export'.split(' ');
  if (n === 0) return Buffer.alloc(0);
  const r = noise(n, seed);
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len <= n; i++) {
    const w = r[i % n]! % 7 === 0 ? String(r[(i * 3) % n]! * 131) : words[r[i % n]! % words.length]!;
    parts.push(w);
    len += w.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, n);
}

/** Binary-like data: a slice of Node's own executable (machine code and tables). */
function binary(n: number): Buffer {
  const b = Buffer.alloc(n);
  const fd = openSync(process.execPath, 'r');
  try {
    readSync(fd, b, 0, n, 4 << 20);
  } finally {
    closeSync(fd);
  }
  return b;
}

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
function skipUnless(ok: boolean, what: string): boolean {
  if (!ok) console.warn(`SKIPPED: ${what}`);
  return ok;
}

const available = availableCodecs();
const cases: Array<[CodecName, number[]]> = [
  ['gzip', [1, 6, 9]],
  ['zstd', [1, 3, 9, 19]],
  ['xz', [0, 6, 9]],
];

describe('levels and availability', () => {
  it('gzip is always available; lz4 is refused as InputError', async () => {
    expect(available).toContain('gzip');
    expect(available).not.toContain('lz4');
    await expect(createBlockCodec({ name: 'lz4', level: 1, blockSize: BS })).rejects.toBeInstanceOf(InputError);
    await expect(createBlockDecoder('lz4', BS)).rejects.toBeInstanceOf(InputError);
    expect(codecBackend('lz4')).toMatch(/^unavailable: /);
    expect(() => defaultLevel('lz4')).toThrow(InputError);
    expect(() => levelRange('lz4')).toThrow(InputError);
  });

  it('zstd and xz are available on this Node (their packages are dependencies)', () => {
    expect(available).toEqual(['gzip', 'zstd', 'xz']);
    for (const n of available) expect(codecBackend(n)).not.toMatch(/unavailable/);
    console.log(`codecs on Node ${process.version}: ${available.map((n) => `${n} = ${codecBackend(n)}`).join('; ')}`);
  });

  it('defaults lie in the ranges', () => {
    expect([defaultLevel('gzip'), defaultLevel('zstd'), defaultLevel('xz')]).toEqual([6, 3, 6]);
    expect(levelRange('gzip')).toEqual([1, 9]);
    expect(levelRange('zstd')).toEqual([1, 22]);
    expect(levelRange('xz')).toEqual([0, 9]);
    for (const n of ['gzip', 'zstd', 'xz'] as const) {
      const [lo, hi] = levelRange(n);
      expect(defaultLevel(n)).toBeGreaterThanOrEqual(lo);
      expect(defaultLevel(n)).toBeLessThanOrEqual(hi);
    }
  });

  it('invalid levels, block sizes and names are InputErrors with one-line messages', async () => {
    const bad: Array<[CodecName, number, number]> = [
      ['gzip', 0, BS],
      ['gzip', 10, BS],
      ['gzip', 1.5, BS],
      ['gzip', Number.NaN, BS],
      ['zstd', 0, BS],
      ['zstd', 23, BS],
      ['zstd', -1, BS],
      ['xz', -1, BS],
      ['xz', 10, BS],
      ['gzip', 6, 0],
      ['zstd', 3, 2 ** 28],
      ['xz', 6, 1.5],
    ];
    for (const [name, level, blockSize] of bad) {
      const p = createBlockCodec({ name, level, blockSize });
      await expect(p, `${name} ${level} ${blockSize}`).rejects.toBeInstanceOf(InputError);
      await p.catch((e: Error) => expect(e.message).not.toContain('\n'));
    }
    await expect(createBlockCodec({ name: 'gzip', level: 6, blockSize: BS })).resolves.toBeDefined();
    await expect(createBlockCodec({ name: 'bzip2' as CodecName, level: 6, blockSize: BS })).rejects.toThrow(/unknown compressor 'bzip2'/);
    await expect(createBlockCodec({ name: 'zstd', level: 40, blockSize: BS })).rejects.toThrow(/zstd compression level 40 is out of range: use 1-22/);
    expect(() => levelRange('lz5' as CodecName)).toThrow(InputError);
  });
});

describe.each(cases)('%s', (name, levels) => {
  const ok = available.includes(name);
  const inputs: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.from([0x41])],
    ['zeros, exactly blockSize', Buffer.alloc(BS)],
    ['text, exactly blockSize', text(BS)],
    ['binary, exactly blockSize', binary(BS)],
    ['incompressible, exactly blockSize', noise(BS, 99)],
    ['text tail', text(12_345, 11)],
  ];

  it.runIf(ok)('round-trips every input at several levels', async () => {
    const dec = await createBlockDecoder(name, BS);
    for (const level of levels) {
      const codec = await createBlockCodec({ name, level, blockSize: BS });
      expect(codec.name).toBe(name);
      expect(codec.level).toBe(level);
      expect(codec.backend).toBe(codecBackend(name));
      for (const [what, input] of inputs) {
        // The slowest levels only on the small inputs: they share the code path.
        if (((name === 'xz' && level === 9) || (name === 'zstd' && level === 19)) && input.length === BS) continue;
        const out = codec.compress(input);
        expect(Buffer.isBuffer(out)).toBe(true);
        expect(dec.decompress(out, BS).equals(input), `${name}-${level} ${what}`).toBe(true);
        if (what.startsWith('zeros') || what.startsWith('text, ')) expect(out.length).toBeLessThan(input.length / 2);
      }
    }
  });

  it.runIf(ok)('refuses blocks larger than the block size (a writer bug)', async () => {
    const codec = await createBlockCodec({ name, level: defaultLevel(name), blockSize: 4096 });
    expect(() => codec.compress(Buffer.alloc(4097))).toThrow(RangeError);
  });

  it.runIf(ok)('decoder enforces maxOut and rejects garbage and truncation', async () => {
    const codec = await createBlockCodec({ name, level: defaultLevel(name), blockSize: BS });
    const dec = await createBlockDecoder(name, BS);
    const input = text(BS);
    const out = codec.compress(input);
    expect(() => dec.decompress(out, BS - 1)).toThrow(/more than 131071/);
    expect(() => dec.decompress(noise(100), BS)).toThrow(new RegExp(`corrupt ${name} block`));
    expect(() => dec.decompress(out.subarray(0, out.length >> 1), BS)).toThrow(new RegExp(`corrupt ${name} block`));
  });
});

describe('headers the kernel depends on', () => {
  it('gzip: zlib stream (RFC 1950) with a 32 KiB window, no preset dictionary', async () => {
    for (const level of [1, 6, 9]) {
      const codec = await createBlockCodec({ name: 'gzip', level, blockSize: BS });
      for (const input of [Buffer.alloc(0), Buffer.from('x'), text(BS)]) {
        const out = codec.compress(input);
        expect(out[0]).toBe(0x78);
        expect(out.readUInt16BE(0) % 31).toBe(0);
        expect(out[1]! & 0x20).toBe(0);
        expect(zlib.inflateSync(out).equals(input)).toBe(true);
        expect(() => zlib.inflateRawSync(out)).toThrow(); // not raw deflate
      }
    }
  });

  it.runIf(available.includes('zstd'))('zstd: single-segment frames with content size, window within the block', async () => {
    for (const blockSize of [4 * KiB, 128 * KiB, 1024 * KiB]) {
      for (const level of [1, 3, 15, 22]) {
        const codec = await createBlockCodec({ name: 'zstd', level, blockSize });
        const sizes = level >= 15 ? [0, 1, 100, Math.min(blockSize, 16 * KiB)] : [0, 1, 100, blockSize >> 1, blockSize];
        for (const n of sizes) {
          const input = text(n, n + 1);
          const h = parseZstd(codec.compress(input));
          const where = `L${level} bs ${blockSize} n ${n}`;
          expect(h.contentSize, where).toBe(n);
          expect(h.checksum, where).toBe(false);
          expect(h.dictId, where).toBe(0);
          // The kernel's decoder holds max(block size, 8 KiB); a single-segment frame needs its content size.
          expect(h.window, where).toBeLessThanOrEqual(Math.max(blockSize, 8 * KiB));
          if (n <= BS) expect(h.singleSegment, where).toBe(true);
        }
      }
    }
    expect(zstdWindowLog(4 * KiB)).toBe(13);
    expect(zstdWindowLog(BS)).toBe(17);
    expect(zstdWindowLog(1024 * KiB)).toBe(20);
  });

  it.runIf(available.includes('xz'))('xz: CRC32 check, LZMA2 only, dictionary = xzDictSize(blockSize)', async () => {
    expect([4 * KiB, 8 * KiB, 100_000, 128 * KiB, 200 * KiB, 1024 * KiB].map(xzDictSize)).toEqual([
      8 * KiB, 8 * KiB, 96 * KiB, 128 * KiB, 192 * KiB, 1024 * KiB,
    ]);
    for (const blockSize of [4 * KiB, 100_000, 128 * KiB, 1024 * KiB]) {
      const codec = await createBlockCodec({ name: 'xz', level: 0, blockSize });
      const h = parseXz(codec.compress(text(Math.min(blockSize, 5000))));
      expect(h.check).toBe(1);
      expect(h.filters).toEqual([0x21]);
      expect(h.dictSize).toBe(xzDictSize(blockSize));
      expect(h.dictSize).toBeLessThanOrEqual(Math.max(blockSize, 8 * KiB));
    }
    const empty = parseXz((await createBlockCodec({ name: 'xz', level: 6, blockSize: BS })).compress(Buffer.alloc(0)));
    expect(empty).toEqual({ check: 1, filters: [], dictSize: null });
  });
});

describe('zstd backends', () => {
  const builtin = !codecBackend('zstd', 'node').startsWith('unavailable');
  const native = !codecBackend('zstd', 'native').startsWith('unavailable');

  it('auto picks node:zlib where Node has it, else the native binding, else WASM; a missing one is refused', async () => {
    expect(builtin).toBe(typeof (zlib as unknown as Record<string, unknown>)['zstdCompressSync'] === 'function');
    expect(codecBackend('zstd', 'wasm')).toMatch(/^@bokuweb\/zstd-wasm \d+\.\d+\.\d+ \(WASM\)$/);
    if (native) expect(codecBackend('zstd', 'native')).toMatch(/^zstd-napi \d+\.\d+\.\d+ \(libzstd 1\.\d+\.\d+, native\)$/);
    // CI installs with the build tools, so the optional native binding must have been built there.
    if (process.env['CI']) expect(native, codecBackend('zstd', 'native')).toBe(true);
    else if (!native) console.warn(`SKIPPED part: zstd native backend: ${codecBackend('zstd', 'native')}`);
    expect(codecBackend('zstd')).toBe(codecBackend('zstd', builtin ? 'node' : native ? 'native' : 'wasm'));
    if (!builtin) await expect(createBlockCodec({ name: 'zstd', level: 3, blockSize: BS, backend: 'node' })).rejects.toThrow(InputError);
    await expect(createBlockCodec({ name: 'zstd', level: 3, blockSize: BS, backend: 'bogus' as 'auto' })).rejects.toThrow(/unknown codec backend/);
  });

  it('every backend here writes the same frames, byte for byte, and decodes the others', async () => {
    const backends = (['node', 'native', 'wasm'] as const).filter((b) => !codecBackend('zstd', b).startsWith('unavailable'));
    const inputs = [Buffer.concat([text(BS >> 1), binary(BS >> 1)]), text(8191, 3), binary(70_001), Buffer.alloc(BS), Buffer.from('x')];
    const dec = await createBlockDecoder('zstd', BS);
    for (const level of [1, 3, 9]) {
      const codecs = await Promise.all(backends.map((backend) => createBlockCodec({ name: 'zstd', level, blockSize: BS, backend })));
      for (const input of inputs) {
        const outs = codecs.map((c) => Buffer.from(c.compress(input)));
        for (const [i, out] of outs.entries()) {
          expect(parseZstd(out), `${backends[i]} L${level}`).toMatchObject({ singleSegment: true, contentSize: input.length, dictId: 0 });
          expect(dec.decompress(out, BS).equals(input), `${backends[i]} L${level}`).toBe(true);
          // The same image whichever backend this machine has.
          expect(out.equals(outs[0]!), `${backends[i]} against ${backends[0]} at level ${level}, ${input.length} bytes`).toBe(true);
        }
      }
    }
  });

  it.runIf(native)('the native backend compresses straight into the caller\'s (shared) memory', async () => {
    const codec = await createBlockCodec({ name: 'zstd', level: 3, blockSize: BS, backend: 'native' });
    expect(codec.compressInto).toBeTypeOf('function');
    const shared = new SharedArrayBuffer(2 * BS);
    const input = Buffer.from(shared, 0, BS);
    text(BS).copy(input);
    const dst = Buffer.from(shared, BS, BS);
    const n = codec.compressInto!(input, dst);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(BS / 2);
    expect(dst.subarray(0, n).equals(codec.compress(input))).toBe(true);
    // Incompressible: the frame does not fit in a block's room, and the caller stores the block.
    const noisy = noise(BS, 5);
    const m = codec.compressInto!(noisy, Buffer.alloc(BS));
    expect(m === -1 || m >= BS).toBe(true);
    expect(codec.compressInto!(noisy, Buffer.alloc(2 * BS))).toBe(codec.compress(noisy).length);
    expect(() => codec.compressInto!(text(100), Buffer.alloc(99))).toThrow(RangeError);
  });
});

describe('what the kernel refuses, the decoder refuses', () => {
  it.runIf(available.includes('zstd'))('zstd: window larger than the block, dictionaries', async () => {
    const dec = await createBlockDecoder('zstd', BS);
    const payload = text(1000);
    // Hand-made frames with one raw block: no single-segment flag, window descriptor given.
    const frame = (windowDescriptor: number, fhd = 0x00, dict: number[] = []): Buffer =>
      Buffer.concat([
        Buffer.from([0x28, 0xb5, 0x2f, 0xfd, fhd, windowDescriptor, ...dict]),
        Buffer.from([((payload.length << 3) | 1) & 0xff, (payload.length << 3) >> 8, (payload.length << 3) >> 16]),
        payload,
      ]);
    expect(dec.decompress(frame(0x38), BS).equals(payload)).toBe(true); // 2^(10+7) = 128 KiB: fine
    expect(() => dec.decompress(frame(0x58), BS)).toThrow(/window 2097152 exceeds/); // 2 MiB (a streaming frame)
    expect(() => dec.decompress(frame(0x39), BS)).toThrow(/window 147456 exceeds/); // 128 KiB + 1/8
    expect(() => dec.decompress(frame(0x38, 0x01, [7]), BS)).toThrow(/dictionary/);
  });

  it.runIf(available.includes('xz'))('xz: 8 MiB dictionary of the default preset, CRC64', async () => {
    if (!skipUnless(have('xz'), 'xz refusal test: the xz command is not installed (apt-get install xz-utils)')) return;
    const dec = await createBlockDecoder('xz', BS);
    const input = text(5000);
    const xz = (...args: string[]): Buffer => spawnSync('xz', ['-c', ...args], { input, maxBuffer: 1 << 24 }).stdout;
    expect(dec.decompress(xz('--format=xz', '--check=crc32', '--lzma2=preset=6,dict=128KiB'), BS).equals(input)).toBe(true);
    expect(() => dec.decompress(xz('-6', '--check=crc32'), BS)).toThrow(/dictionary 8388608 exceeds 131072/);
    expect(() => dec.decompress(xz('--check=crc64', '--lzma2=dict=128KiB'), BS)).toThrow(/check type 4/);
  });

  it('gzip: raw deflate and gzip framing', async () => {
    const dec = await createBlockDecoder('gzip', BS);
    const input = text(5000);
    expect(() => dec.decompress(zlib.deflateRawSync(input), BS)).toThrow(/corrupt gzip block/);
    expect(() => dec.decompress(zlib.gzipSync(input), BS)).toThrow(/corrupt gzip block/);
  });
});

describe('the reference tools decode our output', () => {
  const input = Buffer.concat([text(BS >> 1), binary(BS >> 1)]);

  it('python3 zlib.decompress reads gzip blocks', async () => {
    if (!skipUnless(have('python3'), 'python3 zlib check: python3 is not installed')) return;
    const out = (await createBlockCodec({ name: 'gzip', level: 6, blockSize: BS })).compress(input);
    const r = spawnSync('python3', ['-c', 'import sys,zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))'], {
      input: out,
      maxBuffer: 1 << 24,
    });
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
  });

  it.runIf(available.includes('zstd'))('zstd -d reads zstd frames and lists them as single frames', async () => {
    if (!skipUnless(have('zstd'), 'zstd CLI check: the zstd command is not installed (apt-get install zstd)')) return;
    for (const level of [1, 19]) {
      const out = (await createBlockCodec({ name: 'zstd', level, blockSize: BS })).compress(input);
      const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: out, maxBuffer: 1 << 24 });
      expect(r.status, r.stderr.toString()).toBe(0);
      expect(r.stdout.equals(input)).toBe(true);
    }
    // And a streaming frame made by the CLI (window 2 MiB at level 3, no content size) is refused.
    const streamed = spawnSync('zstd', ['-3', '-c', '-q', '--no-content-size'], { input, maxBuffer: 1 << 24 }).stdout;
    expect(parseZstd(streamed).singleSegment).toBe(false);
    const dec = await createBlockDecoder('zstd', BS);
    if (parseZstd(streamed).window > BS) expect(() => dec.decompress(streamed, BS)).toThrow(/window \d+ exceeds/);
  });

  it.runIf(available.includes('xz'))('xz -d reads xz streams; xz -lvv shows the dictionary and CRC32', async () => {
    if (!skipUnless(have('xz'), 'xz CLI check: the xz command is not installed (apt-get install xz-utils)')) return;
    const tmp = join(repo, 'node_modules', '.cache', `codecs-test-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    try {
      for (const [blockSize, dict] of [
        [BS, '128KiB'],
        [4 * KiB, '8KiB'],
        [100_000, '96KiB'],
      ] as const) {
        const block = input.subarray(0, blockSize);
        const out = (await createBlockCodec({ name: 'xz', level: 6, blockSize })).compress(block);
        const r = spawnSync('xz', ['-d', '-c'], { input: out, maxBuffer: 1 << 24 });
        expect(r.status, r.stderr.toString()).toBe(0);
        expect(r.stdout.equals(block)).toBe(true);
        const file = join(tmp, `b${blockSize}.xz`);
        writeFileSync(file, out);
        const list = spawnSync('xz', ['-lvv', file]).stdout.toString();
        expect(list).toMatch(/Check:\s+CRC32/);
        expect(list.match(/--lzma2=dict=(\S+)/)?.[1]).toBe(dict);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('the Linux kernel reads our blocks', () => {
  // mksquashfs writes an image whose data blocks are stored raw (-noD, tables uncompressed too);
  // each file's one raw block is replaced by our compressed block and its size word patched, then
  // the image is loop-mounted and read back. The kernel is stricter than unsquashfs/squashfuse:
  // it refuses zstd windows and xz dictionaries larger than the block size.
  const canMount =
    process.getuid?.() === 0 && have('mksquashfs') && readFileSync('/proc/filesystems', 'utf8').includes('squashfs');
  const variants: Array<[CodecName, number, CodecBackend]> = [
    ['gzip', 6, 'auto'],
    ['zstd', 3, 'auto'],
    ['zstd', 19, 'auto'],
    ['xz', 6, 'auto'],
  ];
  // Every other zstd backend this machine has, so that each one's frames meet the kernel.
  for (const b of ['native', 'wasm'] as const) {
    const name = codecBackend('zstd', b);
    if (!name.startsWith('unavailable') && name !== codecBackend('zstd')) variants.push(['zstd', 3, b]);
  }

  it('loop-mounted images with our gzip, zstd and xz blocks read back intact', async () => {
    if (!skipUnless(canMount, 'kernel acceptance of codec output: needs root, mksquashfs and the squashfs module')) return;
    const tmp = mkdtempSync(join(tmpdir(), 'codecs-kernel-'));
    const src = join(tmp, 'src');
    const mnt = join(tmp, 'mnt');
    mkdirSync(src);
    mkdirSync(mnt);
    const files: Record<string, Buffer> = { 'bin.bin': binary(BS), 'text.bin': text(BS, 5) };
    for (const [f, data] of Object.entries(files)) writeFileSync(join(src, f), data);
    try {
      for (const [name, level, backend] of variants) {
        const img = join(tmp, `${name}-${level}-${backend}.img`);
        const mk = spawnSync('mksquashfs', [src, img, '-comp', name, '-noappend', '-quiet', '-no-progress', '-no-fragments', '-noI', '-noD', '-noF', '-noX', '-no-xattrs']);
        expect(mk.status, mk.stderr.toString()).toBe(0);
        const image = readFileSync(img);
        const codec = await createBlockCodec({ name, level, blockSize: BS, backend });
        for (const data of Object.values(files)) {
          const start = image.indexOf(data);
          // basic file inode tail: start_block, no fragment, offset 0, size, one "uncompressed" size word
          const tail = Buffer.alloc(20);
          tail.writeUInt32LE(start, 0);
          tail.writeUInt32LE(0xffffffff, 4);
          tail.writeUInt32LE(BS, 12);
          tail.writeUInt32LE(BS | (1 << 24), 16);
          const at = image.indexOf(tail);
          expect(start).toBeGreaterThan(0);
          expect(at).toBeGreaterThan(0);
          const z = codec.compress(data);
          expect(z.length).toBeLessThan(BS);
          z.copy(image, start);
          image.writeUInt32LE(z.length, at + 16);
        }
        writeFileSync(img, image);
        const mount = spawnSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', img, mnt]);
        expect(mount.status, `${name}-${level} ${backend}: ${mount.stderr}`).toBe(0);
        try {
          for (const [f, data] of Object.entries(files)) {
            expect(readFileSync(join(mnt, f)).equals(data), `${name}-${level} (${codec.backend}) ${f}`).toBe(true);
          }
        } finally {
          spawnSync('umount', [mnt]);
        }
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('worker_threads', () => {
  // The writer compresses in worker_threads; each calls createBlockCodec() once. Workers cannot
  // load .ts, so the modules are transpiled to a scratch directory inside node_modules (so
  // that the codec packages resolve from it).
  const dir = join(repo, 'node_modules', '.cache', `codecs-worker-${process.pid}`);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('every available codec initialises and compresses in two workers at once', async () => {
    const ts = (await import('typescript')).default;
    for (const rel of [...['index', 'codec', 'packages', 'gzip', 'zstd', 'zstd-frames', 'xz'].map((f) => `src/codecs/${f}.ts`), 'src/model/errors.ts']) {
      const js = ts.transpileModule(readFileSync(join(repo, rel), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      }).outputText;
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel.replace(/\.ts$/, '.js')), js);
    }
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(
      join(dir, 'worker.js'),
      `
      import { parentPort, workerData } from 'node:worker_threads';
      import * as c from './src/codecs/index.js';
      const out = {};
      for (const name of c.availableCodecs()) {
        const t0 = performance.now();
        const codec = await c.createBlockCodec({ name, level: c.defaultLevel(name), blockSize: 131072 });
        const init = performance.now() - t0;
        out[name] = { init, data: codec.compress(Buffer.from(workerData)) };
      }
      parentPort.postMessage(out);`,
    );
    const input = text(BS);
    const run = (): Promise<Record<string, { init: number; data: Uint8Array }>> =>
      new Promise((resolve, reject) => {
        const w = new Worker(join(dir, 'worker.js'), { workerData: input });
        w.once('message', (m) => {
          void w.terminate();
          resolve(m);
        });
        w.once('error', reject);
      });
    const results = await Promise.all([run(), run()]);
    for (const res of results) {
      expect(Object.keys(res)).toEqual(available);
      for (const name of available) {
        const dec = await createBlockDecoder(name, BS);
        expect(dec.decompress(Buffer.from(res[name]!.data), BS).equals(input), name).toBe(true);
      }
    }
    console.log(
      `codec initialisation in a worker (ms): ${available.map((n) => `${n} ${results[0]![n]!.init.toFixed(1)}`).join(', ')}`,
    );
  });
});

// Independent header parsers (RFC 8878 §3.1.1; xz file format 1.0.4 §2.1, §3.1, §5.3.1).
function parseZstd(f: Buffer): { singleSegment: boolean; window: number; contentSize: number | null; checksum: boolean; dictId: number } {
  expect(f.readUInt32LE(0)).toBe(0xfd2fb528);
  const d = f[4]!;
  const singleSegment = (d & 0x20) !== 0;
  let p = 5;
  let window = 0;
  if (!singleSegment) {
    const wd = f[p++]!;
    window = 2 ** (10 + (wd >> 3)) * (1 + (wd & 7) / 8);
  }
  const didBytes = [0, 1, 2, 4][d & 3]!;
  const dictId = didBytes ? f.readUIntLE(p, didBytes) : 0;
  p += didBytes;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][d >> 6]!;
  const contentSize =
    fcsBytes === 0 ? null : fcsBytes === 1 ? f[p]! : fcsBytes === 2 ? f.readUInt16LE(p) + 256 : fcsBytes === 4 ? f.readUInt32LE(p) : Number(f.readBigUInt64LE(p));
  if (singleSegment) window = contentSize!;
  return { singleSegment, window, contentSize, checksum: (d & 4) !== 0, dictId };
}

function parseXz(x: Buffer): { check: number; filters: number[]; dictSize: number | null } {
  expect(x.subarray(0, 6).toString('hex')).toBe('fd377a585a00');
  expect(x.subarray(-2).toString()).toBe('YZ');
  expect(zlib.crc32(x.subarray(6, 8))).toBe(x.readUInt32LE(8));
  const check = x[7]!;
  if (x[12] === 0) return { check, filters: [], dictSize: null };
  const headerSize = (x[12]! + 1) * 4;
  expect(zlib.crc32(x.subarray(12, 12 + headerSize - 4))).toBe(x.readUInt32LE(12 + headerSize - 4));
  const flags = x[13]!;
  let p = 14;
  const vli = (): number => {
    let v = 0;
    for (let s = 0; ; s += 7) {
      const b = x[p++]!;
      v += (b & 0x7f) * 2 ** s;
      if (!(b & 0x80)) return v;
    }
  };
  if (flags & 0x40) vli();
  if (flags & 0x80) vli();
  const filters: number[] = [];
  let dictSize: number | null = null;
  for (let i = 0; i <= (flags & 3); i++) {
    const id = vli();
    const size = vli();
    if (id === 0x21) {
      const bits = x[p]!;
      dictSize = (2 | (bits & 1)) << (bits / 2 + 11);
    }
    filters.push(id);
    p += size;
  }
  return { check, filters, dictSize };
}

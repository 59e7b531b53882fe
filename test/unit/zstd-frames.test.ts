// The zstd frame walker (src/codecs/zstd-frames.ts) against frames the zstd command writes:
// multi-block frames with and without a checksum, several frames with a skippable one between,
// every cut inside them, headers split across chunks, and damage it must name.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ZstdFrameCheck } from '../../src/codecs/zstd-frames.js';
import { canRun, hasCommand } from '../helpers/env.js';

/** Run the check over `data` in chunks of `chunk` bytes: end()'s answer. */
function check(data: Buffer, chunk = data.length || 1): string | null {
  const c = new ZstdFrameCheck();
  for (let at = 0; at < data.length; at += chunk) c.update(data.subarray(at, at + chunk));
  return c.end();
}

/** Compressible but not trivially so: lines of numbers, about `bytes` long. */
function text(bytes: number, seed: number): Buffer {
  const lines: string[] = [];
  let x = seed;
  for (let n = 0; n < bytes; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const line = `${x % 9973} ${(x >>> 8) % 101} value=${x.toString(16)}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join(''));
}

function zstd(input: Buffer, ...flags: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...flags], { input, maxBuffer: 1 << 26 });
}

/** A skippable frame (magic 0x184D2A53) with `n` bytes of payload. */
function skippable(n: number): Buffer {
  const b = Buffer.alloc(8 + n, 0x5a);
  b.writeUInt32LE(0x184d2a53, 0);
  b.writeUInt32LE(n, 4);
  return b;
}

const haveZstd = hasCommand('zstd');

describe('zstd frame check', () => {
  it('accepts whole frames: multi-block with a checksum, without one, RLE blocks, a 1-byte input, an empty input', () => {
    if (!canRun(haveZstd, 'zstd frame check', 'the zstd command writes the frames')) return;
    const big = text(600_000, 1); // > 128 KiB: several blocks
    const same = Buffer.alloc(400_000, 7); // one byte repeated: RLE blocks
    for (const frame of [zstd(big), zstd(big, '--no-check'), zstd(big, '-19'), zstd(same), zstd(Buffer.from('x')), zstd(Buffer.alloc(0))]) {
      expect(execFileSync('zstd', ['-t', '-q'], { input: frame }).length).toBe(0); // zstd itself agrees
      expect(check(frame)).toBeNull();
      for (const chunk of [1, 2, 3, 5, 4096]) expect(check(frame, chunk)).toBeNull();
    }
  });

  it('reports every cut inside a frame, and names where the data ended', () => {
    if (!canRun(haveZstd, 'zstd frame check', 'the zstd command writes the frames')) return;
    const frame = zstd(text(300_000, 2));
    expect(frame.length).toBeGreaterThan(1000);
    for (let cut = 1; cut < frame.length; cut++) {
      expect(check(frame.subarray(0, cut)), `cut at ${cut}`).toBe(`truncated: the data ends inside a frame, after ${cut} bytes`);
    }
    const rle = zstd(Buffer.alloc(400_000, 7));
    for (let cut = 1; cut < rle.length; cut++) expect(check(rle.subarray(0, cut)), `RLE frame cut at ${cut}`).toMatch(/^truncated/);
    // Headers split across chunks do not change the answer.
    for (const cut of [5, 6, 9, frame.length - 5, frame.length - 1]) expect(check(frame.subarray(0, cut), 2)).toMatch(/^truncated/);
  });

  it('reads several frames and skippable frames; a cut between frames cannot be seen', () => {
    if (!canRun(haveZstd, 'zstd frame check', 'the zstd command writes the frames')) return;
    const a = zstd(text(200_000, 3));
    const b = zstd(text(50_000, 4), '--no-check');
    const all = Buffer.concat([a, skippable(10), b, skippable(0)]);
    expect(execFileSync('zstd', ['-dc', '-q'], { input: all, maxBuffer: 1 << 26 }).length).toBe(text(200_000, 3).length + text(50_000, 4).length);
    expect(check(all)).toBeNull();
    expect(check(all, 7)).toBeNull();
    expect(check(all.subarray(0, a.length + 4))).toMatch(/^truncated/); // after the skippable frame's magic
    expect(check(all.subarray(0, a.length + 12))).toMatch(/^truncated/); // inside its payload
    expect(check(all.subarray(0, a.length + 18 + 10))).toMatch(/^truncated/); // inside the second frame
    expect(check(all.subarray(0, a.length))).toBeNull(); // the format's limit: no end marker
  });

  it('names damage: bytes after the last frame, a reserved header bit, a reserved block type, no frame at all', () => {
    if (!canRun(haveZstd, 'zstd frame check', 'the zstd command writes the frames')) return;
    const frame = zstd(text(10_000, 5));
    expect(check(Buffer.concat([frame, Buffer.from('trailing garbage')]))).toBe(`no zstd frame starts at byte ${frame.length}`);
    const reserved = Buffer.from(frame);
    reserved[4] = reserved[4]! | 0x08;
    expect(check(reserved)).toBe('reserved bit set in the frame header at byte 4');
    // The first block header follows the frame header: magic, descriptor, then its fields.
    const d = frame[4]!;
    const single = (d >> 5) & 1;
    const headerEnd = 5 + (single ? 0 : 1) + [0, 1, 2, 4][d & 3]! + ([0, 2, 4, 8][d >> 6]! || single);
    const badBlock = Buffer.from(frame);
    badBlock[headerEnd] = badBlock[headerEnd]! | 0x06; // block type 3
    expect(check(badBlock)).toBe(`reserved block type at byte ${headerEnd}`);
    // A damaged stream is damaged however it goes on.
    const c = new ZstdFrameCheck();
    c.update(Buffer.from('not zstd at all'));
    expect(c.problem()).toBe('no zstd frame starts at byte 0');
    expect(check(Buffer.alloc(0))).toBe('no zstd frame');
  });
});

// ReadAhead (sources/read-ahead.ts) and the shared slots of CompressPool: the pieces that move file
// bytes between threads. Every case compares bytes with what is on disk.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ContentRef, ReadAhead } from '../../src/sources/read-ahead.js';
// The built pool: its workers are JavaScript files next to it (npm test builds first).
import { CompressPool } from '../../dist/src/codecs/pool.js';
import { createBlockCodec } from '../../src/codecs/index.js';

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-readahead-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Files of the given sizes with random bytes; their refs and contents. */
function files(sizes: number[]): Array<{ ref: ContentRef; bytes: Buffer }> {
  return sizes.map((size, i) => {
    const bytes = crypto.randomBytes(size);
    const source = path.join(work, `f-${Math.random().toString(36).slice(2)}-${i}`);
    fs.writeFileSync(source, bytes);
    return { ref: { source, size }, bytes };
  });
}

async function takeAll(ahead: ReadAhead, n: number): Promise<Array<Buffer | null>> {
  const out: Array<Buffer | null> = [];
  for (let k = 0; k < n; k++) {
    let c = ahead.take(k);
    if (c instanceof Promise) c = await c;
    out.push(c ? Buffer.from(c) : null); // a copy: the view is valid until the next take()
  }
  return out;
}

describe('ReadAhead', () => {
  it('hands out every file whole, in order, through a ring much smaller than the files together', async () => {
    // 200 files of up to 6 KiB through a 16 KiB ring: it wraps around many times.
    const sizes = Array.from({ length: 200 }, (_, i) => 1 + ((i * 2654435761) % 6144));
    const fx = files(sizes);
    const ahead = new ReadAhead((k) => fx[k]!.ref, fx.length, { ringBytes: 16384, maxFile: 6144, inFlight: 8 });
    const got = await takeAll(ahead, fx.length);
    for (let k = 0; k < fx.length; k++) expect(got[k]!.equals(fx[k]!.bytes), `file ${k}`).toBe(true);
  });

  it('gives the same bytes when it reads on this thread because the cache is warm (1,200 files: past the probes)', async () => {
    const fx = files(Array.from({ length: 1200 }, (_, i) => 1 + ((i * 40503) % 3000)));
    const ahead = new ReadAhead((k) => fx[k]!.ref, fx.length, { ringBytes: 32768, maxFile: 4096 });
    const got = await takeAll(ahead, fx.length);
    for (let k = 0; k < fx.length; k++) expect(got[k]!.equals(fx[k]!.bytes), `file ${k}`).toBe(true);
  });

  it('skips what is not a file with content and leaves files over maxFile to the caller', async () => {
    const fx = files([100, 5000, 0, 300]);
    const items: Array<ContentRef | undefined> = [fx[0]!.ref, undefined, fx[1]!.ref, fx[2]!.ref, fx[3]!.ref];
    const ahead = new ReadAhead((k) => items[k], items.length, { maxFile: 4096 });
    const got = await takeAll(ahead, items.length);
    expect(got[0]!.equals(fx[0]!.bytes)).toBe(true);
    expect(got[1]).toBeNull(); // not a file
    expect(got[2]).toBeNull(); // 5000 > maxFile: the writer streams it
    expect(got[3]).toBeNull(); // empty
    expect(got[4]!.equals(fx[3]!.bytes)).toBe(true);
  });

  it('lets the writer pass over items it does not ask for', async () => {
    const fx = files([10, 20, 30, 40, 50]);
    const ahead = new ReadAhead((k) => fx[k]!.ref, fx.length);
    const third = ahead.take(2);
    expect(Buffer.from((third instanceof Promise ? await third : third)!).equals(fx[2]!.bytes)).toBe(true);
    const last = ahead.take(4);
    expect(Buffer.from((last instanceof Promise ? await last : last)!).equals(fx[4]!.bytes)).toBe(true);
  });

  it('reads content at an offset inside a larger file (a layer of a base image)', async () => {
    const [blob] = files([10000]);
    const refs: ContentRef[] = [
      { source: blob!.ref.source, offset: 512, size: 1000 },
      { source: blob!.ref.source, offset: 9000, size: 1000 },
    ];
    const got = await takeAll(new ReadAhead((k) => refs[k], refs.length), refs.length);
    expect(got[0]!.equals(blob!.bytes.subarray(512, 1512))).toBe(true);
    expect(got[1]!.equals(blob!.bytes.subarray(9000, 10000))).toBe(true);
  });

  it('names a file that shrank, grew or vanished since it was listed', async () => {
    const fx = files([1000, 1000, 1000]);
    fs.truncateSync(fx[0]!.ref.source!, 600);
    fs.appendFileSync(fx[1]!.ref.source!, 'more');
    fs.rmSync(fx[2]!.ref.source!);
    const expectations: Array<[number, RegExp]> = [
      [0, /f-.*-0 shrank while being read \(expected 1000 bytes, found 600\)/],
      [1, /f-.*-1 grew while being read \(expected 1000 bytes\)/],
      [2, /cannot read .*f-.*-2: no such file or directory/],
    ];
    for (const [k, message] of expectations) {
      const ahead = new ReadAhead(() => fx[k]!.ref, 1);
      await expect((async () => {
        const c = ahead.take(0);
        if (c instanceof Promise) await c;
      })()).rejects.toThrow(message);
    }
  });
});

describe('CompressPool shared slots', () => {
  it('gives the same blocks as the codec on this thread, through slots and past them', async () => {
    const codec = { name: 'gzip' as const, level: 6, blockSize: 8192 };
    const local = await createBlockCodec(codec);
    // 3 slots for 40 blocks: most of them take the transfer path while the slots are busy.
    const pool = await CompressPool.create(codec, 2, 3);
    try {
      const blocks = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? crypto.randomBytes(8192) : Buffer.alloc(8192, `line ${i} of text\n`)));
      const jobs = blocks.map((b) => {
        const buf = pool.buffer(b.length);
        b.copy(buf);
        return pool.compress(buf);
      });
      let viaSlots = 0;
      for (const [i, job] of jobs.entries()) {
        const c = await job;
        if (c.slot >= 0) viaSlots++;
        const expected = local.compress(blocks[i]!);
        if (expected.length < blocks[i]!.length) {
          expect(c.raw).toBe(false);
          expect(c.data.equals(expected), `block ${i}`).toBe(true);
        } else {
          expect(c.raw).toBe(true);
          expect(c.data.equals(blocks[i]!), `block ${i}`).toBe(true);
        }
        pool.release(c);
      }
      expect(viaSlots).toBeGreaterThanOrEqual(3);
      expect(viaSlots).toBeLessThan(40);
    } finally {
      await pool.close();
    }
  });

  it('takes back a slot that was not compressed after all', async () => {
    const pool = await CompressPool.create({ name: 'gzip', level: 1, blockSize: 8192 }, 1, 1);
    try {
      const a = pool.buffer(8192);
      expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(pool.buffer(8192).buffer).not.toBeInstanceOf(SharedArrayBuffer); // the only slot is out
      pool.recycle(a);
      expect(pool.buffer(8192).buffer).toBeInstanceOf(SharedArrayBuffer);
    } finally {
      await pool.close();
    }
  });
});

// A compression worker: one codec, blocks in, compressed blocks out: in the pool's shared slots
// (input half, output half), or in buffers transferred, not copied (pool.ts says why).
import { parentPort, workerData } from 'node:worker_threads';
import { type CodecOptions, createBlockCodec } from './index.js';

interface Job {
  id: number;
  /** A shared slot, or else a transferred buffer. */
  slot?: number;
  buf?: ArrayBuffer;
  length: number;
}

const { codec: options, shared } = workerData as { codec: CodecOptions; shared: SharedArrayBuffer | null };
const codec = await createBlockCodec(options);
const half = options.blockSize;
parentPort!.on('message', (job: Job) => {
  if (job.slot !== undefined) {
    const input = Buffer.from(shared!, 2 * job.slot * half, job.length);
    const output = Buffer.from(shared!, (2 * job.slot + 1) * half, half);
    let length: number;
    if (codec.compressInto) {
      length = codec.compressInto(input, output); // straight into the slot
    } else {
      const out = codec.compress(input);
      length = out.length;
      if (length < input.length) out.copy(output);
    }
    if (length >= 0 && length < input.length) parentPort!.postMessage({ id: job.id, slot: job.slot, length, raw: false });
    else parentPort!.postMessage({ id: job.id, slot: job.slot, length: job.length, raw: true });
    return;
  }
  const buf = job.buf!;
  const input = Buffer.from(buf, 0, job.length);
  const out = codec.compress(input);
  if (out.length < input.length) {
    // Copy into a buffer of its own: codecs may return views of pooled memory.
    const own = new Uint8Array(out.length);
    own.set(out);
    // The input goes back too, for the next block: reused memory costs no page faults.
    parentPort!.postMessage({ id: job.id, buf: own.buffer, length: out.length, raw: false, input: buf }, [own.buffer, buf]);
  } else {
    parentPort!.postMessage({ id: job.id, buf, length: job.length, raw: true }, [buf]);
  }
});
parentPort!.postMessage({ ready: true });

// A compression worker: one codec, blocks in, compressed blocks out (buffers transferred, not copied).
import { parentPort, workerData } from 'node:worker_threads';
import { type CodecOptions, createBlockCodec } from './codecs.js';

interface Job {
  id: number;
  buf: ArrayBuffer;
  length: number;
}

const codec = await createBlockCodec(workerData as CodecOptions);
parentPort!.on('message', (job: Job) => {
  const input = Buffer.from(job.buf, 0, job.length);
  const out = codec.compress(input);
  if (out.length < input.length) {
    // Copy into a buffer of its own: codecs may return views of pooled memory.
    const own = new Uint8Array(out.length);
    own.set(out);
    // The input goes back too, for the next block: reused memory costs no page faults.
    parentPort!.postMessage({ id: job.id, buf: own.buffer, length: out.length, raw: false, input: job.buf }, [own.buffer, job.buf]);
  } else {
    parentPort!.postMessage({ id: job.id, buf: job.buf, length: job.length, raw: true }, [job.buf]);
  }
});
parentPort!.postMessage({ ready: true });

// The sha256 of a part's files, for its index (compose/parts/index-file.ts). On a worker thread:
// the build's main thread meanwhile feeds the SquashFS writer the files the walk offered, whose
// compression goes on while this reads. The writer's own reads cannot be tapped (its data area may
// be written before the index's content is known, and its reads skip sparse and duplicate blocks),
// so this is a second read of each file, mostly from the page cache (sha256 runs at ~1.5 GB/s a
// core with the SHA extensions; gzip -6 at ~60 MB/s: a few per cent of the compression).
import { Worker } from 'node:worker_threads';
import { BuildError, describeSystemError } from '../../model/errors.js';

/** A file to hash: host path (byte string), where its content starts, and its size in the image. */
export interface HashJob {
  source: string;
  offset: number;
  size: number;
}

const HASHER = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
const out = [];
for (const job of workerData) {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(Buffer.from(job.source, 'latin1'), 'r');
  try {
    let left = job.size;
    let pos = job.offset;
    while (left > 0) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), pos);
      if (n === 0) throw Object.assign(new Error('file shrank while read'), { path: Buffer.from(job.source, 'latin1').toString() });
      h.update(buf.subarray(0, n));
      left -= n;
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  out.push(h.digest('hex'));
}
parentPort.postMessage(out);
`;

/** The sha256 (hex) of each job's bytes, in order; `stop()` ends the thread early. */
export function hashContents(jobs: HashJob[]): { digests: Promise<string[]>; stop: () => void } {
  const worker = new Worker(HASHER, { eval: true, workerData: jobs });
  let done = false;
  const digests = new Promise<string[]>((resolve, reject) => {
    worker.once('message', (m: string[]) => {
      done = true;
      resolve(m);
    });
    worker.once('error', (err) => reject(new BuildError(`cannot read the part's files for their sha256: ${describeSystemError(err)}${(err as { path?: string }).path ? ` (${(err as { path?: string }).path})` : ''}`)));
    worker.once('exit', () => {
      if (!done) reject(new BuildError("the part's sha256 thread ended early"));
    });
  });
  digests.catch(() => {}); // awaited by the caller, or not at all when the build fails first
  return { digests, stop: () => void worker.terminate() };
}

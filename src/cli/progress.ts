// Progress of the write stage: a bar (cli-progress) on a terminal, plain lines every few seconds
// when asked for elsewhere (batch jobs, CI logs), nothing with --quiet.
import cliProgress from 'cli-progress';
import { humanBytes } from './output.js';

export interface Progress {
  update(bytes: number, files: number): void;
  stop(): void;
}

const silent: Progress = { update: () => {}, stop: () => {} };

export function progressFor(opts: { quiet?: boolean; progress?: boolean }, totalBytes: number, label: string): Progress {
  if (opts.quiet || (!opts.progress && !process.stderr.isTTY)) return silent;
  const start = Date.now();
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {done} of {all} | {rate}/s | ETA {eta_formatted} | {files} files`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(Math.max(totalBytes, 1), 0, { done: humanBytes(0), all: humanBytes(totalBytes), rate: humanBytes(0), files: 0 });
    return {
      update: (bytes, files) =>
        bar.update(bytes, { done: humanBytes(bytes), all: humanBytes(totalBytes), rate: humanBytes(bytes / Math.max((Date.now() - start) / 1000, 0.001)), files }),
      stop: () => bar.stop(),
    };
  }
  let last = start;
  return {
    update: (bytes, files) => {
      const now = Date.now();
      if (now - last < 10_000) return;
      last = now;
      const secs = (now - start) / 1000;
      const rate = bytes / secs;
      const eta = rate > 0 ? Math.round((totalBytes - bytes) / rate) : 0;
      process.stderr.write(
        `shrinkwrap: ${label}: ${humanBytes(bytes)} of ${humanBytes(totalBytes)} (${Math.floor((100 * bytes) / Math.max(totalBytes, 1))}%), ${files} files, ${humanBytes(rate)}/s, ETA ${eta} s\n`,
      );
    },
    stop: () => {},
  };
}

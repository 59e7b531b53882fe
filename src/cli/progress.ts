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

/**
 * Progress of a stage that runs synchronously (the selection walk): drawn by the caller's own
 * calls, not a timer. On a terminal one line redrawn in place at most 5 times a second; elsewhere,
 * with --progress, a line every 10 s.
 */
export function stageProgress(opts: { quiet?: boolean; progress?: boolean }, label: string, unit = 'entries'): { tick(count: number, bytes: number): void; done(): void } {
  const tty = process.stderr.isTTY === true;
  if (opts.quiet || (!opts.progress && !tty)) return { tick: () => {}, done: () => {} };
  const start = Date.now();
  let last = 0;
  let drawn = false;
  const line = (entries: number, bytes: number) => {
    const secs = Math.max((Date.now() - start) / 1000, 0.001);
    return `shrinkwrap: ${label}: ${entries.toLocaleString('en-US')} ${unit}, ${humanBytes(bytes)} (${humanBytes(bytes / secs)}/s)`;
  };
  return {
    tick(entries, bytes) {
      const now = Date.now();
      if (now - last < (tty ? 200 : 10_000)) return;
      last = now;
      if (tty) {
        process.stderr.write(`\r${line(entries, bytes)}\x1b[K`);
        drawn = true;
      } else process.stderr.write(line(entries, bytes) + '\n');
    },
    done() {
      if (drawn) process.stderr.write('\r\x1b[K');
    },
  };
}

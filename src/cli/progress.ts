// Progress of the write stage: a bar (cli-progress) on a terminal, plain lines every few seconds
// when asked for elsewhere (batch jobs, CI logs), nothing with --quiet.
import cliProgress from 'cli-progress';
import { humanBytes } from '../util/size.js';

export interface Progress {
  update(bytes: number, files: number): void;
  stop(): void;
}

const silent: Progress = { update: () => {}, stop: () => {} };

/**
 * The write rate, smoothed: an exponentially weighted average of the rate over each interval of at
 * least `sampleMs`, weighted by the interval's length against `tauMs` (how long a past rate keeps
 * counting). The ETA from it moves steadily where the rate of the last few updates jumps (a large
 * file then many small ones, compression workers finishing in bursts).
 */
export class RateEstimate {
  private rate: number | null = null;
  private lastMs: number;
  private lastBytes = 0;

  constructor(
    startMs: number,
    private readonly tauMs = 10_000,
    private readonly sampleMs = 500,
  ) {
    this.lastMs = startMs;
  }

  /** Bytes per second after `bytes` done at `nowMs`; null until the first interval has passed. */
  update(bytes: number, nowMs: number): number | null {
    const dt = nowMs - this.lastMs;
    if (dt < this.sampleMs) return this.rate;
    const sample = ((bytes - this.lastBytes) * 1000) / dt;
    const weight = 1 - Math.exp(-dt / this.tauMs);
    this.rate = this.rate === null ? sample : this.rate + weight * (sample - this.rate);
    this.lastMs = nowMs;
    this.lastBytes = bytes;
    return this.rate;
  }

  /** Seconds left for `remaining` bytes at the smoothed rate; null while it is not known. */
  eta(remaining: number): number | null {
    if (remaining <= 0) return 0;
    return this.rate === null || this.rate <= 0 ? null : remaining / this.rate;
  }
}

/** 42 s, 3 min 05 s, 1 h 02 min; '?' while unknown. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

export function progressFor(opts: { quiet?: boolean; progress?: boolean }, totalBytes: number, label: string): Progress {
  if (opts.quiet || (!opts.progress && !process.stderr.isTTY)) return silent;
  const start = Date.now();
  const rate = new RateEstimate(start);
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        // The ETA is ours (RateEstimate): cli-progress's own, over its last updates, jumps.
        format: `${label} [{bar}] {percentage}% | {done} of {all} | {rate}/s | ETA {eta_smooth} | {files} files`,
        stream: process.stderr,
        hideCursor: true,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(Math.max(totalBytes, 1), 0, { done: humanBytes(0), all: humanBytes(totalBytes), rate: humanBytes(0), eta_smooth: '?', files: 0 });
    return {
      update: (bytes, files) => {
        const r = rate.update(bytes, Date.now());
        bar.update(bytes, { done: humanBytes(bytes), all: humanBytes(totalBytes), rate: humanBytes(r ?? bytes / Math.max((Date.now() - start) / 1000, 0.001)), eta_smooth: formatEta(rate.eta(totalBytes - bytes)), files });
      },
      stop: () => bar.stop(),
    };
  }
  let last = start;
  return {
    update: (bytes, files) => {
      const now = Date.now();
      const r = rate.update(bytes, now);
      if (now - last < 10_000) return;
      last = now;
      process.stderr.write(
        `shrinkwrap: ${label}: ${humanBytes(bytes)} of ${humanBytes(totalBytes)} (${Math.floor((100 * bytes) / Math.max(totalBytes, 1))}%), ${files} files, ${humanBytes(r ?? 0)}/s, ETA ${formatEta(rate.eta(totalBytes - bytes))}\n`,
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

// The write progress's ETA (issue 20, item 11): from a smoothed rate, so that it counts down
// steadily while the writer reports in bursts.
import { describe, expect, it } from 'vitest';
import { RateEstimate, formatEta } from '../../src/cli/progress.js';

/**
 * A writer at 10 MiB/s on average that reports in bursts, as a compression pool does: every
 * 200 ms, 0 to 4 MiB (a fixed pseudo-random pattern averaging 2 MiB). Returns the ETA after each
 * report, with the time it was made.
 */
function burstyRun(total: number, est = new RateEstimate(0)): { t: number; eta: number | null; truth: number }[] {
  const pattern = [0, 4, 1, 3, 0, 0, 4, 4, 2, 2, 0, 4, 3, 1];
  const out: { t: number; eta: number | null; truth: number }[] = [];
  let done = 0;
  for (let i = 0, t = 200; done < total; i++, t += 200) {
    done = Math.min(total, done + pattern[i % pattern.length]! * 2 ** 20);
    est.update(done, t);
    out.push({ t, eta: est.eta(total - done), truth: (total - done) / (10 * 2 ** 20) });
  }
  return out;
}

describe('RateEstimate', () => {
  it('the ETA of a bursty writer counts down: never up by more than 10% (and a second), within 25% of the truth', () => {
    const run = burstyRun(600 * 2 ** 20); // a minute's work
    const settled = run.filter((r) => r.t >= 5000 && r.truth > 2);
    expect(settled.length).toBeGreaterThan(200);
    for (let i = 1; i < settled.length; i++) expect(settled[i]!.eta!, `at ${settled[i]!.t} ms`).toBeLessThanOrEqual(settled[i - 1]!.eta! * 1.1 + 1);
    for (const r of settled) expect(Math.abs(r.eta! - r.truth) / r.truth, `at ${r.t} ms: ${r.eta} s for ${r.truth} s`).toBeLessThan(0.25);
  });

  it('without the smoothing (a time constant of 1 ms: the last interval alone) the same check fails', () => {
    const run = burstyRun(600 * 2 ** 20, new RateEstimate(0, 1, 200));
    const settled = run.filter((r) => r.t >= 5000 && r.truth > 2 && r.eta !== null);
    const rises = settled.slice(1).filter((r, i) => r.eta! > settled[i]!.eta! * 1.1 + 1);
    expect(rises.length).toBeGreaterThan(10);
  });

  it('follows a real change of rate within six time constants', () => {
    const est = new RateEstimate(0);
    let done = 0;
    for (let t = 500; t <= 30_000; t += 500) est.update((done += 50 * 2 ** 20 * 0.5), t); // 50 MiB/s
    for (let t = 30_500; t <= 90_000; t += 500) est.update((done += 5 * 2 ** 20 * 0.5), t); // then 5 MiB/s
    expect(est.eta(100 * 2 ** 20)).toBeGreaterThan(17); // 20 s at 5 MiB/s
    expect(est.eta(100 * 2 ** 20)).toBeLessThan(22);
  });

  it('knows nothing before its first interval, and nothing is left at the end', () => {
    const est = new RateEstimate(1000);
    expect(est.update(10, 1100)).toBeNull();
    expect(est.eta(100)).toBeNull();
    expect(est.eta(0)).toBe(0);
  });
});

describe('formatEta', () => {
  it('seconds, minutes, hours; ? while unknown', () => {
    expect(formatEta(null)).toBe('?');
    expect(formatEta(4.4)).toBe('4 s');
    expect(formatEta(185)).toBe('3 min 05 s');
    expect(formatEta(3725)).toBe('1 h 02 min');
  });
});

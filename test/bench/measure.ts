// Timing and peak memory of whole commands, the way an operator would measure them: GNU time.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface Sample {
  wall: number;
  user: number;
  sys: number;
  maxRssKiB: number;
}

export const TIME = '/usr/bin/time';

export function requireGnuTime(): void {
  if (!fs.existsSync(TIME)) throw new Error(`${TIME} not found: install GNU time (apt-get install -y time)`);
}

/** Run `cmd` with stdout to /dev/null under GNU time. */
export function measure(cmd: string[], opts: { cwd?: string } = {}): Sample {
  const r = spawnSync(TIME, ['-f', '%e %U %S %M', ...cmd], { cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const lines = r.stderr.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const [wall, user, sys, rss] = last.split(' ').map(Number);
  return { wall: wall!, user: user!, sys: sys!, maxRssKiB: rss! };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Alternate the commands rep by rep, so that a machine's slow moment hits both alike, and start
 * each rep with the next command in turn (this VM's page cache shrinks while it idles, so the
 * first run after a pause finds less of its input cached: that must not always be the same tool).
 * Each run starts after `sync` (not timed): a tool that exits with its output still in the page
 * cache (mksquashfs, tar) would otherwise have its write-back charged to whichever run comes next.
 * A tool that flushes its own output before exiting (shrinkwrap) still pays for that itself.
 */
export function compare(
  cmds: Record<string, string[]>,
  reps: number,
  opts: { cwd?: string; /** Run before each timed command, untimed (e.g. remove its last output). */ before?: (name: string) => void } = {},
): Record<string, Sample[]> {
  const out: Record<string, Sample[]> = {};
  for (const name of Object.keys(cmds)) out[name] = [];
  const entries = Object.entries(cmds);
  for (let i = 0; i < reps; i++) {
    for (let j = 0; j < entries.length; j++) {
      const [name, cmd] = entries[(i + j) % entries.length]!;
      opts.before?.(name);
      spawnSync('sync');
      const s = measure(cmd, opts);
      out[name]!.push(s);
      process.stderr.write(`  ${name} #${i + 1}: ${s.wall.toFixed(2)} s, ${(s.maxRssKiB / 1024).toFixed(0)} MiB\n`);
    }
  }
  return out;
}

export function summary(samples: Sample[]): { wall: number; cpu: number; rssMiB: number } {
  return {
    wall: median(samples.map((s) => s.wall)),
    cpu: median(samples.map((s) => s.user + s.sys)),
    rssMiB: Math.max(...samples.map((s) => s.maxRssKiB)) / 1024,
  };
}

/** Empty the page cache (needs root): false where this machine does not let us. */
export function dropCaches(): boolean {
  try {
    execFileSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

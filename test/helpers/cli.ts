// Run the built CLI as a user would (npm test compiles first: see "pretest").
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(new URL('../..', import.meta.url).pathname);
export const CLI = path.join(REPO_ROOT, 'dist/src/cli/shrinkwrap.cjs');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function shrinkwrap(args: string[], opts: SpawnSyncOptions = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  return { code: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The contract for bad input: exit code, exactly one line on stderr naming the culprit, no stack. */
export function expectOneLineError(r: Run, code: number, culprit: string | RegExp): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const problems: string[] = [];
  if (r.code !== code) problems.push(`exit ${r.code}, expected ${code}`);
  if (lines.length !== 1) problems.push(`${lines.length} lines on stderr, expected 1`);
  if (!lines[0]?.startsWith('shrinkwrap: error: ')) problems.push('no "shrinkwrap: error: " prefix');
  if (typeof culprit === 'string' ? !r.stderr.includes(culprit) : !culprit.test(r.stderr)) problems.push(`does not name ${culprit}`);
  if (/\n\s+at /.test(r.stderr)) problems.push('stack trace');
  if (problems.length > 0) throw new Error(`${problems.join('; ')}\nstderr: ${r.stderr}`);
}

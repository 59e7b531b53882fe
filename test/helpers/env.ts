// What the machine running the tests can do. A test that cannot run here says why, loudly;
// CI runs as root with every tool installed by .ci/run, so there nothing is skipped.
import { spawnSync } from 'node:child_process';

export const isRoot = process.getuid?.() === 0;

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** True when `needs` holds; otherwise prints why the dependent tests are skipped. */
export function canRun(needs: boolean, what: string, why: string): boolean {
  if (!needs) {
    const msg = `SKIPPED: ${what}: ${why}${process.env['CI'] ? ' (this must not happen in CI: see .ci/run)' : ''}`;
    console.warn(msg);
    if (process.env['CI']) throw new Error(msg);
  }
  return needs;
}

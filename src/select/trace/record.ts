// Record a workload's accesses: run a command under strace -f and keep every file-name syscall.
import { spawnSync } from 'node:child_process';
import { InputError } from '../../model/errors.js';

export interface Recorded {
  /** The command's exit status (or 128 + signal). */
  status: number;
}

/** Is strace on the PATH? */
export function haveStrace(): boolean {
  return spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
}

/**
 * Run `argv` under `strace -f`, writing the trace to `traceFile`. %file is every system call that
 * takes a file name (the set differs between architectures; strace knows it); -s large enough that
 * no path is cut; -qq keeps strace's own chatter out of the trace.
 */
export function recordTrace(argv: string[], traceFile: string): Recorded {
  if (argv.length === 0) throw new InputError('nothing to trace: give the command after --, e.g. shrinkwrap trace -- sh -c ". setup.sh; athena.py"');
  if (!haveStrace()) throw new InputError('strace is not installed: shrinkwrap trace runs the command under strace -f (apt-get install strace, or dnf install strace)');
  // -y prints the path behind each file descriptor, so relative *at() paths can be resolved.
  const r = spawnSync('strace', ['-f', '-qq', '-y', '-s', '65535', '-e', 'trace=%file', '-o', traceFile, '--', ...argv], { stdio: 'inherit' });
  if (r.error) throw new InputError(`cannot run strace: ${r.error.message}`);
  return { status: r.status ?? 128 + (r.signal ? 9 : 0) };
}

// A private scratch directory for one run (decompressed base layers, pulled blobs), removed when
// the process exits, however it exits (the signal handlers in atomic.ts end with process.exit).
// A run killed with SIGKILL cannot remove its own: its name carries its pid, and the next run
// removes those of dead runs of the same user (they can hold gigabytes of decompressed layers).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BuildError, describeSystemError } from '../model/errors.js';
import { sweepDead } from './atomic.js';

const made: string[] = [];
let swept = false;

/** The pattern of our work directories' names: `shrinkwrap-<purpose>-<pid>-<mkdtemp's six>`. */
const WORK_DIR = /^shrinkwrap-[a-z]+-(\d+)-[A-Za-z0-9]{6}$/;

/** A new directory under $TMPDIR (or os.tmpdir()); decompressed base layers go here. */
export function makeWorkDir(purpose: string): string {
  const tmp = os.tmpdir();
  if (!swept) {
    swept = true;
    removeDeadWorkDirs(tmp);
  }
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(tmp, `shrinkwrap-${purpose}-${process.pid}-`));
  } catch (err) {
    throw new BuildError(`cannot create a work directory in ${tmp} (set TMPDIR): ${describeSystemError(err)}`);
  }
  if (made.length === 0) process.on('exit', removeWorkDirs);
  made.push(dir);
  return dir;
}

export function removeWorkDirs(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** Work directories of runs that are gone: real directories (not links), of this user, dead pid. */
function removeDeadWorkDirs(tmp: string): void {
  sweepDead(tmp, WORK_DIR, (st, p) => st.isDirectory() && !made.includes(p));
}

// A private scratch directory for one run (decompressed base layers, pulled blobs), removed when
// the process exits, however it exits (the signal handlers in atomic.ts end with process.exit).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BuildError, describeSystemError } from '../model/errors.js';

const made: string[] = [];

/** A new directory under $TMPDIR (or os.tmpdir()); decompressed base layers go here. */
export function makeWorkDir(purpose: string): string {
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `shrinkwrap-${purpose}-`));
  } catch (err) {
    throw new BuildError(`cannot create a work directory in ${os.tmpdir()} (set TMPDIR): ${describeSystemError(err)}`);
  }
  if (made.length === 0) process.on('exit', removeWorkDirs);
  made.push(dir);
  return dir;
}

export function removeWorkDirs(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

// Outputs appear at their final path only when complete: they are written under a temporary name
// beside the target (same file system, so the final rename is atomic) and removed on failure or on
// SIGINT/SIGTERM.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT, InputError, BuildError, describeSystemError } from '../model/errors.js';

const active = new Set<AtomicOutput>();
let handlersInstalled = false;
/** Things to stop before exiting on a signal (worker pools: native codecs abort the process if it exits under them). */
const stoppers = new Set<() => Promise<unknown>>();

export function onInterrupt(stop: () => Promise<unknown>): () => void {
  stoppers.add(stop);
  return () => stoppers.delete(stop);
}

let stopping = false;

/** Is a SIGINT/SIGTERM being handled (the process is about to exit)? */
export function interrupting(): boolean {
  return stopping;
}

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (signal: NodeJS.Signals, code: number) => () => {
    if (stopping) return;
    stopping = true;
    const interrupted = [...active];
    for (const out of interrupted) out.abort();
    process.stderr.write(`shrinkwrap: interrupted by ${signal}; temporary output removed\n`);
    // Stop the workers first (at most 5 s), then exit with the signal's status; what the build
    // wrote meanwhile is removed again.
    const finish = () => {
      for (const out of interrupted) out.removeTemporary();
      process.exit(code);
    };
    const timer = setTimeout(finish, 5000);
    void Promise.allSettled([...stoppers].map((s) => s())).then(() => {
      clearTimeout(timer);
      finish();
    });
  };
  process.on('SIGINT', onSignal('SIGINT', EXIT.sigint));
  process.on('SIGTERM', onSignal('SIGTERM', EXIT.sigterm));
  process.on('exit', () => {
    for (const out of active) out.abort();
  });
}

export class AtomicOutput {
  private done = false;

  private constructor(
    /** Final path, as given (absolute). */
    readonly target: string,
    /** Temporary path beside it: write here. */
    readonly tmp: string,
    private readonly force: boolean,
  ) {}

  /** Check that the output may be written, and reserve a temporary name beside it. */
  static prepare(target: string, force: boolean): AtomicOutput {
    const abs = path.resolve(target);
    const dir = path.dirname(abs);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) throw new InputError(`output ${target}: directory ${dir} does not exist`);
    if (!st.isDirectory()) throw new InputError(`output ${target}: ${dir} is not a directory`);
    if (fs.lstatSync(abs, { throwIfNoEntry: false }) && !force) {
      throw new InputError(`output ${target} already exists (use --force to replace it)`);
    }
    const tmp = path.join(dir, `.${path.basename(abs)}.shrinkwrap-tmp-${process.pid}`);
    removeLeftovers(dir, path.basename(abs));
    return new AtomicOutput(abs, tmp, force);
  }

  /**
   * About to create the temporary output: from now on SIGINT/SIGTERM remove it. (Not before: a
   * handler would also defer Ctrl-C until a long synchronous selection walk ends.)
   */
  begin(): void {
    installSignalHandlers();
    active.add(this);
  }

  /** Move the complete output into place (replacing an old one only with --force). */
  commit(): void {
    if (this.done) return;
    const old = this.tmp.replace(/\.shrinkwrap-tmp-/, '.shrinkwrap-old-');
    try {
      if (fs.lstatSync(this.target, { throwIfNoEntry: false })) {
        if (!this.force) throw new InputError(`output ${this.target} appeared while building (use --force to replace it)`);
        fs.renameSync(this.target, old);
      }
      fs.renameSync(this.tmp, this.target);
    } catch (err) {
      // The previous output goes back where it was: never lose a complete image to a failed rename.
      if (fs.lstatSync(old, { throwIfNoEntry: false }) && !fs.lstatSync(this.target, { throwIfNoEntry: false })) {
        try {
          fs.renameSync(old, this.target);
        } catch {
          /* it stays under its hidden name; the next run for this target removes it */
        }
      }
      this.abort();
      if (err instanceof InputError) throw err;
      throw new BuildError(`cannot move output into place at ${this.target}: ${describeSystemError(err)}`);
    }
    this.done = true;
    active.delete(this);
    fs.rmSync(old, { recursive: true, force: true });
  }

  /** Remove the temporary output (idempotent; safe in signal handlers). */
  abort(): void {
    if (this.done) return;
    this.done = true;
    active.delete(this);
    this.removeTemporary();
  }

  removeTemporary(): void {
    try {
      makeWritable(this.tmp);
      fs.rmSync(this.tmp, { recursive: true, force: true });
    } catch {
      // Nothing more we can do; the name says what it is.
    }
  }
}

/** Directories copied with mode 0555 cannot be emptied by a non-root user; give them u+wx first. */
function makeWritable(p: string): void {
  if (process.getuid?.() === 0) return;
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st?.isDirectory()) return;
  fs.chmodSync(p, (st.mode & 0o7777) | 0o700);
  for (const name of fs.readdirSync(p)) makeWritable(path.join(p, name));
}

/** Is `pid` a live process (of anyone)? */
function alive(pid: number): boolean {
  if (pid === process.pid) return false; // ours from an earlier life: a killed run whose pid we reuse
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Temporary outputs of runs that were killed (SIGKILL, a crash, a power cut) stay beside the
 * target under their pid; the next run for the same target removes those whose process is gone.
 */
function removeLeftovers(dir: string, name: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const prefix = `.${name}.shrinkwrap-`;
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(?:tmp|old)-(\d+)$/.exec(n.slice(prefix.length));
    if (m && !alive(Number(m[1]))) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
}

/** Flush a written file to disk (on the thread pool; a read-only descriptor flushes the inode too). */
export async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

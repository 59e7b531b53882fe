// Outputs appear at their final path only when complete: they are written under a temporary name
// beside the target (same file system, so the final rename is atomic) and removed on failure or on
// SIGINT/SIGTERM.
//
// Output directories may be shared (a 1777 scratch directory) and we may be root, so every name we
// create there is created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, mkdir) under a random name: a
// link planted under a name we would use is never followed. Temporary names stay recognisable,
// `.<name>.shrinkwrap-tmp-<pid>-<random>[.<side>]`, so that a later run can sweep what a killed run
// left. Side files (`<output>.sha256`) are written to a temporary before the output is committed
// and commit with it, or not at all.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT, InputError, BuildError, describeSystemError } from '../model/errors.js';

const active = new Set<AtomicOutput>();
/** Temporaries outside any output (a blob being pulled into the cache), removed on a signal. */
const loose = new Set<string>();
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

/**
 * `file` is a temporary of ours until the returned function is called (it was renamed into place,
 * or removed): a SIGINT/SIGTERM meanwhile removes it.
 */
export function removeOnInterrupt(file: string): () => void {
  loose.add(file);
  return () => loose.delete(file);
}

/**
 * From now on SIGINT/SIGTERM stop the run through the handlers below (temporaries removed, the
 * stoppers run, the work directories go with the exit: util/workdir.ts). `build` and `plan` call
 * it first thing; from then on every long phase must pause now and then (a Steps generator run by
 * runStepsAsync, or streams), or a signal waits for it to end.
 */
export function obeySignals(): void {
  installSignalHandlers();
}

function removeLoose(): void {
  for (const p of loose) {
    try {
      fs.rmSync(p, { recursive: true, force: true });
    } catch {
      /* its name says what it is; the next run sweeps it (sweepTemporaries) */
    }
  }
}

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (signal: NodeJS.Signals, code: number) => () => {
    if (stopping) return;
    stopping = true;
    const interrupted = [...active];
    for (const out of interrupted) out.abort();
    const removed = interrupted.length > 0 || loose.size > 0 ? '; temporary output removed' : '';
    removeLoose();
    process.stderr.write(`shrinkwrap: interrupted by ${signal}${removed}\n`);
    // Stop the workers first (at most 5 s; a block in flight takes milliseconds), then exit with
    // the signal's status; what the build wrote meanwhile is removed again.
    const finish = () => {
      for (const out of interrupted) out.removeTemporary();
      removeLoose();
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

/** A file that commits together with the output (its checksum, a marker). */
export interface SideFile {
  /** Final path (absolute). */
  path: string;
  /** Appended to the temporary name for its temporary: `.sha256`. */
  tag: string;
  /**
   * An existing one when the output itself is new: 'refuse' it (unless --force), as the output
   * itself would be; or 'replace' it (a marker that means nothing without its output).
   */
  stale: 'refuse' | 'replace';
}

/** What an output is: a file, or a directory, and what --force may replace. */
export interface OutputKind {
  type: 'file' | 'dir';
  /** For messages: "a squashfs image". */
  what: string;
  /**
   * dir: is this existing directory an earlier output of the same kind? --force replaces nothing
   * else (an empty directory always qualifies: nothing is lost).
   */
  isEarlierOutput?: (dir: string) => boolean;
  sides?: SideFile[];
}

/** The flags exclusive creation uses: never open an existing name, never follow a link. */
const CREATE_EXCL = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Create `file` exclusively and write `content` to it (flushed: it will be renamed into place). */
export function writeNewFile(file: string, content: string | Buffer, mode = 0o644): void {
  const fd = fs.openSync(file, CREATE_EXCL, mode);
  try {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function randomTag(): string {
  return crypto.randomBytes(4).toString('hex');
}

/**
 * `.<name>.shrinkwrap-tmp-<pid>-<random>` beside `target`: a name no other run (nor a user who
 * can write the directory) can predict, to be created exclusively and renamed into place.
 */
export function tempPathBeside(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.shrinkwrap-tmp-${process.pid}-${randomTag()}`);
}

function lstat(p: string): fs.Stats | undefined {
  return fs.lstatSync(p, { throwIfNoEntry: false });
}

function typeName(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFile()) return 'a file';
  return 'a special file';
}

export class AtomicOutput {
  private done = false;
  /** Side files written so far: final path → temporary. */
  private readonly sideTemps = new Map<string, string>();
  /** More temporaries (a staging directory) removed with the output's. */
  private readonly extras: string[] = [];

  private constructor(
    /** Final path, as given (absolute). */
    readonly target: string,
    /** Temporary path beside it: write here. */
    readonly tmp: string,
    private readonly force: boolean,
    private readonly kind: OutputKind,
    /** The name as the user gave it, for messages. */
    private readonly given: string,
  ) {}

  /** Check that the output may be written, and reserve a temporary name beside it. */
  static prepare(target: string, force: boolean, kind: OutputKind = { type: 'file', what: 'the output' }): AtomicOutput {
    if (kind.type === 'file' && target.endsWith('/')) {
      throw new InputError(`output ${target}: ${kind.what} is a file; give a file name, not a directory`);
    }
    const abs = path.resolve(target);
    const dir = path.dirname(abs);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) throw new InputError(`output ${target}: directory ${dir} does not exist`);
    if (!st.isDirectory()) throw new InputError(`output ${target}: ${dir} is not a directory`);
    const out = new AtomicOutput(abs, tempPathBeside(abs), force, kind, target);
    out.checkReplaceable(false);
    removeLeftovers(dir, path.basename(abs), kind.sides ?? []);
    return out;
  }

  /**
   * May the output (and its side files) be written over what is there now? At commit, anything
   * that appeared meanwhile counts as if it had been there at the start.
   */
  private checkReplaceable(committing: boolean): void {
    const st = lstat(this.target);
    const exists = (name: string) =>
      committing
        ? new InputError(`output ${name} appeared while building (use --force to replace it)`)
        : new InputError(`output ${name} already exists (use --force to replace it)`);
    if (st) {
      if (this.kind.type === 'file') {
        if (st.isDirectory()) throw new InputError(`output ${this.given} already exists and is a directory; ${this.kind.what} is a file: give a file name`);
        if (!this.force) throw exists(this.given);
        if (!st.isFile()) throw new InputError(`output ${this.given} is ${typeName(st)}, not an earlier output: --force replaces only that (remove it yourself)`);
      } else {
        if (!st.isDirectory()) throw new InputError(`output ${this.given} already exists and is ${typeName(st)}; ${this.kind.what} is a directory`);
        if (!this.force) throw exists(this.given);
        if (!this.isEarlierOutput()) {
          throw new InputError(`output ${this.given} is a directory shrinkwrap did not write: --force replaces only an earlier output, ${this.kind.what} (remove it yourself)`);
        }
      }
    }
    for (const side of this.kind.sides ?? []) {
      const s = lstat(side.path);
      if (!s) continue;
      if (!s.isFile()) throw new InputError(`output ${side.path} is ${typeName(s)}: remove it or choose another output name`);
      if (!this.force && !(side.stale === 'replace' && !st)) throw exists(side.path);
    }
  }

  private isEarlierOutput(): boolean {
    try {
      if (fs.readdirSync(this.target).length === 0) return true;
    } catch {
      return false;
    }
    return this.kind.isEarlierOutput?.(this.target) ?? false;
  }

  /** About to create the temporary output: from now on SIGINT/SIGTERM remove it. */
  begin(): void {
    installSignalHandlers();
    active.add(this);
  }

  /** Create the temporary output as an empty file, exclusively (writers then open it by name). */
  createFile(): void {
    this.begin();
    try {
      writeNewFile(this.tmp, '');
    } catch (err) {
      throw new BuildError(`cannot write ${this.target}: ${describeSystemError(err)}`);
    }
  }

  /** A further temporary beside the output (`tag` appended to its temporary name), removed with it. */
  extraTemporary(tag: string): string {
    this.begin();
    const p = this.tmp + tag;
    this.extras.push(p);
    return p;
  }

  /** Write a side file's content to its temporary; it is moved into place with the output. */
  writeSide(finalPath: string, content: string): void {
    const side = (this.kind.sides ?? []).find((s) => s.path === finalPath);
    if (!side) throw new Error(`${finalPath} is not a side file of ${this.target}`);
    this.begin();
    const tmp = this.tmp + side.tag;
    this.sideTemps.set(finalPath, tmp);
    try {
      writeNewFile(tmp, content);
    } catch (err) {
      throw new BuildError(`cannot write ${finalPath}: ${describeSystemError(err)}`);
    }
  }

  /**
   * Move the complete output and its side files into place, replacing old ones only with --force;
   * without it nothing is ever clobbered (link(2) for files, mkdir(2) for directories), so of two
   * runs racing for one output the loser fails and removes only its own files. If any step fails,
   * every step before it is undone: the previous output and its side files are as they were.
   */
  commit(): void {
    if (this.done) return;
    const undo: Array<() => void> = [];
    const backups: string[] = [];
    const backupName = (tag: string) => path.join(path.dirname(this.target), `.${path.basename(this.target)}.shrinkwrap-old-${process.pid}-${randomTag()}${tag}`);
    try {
      this.checkReplaceable(true);
      // Old side files go aside first: an old checksum must never describe the new output, even
      // if we are killed between two renames.
      for (const side of this.kind.sides ?? []) {
        if (!lstat(side.path)) continue;
        const b = backupName(side.tag);
        fs.renameSync(side.path, b);
        backups.push(b);
        undo.push(() => fs.renameSync(b, side.path));
      }
      this.placeMain(undo, backups, backupName);
      for (const side of this.kind.sides ?? []) {
        const tmp = this.sideTemps.get(side.path);
        if (tmp === undefined) continue;
        linkNoReplace(tmp, side.path, () => new InputError(`output ${side.path} appeared while building (use --force to replace it)`));
        undo.push(() => fs.unlinkSync(side.path));
      }
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          step();
        } catch {
          /* what cannot be put back stays under its hidden name; the next run restores or removes it */
        }
      }
      this.abort();
      if (err instanceof InputError) throw err;
      throw new BuildError(`cannot move output into place at ${this.target}: ${describeSystemError(err)}`);
    }
    this.done = true;
    active.delete(this);
    // The temporaries' names (the committed files keep their other name) and the backups.
    this.removeTemporary();
    for (const b of backups) removeTree(b);
  }

  private placeMain(undo: Array<() => void>, backups: string[], backupName: (tag: string) => string): void {
    const old = lstat(this.target);
    if (this.kind.type === 'file') {
      if (!old) {
        // link(2) fails if the name exists: a racing run's output is never replaced.
        linkNoReplace(this.tmp, this.target, () => new InputError(`output ${this.given} appeared while building (use --force to replace it)`));
        undo.push(() => fs.unlinkSync(this.target));
        return;
      }
      // --force over an earlier file: keep a link to it (to undo), then replace it in one rename.
      const b = backupName('');
      try {
        fs.linkSync(this.target, b);
      } catch (err) {
        if (!NO_LINKS.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
        fs.renameSync(this.target, b); // no hard links: the old file goes aside for a moment
        undo.push(() => fs.renameSync(b, this.target));
      }
      backups.push(b);
      fs.renameSync(this.tmp, this.target);
      undo.push(() => fs.renameSync(b, this.target));
      return;
    }
    if (!old) {
      // mkdir(2) is the exclusive step; rename(2) then replaces our own empty directory.
      try {
        fs.mkdirSync(this.target, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new InputError(`output ${this.given} appeared while building (use --force to replace it)`);
        throw err;
      }
      try {
        fs.renameSync(this.tmp, this.target);
      } catch (err) {
        fs.rmdirSync(this.target);
        throw err;
      }
      undo.push(() => fs.renameSync(this.target, this.tmp));
      return;
    }
    const b = backupName('');
    fs.renameSync(this.target, b);
    backups.push(b);
    undo.push(() => fs.renameSync(b, this.target));
    fs.renameSync(this.tmp, this.target);
    undo.push(() => fs.renameSync(this.target, this.tmp));
  }

  /** Remove the temporary output (idempotent; safe in signal handlers). */
  abort(): void {
    if (this.done) return;
    this.done = true;
    active.delete(this);
    this.removeTemporary();
  }

  removeTemporary(): void {
    for (const p of [this.tmp, ...this.sideTemps.values(), ...this.extras]) {
      try {
        removeTree(p);
      } catch {
        // Nothing more we can do; the name says what it is.
      }
    }
  }
}

/** Errors of file systems without hard links (vfat, some FUSE and network file systems). */
const NO_LINKS = new Set(['EPERM', 'ENOSYS', 'EOPNOTSUPP', 'ENOTSUP', 'EMLINK']);

/**
 * link(2) `from` to `to`, failing with `exists()` if `to` exists: rename(2) would replace it. Where
 * the file system has no hard links, a check and a rename (a race of microseconds, not of a build).
 */
function linkNoReplace(from: string, to: string, exists: () => Error): void {
  try {
    fs.linkSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') throw exists();
    if (!NO_LINKS.has(code)) throw err;
    if (lstat(to)) throw exists();
    fs.renameSync(from, to);
  }
}

/** Remove a file, a link (never what it points to) or a tree. */
function removeTree(p: string): void {
  makeWritable(p);
  fs.rmSync(p, { recursive: true, force: true });
}

/** Directories copied with mode 0555 cannot be emptied by a non-root user; give them u+wx first. */
function makeWritable(p: string): void {
  if (process.getuid?.() === 0) return;
  const st = lstat(p);
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

/** Is this entry ours to sweep: made by this user, and not through a link? */
function ownedByUs(st: fs.Stats): boolean {
  return st.uid === (process.getuid?.() ?? st.uid);
}

/**
 * Temporary outputs of runs that were killed (SIGKILL, a crash, a power cut) stay beside the
 * target under their pid; the next run for the same target removes those whose process is gone
 * and that belong to this user. A run killed in the middle of a --force commit of a directory may
 * have left the previous output only under its backup name: that is put back, not removed.
 */
function removeLeftovers(dir: string, name: string, sides: SideFile[]): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const prefix = `.${name}.shrinkwrap-`;
  const target = path.join(dir, name);
  // Sorted: a run's backup of the output comes before its side files' (`…-<random>.sha256`).
  const restored = new Set<string>();
  for (const n of names.sort()) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(tmp|old)-(\d+)-([0-9a-f]{8})(\.[^/]*)?$/.exec(n.slice(prefix.length));
    if (!m || alive(Number(m[2]))) continue;
    const p = path.join(dir, n);
    const st = lstat(p);
    if (!st || !ownedByUs(st)) continue;
    const run = `${m[2]}-${m[3]}`;
    const tag = m[4] ?? '';
    try {
      if (m[1] === 'old' && tag === '' && !lstat(target)) {
        fs.renameSync(p, target);
        restored.add(run);
        continue;
      }
      const side = sides.find((s) => s.tag === tag);
      if (m[1] === 'old' && restored.has(run) && side && !lstat(side.path)) {
        fs.renameSync(p, side.path);
        continue;
      }
      removeTree(p);
    } catch {
      /* another run got there first */
    }
  }
}

/**
 * Temporaries that killed runs left in a directory of many targets (a pull cache's blobs, a
 * layout's index): every `.<name>.shrinkwrap-tmp-<pid>-<random>` of this user whose process is
 * gone, never through a link.
 */
export function sweepTemporaries(dir: string): void {
  sweepDead(dir, /^\..+\.shrinkwrap-tmp-(\d+)-[0-9a-f]{8}$/, (st) => !st.isDirectory());
}

/**
 * Remove what runs that are gone left in `dir`: entries whose name `pattern` matches with the
 * run's pid as its first group, whose process is dead, that this user owns (looked at with lstat:
 * never through a link) and that `also` accepts.
 */
export function sweepDead(dir: string, pattern: RegExp, also: (st: fs.Stats, p: string) => boolean): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const m = pattern.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    const p = path.join(dir, n);
    const st = lstat(p);
    if (!st || !ownedByUs(st) || !also(st, p)) continue;
    try {
      fs.rmSync(p, { recursive: true, force: true });
    } catch {
      /* another run is removing it, or it is not ours to remove after all */
    }
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

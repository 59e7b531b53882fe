// Buffered writes to stdout, or to a file (the plan the image carries), that respect back-pressure:
// a plan of millions of lines must not be built as one string, nor flood the pipe faster than it drains.
import { BuildError, describeSystemError } from '../model/errors.js';

export class Out {
  private buf = '';
  /** A write error (ENOSPC on a redirected stdout, a full $TMPDIR): reported by the next write or flush. */
  private failed: NodeJS.ErrnoException | null = null;
  private wakeDrain: (() => void) | null = null;
  constructor(
    private readonly stream: NodeJS.WritableStream = process.stdout,
    /** What is written, for messages: "standard output", a file name. */
    private readonly name = 'standard output',
  ) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // `shrinkwrap plan | head` closes the pipe early: that is not an error.
      if (err.code === 'EPIPE' && stream === process.stdout) process.exit(0);
      this.failed ??= err;
      this.wakeDrain?.();
    });
  }

  async write(s: string): Promise<void> {
    this.check();
    this.buf += s;
    if (this.buf.length >= 1 << 16) await this.flush();
  }

  async flush(): Promise<void> {
    this.check();
    if (this.buf === '') return;
    const chunk = this.buf;
    this.buf = '';
    if (!this.stream.write(chunk)) {
      await new Promise<void>((r) => {
        this.wakeDrain = r;
        this.stream.once('drain', () => r());
      });
      this.wakeDrain = null;
    }
    this.check();
  }

  /** Finish: everything flushed, and the stream's error if it had one. */
  async end(): Promise<void> {
    await this.flush();
    if (this.stream === process.stdout) return;
    await new Promise<void>((resolve) => {
      this.wakeDrain = resolve;
      this.stream.end(() => resolve());
    });
    this.check();
  }

  private check(): void {
    if (this.failed) throw new BuildError(`cannot write ${this.name}: ${describeSystemError(this.failed)}`);
  }
}

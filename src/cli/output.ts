// Buffered writes to stdout that respect back-pressure: a plan of millions of lines must not be
// built as one string, nor flood the pipe faster than it drains.
export class Out {
  private buf = '';
  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // `shrinkwrap plan | head` closes the pipe early: that is not an error.
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }

  async write(s: string): Promise<void> {
    this.buf += s;
    if (this.buf.length >= 1 << 16) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.buf === '') return;
    const chunk = this.buf;
    this.buf = '';
    if (!this.stream.write(chunk)) await new Promise<void>((r) => this.stream.once('drain', () => r()));
  }
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

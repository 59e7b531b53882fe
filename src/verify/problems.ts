// The problems (the image is wrong) and warnings (oddities readers accept) a check finds, each one
// line, the image's own path left out (the CLI prefixes it); after `max`, only counted.
export class Problems {
  readonly list: string[] = [];
  readonly warnings: string[] = [];
  private dropped = 0;
  /** Reader messages name the image file; every problem here is about that file. */
  private readonly prefix: string;
  constructor(
    private readonly max: number,
    imagePath: string,
  ) {
    this.prefix = `${imagePath}: `;
  }
  add(msg: string): void {
    if (this.list.length < this.max) this.list.push(msg.replaceAll(this.prefix, ''));
    else this.dropped++;
  }
  warn(msg: string): void {
    if (this.warnings.length < this.max) this.warnings.push(msg.replaceAll(this.prefix, ''));
  }
  finish(): string[] {
    if (this.dropped > 0) this.list.push(`... and ${this.dropped} more problems`);
    return this.list;
  }
}

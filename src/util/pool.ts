/** Run async jobs with at most `limit` in flight; rejects with the first failure. */
export class Pool {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private failure: unknown = null;
  private readonly all = new Set<Promise<void>>();

  constructor(private readonly limit: number) {}

  async run(job: () => Promise<void>): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.running >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    if (this.failure) throw this.failure;
    this.running++;
    const p = job()
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.running--;
        this.all.delete(p);
        this.waiting.shift()?.();
      });
    this.all.add(p);
  }

  async drain(): Promise<void> {
    while (this.all.size > 0) await Promise.all([...this.all]);
    if (this.failure) throw this.failure;
  }

  /** Wait until nothing is in flight, whatever failed (before cleaning up after a failure). */
  async settle(): Promise<void> {
    while (this.all.size > 0) await Promise.allSettled([...this.all]);
  }
}

import { display } from './bytes.js';

/**
 * Warnings collected during a run. Printed as they happen (up to a limit per kind, so that 100,000
 * dangling links do not drown the terminal) and kept for the summary and JSON reports.
 */
export interface Warning {
  kind: string;
  message: string;
}

export type WarningSink = (w: Warning) => void;

export class Diagnostics {
  readonly warnings: Warning[] = [];
  private readonly perKind = new Map<string, number>();

  constructor(
    private readonly sink: WarningSink | null = null,
    private readonly printLimitPerKind = 20,
  ) {}

  warn(kind: string, message: string): void {
    const w = { kind, message };
    this.warnings.push(w);
    const n = (this.perKind.get(kind) ?? 0) + 1;
    this.perKind.set(kind, n);
    if (this.sink && n <= this.printLimitPerKind) this.sink(w);
  }

  /** Warn about a path (byte string) with a message built around its display form. */
  warnPath(kind: string, path: string, what: string): void {
    this.warn(kind, `${display(path)}: ${what}`);
  }

  /** Lines saying how many warnings of each kind were not printed. */
  suppressedSummary(): string[] {
    const out: string[] = [];
    for (const [kind, n] of [...this.perKind].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (n > this.printLimitPerKind) out.push(`${n - this.printLimitPerKind} more '${kind}' warnings not shown`);
    }
    return out;
  }
}

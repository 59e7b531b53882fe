// What every importer produces: events, failed accesses and counts, with the /cvmfs/<fqrn> split of
// absolute paths (strace, parrot, plain lists) in one place.
import { display } from '../../model/bytes.js';
import { normalizeAbsolute } from '../../model/entry.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import type { ParsedTrace, TraceEventName, TraceFormat, TraceOptions } from './types.js';

export const MOUNT = '/cvmfs';

/** A repository name as it appears under /cvmfs: `atlas.cern.ch`, `sft.cern.ch`. */
export function looksLikeFqrn(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]*\.[A-Za-z0-9_.-]*[A-Za-z0-9]$/.test(name) && !name.includes('..');
}


/** `/cvmfs/<fqrn>/rest` → { repo, path: '/rest' }; `/cvmfs/<fqrn>` → path ''; else null. */
export function splitCvmfsPath(abs: string): { repo: string; path: string } | null {
  const p = normalizeAbsolute(abs);
  if (!p.startsWith(MOUNT + '/')) return null;
  const rest = p.slice(MOUNT.length + 1);
  const slash = rest.indexOf('/');
  const repo = slash < 0 ? rest : rest.slice(0, slash);
  if (!looksLikeFqrn(repo)) return null;
  return { repo, path: slash < 0 ? '' : rest.slice(slash) };
}

export class Collector {
  readonly result: ParsedTrace;
  private readonly warnedRepos = new Set<string>();
  private relative = 0;

  constructor(
    format: TraceFormat,
    private readonly opts: TraceOptions,
    private readonly file: string,
    private readonly diag: Diagnostics,
  ) {
    this.result = { format, events: [], failed: [], ignoredOutside: 0 };
  }

  /** A repository-relative access (cvmfs format). */
  event(repo: string, path: string, event: TraceEventName, line: number): void {
    this.result.events.push({ repo, path, event, line });
  }

  failed(repo: string, path: string, line: number, why: string): void {
    this.result.failed.push({ repo, path, line, why });
  }

  /**
   * An access to an absolute path (strace, parrot, plain lists); `failedWhy` set when the call
   * failed. Paths outside /cvmfs are only counted.
   */
  absolute(abs: string, event: TraceEventName, line: number, failedWhy: string | null = null): void {
    const at = splitCvmfsPath(abs);
    if (!at) {
      this.result.ignoredOutside++;
      return;
    }
    if (this.opts.knownRepo && !this.warnedRepos.has(at.repo) && !this.opts.knownRepo(at.repo)) {
      this.warnedRepos.add(at.repo);
      this.diag.warn('trace-unknown-repo', `${this.file}:${line}: repository ${display(at.repo)} is not in the source`);
    }
    if (failedWhy !== null) this.failed(at.repo, at.path, line, failedWhy);
    else this.event(at.repo, at.path, event, line);
  }

  /** A relative path whose directory is unknown: counted as outside, one warning at the end. */
  unresolvedRelative(): void {
    this.relative++;
    this.result.ignoredOutside++;
  }

  finish(): ParsedTrace {
    if (this.relative > 0) {
      this.diag.warn('trace-relative', `${this.file}: ${this.relative} relative path(s) ignored (the working directory is unknown)`);
    }
    return this.result;
  }
}

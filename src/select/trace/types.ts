// Types shared by the trace importers (index.ts re-exports them; importers import from here to
// avoid an import cycle through index.ts).

export type TraceFormat = 'cvmfs' | 'strace' | 'parrot' | 'paths';

/** The CVMFS tracer's event names without `()`; spec_builder.py's `--filters` choices. */
export type TraceEventName = 'open' | 'opendir' | 'lookup' | 'statfs' | 'getattr' | 'listxattr' | 'getxattr' | 'readlink';

export const TRACE_FORMATS: readonly TraceFormat[] = ['cvmfs', 'strace', 'parrot', 'paths'];
export const TRACE_EVENT_NAMES: readonly TraceEventName[] = ['open', 'opendir', 'lookup', 'statfs', 'getattr', 'listxattr', 'getxattr', 'readlink'];

export interface TraceEvent {
  /** fqrn, e.g. atlas.cern.ch (byte string). */
  repo: string;
  /** Repository-relative path as the CVMFS tracer writes it: '/lcg/x', '' for the repository root (byte string). */
  path: string;
  event: TraceEventName;
  /** 1-based line in the trace file. */
  line: number;
}

export interface FailedAccess {
  /** fqrn of the repository the access was in (byte string). */
  repo: string;
  /** Repository-relative path, '' for the root (byte string). */
  path: string;
  line: number;
  /** Short reason: `lookup()-NOTFOUND`, `ENOENT`, ... */
  why: string;
}

export interface ParsedTrace {
  format: TraceFormat;
  events: TraceEvent[];
  /** Accesses that failed (lookup()-NOTFOUND rows, strace calls returning -1): reported, not selected. */
  failed: FailedAccess[];
  /**
   * Paths outside /cvmfs (strace/parrot/plain lists) that were ignored, counted. Relative paths
   * strace could not resolve (cwd unknown) are counted here too.
   */
  ignoredOutside: number;
}

export interface TraceOptions {
  /** Force the format instead of detecting it. */
  format?: TraceFormat;
  /**
   * Repository (fqrn, byte string) of a CVMFS tracer log (else taken from the file name). Other
   * formats name the repository in every path (/cvmfs/<fqrn>/...) and ignore this.
   */
  repo?: string | null;
  /** Whether the source has this repository; used to pick among file-name guesses and to warn. */
  knownRepo?: (fqrn: string) => boolean;
  /**
   * Events that will be filtered out (spec_builder's `--filters`). Only used so that an `@UNKNOWN`
   * row of a filtered event is dropped instead of being an error, as spec_builder.py does.
   */
  filters?: readonly TraceEventName[];
}

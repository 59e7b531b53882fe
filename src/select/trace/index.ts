// Access traces → what was touched, per repository; and spec_builder.py's trace → spec selection.
// Formats: the CVMFS tracer's CSV log, `strace -f` output, Parrot's namelist, plain path lists
// (reference atlas-on-cvmfs.md §3.2, §5.3; cvmfs-spec-and-trace.md §3.2, §3.4).
import * as fs from 'node:fs';
import { display, fromBuffer, fromText, fsPath } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import { parseCvmfsTrace } from './cvmfs.js';
import { parseParrot, parsePathList } from './lists.js';
import { STRACE_LINE, parseStrace } from './strace.js';
import type { FailedAccess, ParsedTrace, TraceEvent, TraceFormat, TraceOptions } from './types.js';

export type { FailedAccess, ParsedTrace, TraceEvent, TraceEventName, TraceFormat, TraceOptions } from './types.js';
export { TRACE_EVENT_NAMES, TRACE_FORMATS } from './types.js';
export { buildSpecs, type BuildSpecOptions, type SpecPolicy } from './spec-builder.js';
export { parseCsv, repoCandidatesFromFileName } from './cvmfs.js';
export { decodeCString } from './strace.js';
export { splitCvmfsPath } from './collect.js';

/** Lines of strace's own that say nothing about the format (`--- SIGCHLD`, `+++ exited`, `strace: ...`). */
const STRACE_NOISE = /^\s*(?:\[pid\s+\d+\]\s*|\d+\s+)?(?:\d+(?::\d+)*(?:\.\d+)?\s+)?(?:---|\+\+\+|strace: )/;
const PARROT_MARK = /\|(?:fullcopy|metadatacopy)\s*$/;
/** How far detection looks for Parrot's marks (its namelist starts with lines without them). */
const PARROT_LOOKAHEAD = 100;

/** The format of a trace from its content (byte string), or null. */
export function detectTraceFormat(text: string): TraceFormat | null {
  const lines = text.split(/\r?\n/, 10_000);
  const meaningful = lines.filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#') && !STRACE_NOISE.test(l));
  const first = meaningful[0];
  if (first === undefined) return null;
  if (first.startsWith('"') && first.includes('","')) return 'cvmfs';
  if (meaningful.slice(0, PARROT_LOOKAHEAD).some((l) => PARROT_MARK.test(l))) return 'parrot';
  if (STRACE_LINE.test(first)) return 'strace';
  if (first.trimStart().startsWith('/')) return 'paths';
  return null;
}

/** Parse a trace (byte string). `file` (byte string) names it in messages and, for tracer logs, may name the repository. */
export function parseTrace(text: string, file: string, opts: TraceOptions, diag: Diagnostics): ParsedTrace {
  const shown = display(file);
  const format = opts.format ?? detectTraceFormat(text);
  if (format === null) {
    if (text.trim() === '') {
      diag.warn('trace-empty', `${shown}: the trace is empty`);
      return { format: 'paths', events: [], failed: [], ignoredOutside: 0 };
    }
    throw new InputError(`${shown}: cannot tell the trace format (use --trace-format cvmfs|strace|parrot|paths)`);
  }
  switch (format) {
    case 'cvmfs':
      return parseCvmfsTrace(text, file, shown, opts, diag);
    case 'strace':
      return parseStrace(text, shown, opts, diag);
    case 'parrot':
      return parseParrot(text, shown, opts, diag);
    case 'paths':
      return parsePathList(text, shown, opts, diag);
  }
}

/** Read and parse a trace file (`file` is a byte string, as for every fs call here). Errors are InputError naming file:line. */
export function readTrace(file: string, opts: TraceOptions, diag: Diagnostics): ParsedTrace {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(fsPath(file));
  } catch (err) {
    throw new InputError(`trace file ${display(file)}: ${describeSystemError(err)}`);
  }
  return parseTrace(fromBuffer(buf), file, opts, diag);
}

/**
 * The events of several traces (their union), each failed access reported once as a warning
 * (it is not selected). `files` are paths as the user typed them.
 */
export function readTraces(files: readonly string[], opts: TraceOptions, diag: Diagnostics): { events: TraceEvent[]; failed: FailedAccess[] } {
  const events: TraceEvent[] = [];
  const failed: FailedAccess[] = [];
  for (const file of files) {
    const parsed = readTrace(fromText(file), opts, diag);
    for (const f of parsed.failed) diag.warn('trace-failed', `${file}:${f.line}: ${display(f.path)}: ${f.why} (not selected)`);
    // Loops, not push(...): a trace of millions of events would overflow the call stack.
    for (const e of parsed.events) events.push(e);
    for (const f of parsed.failed) failed.push(f);
  }
  return { events, failed };
}

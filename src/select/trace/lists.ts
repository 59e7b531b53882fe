// Line-per-path formats: Parrot's namelist (`<path>|fullcopy`, `<path>|metadatacopy`) and plain
// path lists. Paths are absolute; only /cvmfs/<fqrn>/... counts.
import type { Diagnostics } from '../../model/diagnostics.js';
import { InputError } from '../../model/errors.js';
import { display } from '../../model/bytes.js';
import { Collector } from './collect.js';
import type { ParsedTrace, TraceOptions } from './types.js';

function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

/**
 * Parrot namelist (`parrot_run --name-list`). `metadatacopy` is a stat-only access (getattr);
 * `fullcopy`, any other (old-style) call type, and lines without `|` (the loader and /bin/sh
 * Parrot writes first) are reads ('open'), as parrot_package_create treats them.
 */
export function parseParrot(text: string, shown: string, opts: TraceOptions, diag: Diagnostics): ParsedTrace {
  const out = new Collector('parrot', opts, shown, diag);
  lines(text).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const bar = line.lastIndexOf('|');
    const p = bar < 0 ? line : line.slice(0, bar);
    const kind = bar < 0 ? '' : line.slice(bar + 1);
    if (!p.startsWith('/')) {
      out.unresolvedRelative();
      return;
    }
    out.absolute(p, kind === 'metadatacopy' ? 'getattr' : 'open', i + 1);
  });
  return out.finish();
}

/** One absolute path per line; `#` starts a comment line; blank lines are ignored. */
export function parsePathList(text: string, shown: string, opts: TraceOptions, diag: Diagnostics): ParsedTrace {
  const out = new Collector('paths', opts, shown, diag);
  lines(text).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (!line.startsWith('/')) throw new InputError(`${shown}:${i + 1}: "${display(line)}" is not an absolute path`);
    out.absolute(line, 'open', i + 1);
  });
  return out.finish();
}

// The CVMFS tracer's CSV log (reference cvmfs-spec-and-trace.md §3.2): four always-quoted fields
// `"<ms.µs>","<code>","<path>","<event>"`, CRLF line ends, repository-relative paths. Which rows
// count follows spec_builder.py (§3.4 step 1-2).
import * as path from 'node:path';
import { display } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { InputError } from '../../model/errors.js';
import { Collector, looksLikeFqrn } from './collect.js';
import type { ParsedTrace, TraceEventName, TraceOptions } from './types.js';

export interface CsvRecord {
  fields: string[];
  /** 1-based line the record starts on. */
  line: number;
}

/**
 * RFC 4180-style CSV: fields separated by `,`, optionally quoted with `"`, `""` inside quotes is
 * one `"`, commas and line breaks inside quotes are data. Records end at `\r\n`, `\n` or `\r`.
 * Blank lines give no record. `where(line)` names the place in errors.
 */
export function parseCsv(text: string, where: (line: number) => string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const start = line;
    // Blank line: no record.
    if (text[i] === '\n' || text[i] === '\r') {
      i += text[i] === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      continue;
    }
    const fields: string[] = [];
    for (;;) {
      let value = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= n) throw new InputError(`${where(start)}: unterminated quoted field`);
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
          value += c;
          i++;
        }
        if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          throw new InputError(`${where(start)}: unexpected text after a quoted field`);
        }
      } else {
        while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          if (text[i] === '"') throw new InputError(`${where(start)}: stray quote in an unquoted field`);
          value += text[i];
          i++;
        }
      }
      fields.push(value);
      if (i < n && text[i] === ',') {
        i++;
        continue;
      }
      // End of record (or of the text).
      if (i < n) {
        i += text[i] === '\r' && text[i + 1] === '\n' ? 2 : 1;
        line++;
      }
      break;
    }
    records.push({ fields, line: start });
  }
  return records;
}

/** Tracer event codes (tracer.h) and their names as logged. */
const CODES: ReadonlyMap<number, TraceEventName> = new Map([
  [1, 'open'],
  [2, 'opendir'],
  [3, 'readlink'],
  [4, 'lookup'],
  [5, 'statfs'],
  [6, 'getattr'],
  [7, 'listxattr'],
  [8, 'getxattr'],
]);
const BY_LOGGED_NAME: ReadonlyMap<string, TraceEventName> = new Map([...CODES.values()].map((e) => [e + '()', e]));

/** spec_builder.py skips these paths (exact match only). */
const SKIPPED_PATHS: ReadonlySet<string> = new Set(['/.Trash', '/.Trash-1000']);

const FILE_SUFFIXES = ['.trace.log', '.trace.csv', '.trace', '.log', '.csv'];
const FILE_PREFIXES = ['cvmfs-trace-', 'trace-', 'cvmfs-'];

/**
 * Repositories a trace file name may name, best guess first: `<fqrn>.trace.log` (trace.sh),
 * `cvmfs-trace-<fqrn>.log`, `cvmfs-<fqrn>.trace.log`, `.csv` variants.
 */
export function repoCandidatesFromFileName(file: string): string[] {
  const base = path.basename(file);
  const suffix = FILE_SUFFIXES.find((s) => base.endsWith(s));
  if (!suffix) return [];
  const stem = base.slice(0, -suffix.length);
  const out: string[] = [];
  for (const p of FILE_PREFIXES) if (stem.startsWith(p)) out.push(stem.slice(p.length));
  out.push(stem);
  return [...new Set(out)].filter(looksLikeFqrn);
}

function traceRepo(file: string, opts: TraceOptions, shown: string, diag: Diagnostics): string {
  if (opts.repo != null) return opts.repo;
  const candidates = repoCandidatesFromFileName(file);
  if (candidates.length === 0) {
    throw new InputError(
      `${shown}: cannot tell which repository this CVMFS trace is for: name the file <fqrn>.trace.log (as trace.sh does) or give the repository (--repo <fqrn>)`,
    );
  }
  if (opts.knownRepo) {
    const known = candidates.find((c) => opts.knownRepo!(c));
    if (known !== undefined) return known;
    diag.warn('trace-unknown-repo', `${shown}: repository ${display(candidates[0]!)} (from the file name) is not in the source`);
  }
  return candidates[0]!;
}

/** Parse a CVMFS tracer log (byte string). `shown` is the file name for messages. */
export function parseCvmfsTrace(text: string, file: string, shown: string, opts: TraceOptions, diag: Diagnostics): ParsedTrace {
  const repo = traceRepo(file, opts, shown, diag);
  const out = new Collector('cvmfs', opts, shown, diag);
  const filters = new Set(opts.filters ?? []);
  const where = (line: number) => `${shown}:${line}`;
  for (const { fields, line } of parseCsv(text, where)) {
    if (fields.length !== 4) {
      throw new InputError(`${where(line)}: expected 4 fields ("timestamp","code","path","event"), found ${fields.length}`);
    }
    const [, codeText, p, name] = fields as [string, string, string, string];
    if (!/^-?\d+$/.test(codeText)) throw new InputError(`${where(line)}: event code "${display(codeText)}" is not a number`);
    const code = Number(codeText);
    // Internal events (Tracer start/stop/flush) carry no path.
    if (code < 0) continue;
    const notFound = name.endsWith('-NOTFOUND');
    const loggedName = notFound ? name.slice(0, -'-NOTFOUND'.length) : name;
    const event = BY_LOGGED_NAME.get(loggedName);
    if (event === undefined) throw new InputError(`${where(line)}: unknown trace event "${display(name)}"`);
    const expected = CODES.get(code);
    if (expected !== event) {
      throw new InputError(`${where(line)}: event code ${code} ${expected ? `is ${expected}(), not` : 'is unknown for'} "${display(name)}"`);
    }
    if (SKIPPED_PATHS.has(p)) continue;
    if (notFound) {
      out.failed(repo, p, line, name);
      continue;
    }
    if (p === '@UNKNOWN') {
      // spec_builder.py only sees rows its filters keep, so a filtered event is no error there.
      if (filters.has(event)) continue;
      throw new InputError(
        `${where(line)}: path @UNKNOWN (${name}): the tracer lost the path of an inode, the trace is incomplete (spec_builder.py refuses it too)`,
      );
    }
    if (p !== '' && !p.startsWith('/')) {
      throw new InputError(`${where(line)}: path "${display(p)}" is not repository-relative (it should start with / or be empty)`);
    }
    out.event(repo, p, event, line);
  }
  return out.finish();
}

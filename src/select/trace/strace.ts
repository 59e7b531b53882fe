// `strace -f` output (also `-o file` with a pid column, `-ff`, `-t/-tt/-ttt/-r` timestamps, `-y`
// fd decorations). Only calls that name a path are read; see SYSCALLS.
import type { Diagnostics } from '../../model/diagnostics.js';
import { Collector } from './collect.js';
import type { ParsedTrace, TraceEventName, TraceOptions } from './types.js';

interface Syscall {
  /** Index of the path argument. */
  arg: number;
  /** The call takes a directory fd before the path (`*at`). */
  at: boolean;
  event: TraceEventName;
  /** Index of the flags argument: O_DIRECTORY there makes the event 'opendir'. */
  flags?: number;
}

const plain = (event: TraceEventName, flags?: number): Syscall => ({ arg: 0, at: false, event, flags });
const at = (event: TraceEventName, flags?: number): Syscall => ({ arg: 1, at: true, event, flags });

const SYSCALLS: ReadonlyMap<string, Syscall> = new Map([
  ['open', plain('open', 1)],
  ['open64', plain('open', 1)],
  ['openat', at('open', 2)],
  ['openat2', at('open', 2)],
  ['execve', plain('open')],
  ['execveat', at('open')],
  ['stat', plain('getattr')],
  ['stat64', plain('getattr')],
  ['lstat', plain('getattr')],
  ['lstat64', plain('getattr')],
  ['newfstatat', at('getattr')],
  ['fstatat64', at('getattr')],
  ['statx', at('getattr')],
  ['access', plain('getattr')],
  ['faccessat', at('getattr')],
  ['faccessat2', at('getattr')],
  ['readlink', plain('readlink')],
  ['readlinkat', at('readlink')],
  ['statfs', plain('statfs')],
  ['statfs64', plain('statfs')],
  ['getxattr', plain('getxattr')],
  ['lgetxattr', plain('getxattr')],
  ['listxattr', plain('listxattr')],
  ['llistxattr', plain('listxattr')],
]);

/** `[pid N] ` or a pid column (`-o file`), then an optional timestamp (`-t`, `-tt`, `-ttt`, `-r`). */
const PREFIX = /^\s*(?:\[pid\s+(\d+)\]\s*|(\d+)\s+)?(?:\d+(?::\d+)*(?:\.\d+)?\s+)?/;
/** Used by format detection: a line that starts like a system call. */
export const STRACE_LINE = /^\s*(?:\[pid\s+\d+\]\s*|\d+\s+)?(?:\d+(?::\d+)*(?:\.\d+)?\s+)?(?:[a-z_0-9]+\(|<\.\.\. [a-z_0-9]+ resumed>)/;
const CALL = /^([a-z_0-9]+)\(/;
const RESUMED = /^<\.\.\. ([a-z_0-9]+) resumed>/;
const UNFINISHED = /\s*<unfinished \.\.\.>\s*$/;
const RESULT = /^\s*=\s*(-?\d+|\?|0x[0-9a-fA-F]+)(?:<[^>]*>)?(?:\s+(E[A-Z0-9]+))?/;

/** Decode the inside of a C string literal as strace prints it (\\", \\\\, \\n, \\t, \\NNN octal, \\xNN) to a byte string. */
export function decodeCString(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const d = s[++i]!;
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', v: '\v', f: '\f', a: '\x07', b: '\b', e: '\x1b' };
    if (d in simple) out += simple[d];
    else if (d >= '0' && d <= '7') {
      let j = i;
      while (j < s.length && j < i + 3 && s[j]! >= '0' && s[j]! <= '7') j++;
      out += String.fromCharCode(parseInt(s.slice(i, j), 8) & 0xff);
      i = j - 1;
    } else if (d === 'x' && /[0-9a-fA-F]/.test(s[i + 1] ?? '')) {
      let j = i + 1;
      while (j < s.length && j < i + 3 && /[0-9a-fA-F]/.test(s[j]!)) j++;
      out += String.fromCharCode(parseInt(s.slice(i + 1, j), 16));
      i = j - 1;
    } else out += d; // \\ \" \' and anything unknown: the character itself
  }
  return out;
}

interface Arg {
  /** The argument as written, trimmed. */
  raw: string;
  /** Decoded value when the argument is one string literal. */
  str: string | null;
  /** strace cut the string (`"..."...`). */
  truncated: boolean;
}

/**
 * Split the arguments of `name(...)` starting after the `(` at `from`. Returns the arguments and
 * the index after the closing `)`, or null when the text ends first.
 */
function scanArgs(text: string, from: number): { args: Arg[]; end: number } | null {
  const args: Arg[] = [];
  let depth = 0;
  let start = from;
  let str: string | null = null;
  let strings = 0;
  let truncated = false;
  const finish = (to: number) => {
    const raw = text.slice(start, to).trim();
    if (raw !== '' || args.length > 0 || text[to] === ',') {
      args.push({ raw, str: strings === 1 && raw.startsWith('"') ? str : null, truncated });
    }
    str = null;
    strings = 0;
    truncated = false;
  };
  for (let i = from; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return null;
      strings++;
      str = decodeCString(text.slice(i + 1, j));
      i = j;
      if (text.startsWith('...', j + 1)) {
        truncated = true;
        i += 3;
      }
    } else if (c === '/' && text[i + 1] === '*') {
      const j = text.indexOf('*/', i + 2);
      if (j < 0) return null;
      i = j + 1;
    } else if (c === '<' && depth === 0) {
      // fd decoration of -y: 3</path>
      const j = text.indexOf('>', i + 1);
      if (j < 0) return null;
      i = j;
    } else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ')') {
      if (depth === 0) {
        finish(i);
        return { args, end: i + 1 };
      }
      depth--;
    } else if (c === ',' && depth === 0) {
      finish(i);
      start = i + 1;
    }
  }
  return null;
}

/** The directory a `-y` decorated dirfd names (`AT_FDCWD</home/u>`, `3</cvmfs/x>`), if any. */
function dirfdPath(raw: string): string | null {
  const m = /^(?:AT_FDCWD|\d+)<(.*)>$/.exec(raw);
  return m ? decodeCString(m[1]!) : null;
}

interface Pending {
  head: string;
  line: number;
}

export function parseStrace(text: string, shown: string, opts: TraceOptions, diag: Diagnostics): ParsedTrace {
  const out = new Collector('strace', opts, shown, diag);
  const pending = new Map<string, Pending>();

  const handle = (call: string, line: number, complete: boolean) => {
    const m = CALL.exec(call);
    if (!m) return;
    const sc = SYSCALLS.get(m[1]!);
    if (!sc) return;
    const scanned = scanArgs(call, m[0].length);
    if (!scanned) {
      if (complete) diag.warn('trace-strace', `${shown}:${line}: cannot read the arguments of ${m[1]}(), line ignored`);
      return;
    }
    const pathArg = scanned.args[sc.arg];
    if (!pathArg || pathArg.str === null || pathArg.str === '') return; // NULL, fd-only (AT_EMPTY_PATH)
    if (pathArg.truncated) {
      diag.warn('trace-strace', `${shown}:${line}: the path of ${m[1]}() is cut short (strace -s), ignored`);
      return;
    }
    let p = pathArg.str;
    if (!p.startsWith('/')) {
      const base = sc.at ? dirfdPath(scanned.args[0]?.raw ?? '') : null;
      if (base === null || !base.startsWith('/')) {
        out.unresolvedRelative();
        return;
      }
      p = base + '/' + p;
    }
    let event = sc.event;
    if (sc.flags !== undefined && /\bO_DIRECTORY\b/.test(scanned.args[sc.flags]?.raw ?? '')) event = 'opendir';
    const r = RESULT.exec(call.slice(scanned.end));
    const failed = r && r[1]!.startsWith('-') ? (r[2] ?? r[1]!) : null;
    out.absolute(p, event, line, failed);
  };

  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    const raw = lines[n]!;
    const pre = PREFIX.exec(raw)!;
    const pid = pre[1] ?? pre[2] ?? '';
    const rest = raw.slice(pre[0].length);
    const resumed = RESUMED.exec(rest);
    if (resumed) {
      const start = pending.get(pid);
      if (!start || !start.head.startsWith(resumed[1]! + '(')) {
        diag.warn('trace-strace', `${shown}:${lineNo}: ${resumed[1]}() resumed without its start, ignored`);
        continue;
      }
      pending.delete(pid);
      handle(start.head + rest.slice(resumed[0].length), start.line, true);
      continue;
    }
    if (!CALL.test(rest)) continue; // signals, exits, strace's own messages
    const unfinished = UNFINISHED.exec(rest);
    if (unfinished) {
      pending.set(pid, { head: rest.slice(0, unfinished.index), line: lineNo });
      continue;
    }
    handle(rest, lineNo, true);
  }
  // Calls that never resumed (the process was killed): the access happened, the result is unknown.
  for (const p of pending.values()) handle(p.head + ')', p.line, false);
  return out.finish();
}

// A small evaluator for release setup scripts (POSIX sh / bash as AtlasCMake and LCG write them),
// run without a shell: it follows `.`/`source`, assignments, `export`, `unset`, `if`/`elif`/`else`
// with `[ ]`/`test` conditions and `&&`/`||`, and the expansions setup scripts use (`${V:-w}`,
// `${V:+w}`, `${V%pat}`, `$(dirname …)`, `$(cd …; pwd)`, `${BASH_SOURCE[0]}`). What it cannot know
// (other command substitutions, loops, functions, case) it skips, and says so in `unknown`.
// Never executes anything: setup scripts from a repository are data to us.
//
// Scripts from a repository may be hostile: the work is bounded (lines evaluated, scripts sourced,
// length of a value, pattern-matching work; see LIMITS), patterns are matched in O(n·m) (pattern.ts),
// and sourcing a script again with the same environment reuses the first evaluation.
import { display } from '../../model/bytes.js';
import { normalizeAbsolute } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import { PatternError, compileWildcard, matchingPrefixes, matchingSuffixes, searchCost } from '../pattern.js';
import * as crypto from 'node:crypto';

/** What the evaluator needs of the tree the scripts live in (image paths, /cvmfs/...). */
export interface ScriptHost {
  /** The script's bytes (latin1 text), or null when it is absent/unreadable or outside the source. */
  read(imagePath: string): string | null;
  /** Kernel-style resolution of a path; null when it does not exist. */
  kind(imagePath: string): 'dir' | 'file' | null;
  /** Path with `.`, `..` and symlinks resolved as the kernel would (for cycle checks and messages). */
  resolve(imagePath: string): string;
}

export interface SourcedScript {
  /** The path as the script named it, lexically normalised. */
  path: string;
  /** `file:line` of the `.`/`source` command (the top script: `top`). */
  from: string;
  /** Whether it exists (absent ones are reported by the caller). */
  found: boolean;
}

export interface ShellResult {
  env: Map<string, string>;
  scripts: SourcedScript[];
  /** Things the evaluator skipped, `file:line: what`. */
  unknown: string[];
}

const MAX_DEPTH = 32;

/**
 * What one evaluation may cost. Real setup chains (AtlasCMake, LCG) evaluate a few thousand lines
 * in a few dozen scripts, with values of some kilobytes; these are orders of magnitude above that,
 * and low enough that a hostile chain (a script sourcing the next twice, 24 deep; `X=$X$X` in a
 * loop of sourcings; `${V%*a*a*a…b}`) stops within a second or so.
 */
export const LIMITS = {
  /** Lines evaluated, all scripts together. */
  lines: 1_000_000,
  /** `.`/`source` commands followed (a repeat with the same environment is not counted). */
  sources: 5_000,
  /** Characters in one variable's value. */
  value: 1 << 20,
  /** Pattern-matching table cells (`${V%pat}` and friends), all together. */
  matching: 200_000_000,
  /** `${…}` / `$(…)` nested in one another. */
  nesting: 64,
};

/** Counts the work of one evaluation against LIMITS; stops it with an error naming the place. */
class Budget {
  lines = 0;
  sources = 0;
  matching = 0;

  spend(what: 'lines' | 'sources' | 'matching', n: number, where: () => string): void {
    this[what] += n;
    if (this[what] > LIMITS[what]) throw new InputError(`${where()}: setup script evaluation stopped: more than ${LIMITS[what]} ${BUDGET_UNITS[what]} (a hostile or runaway setup chain?)`);
  }
}

const BUDGET_UNITS = { lines: 'lines evaluated', sources: 'scripts sourced', matching: 'pattern-matching steps' } as const;

/** The effect of one sourcing, to reuse when the same script is sourced with the same environment. */
interface Evaluated {
  env: [string, string][];
}

export function evaluateSetup(top: string, host: ScriptHost, env: Map<string, string> = new Map()): ShellResult {
  const result: ShellResult = { env, scripts: [], unknown: [] };
  const active = new Set<string>();
  const budget = new Budget();
  // Each file is read once, however often it is sourced.
  const texts = new Map<string, string | null>();
  const readOnce = (file: string): string | null => {
    if (!texts.has(file)) texts.set(file, host.read(file));
    return texts.get(file)!;
  };
  const done = new Map<string, Evaluated>();
  const run = (file: string, from: string, depth: number): void => {
    const text = readOnce(file);
    result.scripts.push({ path: file, from, found: text !== null });
    if (text === null) return;
    const real = host.resolve(file);
    if (active.has(real) || depth > MAX_DEPTH) {
      result.unknown.push(`${from}: ${display(file)} sources itself (cycle); not followed again`);
      return;
    }
    // The evaluation depends on the environment and on which scripts are being sourced (cycles):
    // the same script with the same of both does the same again, and says nothing new.
    const key = memoKey(real, active, result.env);
    const before = key === null ? undefined : done.get(key);
    if (before) {
      result.env.clear();
      for (const [k, v] of before.env) result.env.set(k, v);
      return;
    }
    budget.spend('sources', 1, () => from);
    active.add(real);
    new Script(file, text, host, result, budget, (f, line) => run(f, `${display(file)}:${line}`, depth + 1)).run();
    active.delete(real);
    if (key !== null) done.set(key, { env: [...result.env] });
  };
  run(top, 'top', 0);
  return result;
}

/** Environments larger than this are not remembered (hashing them for every sourcing would cost more). */
const MEMO_ENV_LIMIT = 256 * 1024;

/** A digest of what an evaluation depends on, or null when the environment is too large to remember. */
function memoKey(real: string, active: Set<string>, env: Map<string, string>): string | null {
  let size = 0;
  for (const [k, v] of env) size += k.length + v.length + 2;
  if (size > MEMO_ENV_LIMIT) return null;
  const h = crypto.createHash('sha256');
  for (const part of [real, ...active, '']) h.update(part + '\0', 'latin1');
  for (const [k, v] of env) h.update(`${k}=${v}\0`, 'latin1');
  return h.digest('base64');
}

type Cond = boolean | null; // null: cannot tell

class Script {
  /** if-nesting: is the current branch running, has a branch of this if run already, was the if itself in a running branch. */
  private readonly ifs: { running: boolean; taken: boolean; outer: boolean }[] = [];
  private skipDepth = 0; // inside a function body, case or loop we do not follow
  private skipEnd: RegExp | null = null;

  constructor(
    private readonly file: string,
    private readonly text: string,
    private readonly host: ScriptHost,
    private readonly out: ShellResult,
    private readonly budget: Budget,
    private readonly source: (file: string, line: number) => void,
  ) {}

  private get running(): boolean {
    return this.ifs.every((f) => f.running);
  }

  run(): void {
    const lines = this.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i]!.replace(/\r$/, '');
      const lineNo = i + 1;
      while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!.replace(/\r$/, '');
      this.budget.spend('lines', 1, () => `${display(this.file)}:${lineNo}`);
      for (const stmt of splitStatements(line)) this.statement(stmt, lineNo);
    }
  }

  /** An assignment; a value beyond LIMITS.value stops the evaluation (`X=$X$X` sourced 30 times is 1 GiB). */
  private set(name: string, value: string, line: number): void {
    if (value.length > LIMITS.value) {
      throw new InputError(`${display(this.file)}:${line}: setup script evaluation stopped: ${name} would be longer than ${LIMITS.value} characters (a hostile or runaway setup chain?)`);
    }
    this.out.env.set(name, value);
  }

  private unknown(line: number, what: string): void {
    this.out.unknown.push(`${display(this.file)}:${line}: ${what}`);
  }

  private statement(stmt: { words: string[]; op: string }[], line: number): void {
    // A chain `a && b || c`: each part runs depending on the last status.
    let last: Cond = true;
    for (let k = 0; k < stmt.length; k++) {
      const { words } = stmt[k]!;
      if (k > 0) {
        const prevOp = stmt[k - 1]!.op;
        if (prevOp === '&&' && last === false) continue;
        if (prevOp === '||' && last === true) continue;
      }
      last = this.simple(words, line);
    }
  }

  /** One simple command (raw words, quotes still in). Returns its status when it can be known. */
  private simple(raw: string[], line: number): Cond {
    if (raw.length === 0) return true;
    const w0 = raw[0]!;
    // Blocks we do not follow: function bodies, case, loops.
    if (this.skipDepth > 0) {
      if (this.skipEnd!.test(w0)) this.skipDepth--;
      else if (/^(case|for|while|until)$/.test(w0) || /^[A-Za-z_][A-Za-z0-9_]*\(\)$/.test(w0) || w0 === 'function') this.skipDepth++;
      return null;
    }
    if (w0 === 'case' || w0 === 'for' || w0 === 'while' || w0 === 'until' || w0 === 'function' || /^[A-Za-z_][A-Za-z0-9_]*\(\)$/.test(w0) || raw[1] === '()') {
      if (this.running) this.unknown(line, `'${w0}' block not evaluated`);
      this.skipDepth = 1;
      this.skipEnd = w0 === 'case' ? /^esac$/ : w0 === 'for' || w0 === 'while' || w0 === 'until' ? /^done$/ : /^}$/;
      // A one-line function or loop closes on the same line.
      if (raw.some((w, i) => i > 0 && this.skipEnd!.test(w))) this.skipDepth = 0;
      return null;
    }
    if (w0 === 'if' || w0 === 'elif') {
      const cond = this.running || w0 === 'elif' ? this.condition(raw.slice(1), line) : false;
      if (w0 === 'if') {
        const outer = this.running;
        const run = outer && cond !== false;
        this.ifs.push({ running: run, taken: run, outer });
      } else {
        const f = this.ifs[this.ifs.length - 1];
        if (!f) return null;
        f.running = f.outer && !f.taken && cond !== false;
        f.taken ||= f.running;
      }
      return cond;
    }
    if (w0 === 'then' || w0 === 'do') return this.simple(raw.slice(1), line);
    if (w0 === 'else') {
      const f = this.ifs[this.ifs.length - 1];
      if (f) {
        f.running = f.outer && !f.taken;
        f.taken = true;
      }
      return this.simple(raw.slice(1), line);
    }
    if (w0 === 'fi') {
      this.ifs.pop();
      return this.simple(raw.slice(1), line);
    }
    if (!this.running) return null;

    // Leading assignments, then the command.
    let i = 0;
    const assigns: [string, string][] = [];
    while (i < raw.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(raw[i]!)) {
      const eq = raw[i]!.indexOf('=');
      assigns.push([raw[i]!.slice(0, eq), this.expand(raw[i]!.slice(eq + 1), line)]);
      i++;
    }
    if (i === raw.length) {
      for (const [k, v] of assigns) this.set(k, v, line);
      return true;
    }
    const cmd = raw[i]!;
    const args = raw.slice(i + 1);
    switch (cmd) {
      case 'export':
      case 'declare':
      case 'typeset':
      case 'local':
      case 'readonly':
        for (const a of args) {
          if (a.startsWith('-')) continue;
          const eq = a.indexOf('=');
          if (eq > 0) this.set(a.slice(0, eq), this.expand(a.slice(eq + 1), line), line);
        }
        return true;
      case 'unset':
        for (const a of args) if (!a.startsWith('-')) this.out.env.delete(a);
        return true;
      case '.':
      case 'source': {
        if (args.length === 0) return null;
        const target = this.expand(args[0]!, line);
        if (!target.startsWith('/')) {
          this.unknown(line, `sources '${display(target)}', a relative path (the working directory is unknown)`);
          return null;
        }
        this.source(normalise(target), line);
        return true;
      }
      case '[':
      case 'test':
        return this.condition(raw.slice(i), line);
      case 'true':
      case ':':
        return true;
      case 'false':
        return false;
      case 'return':
      case 'exit':
        // Stop this script: what follows is for the failure case in setup scripts we model.
        this.ifs.length = 0;
        this.ifs.push({ running: false, taken: true, outer: false });
        return null;
      default:
        return null; // echo, alias, cd, ...: no effect on what we track
    }
  }

  /** `[ … ]` / `test …`; null when it cannot be decided. */
  private condition(words: string[], line: number): Cond {
    let w = words;
    if (w[0] === '[' || w[0] === 'test') w = w.slice(1);
    if (w[w.length - 1] === ']') w = w.slice(0, -1);
    let negate = false;
    if (w[0] === '!') {
      negate = true;
      w = w.slice(1);
    }
    const v = (x: string) => this.expand(x, line);
    let r: Cond = null;
    if (w.length === 2) {
      const [op, a] = [w[0]!, v(w[1]!)];
      if (op === '-z') r = a === '';
      else if (op === '-n') r = a !== '';
      else if (op === '-d') r = a.startsWith('/') ? this.host.kind(normalise(a)) === 'dir' : null;
      else if (op === '-f' || op === '-r' || op === '-s') r = a.startsWith('/') ? this.host.kind(normalise(a)) === 'file' : null;
      else if (op === '-e') r = a.startsWith('/') ? this.host.kind(normalise(a)) !== null : null;
    } else if (w.length === 3 && (w[1] === '=' || w[1] === '==' || w[1] === '!=')) {
      const eq = v(w[0]!) === v(w[2]!);
      r = w[1] === '!=' ? !eq : eq;
    } else if (w.length === 1) {
      r = v(w[0]!) !== '';
    }
    return r === null ? null : negate ? !r : r;
  }

  /** How deep `${…}` and `$(…)` are nested in the word being expanded. */
  private nesting = 0;

  /** Expand one word: quotes removed, parameters and the command substitutions we understand. */
  expand(word: string, line: number): string {
    // Each level rescans its text and takes a JS stack frame: 5,000 levels overflowed the stack.
    if (this.nesting >= LIMITS.nesting) {
      throw new InputError(`${display(this.file)}:${line}: setup script evaluation stopped: \${…} or \$(…) nested more than ${LIMITS.nesting} deep (a hostile or runaway setup chain?)`);
    }
    this.nesting++;
    try {
      return this.expandWord(word, line);
    } finally {
      this.nesting--;
    }
  }

  private expandWord(word: string, line: number): string {
    let out = '';
    let i = 0;
    let dq = false;
    while (i < word.length) {
      const c = word[i]!;
      if (c === "'" && !dq) {
        const end = word.indexOf("'", i + 1);
        out += word.slice(i + 1, end < 0 ? word.length : end);
        i = end < 0 ? word.length : end + 1;
      } else if (c === '"') {
        dq = !dq;
        i++;
      } else if (c === '\\' && i + 1 < word.length) {
        out += word[i + 1];
        i += 2;
      } else if (c === '$' && word[i + 1] === '{') {
        const end = matching(word, i + 1, '{', '}');
        out += this.parameter(word.slice(i + 2, end), line);
        i = end + 1;
      } else if (c === '$' && word[i + 1] === '(' && word[i + 2] !== '(') {
        const end = matching(word, i + 1, '(', ')');
        out += this.substitute(word.slice(i + 2, end), line);
        i = end + 1;
      } else if (c === '`') {
        const end = word.indexOf('`', i + 1);
        out += this.substitute(word.slice(i + 1, end < 0 ? word.length : end), line);
        i = end < 0 ? word.length : end + 1;
      } else if (c === '$' && /[A-Za-z_0-9]/.test(word[i + 1] ?? '')) {
        const m = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9]/.exec(word.slice(i + 1))!;
        out += this.variable(m[0]);
        i += 1 + m[0].length;
      } else {
        out += c;
        i++;
      }
    }
    return out;
  }

  private variable(name: string): string {
    if (name === '0' || name === 'BASH_SOURCE') return this.file;
    return this.out.env.get(name) ?? '';
  }

  private parameter(body: string, line: number): string {
    if (/^BASH_SOURCE(\[0\])?$/.test(body)) return this.file;
    const m = /^([A-Za-z_][A-Za-z0-9_]*|[0-9])(?:(:?[-+=?])(.*)|(%%|%|##|#)(.*))?$/s.exec(body);
    if (!m) {
      this.unknown(line, `\${${body}} not understood`);
      return '';
    }
    const name = m[1]!;
    const value = this.variable(name);
    const set = name === '0' || this.out.env.has(name);
    if (m[2]) {
      const colon = m[2].startsWith(':');
      const op = m[2].slice(-1);
      const present = colon ? value !== '' : set;
      const word = () => this.expand(m[3]!, line);
      if (op === '-') return present ? value : word();
      if (op === '=') {
        if (present) return value;
        const w = word();
        this.set(name, w, line);
        return w;
      }
      if (op === '+') return present ? word() : '';
      return value; // ${V:?msg}
    }
    if (m[4]) {
      const pattern = this.expand(m[5]!, line);
      try {
        return trimPattern(value, m[4], pattern, (cells) => this.budget.spend('matching', cells, () => `${display(this.file)}:${line}`));
      } catch (err) {
        if (!(err instanceof PatternError)) throw err;
        this.unknown(line, `\${${body}}: ${err.message}`);
        return value;
      }
    }
    return value;
  }

  /** `$(dirname X)`, `$(basename X)`, `$(cd X; pwd)`, `$(cd X && pwd -P)`; others are unknown. */
  private substitute(cmd: string, line: number): string {
    const words = splitStatements(cmd).flat().flatMap((s) => s.words);
    if (words[0] === 'dirname' && words.length === 2) {
      const p = this.expand(words[1]!, line);
      const i = p.replace(/\/+$/, '').lastIndexOf('/');
      return i < 0 ? '.' : i === 0 ? '/' : p.slice(0, i);
    }
    if (words[0] === 'basename' && words.length === 2) return this.expand(words[1]!, line).replace(/\/+$/, '').replace(/^.*\//, '');
    if (words[0] === 'cd' && words.length === 3 && words[2] === 'pwd') {
      const p = this.expand(words[1]!, line); // the logical path, as pwd prints it
      if (p.startsWith('/')) return normalise(p);
    }
    if (words[0] === 'cd' && words.slice(2).join(' ') === 'pwd -P') {
      const p = this.expand(words[1]!, line);
      if (p.startsWith('/')) return this.host.resolve(normalise(p));
    }
    this.unknown(line, `command substitution '${display(cmd)}' not evaluated`);
    return '';
  }
}

/** Index of the bracket closing the one at `open`. */
function matching(s: string, open: number, o: string, c: string): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '\\') {
      i++;
      continue;
    }
    if (s[i] === o) depth++;
    else if (s[i] === c && --depth === 0) return i;
  }
  return s.length;
}

/**
 * `${V%pat}` and friends, with shell patterns (`*`, `?`, `[...]`): every cut that matches is found in
 * one O(n·m) pass (pattern.ts), not with a backtracking RegExp per cut. `spend` is told the cost first.
 */
export function trimPattern(value: string, op: string, pattern: string, spend: (cells: number) => void = () => {}): string {
  const w = compileWildcard(pattern);
  spend(searchCost(w, value));
  if (op === '%' || op === '%%') {
    // Suffix removal: shortest (%) or longest (%%) matching suffix.
    const ok = matchingSuffixes(w, value);
    if (op === '%') {
      for (let k = value.length; k >= 0; k--) if (ok[k]) return value.slice(0, k);
    } else {
      for (let k = 0; k <= value.length; k++) if (ok[k]) return value.slice(0, k);
    }
  } else {
    const ok = matchingPrefixes(w, value);
    if (op === '#') {
      for (let k = 0; k <= value.length; k++) if (ok[k]) return value.slice(k);
    } else {
      for (let k = value.length; k >= 0; k--) if (ok[k]) return value.slice(k);
    }
  }
  return value;
}

/** Lexical normalisation (`//`, `.`, `..`), as the setup scripts' own path arithmetic intends. */
export const normalise = normalizeAbsolute;

/**
 * Statements of a line: split on `;`, `&&`, `||` and words on blanks, outside quotes and `$(…)`;
 * `#` at the start of a word starts a comment. Each statement is its chain of simple commands.
 */
export function splitStatements(line: string): { words: string[]; op: string }[][] {
  const stmts: { words: string[]; op: string }[][] = [];
  let chain: { words: string[]; op: string }[] = [];
  let words: string[] = [];
  let word = '';
  let inWord = false;
  const endWord = () => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  const endCommand = (op: string) => {
    endWord();
    if (words.length > 0 || op !== '') chain.push({ words, op });
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"' || c === '`') {
      const end = c === '"' ? closingQuote(line, i) : line.indexOf(c, i + 1);
      const stop = end < 0 ? line.length - 1 : end;
      word += line.slice(i, stop + 1);
      inWord = true;
      i = stop;
    } else if (c === '$' && (line[i + 1] === '(' || line[i + 1] === '{')) {
      const end = matching(line, i + 1, line[i + 1]!, line[i + 1] === '(' ? ')' : '}');
      word += line.slice(i, end + 1);
      inWord = true;
      i = end;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line.slice(i, i + 2);
      inWord = true;
      i++;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === ' ' || c === '\t') {
      endWord();
    } else if (c === ';' || c === '\n') {
      if (line[i + 1] === ';') i++;
      endCommand('');
      if (chain.length > 0) stmts.push(chain);
      chain = [];
    } else if ((c === '&' || c === '|') && line[i + 1] === c) {
      endCommand(c + c);
      i++;
    } else if (c === '&' || c === '|') {
      endCommand(''); // background or pipe: treat the parts as separate commands
      if (chain.length > 0) stmts.push(chain);
      chain = [];
    } else {
      word += c;
      inWord = true;
    }
  }
  endCommand('');
  if (chain.length > 0) stmts.push(chain);
  return stmts.map((ch) => ch.filter((c) => c.words.length > 0));
}

function closingQuote(s: string, open: number): number {
  for (let i = open + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '$' && s[i + 1] === '(') i = matching(s, i + 1, '(', ')');
    else if (s[i] === '"') return i;
  }
  return -1;
}

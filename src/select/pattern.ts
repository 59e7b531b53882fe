// Shell wildcard patterns (`*`, `?`, `[...]`, `\x`) matched without regular expressions.
//
// Patterns come from input we do not control (setup scripts, ld.so.conf includes, recipe
// conditions). A pattern turned into a backtracking RegExp (`*a*a*a*b` → `^.*a.*a.*a.*b$`) takes
// time exponential in the number of stars; bash matches the same in milliseconds. Here every token
// but `*` matches exactly one character, so a whole-string match needs backtracking only to the
// last `*` (linear in practice, O(n·m) at worst), and prefix/suffix searches (`${V#pat}`,
// `${V%pat}`) are one O(n·m) table pass instead of a match per cut.

/** A token: `*`, `?`, one literal character, or a bracket expression. */
type Token =
  | { kind: 'star' }
  | { kind: 'any' }
  | { kind: 'char'; c: string }
  | { kind: 'class'; negate: boolean; chars: string; ranges: [string, string][] };

export interface Wildcard {
  /** The pattern as written, for messages. */
  text: string;
  tokens: Token[];
}

/** A pattern that cannot be matched (a reversed range such as `[z-a]`). */
export class PatternError extends Error {}

/**
 * Compile a pattern. An unclosed `[` is a literal `[` (as in the shell); a range whose ends are in
 * the wrong order (`[z-a]`) is an error, since no character could match it and a RegExp refuses it.
 */
export function compileWildcard(text: string): Wildcard {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '*') {
      // Runs of stars are one star: keeps the matcher's table small.
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star' });
      i++;
    } else if (c === '?') {
      tokens.push({ kind: 'any' });
      i++;
    } else if (c === '\\' && i + 1 < text.length) {
      tokens.push({ kind: 'char', c: text[i + 1]! });
      i += 2;
    } else if (c === '[') {
      const cls = bracket(text, i);
      if (cls) {
        tokens.push(cls.token);
        i = cls.end;
      } else {
        tokens.push({ kind: 'char', c });
        i++;
      }
    } else {
      tokens.push({ kind: 'char', c });
      i++;
    }
  }
  return { text, tokens };
}

/** A bracket expression: its members, whether it is negated, and the index just past its `]`. */
export interface Bracket {
  negate: boolean;
  chars: string;
  ranges: [string, string][];
  end: number;
}

/**
 * The bracket expression starting at `open` (`[abc]`, `[!a-z]`, `[^[:digit:]]`, `[]x]`), or null
 * when it is not closed. Throws PatternError for a range out of order or an unknown class.
 */
export function parseBracket(text: string, open: number): Bracket | null {
  const b = bracket(text, open);
  if (!b) return null;
  const t = b.token as Extract<Token, { kind: 'class' }>;
  return { negate: t.negate, chars: t.chars, ranges: t.ranges, end: b.end };
}

/** The bracket expression starting at `open`, or null when it is not closed (a literal `[`). */
function bracket(text: string, open: number): { token: Token; end: number } | null {
  let i = open + 1;
  const negate = text[i] === '!' || text[i] === '^';
  if (negate) i++;
  let chars = '';
  const ranges: [string, string][] = [];
  let first = true;
  while (i < text.length) {
    let c = text[i]!;
    if (c === ']' && !first) return { token: { kind: 'class', negate, chars, ranges }, end: i + 1 };
    first = false;
    if (c === '[' && text[i + 1] === ':') {
      // POSIX class [:name:]: taken as its ASCII members.
      const close = text.indexOf(':]', i + 2);
      const members = close > 0 ? POSIX_CLASSES[text.slice(i + 2, close)] : undefined;
      if (members === undefined) throw new PatternError(`'${text}': unknown character class ${text.slice(i, close > 0 ? close + 2 : text.length)}`);
      for (const r of members) ranges.push(r);
      i = close + 2;
      continue;
    }
    if (c === '\\' && i + 1 < text.length) c = text[++i]!;
    if (text[i + 1] === '-' && i + 2 < text.length && text[i + 2] !== ']') {
      let hi = text[i + 2]!;
      let next = i + 3;
      if (hi === '\\' && i + 3 < text.length) {
        hi = text[i + 3]!;
        next = i + 4;
      }
      if (hi < c) throw new PatternError(`'${text}': range ${c}-${hi} is out of order`);
      ranges.push([c, hi]);
      i = next;
      continue;
    }
    chars += c;
    i++;
  }
  return null;
}

const POSIX_CLASSES: Record<string, [string, string][]> = {
  alpha: [['a', 'z'], ['A', 'Z']],
  digit: [['0', '9']],
  alnum: [['a', 'z'], ['A', 'Z'], ['0', '9']],
  upper: [['A', 'Z']],
  lower: [['a', 'z']],
  space: [[' ', ' '], ['\t', '\r']],
  blank: [[' ', ' '], ['\t', '\t']],
  punct: [['!', '/'], [':', '@'], ['[', '`'], ['{', '~']],
  xdigit: [['0', '9'], ['a', 'f'], ['A', 'F']],
  print: [[' ', '~']],
  graph: [['!', '~']],
  cntrl: [['\0', '\x1f'], ['\x7f', '\x7f']],
  word: [['a', 'z'], ['A', 'Z'], ['0', '9'], ['_', '_']],
};

function one(t: Token, ch: string): boolean {
  switch (t.kind) {
    case 'any':
      return true;
    case 'char':
      return t.c === ch;
    case 'class': {
      const inside = t.chars.includes(ch) || t.ranges.some(([lo, hi]) => ch >= lo && ch <= hi);
      return inside !== t.negate;
    }
    case 'star':
      return false;
  }
}

/** Does the whole of `s` match? Backtracks only to the last star: O(n·m) at worst. */
export function wildcardMatches(w: Wildcard, s: string): boolean {
  const t = w.tokens;
  let i = 0;
  let j = 0;
  let star = -1;
  let resume = 0;
  while (i < s.length) {
    if (j < t.length && t[j]!.kind === 'star') {
      star = j++;
      resume = i;
    } else if (j < t.length && one(t[j]!, s[i]!)) {
      i++;
      j++;
    } else if (star >= 0) {
      j = star + 1;
      i = ++resume;
    } else {
      return false;
    }
  }
  while (j < t.length && t[j]!.kind === 'star') j++;
  return j === t.length;
}

/** Table cells a prefix/suffix search of `s` costs (for callers that keep a budget). */
export function searchCost(w: Wildcard, s: string): number {
  return (s.length + 1) * (w.tokens.length + 1);
}

/**
 * For each k in 0..n: does `s.slice(0, k)` match? One pass over an (n+1)×(m+1) table, a row at a time.
 */
export function matchingPrefixes(w: Wildcard, s: string): boolean[] {
  const t = w.tokens;
  const m = t.length;
  // row[j]: the first j tokens match s.slice(0, k) for the current k.
  let row = new Array<boolean>(m + 1).fill(false);
  row[0] = true;
  for (let j = 1; j <= m; j++) row[j] = row[j - 1]! && t[j - 1]!.kind === 'star';
  const out = [row[m]!];
  for (let k = 1; k <= s.length; k++) {
    const next = new Array<boolean>(m + 1).fill(false);
    const ch = s[k - 1]!;
    for (let j = 1; j <= m; j++) {
      const tok = t[j - 1]!;
      next[j] = tok.kind === 'star' ? next[j - 1]! || row[j]! : row[j - 1]! && one(tok, ch);
    }
    row = next;
    out.push(row[m]!);
  }
  return out;
}

/** For each k in 0..n: does `s.slice(k)` match? The mirror of matchingPrefixes. */
export function matchingSuffixes(w: Wildcard, s: string): boolean[] {
  const reversed: Wildcard = { text: w.text, tokens: [...w.tokens].reverse() };
  const rev = matchingPrefixes(reversed, s.split('').reverse().join(''));
  // rev[len] says whether the last `len` characters match, i.e. s.slice(n - len).
  return rev.reverse();
}

// JSON documents from others (image layouts, archives, registries, auth files, plans), read safely
// and checked against the types we rely on before anything uses them. `readJsonFile` opens a
// regular file only (a FIFO would block, /dev/zero would never end) and refuses one larger than
// its limit before reading a byte. The checkers are a tiny schema language: each returns the very
// value it was given, typed (unknown fields are kept, so a base config carried over stays byte for
// byte the same), or throws InputError naming the document and the JSON path:
//   `oci:good: manifest sha256:ab…: layers[0]: expected an object, got null`.
// It lives in util (not model) because it does I/O; it depends on model/errors only.
import * as fs from 'node:fs';
import { InputError, describeSystemError } from '../model/errors.js';

/** Manifests, indexes, oci-layout, docker's manifest.json: what registries accept for a manifest. */
export const MAX_DOCUMENT = 4 << 20;
/** Image configs are blobs (no registry limit); a long history stays well under this. */
export const MAX_CONFIG = 16 << 20;

/** Why a value does not fit, and where (a JSON path relative to the document). */
class Mismatch extends Error {
  constructor(
    readonly at: string,
    readonly why: string,
  ) {
    super(why);
  }
}

export interface Check<T> {
  (value: unknown, at: string): T;
  /** The field may be absent (obj() only). */
  optional?: true;
}
type Optional<T> = Check<T> & { optional: true };
type Out<C> = C extends Check<infer T> ? T : never;
type Fields = Record<string, Check<unknown>>;
type Required<S extends Fields> = { [K in keyof S as S[K] extends Optional<unknown> ? never : K]: Out<S[K]> };
type Optionals<S extends Fields> = { [K in keyof S as S[K] extends Optional<unknown> ? K : never]?: Out<S[K]> };
export type Infer<C> = Out<C>;

/** `text` on one line and at most `max` characters: control characters escaped the way JSON writes them. */
export function singleLine(text: string, max = Infinity): string {
  let s = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  if (s.length > max) s = s.slice(0, max) + '…';
  return s;
}

/** What a value is, for `expected X, got Y`: its type, and the value itself when short. */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return `the string "${singleLine(v, 40)}"`;
    case 'number':
      return `the number ${v}`;
    case 'boolean':
      return String(v);
    case 'object':
      return 'an object';
    default:
      return 'nothing';
  }
}

const fail = (at: string, expected: string, v: unknown): never => {
  throw new Mismatch(at, `expected ${expected}, got ${describe(v)}`);
};

const IDENT = /^[A-Za-z_$][\w$]*$/;
function member(at: string, key: string): string {
  const k = IDENT.test(key) ? key : JSON.stringify(singleLine(key, 60));
  return IDENT.test(key) ? (at === '' ? k : `${at}.${k}`) : `${at}[${k}]`;
}

export const str: Check<string> = (v, at) => (typeof v === 'string' ? v : fail(at, 'a string', v));
export const bool: Check<boolean> = (v, at) => (typeof v === 'boolean' ? v : fail(at, 'true or false', v));
export const num: Check<number> = (v, at) => (typeof v === 'number' && Number.isFinite(v) ? v : fail(at, 'a number', v));
export const int: Check<number> = (v, at) => (Number.isSafeInteger(v) ? (v as number) : fail(at, 'an integer', v));
export const uint: Check<number> = (v, at) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(at, 'a non-negative integer', v));
/** A byte count: a non-negative safe integer (a string "198" is not one). */
export const size: Check<number> = (v, at) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(at, 'a size (a whole number of bytes)', v));
/** Anything at all (kept as is). */
export const any: Check<unknown> = (v) => v;

// image-spec descriptor.md: algorithm ":" encoded; the registered algorithms have fixed hex lengths.
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
export const digest: Check<string> = (v, at) => {
  if (typeof v !== 'string' || !DIGEST.test(v)) return fail(at, 'a digest (algorithm:hex)', v);
  const [algorithm, hex] = [v.slice(0, v.indexOf(':')), v.slice(v.indexOf(':') + 1)];
  const length = HEX_LENGTH[algorithm];
  if (length !== undefined && (hex.length !== length || !/^[a-f0-9]+$/.test(hex))) return fail(at, `a ${algorithm} digest (${length} lowercase hex digits)`, v);
  return v;
};

export function oneOf<const T extends string>(...values: T[]): Check<T> {
  return (v, at) => (values.includes(v as T) ? (v as T) : fail(at, values.map((x) => `"${x}"`).join(' or '), v));
}

export function optional<T>(check: Check<T>): Optional<T> {
  const c = ((v: unknown, at: string) => check(v, at)) as Optional<T>;
  c.optional = true;
  return c;
}

export function nullable<T>(check: Check<T>): Check<T | null> {
  return (v, at) => (v === null ? null : check(v, at));
}

export function arr<T>(check: Check<T>, what = 'an array'): Check<T[]> {
  return (v, at) => {
    if (!Array.isArray(v)) return fail(at, what, v);
    for (let i = 0; i < v.length; i++) check(v[i], `${at}[${i}]`);
    return v as T[];
  };
}

/** An object with string keys whose values all pass `check` (Labels, annotations). */
export function map<T>(check: Check<T>): Check<Record<string, T>> {
  return (v, at) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(at, 'an object', v);
    for (const [k, x] of Object.entries(v)) check(x, member(at, k));
    return v as Record<string, T>;
  };
}

/** An object with these fields (others are allowed and kept). */
export function obj<S extends Fields>(fields: S): Check<Required<S> & Optionals<S>> {
  return (v, at) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(at, 'an object', v);
    for (const [k, check] of Object.entries(fields)) {
      // Own fields only: a document without "constructor" must not find Object.prototype's.
      const x = Object.hasOwn(v, k) ? (v as Record<string, unknown>)[k] : undefined;
      if (x === undefined) {
        if (!check.optional) throw new Mismatch(member(at, k), 'missing');
        continue;
      }
      check(x, member(at, k));
    }
    return v as Required<S> & Optionals<S>;
  };
}

/** `value` checked against `check`; InputError `<label>: <path>: expected …, got …` otherwise. */
export function checkJson<T>(check: Check<T>, value: unknown, label: string): T {
  try {
    return check(value, '');
  } catch (err) {
    if (err instanceof Mismatch) throw new InputError(`${label}: ${err.at === '' ? '' : `${err.at}: `}${err.why}`);
    throw err;
  }
}

/** Bytes as JSON, checked; InputError naming `label` when it is not JSON or not of the right shape. */
export function parseJson<T>(bytes: Buffer | string, check: Check<T>, label: string): T {
  let value: unknown;
  try {
    value = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch {
    throw new InputError(`${label}: not valid JSON`);
  }
  return checkJson(check, value, label);
}

export interface ReadOptions {
  /** Refuse larger files before reading them. */
  limit: number;
  /** Refuse a symbolic link as the last component (documents of a layout that nothing should redirect). */
  noFollow?: boolean;
}

/**
 * A regular file's bytes, at most `limit` of them: opened without blocking (a FIFO would wait for
 * a writer), then fstat'ed, so what is read is what was checked. InputError naming `label`.
 */
export function readRegularFile(file: string, label: string, opts: ReadOptions): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | (opts.noFollow ? fs.constants.O_NOFOLLOW : 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (opts.noFollow && code === 'ELOOP') throw new InputError(`${label}: is a symbolic link (refused: it could point anywhere)`);
    throw new InputError(`${label}: ${describeSystemError(err)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${label}: not a regular file (${fileKind(st)})`);
    if (st.size > opts.limit) throw new InputError(`${label}: ${st.size} bytes, more than the ${opts.limit} allowed for this document`);
    // One byte more than fstat said: a file that grew meanwhile is refused, not read past the limit.
    const buf = Buffer.alloc(st.size + 1);
    let n = 0;
    for (let got; n < buf.length && (got = fs.readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += got;
    if (n > st.size) throw new InputError(`${label}: changed while it was read`);
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${label}: ${describeSystemError(err)}`);
  } finally {
    fs.closeSync(fd);
  }
}

function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** `readRegularFile` then `parseJson`. */
export function readJsonFile<T>(file: string, check: Check<T>, label: string, opts: ReadOptions): { value: T; bytes: Buffer } {
  const bytes = readRegularFile(file, label, opts);
  return { value: parseJson(bytes, check, label), bytes };
}

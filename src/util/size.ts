// Sizes as options take them: bytes, or with a K, M, G or T suffix (powers of 1024), optionally
// followed by B or iB (`128K`, `16MiB`, `64G`). One parser for every option that takes a size.
import { InputError } from '../model/errors.js';

export interface SizeRule {
  /** Smallest and largest allowed (default 1 and Number.MAX_SAFE_INTEGER). */
  min?: number;
  max?: number;
  /** What the message says after `OPTION TEXT: ` when the text is not an allowed size. */
  expected: string;
}

const SIZE = /^(\d+)([kKmMgGtT]?)(i?[bB])?$/;

/** `text` as bytes, or an InputError `${option} ${text}: ${rule.expected}`. */
export function parseSize(text: string, option: string, rule: SizeRule): number {
  const m = SIZE.exec(text.trim());
  const n = m ? Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  const ok = m !== null && Number.isSafeInteger(n) && n >= (rule.min ?? 1) && n <= (rule.max ?? Number.MAX_SAFE_INTEGER);
  if (!ok) throw new InputError(`${option} ${text}: ${rule.expected}`);
  return n;
}

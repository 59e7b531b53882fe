// Sizes as options take them: bytes, or with a K, M, G or T suffix (powers of 1024), optionally
// followed by B or iB (`128K`, `16MiB`, `64G`). One parser for every option that takes a size,
// and the one way sizes are shown to people (`humanBytes`).
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

/** Bytes as people read them in summaries, progress lines and reports: `512 B`, `1.5 MiB`. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

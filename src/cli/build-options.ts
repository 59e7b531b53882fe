// Parsing and checking of build options that need more than commander's choices.
import { InputError } from '../model/errors.js';
import type { MtimePolicy } from '../compose/image.js';

/** --block-size: bytes, or with a K/M suffix; a power of two from 4 KiB to 1 MiB. */
export function parseBlockSize(text: string): number {
  const m = /^(\d+)([kKmM]?)(i?[bB])?$/.exec(text.trim());
  const n = m ? Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2]!) ? 1024 : 1 << 20) : NaN;
  if (!m || !Number.isInteger(Math.log2(n)) || n < 4096 || n > 1 << 20) {
    throw new InputError(`--block-size ${text}: must be a power of two from 4K to 1M (e.g. 131072, 128K, 1M)`);
  }
  return n;
}

/** --mtime keep | clamp | SECONDS */
export function parseMtime(text: string): MtimePolicy {
  if (text === 'keep' || text === 'clamp') return text;
  if (/^\d+$/.test(text) && Number(text) <= 0xffffffff) return Number(text);
  throw new InputError(`--mtime ${text}: expected keep, clamp (to SOURCE_DATE_EPOCH) or a time in seconds since 1970`);
}

/** --owner UID:GID (numeric) */
export function parseOwner(text: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m || Number(m[1]) > 0xffffffff || Number(m[2]) > 0xffffffff) throw new InputError(`--owner ${text}: expected numeric UID:GID, e.g. 0:0`);
  return [Number(m[1]), Number(m[2])];
}

/** --threads N: compression threads, 1 to 256. */
export function parseThreads(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 256) throw new InputError(`--threads ${text}: expected a number of threads from 1 to 256`);
  return n;
}

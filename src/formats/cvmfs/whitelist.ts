// The body of `.cvmfswhitelist` (cvmfs/whitelist.cc ParseWhitelist, CreateString):
//
//   YYYYMMDDhhmmss        created (UTC; cvmfs checks only its length)
//   EYYYYMMDDhhmmss       expires (UTC; the client compares to the hour)
//   N<fqrn>
//   [Vpkcs7]              the letter is also signed as a separate PKCS#7 file
//   [Wcachain]            the certificate must chain to a trusted CA
//   <fingerprint>…        one per line: `AA:BB:…` (SHA-1 of the certificate's DER), `…-RMD160` or
//                         `…-SHAKE128` for those algorithms; text after a space, tab or `#` is a
//                         comment; a line that is no hash is skipped
// Signing and splitting: ./signed.ts.
import { type HashAlgorithm, FormatError, algorithmOfId, printable } from './hash.js';
import { fingerprintOf } from './signed.js';

export interface Whitelist {
  created: Date;
  expires: Date;
  fqrn: string;
  /** Normalised as certificateFingerprint() writes them: `AA:BB:…[-RMD160|-SHAKE128]`. */
  fingerprints: string[];
  /** `Vpkcs7` line. */
  pkcs7?: boolean;
  /** `Wcachain` line. */
  caChain?: boolean;
}

/** `YYYYMMDDhhmmss` (UTC) → Date; null when it is not one. */
function parseTimestamp(text: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(text);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Reject 20151340… rather than let Date roll it over.
  return date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60 ? date : null;
}

export function formatTimestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${String(date.getUTCFullYear()).padStart(4, '0')}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}` + `${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}`;
}

/**
 * A fingerprint line → normalised fingerprint, or null when the line holds no hash
 * (MkFromFingerprint: stop at a space, tab or '#', drop ':', lowercase; the length says the algorithm).
 */
export function parseFingerprint(line: string): string | null {
  const text = line.split(/[ \t#]/, 1)[0]!.replace(/:/g, '').toLowerCase();
  const hex = text.slice(0, 40);
  const algorithm: HashAlgorithm | undefined = algorithmOfId(text.slice(40));
  if (!/^[0-9a-f]{40}$/.test(hex) || algorithm === undefined) return null;
  return fingerprintOf(Buffer.from(hex, 'hex'), algorithm);
}

/** A whitelist body (or the whole file: reading stops at `--`). */
export function parseWhitelist(body: Buffer): Whitelist {
  const lines = body.toString('latin1').split('\n');
  const created = parseTimestamp(lines[0] ?? '');
  if (!created) throw new FormatError(`whitelist line 1: '${printable(lines[0] ?? '')}' is not a YYYYMMDDhhmmss time`);
  const expiresLine = lines[1] ?? '';
  const expires = expiresLine.startsWith('E') ? parseTimestamp(expiresLine.slice(1)) : null;
  if (!expires) throw new FormatError(`whitelist line 2: '${printable(expiresLine)}' is not E followed by a YYYYMMDDhhmmss time`);
  const nameLine = lines[2] ?? '';
  if (!nameLine.startsWith('N') || nameLine.length === 1) throw new FormatError(`whitelist line 3: '${printable(nameLine)}' is not N followed by the repository name`);
  const w: Whitelist = { created, expires, fqrn: nameLine.slice(1), fingerprints: [] };
  let i = 3;
  if (lines[i] === 'Vpkcs7') (w.pkcs7 = true), i++;
  if (lines[i] === 'Wcachain') (w.caChain = true), i++;
  for (; i < lines.length && lines[i] !== '--'; i++) {
    const fingerprint = parseFingerprint(lines[i]!);
    if (fingerprint !== null) w.fingerprints.push(fingerprint);
  }
  return w;
}

/** The whitelist body in CreateString's form. */
export function encodeWhitelist(w: Whitelist): Buffer {
  const lines = [formatTimestamp(w.created), `E${formatTimestamp(w.expires)}`, `N${w.fqrn}`];
  if (w.pkcs7) lines.push('Vpkcs7');
  if (w.caChain) lines.push('Wcachain');
  lines.push(...w.fingerprints);
  for (const line of lines) if (/[\n\r]/.test(line)) throw new Error('a whitelist line cannot hold a newline');
  return Buffer.from(lines.map((l) => `${l}\n`).join(''), 'latin1');
}

/** Whether the whitelist lists this fingerprint (any case, any comment after it). */
export function listsFingerprint(w: Whitelist, fingerprint: string): boolean {
  const wanted = parseFingerprint(fingerprint);
  return wanted !== null && w.fingerprints.some((f) => parseFingerprint(f) === wanted);
}

/**
 * Whether the client takes the whitelist as expired at `now`: it compares the UTC hour only
 * (Whitelist::IsBefore), so a whitelist expiring at 11:55 is expired from 11:00 on.
 */
export function whitelistExpired(w: Whitelist, now: Date): boolean {
  const hour = (d: Date) => Math.floor(d.getTime() / 3_600_000);
  return !(hour(now) < hour(w.expires));
}

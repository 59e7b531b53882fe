// CernVM-FS content hashes (cvmfs/crypto/hash.h): 20-byte digests written as lowercase hex, the
// algorithm named after the hex for everything but SHA-1 (`…-rmd160`, `…-shake128`), and the
// object's kind as one letter after that in object paths (`data/ab/cdef…-rmd160C`).
// The hash of an object is over its stored bytes, i.e. after zlib compression.
import { type Hash, createHash } from 'node:crypto';
import { InputError } from '../../model/errors.js';

export type HashAlgorithm = 'sha1' | 'rmd160' | 'shake128';

export interface ContentHash {
  algorithm: HashAlgorithm;
  /** 20 bytes. */
  digest: Buffer;
}

/**
 * Bytes from a repository that are not what the format says: a malformed manifest, whitelist,
 * hash, catalog field. Callers add the repository and the object; the message says what is wrong.
 */
export class FormatError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

/** The kind of an object, the letter after its hash in its path (kSuffix* in hash.h). */
export type ObjectSuffix = '' | 'C' | 'P' | 'X' | 'H' | 'M' | 'L';

export const DIGEST_SIZE = 20;

/** What follows the hex digits in a hash string, by algorithm (kAlgorithmIds). */
const ALGORITHM_IDS: Readonly<Record<HashAlgorithm, string>> = { sha1: '', rmd160: '-rmd160', shake128: '-shake128' };

/** Node's name of each algorithm (shake128 needs outputLength 20, see newHasher). */
const NODE_NAMES: Readonly<Record<HashAlgorithm, string>> = { sha1: 'sha1', rmd160: 'ripemd160', shake128: 'shake128' };

const HEX40 = /^[0-9a-f]{40}$/;

/** `<40 lowercase hex>[-rmd160|-shake128]` → hash. cvmfs accepts lowercase hex only (HexPtr::IsValid). */
export function parseHashString(text: string): ContentHash {
  const hex = text.slice(0, 2 * DIGEST_SIZE);
  const algorithm = algorithmOfId(text.slice(2 * DIGEST_SIZE));
  if (!HEX40.test(hex) || algorithm === undefined) throw new FormatError(`not a content hash: '${printable(text)}'`);
  return { algorithm, digest: Buffer.from(hex, 'hex') };
}

/** The algorithm whose identifier is `id` ('' is SHA-1). */
export function algorithmOfId(id: string): HashAlgorithm | undefined {
  for (const [algorithm, known] of Object.entries(ALGORITHM_IDS)) if (known === id) return algorithm as HashAlgorithm;
  return undefined;
}

/** The algorithm's identifier as written after the hex ('' for SHA-1). */
export function algorithmId(algorithm: HashAlgorithm): string {
  return ALGORITHM_IDS[algorithm];
}

/** Inverse of parseHashString. */
export function hashString(h: ContentHash): string {
  return h.digest.toString('hex') + ALGORITHM_IDS[h.algorithm];
}

/** Where an object lives under the repository's URL: `data/ab/cdef…[-rmd160][suffix]`. */
export function objectPath(h: ContentHash, suffix: ObjectSuffix): string {
  const text = hashString(h);
  return `data/${text.slice(0, 2)}/${text.slice(2)}${suffix}`;
}

/** A streaming hasher for `algorithm`, with the 20-byte output cvmfs uses for SHAKE-128. */
export function newHasher(algorithm: HashAlgorithm): Hash {
  return algorithm === 'shake128' ? createHash('shake128', { outputLength: DIGEST_SIZE }) : createHash(NODE_NAMES[algorithm]);
}

export function hashBytes(algorithm: HashAlgorithm, data: Uint8Array): ContentHash {
  return { algorithm, digest: newHasher(algorithm).update(data).digest() };
}

export function sameHash(a: ContentHash, b: ContentHash): boolean {
  return a.algorithm === b.algorithm && a.digest.equals(b.digest);
}

/** Text from a file, for a message: at most 80 characters, control characters escaped. */
export function printable(text: string, max = 80): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

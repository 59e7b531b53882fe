// The signed letters of a CernVM-FS repository, `.cvmfspublished` and `.cvmfswhitelist`
// (cvmfs/crypto/signature.cc VerifyLetter, signing_tool.cc, whitelist.cc CreateString):
//
//   <body: text lines, each ending in \n>
//   --
//   <hash of the body as a hash string, e.g. 40 hex digits for SHA-1>
//   <signature: binary, to the end of the file>
//
// The signature is over the hash string's ASCII characters, not over the body. The manifest's is
// RSA PKCS#1 v1.5 with SHA-1 by the repository's certificate key (EVP_Sign); the whitelist's is a
// raw PKCS#1 type-1 block holding the hash string (RSA_private_encrypt), by the master key.
import { X509Certificate, constants, createPrivateKey, createPublicKey, privateEncrypt, publicDecrypt, sign, verify } from 'node:crypto';
import { FormatError, type HashAlgorithm, algorithmId, hashBytes, parseHashString, printable } from './hash.js';

export interface Signed {
  /** Everything before the `--` line, with its last newline. */
  body: Buffer;
  /** The hash line as written (hex, with `-rmd160`/`-shake128` for those algorithms). */
  hashHex: string;
  signature: Buffer;
}

const SEPARATOR = Buffer.from('\n--\n');

/** Body, hash line and signature of a letter; throws FormatError naming what is missing. */
export function splitSigned(file: Buffer): Signed {
  const mark = file.indexOf(SEPARATOR);
  if (mark < 0) throw new FormatError('no "--" line after the body (not a signed file)');
  const hashStart = mark + SEPARATOR.length;
  const hashEnd = file.indexOf(0x0a, hashStart);
  if (hashEnd < 0) throw new FormatError('no hash line after "--"');
  const signature = file.subarray(hashEnd + 1);
  if (signature.length === 0) throw new FormatError('no signature after the hash line');
  return { body: file.subarray(0, mark + 1), hashHex: file.subarray(hashStart, hashEnd).toString('latin1'), signature };
}

/** The hash line cvmfs writes for `body`: hex of its hash, with the algorithm's identifier. */
export function bodyHash(body: Uint8Array, algorithm: HashAlgorithm = 'sha1'): string {
  return hashBytes(algorithm, body).digest.toString('hex') + algorithmId(algorithm);
}

/** Why the hash line does not vouch for the body, or null when it does (VerifyLetter's first check). */
export function bodyHashProblem(s: Signed): string | null {
  let algorithm: HashAlgorithm;
  try {
    algorithm = parseHashString(s.hashHex).algorithm;
  } catch {
    return `the hash line '${printable(s.hashHex)}' is not a content hash`;
  }
  const computed = bodyHash(s.body, algorithm);
  return computed === s.hashHex ? null : `the hash line says ${s.hashHex}, the body hashes to ${computed}`;
}

/** Why the manifest's signature does not verify with the certificate, or null when it does. */
export function manifestSignatureProblem(s: Signed, certificatePem: string): string | null {
  const bad = bodyHashProblem(s);
  if (bad) return bad;
  let key;
  try {
    key = new X509Certificate(certificatePem).publicKey;
  } catch {
    return 'the certificate cannot be read (not a PEM X.509 certificate)';
  }
  let ok = false;
  try {
    ok = verify('sha1', Buffer.from(s.hashHex, 'latin1'), key, s.signature);
  } catch {
    ok = false;
  }
  return ok ? null : 'the signature does not match the certificate';
}

export function verifyManifestSignature(s: Signed, certificatePem: string): boolean {
  return manifestSignatureProblem(s, certificatePem) === null;
}

/** Why the whitelist's signature does not verify with the master public key, or null when it does. */
export function whitelistSignatureProblem(s: Signed, masterPublicKeyPem: string): string | null {
  const bad = bodyHashProblem(s);
  if (bad) return bad;
  let key;
  try {
    key = createPublicKey(masterPublicKeyPem);
  } catch {
    return 'the master public key cannot be read (not a PEM public key)';
  }
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, s.signature);
  } catch {
    return 'the signature does not match the master key';
  }
  return recovered.equals(Buffer.from(s.hashHex, 'latin1')) ? null : 'the signature does not match the master key';
}

export function verifyWhitelistSignature(s: Signed, masterPublicKeyPem: string): boolean {
  return whitelistSignatureProblem(s, masterPublicKeyPem) === null;
}

/** Body, `--`, hash line and signature: the letter as one file. */
function letter(body: Buffer, hashHex: string, signature: Buffer): Buffer {
  return Buffer.concat([body, Buffer.from(`--\n${hashHex}\n`, 'latin1'), signature]);
}

function checkBody(body: Buffer): void {
  // A body not ending in a newline would not split back at its `--` line.
  if (body.length === 0 || body[body.length - 1] !== 0x0a) throw new Error('a signed body must end with a newline');
}

/**
 * The whole `.cvmfspublished` for a manifest body, signed with the certificate's private key.
 * `algorithm` is that of the root catalog's hash (cvmfs hashes the manifest with it).
 */
export function signManifest(body: Buffer, certificateKeyPem: string, algorithm: HashAlgorithm = 'sha1'): Buffer {
  checkBody(body);
  const hashHex = bodyHash(body, algorithm);
  return letter(body, hashHex, sign('sha1', Buffer.from(hashHex, 'latin1'), createPrivateKey(certificateKeyPem)));
}

/** The whole `.cvmfswhitelist` for a whitelist body, signed with the repository's master key. */
export function signWhitelist(body: Buffer, masterPrivateKeyPem: string, algorithm: HashAlgorithm = 'sha1'): Buffer {
  checkBody(body);
  const hashHex = bodyHash(body, algorithm);
  const key = createPrivateKey(masterPrivateKeyPem);
  return letter(body, hashHex, privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(hashHex, 'latin1')));
}

/**
 * The certificate's fingerprint as a whitelist lists it (FingerprintCertificate): the hash of its
 * DER, uppercase hex pairs joined by ':', then the algorithm's identifier in uppercase.
 */
export function certificateFingerprint(pem: string, algorithm: HashAlgorithm = 'sha1'): string {
  const der = new X509Certificate(pem).raw;
  return fingerprintOf(hashBytes(algorithm, der).digest, algorithm);
}

export function fingerprintOf(digest: Buffer, algorithm: HashAlgorithm): string {
  const pairs = digest.toString('hex').toUpperCase().match(/../g) ?? [];
  return pairs.join(':') + algorithmId(algorithm).toUpperCase();
}

// A CernVM-FS repository read over HTTP, trusted as the client trusts it: the whitelist signed by a
// master key from the keys directory, for this repository, not expired, listing the certificate;
// the manifest hashed and signed by that certificate; every object checked against its hash (the
// fetcher does that). Then the root catalog of the revision asked for.
import * as fs from 'node:fs';
import { display } from '../../../model/bytes.js';
import type { Diagnostics } from '../../../model/diagnostics.js';
import { BuildError } from '../../../model/errors.js';
import { type ContentHash, type ObjectSuffix, hashString, objectPath, parseHashString } from '../../../formats/cvmfs/hash.js';
import { type Manifest, parseManifest } from '../../../formats/cvmfs/manifest.js';
import { bodyHash, certificateFingerprint, splitSigned, verifyManifestSignature, verifyWhitelistSignature } from '../../../formats/cvmfs/signed.js';
import { type Whitelist, parseWhitelist, whitelistExpired } from '../../../formats/cvmfs/whitelist.js';
import { openDatabase } from '../../../util/sqlite.js';
import { type Fetcher, NotFoundError, type ObjectRequest } from './fetch/fetcher.js';
import { findMasterKeys } from './keys.js';

/** The most a manifest or whitelist may be: both are a few hundred bytes. */
const MAX_SIGNED_FILE = 1 << 20;

export interface TrustOptions {
  keysDir: string;
  allowExpired: boolean;
  /** --cvmfs-revision N: an older revision, found through the root catalogs' previous_revision chain. */
  revision: number | null;
  /** --cvmfs-tag NAME: a named snapshot from the history database. */
  tag: string | null;
  /** What "now" is for the whitelist's expiry. */
  now: Date;
}

/** A repository, opened and trusted. */
export interface OpenRepository {
  fqrn: string;
  manifest: Manifest;
  whitelist: Whitelist;
  /** The revision read (the manifest's, or the one asked for). */
  revision: number;
  /** The root catalog read, as a hash string. */
  rootCatalog: ContentHash;
  /** The tag asked for, if any. */
  tag: string | null;
  /** When the revision read was published (its root catalog's last_modified; set once it is loaded). */
  published: number;
}

/** The most a catalog or history database may inflate to when nothing says its size; a certificate is small. */
const MAX_DATABASE = 4 * 2 ** 30;
const MAX_CERTIFICATE = 1 << 20;

/**
 * A request for an object of the repository. A data object's size is known exactly (its row); a
 * catalog's from its parent or the manifest (at most that); for the rest, a bound by kind, so that a
 * server cannot make us write without end.
 */
export function objectRequest(fqrn: string, hash: ContentHash, suffix: ObjectSuffix, compressed = true, size?: number): ObjectRequest {
  const base = { fqrn, path: objectPath(hash, suffix), algorithm: hash.algorithm, digestHex: hash.digest.toString('hex'), compressed };
  if (suffix === '' && size !== undefined) return { ...base, exactBytes: size };
  if (suffix === 'X') return { ...base, maxBytes: MAX_CERTIFICATE };
  if (suffix === 'P' && size !== undefined) return { ...base, exactBytes: size };
  return { ...base, maxBytes: size !== undefined && size > 0 ? size : MAX_DATABASE };
}

/**
 * Fetch and check the whitelist and manifest of `fqrn`. Null when no server has the repository
 * (every server answered 404 for its manifest); a failed check throws one line naming it.
 */
export function openRepository(fqrn: string, fetcher: Fetcher, o: TrustOptions, diag: Diagnostics): OpenRepository | null {
  let manifestFile: Buffer;
  try {
    manifestFile = fetcher.fetchFileSync(fqrn, '.cvmfspublished', MAX_SIGNED_FILE);
  } catch (err) {
    if (err instanceof NotFoundError) return null; // every server answered 404: no such repository
    throw err;
  }
  const whitelistFile = fetcher.fetchFileSync(fqrn, '.cvmfswhitelist', MAX_SIGNED_FILE);
  const whitelist = checkWhitelist(fqrn, whitelistFile, o, diag);
  const manifest = checkManifest(fqrn, manifestFile, whitelist, fetcher);
  const { revision, rootCatalog } = chooseRevision(fqrn, manifest, fetcher, o);
  return { fqrn, manifest, whitelist, revision, rootCatalog, tag: o.tag, published: manifest.timestamp };
}

/**
 * Fetch what opening `fqrn` reads first (manifest, whitelist, the manifest's certificate and root
 * catalog) without blocking the main thread, so that openRepository then finds it all at hand:
 * while the main thread blocks on the wire, signals wait (Node runs their handlers when the event
 * loop turns), and a server that accepts and never answers held a SIGTERM for a minute. Nothing
 * is checked here and nothing fails: openRepository checks, and reports, all of it.
 */
export async function fetchRepositoryAhead(fqrn: string, fetcher: Fetcher, o: TrustOptions): Promise<void> {
  const [manifestFile] = await Promise.all([fetcher.fetchFileAhead(fqrn, '.cvmfspublished', MAX_SIGNED_FILE), fetcher.fetchFileAhead(fqrn, '.cvmfswhitelist', MAX_SIGNED_FILE)]);
  if (!manifestFile) return;
  let m: Manifest;
  try {
    m = parseManifest(splitSigned(manifestFile).body);
  } catch {
    return;
  }
  const wanted: Array<Promise<unknown>> = [fetcher.object(objectRequest(fqrn, m.certificate, 'X'))];
  // The manifest's own root (a tag or another revision is found by openRepository, the blocking way).
  if (o.tag === null && (o.revision === null || o.revision === m.revision)) wanted.push(fetcher.object(objectRequest(fqrn, m.rootCatalog, 'C', true, m.catalogSize ?? 0)));
  await Promise.all(wanted.map((w) => w.catch(() => undefined)));
}

function refuse(fqrn: string, what: string): never {
  throw new BuildError(`${fqrn}: ${what}`);
}

function checkWhitelist(fqrn: string, file: Buffer, o: TrustOptions, diag: Diagnostics): Whitelist {
  const signed = parseSigned(fqrn, '.cvmfswhitelist', file);
  let w: Whitelist;
  try {
    w = parseWhitelist(signed.body);
  } catch (err) {
    refuse(fqrn, `.cvmfswhitelist: ${(err as Error).message}`);
  }
  // The client then verifies a PKCS#7 signature or a CA chain, not the master key's: not read rather than half checked.
  if (w.pkcs7 || w.caChain) refuse(fqrn, `.cvmfswhitelist: signed ${w.pkcs7 ? 'with PKCS#7' : 'through a CA chain'}, which shrinkwrap does not verify`);
  const keys = findMasterKeys(o.keysDir, fqrn);
  const good = keys.some((k) => {
    try {
      return verifyWhitelistSignature(signed, fs.readFileSync(k, 'utf8'));
    } catch {
      return false;
    }
  });
  if (!good) refuse(fqrn, `.cvmfswhitelist: not signed by a master key in ${o.keysDir} (tried ${keys.map((k) => k.slice(o.keysDir.length + 1) || k).join(', ')})`);
  if (w.fqrn !== fqrn) refuse(fqrn, `.cvmfswhitelist: made for repository ${display(w.fqrn)}, not this one`);
  if (whitelistExpired(w, o.now)) {
    const when = w.expires.toISOString().replace('.000Z', 'Z');
    if (!o.allowExpired) refuse(fqrn, `.cvmfswhitelist: expired on ${when} (an archived repository? --cvmfs-allow-expired reads it all the same)`);
    diag.warn('cvmfs-whitelist-expired', `${fqrn}: .cvmfswhitelist expired on ${when}; read because of --cvmfs-allow-expired`);
  }
  return w;
}

function parseSigned(fqrn: string, name: string, file: Buffer) {
  let signed;
  try {
    signed = splitSigned(file);
  } catch (err) {
    refuse(fqrn, `${name}: ${(err as Error).message}`);
  }
  const actual = bodyHash(signed.body, algorithmOfHashLine(signed.hashHex));
  if (actual !== signed.hashHex) refuse(fqrn, `${name}: its content hashes to ${actual}, its hash line says ${signed.hashHex}`);
  return signed;
}

function algorithmOfHashLine(hex: string): 'sha1' | 'rmd160' | 'shake128' {
  return hex.endsWith('-rmd160') ? 'rmd160' : hex.endsWith('-shake128') ? 'shake128' : 'sha1';
}

function checkManifest(fqrn: string, file: Buffer, whitelist: Whitelist, fetcher: Fetcher): Manifest {
  const signed = parseSigned(fqrn, '.cvmfspublished', file);
  let m: Manifest;
  try {
    m = parseManifest(signed.body);
  } catch (err) {
    refuse(fqrn, `.cvmfspublished: ${(err as Error).message}`);
  }
  if (m.fqrn !== fqrn) refuse(fqrn, `.cvmfspublished: the manifest of repository ${display(m.fqrn)}, not of this one`);
  const certFile = fetcher.objectSync(objectRequest(fqrn, m.certificate, 'X'));
  const pem = fs.readFileSync(certFile, 'latin1');
  let fingerprint: string;
  try {
    fingerprint = certificateFingerprint(pem);
  } catch (err) {
    refuse(fqrn, `${objectPath(m.certificate, 'X')}: not an X.509 certificate (${(err as Error).message})`);
  }
  if (!whitelist.fingerprints.includes(fingerprint)) refuse(fqrn, `certificate ${fingerprint} (${objectPath(m.certificate, 'X')}) is not in the whitelist`);
  if (!verifyManifestSignature(signed, pem)) refuse(fqrn, `.cvmfspublished: signature does not match certificate ${fingerprint}`);
  return m;
}

/** The root catalog of the revision asked for: the manifest's, a tag's, or one down the previous_revision chain. */
function chooseRevision(fqrn: string, m: Manifest, fetcher: Fetcher, o: TrustOptions): { revision: number; rootCatalog: ContentHash } {
  if (o.tag !== null) {
    if (!m.history) refuse(fqrn, `--cvmfs-tag ${o.tag}: the repository has no history database`);
    const file = fetcher.objectSync(objectRequest(fqrn, m.history, 'H'));
    const db = openDatabase(file, { readOnly: true });
    try {
      const row = db.prepare('SELECT hash, revision FROM tags WHERE name = ?').get(o.tag);
      if (!row) {
        const names = db.prepare('SELECT name FROM tags ORDER BY revision DESC LIMIT 10').all().map((r) => String(r.name));
        refuse(fqrn, `--cvmfs-tag ${o.tag}: no such tag (the newest: ${names.join(', ') || 'none'})`);
      }
      const rootCatalog = parseCatalogHash(fqrn, String(row.hash));
      return { revision: Number(row.revision), rootCatalog };
    } finally {
      db.close();
    }
  }
  if (o.revision === null || o.revision === m.revision) return { revision: m.revision, rootCatalog: m.rootCatalog };
  if (o.revision > m.revision) refuse(fqrn, `--cvmfs-revision ${o.revision}: the newest revision is ${m.revision}`);
  let hash: ContentHash = m.rootCatalog;
  for (;;) {
    const file = fetcher.objectSync(objectRequest(fqrn, hash, 'C'));
    const db = openDatabase(file, { readOnly: true });
    let revision: number;
    let previous: string | null;
    try {
      const props = new Map(db.prepare('SELECT key, value FROM properties').all().map((r) => [String(r.key), String(r.value)]));
      revision = Number(props.get('revision') ?? NaN);
      previous = props.get('previous_revision') ?? null;
    } finally {
      db.close();
    }
    if (revision === o.revision) return { revision, rootCatalog: hash };
    if (!previous || !(revision > o.revision)) refuse(fqrn, `--cvmfs-revision ${o.revision}: not found going back from revision ${m.revision} (the chain ends at ${revision})`);
    hash = parseCatalogHash(fqrn, previous);
  }
}

function parseCatalogHash(fqrn: string, text: string): ContentHash {
  try {
    return parseHashString(text);
  } catch {
    refuse(fqrn, `a catalog reference ${JSON.stringify(text)} is not a content hash`);
  }
}

export const describeRepository = (r: OpenRepository) => `${r.fqrn} revision ${r.revision} (root catalog ${hashString(r.rootCatalog)})`;

// formats/cvmfs against the real repository in shared/fixtures/cvmfs-legacy-aufs (written by
// cvmfs_server 2.1 in 2015: SHA-1 objects, catalog schema 2.5), and round trips of every encoder.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError, type ContentHash, hashBytes, hashString, newHasher, objectPath, parseHashString } from '../../src/formats/cvmfs/hash.js';
import { type Manifest, encodeManifest, parseManifest } from '../../src/formats/cvmfs/manifest.js';
import {
  bodyHash,
  certificateFingerprint,
  manifestSignatureProblem,
  signManifest,
  signWhitelist,
  splitSigned,
  verifyManifestSignature,
  verifyWhitelistSignature,
  whitelistSignatureProblem,
} from '../../src/formats/cvmfs/signed.js';
import { encodeWhitelist, listsFingerprint, parseFingerprint, parseWhitelist, whitelistExpired } from '../../src/formats/cvmfs/whitelist.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const FQRN = 'legacy_aufs.cern.ch';

/** shared/fixtures/cvmfs-legacy-aufs, beside the checkout or beside one of its parents. */
function findFixture(): string | null {
  for (let dir = path.resolve(import.meta.dirname, '../..'); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'shared/fixtures/cvmfs-legacy-aufs');
    if (fs.existsSync(path.join(candidate, 'legacy_aufs_repo.tar.gz'))) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

const fixture = findFixture();
const haveFixture = canRun(fixture !== null, 'CernVM-FS format tests', 'shared/fixtures/cvmfs-legacy-aufs is not beside the checkout');
const haveOpenssl = canRun(hasCommand('openssl'), 'CernVM-FS manifest signing test', 'the openssl command is not installed');

let work = '';
let repo = '';
let keys = '';
const read = (rel: string) => fs.readFileSync(path.join(repo, rel));
const object = (h: ContentHash, suffix: Parameters<typeof objectPath>[1]) => read(objectPath(h, suffix));

beforeAll(() => {
  if (!haveFixture) return;
  work = tmpDir('sw-cvmfs-formats-');
  for (const tarball of ['legacy_aufs_repo.tar.gz', 'keys.tar.gz']) execFileSync('tar', ['-xzf', path.join(fixture!, tarball), '-C', work]);
  repo = path.join(work, 'srv/cvmfs', FQRN);
  keys = path.join(work, 'etc/cvmfs/keys');
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A copy of `file` with one byte changed. */
function flipped(file: Buffer, at: number): Buffer {
  const copy = Buffer.from(file);
  copy[at] ^= 0x01;
  return copy;
}

describe('content hashes', () => {
  it('parses and writes hash strings with their algorithm', () => {
    const hex = '6ed3d49a5c64f21f36936ab350d49aaf57585b9a';
    expect(parseHashString(hex)).toEqual({ algorithm: 'sha1', digest: Buffer.from(hex, 'hex') });
    expect(parseHashString(`${hex}-rmd160`).algorithm).toBe('rmd160');
    expect(parseHashString(`${hex}-shake128`).algorithm).toBe('shake128');
    for (const text of [hex, `${hex}-rmd160`, `${hex}-shake128`]) expect(hashString(parseHashString(text))).toBe(text);
    for (const bad of ['', hex.slice(1), hex.toUpperCase(), `${hex}-md5`, `${hex}C`, `${hex}-rmd160 `]) expect(() => parseHashString(bad)).toThrow(FormatError);
  });

  it('names object paths as cvmfs does', () => {
    const h = parseHashString('6ed3d49a5c64f21f36936ab350d49aaf57585b9a');
    expect(objectPath(h, 'C')).toBe('data/6e/d3d49a5c64f21f36936ab350d49aaf57585b9aC');
    expect(objectPath(h, '')).toBe('data/6e/d3d49a5c64f21f36936ab350d49aaf57585b9a');
    expect(objectPath({ ...h, algorithm: 'rmd160' }, 'C')).toBe('data/6e/d3d49a5c64f21f36936ab350d49aaf57585b9a-rmd160C');
    expect(objectPath({ ...h, algorithm: 'shake128' }, 'P')).toBe('data/6e/d3d49a5c64f21f36936ab350d49aaf57585b9a-shake128P');
  });

  it('hashes with 20-byte digests for every algorithm', () => {
    for (const alg of ['sha1', 'rmd160', 'shake128'] as const) {
      expect(hashBytes(alg, Buffer.from('abc')).digest.length).toBe(20);
      expect(newHasher(alg).update('a').update('bc').digest()).toEqual(hashBytes(alg, Buffer.from('abc')).digest);
    }
    // Known answers: RIPEMD-160("abc") and SHAKE128("abc") cut to 20 bytes.
    expect(hashBytes('rmd160', Buffer.from('abc')).digest.toString('hex')).toBe('8eb208f7e05d987a9b044a8e98c6b087f15a0bfc');
    expect(hashBytes('shake128', Buffer.from('abc')).digest.toString('hex')).toBe('5881092dd818bf5cf8a3ddb793fbcba74097d5c5');
  });

  it.runIf(haveFixture)('every object of the real repository is named by the hash of its stored bytes', () => {
    const objects: string[] = [];
    for (const dir of fs.readdirSync(path.join(repo, 'data'))) for (const name of fs.readdirSync(path.join(repo, 'data', dir))) objects.push(`data/${dir}/${name}`);
    expect(objects.length).toBe(17);
    const suffixes = new Set<string>();
    for (const rel of objects) {
      const name = rel.slice(5).replace('/', '');
      const suffix = /[A-Z]$/.test(name) ? name.slice(-1) : '';
      suffixes.add(suffix);
      const h = hashBytes('sha1', read(rel));
      expect(objectPath(h, suffix as '')).toBe(rel);
      expect(() => inflateSync(read(rel))).not.toThrow();
    }
    expect([...suffixes].sort()).toEqual(['', 'C', 'H', 'X']);
  });
});

describe('manifest', () => {
  it.runIf(haveFixture)('parses the real .cvmfspublished', () => {
    const s = splitSigned(read('.cvmfspublished'));
    expect(s.hashHex).toBe('a7c0345bd49103a80f2341c0319e020d1acf454b');
    expect(bodyHash(s.body)).toBe(s.hashHex);
    const m = parseManifest(s.body);
    expect(m).toEqual({
      rootCatalog: parseHashString('6ed3d49a5c64f21f36936ab350d49aaf57585b9a'),
      rootPathHash: 'd41d8cd98f00b204e9800998ecf8427e',
      catalogSize: 14336,
      ttl: 900,
      revision: 2,
      garbageCollectable: false,
      fqrn: FQRN,
      certificate: parseHashString('65133968f581abad1e75489c92a634e44929cbd7'),
      history: parseHashString('365d5083b27d67e2caeff6d66e5fe3f2d104a6bd'),
      timestamp: 1445428515,
      metainfo: null,
      reflog: null,
      altCatalogPath: null,
      microCatalog: null,
    } satisfies Manifest);
    // The whole file reads the same: parsing stops at `--`.
    expect(parseManifest(read('.cvmfspublished'))).toEqual(m);
    // Encoding gives back the body byte for byte (cvmfs's line order).
    expect(encodeManifest(m)).toEqual(s.body);
    // B is the size of the uncompressed catalog (the SQLite file), not of the object.
    expect(inflateSync(object(m.rootCatalog, 'C')).length).toBe(m.catalogSize);
  });

  it.runIf(haveFixture)('verifies its signature with the certificate object, and not after a flipped byte', () => {
    const file = read('.cvmfspublished');
    const m = parseManifest(file);
    const certificate = inflateSync(object(m.certificate, 'X')).toString('latin1');
    expect(verifyManifestSignature(splitSigned(file), certificate)).toBe(true);
    // A byte of the body: the hash line no longer matches.
    expect(manifestSignatureProblem(splitSigned(flipped(file, 3)), certificate)).toMatch(/the hash line says a7c0345b.*, the body hashes to/);
    // A byte of the signature.
    expect(manifestSignatureProblem(splitSigned(flipped(file, file.length - 5)), certificate)).toBe('the signature does not match the certificate');
    // Another certificate.
    const other = execCertificate();
    if (other) expect(verifyManifestSignature(splitSigned(file), other.cert)).toBe(false);
  });

  it('refuses a manifest without its required lines, or with bad values', () => {
    const good = 'C6ed3d49a5c64f21f36936ab350d49aaf57585b9a\nS2\nNx.cern.ch\nX65133968f581abad1e75489c92a634e44929cbd7\n';
    expect(parseManifest(Buffer.from(good)).revision).toBe(2);
    for (const key of ['C', 'S', 'N', 'X']) {
      const without = good.split('\n').filter((l) => !l.startsWith(key)).join('\n');
      expect(() => parseManifest(Buffer.from(without))).toThrow(new RegExp(`no ${key} line`));
    }
    expect(() => parseManifest(Buffer.from(`${good}Sx\n`))).toThrow(/manifest line S: 'x' is not a whole number/);
    expect(() => parseManifest(Buffer.from(`${good}Hxyz\n`))).toThrow(/manifest line H: 'xyz' is not a content hash/);
    expect(() => parseManifest(Buffer.from(`${good}Rabc\n`))).toThrow(/manifest line R/);
  });

  it('round-trips every key, other algorithms included', () => {
    const h = (alg: 'sha1' | 'rmd160' | 'shake128', s: string) => hashBytes(alg, Buffer.from(s));
    const m: Manifest = {
      rootCatalog: h('rmd160', 'c'),
      rootPathHash: 'd41d8cd98f00b204e9800998ecf8427e',
      catalogSize: 1234,
      ttl: 240,
      revision: 77,
      garbageCollectable: true,
      fqrn: 'test.example.org',
      certificate: h('rmd160', 'x'),
      history: h('shake128', 'h'),
      timestamp: 1700000000,
      metainfo: h('sha1', 'm'),
      reflog: h('sha1', 'y'),
      altCatalogPath: false,
      microCatalog: null,
    };
    const body = encodeManifest(m);
    expect(body.toString().split('\n').map((l) => l[0]).join('')).toBe('CBRDSGANXHTMY');
    expect(parseManifest(body)).toEqual(m);
  });
});

/** A self-signed certificate and its key, made with the openssl CLI (Node cannot make certificates). */
function execCertificate(): { cert: string; key: string } | null {
  if (!haveOpenssl) return null;
  const dir = tmpDir('sw-cvmfs-cert-');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=test', '-days', '1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' });
    return { cert: fs.readFileSync(`${dir}/cert.pem`, 'latin1'), key: fs.readFileSync(`${dir}/key.pem`, 'latin1') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('signing', () => {
  it.runIf(haveOpenssl)('signManifest → splitSigned → verifyManifestSignature, SHA-1 and RIPEMD-160 hash lines', () => {
    const { cert, key } = execCertificate()!;
    for (const alg of ['sha1', 'rmd160'] as const) {
      const body = Buffer.from(`C${hashString(hashBytes(alg, Buffer.from('c')))}\nS1\nNtest.example.org\nX${hashString(hashBytes(alg, Buffer.from(cert)))}\n`);
      const file = signManifest(body, key, alg);
      const s = splitSigned(file);
      expect(s.body).toEqual(body);
      expect(s.hashHex).toBe(bodyHash(body, alg));
      expect(s.hashHex.endsWith(alg === 'sha1' ? '' : '-rmd160')).toBe(true);
      expect(verifyManifestSignature(s, cert)).toBe(true);
      expect(verifyManifestSignature(splitSigned(flipped(file, 0)), cert)).toBe(false);
      expect(verifyManifestSignature(splitSigned(flipped(file, file.length - 1)), cert)).toBe(false);
    }
  });

  it('signWhitelist → verifyWhitelistSignature with a key pair made here; another key fails', () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const priv = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const pub = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const body = encodeWhitelist({ created: new Date('2024-01-02T03:04:05Z'), expires: new Date('2024-02-01T03:04:05Z'), fqrn: 'test.example.org', fingerprints: ['AA:'.repeat(19) + 'AA'] });
    const file = signWhitelist(body, priv);
    expect(verifyWhitelistSignature(splitSigned(file), pub)).toBe(true);
    expect(verifyWhitelistSignature(splitSigned(file), other.publicKey.export({ type: 'spki', format: 'pem' }) as string)).toBe(false);
    expect(whitelistSignatureProblem(splitSigned(flipped(file, 10)), pub)).toMatch(/the hash line says/);
    expect(whitelistSignatureProblem(splitSigned(flipped(file, file.length - 1)), pub)).toBe('the signature does not match the master key');
    expect(() => signWhitelist(Buffer.from('no newline'), priv)).toThrow(/newline/);
  });

  it('splitSigned says what is missing', () => {
    expect(() => splitSigned(Buffer.from('Cabc\nS1\n'))).toThrow(/no "--" line/);
    expect(() => splitSigned(Buffer.from('Cabc\n--\nabc'))).toThrow(/no hash line/);
    expect(() => splitSigned(Buffer.from('Cabc\n--\nabc\n'))).toThrow(/no signature/);
  });
});

describe('whitelist', () => {
  it.runIf(haveFixture)('parses the real .cvmfswhitelist, which lists the certificate and verifies with the master key', () => {
    const file = read('.cvmfswhitelist');
    const s = splitSigned(file);
    const w = parseWhitelist(s.body);
    expect(w).toEqual({ created: new Date('2015-10-21T11:55:13Z'), expires: new Date('2015-11-20T11:55:13Z'), fqrn: FQRN, fingerprints: ['93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15'] });
    expect(encodeWhitelist(w)).toEqual(s.body);
    const certificate = inflateSync(object(parseManifest(read('.cvmfspublished')).certificate, 'X')).toString('latin1');
    expect(listsFingerprint(w, certificateFingerprint(certificate))).toBe(true);
    // The .crt beside the .pub is the same certificate.
    expect(certificateFingerprint(fs.readFileSync(path.join(keys, `${FQRN}.crt`), 'latin1'))).toBe(w.fingerprints[0]);
    const pub = fs.readFileSync(path.join(keys, `${FQRN}.pub`), 'latin1');
    expect(verifyWhitelistSignature(s, pub)).toBe(true);
    expect(verifyWhitelistSignature(splitSigned(flipped(file, 20)), pub)).toBe(false);
    expect(verifyWhitelistSignature(splitSigned(flipped(file, file.length - 7)), pub)).toBe(false);
    expect(whitelistExpired(w, new Date('2015-11-20T10:59:59Z'))).toBe(false);
    expect(whitelistExpired(w, new Date('2015-11-20T11:00:00Z'))).toBe(true);
  });

  it('reads fingerprint lines as cvmfs does: comments, case, other algorithms, junk skipped', () => {
    const fp = '93:AB:A3:C4:89:BE:F9:B7:3E:90:8F:42:C1:8A:EF:12:BB:05:C4:15';
    expect(parseFingerprint(`${fp} # release manager`)).toBe(fp);
    expect(parseFingerprint(`${fp.toLowerCase()}\tcomment`)).toBe(fp);
    expect(parseFingerprint(`${fp}#x`)).toBe(fp);
    expect(parseFingerprint(`${fp}-RMD160`)).toBe(`${fp}-RMD160`);
    expect(parseFingerprint(`${fp}-shake128`)).toBe(`${fp}-SHAKE128`);
    expect(parseFingerprint('# a comment')).toBeNull();
    expect(parseFingerprint('')).toBeNull();
    const body = Buffer.from(`20240101000000\nE20240201000000\nNx.org\nVpkcs7\nWcachain\n# comment\n${fp} # rm\n\n${fp}-RMD160\n`);
    const w = parseWhitelist(body);
    expect(w).toEqual({ created: new Date('2024-01-01T00:00:00Z'), expires: new Date('2024-02-01T00:00:00Z'), fqrn: 'x.org', pkcs7: true, caChain: true, fingerprints: [fp, `${fp}-RMD160`] });
    expect(parseWhitelist(encodeWhitelist(w))).toEqual(w);
    expect(() => parseWhitelist(Buffer.from('2024\nE20240201000000\nNx.org\n'))).toThrow(/whitelist line 1/);
    expect(() => parseWhitelist(Buffer.from('20240101000000\n20240201000000\nNx.org\n'))).toThrow(/whitelist line 2/);
    expect(() => parseWhitelist(Buffer.from('20240101000000\nE20241301000000\nNx.org\n'))).toThrow(/whitelist line 2/);
    expect(() => parseWhitelist(Buffer.from('20240101000000\nE20240201000000\nx.org\n'))).toThrow(/whitelist line 3/);
  });
});

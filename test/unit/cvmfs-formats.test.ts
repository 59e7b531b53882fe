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
import {
  CATALOG_SCHEMA,
  CATALOG_SCHEMA_R2,
  CATALOG_COLUMNS,
  FLAG_BIND_MOUNTPOINT,
  FLAG_CHUNKED,
  FLAG_DIR,
  FLAG_DIRECT_IO,
  FLAG_EXTERNAL,
  FLAG_FILE,
  FLAG_HIDDEN,
  FLAG_LINK,
  FLAG_NESTED_MOUNTPOINT,
  FLAG_NESTED_ROOT,
  FLAG_SPECIAL,
  HISTORY_SCHEMA,
  HISTORY_SCHEMA_R2,
  STATISTICS_COUNTERS,
  STATISTICS_COUNTERS_R2,
  TAG_COLUMNS,
  compressionOfFlags,
  decodeFlags,
  decodeHardlinks,
  decodeXattrs,
  encodeHardlinks,
  encodeXattrs,
  expandVariantSymlink,
  flagsFor,
  hashAlgorithmOfFlags,
  md5Halves,
  md5Path,
  specialKindOfMode,
  typeOfFlags,
} from '../../src/formats/cvmfs/catalog.js';
import { encodeWhitelist, listsFingerprint, parseFingerprint, parseWhitelist, whitelistExpired } from '../../src/formats/cvmfs/whitelist.js';
import { findMasterKeys } from '../../src/sources/cvmfs/http/keys.js';
import { InputError } from '../../src/model/errors.js';
import { type SqlDatabase, openDatabase } from '../../src/util/sqlite.js';
import { findSharedFixture } from '../helpers/shared-fixtures.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const FQRN = 'legacy_aufs.cern.ch';

const fixture = findSharedFixture('cvmfs-legacy-aufs', 'legacy_aufs_repo.tar.gz');
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
    } satisfies Manifest);
    expect('altCatalogPath' in m || 'microCatalog' in m).toBe(false);
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
      microCatalog: h('sha1', 'l'),
    };
    const body = encodeManifest(m);
    expect(body.toString().split('\n').map((l) => l[0]).join('')).toBe('CBRDSGALNXHTMY');
    expect(parseManifest(body)).toStrictEqual(m);
    // The least a manifest has: absent keys come back as null (timestamp 0), A and L not at all.
    const least: Manifest = { ...m, rootPathHash: null, catalogSize: null, ttl: null, garbageCollectable: null, history: null, timestamp: 0, metainfo: null, reflog: null };
    delete least.altCatalogPath;
    delete least.microCatalog;
    expect(encodeManifest(least).toString()).toBe(`C${hashString(m.rootCatalog)}\nS77\nNtest.example.org\nX${hashString(m.certificate)}\n`);
    expect(parseManifest(encodeManifest(least))).toStrictEqual(least);
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

/** An object of the real repository, inflated into a file and opened read-only. */
function openObject(h: ContentHash, suffix: 'C' | 'H'): SqlDatabase {
  const file = path.join(work, `${hashString(h)}${suffix}.db`);
  fs.writeFileSync(file, inflateSync(object(h, suffix)));
  return openDatabase(file, { readOnly: true });
}

const rootHash = () => parseManifest(read('.cvmfspublished')).rootCatalog;

describe('catalog', () => {
  it.runIf(haveFixture)('md5Path gives the keys of the real rows, the root and every child', () => {
    const db = openObject(rootHash(), 'C');
    try {
      const rows = db.prepare('SELECT md5path_1, md5path_2, parent_1, parent_2, name FROM catalog').all();
      expect(rows.length).toBe(10);
      const root = rows.find((r) => r['name'] === '')!;
      expect([root['md5path_1'], root['md5path_2']]).toEqual(md5Path(''));
      expect([root['parent_1'], root['parent_2']]).toEqual([0n, 0n]);
      expect(md5Path('')).toEqual(md5Halves(Buffer.from(parseManifest(read('.cvmfspublished')).rootPathHash!, 'hex')));
      for (const row of rows.filter((r) => r !== root)) {
        expect([row['md5path_1'], row['md5path_2']]).toEqual(md5Path(`/${row['name'] as string}`));
        expect([row['parent_1'], row['parent_2']]).toEqual(md5Path(''));
      }
      expect(rows.find((r) => r['name'] === 'foo')).toMatchObject({ md5path_1: md5Path('/foo')[0], md5path_2: md5Path('/foo')[1] });
      // Halves past 2^63 come back negative, as SQLite stores them.
      expect(md5Path('/foo')[1]).toBeLessThan(0n);
    } finally {
      db.close();
    }
  });

  it.runIf(haveFixture)('every row of every catalog decodes: flags against mode, hashes against objects, hardlink groups', () => {
    const S_IFMT = 0o170000;
    const types = { dir: 0o040000, file: 0o100000, symlink: 0o120000 } as Record<string, number>;
    let total = 0;
    const seenFlags = new Set<number>();
    const catalogs = fs.readdirSync(path.join(repo, 'data')).flatMap((d) => fs.readdirSync(path.join(repo, 'data', d)).filter((n) => n.endsWith('C')).map((n) => parseHashString(d + n.slice(0, -1))));
    expect(catalogs.length).toBe(9);
    for (const h of catalogs) {
      const db = openObject(h, 'C');
      try {
        for (const row of db.prepare('SELECT * FROM catalog').all()) {
          total++;
          const flags = Number(row['flags']);
          seenFlags.add(flags);
          const f = decodeFlags(flags);
          expect(Number(row['mode']) & S_IFMT).toBe(types[f.type]);
          expect(f.hashAlgorithm).toBe('sha1');
          expect(f.compression).toBe('zlib');
          if (f.type === 'file' && row['hash'] !== null) {
            const object = objectPath({ algorithm: hashAlgorithmOfFlags(flags), digest: Buffer.from(row['hash'] as Uint8Array) }, '');
            expect(inflateSync(read(object)).length).toBe(Number(row['size']));
          }
          if (f.type === 'symlink') expect(String(row['symlink']).length).toBeGreaterThan(0);
          expect(decodeHardlinks(row['hardlinks'] as bigint).linkCount).toBeGreaterThan(0);
          expect(decodeXattrs(row['xattr'] as Uint8Array | null)).toEqual([]);
          // The flags are what flagsFor writes for that entry.
          const transition = f.nestedRoot ? 'nestedRoot' : f.nestedMountpoint ? 'nestedMountpoint' : undefined;
          expect(flagsFor({ type: f.type, transition, hashAlgorithm: row['hash'] === null ? undefined : 'sha1' })).toBe(flags);
        }
      } finally {
        db.close();
      }
    }
    expect(total).toBe(73);
    expect([...seenFlags].sort((a, b) => a - b)).toEqual([1, 3, 4, 12, 33]);
  });

  it.runIf(haveFixture)('root catalog: the flags of each row, and foo/hardlink_foo share a group of 2', () => {
    const db = openObject(rootHash(), 'C');
    try {
      const byName = new Map(db.prepare('SELECT name, flags, hardlinks FROM catalog').all().map((r) => [r['name'] as string, r]));
      expect(typeOfFlags(Number(byName.get('')!['flags']))).toBe('dir');
      for (const n of ['needs_commit_due_to_child', 'needs_migration', 'doesnt_need_migration']) expect(decodeFlags(Number(byName.get(n)!['flags']))).toMatchObject({ type: 'dir', nestedMountpoint: true, nestedRoot: false });
      const groups = new Map<number, string[]>();
      for (const n of ['foo', 'hardlink_foo', 'bar', 'hardlink_bar', 'baz', 'hardlink_baz']) {
        const row = byName.get(n)!;
        expect(decodeFlags(Number(row['flags']))).toMatchObject({ type: 'file', chunked: false, external: false });
        const { group, linkCount } = decodeHardlinks(row['hardlinks'] as bigint);
        expect(linkCount).toBe(2);
        expect(encodeHardlinks(group, linkCount)).toBe(row['hardlinks']);
        groups.set(group, [...(groups.get(group) ?? []), n]);
      }
      expect(groups).toEqual(new Map([[1, ['foo', 'hardlink_foo']], [2, ['bar', 'hardlink_bar']], [3, ['baz', 'hardlink_baz']]]));
      // The root directory: no group, link count 2 + its 3 subdirectories.
      expect(decodeHardlinks(byName.get('')!['hardlinks'] as bigint)).toEqual({ group: 0, linkCount: 5 });
      // A nested catalog's root row carries FLAG_NESTED_ROOT.
      const nested = db.prepare('SELECT path, sha1 FROM nested_catalogs ORDER BY path').all();
      expect(nested.map((r) => r['path'])).toEqual(['/doesnt_need_migration', '/needs_commit_due_to_child', '/needs_migration']);
      const child = openObject(parseHashString(nested[0]!['sha1'] as string), 'C');
      try {
        const [p1, p2] = md5Path('/doesnt_need_migration');
        const row = child.prepare('SELECT flags FROM catalog WHERE md5path_1 = ? AND md5path_2 = ?').get(p1, p2)!;
        expect(decodeFlags(Number(row['flags']))).toMatchObject({ type: 'dir', nestedRoot: true, nestedMountpoint: false });
        expect(child.prepare("SELECT value FROM properties WHERE key = 'root_prefix'").get()!['value']).toBe('/doesnt_need_migration');
      } finally {
        child.close();
      }
    } finally {
      db.close();
    }
  });

  it('encodes flags as cvmfs does, and reads every bit back', () => {
    expect([FLAG_DIR, FLAG_NESTED_MOUNTPOINT, FLAG_FILE, FLAG_LINK, FLAG_SPECIAL, FLAG_NESTED_ROOT, FLAG_CHUNKED, FLAG_EXTERNAL]).toEqual([1, 2, 4, 8, 16, 32, 64, 128]);
    expect([FLAG_BIND_MOUNTPOINT, FLAG_HIDDEN, FLAG_DIRECT_IO]).toEqual([1 << 14, 1 << 15, 1 << 16]);
    expect(flagsFor({ type: 'dir' })).toBe(1);
    expect(flagsFor({ type: 'dir', transition: 'nestedMountpoint' })).toBe(3);
    expect(flagsFor({ type: 'dir', transition: 'nestedRoot' })).toBe(33);
    expect(flagsFor({ type: 'dir', transition: 'bindMountpoint', hidden: true })).toBe(1 | FLAG_BIND_MOUNTPOINT | FLAG_HIDDEN);
    expect(flagsFor({ type: 'symlink' })).toBe(12);
    expect(flagsFor({ type: 'special' })).toBe(20);
    expect(flagsFor({ type: 'file', hashAlgorithm: 'sha1' })).toBe(4);
    const all = flagsFor({ type: 'file', hashAlgorithm: 'shake128', compression: 'none', chunked: true, external: true, directIo: true, hidden: true });
    expect(all).toBe(4 | (2 << 8) | (1 << 11) | 64 | 128 | FLAG_DIRECT_IO | FLAG_HIDDEN);
    expect(decodeFlags(all)).toEqual({ type: 'file', nestedMountpoint: false, nestedRoot: false, bindMountpoint: false, chunked: true, external: true, hidden: true, directIo: true, hashAlgorithm: 'shake128', compression: 'none' });
    expect(hashAlgorithmOfFlags(flagsFor({ type: 'file', hashAlgorithm: 'rmd160' }))).toBe('rmd160');
    expect(compressionOfFlags(4)).toBe('zlib');
    expect(() => hashAlgorithmOfFlags(4 | (3 << 8))).toThrow(FormatError);
    expect(() => compressionOfFlags(4 | (2 << 11))).toThrow(FormatError);
    expect(() => typeOfFlags(0)).toThrow(/neither a directory nor a file/);
    expect(specialKindOfMode(0o020644)).toBe('char');
    expect(specialKindOfMode(0o060644)).toBe('block');
    expect(specialKindOfMode(0o010644)).toBe('fifo');
    expect(specialKindOfMode(0o140644)).toBe('socket');
    expect(() => specialKindOfMode(0o100644)).toThrow(FormatError);
  });

  it('hardlinks: group above 2^31 and the full count range', () => {
    for (const [g, n] of [[0, 1], [1, 2], [0x7fffffff, 3], [0x80000000, 1], [0xffffffff, 0xffffffff]] as const) {
      const v = encodeHardlinks(g, n);
      expect(v).toBe(BigInt.asIntN(64, (BigInt(g) << 32n) | BigInt(n)));
      expect(decodeHardlinks(v)).toEqual({ group: g, linkCount: n });
    }
    expect(() => encodeHardlinks(1, 0)).toThrow();
    expect(() => encodeHardlinks(2 ** 32, 1)).toThrow();
  });

  it('xattrs: the layout of XattrList::Serialize, sorted keys, round trip, malformed blobs', () => {
    const blob = encodeXattrs([['user.b', Buffer.from('2')], ['user.a', Buffer.from('one')], ['user.empty', Buffer.alloc(0)]])!;
    expect(blob).toEqual(Buffer.concat([Buffer.from([1, 3]), Buffer.from([6, 3]), Buffer.from('user.aone'), Buffer.from([6, 1]), Buffer.from('user.b2'), Buffer.from([10, 0]), Buffer.from('user.empty')]));
    expect(decodeXattrs(blob)).toEqual([['user.a', Buffer.from('one')], ['user.b', Buffer.from('2')], ['user.empty', Buffer.alloc(0)]]);
    const big: Array<[string, Buffer]> = [['user.\xff\x01name', Buffer.alloc(255, 7)], ['security.selinux', Buffer.from('x\0y')]];
    expect(decodeXattrs(encodeXattrs(big))).toEqual([...big].sort(([a], [b]) => (a < b ? -1 : 1)));
    expect(encodeXattrs([])).toBeNull();
    expect(decodeXattrs(null)).toEqual([]);
    expect(() => encodeXattrs([['k', Buffer.alloc(256)]])).toThrow(/255/);
    expect(() => encodeXattrs([['x'.repeat(256), Buffer.alloc(1)]])).toThrow(/1-255/);
    expect(() => decodeXattrs(Buffer.from([2, 0]))).toThrow(/version 2/);
    expect(() => decodeXattrs(Buffer.from([1]))).toThrow(FormatError);
    expect(() => decodeXattrs(blob.subarray(0, blob.length - 1))).toThrow(/cut off/);
    expect(() => decodeXattrs(Buffer.from([1, 1, 0, 1, 0x41]))).toThrow(/empty key/);
  });

  it('variant symlinks expand as the client expands them', () => {
    const env: Record<string, string> = { ARCH: 'x86_64', EMPTY: '' };
    const unset: string[] = [];
    const x = (t: string) => expandVariantSymlink(t, (n) => env[n], (n) => unset.push(n));
    expect(x('/cvmfs/sft.cern.ch/lcg/$(ARCH)/bin')).toBe('/cvmfs/sft.cern.ch/lcg/x86_64/bin');
    expect(x('$(ARCH)-$(ARCH)')).toBe('x86_64-x86_64');
    expect(x('a/$(OS:-el9)/b')).toBe('a/el9/b');
    expect(x('a/$(ARCH:-other)/b')).toBe('a/x86_64/b');
    // Set but empty: the value (''), not the default.
    expect(x('a/$(EMPTY:-d)/b')).toBe('a//b');
    expect(unset).toEqual([]);
    expect(x('a/$(NOPE)/b')).toBe('a//b');
    expect(unset).toEqual(['NOPE']);
    // No `)`: the rest stays as it is; a `$(` at the very end too; `$` alone, `$X` untouched.
    expect(x('a/$(ARCH/b')).toBe('a/$(ARCH/b');
    expect(x('a/$(ARCH)/$(b')).toBe('a/x86_64/$(b');
    expect(x('a/$(')).toBe('a/$(');
    expect(x('a$b/$ARCH/$')).toBe('a$b/$ARCH/$');
    // The name ends at the first `:-`; the default runs to the first `)`.
    expect(x('$(OS:-a:-b)')).toBe('a:-b');
    expect(x('$()')).toBe('');
    expect(unset).toEqual(['NOPE', '']);
  });

  it.runIf(haveFixture)('CATALOG_SCHEMA_R2 makes the real catalog\'s schema; CATALOG_SCHEMA the revision-7 one', () => {
    const real = openObject(rootHash(), 'C');
    const master = (db: SqlDatabase) => db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").all();
    const counters = (db: SqlDatabase) => db.prepare('SELECT counter FROM statistics ORDER BY rowid').all().map((r) => r['counter']);
    try {
      const made = makeDatabase('r2.db', CATALOG_SCHEMA_R2);
      expect(master(made)).toEqual(master(real));
      expect(counters(made)).toEqual(counters(real));
      expect(counters(real)).toEqual([...STATISTICS_COUNTERS_R2]);
      const props = (db: SqlDatabase) => db.prepare("SELECT key, value FROM properties WHERE key IN ('schema', 'schema_revision')").all();
      expect(props(made)).toEqual(props(real));
      made.close();
      const r7 = makeDatabase('r7.db', CATALOG_SCHEMA);
      const columns = r7.prepare('PRAGMA table_info(catalog)').all().map((r) => r['name']);
      expect(columns).toEqual([...CATALOG_COLUMNS]);
      expect(master(r7).map((r) => r['name'])).toEqual(['properties', 'sqlite_autoindex_properties_1', 'catalog', 'sqlite_autoindex_catalog_1', 'idx_catalog_parent', 'chunks', 'sqlite_autoindex_chunks_1', 'nested_catalogs', 'sqlite_autoindex_nested_catalogs_1', 'bind_mountpoints', 'sqlite_autoindex_bind_mountpoints_1', 'statistics', 'sqlite_autoindex_statistics_1']);
      expect(counters(r7)).toEqual([...STATISTICS_COUNTERS]);
      expect(STATISTICS_COUNTERS.length).toBe(24);
      expect(r7.prepare("SELECT value FROM properties WHERE key = 'schema_revision'").get()!['value']).toBe('7');
      r7.close();
    } finally {
      real.close();
    }
  });

  it.runIf(haveFixture)('HISTORY_SCHEMA_R2 makes the real history database\'s schema; its tags name the catalogs', () => {
    const m = parseManifest(read('.cvmfspublished'));
    const real = openObject(m.history!, 'H');
    const master = (db: SqlDatabase) => db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").all();
    try {
      const made = makeDatabase('h2.db', HISTORY_SCHEMA_R2);
      expect(master(made)).toEqual(master(real));
      made.close();
      const tags = real.prepare('SELECT * FROM tags ORDER BY name').all();
      expect(Object.keys(tags[0]!)).toEqual(TAG_COLUMNS.filter((c) => c !== 'branch'));
      const trunk = tags.find((t) => t['name'] === 'trunk')!;
      expect(trunk).toMatchObject({ hash: hashString(m.rootCatalog), revision: BigInt(m.revision), timestamp: BigInt(m.timestamp), channel: 0n, description: 'current HEAD', size: BigInt(m.catalogSize!) });
      expect(real.prepare("SELECT value FROM properties WHERE key = 'fqrn'").get()!['value']).toBe(FQRN);
      const h3 = makeDatabase('h3.db', HISTORY_SCHEMA);
      expect(h3.prepare('PRAGMA table_info(tags)').all().map((r) => r['name'])).toEqual([...TAG_COLUMNS]);
      expect(h3.prepare('SELECT * FROM branches').all()).toEqual([{ branch: '', parent: null, initial_revision: 0n }]);
      h3.close();
    } finally {
      real.close();
    }
  });
});

/** A new database in the work directory made with `statements`. */
function makeDatabase(name: string, statements: string[]): SqlDatabase {
  const file = path.join(work || tmpDir('sw-cvmfs-db-'), name);
  const db = openDatabase(file, { readOnly: false });
  for (const sql of statements) db.exec(sql);
  return db;
}

describe('master keys', () => {
  it('finds <fqrn>.pub, then <domain>/*.pub where there are any, else *.pub (a key of another domain never signs); refuses when there is none', () => {
    const dir = tmpDir('sw-cvmfs-keys-');
    try {
      fs.mkdirSync(path.join(dir, 'cern.ch'));
      fs.mkdirSync(path.join(dir, 'x.pub'));
      for (const f of ['cern.ch/b.pub', 'cern.ch/a.pub', 'cern.ch/readme', 'atlas.cern.ch.pub', 'egi.eu.pub', 'z.pub']) fs.writeFileSync(path.join(dir, f), 'key');
      expect(findMasterKeys(dir, 'atlas.cern.ch')).toEqual(['atlas.cern.ch.pub', 'cern.ch/a.pub', 'cern.ch/b.pub'].map((f) => path.join(dir, f)));
      expect(findMasterKeys(dir, 'sft.cern.ch')).toEqual(['cern.ch/a.pub', 'cern.ch/b.pub'].map((f) => path.join(dir, f)));
      // A domain without a directory of its own: the top-level keys.
      expect(findMasterKeys(dir, 'repo.egi.eu')).toEqual(['atlas.cern.ch.pub', 'egi.eu.pub', 'z.pub'].map((f) => path.join(dir, f)));
      expect(findMasterKeys(path.join(dir, 'cern.ch'), 'sft.cern.ch')).toEqual(['a.pub', 'b.pub'].map((f) => path.join(dir, 'cern.ch', f)));
      const empty = path.join(dir, 'empty');
      fs.mkdirSync(empty);
      expect(() => findMasterKeys(empty, 'sft.cern.ch')).toThrow(InputError);
      expect(() => findMasterKeys(empty, 'sft.cern.ch')).toThrow(`sft.cern.ch: no master public key in ${empty} (looked for sft.cern.ch.pub, cern.ch/*.pub, *.pub)`);
      expect(() => findMasterKeys(path.join(dir, 'missing'), 'local')).toThrow(/looked for local.pub, \*.pub/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(haveFixture)('the real keys directory gives the key that verifies the real whitelist', () => {
    const found = findMasterKeys(keys, FQRN);
    expect(found).toEqual([path.join(keys, `${FQRN}.pub`)]);
    expect(verifyWhitelistSignature(splitSigned(read('.cvmfswhitelist')), fs.readFileSync(found[0]!, 'latin1'))).toBe(true);
  });
});

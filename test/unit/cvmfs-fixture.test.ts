// fixtures/cvmfs-repo.ts: a tree published as a CernVM-FS repository has the real repository's
// catalog schema and properties (shared/fixtures/cvmfs-legacy-aufs, cvmfs_server 2.1), objects
// named by their hashes, signatures that verify by the rules of the format (checked here with
// node:crypto directly), and the same bytes when published twice.
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, constants, createHash, createPublicKey, publicDecrypt, verify } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestKeys, makeTestKeys, publishRepository } from '../../fixtures/cvmfs-repo.js';
import { openDatabase, sqliteLibrary, type SqlRow } from '../../src/util/sqlite.js';
import { findSharedFixture } from '../helpers/shared-fixtures.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const FQRN = 'fixture.example.org';
const REAL_FQRN = 'legacy_aufs.cern.ch';
const MTIME = 1557878400;
const CHUNK = 4096;

const fixture = findSharedFixture('cvmfs-legacy-aufs', 'legacy_aufs_repo.tar.gz');
const ready = canRun(
  fixture !== null && hasCommand('openssl') && sqliteLibrary() !== null,
  'CernVM-FS fixture tests',
  'needs shared/fixtures/cvmfs-legacy-aufs beside the checkout, the openssl command and SQLite',
);

let work = '';
let tree = '';
let keys: TestKeys;
let realRepo = '';
let xattrSet = false;

/** Deterministic bytes that zlib cannot shrink much, so that chunks are distinct objects. */
function noise(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function makeTestTree(root: string): void {
  const w = (rel: string, content: string | Buffer) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  };
  w('README', 'hello\n');
  w('empty', '');
  w('big.bin', noise(3 * CHUNK + 100));
  w('bin/tool', '#!/bin/sh\necho tool\n');
  fs.chmodSync(path.join(root, 'bin/tool'), 0o755);
  fs.linkSync(path.join(root, 'bin/tool'), path.join(root, 'bin/tool-again'));
  fs.symlinkSync('tool', path.join(root, 'bin/link'));
  w('sw/v1/lib/libx.so', 'ELF? not really\n');
  w('sw/v1/share/data.txt', 'data\n');
  w('marked/.cvmfscatalog', '');
  w('marked/inner/file', 'inner\n');
  fs.symlinkSync('../README', path.join(root, 'marked/readme'));
  xattrSet = spawnSync('setfattr', ['-n', 'user.origin', '-v', 'fixture', path.join(root, 'README')]).status === 0;
  // Fixed times, children first (a child's creation bumps its directory).
  const stamp = (p: string): void => {
    if (fs.lstatSync(p).isDirectory()) for (const n of fs.readdirSync(p)) stamp(path.join(p, n));
    fs.lutimesSync(p, MTIME, MTIME);
  };
  stamp(root);
}

function publish(out: string) {
  return publishRepository({ tree, fqrn: FQRN, out, keys, nestedAt: ['/sw'], chunkAbove: CHUNK, chunkSize: CHUNK, timestamp: MTIME + 60 });
}

/** Every file below `dir`, relative path → bytes. */
function filesBelow(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const visit = (rel: string): void => {
    const p = path.join(dir, rel);
    if (fs.statSync(p).isDirectory()) for (const n of fs.readdirSync(p).sort()) visit(path.join(rel, n));
    else out.set(rel, fs.readFileSync(p));
  };
  visit('');
  return out;
}

/** The catalog object as an SQLite file in `work`, queried by `fn`. */
function withCatalog<T>(object: string, fn: (q: (sql: string) => SqlRow[]) => T): T {
  const file = path.join(work, `q-${path.basename(object)}.db`);
  fs.writeFileSync(file, inflateSync(fs.readFileSync(object)));
  const db = openDatabase(file, { readOnly: true });
  try {
    return fn((sql) => db.prepare(sql).all());
  } finally {
    db.close();
  }
}

const normalise = (sql: unknown) => String(sql).replace(/\s+/g, ' ').replace(/\( /g, '(').trim();
const schemaOf = (q: (sql: string) => SqlRow[]) => q('SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name').map((r) => `${r['type']} ${r['name']} ${r['tbl_name']} ${normalise(r['sql'])}`);
const manifestField = (repo: string, key: string) => fs.readFileSync(path.join(repo, '.cvmfspublished'), 'latin1').split('\n').find((l) => l.startsWith(key))!.slice(1);
const catalogObject = (repo: string, hash: string) => path.join(repo, 'data', hash.slice(0, 2), `${hash.slice(2)}C`);
const md5Key = (p: string): [bigint, bigint] => {
  const d = createHash('md5').update(p).digest();
  return [d.readBigInt64LE(0), d.readBigInt64LE(8)];
};

beforeAll(() => {
  if (!ready) return;
  work = tmpDir('sw-cvmfs-fixture-');
  execFileSync('tar', ['-xzf', path.join(fixture!, 'legacy_aufs_repo.tar.gz'), '-C', work]);
  realRepo = path.join(work, 'srv/cvmfs', REAL_FQRN);
  tree = path.join(work, 'tree');
  fs.mkdirSync(tree);
  makeTestTree(tree);
  keys = makeTestKeys(path.join(work, 'keys'), FQRN);
});
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.runIf(ready)('cvmfs-repo fixture', () => {
  it('writes the keys a client and a publisher use, by their usual names', () => {
    for (const f of [`${FQRN}.pub`, `${FQRN}.crt`, `${FQRN}.key`, `${FQRN}.masterkey`]) expect(fs.existsSync(path.join(keys.dir, f))).toBe(true);
  });

  it('publishes the same bytes twice, and every object is named by the hash of its bytes', () => {
    const a = publish(path.join(work, 'out-a'));
    const b = publish(path.join(work, 'out-b'));
    const filesA = filesBelow(a.repository);
    const filesB = filesBelow(b.repository);
    expect([...filesA.keys()]).toEqual([...filesB.keys()]);
    for (const [rel, bytes] of filesA) expect(bytes.equals(filesB.get(rel)!), rel).toBe(true);
    expect(a.catalogs).toEqual(['', '/marked', '/sw']);
    for (const rel of a.objects) {
      const m = /^data\/([0-9a-f]{2})\/([0-9a-f]{38})([CPXH]?)$/.exec(rel);
      expect(m, rel).not.toBeNull();
      expect(createHash('sha1').update(filesA.get(rel)!).digest('hex')).toBe(m![1]! + m![2]!);
      inflateSync(filesA.get(rel)!); // every object is zlib
    }
    // Only catalogs, chunks, the certificate and the history have suffixes; contents have none.
    const kinds = new Map<string, number>();
    for (const rel of a.objects) kinds.set(rel.at(-1)!, (kinds.get(rel.at(-1)!) ?? 0) + 1);
    expect(kinds.get('C')).toBe(3);
    expect(kinds.get('P')).toBe(4);
    expect(kinds.get('X')).toBe(1);
    expect(kinds.get('H')).toBe(1);
  });

  it('writes catalogs with the real repository schema and properties', () => {
    const repo = path.join(work, 'out-a', FQRN);
    const ours = (hash: string) => catalogObject(repo, hash);
    const realRoot = catalogObject(realRepo, manifestField(realRepo, 'C'));
    const realSchema = withCatalog(realRoot, schemaOf);
    const realRootKeys = withCatalog(realRoot, (q) => q('SELECT key FROM properties ORDER BY key').map((r) => r['key']));
    const realNested = withCatalog(realRoot, (q) => String(q('SELECT sha1 FROM nested_catalogs LIMIT 1')[0]!['sha1']));
    const realNestedKeys = withCatalog(catalogObject(realRepo, realNested), (q) => q('SELECT key FROM properties ORDER BY key').map((r) => r['key']));
    const realCounters = withCatalog(realRoot, (q) => q('SELECT counter FROM statistics ORDER BY counter').map((r) => r['counter']));
    const root = manifestField(repo, 'C');
    withCatalog(ours(root), (q) => {
      expect(schemaOf(q)).toEqual(realSchema);
      expect(q('PRAGMA page_size')[0]!['page_size']).toBe(1024n);
      expect(q('SELECT key FROM properties ORDER BY key').map((r) => r['key'])).toEqual(realRootKeys);
      expect(q('SELECT counter FROM statistics ORDER BY counter').map((r) => r['counter'])).toEqual(realCounters);
    });
    const nested = withCatalog(ours(root), (q) => q('SELECT path, sha1, size FROM nested_catalogs ORDER BY path'));
    expect(nested.map((r) => r['path'])).toEqual(['/marked', '/sw']);
    for (const n of nested) {
      withCatalog(ours(String(n['sha1'])), (q) => {
        expect(schemaOf(q)).toEqual(realSchema);
        expect(q('SELECT key FROM properties ORDER BY key').map((r) => r['key'])).toEqual(realNestedKeys);
        expect(q("SELECT value FROM properties WHERE key = 'root_prefix'")[0]!['value']).toBe(n['path']);
      });
      expect(BigInt(inflateSync(fs.readFileSync(ours(String(n['sha1'])))).length)).toBe(n['size']);
    }
  });

  it('keeps entries, links, chunks, nested catalog points and counters as cvmfs does', () => {
    const repo = path.join(work, 'out-a', FQRN);
    const root = manifestField(repo, 'C');
    expect(manifestField(repo, 'B')).toBe(String(inflateSync(fs.readFileSync(catalogObject(repo, root))).length));
    const row = (q: (sql: string) => SqlRow[], p: string) => {
      const [a, b] = md5Key(p);
      return q(`SELECT * FROM catalog WHERE md5path_1 = ${a} AND md5path_2 = ${b}`)[0]!;
    };
    withCatalog(catalogObject(repo, root), (q) => {
      const top = row(q, '');
      expect([top['name'], top['parent_1'], top['parent_2'], top['flags']]).toEqual(['', 0n, 0n, 1n]);
      expect(row(q, '/sw')['flags']).toBe(3n);
      expect(row(q, '/marked')['flags']).toBe(3n);
      const [p1, p2] = md5Key('/bin');
      expect(row(q, '/bin/tool')['parent_1']).toBe(p1);
      expect(row(q, '/bin/tool')['parent_2']).toBe(p2);
      // Two names of one inode in one directory: group 1, two links.
      expect(row(q, '/bin/tool')['hardlinks']).toBe((1n << 32n) | 2n);
      expect(row(q, '/bin/tool-again')['hardlinks']).toBe((1n << 32n) | 2n);
      expect(row(q, '/README')['hardlinks']).toBe(1n);
      const link = row(q, '/bin/link');
      expect([link['flags'], link['symlink'], link['size'], link['hash']]).toEqual([12n, 'tool', 4n, null]);
      const empty = row(q, '/empty');
      expect([empty['size'], empty['flags']]).toEqual([0n, 4n]);
      expect(Buffer.from(empty['hash'] as Uint8Array).toString('hex')).toBe('e8ec3d88b62ebf526e4e5a4ff6162a3aa48a6b78'); // as in the real repository
      const big = row(q, '/big.bin');
      expect([big['flags'], big['hash'], big['size']]).toEqual([4n | 64n, null, BigInt(3 * CHUNK + 100)]);
      const chunks = q(`SELECT offset, size, hash FROM chunks WHERE md5path_1 = ${big['md5path_1']} ORDER BY offset`);
      expect(chunks.map((c) => [c['offset'], c['size']])).toEqual([[0n, 4096n], [4096n, 4096n], [8192n, 4096n], [12288n, 100n]]);
      const whole = Buffer.concat(chunks.map((c) => inflateSync(fs.readFileSync(path.join(repo, 'data', Buffer.from(c['hash'] as Uint8Array).toString('hex').replace(/^(..)/, '$1/') + 'P')))));
      expect(whole.equals(fs.readFileSync(path.join(tree, 'big.bin')))).toBe(true);
      const stat = fs.lstatSync(path.join(tree, 'bin/tool'));
      const tool = row(q, '/bin/tool');
      expect([tool['mode'], tool['uid'], tool['gid'], tool['mtime']]).toEqual([BigInt(stat.mode), BigInt(stat.uid), BigInt(stat.gid), BigInt(MTIME)]);
      if (xattrSet) {
        const blob = Buffer.from(row(q, '/README')['xattr'] as Uint8Array);
        expect(blob.includes('user.origin') && blob.includes('fixture')).toBe(true);
      }
      const stats = Object.fromEntries(q('SELECT counter, value FROM statistics').map((r) => [r['counter'], r['value']]));
      // Root catalog: '', bin, the two mountpoints; README, empty, big.bin, tool, tool-again.
      expect(stats).toMatchObject({ self_dir: 4n, self_regular: 5n, self_symlink: 1n, self_nested: 2n, self_chunked: 1n, self_chunks: 4n, self_chunked_size: BigInt(3 * CHUNK + 100) });
      // Below: /sw (sw, v1, lib, share; 2 files) and /marked (marked, inner; 2 files, 1 link).
      expect(stats).toMatchObject({ subtree_dir: 6n, subtree_regular: 4n, subtree_symlink: 1n, subtree_nested: 0n });
      expect(stats['self_xattr']).toBe(xattrSet ? 1n : 0n);
    });
    const sw = withCatalog(catalogObject(repo, root), (q) => String(q("SELECT sha1 FROM nested_catalogs WHERE path = '/sw'")[0]!['sha1']));
    withCatalog(catalogObject(repo, sw), (q) => {
      expect(row(q, '/sw')['flags']).toBe(33n);
      expect(row(q, '/sw/v1/lib/libx.so')['name']).toBe('libx.so');
    });
    const marked = withCatalog(catalogObject(repo, root), (q) => String(q("SELECT sha1 FROM nested_catalogs WHERE path = '/marked'")[0]!['sha1']));
    withCatalog(catalogObject(repo, marked), (q) => {
      expect(row(q, '/marked')['flags']).toBe(33n);
      expect(row(q, '/marked/.cvmfscatalog')['size']).toBe(0n); // the marker stays, as cvmfs keeps it
    });
  });

  it('signs the manifest with the certificate key and the whitelist with the master key', () => {
    const repo = path.join(work, 'out-a', FQRN);
    const split = (file: Buffer) => {
      const mark = file.indexOf('\n--\n');
      const body = file.subarray(0, mark + 1);
      const hashEnd = file.indexOf(0x0a, mark + 4);
      return { body, hex: file.subarray(mark + 4, hashEnd).toString('latin1'), signature: file.subarray(hashEnd + 1) };
    };
    const manifest = split(fs.readFileSync(path.join(repo, '.cvmfspublished')));
    expect(manifest.hex).toBe(createHash('sha1').update(manifest.body).digest('hex'));
    const lines = manifest.body.toString('latin1').trimEnd().split('\n');
    expect(lines.map((l) => l[0]).join('')).toBe('CBRDSGNXHT');
    expect(lines).toContain('Rd41d8cd98f00b204e9800998ecf8427e');
    expect(lines).toContain('D240');
    expect(lines).toContain('S1');
    expect(lines).toContain('Gno');
    expect(lines).toContain(`N${FQRN}`);
    expect(lines).toContain(`T${MTIME + 60}`);
    // The certificate object holds the certificate that verifies the manifest.
    const x = manifestField(repo, 'X');
    const certificate = new X509Certificate(inflateSync(fs.readFileSync(path.join(repo, 'data', x.slice(0, 2), `${x.slice(2)}X`))));
    expect(verify('sha1', Buffer.from(manifest.hex), certificate.publicKey, manifest.signature)).toBe(true);

    const whitelist = split(fs.readFileSync(path.join(repo, '.cvmfswhitelist')));
    expect(whitelist.hex).toBe(createHash('sha1').update(whitelist.body).digest('hex'));
    const master = createPublicKey(fs.readFileSync(keys.masterPublic));
    expect(publicDecrypt({ key: master, padding: constants.RSA_PKCS1_PADDING }, whitelist.signature).toString()).toBe(whitelist.hex);
    const wl = whitelist.body.toString('latin1').trimEnd().split('\n');
    expect(wl[0]).toBe('20190515000100');
    expect(wl[1]).toBe('E20190614000100');
    expect(wl[2]).toBe(`N${FQRN}`);
    expect(wl[3]).toBe(certificate.fingerprint);
  });

  it('names objects with RIPEMD-160 and records the algorithm in the flags', () => {
    const res = publishRepository({ tree, fqrn: FQRN, out: path.join(work, 'out-rmd'), keys, algorithm: 'rmd160', timestamp: MTIME });
    expect(res.rootCatalog).toMatch(/^[0-9a-f]{40}-rmd160$/);
    for (const rel of res.objects) {
      const m = /^data\/([0-9a-f]{2})\/([0-9a-f]{38})-rmd160([CPXH]?)$/.exec(rel);
      expect(m, rel).not.toBeNull();
      expect(createHash('ripemd160').update(fs.readFileSync(path.join(res.repository, rel))).digest('hex')).toBe(m![1]! + m![2]!);
    }
    withCatalog(path.join(res.repository, res.objects.find((o) => o.endsWith(`${res.rootCatalog.slice(2)}C`))!), (q) => {
      const flags = q("SELECT flags FROM catalog WHERE name = 'README'")[0]!['flags'];
      expect(flags).toBe(4n | (1n << 8n));
    });
  });

  it('stores the whole compressed file of a chunked file and names its row by it with bulkChunks', () => {
    const res = publishRepository({ tree, fqrn: FQRN, out: path.join(work, 'out-bulk'), keys, chunkAbove: CHUNK, bulkChunks: true, timestamp: MTIME });
    withCatalog(catalogObject(res.repository, res.rootCatalog), (q) => {
      const big = q("SELECT hash, flags FROM catalog WHERE name = 'big.bin'")[0]!;
      expect(big['flags']).toBe(4n | 64n);
      const hex = Buffer.from(big['hash'] as Uint8Array).toString('hex');
      const whole = inflateSync(fs.readFileSync(path.join(res.repository, 'data', hex.slice(0, 2), hex.slice(2))));
      expect(whole.equals(fs.readFileSync(path.join(tree, 'big.bin')))).toBe(true);
      expect(q("SELECT count(*) AS n FROM chunks")[0]!['n']).toBe(4n);
    });
  });

  it('writes schema revision 7 as current cvmfs_server does when asked', () => {
    const res = publishRepository({ tree, fqrn: FQRN, out: path.join(work, 'out-r7'), keys, schemaRevision: 7, tags: [{ name: 'trunk', revision: 1 }], timestamp: MTIME });
    withCatalog(catalogObject(res.repository, res.rootCatalog), (q) => {
      const props = Object.fromEntries(q('SELECT key, value FROM properties').map((r) => [r['key'], r['value']]));
      expect(props).toMatchObject({ schema: '2.5', schema_revision: '7', revision: '1' });
      expect(q("SELECT name FROM sqlite_master WHERE name = 'bind_mountpoints'")).toHaveLength(1);
      expect(q("SELECT mtime, mtimens FROM catalog WHERE name = 'README'")[0]).toEqual({ mtime: BigInt(MTIME), mtimens: 0n });
      expect(q("SELECT value FROM statistics WHERE counter = 'self_special'")[0]!['value']).toBe(0n);
    });
    const h = manifestField(res.repository, 'H');
    const tags = withCatalog(path.join(res.repository, 'data', h.slice(0, 2), `${h.slice(2)}H`), (q) => q('SELECT name, hash, branch FROM tags'));
    expect(tags).toEqual([{ name: 'trunk', hash: res.rootCatalog, branch: '' }]);
  });

  it('chains a second revision and tags root catalogs in the history database', () => {
    const out = path.join(work, 'out-chain');
    const first = publish(out);
    fs.writeFileSync(path.join(tree, 'added'), 'new in revision 2\n');
    try {
      const second = publishRepository({ tree, fqrn: FQRN, out, keys, timestamp: MTIME + 120, tags: [{ name: 'v1', revision: 1 }, { name: 'trunk', revision: 2 }] });
      expect(second.revision).toBe(2);
      const repo = second.repository;
      withCatalog(catalogObject(repo, second.rootCatalog), (q) => {
        const props = Object.fromEntries(q('SELECT key, value FROM properties').map((r) => [r['key'], r['value']]));
        expect(props).toMatchObject({ revision: '2', previous_revision: first.rootCatalog });
      });
      const h = manifestField(repo, 'H');
      const tags = withCatalog(path.join(repo, 'data', h.slice(0, 2), `${h.slice(2)}H`), (q) => q('SELECT name, hash, revision FROM tags ORDER BY name'));
      expect(tags).toEqual([
        { name: 'trunk', hash: second.rootCatalog, revision: 2n },
        { name: 'v1', hash: first.rootCatalog, revision: 1n },
      ]);
      const realH = manifestField(realRepo, 'H');
      const realHistorySchema = withCatalog(path.join(realRepo, 'data', realH.slice(0, 2), `${realH.slice(2)}H`), schemaOf);
      expect(withCatalog(path.join(repo, 'data', h.slice(0, 2), `${h.slice(2)}H`), schemaOf)).toEqual(realHistorySchema);
    } finally {
      fs.rmSync(path.join(tree, 'added'));
    }
  });
});

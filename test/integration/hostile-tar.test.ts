// Hostile base tarballs and layers (issue 17, cases 10, 14, 16 and 20): crafted byte by byte with a
// small ustar/PAX writer below, so that the exact header bytes are under the test's control. Each
// must be refused with one line naming the tarball or layer and the member, quickly, with nothing
// written and nothing left in $TMPDIR; valid neighbours of each must still build.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Run, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { hasCommand } from '../helpers/env.js';
import { member, pax, tarball } from '../helpers/raw-tar.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

let work: string;
let cvmfs: string;
let spec: string;
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };

/** A normal first member, so that what follows is not refused for being first. */
const ETC = member({ name: 'etc/', flag: '5' });
const FILE = (name = 'etc/ok') => member({ name }, Buffer.from('ok\n'));

function write(name: string, bytes: Buffer): string {
  const p = path.join(work, name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** An OCI layout of one layer `blob`, described as `describedAs` (a digest) and `diffId`. */
function ociLayout(name: string, blob: Buffer, diffId: string, describedAs?: string): string {
  const dir = path.join(work, name);
  const blobs = path.join(dir, 'blobs/sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const digestOf = (b: Buffer) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');
  const put = (b: Buffer) => {
    const d = digestOf(b);
    fs.writeFileSync(path.join(blobs, d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const layerDigest = describedAs ?? digestOf(blob);
  fs.writeFileSync(path.join(blobs, layerDigest.slice(7)), blob);
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] } })));
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: blob.length }],
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 't' } }] }),
  );
  return `oci:${dir}:t`;
}

let runs = 0;
/** Build on `base` into `format`, with a private $TMPDIR that must be empty afterwards. */
function build(base: string, format: string, extra: string[] = []): Run & { out: string } {
  const out = path.join(work, `out-${++runs}${format === 'squashfs' ? '.sqfs' : format === 'docker-archive' ? '.tar' : ''}`);
  const tmp = path.join(work, `tmp-${runs}`);
  fs.mkdirSync(tmp);
  const r = shrinkwrap(['--cvmfs-root', cvmfs, '--spec', spec, '--base', base, '--format', format, '-o', out, '-q', ...extra], { env: { ...ENV, TMPDIR: tmp } });
  expect(fs.readdirSync(tmp), `left in $TMPDIR after: ${r.stderr}`).toEqual([]);
  return { ...r, out };
}

/** Refused in every format: exit 2, one line naming `culprit`, no output. */
function refusedEverywhere(base: string, culprit: string | RegExp, extra: string[] = []): void {
  for (const format of ['dir', 'squashfs', 'oci']) {
    const r = build(base, format, extra);
    expectOneLineError(r, 2, culprit);
    expect(r.stderr.length, 'a one-line message of reasonable length').toBeLessThan(600);
    expect(fs.existsSync(r.out), `${format}: output written`).toBe(false);
  }
}

beforeAll(() => {
  work = tmpDir('sw-hostile-tar-');
  cvmfs = makeTree(path.join(work, 'cvmfs'), { 'r.ch/sw/bin/tool': { file: '#!/bin/sh\n', mode: 0o755 } });
  spec = writeSpec(work, 'r.ch.spec', ['/sw/*']);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('the raw tar writer', () => {
  it('makes tarballs GNU tar lists and shrinkwrap builds on (the baseline for the hostile ones)', () => {
    const good = write('good.tar', tarball(ETC, FILE(), pax([['path', 'etc/' + 'p'.repeat(150)]]), FILE('ignored'), member({ name: 'etc/link', flag: '2', linkname: 'ok' })));
    expect(execFileSync('tar', ['-tf', good], { encoding: 'utf8' }).split('\n')).toEqual(['etc/', 'etc/ok', 'etc/' + 'p'.repeat(150), 'etc/link', '']);
    for (const format of ['dir', 'squashfs', 'oci']) {
      const r = build(good, format);
      expect(r.code, r.stderr).toBe(0);
    }
  });
});

describe('case 10: path limits on base entries (PATH_MAX, NAME_MAX, depth), before any quadratic work', () => {
  it('a 376-byte .tar.gz naming a/a/…/a (40,000 components) is refused at once, in one short line', () => {
    const deep = 'a/'.repeat(39_999) + 'a';
    const gz = write('deep.tar.gz', zlib.gzipSync(tarball(pax([['path', deep]]), member({ name: 'a', flag: '5' })), { level: 9 }));
    expect(fs.statSync(gz).size).toBeLessThan(1000);
    const t0 = Date.now();
    refusedEverywhere(gz, /deep\.tar\.gz: entry 'a\/a\/a.*….*a\/a': a path of 80000 bytes, longer than PATH_MAX \(4096\)/);
    expect(Date.now() - t0, 'three builds').toBeLessThan(30_000);
  }, 300_000);

  it('a name component longer than NAME_MAX (255) is refused; 255 bytes build and unsquashfs lists them', () => {
    const long = write('long-name.tar', tarball(ETC, pax([['path', 'etc/' + 'n'.repeat(256)]]), FILE('ignored')));
    refusedEverywhere(long, /long-name\.tar: entry 'etc\/n+…n+': a name of 256 bytes, longer than NAME_MAX \(255\)/);
    const ok = write('max-name.tar', tarball(ETC, pax([['path', 'etc/' + 'n'.repeat(255)]]), FILE('ignored')));
    const r = build(ok, 'squashfs');
    expect(r.code, r.stderr).toBe(0);
    if (hasCommand('unsquashfs')) expect(execFileSync('unsquashfs', ['-lls', r.out], { encoding: 'utf8' })).toContain('/etc/' + 'n'.repeat(255));
  });

  it('a path deeper than the depth limit is refused, though shorter than PATH_MAX', () => {
    const deep = write('too-deep.tar', tarball(pax([['path', 'd/'.repeat(300) + 'f']]), FILE('ignored')));
    refusedEverywhere(deep, /too-deep\.tar: entry 'd\/d.*….*d\/f': a path of 301 components, deeper than 256/);
  });

  it('link targets: a symlink or hard link target of PATH_MAX bytes or more is refused', () => {
    const sym = write('long-symlink.tar', tarball(ETC, pax([['linkpath', 'x'.repeat(5000)]]), member({ name: 'etc/l', flag: '2', linkname: 'x' })));
    refusedEverywhere(sym, /long-symlink\.tar: entry 'etc\/l': symlink target of 5000 bytes, longer than PATH_MAX \(4096\)/);
    const hard = write('long-hardlink.tar', tarball(ETC, FILE(), pax([['linkpath', 'etc/' + 'y/'.repeat(3000)]]), member({ name: 'etc/h', flag: '1', linkname: 'x' })));
    refusedEverywhere(hard, /long-hardlink\.tar: entry 'etc\/h': hard link target 'etc\/y.*….*y\/': a path of \d+ bytes, longer than PATH_MAX/);
  });
});

describe('case 14: layer blobs are checked before they are used, and decompression is capped', () => {
  // 16 gzip members of 64 MiB of zeros each: 1 GiB from about 1 MB.
  let bomb: Buffer;
  beforeAll(() => {
    const one = zlib.gzipSync(Buffer.alloc(64 << 20), { level: 9 });
    bomb = Buffer.concat(Array.from({ length: 16 }, () => one));
  });

  it('a gzip bomb is refused as soon as it passes --max-layer-size, leaving nothing in $TMPDIR', () => {
    const gz = write('bomb.tar.gz', bomb);
    expect(bomb.length).toBeLessThan(2 << 20);
    const t0 = Date.now();
    const r = build(gz, 'squashfs', ['--max-layer-size', '10M']);
    expectOneLineError(r, 2, /bomb\.tar\.gz: decompresses to more than 10 MiB, the limit set by --max-layer-size \(default 64G; raise it if the layer is genuine\)/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(fs.existsSync(r.out)).toBe(false);
  }, 120_000);

  it('a bad --max-layer-size is refused', () => {
    expectOneLineError(build(write('any.tar', tarball(ETC, FILE())), 'dir', ['--max-layer-size', '10X']), 2, /--max-layer-size 10X: expected a size/);
  });

  it('an OCI layer whose blob does not match its digest is refused before it is decompressed', () => {
    // The blob's gzip stream is corrupt half-way: decompressing it first would report that instead.
    const tar = tarball(ETC, FILE());
    const good = zlib.gzipSync(tar);
    const bad = Buffer.from(good);
    for (let i = 20; i < bad.length - 8; i++) bad[i] = 0xff - bad[i]!;
    const diffId = 'sha256:' + crypto.createHash('sha256').update(tar).digest('hex');
    const goodDigest = 'sha256:' + crypto.createHash('sha256').update(good).digest('hex');
    const layout = ociLayout('wrong-digest', bad, diffId, goodDigest);
    refusedEverywhere(layout, /wrong-digest:t: layer 1 \(sha256:[0-9a-f]{12}\): content has digest sha256:[0-9a-f]{64}, but the image says sha256:/);
    // The same layer, correctly described, builds.
    const r = build(ociLayout('right-digest', good, diffId), 'oci');
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('case 16: NUL bytes and empty names are refused in every name a tar can carry', () => {
  it('a PAX path with a NUL is refused, naming the member, in every format', () => {
    const nul = write('pax-nul.tar', tarball(ETC, pax([['path', Buffer.from('etc/pass\0wd')]]), FILE('ignored')));
    refusedEverywhere(nul, /pax-nul\.tar: entry 'etc\/pass\\x00wd': a name with a NUL byte/);
  });

  it('a PAX linkpath with a NUL is refused', () => {
    const nul = write('pax-link-nul.tar', tarball(ETC, pax([['linkpath', Buffer.from('ok\0/../../x')]]), member({ name: 'etc/l', flag: '2' })));
    refusedEverywhere(nul, /pax-link-nul\.tar: entry 'etc\/l': symlink target 'ok\\x00\/\.\.\/\.\.\/x' has a NUL byte/);
  });

  it('a GNU long name with bytes after its NUL is refused', () => {
    const nul = write('gnu-nul.tar', tarball(ETC, member({ name: '././@LongLink', flag: 'L' }, Buffer.from('etc/a\0../../b\0')), FILE('ignored')));
    refusedEverywhere(nul, /gnu-nul\.tar: header at byte \d+: GNU long name 'etc\/a\\x00\.\.\/\.\.\/b' has a NUL byte inside/);
    // As GNU tar writes it (one trailing NUL), it is fine.
    const ok = write('gnu-ok.tar', tarball(ETC, member({ name: '././@LongLink', flag: 'L' }, Buffer.from('etc/' + 'g'.repeat(120) + '\0')), FILE('ignored')));
    expect(build(ok, 'dir').code).toBe(0);
  });

  it('a member with an empty name is refused', () => {
    const empty = write('empty-name.tar', tarball(ETC, FILE('')));
    refusedEverywhere(empty, /empty-name\.tar: entry '': an empty name/);
  });

  it('an xattr name with a NUL is refused', () => {
    const nul = write('xattr-nul.tar', tarball(ETC, pax([['SCHILY.xattr.user.a\0b', 'v']]), FILE()));
    refusedEverywhere(nul, /xattr-nul\.tar: header at byte \d+: xattr name 'user\.a\\x00b' has a NUL byte/);
  });
});

describe('case 20: empty bases and numbers that are not plain decimal', () => {
  it('a 0-byte --base file is refused', () => {
    refusedEverywhere(write('zero.tar', Buffer.alloc(0)), /zero\.tar: an empty file \(0 bytes\), not a tar archive/);
  });

  it('a tarball with no members (only the end-of-archive blocks) is refused', () => {
    refusedEverywhere(write('no-members.tar', Buffer.alloc(10240)), /no-members\.tar: no members: an empty archive is not a root filesystem/);
    refusedEverywhere(write('no-members.tar.gz', zlib.gzipSync(Buffer.alloc(0))), /no-members\.tar\.gz: no members/);
  });

  it('PAX size=0x4 and size=4e0 are refused', () => {
    for (const size of ['0x4', '4e0', ' 4', '+4']) {
      const t = write(`size-${runs}.tar`, tarball(ETC, pax([['size', size]]), member({ name: 'etc/f' }, Buffer.from('abcd'))));
      refusedEverywhere(t, `PAX size=${size} is not a number (decimal digits only)`);
    }
  });

  it('PAX uid=1.5 and gid=0x10 are refused; mtime keeps its fraction', () => {
    refusedEverywhere(write('uid-frac.tar', tarball(ETC, pax([['uid', '1.5']]), FILE())), /uid-frac\.tar: header at byte \d+: PAX uid=1\.5 is not a number \(decimal digits only\)/);
    refusedEverywhere(write('gid-hex.tar', tarball(ETC, pax([['gid', '0x10']]), FILE())), /gid-hex\.tar: header at byte \d+: PAX gid=0x10 is not a number \(decimal digits only\)/);
    expect(build(write('mtime-frac.tar', tarball(ETC, pax([['mtime', '1500000000.123456789']]), FILE())), 'dir').code).toBe(0);
  });

  it('a PAX record length that is not decimal is refused', () => {
    const body = Buffer.from('0x12 path=etc/abc\n');
    refusedEverywhere(write('pax-len.tar', tarball(ETC, member({ name: 'PaxHeaders/x', flag: 'x' }, body), FILE('ignored'))), /pax-len\.tar: header at byte \d+: malformed PAX record at byte 0/);
  });

  it('a negative GNU base-256 uid is refused', () => {
    const neg = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    refusedEverywhere(write('neg-uid.tar', tarball(ETC, member({ name: 'etc/f', uidField: neg }))), /neg-uid\.tar: header at byte \d+: uid field is negative/);
  });
});

// Our tar codec, checked by GNU tar (listing, extraction with xattrs, diff against the source), by
// gzip/zstd (the blob decompresses to exactly the diff_id's bytes), and by reading GNU tar's own
// archives back with our reader.
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromText } from '../../src/model/bytes.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import type { Entry } from '../../src/model/entry.js';
import { InputError } from '../../src/model/errors.js';
import { assignHardLinks } from '../../src/model/plan.js';
import { walkTree } from '../../src/sources/posix.js';
import { readTar } from '../../src/sources/tar/reader.js';
import { writeLayer } from '../../src/writers/tar/layer.js';
import { diffTrees, findListing } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

let work: string;
let src: string;
let entries: Entry[];
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_bind_service, binary

function sha256(file: string): string {
  return 'sha256:' + crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

beforeAll(() => {
  work = tmpDir('sw-tar-');
  src = path.join(work, 'src');
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251; // compressible, not trivial
  makeTree(src, {
    'etc/empty': '',
    'etc/one': 'x',
    'etc/block': Buffer.alloc(512, 'a').toString(),
    ['deep/' + 'd'.repeat(90) + '/' + 'f'.repeat(120)]: 'long name',
    'usr/bin/tool': { file: '#!/bin/sh\necho ok\n', mode: 0o4755 },
    'usr/bin/tool-hard': { hardlinkOf: 'usr/bin/tool' },
    'usr/lib/long-link': { link: '/'.padEnd(1, '/') + 'x/'.repeat(80) + 'target' },
    'usr/lib/rel-link': { link: '../bin/tool' },
    'var/fifo': { fifo: true },
    'var/sticky': { dir: true, mode: 0o1777 },
    'utf8/caf\u00e9-\u{1f600}': 'unicode',
  });
  fs.writeFileSync(path.join(src, 'big.bin'), big);
  fs.chmodSync(path.join(src, 'var/sticky'), 0o1777);
  const diag = new Diagnostics(() => {});
  entries = walkTree(fromText(src), '/', 'test', diag);
  assignHardLinks(entries);
  for (const e of entries) {
    e.mtime = 1_500_000_000;
    if (e.path === '/usr/bin/tool') e.xattrs = [['user.note', Buffer.from('hello')], ['security.capability', CAP]];
    if (e.path === '/etc/one') [e.uid, e.gid] = [3_000_000, 4_000_000]; // beyond ustar's 8-byte octal
  }
  fs.utimesSync(src, 1_500_000_000, 1_500_000_000);
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', '@1500000000', '{}', '+']);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('tar writer', () => {
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    it(`writes a ${compression} layer that GNU tar lists and extracts exactly`, async () => {
      if (compression === 'zstd' && !canRun(hasCommand('zstd'), 'zstd layer test', 'zstd is not installed')) return;
      const blob = path.join(work, `layer.${compression}`);
      const r = await writeLayer(entries, blob, { compression, level: compression === 'zstd' ? 3 : 6, threads: 0 }, new Diagnostics(() => {}));
      expect(r.digest).toBe(sha256(blob));
      expect(r.size).toBe(fs.statSync(blob).size);
      // The blob decompresses to the tar whose sha256 is the diff_id.
      const tarFile = path.join(work, `layer-${compression}.tar`);
      if (compression === 'gzip') execFileSync('sh', ['-c', `gzip -dc < '${blob}' > '${tarFile}'`]);
      else if (compression === 'zstd') execFileSync('sh', ['-c', `zstd -qdc < '${blob}' > '${tarFile}'`]);
      else fs.copyFileSync(blob, tarFile);
      expect(r.diffId).toBe(sha256(tarFile));
      expect(r.tarSize).toBe(fs.statSync(tarFile).size);
      // Exactly two zero blocks at the end, after 512-aligned members.
      const bytes = fs.readFileSync(tarFile);
      expect(bytes.length % 512).toBe(0);
      expect(bytes.subarray(-1024).every((b) => b === 0)).toBe(true);
      expect(bytes.subarray(-1536, -1024).every((b) => b === 0)).toBe(false);

      const listing = execFileSync('tar', ['-tvf', tarFile, '--numeric-owner', '--full-time'], { encoding: 'latin1' });
      expect(listing).toContain('-rwsr-xr-x 0/0');
      expect(listing).toMatch(/hrwsr-xr-x 0\/0 +0 .* usr\/bin\/tool-hard link to usr\/bin\/tool/);
      expect(listing).toMatch(/-rw-r--r-- 3000000\/4000000 +1 .* etc\/one/);
      expect(listing).toMatch(/prw-r--r-- 0\/0 .* var\/fifo/);
      expect(listing).toMatch(/drwxrwxrwt 0\/0 .* var\/sticky\//);
      expect(listing).toContain('f'.repeat(120));
      expect(listing).toContain('x/'.repeat(80) + 'target');
      expect(listing).not.toMatch(/PaxHeaders/);

      const out = path.join(work, `x-${compression}`);
      fs.mkdirSync(out);
      execFileSync('tar', ['-xpf', tarFile, '-C', out, '--xattrs', '--xattrs-include=*', '--numeric-owner']);
      expect(diffTrees(src, out)).toBe('');
      const strip = (l: string[]) => l.filter((x) => !x.includes('|etc/one') && !/ \|$/.test(x));
      expect(strip(findListing(out))).toEqual(strip(findListing(src)));
      if (isRoot && hasCommand('getfattr')) {
        const attrs = execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', path.join(out, 'usr/bin/tool')], { encoding: 'utf8' });
        expect(attrs).toContain('security.capability=0x' + CAP.toString('hex'));
        expect(attrs).toContain('user.note=0x' + Buffer.from('hello').toString('hex'));
      }
    });
  }
  // Worker threads run from dist/: the CLI tests build OCI images with --threads 1 and 2 and compare.
});

describe('tar reader', () => {
  it('reads our archives back: names, types, modes, ids, links, xattrs and content offsets', async () => {
    const blob = path.join(work, 'rt.tar');
    await writeLayer(entries, blob, { compression: 'none', level: 0, threads: 0 }, new Diagnostics(() => {}));
    const members = [...readTar(blob, 'rt.tar')];
    const byName = new Map(members.map((m) => [m.name, m]));
    expect(members.length).toBe(entries.length - 1); // no root entry in a layer
    const tool = byName.get('usr/bin/tool')!;
    expect(tool.mode).toBe(0o4755);
    expect(tool.xattrs).toEqual([['security.capability', CAP], ['user.note', Buffer.from('hello')]]);
    expect(byName.get('usr/bin/tool-hard')).toMatchObject({ type: 'hardlink', linkname: 'usr/bin/tool' });
    expect(byName.get('etc/one')).toMatchObject({ uid: 3_000_000, gid: 4_000_000, size: 1 });
    expect(byName.get('usr/lib/long-link')!.linkname).toBe('/' + 'x/'.repeat(80) + 'target');
    const big = byName.get('big.bin')!;
    const fd = fs.openSync(blob, 'r');
    const got = Buffer.alloc(big.size);
    fs.readSync(fd, got, 0, big.size, big.offset);
    fs.closeSync(fd);
    expect(got.equals(fs.readFileSync(path.join(src, 'big.bin')))).toBe(true);
    expect(byName.has(fromText('utf8/caf\u00e9-\u{1f600}'))).toBe(true);
  });

  for (const format of ['pax', 'gnu', 'ustar']) {
    it(`reads GNU tar's --format=${format} archives`, () => {
      const file = path.join(work, `gnu-${format}.tar`);
      // ustar holds neither the 210-byte name nor the 163-byte link text.
      const skip = format === 'ustar' ? ['--exclude=./deep', '--exclude=./usr/lib/long-link'] : [];
      const r = spawnSync('tar', ['-cf', file, '-C', src, '--sort=name', `--format=${format}`, ...skip, '.'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const members = [...readTar(file, file)];
      const names = members.map((m) => m.name.replace(/^\.\/?/, '')).filter((n) => n !== '');
      const expected = entries.map((e) => e.path.slice(1)).filter((n) => n !== '' && (format !== 'ustar' || !/^deep|long-link/.test(n)));
      expect(names.sort()).toEqual(expected.sort());
      const hard = members.find((m) => m.name.endsWith('tool-hard'))!;
      expect(hard.type).toBe('hardlink');
    });
  }

  it('refuses a truncated archive and a corrupt header, naming the archive and the byte', async () => {
    const blob = path.join(work, 'trunc.tar');
    await writeLayer(entries, blob, { compression: 'none', level: 0, threads: 0 }, new Diagnostics(() => {}));
    const whole = fs.readFileSync(blob);
    fs.writeFileSync(blob, whole.subarray(0, 700_000));
    expect(() => [...readTar(blob, 'layer 1 of test')]).toThrow(/layer 1 of test: truncated/);
    const bad = Buffer.from(whole);
    bad[0] ^= 0xff;
    fs.writeFileSync(blob, bad);
    expect(() => [...readTar(blob, 'layer 1 of test')]).toThrow(InputError);
    expect(() => [...readTar(blob, 'layer 1 of test')]).toThrow(/header at byte 0: bad checksum/);
  });
});

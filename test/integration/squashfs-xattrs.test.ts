// Extended attributes in SquashFS images. POSIX sources do not read xattrs (layers from tar
// sources carry them), so these entries get theirs here, and the writer is called directly.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Diagnostics } from '../../src/model/diagnostics.js';
import type { Entry } from '../../src/model/entry.js';
import { walkTree } from '../../src/sources/posix.js';
import { openSquashfs } from '../../src/sources/squashfs/reader.js';
import { verifySquashfs } from '../../src/verify/squashfs/index.js';
import { writeSquashfs } from '../../src/writers/squashfs/index.js';
import { canKernelMount, run, withKernelMount } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

let work: string;
let img: string;
let diag: Diagnostics;
// security.capability for cap_net_raw+ep (what ping carries), as getfattr -e hex prints it.
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

beforeAll(async () => {
  work = tmpDir('sw-xattr-');
  const src = makeTree(path.join(work, 'src'), {
    'bin/ping': { file: 'elf', mode: 0o755 },
    'etc/conf': 'x',
    'etc/other': 'y',
    'etc/link': { link: 'conf' },
    'dir/f': 'z',
  });
  const entries = walkTree(src, '/', 'test', new Diagnostics());
  const at = (p: string) => entries.find((e) => e.path === p)!;
  at('/bin/ping').xattrs = [['security.capability', CAP]];
  at('/etc/conf').xattrs = [
    ['user.origin', Buffer.from('cvmfs')],
    ['trusted.note', Buffer.from([0, 1, 2, 255])],
  ];
  // The same set as /etc/conf, in another order: one xattr id for both.
  at('/etc/other').xattrs = [
    ['trusted.note', Buffer.from([0, 1, 2, 255])],
    ['user.origin', Buffer.from('cvmfs')],
  ];
  at('/dir').xattrs = [
    ['user.dir', Buffer.from('yes')],
    ['system.posix_acl_access', Buffer.from([2, 0, 0, 0])],
  ];
  at('/etc/link').xattrs = [
    ['trusted.on-a-link', Buffer.from('1')],
    ['user.not-on-a-link', Buffer.from('2')],
  ];
  img = path.join(work, 'x.sqfs');
  diag = new Diagnostics();
  await writeSquashfs(entries, img, { compression: 'gzip', level: 6, blockSize: 131072, mkfsTime: 0, exportTable: true, dedup: true, threads: 0 }, diag);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('squashfs id table', () => {
  const image = (ids: number) => {
    const entries: Entry[] = [{ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, reason: 't' }];
    for (let i = 1; i < ids; i++) entries.push({ path: `/l${String(i).padStart(6, '0')}`, type: 'symlink', mode: 0o777, uid: i, gid: i, mtime: 0, size: 1, target: 'x', reason: 't' });
    return entries;
  };
  const opts = { compression: 'gzip' as const, level: 1, blockSize: 131072, mkfsTime: 0, exportTable: false, dedup: true, threads: 0 };

  it('holds 65535 distinct uids and gids (id_count is a u16)', async () => {
    const img = path.join(work, 'ids.sqfs');
    await writeSquashfs(image(65535), img, opts, new Diagnostics());
    expect(run('unsquashfs', ['-s', img])).toMatch(/Number of ids 65535/);
  });

  it('refuses 65536 with a clear error', async () => {
    await expect(writeSquashfs(image(65536), path.join(work, 'ids2.sqfs'), opts, new Diagnostics())).rejects.toThrow(
      'more than 65535 distinct uids and gids: SquashFS cannot store them (try --owner)',
    );
  });
});

describe('squashfs xattrs', () => {
  it('drops what SquashFS cannot store, with a warning', () => {
    expect(diag.warnings.map((w) => w.message).sort()).toEqual([
      '/dir: extended attribute system.posix_acl_access dropped (SquashFS stores user., trusted. and security. only)',
      '/etc/link: extended attribute user.not-on-a-link dropped (Linux allows user. attributes only on files and directories)',
    ]);
  });

  it('reads back with our reader, one id for identical sets, and verifies', async () => {
    const image = await openSquashfs(img);
    const got = new Map([...image.walk()].map((e) => [e.path, e.xattrs?.map(([k, v]) => `${k}=${v.toString('hex')}`).sort()]));
    image.close();
    expect(got.get('/bin/ping')).toEqual([`security.capability=${CAP.toString('hex')}`]);
    expect(got.get('/etc/conf')).toEqual(['trusted.note=000102ff', `user.origin=${Buffer.from('cvmfs').toString('hex')}`]);
    expect(got.get('/etc/other')).toEqual(got.get('/etc/conf'));
    expect(got.get('/dir')).toEqual([`user.dir=${Buffer.from('yes').toString('hex')}`]);
    expect(got.get('/etc/link')).toEqual([`trusted.on-a-link=31`]);
    const v = await verifySquashfs(img, { data: true });
    expect(v.problems).toEqual([]);
    expect(run('unsquashfs', ['-s', img])).toMatch(/Xattrs are compressed/);
  });

  it.runIf(canRun(isRoot && hasCommand('getfattr'), 'xattrs through unsquashfs -d and the kernel', 'needs root and getfattr'))(
    'unsquashfs -d restores them, and the kernel shows them',
    () => {
      const out = path.join(work, 'out');
      run('unsquashfs', ['-n', '-d', out, img]);
      const attrs = (root: string, p: string) =>
        execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path.join(root, p)], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.includes('='))
          .sort();
      expect(attrs(out, 'bin/ping')).toEqual([`security.capability=0x${CAP.toString('hex')}`]);
      expect(attrs(out, 'etc/conf')).toEqual(['trusted.note=0x000102ff', `user.origin=0x${Buffer.from('cvmfs').toString('hex')}`]);
      expect(attrs(out, 'etc/link')).toEqual(['trusted.on-a-link=0x31']);
      if (canKernelMount()) {
        withKernelMount(img, work, (mnt) => {
          expect(attrs(mnt, 'bin/ping')).toEqual([`security.capability=0x${CAP.toString('hex')}`]);
          expect(attrs(mnt, 'dir')).toEqual([`user.dir=0x${Buffer.from('yes').toString('hex')}`]);
        });
      }
    },
  );
});

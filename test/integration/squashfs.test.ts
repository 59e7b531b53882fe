// Every SquashFS image we write is read back by the real consumers: unsquashfs (superblock,
// listing, extraction), sqfs2tar, squashfuse and the Linux kernel.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devNumbers, modeString } from '../../src/model/entry.js';
import { entryType } from '../../src/sources/posix.js';
import { availableCodecs } from '../../src/codecs/index.js';
import { shrinkwrap } from '../helpers/cli.js';
import { canFuse, canKernelMount, diffTrees, findListing, run, superblockInfo, unsquashfsListing, withKernelMount, withSquashfuse } from '../helpers/consumers.js';
import { canRun, isRoot } from '../helpers/env.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

const BLOCK = 128 * 1024;
let work: string;
/** The rich tree is a base root filesystem (devices and FIFOs come from base images, never /cvmfs). */
let base: string;
let cvmfs: string;
let spec: string;

/** A source tree with every case the issue names. */
function makeSource(root: string, big: boolean): void {
  const r = path.join(root, 'r.ch');
  const rnd = (n: number, seed: string) => {
    const out = Buffer.alloc(n);
    let h = crypto.createHash('sha256').update(seed).digest();
    for (let i = 0; i < n; i += 32) {
      h.copy(out, i);
      h = crypto.createHash('sha256').update(h).digest();
    }
    return out;
  };
  const text = (n: number) => Buffer.from('ATLAS AnalysisBase 21.2.75 x86_64-slc6-gcc62-opt '.repeat(Math.ceil(n / 40) + 1).slice(0, n));
  makeTree(root, {
    'r.ch/empty-dir': { dir: true },
    'r.ch/files/empty': '',
    'r.ch/files/one-byte': 'x',
    'r.ch/files/link-to-empty': { link: 'empty' },
    'r.ch/long-link': { link: 'd/'.repeat(1999) + 'end' }, // 4001 bytes
    'r.ch/hard/a': 'shared by three names',
    'r.ch/hard/b': { hardlinkOf: 'r.ch/hard/a' },
    'r.ch/hard/sub/c': { hardlinkOf: 'r.ch/hard/a' },
    'r.ch/names/file with spaces': 's',
    'r.ch/names/données-é-日本語-🚀': 'u',
    ['r.ch/names/' + 'n'.repeat(255)]: 'long name',
    'r.ch/modes/setuid': { file: 'x', mode: 0o4755 },
    'r.ch/modes/none': { file: 'x', mode: 0o000 },
    'r.ch/fifo': { fifo: true },
  });
  fs.writeFileSync(path.join(r, 'files/one-block'), text(BLOCK));
  fs.writeFileSync(path.join(r, 'files/three-blocks'), text(3 * BLOCK));
  fs.writeFileSync(path.join(r, 'files/blocks-and-tail'), Buffer.concat([text(2 * BLOCK), rnd(5000, 't')]));
  fs.writeFileSync(path.join(r, 'files/random'), rnd(BLOCK + 777, 'r')); // incompressible: stored raw
  fs.writeFileSync(path.join(r, 'files/duplicate-of-blocks-and-tail'), fs.readFileSync(path.join(r, 'files/blocks-and-tail')));
  fs.writeFileSync(path.join(r, 'files/duplicate-small'), 'x');
  // Large files are checksummed only once their size repeats (DataWriter.unsummed): a third copy,
  // and two files of one size with different bytes, which must both stay.
  fs.writeFileSync(path.join(r, 'files/third-copy-of-blocks-and-tail'), fs.readFileSync(path.join(r, 'files/blocks-and-tail')));
  fs.writeFileSync(path.join(r, 'files/same-size-a'), rnd(BLOCK + 10, 'a'));
  fs.writeFileSync(path.join(r, 'files/same-size-b'), Buffer.concat([rnd(BLOCK, 'a'), Buffer.from('different!')]));
  // Sparse: zero blocks around data.
  const sparse = path.join(r, 'files/sparse');
  fs.writeFileSync(sparse, '');
  fs.truncateSync(sparse, 8 * BLOCK + 100);
  const fd = fs.openSync(sparse, 'r+');
  fs.writeSync(fd, text(1000), 0, 1000, 3 * BLOCK + 5);
  fs.closeSync(fd);
  fs.mkdirSync(path.join(r, 'wide'));
  const n = big ? 10_000 : 300;
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(r, 'wide', `entry-${String(i).padStart(5, '0')}`), i % 7 === 0 ? `${i}` : '');
  if (isRoot) {
    execFileSync('mknod', [path.join(r, 'dev-null'), 'c', '1', '3']);
    execFileSync('mknod', [path.join(r, 'dev-loop'), 'b', '7', '300']);
    fs.lchownSync(path.join(r, 'files/one-byte'), 1234, 5678);
    fs.lchownSync(path.join(r, 'files/link-to-empty'), 4321, 8765);
  }
  if (big) {
    // Over 4 GiB (sparse, so it costs no disk): needs the extended file inode.
    const huge = path.join(r, 'files/over-4GiB');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 2 ** 32 + 3 * BLOCK + 17);
    const h = fs.openSync(huge, 'r+');
    fs.writeSync(h, Buffer.from('the end'), 0, 7, 2 ** 32 + 2 * BLOCK);
    fs.closeSync(h);
  }
  execFileSync('find', [root, '-exec', 'touch', '-h', '-d', '@1557878400', '{}', '+']);
  fs.utimesSync(path.join(r, 'files/one-byte'), 1600000000, 1600000000);
}

function build(out: string, extra: string[] = [], rootfs = base) {
  const r = shrinkwrap(['--base', rootfs, '--cvmfs-root', cvmfs, '--spec', spec, '-o', out, ...extra], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } });
  if (r.code !== 0) throw new Error(`build failed (${r.code}): ${r.stderr}`);
  return r;
}

/** Expected `unsquashfs -lln` lines, made from the source with lstat. */
function expectedListing(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p);
      const r = `${rel}/${name}`;
      const perms = modeString(entryType(st.mode), st.mode & 0o7777);
      const when = new Date(st.mtimeMs).toISOString().slice(0, 16).replace('T', ' ');
      let size = String(st.isFile() ? st.size : st.isSymbolicLink() ? fs.readlinkSync(p).length : 0);
      if (st.isCharacterDevice() || st.isBlockDevice()) {
        // unsquashfs 4.5 prints the stored word (Linux new_encode_dev) as word>>8, word&0xff: for a
        // minor above 255 that is not major,minor (the kernel, checked below, decodes it right).
        const [major, minor] = devNumbers(st.rdev);
        const word = ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
        size = `${word >>> 8},${word & 0xff}`;
      }
      if (st.isDirectory()) size = '-';
      const link = st.isSymbolicLink() ? ` -> ${fs.readlinkSync(p)}` : '';
      out.push(`${perms} ${st.uid}/${st.gid} ${size} ${when} ${r}${link}`);
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(root, '');
  return out.sort();
}

beforeAll(() => {
  work = tmpDir('sw-sqfs-');
  base = path.join(work, 'base');
  makeSource(base, true);
  makeSource(path.join(work, 'small-base'), false);
  cvmfs = makeTree(path.join(work, 'cvmfs'), { 'x.ch/sw/setup.sh': 'export X=1\n', 'x.ch/sw/lib/libx.so': 'elf' });
  spec = writeSpec(work, 'x.ch.spec', ['/sw/*']);
}, 600_000);

afterAll(() => {
  execFileSync('chmod', ['-R', 'u+rwx', work]);
  fs.rmSync(work, { recursive: true, force: true });
});

describe('squashfs (gzip, the default) read back by every consumer', () => {
  let img: string;
  let stderr: string;
  beforeAll(() => {
    img = path.join(work, 'image.sqfs');
    stderr = build(img).stderr;
  }, 600_000);

  it('reports the build: inodes, duplicates saved, zero blocks not stored', () => {
    expect(stderr).toMatch(/wrote .*image\.sqfs: .* \(squashfs, gzip level 6, 128\.0 KiB blocks\): \d+ inodes/);
    // duplicate- and third-copy-of-blocks-and-tail, and three 1-byte 'x' files (duplicate-small,
    // modes/setuid, modes/none); not same-size-b.
    expect(stderr).toMatch(/5 duplicate files, 521\.8 KiB saved/);
    expect(stderr).toMatch(/zero blocks not stored/);
  });

  it('unsquashfs -s shows the superblock and the compression options', () => {
    const s = superblockInfo(img);
    expect(s.get('Compression')).toBe('gzip');
    expect(s.get('Block size')).toBe(String(BLOCK));
    expect(s.text).toMatch(/compression-level 6/);
    expect(s.text).toMatch(/window-size 15/);
    expect(s.text).toMatch(/Duplicates are removed/);
    expect(s.text).toMatch(/Filesystem is exportable via NFS/);
    expect(s.text).toMatch(/Creation or last append time Tue Nov 14 22:13:20 2023/);
    expect(fs.statSync(img).size % 4096).toBe(0);
  });

  it('unsquashfs -lln lists the source exactly: types, modes, owners, sizes, times, link targets', () => {
    const got = unsquashfsListing(img).filter((l) => / \/r\.ch\//.test(l));
    expect(got).toEqual(expectedListing(path.join(base, 'r.ch')).map((l) => l.replace(/ \//, ' /r.ch/')));
    expect(unsquashfsListing(img).filter((l) => / \/cvmfs\//.test(l)).map((l) => l.replace(/^.* \//, '/')).sort()).toEqual([
      '/cvmfs/x.ch',
      '/cvmfs/x.ch/sw',
      '/cvmfs/x.ch/sw/lib',
      '/cvmfs/x.ch/sw/lib/libx.so',
      '/cvmfs/x.ch/sw/setup.sh',
    ]);
  });

  it('unsquashfs -d extracts the same bytes and metadata (diff -r, find), hard links included', () => {
    const out = path.join(work, 'extracted');
    run('unsquashfs', ['-n', '-d', out, img]);
    expect(diffTrees(`${base}/r.ch`, `${out}/r.ch`)).toBe('');
    expect(findListing(path.join(out, 'r.ch'))).toEqual(findListing(path.join(base, 'r.ch')));
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('sqfs2tar converts it, with every entry', () => {
    // Streamed into tar -t: the 4 GiB file need not land on disk.
    const names = execFileSync('bash', ['-c', `set -o pipefail; sqfs2tar ${img} | tar -tf -`], { encoding: 'utf8', maxBuffer: 1 << 26 })
      .split('\n')
      .filter((l) => l !== '');
    const count = execFileSync('sh', ['-c', `cd ${base} && find r.ch | wc -l`], { encoding: 'utf8' }).trim();
    expect(names.filter((n) => n.startsWith('r.ch')).length).toBe(Number(count));
    expect(names).toContain('cvmfs/x.ch/sw/setup.sh');
  });

  it.runIf(canRun(canFuse(), 'squashfuse', 'needs /dev/fuse, squashfuse and fusermount3'))('squashfuse mounts it and shows the same tree', () => {
    withSquashfuse(img, work, (mnt) => {
      expect(findListing(path.join(mnt, 'r.ch'))).toEqual(findListing(path.join(base, 'r.ch')));
      expect(fs.readFileSync(path.join(mnt, 'r.ch/files/three-blocks'))).toEqual(fs.readFileSync(path.join(base, 'r.ch/files/three-blocks')));
    });
  });

  it.runIf(canRun(canKernelMount(), 'kernel loop mount', 'needs root, loop devices and the squashfs module'))(
    'the Linux kernel mounts it: same listing with link counts, same bytes, lookups in the 10,000-entry directory',
    () => {
      withKernelMount(img, work, (mnt) => {
        expect(findListing(path.join(mnt, 'r.ch'))).toEqual(findListing(path.join(base, 'r.ch')));
        expect(diffTrees(`${base}/r.ch`, `${mnt}/r.ch`)).toBe('');
        // Lookups by name go through the directory index.
        for (const i of [0, 1, 255, 256, 4097, 9999]) {
          const name = `entry-${String(i).padStart(5, '0')}`;
          expect(fs.readFileSync(path.join(mnt, 'r.ch/wide', name), 'utf8')).toBe(i % 7 === 0 ? `${i}` : '');
        }
        expect(fs.existsSync(path.join(mnt, 'r.ch/wide/entry-10000'))).toBe(false);
        expect(fs.statSync(path.join(mnt, 'r.ch/files/over-4GiB')).size).toBe(2 ** 32 + 3 * BLOCK + 17);
        const fd = fs.openSync(path.join(mnt, 'r.ch/files/over-4GiB'), 'r');
        const tail = Buffer.alloc(7);
        fs.readSync(fd, tail, 0, 7, 2 ** 32 + 2 * BLOCK);
        fs.closeSync(fd);
        expect(tail.toString()).toBe('the end');
        expect(fs.statSync(path.join(mnt, 'r.ch/hard/a')).nlink).toBe(3);
        if (isRoot) {
          for (const d of ['dev-null', 'dev-loop']) {
            const [src, got] = [fs.lstatSync(path.join(base, 'r.ch', d)), fs.lstatSync(path.join(mnt, 'r.ch', d))];
            expect([got.mode, got.rdev], d).toEqual([src.mode, src.rdev]);
          }
        }
      });
    },
  );

  it('passes shrinkwrap verify: structure as the kernel checks it, every data block, and the plan', () => {
    const plan = path.join(work, 'plan.json');
    const p = shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, '--spec', spec, '-q']);
    fs.writeFileSync(plan, p.stdout);
    const v = shrinkwrap(['verify', img, '--data', '--manifest', plan, '--image-root', '/cvmfs']);
    expect(v.stdout).toMatch(/: OK: \d+ inodes, \d+ entries, gzip, 131072-byte blocks, all data blocks read, 5 manifest entries compared/);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it('shrinkwrap verify fails a damaged copy, naming the problem', () => {
    const bad = path.join(work, 'damaged.sqfs');
    const bytes = fs.readFileSync(img);
    bytes.writeBigUInt64LE(bytes.readBigUInt64LE(40) + 8n, 40); // bytes_used: the id table no longer ends there
    fs.writeFileSync(bad, bytes);
    const v = shrinkwrap(['verify', bad]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/damaged\.sqfs: .*id/);
    expect(v.stdout).toMatch(/damaged\.sqfs: \d+ problems?:/);
    fs.rmSync(bad);
  });

  it('is byte-identical when built again from another directory, in another time zone', () => {
    const again = path.join(work, 'again.sqfs');
    const r = shrinkwrap(['--base', base, '--cvmfs-root', cvmfs, '--spec', spec, '-o', again], {
      cwd: '/',
      env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000', TZ: 'America/Los_Angeles' },
    });
    expect(r.code, r.stderr).toBe(0);
    const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    expect(sha(again)).toBe(sha(img));
    // Nor does the number of compression threads change a byte.
    for (const threads of ['1', '3']) {
      const t = shrinkwrap(['--base', base, '--cvmfs-root', cvmfs, '--spec', spec, '-o', again, '--force', '--threads', threads], {
        env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' },
      });
      expect(t.code, t.stderr).toBe(0);
      expect(sha(again), `--threads ${threads}`).toBe(sha(img));
    }
    fs.rmSync(again);
  });
});

describe('every compressor, read back by unsquashfs and the kernel', () => {
  const small = () => path.join(work, 'small-base');

  const offered = availableCodecs();
  for (const [compression, label] of [
    ['zstd', 'zstd'],
    ['xz', 'xz'],
    ['none', 'gzip'],
    ['lz4', 'lz4'],
  ] as const) {
    if (compression !== 'none' && !offered.includes(compression)) {
      it(`--compression ${compression} is refused in one line when this build has no ${compression}`, () => {
        const r = shrinkwrap(['--base', small(), '--cvmfs-root', cvmfs, '--spec', spec, '-o', path.join(work, 'never.sqfs'), '--compression', compression]);
        expect(r.code).toBe(2);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(new RegExp(`shrinkwrap: error: .*${compression}`));
      });
      continue;
    }
    it(`--compression ${compression}`, () => {
      const img = path.join(work, `small-${compression}.sqfs`);
      const r = shrinkwrap(['--base', small(), '--cvmfs-root', cvmfs, '--spec', spec, '-o', img, '--compression', compression]);
      expect(r.code, r.stderr).toBe(0);
      expect(superblockInfo(img).get('Compression')).toBe(label);
      const v = shrinkwrap(['verify', '--data', img]);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      const out = path.join(work, `x-${compression}`);
      run('unsquashfs', ['-n', '-d', out, img]);
      expect(findListing(path.join(out, 'r.ch'))).toEqual(findListing(path.join(small(), 'r.ch')));
      fs.rmSync(out, { recursive: true, force: true });
      if (canKernelMount()) {
        withKernelMount(img, work, (mnt) => {
          expect(diffTrees(`${small()}/r.ch`, `${mnt}/r.ch`)).toBe('');
        });
      }
    });
  }
});

describe('squashfs edge cases found in review', () => {
  it.each(availableCodecs().filter((c) => c !== 'lz4'))('--block-size 4K with %s (8 KiB metadata chunks, 4 KiB data blocks)', (codec) => {
    const img = path.join(work, `4k-${codec}.sqfs`);
    build(img, ['--block-size', '4K', '--compression', codec], path.join(work, 'small-base'));
    expect(superblockInfo(img).get('Block size')).toBe('4096');
    const v = shrinkwrap(['verify', '--data', img]);
    expect(v.code, v.stdout).toBe(0);
    if (canKernelMount()) withKernelMount(img, work, (mnt) => expect(diffTrees(`${work}/small-base/r.ch`, `${mnt}/r.ch`)).toBe(''));
  });

  it('pads with zeros after a duplicate that was rewound at the very end', () => {
    // big-a and zz-copy are equal and over 4 MiB (the streamed path); the copy is the last file.
    const root = makeTree(path.join(work, 'rewind'), { 'r.ch/small': 's' });
    const big = Buffer.alloc(5 << 20);
    for (let i = 0; i < big.length; i += 4096) big.write(`block ${i} ${'x'.repeat(i % 97)}`, i);
    fs.writeFileSync(path.join(root, 'r.ch/big-a'), big);
    fs.writeFileSync(path.join(root, 'r.ch/zz-copy'), big);
    const img = path.join(work, 'rewind.sqfs');
    build(img, [], root);
    const bytes = fs.readFileSync(img);
    const used = Number(bytes.readBigUInt64LE(40));
    expect(bytes.length % 4096).toBe(0);
    expect(bytes.subarray(used).every((b) => b === 0)).toBe(true);
    const v = shrinkwrap(['verify', '--data', img]);
    expect(v.code, v.stdout).toBe(0);
  });
});

describe('squashfs options', () => {
  it('--block-size and --level are written and shown', () => {
    const img = path.join(work, 'opts.sqfs');
    build(img, ['--block-size', '1M', '--level', '9', '--no-export-table'], path.join(work, 'small-base'));
    const s = superblockInfo(img);
    expect(s.get('Block size')).toBe(String(1 << 20));
    expect(s.text).toMatch(/compression-level 9/);
    expect(s.text).toMatch(/Filesystem is not exportable via NFS/);
  });

  it.each([
    [['--block-size', '3000'], '--block-size 3000: must be a power of two from 4K to 1M'],
    [['--block-size', '2M'], '--block-size 2M'],
    [['--level', '10'], '--level 10: gzip takes 1 to 9'],
    [['--compression', 'none', '--level', '3'], '--level makes no sense with --compression none'],
    [['--mtime', 'yesterday'], '--mtime yesterday'],
    [['--owner', 'root'], '--owner root: expected numeric UID:GID'],
    [['--threads', '0'], '--threads 0: expected a number of threads from 1 to 256'],
  ])('rejects %j in one line', (args, msg) => {
    const r = shrinkwrap(['--base', base, '--cvmfs-root', cvmfs, '--spec', spec, '-o', path.join(work, 'never.sqfs'), ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(msg);
    expect(fs.existsSync(path.join(work, 'never.sqfs'))).toBe(false);
  });

  it('--owner 0:0 and --mtime normalise the payload', () => {
    const img = path.join(work, 'norm.sqfs');
    build(img, ['--owner', '0:0', '--mtime', '1234567890'], path.join(work, 'small-base'));
    const lines = unsquashfsListing(img);
    // --owner applies to the /cvmfs payload only; --mtime to everything.
    expect(lines.filter((l) => l.includes(' /cvmfs/')).every((l) => / 0\/0 /.test(l))).toBe(true);
    expect(lines.filter((l) => l.includes(' /r.ch/files/one-byte')).every((l) => / 1234\/5678 /.test(l))).toBe(isRoot);
    expect(lines.every((l) => l.includes(' 2009-02-13 23:31 '))).toBe(true);
  });
});

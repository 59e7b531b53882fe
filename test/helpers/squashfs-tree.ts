// Source trees for SquashFS reader tests, what `find` says about them, and image tools.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { comparePaths } from '../../src/model/entry.js';

export interface Expected {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  target?: string;
  rdev?: number;
}

export interface SampleTree {
  root: string;
  /** setfattr worked: /one has user.x = "y". */
  xattrs: boolean;
  /** Running as root: /chr is a char device (1, 3). */
  device: boolean;
  /** Name of the 255-byte file. */
  longName: string;
  /** Name of the UTF-8 file (as text). */
  utf8Name: string;
}

const BS = 131072;

/** Deterministic bytes that do not compress (so that blocks stay full size on disk). */
export function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The tree the reader tests read back: every kind of entry and every data layout. */
export function makeSampleTree(root: string): SampleTree {
  const p = (rel: string) => path.join(root, rel);
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(p('emptydir'));
  fs.writeFileSync(p('empty'), '');
  fs.writeFileSync(p('one'), 'x');
  fs.writeFileSync(p('oneblock'), noise(BS, 1));
  fs.writeFileSync(p('multi'), Buffer.concat([noise(3 * BS, 2), Buffer.from('tail of the multi-block file\n'.repeat(200))]));
  // Sparse: 1 MiB of zeros with 3 bytes in block 3; and a file whose last (partial) block is zero.
  const sparse = fs.openSync(p('sparse'), 'w');
  fs.writeSync(sparse, 'abc', 400000);
  fs.ftruncateSync(sparse, 1 << 20);
  fs.closeSync(sparse);
  const zeroTail = fs.openSync(p('zerotail'), 'w');
  fs.writeSync(zeroTail, noise(BS, 3), 0, BS, 0);
  fs.ftruncateSync(zeroTail, 2 * BS + 100);
  fs.closeSync(zeroTail);
  fs.mkdirSync(p('big'));
  for (let i = 0; i < 1000; i++) fs.writeFileSync(p(`big/file_${String(i).padStart(4, '0')}`), `${i}\n`);
  const longName = 'L'.repeat(254) + 'z';
  fs.writeFileSync(p(longName), 'long name\n');
  const utf8Name = 'héllo_ñ_日本_😀';
  fs.mkdirSync(p('utf'));
  fs.writeFileSync(p(`utf/${utf8Name}`), 'utf-8\n');
  fs.writeFileSync(p('hl1'), 'hard link\n');
  fs.linkSync(p('hl1'), p('utf/hl2'));
  fs.linkSync(p('hl1'), p('hl3'));
  fs.symlinkSync('one', p('sl'));
  fs.symlinkSync('t/'.repeat(2000), p('longsl'));
  fs.chmodSync(p('one'), 0o4755);
  fs.chmodSync(p('emptydir'), 0o1777);
  execFileSync('mkfifo', [p('fifo')]);
  const device = process.getuid?.() === 0;
  if (device) execFileSync('mknod', [p('chr'), 'c', '1', '3']);
  let xattrs = false;
  try {
    execFileSync('setfattr', ['-n', 'user.x', '-v', 'y', p('one')], { stdio: 'ignore' });
    xattrs = true;
  } catch {
    xattrs = false;
  }
  // Fixed times, so that the image root (the source dir) is not touched by later writes.
  for (const rel of ['empty', 'one', 'multi', 'big', 'utf', '.']) fs.utimesSync(p(rel), 1_600_000_000, 1_600_000_000 + rel.length);
  return { root, xattrs, device, longName, utf8Name };
}

/** What `find` says about a tree, as plan entries: paths in path order, hard links resolved. */
export function findEntries(root: string): Expected[] {
  const out = execFileSync('find', [root, '-printf', '%y\\t%m\\t%U\\t%G\\t%s\\t%T@\\t%n\\t%D:%i\\t%P\\0%l\\0'], { maxBuffer: 1 << 26 }).toString('latin1');
  const fields = out.split('\0');
  const entries: Expected[] = [];
  const inode = new Map<Expected, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [y, m, u, g, s, t, n, id, rel] = fields[i]!.split('\t') as [string, string, string, string, string, string, string, string, string];
    const type = { d: 'dir', f: 'file', l: 'symlink', p: 'fifo', c: 'char', b: 'block', s: 'socket' }[y]!;
    const e: Expected = {
      path: rel === '' ? '/' : '/' + rel,
      type,
      mode: parseInt(m, 8),
      uid: Number(u),
      gid: Number(g),
      size: type === 'file' || type === 'symlink' ? Number(s) : 0,
      mtime: Math.floor(Number(t)),
    };
    if (type === 'symlink') e.target = fields[i + 1]!;
    if (type === 'char' || type === 'block') e.rdev = fs.lstatSync(Buffer.from(path.join(root, rel), 'latin1')).rdev;
    if (type !== 'dir' && Number(n) > 1) inode.set(e, id);
    entries.push(e);
  }
  entries.sort((a, b) => comparePaths(a.path, b.path));
  const first = new Map<string, string>();
  for (const e of entries) {
    const id = inode.get(e);
    if (id === undefined) continue;
    const owner = first.get(id);
    if (owner === undefined) first.set(id, e.path);
    else Object.assign(e, { type: 'hardlink', target: owner, size: 0 });
  }
  return entries;
}

export function mksquashfs(src: string, img: string, args: string[] = []): void {
  const r = spawnSync('mksquashfs', [src, img, '-noappend', '-quiet', '-no-progress', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mksquashfs failed: ${r.stderr}`);
}

/** Overwrite bytes of a file in place. */
export function patch(file: string, pos: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, pos);
  } finally {
    fs.closeSync(fd);
  }
}

export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

export function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

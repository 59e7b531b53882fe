// SIF files as the reference tool sees them: siftool 2.x (`header`, `list`, `info`, `dump`) run and
// its output parsed, and byte patches that damage a copy of a SIF in one chosen field.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mounted, run } from './consumers.js';

/** Where the descriptor table starts and how long one descriptor is (SIF 01, as the Go library writes it). */
export const DESCRIPTORS_AT = 4096;
export const DESCRIPTOR_LEN = 585;
/** Field offsets inside a descriptor. */
export const FIELD = { dataType: 0, used: 4, id: 5, group: 9, link: 13, offset: 17, size: 25, name: 73, fsType: 201, partType: 205, arch: 209 } as const;

/** Go's time.Time{}.Unix(): the Go library's "no time"; siftool prints no Created At for it. */
export const GO_ZERO_TIME = -62135596800;

export function siftool(args: string[]): string {
  return run('siftool', args);
}

/** `siftool dump ID FILE` as bytes (run() decodes text, which a partition is not). */
export function siftoolDump(id: number, file: string, to: string): Buffer {
  const fd = fs.openSync(to, 'w');
  try {
    // The object goes straight into `to` (stdout is that file).
    const r = spawnSync('siftool', ['dump', String(id), file], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`siftool dump ${id} ${file} exited ${r.status}: ${r.stderr}`);
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(to);
}

/** "Label: value" lines (siftool header, siftool info) as a map; the label without its colon. */
export function siftoolFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([^:]+):\s+(.*)$/.exec(line);
    if (m) out.set(m[1]!.trim(), m[2]!.trimEnd());
  }
  return out;
}

export interface ListRow {
  id: number;
  group: string;
  link: string;
  start: number;
  end: number;
  type: string;
}

/** The rows of `siftool list`: "ID |GROUP |LINK |start-end |TYPE", header and separators left out. */
export function siftoolList(text: string): ListRow[] {
  const rows: ListRow[] = [];
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length !== 5 || !/^\d+$/.test(cells[0]!)) continue;
    const pos = /^(\d+)-(\d+)$/.exec(cells[3]!);
    if (!pos) throw new Error(`siftool list: a position that is not start-end: ${line}`);
    rows.push({ id: Number(cells[0]), group: cells[1]!, link: cells[2]!.replace(/\s+\(G\)$/, ' (G)'), start: Number(pos[1]), end: Number(pos[2]), type: cells[4]! });
  }
  return rows;
}

/** siftool's readableSize: "812 B", "27 KiB", "2 MiB" (rounded to the nearest unit). */
export function readableSize(n: number): string {
  if (Math.abs(n) < 1024) return `${n} B`;
  let v = n;
  let unit = -1;
  const units = 'KMGTPE';
  while (Math.abs(v) >= 1024 && unit < units.length - 1) {
    v /= 1024;
    unit++;
  }
  return `${Math.round(v)} ${units[unit]}iB`;
}

/** A Unix time as Go prints time.Unix(t, 0).UTC(): "2023-11-14 22:13:20 +0000 UTC". */
export function goTime(t: number): string {
  return `${new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '')} +0000 UTC`;
}

/** A UUID's 16 bytes as siftool prints them. */
export function uuidText(id: Buffer): string {
  return id.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
}

/** Copy `from` to `to` and overwrite one little-endian integer (int32 or int64) at `at`. */
export function patchedCopy(from: string, to: string, patches: Array<{ at: number; bytes: 4 | 8; value: number | bigint }>): string {
  const b = fs.readFileSync(from);
  for (const p of patches) {
    if (p.bytes === 4) b.writeInt32LE(Number(p.value), p.at);
    else b.writeBigInt64LE(BigInt(p.value), p.at);
  }
  fs.writeFileSync(to, b);
  return to;
}

/** Byte offset of field `f` of descriptor slot `i` (0-based). */
export function descriptorField(i: number, f: keyof typeof FIELD): number {
  return DESCRIPTORS_AT + i * DESCRIPTOR_LEN + FIELD[f];
}

/** The kernel mounts a SIF's partition as apptainer does as root: a loop device at its offset and size. */
export function withSifKernelMount<T>(sif: string, offset: number, size: number, work: string, fn: (mnt: string) => T): T {
  return mounted(
    (m) => run('mount', ['-t', 'squashfs', '-o', `loop,ro,offset=${offset},sizelimit=${size}`, sif, m]),
    (m) => run('umount', [m]),
    work,
    fn,
  );
}

/** squashfuse at the partition's offset, as apptainer's FUSE image driver runs it (no size limit). */
export function withSifSquashfuse<T>(sif: string, offset: number, work: string, fn: (mnt: string) => T): T {
  return mounted(
    (m) => run('squashfuse', ['-o', `offset=${offset}`, sif, m]),
    (m) => run('fusermount3', ['-u', m]),
    work,
    fn,
  );
}

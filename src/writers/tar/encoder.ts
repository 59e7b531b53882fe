// Our tar codec's writing half: image entries → a reproducible tar stream (ustar + PAX). The dialect
// every container tool reads: numeric ids with empty user and group names, PAX `x` records only for
// what ustar cannot hold (long names and link names, big sizes and ids, SCHILY.xattr.* with raw
// values), hard links as typeflag 1, content padded to 512 only when needed, two zero blocks at the end.
import * as fs from 'node:fs';
import { display, fsArg } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, baseName, devNumbers } from '../../model/entry.js';
import { BuildError, describeSystemError } from '../../model/errors.js';

const BLOCK = 512;
const ZEROS = Buffer.alloc(2 * BLOCK);
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;
const READ_CHUNK = 1 << 20;

const FLAG: Record<Exclude<Entry['type'], 'socket'>, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

/** Receives the tar stream in order; may apply back-pressure by returning a promise. */
export type TarSink = (chunk: Buffer) => void | Promise<void>;

/** Name of an image path in a layer: no leading slash, directories end in '/'. */
export function archiveName(e: Entry): string {
  return e.path.slice(1) + (e.type === 'dir' ? '/' : '');
}

function octal(h: Buffer, off: number, len: number, value: number): void {
  h.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

/** One `LEN key=value\n` record; LEN counts bytes and includes its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = 3 + Buffer.byteLength(key, 'latin1') + value.length; // ' ' '=' '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'latin1'), value, Buffer.from('\n')]);
}

function header(name: string, flag: string, e: Entry, size: number, linkname: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'latin1');
  octal(h, 100, 8, e.mode & 0o7777);
  octal(h, 108, 8, Math.min(e.uid, MAX_OCTAL_8));
  octal(h, 116, 8, Math.min(e.gid, MAX_OCTAL_8));
  octal(h, 124, 12, Math.min(size, MAX_OCTAL_12));
  octal(h, 136, 12, Math.max(0, Math.min(e.mtime, MAX_OCTAL_12)));
  h.write(flag, 156, 1, 'latin1');
  h.write(linkname, 157, 100, 'latin1');
  h.write('ustar\0' + '00', 257, 8, 'latin1');
  if (e.type === 'char' || e.type === 'block') {
    const [major, minor] = devNumbers(e.rdev ?? 0);
    octal(h, 329, 8, major);
    octal(h, 337, 8, minor);
  }
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

export class TarEncoder {
  /** Bytes of tar stream produced so far. */
  bytes = 0;
  entries = 0;

  constructor(
    private readonly sink: TarSink,
    private readonly diag: Diagnostics,
  ) {}

  /**
   * Add one entry; a file's content is read from its source now, in pieces, unless `content`
   * brings it (read ahead, or pieces from elsewhere: a SquashFS part's blocks; checked against the
   * entry's size). Entries must come in path order.
   */
  async add(e: Entry, content?: Buffer | Iterable<Buffer> | null): Promise<void> {
    if (e.type === 'socket') {
      this.diag.warnPath('socket-skipped', e.path, 'socket skipped (tar has no socket type)');
      return;
    }
    if (e.path === '/') return; // layers describe the root's children, never the root itself
    const name = archiveName(e);
    const linkname = e.type === 'symlink' ? e.target! : e.type === 'hardlink' ? e.target!.slice(1) : '';
    const size = e.type === 'file' ? e.size : 0;
    const pax: Buffer[] = [];
    if (name.length > 100) pax.push(paxRecord('path', Buffer.from(name, 'latin1')));
    if (linkname.length > 100) pax.push(paxRecord('linkpath', Buffer.from(linkname, 'latin1')));
    if (size > MAX_OCTAL_12) pax.push(paxRecord('size', Buffer.from(String(size))));
    if (e.uid > MAX_OCTAL_8) pax.push(paxRecord('uid', Buffer.from(String(e.uid))));
    if (e.gid > MAX_OCTAL_8) pax.push(paxRecord('gid', Buffer.from(String(e.gid))));
    const xattrs = [...(e.xattrs ?? [])].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [k, v] of xattrs) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
    if (pax.length > 0) {
      const body = Buffer.concat(pax);
      // The extended header's name depends on the entry's name only (no pid, unlike GNU tar's).
      const paxName = ('PaxHeaders.0/' + baseName(e.path)).slice(0, 100);
      await this.emit(header(paxName, 'x', { path: paxName, type: 'file', mode: 0o644, uid: e.uid, gid: e.gid, mtime: e.mtime, size: body.length, reason: '' }, body.length, ''));
      await this.emit(body);
      await this.pad(body.length);
    }
    await this.emit(header(name, FLAG[e.type], e, size, linkname));
    if (size > 0) {
      if (Buffer.isBuffer(content)) await this.emit(content);
      else if (content) await this.pieces(e, content);
      else await this.content(e);
      await this.pad(size);
    }
    this.entries++;
  }

  /** Two zero blocks: the end of the archive. */
  async end(): Promise<void> {
    await this.emit(ZEROS);
  }

  private async emit(b: Buffer): Promise<void> {
    this.bytes += b.length;
    await this.sink(b);
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await this.emit(ZEROS.subarray(0, BLOCK - rest));
  }

  /** Emit a file's content given as pieces; they must add up to its size exactly. */
  private async pieces(e: Entry, content: Iterable<Buffer>): Promise<void> {
    let done = 0;
    for (const piece of content) {
      done += piece.length;
      if (done > e.size) break;
      await this.emit(piece);
    }
    if (done !== e.size) throw new BuildError(`${display(e.path)}: its content is ${done > e.size ? 'longer' : 'shorter'} than its ${e.size} bytes`);
  }

  /** Stream a file's bytes from its source (at its offset, for content inside another archive). */
  private async content(e: Entry): Promise<void> {
    const src = e.source!;
    let fd: number;
    try {
      fd = fs.openSync(fsArg(src), 'r');
    } catch (err) {
      throw new BuildError(`cannot read ${display(src)}: ${describeSystemError(err)}`);
    }
    try {
      const base = e.offset ?? 0;
      let done = 0;
      while (done < e.size) {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, e.size - done));
        let got = 0;
        while (got < buf.length) {
          let n: number;
          try {
            n = fs.readSync(fd, buf, got, buf.length - got, base + done + got);
          } catch (err) {
            throw new BuildError(`cannot read ${display(src)}: ${describeSystemError(err)}`);
          }
          if (n === 0) throw new BuildError(`${display(src)} shrank while being read (expected ${e.size} bytes, found ${done + got})`);
          got += n;
        }
        done += buf.length;
        await this.emit(buf);
      }
      if (e.offset === undefined && fs.readSync(fd, Buffer.allocUnsafe(1), 0, 1, e.size) !== 0) {
        throw new BuildError(`${display(src)} grew while being read (expected ${e.size} bytes)`);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

// A tar reader for uncompressed archives on disk: ustar, PAX (local and global records, including
// SCHILY.xattr.*), GNU long names and base-256 numbers, old v7 headers. It never copies content:
// each member is reported with the offset of its bytes in the file, so writers read it lazily.
import * as fs from 'node:fs';
import { display } from '../../model/bytes.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarMember {
  /** Name as stored (raw bytes as a latin1 string), without a trailing slash. */
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  /** Symlink text, or the hard link's target name. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Array<[string, Buffer]>;
  /** Offset of the member's content in the file. */
  offset: number;
}

const BLOCK = 512;
/** The most extended-header data (PAX, GNU long names) one member, or the global records, may have. */
const MAX_EXTENDED = 64 * 1024 * 1024;
/** More xattrs than any file system keeps on one file (ext4: what fits in a block). */
const MAX_XATTRS = 1024;
const XATTR = 'SCHILY.xattr.';

const TYPES: Record<string, TarType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file to everyone but one 1980s system
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** An octal field (NUL/space terminated) or GNU base-256 (high bit set). */
function number(h: Buffer, off: number, len: number, what: string, where: () => string): number {
  if (h[off]! & 0x80) {
    // Base-256 is two's complement: 0xff… is a negative number, which no field here may hold.
    if (h[off]! & 0x40) throw new InputError(`${where()}: ${what} field is negative`);
    let v = BigInt(h[off]! & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(h[off + i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InputError(`${where()}: ${what} field too large`);
    return Number(v);
  }
  const text = h.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^[ ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new InputError(`${where()}: ${what} field '${text.replace(/[^\x20-\x7e]/g, '?')}' is not an octal number`);
  return parseInt(text, 8);
}

function str(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.toString('latin1', off, end < 0 || end > off + len ? off + len : end);
}

function checksumOk(h: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 32 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const text = h.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(text)) return false;
  const stored = parseInt(text, 8);
  return stored === unsigned || stored === signed;
}

/** PAX records `LEN key=value\n`; values are raw bytes (xattrs are binary). */
function parsePax(data: Buffer, where: () => string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break; // NUL padding some writers leave
    const sp = data.indexOf(0x20, i);
    // Decimal digits only: Number() would also take '0x1f', '1e2' and ' 12'.
    const lenText = sp > i ? data.toString('latin1', i, sp) : '';
    const len = /^[1-9][0-9]{0,15}$/.test(lenText) ? Number(lenText) : NaN;
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length || data[i + len - 1] !== 0x0a) {
      throw new InputError(`${where()}: malformed PAX record at byte ${i}`);
    }
    const rec = data.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new InputError(`${where()}: malformed PAX record at byte ${i}`);
    out.set(rec.toString('latin1', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}

/**
 * `name` without its trailing slashes ('/' stays '/'). A loop, not /\/+$/: that regular expression
 * takes quadratic time on a long run of slashes that does not end the name.
 */
function withoutTrailingSlashes(name: string): string {
  let end = name.length;
  while (end > 0 && name.charCodeAt(end - 1) === 0x2f) end--;
  return end > 0 ? name.slice(0, end) : name.startsWith('/') ? '/' : name;
}

/**
 * A member name for a message: its two ends only when it is long, and control characters escaped
 * (display() passes ASCII through as it is, and a NUL or a newline would break the one-line message).
 */
export function shortName(name: string): string {
  const shown = display(name.length > 400 ? name.slice(0, 200) + name.slice(-200) : name).replace(/[\x00-\x1f\x7f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
  return shown.length > 120 ? `${shown.slice(0, 60)}…${shown.slice(-60)}` : shown;
}

/** The text of a number field for messages: short, printable. */
function shownValue(v: Buffer): string {
  return v.toString('latin1').slice(0, 40).replace(/[^\x20-\x7e]/g, '?');
}

/**
 * A PAX number: decimal digits only (POSIX pax: "decimal digits"), and for times an optional
 * fraction and sign. Number() alone would take '0x4', '4e0', ' 4' and '' (as 0).
 */
function paxNumber(key: string, v: Buffer, where: () => string): number {
  const text = v.toString('latin1');
  const isTime = key === 'mtime';
  const ok = isTime ? /^-?[0-9]+(\.[0-9]+)?$/.test(text) : /^[0-9]+$/.test(text);
  const n = ok ? Math.floor(Number(text)) : NaN;
  if (!Number.isSafeInteger(n)) throw new InputError(`${where()}: PAX ${key}=${shownValue(v)} is not a number (decimal digits only${isTime ? ', with an optional fraction' : ''})`);
  return Math.max(n, 0);
}

/**
 * A GNU long name or link (`L`/`K`): the name and a terminating NUL. Bytes after the NUL would be
 * read by some tools and not by others, so they are refused rather than guessed at.
 */
function gnuLongName(data: Buffer, what: string, where: () => string): string {
  const nul = data.indexOf(0);
  const name = data.toString('latin1', 0, nul < 0 ? data.length : nul);
  if (nul >= 0 && data.subarray(nul).some((b) => b !== 0)) {
    let end = data.length;
    while (data[end - 1] === 0) end--;
    throw new InputError(`${where()}: GNU ${what} '${shortName(data.toString('latin1', 0, end))}' has a NUL byte inside`);
  }
  return name;
}

/**
 * A member's SCHILY.xattr.NAME records, global ones first (a local record overrides a global one
 * in place), checked as the kernel would check them (setxattr(2)). `globalKeys` lists the global
 * xattr keys, so that a member costs its own records, not a walk of every global one.
 */
function paxXattrs(globalKeys: readonly string[], global: Map<string, Buffer>, local: Map<string, Buffer>, where: () => string): Array<[string, Buffer]> {
  const xattrs: Array<[string, Buffer]> = [];
  const add = (key: string, v: Buffer) => {
    const name = key.slice(XATTR.length);
    const bad = (why: string) => new InputError(`${where()}: xattr name '${shortName(name)}' ${why}`);
    if (xattrs.length === MAX_XATTRS) throw new InputError(`${where()}: more than ${MAX_XATTRS} xattrs on one member`);
    if (name === '') throw bad('is empty');
    if (name.includes('\0')) throw bad('has a NUL byte');
    if (name.length > 255) throw bad(`is ${name.length} bytes, longer than XATTR_NAME_MAX (255)`);
    if (v.length > 65536) throw bad(`has a ${v.length}-byte value, larger than XATTR_SIZE_MAX (65536)`);
    xattrs.push([name, v]);
  };
  for (const k of globalKeys) add(k, local.get(k) ?? global.get(k)!);
  for (const [k, v] of local) if (k.startsWith(XATTR) && !global.has(k)) add(k, v);
  return xattrs;
}

/**
 * Read the members of an uncompressed tar stored at `[start, start + length)` of `file`.
 * `label` names the archive in messages (e.g. "layer 2 (sha256:ab12…) of oci:img").
 */
export function* readTar(file: string, label: string, start = 0, length?: number): Generator<TarMember> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new InputError(`${label}: ${describeSystemError(err)}`);
  }
  try {
    const end = start + (length ?? fs.fstatSync(fd).size - start);
    const h = Buffer.alloc(BLOCK);
    let pos = start;
    const global = new Map<string, Buffer>();
    let local = new Map<string, Buffer>();
    const globalXattrKeys: string[] = [];
    let globalBytes = 0;
    let pendingBytes = 0;
    let longName: string | null = null;
    let longLink: string | null = null;
    const read = (buf: Buffer, at: number): void => {
      let got = 0;
      while (got < buf.length) {
        let n: number;
        try {
          n = fs.readSync(fd, buf, got, buf.length - got, at + got);
        } catch (err) {
          throw new BuildError(`${label}: ${describeSystemError(err)}`);
        }
        if (n === 0) break;
        got += n;
      }
      if (got < buf.length || at + buf.length > end) throw new InputError(`${label}: truncated at byte ${at - start + got} (the archive ends inside a member)`);
    };
    for (;;) {
      if (pos + BLOCK > end) {
        // No end-of-archive blocks: accepted only exactly at a member boundary.
        if (pos === end) return;
        if (pos === start) throw new InputError(`${label}: not a tar archive (${end - start} bytes, less than one header)`);
        throw new InputError(`${label}: truncated at byte ${pos - start} (a partial header)`);
      }
      read(h, pos);
      const where = () => `${label}: header at byte ${pos - start}`;
      if (h.every((b) => b === 0)) return; // end of archive (one zero block is enough to stop)
      if (!checksumOk(h)) throw new InputError(`${where()}: bad checksum (not a tar archive, or corrupt)`);
      const flag = String.fromCharCode(h[156]!);
      // A local record overrides a global one; an empty value deletes the keyword (POSIX pax), so that
      // the header field applies again. (Not for xattrs: an empty value is a value there.)
      const paxValue = (key: string): Buffer | undefined => {
        const v = local.has(key) ? local.get(key) : global.get(key);
        return v !== undefined && v.length > 0 ? v : undefined;
      };
      const paxSize = paxValue('size');
      const size = paxSize !== undefined ? paxNumber('size', paxSize, where) : number(h, 124, 12, 'size', where);
      if (!Number.isSafeInteger(size) || size < 0) throw new InputError(`${where()}: bad size`);
      const dataAt = pos + BLOCK;
      const next = dataAt + Math.ceil(size / BLOCK) * BLOCK;
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        // Bounded in total, not only each: extended headers are held in memory until their member
        // (global ones for good), and a run of them costs nothing to compress.
        if (flag === 'g') globalBytes += size;
        else pendingBytes += size;
        if (size > MAX_EXTENDED || pendingBytes > MAX_EXTENDED || globalBytes > MAX_EXTENDED) {
          throw new InputError(`${where()}: extended headers of more than ${MAX_EXTENDED / 2 ** 20} MiB (${flag === 'g' ? 'global' : 'for one member'})`);
        }
        const data = Buffer.alloc(size);
        read(data, dataAt);
        // Merged in place: copying the map for each header of a run of them would be quadratic.
        if (flag === 'x') for (const [k, v] of parsePax(data, where)) local.set(k, v);
        else if (flag === 'g') {
          for (const [k, v] of parsePax(data, where)) {
            if (k.startsWith(XATTR) && !global.has(k)) globalXattrKeys.push(k);
            global.set(k, v);
          }
        }
        else if (flag === 'L') longName = gnuLongName(data, 'long name', where);
        else longLink = gnuLongName(data, 'long link name', where);
        pos = next;
        continue;
      }
      const type = TYPES[flag];
      if (!type) {
        const what = flag === 'S' || local.has('GNU.sparse.map') || local.has('GNU.sparse.major') ? 'sparse members are not supported' : `unsupported member type '${flag.replace(/[^\x20-\x7e]/g, '?')}'`;
        throw new InputError(`${where()}: ${what}`);
      }
      const magic = h.toString('latin1', 257, 263);
      const prefix = magic.startsWith('ustar') ? str(h, 345, 155) : '';
      let name = longName ?? (prefix !== '' ? prefix + '/' + str(h, 0, 100) : str(h, 0, 100));
      const paxPath = paxValue('path');
      if (paxPath) name = paxPath.toString('latin1');
      let linkname = longLink ?? str(h, 157, 100);
      const paxLink = paxValue('linkpath');
      if (paxLink) linkname = paxLink.toString('latin1');
      const numeric = (key: string, off: number, len: number) => {
        const v = paxValue(key);
        return v ? paxNumber(key, v, where) : number(h, off, len, key, where);
      };
      const xattrs = paxXattrs(globalXattrKeys, global, local, where);
      // Old archives mark directories only by the trailing slash.
      const isDir = type === 'dir' || (type === 'file' && name.endsWith('/') && flag !== '7');
      const member: TarMember = {
        name: withoutTrailingSlashes(name),
        type: isDir ? 'dir' : type,
        mode: number(h, 100, 8, 'mode', where) & 0o7777,
        uid: numeric('uid', 108, 8),
        gid: numeric('gid', 116, 8),
        mtime: numeric('mtime', 136, 12),
        size: type === 'file' && !isDir ? size : 0,
        linkname,
        devmajor: type === 'char' || type === 'block' ? number(h, 329, 8, 'devmajor', where) : 0,
        devminor: type === 'char' || type === 'block' ? number(h, 337, 8, 'devminor', where) : 0,
        xattrs,
        offset: dataAt,
      };
      if (next > end) throw new InputError(`${label}: truncated in the content of '${shortName(member.name)}' (needs ${size} bytes)`);
      local = new Map();
      pendingBytes = 0;
      longName = longLink = null;
      yield member;
      pos = next;
    }
  } finally {
    fs.closeSync(fd);
  }
}

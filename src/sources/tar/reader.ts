// A tar reader for uncompressed archives on disk: ustar, PAX (local and global records, including
// SCHILY.xattr.*), GNU long names and base-256 numbers, old v7 headers. It never copies content:
// each member is reported with the offset of its bytes in the file, so writers read it lazily.
import * as fs from 'node:fs';
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
    const len = sp > i ? Number(data.toString('latin1', i, sp)) : NaN;
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length || data[i + len - 1] !== 0x0a) {
      throw new InputError(`${where()}: malformed PAX record at byte ${i}`);
    }
    const rec = data.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new InputError(`${where()}: malformed PAX record at byte ${i}`);
    out.set(rec.toString('latin1', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
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
    let global = new Map<string, Buffer>();
    let local = new Map<string, Buffer>();
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
      const size = local.has('size') || global.has('size') ? Number((local.get('size') ?? global.get('size'))!.toString('latin1')) : number(h, 124, 12, 'size', where);
      if (!Number.isSafeInteger(size) || size < 0) throw new InputError(`${where()}: bad size`);
      const dataAt = pos + BLOCK;
      const next = dataAt + Math.ceil(size / BLOCK) * BLOCK;
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > 64 * 1024 * 1024) throw new InputError(`${where()}: ${size}-byte extended header`);
        const data = Buffer.alloc(size);
        read(data, dataAt);
        if (flag === 'x') local = new Map([...local, ...parsePax(data, where)]);
        else if (flag === 'g') global = new Map([...global, ...parsePax(data, where)]);
        else if (flag === 'L') longName = str(data, 0, size);
        else longLink = str(data, 0, size);
        pos = next;
        continue;
      }
      const type = TYPES[flag];
      if (!type) {
        const what = flag === 'S' || local.has('GNU.sparse.map') || local.has('GNU.sparse.major') ? 'sparse members are not supported' : `unsupported member type '${flag.replace(/[^\x20-\x7e]/g, '?')}'`;
        throw new InputError(`${where()}: ${what}`);
      }
      const pax = new Map([...global, ...local]);
      const magic = h.toString('latin1', 257, 263);
      const prefix = magic.startsWith('ustar') ? str(h, 345, 155) : '';
      let name = longName ?? (prefix !== '' ? prefix + '/' + str(h, 0, 100) : str(h, 0, 100));
      if (pax.has('path')) name = pax.get('path')!.toString('latin1');
      let linkname = longLink ?? str(h, 157, 100);
      if (pax.has('linkpath')) linkname = pax.get('linkpath')!.toString('latin1');
      const numeric = (key: string, off: number, len: number) => {
        if (!pax.has(key)) return number(h, off, len, key, where);
        const text = pax.get(key)!.toString('latin1');
        const v = Math.floor(Number(text));
        if (!/^-?\d+(\.\d+)?$/.test(text) || !Number.isSafeInteger(v) || (key !== 'mtime' && v < 0)) {
          throw new InputError(`${where()}: PAX ${key}=${text.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')} is not a number`);
        }
        return Math.max(v, 0);
      };
      const xattrs: Array<[string, Buffer]> = [];
      for (const [k, v] of pax) if (k.startsWith('SCHILY.xattr.')) xattrs.push([k.slice('SCHILY.xattr.'.length), v]);
      // Old archives mark directories only by the trailing slash.
      const isDir = type === 'dir' || (type === 'file' && name.endsWith('/') && flag !== '7');
      const member: TarMember = {
        name: name.replace(/\/+$/, '') || (name.startsWith('/') ? '/' : name),
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
      if (next > end) throw new InputError(`${label}: truncated in the content of '${member.name}' (needs ${size} bytes)`);
      local = new Map();
      longName = longLink = null;
      yield member;
      pos = next;
    }
  } finally {
    fs.closeSync(fd);
  }
}

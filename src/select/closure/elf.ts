// Dynamic-linking facts of an ELF file, read without running anything (ldd executes code).
//
// Written from the System V gABI (ELF header, program headers, the dynamic section) and the
// Linux ld.so(8) man page (dynamic string tokens). Like the dynamic linker, this reader only uses
// program headers: PT_INTERP for the interpreter, PT_DYNAMIC for the dynamic section, and the
// PT_LOAD segments to translate DT_STRTAB (a virtual address) into a file offset. Section headers
// are ignored (except for the gABI PN_XNUM escape, where e_phnum lives in section 0).
//
// Strings (interpreter, DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH) are returned as shrinkwrap
// byte strings (latin1: one code unit per byte, see model/bytes.ts), so names that are not UTF-8
// survive unchanged and can be handed to fsArg()/fsPath().
import { openHostFile } from '../../sources/cvmfs/posix.js';
import type { FileReader } from '../../sources/cvmfs/tree.js';

export interface ElfInfo {
  class: 32 | 64;
  endian: 'little' | 'big';
  /** e_machine (62 = x86_64, 183 = aarch64, 3 = i386, 21 = ppc64 ...). */
  machine: number;
  type: 'exec' | 'dyn' | 'rel' | 'core' | 'other';
  /** PT_INTERP, without the NUL. */
  interp: string | null;
  /** DT_NEEDED in order. */
  needed: string[];
  /** DT_SONAME. */
  soname: string | null;
  /** DT_RPATH split on ':' (raw: $ORIGIN etc. unexpanded, empty elements kept). */
  rpath: string[];
  /** DT_RUNPATH split on ':' (raw, as rpath). */
  runpath: string[];
}

/** A file that starts with the ELF magic but cannot be read as one (truncated, malformed). */
export class ElfError extends Error {
  override name = 'ElfError';
}

// e_ident
const EI_NIDENT = 16;
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;

// e_type
const ET_REL = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const ET_CORE = 4;

/** e_phnum value meaning "the real count is in sh_info of section header 0". */
const PN_XNUM = 0xffff;

// p_type
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;

// d_tag
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/** Longest string we accept in the string table (no path or name comes near this). */
const MAX_STRING = 1 << 20;

/** Random access to the bytes of the file. */
interface Source {
  size: number;
  /** Exactly `length` bytes at `offset`; the caller has checked the range against `size`. */
  read(offset: number, length: number): Buffer;
}

function bufferSource(data: Buffer): Source {
  return { size: data.length, read: (offset, length) => data.subarray(offset, offset + length) };
}

function fileSource(file: FileReader): Source {
  return {
    size: file.size,
    read(offset, length) {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = file.read(buf, done, length - done, offset + done);
        if (n === 0) throw new ElfError(`truncated ELF: file shrank while reading at offset ${offset + done}`);
        done += n;
      }
      return buf;
    },
  };
}

/** Reads the fields of one structure with the file's class and byte order. */
class Fields {
  constructor(
    private readonly buf: Buffer,
    private readonly little: boolean,
  ) {}

  u16(at: number): number {
    return this.little ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }

  u32(at: number): number {
    return this.little ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }

  i32(at: number): number {
    return this.little ? this.buf.readInt32LE(at) : this.buf.readInt32BE(at);
  }

  u64(at: number): bigint {
    return this.little ? this.buf.readBigUInt64LE(at) : this.buf.readBigUInt64BE(at);
  }

  i64(at: number): bigint {
    return this.little ? this.buf.readBigInt64LE(at) : this.buf.readBigInt64BE(at);
  }

  /** An address or offset: Elf32_Addr/Off widened, Elf64_Addr/Off as is. */
  word(at: number, is64: boolean): bigint {
    return is64 ? this.u64(at) : BigInt(this.u32(at));
  }
}

interface Phdr {
  type: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
}

/** A file offset or size from the file, as a Number, after checking it lies within the file. */
function inFile(src: Source, offset: bigint, length: bigint, what: string): number {
  if (offset < 0n || length < 0n || offset + length > BigInt(src.size)) {
    throw new ElfError(`truncated or malformed ELF: ${what} (offset ${offset}, ${length} bytes) lies outside the file (${src.size} bytes)`);
  }
  return Number(offset);
}

function parse(src: Source): ElfInfo | null {
  if (src.size < 4) return null;
  const magic = src.read(0, 4);
  if (magic[0] !== 0x7f || magic[1] !== 0x45 || magic[2] !== 0x4c || magic[3] !== 0x46) return null;
  if (src.size < EI_NIDENT) throw new ElfError(`truncated ELF: ${src.size} bytes, shorter than e_ident`);
  const ident = src.read(0, EI_NIDENT);
  const cls = ident[EI_CLASS];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new ElfError(`malformed ELF: bad class ${cls}`);
  const data = ident[EI_DATA];
  if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) throw new ElfError(`malformed ELF: bad data encoding ${data}`);
  const is64 = cls === ELFCLASS64;
  const little = data === ELFDATA2LSB;

  // ELF header.
  const ehsize = is64 ? 64 : 52;
  if (src.size < ehsize) throw new ElfError(`truncated ELF: ${src.size} bytes, shorter than the ELF header`);
  const eh = new Fields(src.read(0, ehsize), little);
  const eType = eh.u16(16);
  const machine = eh.u16(18);
  const phoff = eh.word(is64 ? 32 : 28, is64);
  const shoff = eh.word(is64 ? 40 : 32, is64);
  const phentsize = eh.u16(is64 ? 54 : 42);
  let phnum = eh.u16(is64 ? 56 : 44);
  const shentsize = eh.u16(is64 ? 58 : 46);

  if (phnum === PN_XNUM) {
    // gABI: the real count is in sh_info of the initial section header.
    const need = is64 ? 64 : 40;
    if (shoff === 0n || shentsize < need) throw new ElfError('malformed ELF: e_phnum is PN_XNUM but there is no section header 0');
    const at = inFile(src, shoff, BigInt(need), 'section header 0');
    phnum = new Fields(src.read(at, need), little).u32(is64 ? 44 : 28);
  }

  // Program headers.
  const phdrs: Phdr[] = [];
  if (phnum > 0) {
    const minEnt = is64 ? 56 : 32;
    if (phentsize < minEnt) throw new ElfError(`malformed ELF: e_phentsize ${phentsize} is smaller than ${minEnt}`);
    const total = phnum * phentsize;
    const at = inFile(src, phoff, BigInt(total), 'program header table');
    const table = src.read(at, total);
    for (let i = 0; i < phnum; i++) {
      const f = new Fields(table.subarray(i * phentsize, (i + 1) * phentsize), little);
      phdrs.push(
        is64
          ? { type: f.u32(0), offset: f.u64(8), vaddr: f.u64(16), filesz: f.u64(32) }
          : { type: f.u32(0), offset: BigInt(f.u32(4)), vaddr: BigInt(f.u32(8)), filesz: BigInt(f.u32(16)) },
      );
    }
  }

  const info: ElfInfo = {
    class: is64 ? 64 : 32,
    endian: little ? 'little' : 'big',
    machine,
    type: eType === ET_EXEC ? 'exec' : eType === ET_DYN ? 'dyn' : eType === ET_REL ? 'rel' : eType === ET_CORE ? 'core' : 'other',
    interp: null,
    needed: [],
    soname: null,
    rpath: [],
    runpath: [],
  };

  // PT_INTERP: a NUL-terminated path name (the first one counts, as for the kernel).
  const interp = phdrs.find((p) => p.type === PT_INTERP);
  if (interp) {
    const at = inFile(src, interp.offset, interp.filesz, 'PT_INTERP segment');
    const bytes = src.read(at, Number(interp.filesz));
    const nul = bytes.indexOf(0);
    info.interp = (nul < 0 ? bytes : bytes.subarray(0, nul)).toString('latin1');
  }

  // PT_DYNAMIC: an array of (d_tag, d_val) pairs ending at DT_NULL.
  const dyn = phdrs.find((p) => p.type === PT_DYNAMIC);
  if (!dyn) return info;
  const dynAt = inFile(src, dyn.offset, dyn.filesz, 'PT_DYNAMIC segment');
  const entsize = is64 ? 16 : 8;
  const count = Math.floor(Number(dyn.filesz) / entsize);
  const table = new Fields(src.read(dynAt, count * entsize), little);
  const needed: bigint[] = [];
  let strtab: bigint | null = null;
  let strsz: bigint | null = null;
  // For tags that occur more than once the last one wins (the linker keeps one slot per tag);
  // DT_NEEDED is the only one that is a list.
  let soname: bigint | null = null;
  let rpath: bigint | null = null;
  let runpath: bigint | null = null;
  for (let i = 0; i < count; i++) {
    const at = i * entsize;
    const tag = is64 ? table.i64(at) : BigInt(table.i32(at));
    const val = is64 ? table.u64(at + 8) : BigInt(table.u32(at + 4));
    if (tag === BigInt(DT_NULL)) break;
    switch (Number(tag)) {
      case DT_NEEDED: needed.push(val); break;
      case DT_STRTAB: strtab = val; break;
      case DT_STRSZ: strsz = val; break;
      case DT_SONAME: soname = val; break;
      case DT_RPATH: rpath = val; break;
      case DT_RUNPATH: runpath = val; break;
    }
  }
  if (needed.length === 0 && soname === null && rpath === null && runpath === null) return info;

  if (strtab === null) throw new ElfError('malformed ELF: dynamic section has strings but no DT_STRTAB');
  const strings = stringTable(src, phdrs, strtab, strsz);
  info.needed = needed.map((off) => strings(off, 'DT_NEEDED'));
  if (soname !== null) info.soname = strings(soname, 'DT_SONAME');
  if (rpath !== null) info.rpath = splitPath(strings(rpath, 'DT_RPATH'));
  if (runpath !== null) info.runpath = splitPath(strings(runpath, 'DT_RUNPATH'));
  return info;
}

/**
 * The string-table reader: DT_STRTAB is a virtual address, found in the PT_LOAD segment that maps
 * it from the file; DT_STRSZ (or, without it, the end of that segment's file image) bounds it.
 */
function stringTable(src: Source, phdrs: Phdr[], strtab: bigint, strsz: bigint | null): (off: bigint, what: string) => string {
  const seg = phdrs.find((p) => p.type === PT_LOAD && p.vaddr <= strtab && strtab < p.vaddr + p.filesz);
  if (!seg) throw new ElfError(`malformed ELF: DT_STRTAB 0x${strtab.toString(16)} is not in the file image of any PT_LOAD segment`);
  const fileOff = seg.offset + (strtab - seg.vaddr);
  const size = strsz ?? seg.vaddr + seg.filesz - strtab;
  const base = inFile(src, fileOff, size, 'string table (DT_STRTAB, DT_STRSZ)');
  const limit = Number(size);
  return (off, what) => {
    if (off >= size) throw new ElfError(`malformed ELF: ${what} string offset ${off} is outside DT_STRTAB (${size} bytes)`);
    const start = Number(off);
    // Read in growing chunks until the NUL: positional reads stay small for a file source.
    let chunk = 256;
    for (;;) {
      const len = Math.min(chunk, limit - start);
      const bytes = src.read(base + start, len);
      const nul = bytes.indexOf(0);
      if (nul >= 0) return bytes.subarray(0, nul).toString('latin1');
      if (start + len >= limit) throw new ElfError(`malformed ELF: ${what} string at offset ${off} runs past the end of DT_STRTAB`);
      if (len >= MAX_STRING) throw new ElfError(`malformed ELF: ${what} string at offset ${off} is longer than ${MAX_STRING} bytes`);
      chunk *= 4;
    }
  };
}

/**
 * DT_RPATH / DT_RUNPATH value as a list. An empty value gives no entries; otherwise empty elements
 * are kept ("a::b" → ['a', '', 'b']): ld.so treats them as the current directory.
 */
function splitPath(value: string): string[] {
  return value === '' ? [] : value.split(':');
}

/**
 * Dynamic-linking facts of an ELF file in memory. null when the bytes are not ELF (no \x7fELF
 * magic); throws ElfError for a truncated or malformed one.
 */
export function parseElf(data: Buffer): ElfInfo | null {
  return parse(bufferSource(data));
}

/**
 * As parseElf, for a file: reads only the ELF header, the program headers, PT_INTERP, PT_DYNAMIC
 * and the strings it needs, with positional reads. I/O errors propagate as the Node error.
 */
export function readElf(path: string | Buffer): ElfInfo | null {
  return readElfFrom(openHostFile(path));
}

/** As readElf, from a file a tree has opened (CvmfsTree.openContent); closes it. */
export function readElfFrom(file: FileReader): ElfInfo | null {
  try {
    return parse(fileSource(file));
  } finally {
    file.close();
  }
}

export interface DynamicStringContext {
  /** Directory of the object whose DT_RPATH/DT_RUNPATH is being expanded (for $ORIGIN). */
  origin: string;
  elfClass: 32 | 64;
  /** Value of $PLATFORM (AT_PLATFORM, e.g. 'x86_64', 'aarch64', 'i686'). */
  platform: string;
  /**
   * Value of $LIB. Default: 'lib64' for 64-bit, 'lib' for 32-bit (the ld.so(8) example).
   * Distributions choose it when glibc is built: Debian/Ubuntu use e.g. 'lib/x86_64-linux-gnu'.
   */
  lib?: string;
}

const DST_NAMES = ['ORIGIN', 'LIB', 'PLATFORM'] as const;
type DstName = (typeof DST_NAMES)[number];

/**
 * Expand the dynamic string tokens of one search-path entry as ld.so does: $ORIGIN / ${ORIGIN},
 * $LIB / ${LIB} and $PLATFORM / ${PLATFORM}. A bare token only counts when the name is not
 * followed by a further name character ($ORIGINAL is not $ORIGIN); anything else after a '$' is
 * left as it is.
 */
export function expandDynamicString(entry: string, ctx: DynamicStringContext): string {
  const value = (name: DstName): string => {
    switch (name) {
      case 'ORIGIN': return ctx.origin;
      case 'LIB': return ctx.lib ?? (ctx.elfClass === 64 ? 'lib64' : 'lib');
      case 'PLATFORM': return ctx.platform;
    }
  };
  let out = '';
  let i = 0;
  while (i < entry.length) {
    const dollar = entry.indexOf('$', i);
    if (dollar < 0) {
      out += entry.slice(i);
      break;
    }
    out += entry.slice(i, dollar);
    const match = matchToken(entry, dollar + 1);
    if (match) {
      out += value(match.name);
      i = match.end;
    } else {
      out += '$';
      i = dollar + 1;
    }
  }
  return out;
}

/** The token that starts at `at` (just after a '$'), and where it ends. */
function matchToken(s: string, at: number): { name: DstName; end: number } | null {
  const braced = s[at] === '{';
  const start = braced ? at + 1 : at;
  for (const name of DST_NAMES) {
    if (!s.startsWith(name, start)) continue;
    const after = start + name.length;
    if (braced) {
      if (s[after] === '}') return { name, end: after + 1 };
    } else if (after >= s.length || !/[A-Za-z0-9_]/.test(s[after]!)) {
      return { name, end: after };
    }
  }
  return null;
}

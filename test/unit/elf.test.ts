import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfError, type ElfInfo, expandDynamicString, parseElf, readElf } from '../../src/select/closure/elf.js';

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const HAVE_CC = hasCommand('cc');
const HAVE_READELF = hasCommand('readelf');

/** What `readelf -d` / `readelf -l` say about a file (binutils, C locale). */
function readelfFacts(file: string): { needed: string[]; soname: string | null; rpath: string[]; runpath: string[]; interp: string | null } {
  const env = { ...process.env, LC_ALL: 'C' };
  const dyn = execFileSync('readelf', ['-d', '-W', file], { env, encoding: 'latin1' });
  const prog = execFileSync('readelf', ['-l', '-W', file], { env, encoding: 'latin1' });
  const field = (kind: string): string[] =>
    [...dyn.matchAll(new RegExp(`\\(${kind}\\)\\s+[^\\[]*\\[(.*)\\]`, 'g'))].map((m) => m[1]!);
  const split = (v: string[]): string[] => (v.length === 0 || v.at(-1) === '' ? [] : v.at(-1)!.split(':'));
  const interp = /\[Requesting program interpreter: (.*)\]/.exec(prog);
  return {
    needed: field('NEEDED'),
    soname: field('SONAME').at(-1) ?? null,
    rpath: split(field('RPATH')),
    runpath: split(field('RUNPATH')),
    interp: interp ? interp[1]! : null,
  };
}

function expectMatchesReadelf(file: string, info: ElfInfo): void {
  const want = readelfFacts(file);
  expect(info.needed).toEqual(want.needed);
  expect(info.soname).toEqual(want.soname);
  expect(info.rpath).toEqual(want.rpath);
  expect(info.runpath).toEqual(want.runpath);
  expect(info.interp).toEqual(want.interp);
}

// ---------------------------------------------------------------------------------------------
// Hand-made ELF files: ELF header + program headers (PT_INTERP, PT_LOAD, PT_DYNAMIC) + interp +
// string table + dynamic section, in any class and byte order.

interface MakeOpts {
  is64: boolean;
  little: boolean;
  machine: number;
  type?: number;
  interp?: string;
  needed?: string[];
  soname?: string;
  rpath?: string;
  runpath?: string;
  /** Entries after DT_NULL, which must be ignored. */
  afterNull?: string[];
  /** Override DT_STRSZ (null: leave the tag out). */
  strsz?: number | null;
  /** Shift DT_STRTAB by this much (to point it outside every PT_LOAD). */
  strtabShift?: bigint;
  /** Omit DT_STRTAB. */
  noStrtab?: boolean;
  /** Extra raw DT_NEEDED string offset. */
  rawNeeded?: number;
  phentsize?: number;
}

const BASE = 0x400000n;
const [DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH] = [0, 1, 5, 10, 14, 15, 29];

function makeElf(o: MakeOpts): Buffer {
  const ehsize = o.is64 ? 64 : 52;
  const phentsize = o.is64 ? 56 : 32;
  const phdrs: { type: number; offset: number; filesz: number }[] = [];
  // String table.
  const strParts: Buffer[] = [Buffer.from([0])];
  let strLen = 1;
  const addStr = (s: string): number => {
    const off = strLen;
    const b = Buffer.from(s + '\0', 'latin1');
    strParts.push(b);
    strLen += b.length;
    return off;
  };
  const dyn: [number, bigint][] = [];
  for (const n of o.needed ?? []) dyn.push([DT_NEEDED, BigInt(addStr(n))]);
  if (o.rawNeeded !== undefined) dyn.push([DT_NEEDED, BigInt(o.rawNeeded)]);
  if (o.soname !== undefined) dyn.push([DT_SONAME, BigInt(addStr(o.soname))]);
  if (o.rpath !== undefined) dyn.push([DT_RPATH, BigInt(addStr(o.rpath))]);
  if (o.runpath !== undefined) dyn.push([DT_RUNPATH, BigInt(addStr(o.runpath))]);
  const after = (o.afterNull ?? []).map((n) => addStr(n));
  const strtab = Buffer.concat(strParts);

  const nph = o.interp !== undefined ? 3 : 2;
  let off = ehsize + nph * phentsize;
  const interpBuf = o.interp !== undefined ? Buffer.from(o.interp + '\0', 'latin1') : null;
  const interpOff = off;
  if (interpBuf) off += interpBuf.length;
  const strOff = off;
  off += strtab.length;
  off = (off + 7) & ~7;
  const dynOff = off;
  if (!o.noStrtab) dyn.push([DT_STRTAB, BASE + BigInt(strOff) + (o.strtabShift ?? 0n)]);
  if (o.strsz !== null) dyn.push([DT_STRSZ, BigInt(o.strsz ?? strtab.length)]);
  dyn.push([DT_NULL, 0n]);
  for (const a of after) dyn.push([DT_NEEDED, BigInt(a)]);
  const dynent = o.is64 ? 16 : 8;
  const dynSize = dyn.length * dynent;
  const total = dynOff + dynSize;

  if (interpBuf) phdrs.push({ type: 3, offset: interpOff, filesz: interpBuf.length });
  phdrs.push({ type: 1, offset: 0, filesz: total });
  phdrs.push({ type: 2, offset: dynOff, filesz: dynSize });

  const b = Buffer.alloc(total);
  const le = o.little;
  const w16 = (at: number, v: number) => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  const w32 = (at: number, v: number) => (le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
  const w64 = (at: number, v: bigint) => (le ? b.writeBigUInt64LE(v, at) : b.writeBigUInt64BE(v, at));
  const wAddr = (at: number, v: bigint) => (o.is64 ? w64(at, v) : w32(at, Number(v)));

  b.write('\x7fELF', 0, 'latin1');
  b[4] = o.is64 ? 2 : 1;
  b[5] = le ? 1 : 2;
  b[6] = 1; // EV_CURRENT
  w16(16, o.type ?? 2);
  w16(18, o.machine);
  w32(20, 1);
  wAddr(24, BASE); // e_entry
  wAddr(o.is64 ? 32 : 28, BigInt(ehsize)); // e_phoff
  w16(o.is64 ? 52 : 40, ehsize);
  w16(o.is64 ? 54 : 42, o.phentsize ?? phentsize);
  w16(o.is64 ? 56 : 44, phdrs.length);
  phdrs.forEach((p, i) => {
    const at = ehsize + i * phentsize;
    const vaddr = BASE + BigInt(p.offset);
    if (o.is64) {
      w32(at, p.type);
      w32(at + 4, 4);
      w64(at + 8, BigInt(p.offset));
      w64(at + 16, vaddr);
      w64(at + 24, vaddr);
      w64(at + 32, BigInt(p.filesz));
      w64(at + 40, BigInt(p.filesz));
      w64(at + 48, 8n);
    } else {
      w32(at, p.type);
      w32(at + 4, p.offset);
      w32(at + 8, Number(vaddr));
      w32(at + 12, Number(vaddr));
      w32(at + 16, p.filesz);
      w32(at + 20, p.filesz);
      w32(at + 24, 4);
      w32(at + 28, 8);
    }
  });
  if (interpBuf) interpBuf.copy(b, interpOff);
  strtab.copy(b, strOff);
  dyn.forEach(([tag, val], i) => {
    const at = dynOff + i * dynent;
    if (o.is64) {
      w64(at, BigInt(tag));
      w64(at + 8, val);
    } else {
      w32(at, tag);
      w32(at + 4, Number(val));
    }
  });
  return b;
}

const FULL = {
  interp: '/lib/ld64.so.1',
  needed: ['libbar.so.2', 'libc.so.6'],
  soname: 'libfoo.so.1',
  rpath: '/opt/a:$ORIGIN/../lib',
  runpath: '${ORIGIN}/x::/y',
};

describe('parseElf on hand-made files', () => {
  const variants = [
    { name: 'ELF64 big-endian (ppc64)', is64: true, little: false, machine: 21 },
    { name: 'ELF32 big-endian (ppc)', is64: false, little: false, machine: 20 },
    { name: 'ELF32 little-endian (i386)', is64: false, little: true, machine: 3 },
    { name: 'ELF64 little-endian (x86_64)', is64: true, little: true, machine: 62 },
  ];
  for (const v of variants) {
    it(v.name, () => {
      const buf = makeElf({ ...v, ...FULL, type: 3 });
      const info = parseElf(buf);
      expect(info).toEqual({
        class: v.is64 ? 64 : 32,
        endian: v.little ? 'little' : 'big',
        machine: v.machine,
        type: 'dyn',
        interp: '/lib/ld64.so.1',
        needed: ['libbar.so.2', 'libc.so.6'],
        soname: 'libfoo.so.1',
        rpath: ['/opt/a', '$ORIGIN/../lib'],
        runpath: ['${ORIGIN}/x', '', '/y'],
      });
    });
  }

  it('reads the same through readElf (file path as string and as Buffer)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-elf-'));
    try {
      const buf = makeElf({ is64: true, little: false, machine: 21, ...FULL });
      const file = path.join(dir, 'be64');
      fs.writeFileSync(file, buf);
      expect(readElf(file)).toEqual(parseElf(buf));
      expect(readElf(Buffer.from(file))).toEqual(parseElf(buf));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads only the parts it needs (a 3 GiB sparse file is fine)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-elf-'));
    try {
      const file = path.join(dir, 'big');
      fs.writeFileSync(file, makeElf({ is64: true, little: true, machine: 62, ...FULL }));
      fs.truncateSync(file, 3 * 1024 ** 3);
      expect(readElf(file)!.needed).toEqual(['libbar.so.2', 'libc.so.6']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('maps e_type', () => {
    const types: [number, ElfInfo['type']][] = [[1, 'rel'], [2, 'exec'], [3, 'dyn'], [4, 'core'], [0xfe00, 'other']];
    for (const [t, name] of types) expect(parseElf(makeElf({ is64: true, little: true, machine: 62, type: t }))!.type).toBe(name);
  });

  it('without a dynamic segment strings, has empty lists; without PT_INTERP, interp is null', () => {
    expect(parseElf(makeElf({ is64: true, little: true, machine: 62 }))).toMatchObject({
      interp: null,
      needed: [],
      soname: null,
      rpath: [],
      runpath: [],
    });
  });

  it('stops at DT_NULL', () => {
    const info = parseElf(makeElf({ is64: false, little: false, machine: 20, needed: ['a.so'], afterNull: ['ghost.so'] }));
    expect(info!.needed).toEqual(['a.so']);
  });

  it('works without DT_STRSZ (bounded by the PT_LOAD segment)', () => {
    const info = parseElf(makeElf({ is64: true, little: false, machine: 21, needed: ['a.so', 'b.so'], strsz: null }));
    expect(info!.needed).toEqual(['a.so', 'b.so']);
  });

  it('keeps non-UTF-8 bytes as a byte string (latin1)', () => {
    const name = Buffer.from([0x6c, 0x69, 0x62, 0xe9, 0xff, 0x2e, 0x73, 0x6f]).toString('latin1');
    expect(parseElf(makeElf({ is64: true, little: true, machine: 62, needed: [name] }))!.needed).toEqual([name]);
  });
});

describe('parseElf: not ELF / malformed', () => {
  it('returns null for bytes that are not ELF', () => {
    expect(parseElf(Buffer.from('#!/bin/sh\necho hello\n'))).toBeNull();
    expect(parseElf(Buffer.alloc(0))).toBeNull();
    expect(parseElf(Buffer.from('\x7fEL', 'latin1'))).toBeNull();
    expect(parseElf(Buffer.from('/* GNU ld script */\nGROUP ( libc.so.6 libc_nonshared.a )\n'))).toBeNull();
  });

  it('throws ElfError for a truncated ELF', () => {
    const buf = makeElf({ is64: true, little: true, machine: 62, ...FULL });
    for (const len of [5, 16, 40, 100, buf.length - 1]) {
      expect(() => parseElf(buf.subarray(0, len)), `length ${len}`).toThrow(ElfError);
    }
  });

  it('throws ElfError for a bad class or data encoding', () => {
    const a = makeElf({ is64: true, little: true, machine: 62 });
    a[4] = 3;
    expect(() => parseElf(a)).toThrow(/class/);
    const b = makeElf({ is64: true, little: true, machine: 62 });
    b[5] = 0;
    expect(() => parseElf(b)).toThrow(/data encoding/);
  });

  it('throws ElfError for string offsets outside DT_STRTAB', () => {
    expect(() => parseElf(makeElf({ is64: true, little: true, machine: 62, needed: ['a.so'], rawNeeded: 5000 }))).toThrow(
      /outside DT_STRTAB/,
    );
    // DT_STRSZ too small: the last string is cut.
    expect(() => parseElf(makeElf({ is64: true, little: false, machine: 21, needed: ['abc.so'], strsz: 4 }))).toThrow(ElfError);
  });

  it('throws ElfError when DT_STRTAB is not in a PT_LOAD segment, or missing', () => {
    expect(() => parseElf(makeElf({ is64: true, little: true, machine: 62, needed: ['a.so'], strtabShift: 1n << 40n }))).toThrow(
      /PT_LOAD/,
    );
    expect(() => parseElf(makeElf({ is64: false, little: true, machine: 3, needed: ['a.so'], noStrtab: true }))).toThrow(
      /DT_STRTAB/,
    );
  });

  it('throws ElfError for a too-small e_phentsize', () => {
    expect(() => parseElf(makeElf({ is64: true, little: true, machine: 62, phentsize: 20 }))).toThrow(ElfError);
  });

  it('readElf: null for text, ElfError for truncated, Node error for a missing file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-elf-'));
    try {
      fs.writeFileSync(path.join(dir, 'script.sh'), '#!/bin/sh\nexec true\n');
      fs.writeFileSync(path.join(dir, 'libc.so'), '/* GNU ld script */\nGROUP ( /lib/libc.so.6 )\n');
      fs.writeFileSync(path.join(dir, 'empty'), '');
      fs.writeFileSync(path.join(dir, 'cut'), makeElf({ is64: true, little: true, machine: 62, ...FULL }).subarray(0, 150));
      expect(readElf(path.join(dir, 'script.sh'))).toBeNull();
      expect(readElf(path.join(dir, 'libc.so'))).toBeNull();
      expect(readElf(path.join(dir, 'empty'))).toBeNull();
      expect(() => readElf(path.join(dir, 'cut'))).toThrow(ElfError);
      expect(() => readElf(path.join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(HAVE_CC)('readElf on files built by cc', () => {
  let dir = '';
  const built: Record<string, string> = {};
  let m32 = false;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-elf-cc-'));
    const cc = (...args: string[]) => execFileSync('cc', args, { cwd: dir, stdio: 'pipe' });
    fs.writeFileSync(path.join(dir, 'foo.c'), 'int foo(void) { return 42; }\n');
    fs.writeFileSync(path.join(dir, 'main.c'), 'int foo(void);\nint main(void) { return foo() == 42 ? 0 : 1; }\n');
    cc('-shared', '-fPIC', '-Wl,-soname,libfoo.so.1', 'foo.c', '-o', 'libfoo.so');
    cc('main.c', '-o', 'plain', '-L.', '-lfoo');
    cc('main.c', '-o', 'runpath', '-L.', '-lfoo', '-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib');
    cc('main.c', '-o', 'rpath', '-L.', '-lfoo', '-Wl,--disable-new-dtags,-rpath,/opt/x');
    for (const n of ['libfoo.so', 'plain', 'runpath', 'rpath']) built[n] = path.join(dir, n);
    try {
      cc('-m32', 'main.c', 'foo.c', '-o', 'm32');
      built.m32 = path.join(dir, 'm32');
      m32 = true;
    } catch {
      m32 = false;
    }
  });

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const x86_64 = process.arch === 'x64';

  it('shared library: soname, class, type', () => {
    const info = readElf(built['libfoo.so']!)!;
    expect(info.soname).toBe('libfoo.so.1');
    expect(info.type).toBe('dyn');
    if (process.arch === 'x64' || process.arch === 'arm64') expect(info.class).toBe(64);
    expect(info.endian).toBe(os.endianness() === 'LE' ? 'little' : 'big');
    expect(info.interp).toBeNull();
    expect(parseElf(fs.readFileSync(built['libfoo.so']!))).toEqual(info);
  });

  it('executable: interp and needed', () => {
    const info = readElf(built.plain!)!;
    if (x86_64) {
      expect(info.machine).toBe(62);
      expect(info.interp).toBe('/lib64/ld-linux-x86-64.so.2');
    }
    expect(info.interp).toMatch(/^\//);
    expect(info.needed).toContain('libfoo.so.1');
    expect(info.needed).toContain('libc.so.6');
    expect(['exec', 'dyn']).toContain(info.type);
    expect(info.rpath).toEqual([]);
    expect(info.runpath).toEqual([]);
    expect(info.soname).toBeNull();
  });

  it('RUNPATH (new dtags) and RPATH (old dtags)', () => {
    const a = readElf(built.runpath!)!;
    expect(a.runpath).toEqual(['$ORIGIN/../lib']);
    expect(a.rpath).toEqual([]);
    const b = readElf(built.rpath!)!;
    expect(b.rpath).toEqual(['/opt/x']);
    expect(b.runpath).toEqual([]);
  });

  it('32-bit object (cc -m32)', (ctx) => {
    if (!m32) {
      console.warn('SKIPPED: cc -m32 does not work here (no 32-bit libc); ELF32 is covered by hand-made files');
      ctx.skip();
      return;
    }
    const info = readElf(built.m32!)!;
    expect(info.class).toBe(32);
    expect(info.needed).toContain('libc.so.6');
  });

  it('agrees with readelf -d / -l', (ctx) => {
    if (!HAVE_READELF) {
      console.warn('SKIPPED: readelf (binutils) not installed; no cross-check against readelf');
      ctx.skip();
      return;
    }
    for (const file of Object.values(built)) {
      expectMatchesReadelf(file, readElf(file)!);
      expectMatchesReadelf(file, parseElf(fs.readFileSync(file))!);
    }
  });
});

describe('readElf on system files, against readelf', () => {
  it('agrees with readelf -d / -l', (ctx) => {
    if (!HAVE_READELF) {
      console.warn('SKIPPED: readelf (binutils) not installed; no cross-check against readelf');
      ctx.skip();
      return;
    }
    const candidates = ['/bin/sh', '/bin/ls', '/usr/bin/env', process.execPath];
    for (const dir of ['/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/lib64', '/usr/lib64']) {
      for (const n of ['libc.so.6', 'libm.so.6', 'libz.so.1', 'libstdc++.so.6']) candidates.push(path.join(dir, n));
    }
    let checked = 0;
    for (const file of candidates) {
      let real: string;
      try {
        real = fs.realpathSync(file);
      } catch {
        continue;
      }
      const info = readElf(real);
      if (!info) continue;
      expectMatchesReadelf(real, info);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });

  it('an ld script named *.so is not ELF', () => {
    for (const f of ['/usr/lib/x86_64-linux-gnu/libc.so', '/usr/lib/aarch64-linux-gnu/libc.so', '/usr/lib64/libc.so']) {
      if (!fs.existsSync(f)) continue;
      if (fs.readFileSync(f).subarray(0, 4).toString('latin1') === '\x7fELF') continue;
      expect(readElf(f)).toBeNull();
    }
  });
});

describe('expandDynamicString', () => {
  const ctx64 = { origin: '/cvmfs/sft.cern.ch/lcg/bin', elfClass: 64 as const, platform: 'x86_64' };
  const ctx32 = { origin: '/opt/o', elfClass: 32 as const, platform: 'i686' };

  it('expands $ORIGIN and ${ORIGIN}', () => {
    expect(expandDynamicString('$ORIGIN/../lib', ctx64)).toBe('/cvmfs/sft.cern.ch/lcg/bin/../lib');
    expect(expandDynamicString('${ORIGIN}/../lib', ctx64)).toBe('/cvmfs/sft.cern.ch/lcg/bin/../lib');
    expect(expandDynamicString('$ORIGIN', ctx32)).toBe('/opt/o');
    expect(expandDynamicString('a/$ORIGIN/b/${ORIGIN}', ctx32)).toBe('a//opt/o/b//opt/o');
  });

  it('expands $LIB by class, and ctx.lib when given', () => {
    expect(expandDynamicString('/usr/$LIB/x', ctx64)).toBe('/usr/lib64/x');
    expect(expandDynamicString('/usr/${LIB}/x', ctx32)).toBe('/usr/lib/x');
    expect(expandDynamicString('/usr/$LIB', { ...ctx64, lib: 'lib/x86_64-linux-gnu' })).toBe('/usr/lib/x86_64-linux-gnu');
  });

  it('expands $PLATFORM', () => {
    expect(expandDynamicString('/opt/$PLATFORM/lib', ctx64)).toBe('/opt/x86_64/lib');
    expect(expandDynamicString('/opt/${PLATFORM}_x', ctx32)).toBe('/opt/i686_x');
  });

  it('leaves other $ sequences alone', () => {
    expect(expandDynamicString('/a/$ORIGINAL', ctx64)).toBe('/a/$ORIGINAL');
    expect(expandDynamicString('/a/$ORIGIN_x', ctx64)).toBe('/a/$ORIGIN_x');
    expect(expandDynamicString('/a/$LIBX:$FOO/${BAR}', ctx64)).toBe('/a/$LIBX:$FOO/${BAR}');
    expect(expandDynamicString('/a/${ORIGIN', ctx64)).toBe('/a/${ORIGIN');
    expect(expandDynamicString('/a/$', ctx64)).toBe('/a/$');
    expect(expandDynamicString('$$ORIGIN', ctx32)).toBe('$/opt/o');
    expect(expandDynamicString('/plain/path', ctx64)).toBe('/plain/path');
    expect(expandDynamicString('', ctx64)).toBe('');
  });

  it('$ORIGIN followed by a non-name character still counts', () => {
    expect(expandDynamicString('$ORIGIN-x', ctx32)).toBe('/opt/o-x');
    expect(expandDynamicString('$ORIGIN.d', ctx32)).toBe('/opt/o.d');
  });
});

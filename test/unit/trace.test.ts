import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Diagnostics } from '../../src/model/diagnostics.js';
import { InputError } from '../../src/model/errors.js';
import {
  type ParsedTrace,
  type TraceEvent,
  type TraceOptions,
  buildSpecs,
  decodeCString,
  detectTraceFormat,
  parseCsv,
  parseTrace,
  readTrace,
  repoCandidatesFromFileName,
} from '../../src/select/trace/index.js';

const DATA = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'data', 'traces');
/** The run of atlas-on-cvmfs.md §5.3 as the CVMFS tracer logs it (CRLF line ends). */
const ATLAS_TRACE = path.join(DATA, 'cvmfs-trace-atlas.cern.ch.log');

function parse(text: string, file = 'r.ch.trace.log', opts: TraceOptions = {}) {
  const diag = new Diagnostics();
  const t = parseTrace(text, file, opts, diag);
  return { ...t, diag, kinds: diag.warnings.map((w) => w.kind) };
}

/** `[event path]` pairs, for short expectations. */
function ev(t: ParsedTrace): string[] {
  return t.events.map((e) => `${e.event} ${e.repo}:${e.path}`);
}

function inputError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('expected an InputError');
}

const crlf = (...rows: string[]) => rows.map((r) => r + '\r\n').join('');

describe('CSV reader', () => {
  it('reads quoted fields with doubled quotes, commas and line breaks inside, CRLF/LF/CR ends', () => {
    const recs = parseCsv('"a","b ""q"", c"\r\nx,"y\nz"\n\n"last"\r"end"', (l) => `f:${l}`);
    expect(recs).toEqual([
      { fields: ['a', 'b "q", c'], line: 1 },
      { fields: ['x', 'y\nz'], line: 2 },
      { fields: ['last'], line: 5 },
      { fields: ['end'], line: 6 },
    ]);
  });

  it('rejects an unterminated quote and text after a closing quote, naming the line', () => {
    expect(inputError(() => parseCsv('"a"\n"b', (l) => `f:${l}`))).toBe('f:2: unterminated quoted field');
    expect(inputError(() => parseCsv('"a"x,"b"', (l) => `f:${l}`))).toBe('f:1: unexpected text after a quoted field');
  });
});

describe('CVMFS tracer log', () => {
  it('reads the §5.3 run: CRLF, internal events skipped, NOTFOUND reported, repository from the file name', () => {
    const diag = new Diagnostics();
    const t = readTrace(ATLAS_TRACE, {}, diag);
    expect(t.format).toBe('cvmfs');
    expect(t.events.length).toBe(10);
    expect(t.events[0]).toEqual({ repo: 'atlas.cern.ch', path: '', event: 'getattr', line: 2 });
    expect(t.events[3]).toEqual({ repo: 'atlas.cern.ch', path: '/repo/sw/software/21.2/AnalysisBase', event: 'opendir', line: 5 });
    expect(t.events.map((e) => e.event)).toEqual(['getattr', 'lookup', 'lookup', 'opendir', 'open', 'open', 'readlink', 'open', 'open', 'open']);
    expect(t.failed).toEqual([
      {
        repo: 'atlas.cern.ch',
        path: '/repo/sw/software/21.2/AnalysisBaseExternals/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/lib/libstdc++.so.6',
        line: 11,
        why: 'lookup()-NOTFOUND',
      },
    ]);
    expect(t.ignoredOutside).toBe(0);
    expect(diag.warnings).toEqual([]);
  });

  it('decodes doubled quotes and commas in paths, LF line ends, flush events, .Trash', () => {
    const t = parse(
      [
        '"1.001","-3","Tracer","flushed ring buffer"',
        '"1.002","1","/a ""quoted"", b","open()"',
        '"1.003","6","/.Trash","getattr()"',
        '"1.004","6","/.Trash-1000","getattr()"',
        '"1.005","6","/.Trash/x","getattr()"',
        '"1.006","7","/l","listxattr()"',
        '"1.007","8","/l","getxattr()"',
        '"1.008","5","","statfs()"',
        '',
      ].join('\n'),
    );
    expect(ev(t)).toEqual(['open r.ch:/a "quoted", b', 'getattr r.ch:/.Trash/x', 'listxattr r.ch:/l', 'getxattr r.ch:/l', 'statfs r.ch:']);
    expect(t.events.map((e) => e.line)).toEqual([2, 5, 6, 7, 8]);
  });

  it('keeps raw bytes of paths (byte strings)', () => {
    const bytes = Buffer.concat([Buffer.from('"1.0","1","/caf'), Buffer.from([0xc3, 0xa9, 0xff]), Buffer.from('","open()"\r\n')]);
    const t = parse(bytes.toString('latin1'));
    expect(t.events[0]!.path).toBe('/caf\xc3\xa9\xff');
  });

  it('@UNKNOWN is an error naming file:line, unless that event is filtered (as spec_builder.py)', () => {
    const text = crlf('"1.0","6","","getattr()"', '"1.1","8","@UNKNOWN","getxattr()"');
    expect(inputError(() => parse(text, 'x/sft.cern.ch.trace.log'))).toMatch(/^x\/sft\.cern\.ch\.trace\.log:2: path @UNKNOWN/);
    expect(ev(parse(text, 'sft.cern.ch.trace.log', { filters: ['getxattr'] }))).toEqual(['getattr sft.cern.ch:']);
  });

  it('rejects malformed rows with file:line', () => {
    const bad = (row: string) => inputError(() => parse(crlf('"1.0","6","","getattr()"', row), 't/r.ch.trace.log'));
    expect(bad('"1.1","9","/x","chmod()"')).toBe('t/r.ch.trace.log:2: unknown trace event "chmod()"');
    expect(bad('"1.1","1","/x"')).toBe('t/r.ch.trace.log:2: expected 4 fields ("timestamp","code","path","event"), found 3');
    expect(bad('"1.1","one","/x","open()"')).toBe('t/r.ch.trace.log:2: event code "one" is not a number');
    expect(bad('"1.1","2","/x","open()"')).toBe('t/r.ch.trace.log:2: event code 2 is opendir(), not "open()"');
    expect(bad('"1.1","1","x","open()"')).toMatch(/^t\/r\.ch\.trace\.log:2: path "x" is not repository-relative/);
  });

  it('takes the repository from --repo, else the file name, else says how to give it', () => {
    const row = crlf('"1.0","1","/x","open()"');
    expect(parse(row, 'anything.txt', { repo: 'cms.cern.ch' }).events[0]!.repo).toBe('cms.cern.ch');
    expect(parse(row, '/tmp/cvmfs-trace/sft.cern.ch.trace.log').events[0]!.repo).toBe('sft.cern.ch');
    expect(parse(row, 'cvmfs-lhcb.cern.ch.trace.log').events[0]!.repo).toBe('lhcb.cern.ch');
    expect(parse(row, 'cvmfs-trace-atlas.cern.ch.csv').events[0]!.repo).toBe('atlas.cern.ch');
    expect(inputError(() => parse(row, 'trace.log', { format: 'cvmfs' }))).toMatch(/^trace\.log: cannot tell which repository .*--repo <fqrn>/);
    // With the source's repositories known, the guess that exists wins.
    expect(repoCandidatesFromFileName('cvmfs-x.org.log')).toEqual(['x.org', 'cvmfs-x.org']);
    const known = (r: string) => r === 'cvmfs-x.org';
    expect(parse(row, 'cvmfs-x.org.log', { knownRepo: known }).events[0]!.repo).toBe('cvmfs-x.org');
    const t = parse(row, 'y.org.trace.log', { knownRepo: () => false });
    expect(t.events[0]!.repo).toBe('y.org');
    expect(t.kinds).toEqual(['trace-unknown-repo']);
  });
});

describe('strace', () => {
  const S = '/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBaseExternals/21.2.75/InstallArea/x86_64-slc6-gcc62-opt';

  it('reads the §5.3 lines: execve, [pid N] openat, failed openat, stat', () => {
    const t = parse(
      [
        `execve("${S}/bin/root.exe", ["root.exe", "-b", "-q"], 0x7ffd12345678 /* 60 vars */) = 0`,
        `[pid 4242] openat(AT_FDCWD, "${S}/lib/libCore.so", O_RDONLY|O_CLOEXEC) = 3`,
        `[pid 4242] openat(AT_FDCWD, "${S}/lib/libstdc++.so.6", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)`,
        `[pid 4242] stat("/cvmfs/atlas.cern.ch/repo/sw/database/GroupData", {st_mode=S_IFDIR|0755, st_size=4096, ...}) = 0`,
        `[pid 4242] openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3`,
        `[pid 4242] +++ exited with 0 +++`,
      ].join('\n'),
      'run.strace',
    );
    expect(t.format).toBe('strace');
    const rel = S.slice('/cvmfs/atlas.cern.ch'.length);
    expect(ev(t)).toEqual([
      `open atlas.cern.ch:${rel}/bin/root.exe`,
      `open atlas.cern.ch:${rel}/lib/libCore.so`,
      'getattr atlas.cern.ch:/repo/sw/database/GroupData',
    ]);
    expect(t.failed).toEqual([{ repo: 'atlas.cern.ch', path: `${rel}/lib/libstdc++.so.6`, line: 3, why: 'ENOENT' }]);
    expect(t.ignoredOutside).toBe(1);
  });

  it('joins <unfinished ...> with <... resumed> per pid; O_DIRECTORY is opendir', () => {
    const t = parse(
      [
        '[pid  101] openat(AT_FDCWD, "/cvmfs/a.ch/d", O_RDONLY|O_NONBLOCK <unfinished ...>',
        '[pid  102] openat(AT_FDCWD, "/cvmfs/a.ch/missing", O_RDONLY <unfinished ...>',
        '[pid  101] <... openat resumed>|O_CLOEXEC|O_DIRECTORY) = 3',
        '[pid  102] <... openat resumed>) = -1 ENOENT (No such file or directory)',
        '[pid  103] <... stat resumed>{st_mode=S_IFREG|0644, ...}) = 0',
        'open("/cvmfs/a.ch/e", O_RDONLY|O_DIRECTORY) = 4',
        '103   1557917100.123456 lstat("/cvmfs/a.ch/f", {st_mode=S_IFLNK|0777, ...}) = 0',
      ].join('\n'),
    );
    expect(ev(t)).toEqual(['opendir a.ch:/d', 'opendir a.ch:/e', 'getattr a.ch:/f']);
    expect(t.events[0]!.line).toBe(1);
    expect(t.failed).toEqual([{ repo: 'a.ch', path: '/missing', line: 2, why: 'ENOENT' }]);
    expect(t.kinds).toEqual(['trace-strace']); // the resume without a start
  });

  it('decodes C escapes (octal, hex, quotes, backslashes) to raw bytes', () => {
    expect(decodeCString('a\\"b\\\\c\\n\\t\\303\\251\\x41\\0')).toBe('a"b\\c\n\t\xc3\xa9A\x00');
    const t = parse('openat(AT_FDCWD, "/cvmfs/a.ch/caf\\303\\251 \\"x\\", y)", O_RDONLY) = 3\n');
    expect(t.events[0]!.path).toBe('/caf\xc3\xa9 "x", y)');
  });

  it('maps the other calls, resolves -y dirfds, ignores relative and fd-only paths', () => {
    const t = parse(
      [
        'newfstatat(AT_FDCWD, "/cvmfs/a.ch/n", {st_mode=S_IFREG|0644, ...}, 0) = 0',
        'statx(AT_FDCWD, "/cvmfs/a.ch/s", AT_STATX_SYNC_AS_STAT, STATX_ALL, {stx_mask=STATX_ALL, ...}) = 0',
        'access("/cvmfs/a.ch/acc", R_OK) = 0',
        'faccessat2(AT_FDCWD, "/cvmfs/a.ch/fa", X_OK, AT_EACCESS) = 0',
        'readlink("/cvmfs/a.ch/l1", "target", 4095) = 6',
        'readlinkat(AT_FDCWD, "/cvmfs/a.ch/l2", "t", 4095) = 1',
        'openat(3</cvmfs/a.ch/base>, "rel/file", O_RDONLY) = 4</cvmfs/a.ch/base/rel/file>',
        'openat(5, "/cvmfs/a.ch/abs", O_RDONLY) = 6',
        'openat(5, "unknown-dir-rel", O_RDONLY) = 6',
        'open("relative/path", O_RDONLY) = 3',
        'newfstatat(3, "", {st_mode=S_IFREG|0644, ...}, AT_EMPTY_PATH) = 0',
        'stat("/cvmfs//a.ch/./x/../y/", {st_mode=S_IFDIR|0755, ...}) = 0',
        'stat("/cvmfs", {st_mode=S_IFDIR|0755, ...}) = 0',
        'read(3, "\\177ELF", 4) = 4',
        '--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---',
      ].join('\n'),
    );
    expect(ev(t)).toEqual([
      'getattr a.ch:/n',
      'getattr a.ch:/s',
      'getattr a.ch:/acc',
      'getattr a.ch:/fa',
      'readlink a.ch:/l1',
      'readlink a.ch:/l2',
      'open a.ch:/base/rel/file',
      'open a.ch:/abs',
      'getattr a.ch:/y',
    ]);
    expect(t.ignoredOutside).toBe(3); // two relative paths without a known directory, and /cvmfs itself
    expect(t.kinds).toEqual(['trace-relative']);
  });
});

describe('Parrot namelist and plain path lists', () => {
  it('parrot: fullcopy is open, metadatacopy is getattr, the loader lines are outside', () => {
    const t = parse(
      [
        '/lib64/ld-linux-x86-64.so.2',
        '/bin/sh',
        '/cvmfs/atlas.cern.ch/repo/sw/x/setup.sh|fullcopy',
        '/cvmfs/atlas.cern.ch/repo/sw/x/bin/root|metadatacopy',
        '/cvmfs/atlas.cern.ch/repo/sw/x|metadatacopy',
        '/usr/lib/libz.so|fullcopy',
      ].join('\n'),
      'namelist',
    );
    expect(t.format).toBe('parrot');
    expect(ev(t)).toEqual(['open atlas.cern.ch:/repo/sw/x/setup.sh', 'getattr atlas.cern.ch:/repo/sw/x/bin/root', 'getattr atlas.cern.ch:/repo/sw/x']);
    expect(t.ignoredOutside).toBe(3);
  });

  it('paths: comments and blank lines ignored, relative lines rejected with file:line', () => {
    const t = parse('# traced by hand\r\n\r\n/cvmfs/sft.cern.ch/lcg/a\r\n/cvmfs/sft.cern.ch\r\n/usr/bin/env\r\n', 'list.txt');
    expect(t.format).toBe('paths');
    expect(ev(t)).toEqual(['open sft.cern.ch:/lcg/a', 'open sft.cern.ch:']);
    expect(t.events.map((e) => e.line)).toEqual([3, 4]);
    expect(t.ignoredOutside).toBe(1);
    expect(inputError(() => parse('/cvmfs/a.ch/x\nlcg/y\n', 'list.txt', { format: 'paths' }))).toBe('list.txt:2: "lcg/y" is not an absolute path');
  });
});

describe('format detection', () => {
  it('tells the formats apart from their content', () => {
    expect(detectTraceFormat('"1.0","-1","Tracer","Trace buffer created"\r\n')).toBe('cvmfs');
    expect(detectTraceFormat('/lib64/ld-linux-x86-64.so.2\n/bin/sh\n/cvmfs/a.ch/x|fullcopy\n')).toBe('parrot');
    expect(detectTraceFormat('strace: Process 42 attached\n[pid    42] openat(AT_FDCWD, "/x", O_RDONLY) = 3\n')).toBe('strace');
    expect(detectTraceFormat('42    execve("/bin/ls", ["ls"], 0x7ff /* 1 var */) = 0\n')).toBe('strace');
    expect(detectTraceFormat('12:00:01.123456 stat("/x", 0x7ff) = 0\n')).toBe('strace');
    expect(detectTraceFormat('# list\n/cvmfs/a.ch/x\n')).toBe('paths');
    expect(detectTraceFormat('hello world\n')).toBeNull();
  });

  it('says how to name the format when it cannot tell; --trace-format overrides', () => {
    expect(inputError(() => parse('hello world\n', 'mystery.txt'))).toBe(
      'mystery.txt: cannot tell the trace format (use --trace-format cvmfs|strace|parrot|paths)',
    );
    expect(parse('/cvmfs/a.ch/x|fullcopy\n', 'f', { format: 'paths' }).format).toBe('paths');
    const empty = parse('\n\n', 'e.log');
    expect(empty.events).toEqual([]);
    expect(empty.kinds).toEqual(['trace-empty']);
  });
});

describe('buildSpecs (spec_builder.py, line for line)', () => {
  // The expected outputs below were derived by hand from the algorithm in cvmfs-spec-and-trace.md
  // §3.4 (and agree with spec_builder.py itself run on the same input). Reminders:
  // - every line is `^`-anchored; mode 1 = `^p/*`, mode 0 = `^p`, root `^/*` / `^/`;
  // - order = order in which points leave the stack (popped when a later point in sorted order is
  //   outside them), then what is left on the stack bottom-up, starting with the root, which is
  //   therefore always written, after everything that was popped;
  // - `.` (0x2e) sorts before `/` (0x2f), so `/a.b` comes between `/a` and `/a/x`.
  const atlas = () => readTrace(ATLAS_TRACE, {}, new Diagnostics()).events;
  const I = '/repo/sw/software/21.2';
  const EXT = `${I}/AnalysisBaseExternals/21.2.75/InstallArea/x86_64-slc6-gcc62-opt`;
  const GRL = '/repo/sw/database/GroupData/GoodRunsLists/data16_13TeV';
  const XML = `${GRL}/data16_13TeV.periodAllYear_DetStatus-v89-pro21-01_DQDefects-00-02-04_PHYS_StandardGRL_All_Good_25ns.xml`;

  it('§5.3, default policy pdir, no filters', () => {
    // Points: getattr '' → ('',0); lookups /repo, /repo/sw → mode 0; opendir AnalysisBase → 1;
    // each open() → its parent directory with mode 1; readlink bin/root → (bin/root, 0).
    // Sorted: '', /repo, /repo/sw, GRL(database < software), AnalysisBase, AnalysisBase/21.2.75/...,
    // EXT, EXT/bin, EXT/bin/root, EXT/lib. GRL is popped by AnalysisBase; AnalysisBase/… and then
    // AnalysisBase by EXT (AnalysisBaseExternals is not under AnalysisBase/); bin/root is an exact
    // point directly inside the flat EXT/bin → not pushed; EXT/bin is popped by EXT/lib. Left on
    // the stack: '', /repo, /repo/sw, EXT, EXT/lib.
    expect(buildSpecs(atlas(), { policy: 'pdir', filters: [] })).toEqual(
      new Map([
        [
          'atlas.cern.ch',
          [
            `^${GRL}/*`,
            `^${I}/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/*`,
            `^${I}/AnalysisBase/*`,
            `^${EXT}/bin/*`,
            '^/',
            '^/repo',
            '^/repo/sw',
            `^${EXT}/*`,
            `^${EXT}/lib/*`,
          ],
        ],
      ]),
    );
  });

  it('§5.3, --policy exact, no filters', () => {
    // Every point is exact except the opendir. The stack grows along /repo/sw, so the root,
    // /repo and /repo/sw stay to the end; AnalysisBase/21.2.75/.../setup.sh is pushed (its parent
    // is not the flat AnalysisBase) and popped before AnalysisBase; the EXT files pop each other
    // in order bin/root, bin/root.exe, lib/libCore.so; EXT/setup.sh is last in sort order.
    // (spec_builder.py would also write ^…/lib/libstdc++.so.6: it does not know the tracer's
    // lookup()-NOTFOUND rows, which the importer reports as failed instead.)
    expect(buildSpecs(atlas(), { policy: 'exact', filters: [] }).get('atlas.cern.ch')).toEqual([
      `^${XML}`,
      `^${I}/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/setup.sh`,
      `^${I}/AnalysisBase/*`,
      `^${EXT}/bin/root`,
      `^${EXT}/bin/root.exe`,
      `^${EXT}/lib/libCore.so`,
      '^/',
      '^/repo',
      '^/repo/sw',
      `^${EXT}/setup.sh`,
    ]);
  });

  it('§5.3, --policy exact --filters getattr lookup: the reference spec, in spec_builder order, plus ^/', () => {
    // Without the getattr of the root and the two lookups, /repo and /repo/sw are never pushed:
    // the stack holds only the root under each point. Same set of paths as the expected spec in
    // atlas-on-cvmfs.md §5.3 (which lists them in trace order, without `^`, and leaves out the
    // root line that spec_builder.py always writes).
    const lines = buildSpecs(atlas(), { policy: 'exact', filters: ['getattr', 'lookup'] }).get('atlas.cern.ch')!;
    expect(lines).toEqual([
      `^${XML}`,
      `^${I}/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/setup.sh`,
      `^${I}/AnalysisBase/*`,
      `^${EXT}/bin/root`,
      `^${EXT}/bin/root.exe`,
      `^${EXT}/lib/libCore.so`,
      '^/',
      `^${EXT}/setup.sh`,
    ]);
    expect(lines.join('\n')).not.toMatch(/\n\n/);
  });

  // A small trace with the corner cases: root flattened by pdir, same path upgraded, exact point
  // inside a flat parent dropped, `.` before `/`, .Trash dropped by the importer, a filter.
  const SMALL = crlf(
    '"1.000","-1","Tracer","Trace buffer created"',
    '"1.001","1","/top.txt","open()"',
    '"1.002","4","/a","lookup()"',
    '"1.003","2","/a","opendir()"',
    '"1.004","6","/a/x","getattr()"',
    '"1.005","6","/a/y/z","getattr()"',
    '"1.006","1","/a.b/c","open()"',
    '"1.007","6","/.Trash","getattr()"',
    '"1.008","3","/b/link","readlink()"',
    '"1.009","8","/b/f","getxattr()"',
    '"1.010","5","","statfs()"',
  );

  it('corner cases, pdir --filters getxattr', () => {
    // Points (trace order): ('',1) from open /top.txt, (/a,0), (/a,1), (/a/x,0), (/a/y/z,0),
    // (/a.b,1), (/b/link,0), ('',0) from statfs. Stable sort: ('',1), ('',0), (/a,0), (/a,1),
    // (/a.b,1), (/a/x,0), (/a/y/z,0), (/b/link,0).
    // Root goes to mode 1; ('',0) changes nothing; (/a,0) is exact directly under the flat root →
    // dropped; (/a,1) is pushed; /a.b pops /a (^/a/*); /a/x pops /a.b (^/a.b/*) and is pushed
    // again under the root (its parent /a is not the top any more); /a/y/z pops /a/x; /b/link pops
    // /a/y/z. Left: root (^/*) and /b/link.
    const events = parse(SMALL).events;
    expect(buildSpecs(events, { policy: 'pdir', filters: ['getxattr'] }).get('r.ch')).toEqual(['^/a/*', '^/a.b/*', '^/a/x', '^/a/y/z', '^/*', '^/b/link']);
  });

  it('corner cases, exact, no filters', () => {
    // Points: /top.txt, /a (0 then upgraded to 1 by the opendir), /a/x, /a/y/z, /a.b/c, /b/link,
    // /b/f, '' — all exact but /a. Sorted: '', /a, /a, /a.b/c, /a/x, /a/y/z, /b/f, /b/link, /top.txt.
    // /a/x is inside flat /a, but /a.b/c popped /a before it, so /a/x is written too.
    const events = parse(SMALL).events;
    expect(buildSpecs(events, { policy: 'exact', filters: [] }).get('r.ch')).toEqual([
      '^/a/*',
      '^/a.b/c',
      '^/a/x',
      '^/a/y/z',
      '^/b/f',
      '^/b/link',
      '^/',
      '^/top.txt',
    ]);
  });

  it('one spec per repository, in order of first appearance; everything filtered leaves ^/', () => {
    const e = (repo: string, p: string, event: TraceEvent['event']): TraceEvent => ({ repo, path: p, event, line: 1 });
    const specs = buildSpecs([e('b.ch', '/x/f', 'open'), e('a.ch', '/y', 'opendir'), e('b.ch', '/x/g', 'open'), e('a.ch', '/z', 'getattr')], {
      policy: 'pdir',
      filters: ['getattr'],
    });
    expect([...specs.keys()]).toEqual(['b.ch', 'a.ch']);
    expect(specs.get('b.ch')).toEqual(['^/', '^/x/*']);
    expect(specs.get('a.ch')).toEqual(['^/', '^/y/*']);
    expect(buildSpecs([e('c.ch', '/q', 'getattr')], { policy: 'exact', filters: ['getattr'] }).get('c.ch')).toEqual(['^/']);
    expect(buildSpecs([], { policy: 'pdir', filters: [] }).size).toBe(0);
  });
});

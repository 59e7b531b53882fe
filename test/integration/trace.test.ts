// Traces in, images out: a real workload traced with strace on the host, selected with --trace,
// and run again inside the image; and `spec --from-trace` for the CVMFS tracer's format.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromText } from '../../src/model/bytes.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import { parseSpec } from '../../src/select/spec/parse.js';
import { EXAMPLE } from '../../fixtures/example-cvmfs.js';
import { ensureExample } from '../../fixtures/example.js';
import { CLI, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let cvmfs: string;
let base: string;
let work: string;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-trace-');
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const IA = `/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/${EXAMPLE.platform}`;

describe('spec --from-trace (CVMFS tracer log)', () => {
  // The tracer writes CRLF lines, always-quoted fields, ms.us times; codes < 0 are its own events.
  const log = [
    '"1557917100000.001","-1","Tracer","Trace buffer created"',
    '"1557917100003.120","6","","getattr()"',
    '"1557917100003.400","4","/repo","lookup()"',
    '"1557917100003.500","2","/repo/sw/software/21.2/AnalysisBase","opendir()"',
    `"1557917100004.010","1","${IA}/setup.sh","open()"`,
    `"1557917100011.000","1","${IA}/lib/libxAODRootAccess.so","open()"`,
    '"1557917100020.000","-2","Tracer","Destroying trace buffer..."',
  ].join('\r\n');

  it('writes a spec upstream accepts, per spec_builder, that selects from the tree', () => {
    const trace = path.join(work, 'cvmfs-atlas.cern.ch.trace.log');
    fs.writeFileSync(trace, log + '\r\n');
    const out = path.join(work, 'atlas.cern.ch.spec');
    const r = shrinkwrap(['spec', '--from-trace', trace, '--policy', 'exact', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const text = fs.readFileSync(out, 'utf8');
    const lines = text.trimEnd().split('\n');
    // Upstream's grammar: every line starts with ^, no blank lines; our parser (the same grammar) takes it.
    expect(lines.every((l) => l.startsWith('^'))).toBe(true);
    expect(lines).toContain('^/repo/sw/software/21.2/AnalysisBase/*');
    expect(lines).toContain(`^${IA}/setup.sh`);
    expect(() => parseSpec(fromText(text), { file: out, repo: 'atlas.cern.ch' }, () => true, new Diagnostics())).not.toThrow();
    const plan = shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, '--spec', out, '-q']);
    expect(plan.code, plan.stderr).toBe(0);
    const paths: string[] = JSON.parse(plan.stdout).entries.map((e: { path: string }) => e.path);
    expect(paths).toContain(`/cvmfs/atlas.cern.ch${IA}/lib/libxAODRootAccess.so`);
    // opendir of the project directory lists its releases (flat): siblings appear as empty directories only.
    expect(paths).toContain('/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.74');
    expect(paths.some((p) => p.startsWith('/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.74/'))).toBe(false);
  });

  it('writes one spec per repository into a directory when a trace spans several', () => {
    const list = path.join(work, 'run.paths');
    fs.writeFileSync(list, ['/cvmfs/atlas.cern.ch/repo/sw/database/GroupData/x', '/cvmfs/sft.cern.ch/lcg/lastUpdate', '/etc/passwd'].join('\n') + '\n');
    expectOneLineError(shrinkwrap(['spec', '--from-trace', list]), 2, 'the traces touch 2 repositories (atlas.cern.ch, sft.cern.ch): give -o DIR');
    const out = path.join(work, 'specs') + '/';
    const r = shrinkwrap(['spec', '--from-trace', list, '--policy', 'exact', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['atlas.cern.ch.spec', 'sft.cern.ch.spec']);
    expect(fs.readFileSync(path.join(out, 'sft.cern.ch.spec'), 'utf8')).toBe('^/\n^/lcg/lastUpdate\n');
  });

  it('refuses an @UNKNOWN path, naming the line', () => {
    const trace = path.join(work, 'bad-atlas.cern.ch.trace.log');
    fs.writeFileSync(trace, `${log}\r\n"1557917100021.000","8","@UNKNOWN","getxattr()"\r\n`);
    expectOneLineError(shrinkwrap(['spec', '--from-trace', trace, '--repo', 'atlas.cern.ch']), 2, `${trace}:8`);
  });
});

describe('a real workload: traced with strace on the host, run again inside the image', () => {
  const ok = canRun(isRoot && hasCommand('strace') && hasCommand('unshare'), 'strace workload', 'needs root (mount namespace), strace and unshare');
  let trace: string;
  beforeAll(() => {
    if (!ok) return;
    trace = path.join(work, 'workload.strace');
    // /cvmfs must exist as a mount point; the bind mount lives only in the private namespace.
    const made = !fs.existsSync('/cvmfs');
    if (made) fs.mkdirSync('/cvmfs');
    try {
      const r = spawnSync(
        'unshare',
        ['-m', 'sh', '-c', `mount --make-rprivate / && mount --bind ${cvmfs} /cvmfs && strace -f -o ${trace} sh -c '${EXAMPLE.runCommand}'`],
        { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
      );
      expect(r.stdout, r.stderr).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
    } finally {
      if (made) fs.rmdirSync('/cvmfs');
    }
  });

  it.runIf(ok)('selects what the run touched (pdir), and the same command runs in the image', () => {
    const img = path.join(work, 'traced-img');
    const b = shrinkwrap(['build', '--format', 'dir', '--cvmfs-root', cvmfs, '--base', base, '--trace', trace, '-o', img, '-q']);
    expect(b.code, b.stderr).toBe(0);
    const r = spawnSync('chroot', [img, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
    // The sibling releases were never touched: not in the image.
    expect(fs.existsSync(path.join(img, 'cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.74'))).toBe(false);
  });
});

describe('shrinkwrap trace -- CMD', () => {
  const ok = canRun(isRoot && hasCommand('strace') && hasCommand('unshare'), 'shrinkwrap trace', 'needs root (mount namespace), strace and unshare');

  it.runIf(ok)('records the workload, writes one spec per repository, and an image built from them runs it', () => {
    const out = path.join(work, 'recorded');
    const made = !fs.existsSync('/cvmfs');
    if (made) fs.mkdirSync('/cvmfs');
    let r;
    try {
      r = spawnSync(
        'unshare',
        ['-m', 'sh', '-c', `mount --make-rprivate / && mount --bind ${cvmfs} /cvmfs && ${process.execPath} ${CLI} trace -o ${out} -- sh -c '${EXAMPLE.runCommand}'`],
        { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
      );
    } finally {
      if (made) fs.rmdirSync('/cvmfs');
    }
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
    expect(r.stderr).toMatch(/recorded: trace\.strace, atlas\.cern\.ch\.spec \(\d+ lines\), sft\.cern\.ch\.spec \(\d+ lines\)/);
    expect(fs.readdirSync(out).sort()).toEqual(['atlas.cern.ch.spec', 'sft.cern.ch.spec', 'trace.strace']);
    // The specs alone (no trace, no closure) are enough for the image to run the workload.
    const img = path.join(work, 'from-specs');
    const specs = ['atlas.cern.ch.spec', 'sft.cern.ch.spec'].flatMap((f) => ['--spec', path.join(out, f)]);
    const b = shrinkwrap(['build', '--format', 'dir', '--cvmfs-root', cvmfs, '--base', base, ...specs, '-o', img, '-q']);
    expect(b.code, b.stderr).toBe(0);
    const run = spawnSync('chroot', [img, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    expect(run.stdout + run.stderr).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
  });

  it('says clearly when there is no command', () => {
    expectOneLineError(shrinkwrap(['trace', '-o', path.join(work, 'never')]), 2, /missing required argument 'command'/);
  });
});

describe('ELF closure: the libraries a thin trace missed', () => {
  const ok = canRun(isRoot && hasCommand('unshare'), 'ELF closure workload', 'needs root (mount namespace, chroot)');
  const ia = `/cvmfs/atlas.cern.ch${IA}`;
  const ext = '/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBaseExternals/21.2.75/InstallArea/x86_64-slc6-gcc62-opt';

  it.runIf(ok)('supplies every DT_NEEDED library over the recorded LD_LIBRARY_PATH, and the binary runs', () => {
    // The environment after the release's setup, recorded as an operator would: env > FILE.
    const envFile = path.join(work, 'release.env');
    const made = !fs.existsSync('/cvmfs');
    if (made) fs.mkdirSync('/cvmfs');
    try {
      const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount --make-rprivate / && mount --bind ${cvmfs} /cvmfs && . ${ia}/setup.sh && env`], { encoding: 'utf8' });
      fs.writeFileSync(envFile, r.stdout);
    } finally {
      if (made) fs.rmdirSync('/cvmfs');
    }
    // A trace that saw the setup scripts and the binary, but none of the libraries.
    const thin = path.join(work, 'thin.paths');
    fs.writeFileSync(
      thin,
      [`${ia}/setup.sh`, `${ia}/env_setup.sh`, `${ext}/setup.sh`, `${ext}/env_setup.sh`, '/cvmfs/atlas.cern.ch/repo/sw/software/21.2/sw/lcg/releases/gcc/6.2.0/x86_64-slc6/setup.sh', `${ia}/bin/xAODDump`].join('\n') + '\n',
    );
    const run = (img: string) => spawnSync('chroot', [img, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    const common = ['build', '--format', 'dir', '--cvmfs-root', cvmfs, '--base', base, '--trace', thin, '--policy', 'exact', '-q'];

    const without = path.join(work, 'thin-img');
    expect(shrinkwrap([...common, '-o', without]).code).toBe(0);
    expect(run(without).stderr).toMatch(/xAODDump: error while loading shared libraries: libxAODRootAccess\.so/);

    const withElf = path.join(work, 'elf-img');
    const b = shrinkwrap([...common, '--closure', 'symlink,elf', '--env-file', envFile, '-o', withElf]);
    expect(b.code, b.stderr).toBe(0);
    const r = run(withElf);
    expect(r.stdout + r.stderr).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');

    // plan says why each library is there: which object needed it.
    const plan = JSON.parse(shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, '--trace', thin, '--policy', 'exact', '--closure', 'elf', '--env-file', envFile, '-q']).stdout);
    const reasonOf = (p: string) => plan.entries.find((e: { path: string }) => e.path === p)?.reason;
    expect(reasonOf(`${ia}/lib/libxAODRootAccess.so`)).toBe(`ELF closure: libxAODRootAccess.so needed by ${ia}/bin/xAODDump`);
    expect(reasonOf('/cvmfs/atlas.cern.ch/repo/sw/software/21.2/sw/lcg/releases/gcc/6.2.0binutils/x86_64-slc6-gcc62-opt/lib64/libstdc++.so.6.0.22')).toMatch(/^symlink closure: target of .*libstdc\+\+\.so\.6/);
    // Siblings stay out, and the sibling releases' copies of the same libraries too.
    expect(plan.entries.some((e: { path: string }) => e.path.includes('/21.2.74/'))).toBe(false);

    // --explain follows the chain back to the trace: library <- needed by <- ... <- the binary <- trace line.
    const ex = shrinkwrap(['plan', '-q', '--cvmfs-root', cvmfs, '--trace', thin, '--policy', 'exact', '--closure', 'elf', '--env-file', envFile, '--explain', `${ia}/lib/libCxxUtils.so`]);
    expect(ex.code, ex.stderr).toBe(0);
    const lines = ex.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`${ia}/lib/libCxxUtils.so: in the image (file): ELF closure: libCxxUtils.so needed by ${lines[1]!.trim().split(':')[0]}`);
    expect(lines[lines.length - 1]!.trim()).toMatch(new RegExp(`^${ia.replace(/[.+]/g, '\\$&')}/bin/xAODDump: in the image \\(file\\): .*thin\\.paths \\(exact\\):\\d+ exact`));
  });

  it('--explain says why a path is not in the image', () => {
    const spec = path.join(work, 'explain-atlas.cern.ch.spec');
    fs.writeFileSync(spec, `/repo/sw/database/DBRelease/current/*\n!/repo/sw/database/DBRelease/31.8.1/geomDB\n${IA}/setup.sh\n`);
    const why = (p: string) => shrinkwrap(['plan', '-q', '--cvmfs-root', cvmfs, '--spec', spec, '--repo', 'atlas.cern.ch', '--explain', p]).stdout.trim();
    expect(why('/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/31.8.1/geomDB/geomDB_sqlite')).toBe(
      `/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/31.8.1/geomDB/geomDB_sqlite: not in the image: excluded by ${spec}:2 '!/repo/sw/database/DBRelease/31.8.1/geomDB'`,
    );
    expect(why('/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/current/XMLConfig/dblookup.xml')).toMatch(/runs through the symlink \/cvmfs\/atlas\.cern\.ch\/repo\/sw\/database\/DBRelease\/current/);
    expect(why('/cvmfs/atlas.cern.ch/repo/nothing/here')).toMatch(/not in the image: .*\/repo\/nothing does not exist in the source$/);
    expect(why(`/cvmfs/atlas.cern.ch${IA}/env_setup.sh`)).toMatch(/not in the image: no spec line, trace or closure step selects it; its nearest selected ancestor .* is there because: ancestor of /);
    expect(why('/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/31.8.1/sqlite200/ALLP200.db')).toMatch(
      /in the image \(file\): symlink closure: target of \/cvmfs\/atlas\.cern\.ch\/repo\/sw\/database\/DBRelease\/current\n\s+\/cvmfs\/atlas\.cern\.ch\/repo\/sw\/database\/DBRelease\/current: in the image \(symlink -> 31\.8\.1\): .*:1 tree/,
    );
  });

  it('refuses an --env-file without LD_LIBRARY_PATH, in one line', () => {
    const envFile = path.join(work, 'empty.env');
    fs.writeFileSync(envFile, 'HOME=/root\n');
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--spec', path.join(work, 'atlas.cern.ch.spec'), '--closure', 'elf', '--env-file', envFile]), 2, `--env-file ${envFile}: no LD_LIBRARY_PATH= line`);
  });
});

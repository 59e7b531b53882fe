// --release on the example tree: resolution and its errors, the release chain, rule packs, globs,
// the ELF closure's search path (setup chain, traces, base ld.so.conf), and an image that runs.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE } from '../../fixtures/example-cvmfs.js';
import { ensureExample } from '../../fixtures/example.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let cvmfs: string;
let base: string;
let work: string;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-release-');
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface PlanJson {
  entries: { path: string; type: string; size: number; reason: string }[];
  summary: {
    bytes: number;
    warnings: { kind: string; message: string }[];
    parts?: { label: string; entries: number; bytes: number }[];
    releases?: { project: string; platform: string; bases: { label: string; why: string }[]; lcg: string[]; dbrelease: { version: string; via: string } | null; ldLibraryPath: string[] }[];
    elf?: { unresolved: number; fromBase: number; added: number };
  };
}

function plan(args: string[]): PlanJson {
  const r = shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as PlanJson;
}

const SW = '/cvmfs/atlas.cern.ch/repo/sw/software/21.2';
const has = (p: PlanJson, path: string) => p.entries.some((e) => e.path === path);
const under = (p: PlanJson, prefix: string) => p.entries.filter((e) => e.path === prefix || e.path.startsWith(prefix + '/'));

describe('release resolution', () => {
  it('an ambiguous version lists the projects that have it', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', '21.2.75']), 2, /release 21\.2\.75 is ambiguous: AnalysisBase,21\.2\.75, AthAnalysis,21\.2\.75 \(name one/);
  });

  it('an unknown version lists the nearest versions found', () => {
    expectOneLineError(
      shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.80']),
      2,
      /--release AnalysisBase,21\.2\.80: release AnalysisBase 21\.2\.80 not found under .*; nearest: AnalysisBase,21\.2\.74, AnalysisBase,21\.2\.75, AnalysisBase,21\.2\.76$/m,
    );
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'Athena,22.0.1']), 2, /release Athena 22\.0\.1 not found .*no Athena versions found there at all/);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'latest']), 2, /--release latest: 'latest': expected \[PROJECT,\]VERSION/);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', '21.2']), 2, /'21\.2' is a release branch, not a release: give the full version \(nearest under \S+: AnalysisBase,21\.2\.74, AnalysisBase,21\.2\.75, AthAnalysis,21\.2\.75\)$/m);
  });

  it('several platforms need --platform; a missing one lists those there', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AthAnalysis,21.2.75']), 2, /exists for several platforms: x86_64-centos7-gcc62-opt, x86_64-slc6-gcc62-opt \(choose one with --platform\)/);
    expectOneLineError(
      shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.75', '--platform', 'x86_64-el9-gcc13-opt']),
      2,
      /has no platform x86_64-el9-gcc13-opt \(there: x86_64-slc6-gcc62-opt\)/,
    );
  });

  it("several platforms: the base image's OS picks the one it runs (os-release, redhat-release)", () => {
    const c7 = path.join(work, 'base-centos7');
    fs.mkdirSync(path.join(c7, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(c7, 'etc/os-release'), 'NAME="CentOS Linux"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n');
    const p = plan(['--release', 'AthAnalysis,21.2.75', '--base', c7]);
    expect(p.summary.releases![0]!.platform).toBe('x86_64-centos7-gcc62-opt');
    const slc6 = path.join(work, 'base-slc6');
    fs.mkdirSync(path.join(slc6, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(slc6, 'etc/redhat-release'), 'Scientific Linux CERN SLC release 6.10 (Carbon)\n');
    expect(plan(['--release', 'AthAnalysis,21.2.75', '--base', slc6]).summary.releases![0]!.platform).toBe('x86_64-slc6-gcc62-opt');
    const el9 = path.join(work, 'base-el9');
    fs.mkdirSync(path.join(el9, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(el9, 'etc/os-release'), 'ID="almalinux"\nVERSION_ID="9.4"\n');
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AthAnalysis,21.2.75', '--base', el9]), 2, /several platforms: .*none is the only one for the base image's el9/);
  });

  it('--releases-file names the line of a bad entry; release options without a release are refused', () => {
    const f = path.join(work, 'releases.txt');
    fs.writeFileSync(f, '# wanted at the site\nAnalysisBase,21.2.75\nAnalysisBase 21.2.76\n');
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--releases-file', f]), 2, `${f}:3: one release per line`);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--spec', f, '--platform', 'x']), 2, '--platform needs --release or --releases-file');
  });
});

describe('--release AnalysisBase,21.2.75', () => {
  let p: PlanJson;
  beforeAll(() => {
    p = plan(['--release', 'AnalysisBase,21.2.75']);
  });

  it('selects the release, its externals (through its setup.sh) and the gcc runtime its setup uses', () => {
    expect(under(p, `/cvmfs/${EXAMPLE.analysisBase}`).length).toBeGreaterThan(380);
    expect(has(p, `/cvmfs/${EXAMPLE.externals}/lib/libCore.so`)).toBe(true);
    expect(has(p, `/cvmfs/${EXAMPLE.gccSetup}`)).toBe(true);
    expect(has(p, `/cvmfs/${EXAMPLE.gccLib64}/libstdc++.so.6.0.22`)).toBe(true);
    expect(has(p, `/cvmfs/${EXAMPLE.gccLib64}/libgcc_s.so.1`)).toBe(true);
    expect(has(p, `${SW}/atlas/offline/ReleaseData/v20/README.txt`)).toBe(true); // release-metadata pack
    expect(has(p, '/cvmfs/atlas.cern.ch/repo/ATLASLocalRootBase/logDir/lastUpdate')).toBe(true); // pilot-markers
    expect(has(p, '/cvmfs/sft.cern.ch/lcg/lastUpdate')).toBe(true);
    const ext = p.entries.find((e) => e.path === `/cvmfs/${EXAMPLE.externals}/lib/libCore.so`)!;
    expect(ext.reason).toMatch(/^base project AnalysisBaseExternals 21\.2\.75 of AnalysisBase 21\.2\.75: its setup is sourced by .*AnalysisBase\/21\.2\.75\/.*\/setup\.sh:11$/);
    const rel = p.summary.releases![0]!;
    expect(rel.bases.map((b) => b.label)).toEqual(['AnalysisBaseExternals 21.2.75']);
    expect(rel.ldLibraryPath).toEqual([`/cvmfs/${EXAMPLE.analysisBase}/lib`, `/cvmfs/${EXAMPLE.externals}/lib`, '/cvmfs/sft.cern.ch/lcg/releases/gcc/6.2.0-b9934/x86_64-slc6/lib64']);
  });

  it('leaves out the sibling releases, other projects, GAUDI, the DBRelease (an analysis release) and images', () => {
    for (const prefix of [`${SW}/AnalysisBase/21.2.74`, `${SW}/AnalysisBase/21.2.76`, `${SW}/AnalysisBaseExternals/21.2.74`, `${SW}/AthAnalysis`, `${SW}/GAUDI`, `${SW}/sw/lcg/releases/LCG_88`, '/cvmfs/atlas.cern.ch/repo/sw/database', '/cvmfs/atlas.cern.ch/repo/containers']) {
      expect(under(p, prefix), prefix).toEqual([]);
    }
    expect(p.summary.releases![0]!.dbrelease).toBeNull();
  });

  it('says how many bytes each part contributes; the parts add up to the whole', () => {
    const parts = Object.fromEntries(p.summary.parts!.map((x) => [x.label, x]));
    expect(parts['release AnalysisBase 21.2.75']!.bytes).toBeGreaterThan(100_000);
    expect(parts['base project AnalysisBaseExternals 21.2.75']!.bytes).toBeGreaterThan(100_000);
    expect(Object.keys(parts).find((k) => k.startsWith('compiler '))).toBeDefined();
    expect(parts['pack pilot-markers']!.entries).toBe(4);
    expect(p.summary.parts!.reduce((n, x) => n + x.bytes, 0)).toBe(p.summary.bytes);
    expect(p.summary.parts!.reduce((n, x) => n + x.entries, 0)).toBe(p.entries.length);
    const text = shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.75']);
    expect(text.stdout).toMatch(/^release: AnalysisBase 21\.2\.75 x86_64-slc6-gcc62-opt at .*; base projects AnalysisBaseExternals 21\.2\.75; compiler /m);
    expect(text.stdout).toMatch(/^ {2}base project AnalysisBaseExternals 21\.2\.75 +\d+ entries +[\d.]+ KiB$/m);
  });

  it('warns about /cvmfs paths the setup chain names that the image lacks (CALIBPATH, DATAPATH, ...)', () => {
    const w = p.summary.warnings.filter((x) => x.kind === 'setup-path-missing').map((x) => x.message);
    expect(w).toContain(`setup chain of AnalysisBase 21.2.75: CALIBPATH names ${EXAMPLE.notInImageLiteral}, which is not in the source tree: jobs will not find it in the image`);
    expect(w).toContain('setup chain of AnalysisBase 21.2.75: CALIBPATH names /cvmfs/atlas.cern.ch/repo/sw/database/GroupData, which is in the source but not selected: jobs will not find it in the image');
    expect(w.join('\n')).not.toMatch(/ReleaseData\/v20|AnalysisBase\/21\.2\.75\/InstallArea\/[^/]+\/lib\b/); // selected: no word
  });

  it('the ELF closure runs by default, over the LD_LIBRARY_PATH the setup chain builds', () => {
    expect(p.summary.elf!.unresolved).toBe(0);
    const noElf = plan(['--release', 'AnalysisBase,21.2.75', '--closure', 'symlink']);
    expect(noElf.summary.elf).toBeNull();
  });
});

describe('release chain of AthAnalysis 21.2.75 (Gaudi-based, LCG externals)', () => {
  it('brings AthAnalysisExternals, GAUDI (recipe rule for 21.x) and the LCG_88 packages its environment points into', () => {
    const p = plan(['--release', 'AthAnalysis,21.2.75', '--platform', 'x86_64-slc6-gcc62-opt']);
    const rel = p.summary.releases![0]!;
    expect(rel.bases.map((b) => b.label)).toEqual(['AthAnalysisExternals 21.2.75', 'GAUDI 21.2.75']);
    expect(rel.bases[1]!.why).toMatch(/^recipe specs\/recipes\/atlas\.recipe:\d+$/);
    expect(rel.lcg).toEqual([`${SW}/sw/lcg/releases/LCG_88/LCG_externals_x86_64-slc6-gcc62-opt.txt`]);
    const rootFile = p.entries.find((e) => e.path === `${SW}/sw/lcg/releases/ROOT/6.08.06-abc12/x86_64-slc6-gcc62-opt/bin/thisroot.sh`);
    expect(rootFile?.reason).toMatch(/LCG package ROOT 6\.08\.06 of AthAnalysis 21\.2\.75 \(.*LCG_externals_x86_64-slc6-gcc62-opt\.txt:4\)/);
    expect(has(p, `${SW}/sw/lcg/releases/Python/2.7.13-597a5/x86_64-slc6-gcc62-opt/lib/python2.7/os.py`)).toBe(true);
    expect(has(p, `${SW}/GAUDI/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/python/GaudiKernel/__init__.py`)).toBe(true);
    expect(under(p, `${SW}/AthAnalysis/21.2.75/InstallArea/x86_64-centos7-gcc62-opt`)).toEqual([]);
    expect(p.summary.parts!.map((x) => x.label)).toContain('LCG LCG_88');
  });
});

describe('rule packs and globs', () => {
  it('--dbrelease: current resolved and recorded, or a version asked for; an unknown one lists those there', () => {
    const cur = plan(['--release', 'AnalysisBase,21.2.75', '--dbrelease', 'current'.replace('current', '31.8.1')]);
    expect(cur.summary.releases![0]!.dbrelease).toMatchObject({ version: '31.8.1', via: 'option' });
    const viaPack = plan(['--release', 'AnalysisBase,21.2.75', '--pack', 'dbrelease']);
    expect(viaPack.summary.releases![0]!.dbrelease).toMatchObject({ version: '31.8.1', via: 'current' });
    expect(has(viaPack, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/31.8.1/sqlite200/ALLP200.db')).toBe(true);
    expect(has(viaPack, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/current')).toBe(true);
    expect(under(viaPack, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/30.1.1')).toEqual([]);
    const old = plan(['--release', 'AnalysisBase,21.2.75', '--dbrelease', '30.1.1']);
    expect(has(old, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/30.1.1/sqlite200/ALLP200.db')).toBe(true);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.75', '--dbrelease', '9.9.9']), 2, /--dbrelease 9\.9\.9: not found in .*DBRelease \(there: 30\.1\.1, 31\.8\.1\)/);
  });

  it('default exclusions prune what wide selections bring, say so in --explain, and can be turned off', () => {
    const args = ['--release', 'AnalysisBase,21.2.75', '--include', 'atlas.cern.ch/repo/ATLASLocalRootBase/**', '--include', 'atlas.cern.ch/repo/sw/database/*'];
    const p = plan(args);
    expect(under(p, '/cvmfs/atlas.cern.ch/repo/ATLASLocalRootBase/x86_64-MacOS')).toEqual([]);
    expect(under(p, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/30.1.1')).toEqual([]);
    expect(under(p, '/cvmfs/atlas.cern.ch/repo/sw/database/GroupData/FTK')).toEqual([]);
    expect(has(p, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/31.8.1/geomDB/geomDB_sqlite')).toBe(true); // current's target is kept
    expect(has(p, `/cvmfs/${EXAMPLE.grl}`)).toBe(true);
    const why = shrinkwrap(['plan', '--cvmfs-root', cvmfs, ...args, '--explain', '/cvmfs/atlas.cern.ch/repo/ATLASLocalRootBase/x86_64-MacOS/Cmake']);
    expect(why.stdout).toMatch(/not in the image: excluded by pack default-exclusions \(specs\/packs\/default-exclusions\.pack:\d+\) 'x86_64-MacOS'/);
    const off = plan([...args, '--no-default-exclusions']);
    expect(under(off, '/cvmfs/atlas.cern.ch/repo/ATLASLocalRootBase/x86_64-MacOS').length).toBeGreaterThan(0);
    expect(under(off, '/cvmfs/atlas.cern.ch/repo/sw/database/DBRelease/30.1.1').length).toBeGreaterThan(0);
  });

  it('--exclude prunes below the lines that select; --include adds globbed paths; neither needs a release', () => {
    const spec = path.join(work, 'atlas.cern.ch.spec');
    fs.writeFileSync(spec, `/repo/sw/software/21.2/AnalysisBase/21.2.75/*\n/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/${EXAMPLE.platform}/cmake/AnalysisBaseConfig.cmake\n`);
    const p = plan(['--spec', spec, '--exclude', '*.cmake', '--include', '/cvmfs/atlas.cern.ch/repo/sw/database/GroupData/dev/*/xsdb/**']);
    expect(p.entries.filter((e) => e.path.endsWith('.cmake')).map((e) => path.basename(e.path))).toEqual(['AnalysisBaseConfig.cmake']);
    expect(has(p, '/cvmfs/atlas.cern.ch/repo/sw/database/GroupData/dev/SUSYTools/xsdb/mc15_13TeV/Backgrounds.txt')).toBe(true);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--spec', spec, '--exclude', '/usr/*']), 2, /--exclude \/usr\/\*: .*paths under \/cvmfs/);
  });
});

describe('the ELF closure search path', () => {
  it('takes the loader directories a strace trace reveals (found and failed library opens)', () => {
    const trace = path.join(work, 'loader.strace');
    const ab = `/cvmfs/${EXAMPLE.analysisBase}`;
    fs.writeFileSync(
      trace,
      [
        `100 execve("${ab}/bin/xAODDump", ["xAODDump"], 0x7ffd /* 20 vars */) = 0`,
        `100 openat(AT_FDCWD, "${ab}/lib/libxAODRootAccess.so", O_RDONLY|O_CLOEXEC) = 3`,
        `100 openat(AT_FDCWD, "/cvmfs/${EXAMPLE.externals}/lib/libnotthere.so", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)`,
        `100 openat(AT_FDCWD, "/cvmfs/${EXAMPLE.gccLib64}/libnotthere.so", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)`,
        '100 +++ exited with 0 +++',
        '',
      ].join('\n'),
    );
    const withTrace = plan(['--trace', trace, '--policy', 'exact', '--closure', 'elf']);
    expect(withTrace.summary.elf!.unresolved).toBe(0);
    expect(has(withTrace, `/cvmfs/${EXAMPLE.externals}/lib/libCore.so`)).toBe(true);
    expect(has(withTrace, `/cvmfs/${EXAMPLE.gccLib64}/libgcc_s.so.1`)).toBe(true);
  });

  it("never bundles what the base image's ld.so.conf (with include) provides", () => {
    const rootfs = path.join(work, 'base-with-gcc');
    fs.mkdirSync(path.join(rootfs, 'etc/ld.so.conf.d'), { recursive: true });
    fs.mkdirSync(path.join(rootfs, 'opt/gcc/lib64'), { recursive: true });
    fs.writeFileSync(path.join(rootfs, 'etc/ld.so.conf'), 'include /etc/ld.so.conf.d/*.conf\n');
    fs.writeFileSync(path.join(rootfs, 'etc/ld.so.conf.d/gcc.conf'), '# the site compiler\n/opt/gcc/lib64\n');
    for (const lib of ['libstdc++.so.6', 'libgcc_s.so.1']) fs.writeFileSync(path.join(rootfs, 'opt/gcc/lib64', lib), '');
    const ld = `/cvmfs/${EXAMPLE.analysisBase}/lib:/cvmfs/${EXAMPLE.externals}/lib`;
    const spec = path.join(work, 'ab.spec');
    fs.writeFileSync(spec, `/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/${EXAMPLE.platform}/bin/xAODDump\n`);
    const args = ['--spec', spec, '--repo', 'atlas.cern.ch', '--closure', 'elf', '--ld-library-path', ld];
    const without = shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, ...args]);
    expect(without.stderr).toMatch(/needs libstdc\+\+\.so\.6, not found under \/cvmfs in .* \(the base image must provide it\)/);
    const p = plan([...args, '--base', rootfs]);
    expect(p.summary.elf!.unresolved).toBe(0);
    expect(p.summary.elf!.fromBase).toBeGreaterThan(0);
    expect(p.entries.some((e) => e.path.includes('libstdc++'))).toBe(false);
  });
});

describe('an image built from --release runs the release', () => {
  it('build --release --base --format dir: the example binary runs in a chroot', () => {
    const out = path.join(work, 'release-image');
    const r = shrinkwrap(['build', '--format', 'dir', '--cvmfs-root', cvmfs, '--base', base, '--release', 'AnalysisBase,21.2.75', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/shrinkwrap: release: AnalysisBase 21\.2\.75/);
    expect(r.stderr).toMatch(/shrinkwrap: {3}release AnalysisBase 21\.2\.75 +\d+ entries/);
    if (!canRun(isRoot, 'chroot into the --release image', 'needs root')) return;
    const run = spawnSync('chroot', [out, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe(EXAMPLE.exampleOutput);
    expect(run.status).toBe(0);
  });
});

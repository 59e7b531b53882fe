// A platform per release: PROJECT,VERSION,PLATFORM and asetup's VERSION,PROJECT,PLATFORM, in
// --release and --releases-file, --platform as the default of the others, and two releases of
// different platforms in one image. The example tree has one release with two platforms
// (AthAnalysis 21.2.75, the centos7 one a stub); a copy of it gets AnalysisBase 21.2.76 for
// centos7 too, with its own externals, so that an image can hold an slc6 and a centos7 release.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { run } from '../helpers/consumers.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const SLC6 = 'x86_64-slc6-gcc62-opt';
const C7 = 'x86_64-centos7-gcc62-opt';
const BRANCH = 'atlas.cern.ch/repo/sw/software/21.2';
const ab = (version: string, platform: string) => `${BRANCH}/AnalysisBase/${version}/InstallArea/${platform}`;
const abx = (version: string, platform: string) => `${BRANCH}/AnalysisBaseExternals/${version}/InstallArea/${platform}`;

let example: string;
let base: string;
let work: string;
/** The example tree plus AnalysisBase 21.2.76 for centos7 (the example has it for slc6 only). */
let cvmfs: string;

/** AnalysisBase 21.2.76 for centos7: a setup chain into its externals, the way AtlasCMake writes it. */
function addCentos7Release(root: string): void {
  const file = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  const rel = ab('21.2.76', C7);
  const ext = abx('21.2.76', C7);
  file(`${rel}/setup.sh`, [
    '# AnalysisBase 21.2.76 for centos7 (release-platform test)',
    `AnalysisBase_DIR="\${AnalysisBase_DIR:-/cvmfs/${rel}}"`,
    'export AnalysisBase_DIR',
    `. "\${AnalysisBase_DIR}/../../../../AnalysisBaseExternals/21.2.76/InstallArea/${C7}/setup.sh"`,
    'LD_LIBRARY_PATH="${AnalysisBase_DIR}/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"',
    'export LD_LIBRARY_PATH',
    '',
  ].join('\n'));
  file(`${rel}/lib/README`, 'centos7 build of AnalysisBase 21.2.76\n');
  file(`${rel}/ReleaseData`, 'project: AnalysisBase\nrelease: 21.2.76\n');
  file(`${ext}/setup.sh`, [
    '# AnalysisBaseExternals 21.2.76 for centos7 (release-platform test)',
    `AnalysisBaseExternals_DIR="\${AnalysisBaseExternals_DIR:-/cvmfs/${ext}}"`,
    `EXTERNALS_PLATFORM=${C7}`,
    'export AnalysisBaseExternals_DIR EXTERNALS_PLATFORM',
    '',
  ].join('\n'));
  file(`${ext}/include/marker.h`, '/* centos7 externals */\n');
}

beforeAll(async () => {
  ({ cvmfs: example, base } = await ensureExample());
  work = tmpDir('sw-release-platform-');
  cvmfs = path.join(work, 'cvmfs');
  const cp = spawnSync('cp', ['-a', example, cvmfs], { encoding: 'utf8' });
  if (cp.status !== 0) throw new Error(`cp -a ${example}: ${cp.stderr}`);
  addCentos7Release(cvmfs);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface PlanJson {
  entries: { path: string; reason: string }[];
  summary: { releases?: { project: string; version: string; platform: string; path: string; bases: { label: string; path: string }[] }[] };
}

function plan(root: string, args: string[]): PlanJson {
  const r = shrinkwrap(['plan', '--json', '--cvmfs-root', root, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as PlanJson;
}

const under = (p: PlanJson, rel: string) => p.entries.filter((e) => e.path === `/cvmfs/${rel}` || e.path.startsWith(`/cvmfs/${rel}/`));
const picked = (p: PlanJson) => p.summary.releases!.map((r) => `${r.project},${r.version},${r.platform}`);

describe('a platform per release', () => {
  it('PROJECT,VERSION,PLATFORM picks that install area and its chain, and nothing of the other platform', () => {
    const p = plan(cvmfs, ['--release', `AnalysisBase,21.2.76,${C7}`]);
    expect(picked(p)).toEqual([`AnalysisBase,21.2.76,${C7}`]);
    expect(p.summary.releases![0]!.path).toBe(`/cvmfs/${ab('21.2.76', C7)}`);
    expect(p.summary.releases![0]!.bases.map((b) => b.path)).toEqual([`/cvmfs/${abx('21.2.76', C7)}`]);
    expect(under(p, `${ab('21.2.76', C7)}/lib/README`)).toHaveLength(1);
    expect(under(p, `${abx('21.2.76', C7)}/include/marker.h`)).toHaveLength(1);
    expect(under(p, ab('21.2.76', SLC6))).toEqual([]);
    // The other platform, asked for the same way, is the other install area.
    const slc6 = plan(cvmfs, ['--release', `AnalysisBase,21.2.76,${SLC6}`]);
    expect(slc6.summary.releases![0]!.path).toBe(`/cvmfs/${ab('21.2.76', SLC6)}`);
    expect(under(slc6, ab('21.2.76', C7))).toEqual([]);
  });

  it("--platform is the default of releases given without one; a release's own platform wins", () => {
    const p = plan(cvmfs, ['--platform', C7, '--release', 'AnalysisBase,21.2.76', '--release', `AnalysisBase,21.2.75,${SLC6}`]);
    expect(picked(p)).toEqual([`AnalysisBase,21.2.76,${C7}`, `AnalysisBase,21.2.75,${SLC6}`]);
    // With the base image's OS/ARCH beside it (before, the last --platform given won).
    const both = plan(cvmfs, ['--platform', SLC6, '--platform', 'linux/amd64', '--release', 'AnalysisBase,21.2.76']);
    expect(picked(both)).toEqual([`AnalysisBase,21.2.76,${SLC6}`]);
  });

  it("asetup's VERSION,PROJECT,PLATFORM, in --release and --releases-file; a platform only one project has names it", () => {
    expect(picked(plan(example, ['--release', `21.2.75,AthAnalysis,${C7}`]))).toEqual([`AthAnalysis,21.2.75,${C7}`]);
    expect(picked(plan(example, ['--release', `AthAnalysis,21.2.75,${SLC6}`]))).toEqual([`AthAnalysis,21.2.75,${SLC6}`]);
    // 21.2.75 alone is ambiguous (AnalysisBase, AthAnalysis); only AthAnalysis has it for centos7.
    expect(picked(plan(example, ['--release', `21.2.75,${C7}`]))).toEqual([`AthAnalysis,21.2.75,${C7}`]);
    const f = path.join(work, 'releases.txt');
    fs.writeFileSync(f, `# site list\n21.2.76,AnalysisBase,${C7}\nAnalysisBase,21.2.75   # takes --platform\n\n`);
    expect(picked(plan(cvmfs, ['--releases-file', f, '--platform', SLC6]))).toEqual([`AnalysisBase,21.2.76,${C7}`, `AnalysisBase,21.2.75,${SLC6}`]);
  });
});

describe('two releases of different platforms in one image', () => {
  it('build: both install areas and their externals (the default exclusions keep each release its own platform), each set up by /release_setup.sh', () => {
    if (!canRun(hasCommand('unsquashfs'), 'two-platform image', 'unsquashfs reads the image')) return;
    const img = path.join(work, 'two-platforms.sqfs');
    const r = shrinkwrap(['build', '--cvmfs-root', cvmfs, '--base', base, '--release', `AnalysisBase,21.2.75,${SLC6}`, '--release', `21.2.76,AnalysisBase,${C7}`, '-o', img]);
    expect(r.code, r.stderr).toBe(0);
    const listing = new Set(run('unsquashfs', ['-l', img]).split('\n').filter((l) => l.startsWith('squashfs-root/')).map((l) => l.slice('squashfs-root'.length)));
    const has = (rel: string) => listing.has(`/cvmfs/${rel}`);
    expect(has(`${ab('21.2.75', SLC6)}/setup.sh`)).toBe(true);
    expect(has(`${abx('21.2.75', SLC6)}/setup.sh`)).toBe(true);
    expect(has(`${ab('21.2.76', C7)}/lib/README`)).toBe(true);
    expect(has(`${abx('21.2.76', C7)}/include/marker.h`)).toBe(true);
    expect([...listing].filter((p) => p.startsWith(`/cvmfs/${ab('21.2.76', SLC6)}`))).toEqual([]);
    expect([...listing].filter((p) => p.startsWith(`/cvmfs/${BRANCH}/AthAnalysis/`))).toEqual([]);

    const cat = (p: string) => spawnSync('unsquashfs', ['-cat', img, p], { encoding: 'utf8', maxBuffer: 1 << 26 }).stdout;
    const provenance = JSON.parse(cat('.shrinkwrap/provenance.json')) as { releases: { project: string; version: string; platform: string }[] };
    expect(provenance.releases.map((x) => `${x.project},${x.version},${x.platform}`)).toEqual([`AnalysisBase,21.2.75,${SLC6}`, `AnalysisBase,21.2.76,${C7}`]);

    if (!canRun(isRoot, 'source /release_setup.sh of the two-platform image', 'chroot needs root')) return;
    const dir = path.join(work, 'two-platforms');
    const x = spawnSync('unsquashfs', ['-no-xattrs', '-d', dir, img], { encoding: 'utf8' });
    expect(x.status, x.stderr).toBe(0);
    const setup = (release: string) =>
      spawnSync('chroot', [dir, '/bin/sh', '-c', `SHRINKWRAP_RELEASE=${release} . /release_setup.sh && echo "$AnalysisBase_DIR|\${EXTERNALS_PLATFORM:-}"`], { encoding: 'utf8' });
    const c7 = setup('AnalysisBase,21.2.76');
    expect(c7.stderr).toBe('');
    expect(c7.stdout.trim()).toBe(`/cvmfs/${ab('21.2.76', C7)}|${C7}`);
    const slc6 = setup('AnalysisBase,21.2.75');
    expect(slc6.status, slc6.stderr).toBe(0);
    expect(slc6.stdout.trim()).toBe(`/cvmfs/${ab('21.2.75', SLC6)}|`);
  });
});

describe('errors: one line each', () => {
  it('a platform the release does not have lists those it has', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.76,x86_64-el9-gcc13-opt']), 2,
      `--release AnalysisBase,21.2.76,x86_64-el9-gcc13-opt: AnalysisBase 21.2.76 has no platform x86_64-el9-gcc13-opt (there: ${C7}, ${SLC6})`);
    const f = path.join(work, 'bad-platform.txt');
    fs.writeFileSync(f, `AnalysisBase,21.2.75\n21.2.75,AthAnalysis,x86_64-slc5-gcc43-opt\n`);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', example, '--releases-file', f]), 2,
      `${f}:2: AthAnalysis 21.2.75 has no platform x86_64-slc5-gcc43-opt (there: ${C7}, ${SLC6})`);
  });

  it('a release with several platforms and none asked for says how to choose', () => {
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AnalysisBase,21.2.76']), 2, `AnalysisBase 21.2.76 exists for several platforms: ${C7}, ${SLC6}`);
  });

  it('malformed arguments, two release platforms, and the same release twice for two platforms', () => {
    const plan1 = (...args: string[]) => shrinkwrap(['plan', '--cvmfs-root', cvmfs, ...args]);
    expectOneLineError(plan1('--release', `AnalysisBase,21.2.76,${C7},${SLC6}`), 2, /expected \[PROJECT,\]VERSION\[,PLATFORM\]/);
    expectOneLineError(plan1('--release', `21.2.76,${C7},${SLC6}`), 2, /two platforms; expected/);
    expectOneLineError(plan1('--release', 'AnalysisBase,21.2.76,linux/amd64'), 2, /--platform OS\/ARCH is the base image's/);
    expectOneLineError(plan1('--release', 'AnalysisBase,21.2.76', '--platform', C7, '--platform', SLC6), 2,
      `--platform ${C7} --platform ${SLC6}: two release platforms`);
    expectOneLineError(plan1('--release', 'AnalysisBase,21.2.76', '--platform', 'linux/amd64', '--platform', 'linux/arm64'), 2, /two base image platforms/);
    expectOneLineError(plan1('--release', `AnalysisBase,21.2.76,${C7}`, '--release', `21.2.76,AnalysisBase,${SLC6}`), 2,
      `--release 21.2.76,AnalysisBase,${SLC6}: AnalysisBase 21.2.76 is already in the image for ${C7}`);
  });
});

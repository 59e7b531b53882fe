// shrinkwrap slurm on a real single-host Slurm (test/helpers/slurm.ts): the job array and the merge
// job it submits, what the merge job says when releases fail, the --dry-run script submitted by
// hand, and (once `build --part` and `merge` exist) the merged image against `merge` run by hand.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { REPO_ROOT, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun } from '../helpers/env.js';
import { type LocalSlurm, canRunSlurm, jobStates, startSlurm, waitForJob } from '../helpers/slurm.js';
import { tmpDir } from '../helpers/tree.js';
import { partName } from '../../src/compose/slurm.js';

const haveSlurm = canRunSlurm('shrinkwrap slurm on a local Slurm');
let slurm: LocalSlurm | null = null;
let cvmfs: string;
let base: string;
let work: string;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-slurm-test-');
  if (haveSlurm) slurm = await startSlurm();
});

afterAll(async () => {
  await slurm?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

/** `build --part` and `merge` (issue 22, other branches): the flow's success needs them. */
function haveParts(what: string): boolean {
  const merge = shrinkwrap(['merge', '--help']).code === 0;
  const part = /--part\b/.test(shrinkwrap(['build', '--help']).stdout);
  return canRun(merge && part, what, `shrinkwrap has no ${[merge ? null : 'merge', part ? null : 'build --part'].filter(Boolean).join(' and ')} yet`);
}

/** A release's part's name (PROJECT-VERSION[-PLATFORM]), as build --parts names it. */
function nameOf(release: string): string {
  const [project, version, platform] = release.split(',') as [string, string, string | undefined];
  return partName(project, version, platform ?? null);
}

/** A directory whose name sh, bash and sbatch's %-patterns could each get wrong. */
function oddDir(name: string): string {
  const d = path.join(work, `${name} it's "%a" $HOME`);
  fs.mkdirSync(d);
  return d;
}

function releasesFile(dir: string, lines: string[]): string {
  const f = path.join(dir, 'releases.txt');
  fs.writeFileSync(f, ['# production releases', ...lines, ''].join('\n'));
  return f;
}

/** `shrinkwrap slurm …` from `cwd` (jobs run there); the array and merge job ids it prints. */
function submit(args: string[], cwd: string): { array: string; merge: string } {
  const r = shrinkwrap(['slurm', ...args], { env: slurm!.env, cwd });
  expect(r.code, r.stderr).toBe(0);
  const m = /^(\d+) (\d+)\n$/.exec(r.stdout);
  expect(m, r.stdout).not.toBeNull();
  expect(r.stderr).toMatch(new RegExp(`^shrinkwrap: submitted job array ${m![1]} \\(\\d+ releases, parts in .*\\) and merge job ${m![2]} `));
  return { array: m![1]!, merge: m![2]! };
}

/** What `build --part` of `release` says when run by hand: null if it builds, else its error line. */
function errorByHand(release: string, args: string[]): string | null {
  const dir = tmpDir('sw-slurm-byhand-');
  try {
    const r = shrinkwrap(['build', `--release=${release}`, '--part', '-o', path.join(dir, 'p.sqfs'), '--force', '--no-checksum', ...args], { cwd: work });
    if (r.code === 0) return null;
    const line = r.stderr.split('\n').filter((l) => l.startsWith('shrinkwrap: error: ')).pop();
    return line!.slice('shrinkwrap: error: '.length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The releases whose build fails by hand, with their error lines. */
function failures(releases: string[], args: string[]): Map<string, string> {
  return new Map(releases.flatMap((r) => {
    const error = errorByHand(r, args);
    return error === null ? [] : [[r, error] as const];
  }));
}

function mergeLog(partsDir: string, job: string): string[] {
  return fs.readFileSync(path.join(partsDir, 'logs', `merge-${job}.out`), 'utf8').split('\n').filter((l) => l !== '');
}

/** The merge job's lines for a run where `failed` releases (with the reasons by hand) failed. */
function expectFailureLines(lines: string[], releases: string[], failed: Map<string, string>, ids: { array: string }, partsDir: string, output: string): void {
  const expected = releases.flatMap((r, i) =>
    failed.has(r) ? [`shrinkwrap: error: release ${r} failed (task ${i} of job ${ids.array}): ${failed.get(r)} (log: ${partsDir}/logs/part-${i}.out)`] : [],
  );
  expected.push(`shrinkwrap: error: ${failed.size} of ${releases.length} releases failed: ${output} not written`);
  expect(lines).toEqual(expected);
}

describe('shrinkwrap slurm refuses before submitting anything', () => {
  const refused = (args: string[], culprit: string | RegExp, env: NodeJS.ProcessEnv = process.env) => {
    const dir = fs.mkdtempSync(path.join(work, 'cli-'));
    try {
      const r = shrinkwrap(['slurm', ...args.map((a) => a.replace('@', dir))], { cwd: dir, env });
      expectOneLineError(r, 2, culprit);
      expect(fs.readdirSync(dir)).toEqual(args.includes('@/exists.sqfs') ? ['exists.sqfs'] : []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  it('no output, no releases, words before --, sbatch options it sets itself, an existing output', () => {
    refused(['--release', 'AnalysisBase,21.2.75'], '-o, --output <path>: say where the merged image goes');
    refused(['-o', '@/x.sqfs'], 'give the releases: --releases-file FILE');
    refused(['--release', '21.2.75', '-o', '@/x.sqfs'], '--release 21.2.75: each part is named by its project: give PROJECT,21.2.75 (or --project)');
    refused(['--release', 'AnalysisBase,21.2.75', '-o', '@/x.sqfs', 'short'], 'short: sbatch options go after --');
    refused(['--release', 'AnalysisBase,21.2.75', '-o', '@/x.sqfs', '--partition=short'], "unknown option '--partition=short'");
    refused(['--release', 'AnalysisBase,21.2.75', '-o', '@/x.sqfs', '--', '--array=0-9'], 'sbatch option --array=0-9: shrinkwrap slurm sets the array and the dependency itself');
    refused(['--release', 'AnalysisBase,21.2.75', '-o', '@/no/x.sqfs'], /output \S+\/no\/x\.sqfs: directory \S+\/no does not exist/);
    refused(['--release', 'AnalysisBase,21.2.75', '-o', '@/x.sqfs', '--releases-file', '@/none.txt'], /none\.txt: no such file or directory/);
  });

  it('slurm --help: examples, every option in a group', () => {
    const r = shrinkwrap(['slurm', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/^Options:$/m);
    expect(r.stdout).toMatch(/Examples:\n {2}shrinkwrap slurm --releases-file /);
    expect(r.stdout).toMatch(/Output:\n {2}-o, --output <path>[\s\S]*--parts <dir>/);
    expect(r.stdout).toMatch(/Slurm:\n {2}--dry-run [\s\S]*--shrinkwrap <command>/);
  });

  it('--dry-run prints the jobs: one task per release, the merge after the array, the options where they belong', () => {
    const dir = oddDir('printed');
    const output = path.join(dir, 'out.sqfs');
    const f = releasesFile(dir, ['AnalysisBase,21.2.75', '21.2.74,AnalysisBase # older', 'AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt']);
    const r = shrinkwrap(['slurm', '--releases-file', f, '-o', output, '--cvmfs-root', cvmfs, '--platform', 'linux/amd64', '--exclude', '*.pdf', '--base', base, '--dry-run', '--', '--partition=short', '--time=1:00:00']);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['releases.txt']); // nothing written
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => l.startsWith('#SBATCH '))).toEqual(['#SBATCH --job-name=shrinkwrap-part', '#SBATCH --array=0-2', '#SBATCH --job-name=shrinkwrap-merge']);
    expect(lines).toContain(`releases=(AnalysisBase,21.2.75 AnalysisBase,21.2.74 AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt)`);
    expect(lines).toContain(`names=(AnalysisBase-21.2.75 AnalysisBase-21.2.74 AthAnalysis-21.2.75-x86_64-slc6-gcc62-opt)`);
    const q = (p: string) => `'${p.replaceAll("'", "'\\''")}'`;
    expect(lines).toContain(`dir=${q(`${output}.parts`)}`);
    const build = lines.find((l) => l.includes(' build --release="$release" --part '))!;
    expect(build).toContain(`--cvmfs-root=${cvmfs} --platform=linux/amd64 '--exclude=*.pdf' 2>&1 | (trap '' TERM; exec tee -- "$log")`);
    expect(lines).toContain(`exec ${process.execPath} ${fs.realpathSync(path.join(REPO_ROOT, 'dist/src/cli/shrinkwrap.cjs'))} merge -o ${q(output)} --base=${base} --platform=linux/amd64 \\`);
    const sbatch = lines.filter((l) => /^(array|merge)=\$\(sbatch /.test(l));
    expect(sbatch).toEqual([
      `array=$(sbatch --parsable ${q(`--output=${output}.parts/logs/part-%a.out`.replaceAll('%a"', '%%a"'))} --partition=short --time=1:00:00 ${q(`${output}.parts/part.sh`)})`,
      `merge=$(sbatch --parsable --dependency=afterany:"$array" --kill-on-invalid-dep=yes ${q(`--output=${output}.parts/logs/merge-%j.out`.replaceAll('%a"', '%%a"'))} --partition=short --time=1:00:00 ${q(`${output}.parts/merge.sh`)} "$array")`,
    ]);
  });

  it('an output that exists, without --force', () => {
    const dir = fs.mkdtempSync(path.join(work, 'cli-'));
    fs.writeFileSync(path.join(dir, 'exists.sqfs'), 'x');
    expectOneLineError(shrinkwrap(['slurm', '--release', 'AnalysisBase,21.2.75', '-o', path.join(dir, 'exists.sqfs'), '--dry-run']), 2, /exists\.sqfs already exists \(use --force to replace it\)/);
    expect(shrinkwrap(['slurm', '--release', 'AnalysisBase,21.2.75', '-o', path.join(dir, 'exists.sqfs'), '--dry-run', '--force']).code).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no sbatch here: one line saying so, the scripts written for a look', () => {
    const dir = fs.mkdtempSync(path.join(work, 'cli-'));
    const r = shrinkwrap(['slurm', '--release', 'AnalysisBase,21.2.75', '-o', path.join(dir, 'x.sqfs')], { env: { ...process.env, PATH: '/nonexistent' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('shrinkwrap: error: submitting the job array (1 releases): sbatch: not found: is this a Slurm submit host? (--dry-run prints the scripts)\n');
    expect(fs.readdirSync(path.join(dir, 'x.sqfs.parts')).sort()).toEqual(['logs', 'merge.sh', 'part.sh']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe.runIf(haveSlurm)('shrinkwrap slurm on a local Slurm', () => {
  it('a release that fails is named by the merge job, which fails and writes nothing', async () => {
    const dir = oddDir('fail');
    const releases = ['AnalysisBase,21.2.75', 'AnalysisBase,21.2.99'];
    const output = path.join(dir, 'prod.sqfs');
    const partsDir = `${output}.parts`;
    // Relative to where shrinkwrap slurm runs: the jobs run there too.
    const cvmfsRel = path.relative(work, cvmfs);
    const ids = submit(['--releases-file', releasesFile(dir, releases), '-o', output, '--cvmfs-root', cvmfsRel, '--base', base], work);
    const merge = await waitForJob(slurm!, ids.merge);
    expect(merge.map((s) => s.state)).toEqual(['FAILED']);
    // What each task's build says, run by hand the same way: the 21.2.99 one fails whatever else does.
    const failed = failures(releases, ['--cvmfs-root', cvmfsRel]);
    expect(failed.get('AnalysisBase,21.2.99')).toBeDefined();
    const tasks = jobStates(slurm!, ids.array);
    expect(tasks.map((t) => [t.task, t.state])).toEqual(releases.map((r, i) => [String(i), failed.has(r) ? 'FAILED' : 'COMPLETED']));
    expectFailureLines(mergeLog(partsDir, ids.merge), releases, failed, ids, partsDir, output);
    // Nothing written beside the output: no image, no temporary.
    expect(fs.readdirSync(dir).sort()).toEqual(['prod.sqfs.parts', 'releases.txt']);
    for (const r of failed.keys()) {
      expect(fs.existsSync(path.join(partsDir, `${nameOf(r)}.part.sqfs`))).toBe(false);
      expect(fs.readFileSync(path.join(partsDir, `${nameOf(r)}.failed`), 'utf8')).toBe(`${ids.array}\n${failed.get(r)}\n`);
    }
  });

  it('the --dry-run script, run by hand, submits the same two jobs', async () => {
    const dir = oddDir('dry');
    const releases = ['AnalysisBase,21.2.98', '21.2.97,AnalysisBase'];
    const output = path.join(dir, 'prod.sqfs');
    const partsDir = path.join(dir, 'parts dir');
    const args = (parts: string) => ['--releases-file', releasesFile(dir, releases), '-o', output, '--parts', parts, '--cvmfs-root', cvmfs];
    const dry = shrinkwrap(['slurm', ...args(partsDir), '--dry-run'], { env: slurm!.env, cwd: work });
    expect(dry.code, dry.stderr).toBe(0);
    expect(fs.existsSync(partsDir)).toBe(false); // a dry run writes nothing
    const run = spawnSync('sh', ['-c', dry.stdout], { env: slurm!.env, cwd: work, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const m = /^(\d+) (\d+)\n$/.exec(run.stdout);
    expect(m, run.stdout).not.toBeNull();
    const ids = { array: m![1]!, merge: m![2]! };
    await waitForJob(slurm!, ids.merge);
    const canonical = ['AnalysisBase,21.2.98', 'AnalysisBase,21.2.97'];
    const failed = failures(canonical, ['--cvmfs-root', cvmfs]);
    expect([...failed.keys()]).toEqual(canonical);
    expectFailureLines(mergeLog(partsDir, ids.merge), canonical, failed, ids, partsDir, output);
    // The scripts it wrote are the ones shrinkwrap slurm writes itself.
    const own = path.join(dir, 'own parts');
    await waitForJob(slurm!, submit(args(own), work).merge);
    // (Both directories are single-quoted in the scripts, a ' written '\''.)
    const inQuotes = (p: string) => p.replaceAll("'", "'\\''");
    for (const s of ['part.sh', 'merge.sh']) expect(fs.readFileSync(path.join(own, s), 'utf8')).toBe(fs.readFileSync(path.join(partsDir, s), 'utf8').replaceAll(inQuotes(partsDir), inQuotes(own)));
  });

  it('sbatch refusing the job is one line naming the array, and nothing is left queued', () => {
    const dir = oddDir('refused');
    const r = shrinkwrap(['slurm', '--release', 'AnalysisBase,21.2.75', '-o', path.join(dir, 'x.sqfs'), '--cvmfs-root', cvmfs, '--', '--partition=nosuchpartition'], { env: slurm!.env, cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^shrinkwrap: error: submitting the job array \(1 releases\): sbatch: error: .*[Pp]artition.*\n$/);
    expect(spawnSync('squeue', ['-h'], { env: slurm!.env, encoding: 'utf8' }).stdout.trim()).toBe('');
  });

  it('three releases make the image `merge` makes of the same parts by hand', async () => {
    if (!haveParts('the merged image of a Slurm build')) return;
    const dir = oddDir('ok');
    const releases = ['AnalysisBase,21.2.74', 'AnalysisBase,21.2.75', 'AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt'];
    const output = path.join(dir, 'prod.sqfs');
    const partsDir = `${output}.parts`;
    const env = { ...slurm!.env, SOURCE_DATE_EPOCH: '1700000000' };
    const r = shrinkwrap(['slurm', '--releases-file', releasesFile(dir, releases), '-o', output, '--cvmfs-root', cvmfs, '--base', base], { env, cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const [array, merge] = r.stdout.trim().split(' ') as [string, string];
    const states = await waitForJob(slurm!, merge);
    expect(states.map((s) => s.state), mergeLog(partsDir, merge).join('\n')).toEqual(['COMPLETED']);
    expect(jobStates(slurm!, array).map((t) => t.state)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    const parts = releases.map((rel) => path.join(partsDir, `${nameOf(rel)}.part.sqfs`));
    const byHand = path.join(dir, 'by-hand.sqfs');
    const m = shrinkwrap(['merge', '-o', byHand, '--base', base, ...parts], { env });
    expect(m.code, m.stderr).toBe(0);
    const digest = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
    expect(digest(output)).toBe(digest(byHand));
    // The kernel's reader agrees: each release's tree is there.
    const list = spawnSync('unsquashfs', ['-l', '-d', '', output], { encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(list.status, list.stderr).toBe(0);
    for (const v of ['21.2.74', '21.2.75']) expect(list.stdout).toContain(`/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/${v}/InstallArea`);
    expect(list.stdout).toContain('/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AthAnalysis/21.2.75/InstallArea/x86_64-slc6-gcc62-opt');
  });

  it('a task cancelled while it builds is named as stopped, leaves no temporary, and the merge job still runs', async () => {
    if (!haveParts('a cancelled task')) return;
    // The example with a 50 GB sparse file in the release: its build runs for a while.
    const dir = oddDir('cancelled');
    const tree = path.join(dir, 'cvmfs');
    expect(spawnSync('cp', ['-a', cvmfs, tree]).status).toBe(0); // (fs.cpSync copies no FIFO)
    const release = 'AnalysisBase,21.2.75';
    const huge = path.join(tree, 'atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt/lib/huge.dat');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 50 * 2 ** 30);
    const output = path.join(dir, 'prod.sqfs');
    const partsDir = `${output}.parts`;
    const ids = submit(['--release', release, '-o', output, '--cvmfs-root', tree, '--no-space-check'], work);
    const deadline = Date.now() + 30_000;
    while (jobStates(slurm!, ids.array)[0]?.state !== 'RUNNING' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 2000)); // the build is reading the big file
    expect(spawnSync('scancel', [ids.array], { env: slurm!.env }).status).toBe(0);
    expect((await waitForJob(slurm!, ids.merge)).map((s) => s.state)).toEqual(['FAILED']);
    expect(jobStates(slurm!, ids.array).map((t) => t.state)).toEqual(['CANCELLED']);
    // Stopped within KillWait (5 s, then SIGKILL): the build removed its temporary, the task said why.
    expectFailureLines(mergeLog(partsDir, ids.merge), [release], new Map([[release, 'stopped by SIGTERM (scancel, or the time limit)']]), ids, partsDir, output);
    expect(fs.readdirSync(partsDir).sort()).toEqual([`${nameOf(release)}.failed`, 'logs', 'merge.sh', 'part.sh']);
    expect(fs.readFileSync(path.join(partsDir, 'logs', 'part-0.out'), 'utf8')).toMatch(/^shrinkwrap: interrupted by SIGTERM; temporary output removed$/m);
  });

  it('one release failing among good ones: only it is named, and the good parts stay for the next run', async () => {
    if (!haveParts('a failing release among good ones')) return;
    const dir = oddDir('mixed');
    const releases = ['AnalysisBase,21.2.75', 'AnalysisBase,21.2.99', 'AnalysisBase,21.2.74'];
    const output = path.join(dir, 'prod.sqfs');
    const partsDir = `${output}.parts`;
    const ids = submit(['--releases-file', releasesFile(dir, releases), '-o', output, '--cvmfs-root', cvmfs], work);
    expect((await waitForJob(slurm!, ids.merge)).map((s) => s.state)).toEqual(['FAILED']);
    const failed = new Map([['AnalysisBase,21.2.99', errorByHand('AnalysisBase,21.2.99', ['--cvmfs-root', cvmfs])!]]);
    expect(failed.get('AnalysisBase,21.2.99')).toMatch(/release AnalysisBase 21\.2\.99 not found/);
    expectFailureLines(mergeLog(partsDir, ids.merge), releases, failed, ids, partsDir, output);
    expect(fs.existsSync(output)).toBe(false);
    for (const r of ['AnalysisBase,21.2.75', 'AnalysisBase,21.2.74']) expect(fs.readFileSync(path.join(partsDir, `${nameOf(r)}.ok`), 'utf8')).toBe(`${ids.array}\n`);
  });
});

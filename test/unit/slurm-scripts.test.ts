// The scripts `shrinkwrap slurm` writes, run by the shells that will run them: quoting of odd
// names, the task's verdict on its build, the merge job's check of every task, the --dry-run
// script; and the checks made before anything is submitted. (The whole flow on a real Slurm:
// test/integration/slurm.test.ts.)
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type SlurmJobs,
  type SlurmRelease,
  checkSlurmJobs,
  dryRunScript,
  mergeSbatchArgs,
  mergeScript,
  parsableJobId,
  partName,
  partPath,
  shellQuote,
  slurmReleases,
  taskSbatchArgs,
  taskScript,
} from '../../src/compose/slurm.js';
import { InputError } from '../../src/model/errors.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tree.js';

// The command line from dist/ (shrinkwrap's version is read from package.json relative to dist/).
const { makeProgram } = (await import(path.join(REPO_ROOT, 'dist/src/cli/main.js'))) as typeof import('../../src/cli/main.js');
const { partBuildOptions } = (await import(path.join(REPO_ROOT, 'dist/src/cli/slurm.js'))) as typeof import('../../src/cli/slurm.js');

const work = tmpDir('sw-slurm-unit-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const ODD = ["it's", 'a b', '$HOME', '`id`', '"q"', 'back\\slash', 'new\nline', '', '-x', '%a', '*', 'ü'];

/** PROJECT,VERSION[,PLATFORM] and its part's name. */
function rel(text: string): SlurmRelease {
  const [project, version, platform] = text.split(',') as [string, string, string | undefined];
  return { text, name: partName(project, version, platform ?? null) };
}

function jobs(over: Partial<SlurmJobs> = {}): SlurmJobs {
  return {
    releases: ['AnalysisBase,21.2.75', 'AnalysisBase,21.2.74', 'AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt'].map(rel),
    partsDir: path.join(work, 'parts'),
    output: path.join(work, 'out.sqfs'),
    base: null,
    force: false,
    mergeOptions: [],
    command: 'shrinkwrap',
    buildOptions: [],
    sbatchOptions: [],
    sourceDateEpoch: null,
    ...over,
  };
}

/** Run `script` with bash, `args` after it, in `env` besides PATH. */
function bash(script: string, args: string[] = [], env: Record<string, string> = {}) {
  const file = path.join(work, `script-${Math.random().toString(36).slice(2)}.sh`);
  fs.writeFileSync(file, script);
  return spawnSync('bash', [file, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH']!, ...env } });
}

const sbatchLines = (script: string) => script.split('\n').filter((l) => l.startsWith('#SBATCH ')).map((l) => l.slice('#SBATCH '.length));

describe('quoting', () => {
  it('every odd word comes back unchanged from sh and bash', () => {
    for (const shell of ['sh', 'bash']) {
      for (const word of ODD) {
        const r = spawnSync(shell, ['-c', `printf '%s' ${shellQuote(word)}`], { encoding: 'utf8' });
        expect(r.stdout, `${shell}: ${JSON.stringify(word)}`).toBe(word);
      }
    }
  });

  it('the releases and the shared directory reach the scripts as they are', () => {
    const partsDir = path.join(work, `it's "%a" $HOME`);
    const j = jobs({ partsDir, releases: ["Ath'x $y,21.2.75", 'AnalysisBase,21.2.75'].map(rel) });
    const dump = (script: string) => script.split('\n').filter((l) => /^(dir|releases|names)=/.test(l)).join('\n') + `\nprintf '%s\\n' "$dir" "\${releases[@]}" "\${names[@]}"`;
    const expected = `${partsDir}\nAth'x $y,21.2.75\nAnalysisBase,21.2.75\nAth_x__y-21.2.75\nAnalysisBase-21.2.75\n`;
    for (const script of [taskScript(j), mergeScript(j)]) expect(bash(dump(script)).stdout).toBe(expected);
  });
});

describe('the array job', () => {
  it('one task per release: #SBATCH --array=0-N, a name, and no path in an #SBATCH line', () => {
    expect(sbatchLines(taskScript(jobs()))).toEqual(['--job-name=shrinkwrap-part', '--array=0-2']);
    expect(sbatchLines(taskScript(jobs({ releases: [rel('P,1.0')] })))).toEqual(['--job-name=shrinkwrap-part', '--array=0-0']);
    expect(sbatchLines(mergeScript(jobs()))).toEqual(['--job-name=shrinkwrap-merge']);
  });

  it("builds its release's part with the options given, each one word", () => {
    const j = jobs({ buildOptions: ['--cvmfs-root=/a b', "--exclude=it's", '--no-closure'], sourceDateEpoch: '1700000000' });
    const script = taskScript(j);
    expect(script).toContain(`shrinkwrap build --release="$release" --part -o "$part" --force --no-checksum '--cvmfs-root=/a b' '--exclude=it'\\''s' --no-closure 2>&1`);
    expect(script).toContain('\nexport SOURCE_DATE_EPOCH=1700000000\n');
    expect(taskScript(jobs())).not.toContain('SOURCE_DATE_EPOCH');
  });

  // The build is stood in for by a shell command (the --shrinkwrap option) to reach each verdict.
  const runTask = (command: string, task = 1) => {
    const partsDir = fs.mkdtempSync(path.join(work, 'task-'));
    fs.mkdirSync(path.join(partsDir, 'logs'));
    const j = jobs({ partsDir, command });
    const r = bash(taskScript(j), [], { SLURM_ARRAY_TASK_ID: String(task), SLURM_ARRAY_JOB_ID: '77' });
    const release = j.releases[task]!.name;
    const read = (ext: string) => fs.readFileSync(path.join(partsDir, `${release}.${ext}`), { encoding: 'utf8', flag: 'r' });
    const has = (ext: string) => fs.existsSync(path.join(partsDir, `${release}.${ext}`));
    return { r, release, read, has, partsDir };
  };

  it('a build that fails leaves <name>.failed: the job id, then its error line', () => {
    const t = runTask(`sh -c 'echo "shrinkwrap: error: first"; echo progress; echo "shrinkwrap: error: release X not found" >&2; echo "shrinkwrap: 1 warning" >&2; exit 2' sh`);
    expect(t.r.status).toBe(2);
    expect(t.r.stdout).toBe('shrinkwrap: error: first\nprogress\nshrinkwrap: error: release X not found\nshrinkwrap: 1 warning\n'); // the log keeps all it said
    expect(t.read('failed')).toBe('77\nrelease X not found\n');
    expect(t.has('ok')).toBe(false);
  });

  it('a build killed by a signal, or one that exits 0 without a part, fails too', () => {
    const killed = runTask(`sh -c 'kill -9 $$' sh`);
    expect(killed.r.status).toBe(137);
    expect(killed.read('failed')).toBe('77\nkilled by signal 9\n');
    const silent = runTask('true');
    expect(silent.r.status).toBe(1);
    expect(silent.read('failed')).toBe('77\nthe build wrote no part\n');
    const quiet = runTask('false');
    expect(quiet.read('failed')).toBe('77\nthe build exited with status 1\n');
  });

  it('a task stopped as scancel stops it (SIGTERM to every process) says so', async () => {
    const partsDir = fs.mkdtempSync(path.join(work, 'task-'));
    fs.mkdirSync(path.join(partsDir, 'logs'));
    const file = path.join(partsDir, 'part.sh');
    // The stand-in says its last words on SIGTERM, as shrinkwrap does: the log must still take them.
    const build = `sh -c 'trap "echo shrinkwrap: interrupted by SIGTERM >&2; exit 143" TERM; sleep 30 & wait' sh`;
    fs.writeFileSync(file, taskScript(jobs({ partsDir, command: build })));
    const child = spawn('bash', [file], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env['PATH']!, SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_JOB_ID: '79' } });
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    await new Promise((r) => setTimeout(r, 500));
    process.kill(-child.pid!, 'SIGTERM');
    expect(await exited).toBe(143);
    expect(log).toBe('shrinkwrap: interrupted by SIGTERM\n');
    expect(fs.readFileSync(path.join(partsDir, 'AnalysisBase-21.2.75.failed'), 'utf8')).toBe('79\nstopped by SIGTERM (scancel, or the time limit)\n');
  });

  it('a build that writes its part leaves <name>.ok with the job id, and clears an earlier verdict', () => {
    const t = runTask(`sh -c 'while [ "$1" != -o ]; do shift; done; echo part > "$2"' sh`, 2);
    fs.writeFileSync(path.join(t.partsDir, `${t.release}.failed`), '70\nold\n');
    const again = bash(taskScript(jobs({ partsDir: t.partsDir, command: `sh -c 'while [ "$1" != -o ]; do shift; done; echo part > "$2"' sh` })), [], { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_JOB_ID: '78' });
    expect(again.status, again.stderr).toBe(0);
    expect(t.read('ok')).toBe('78\n');
    expect(t.has('failed')).toBe(false);
    expect(t.read('part.sqfs')).toBe('part\n');
    expect(fs.readdirSync(path.join(t.partsDir, 'logs'))).toEqual([]); // its copy of the log is gone
  });
});

describe('the merge job', () => {
  const setup = (results: Record<number, 'ok' | 'failed' | 'stale' | 'none' | 'ok-no-part'>) => {
    const partsDir = fs.mkdtempSync(path.join(work, 'merge-'));
    const output = path.join(partsDir, 'out dir', "it's.sqfs");
    // The merge is stood in for by printf: what it would have been run with.
    const j = jobs({ partsDir, output, base: 'oci:base dir', force: true, mergeOptions: ['--platform=linux/arm64'], command: `printf '<%s>\\n'` });
    j.releases.forEach((r, i) => {
      const put = (ext: string, text: string) => fs.writeFileSync(path.join(partsDir, `${r.name}.${ext}`), text);
      const result = results[i] ?? 'ok';
      if (result === 'ok' || result === 'stale') put('part.sqfs', 'x');
      if (result === 'ok' || result === 'ok-no-part') put('ok', '55\n');
      if (result === 'stale') put('ok', '54\n');
      if (result === 'failed') put('failed', '55\nrelease AnalysisBase 21.2.74 not found\n');
    });
    return { j, r: bash(mergeScript(j), ['55']) };
  };

  it('every task left its part: merge, with the parts in the order of the releases', () => {
    const { j, r } = setup({});
    expect(r.status, r.stderr).toBe(0);
    const args = [...r.stdout.matchAll(/<([^>]*)>/g)].map((m) => m[1]);
    expect(args).toEqual(['merge', '-o', j.output, '--base=oci:base dir', '--force', '--platform=linux/arm64', ...j.releases.map((r) => partPath(j.partsDir, r))]);
    expect(args.slice(-1)).toEqual([path.join(j.partsDir, 'AthAnalysis-21.2.75-x86_64-slc6-gcc62-opt.part.sqfs')]);
  });

  it('one line per failed release, naming it, its task and why; then nothing is merged', () => {
    const { j, r } = setup({ 0: 'stale', 1: 'failed', 2: 'ok-no-part' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const log = (i: number) => `(log: ${j.partsDir}/logs/part-${i}.out)`;
    expect(r.stderr.split('\n')).toEqual([
      `shrinkwrap: error: release AnalysisBase,21.2.75 failed (task 0 of job 55): no part and no result: the task was cancelled, killed or never ran ${log(0)}`,
      `shrinkwrap: error: release AnalysisBase,21.2.74 failed (task 1 of job 55): release AnalysisBase 21.2.74 not found ${log(1)}`,
      `shrinkwrap: error: release AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt failed (task 2 of job 55): no part and no result: the task was cancelled, killed or never ran ${log(2)}`,
      `shrinkwrap: error: 3 of 3 releases failed: ${j.output} not written`,
      '',
    ]);
  });

  it('a task that never ran is named too', () => {
    const { r } = setup({ 2: 'none' });
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(2);
    expect(r.stderr).toMatch(/^shrinkwrap: error: release AthAnalysis,21\.2\.75,x86_64-slc6-gcc62-opt failed \(task 2 of job 55\): no part and no result/);
  });
});

describe('submission', () => {
  it('the merge job waits for every task, whatever their fate, and is given the array id', () => {
    const j = jobs({ sbatchOptions: ['--partition=short', '-t', '5'] });
    expect(taskSbatchArgs(j)).toEqual(['--parsable', `--output=${j.partsDir}/logs/part-%a.out`, '--partition=short', '-t', '5', `${j.partsDir}/part.sh`]);
    expect(mergeSbatchArgs(j, '41')).toEqual([
      '--parsable',
      '--dependency=afterany:41',
      '--kill-on-invalid-dep=yes',
      `--output=${j.partsDir}/logs/merge-%j.out`,
      '--partition=short',
      '-t',
      '5',
      `${j.partsDir}/merge.sh`,
      '41',
    ]);
  });

  it("a % in the shared directory is no pattern in sbatch's log names", () => {
    expect(taskSbatchArgs(jobs({ partsDir: '/s/100%a' }))[1]).toBe('--output=/s/100%%a/logs/part-%a.out');
  });

  it("sbatch --parsable's job id, with or without a cluster", () => {
    expect(parsableJobId('12\n')).toBe('12');
    expect(parsableJobId('12;cluster\n')).toBe('12');
    for (const bad of ['', 'Submitted batch job 12\n', '12 13\n', 'x;12']) expect(parsableJobId(bad)).toBeNull();
  });

  it('what cannot work is refused before anything is submitted', () => {
    for (const opt of ['--array=0-1', '-a', '-a0-3', '--dependency=afterok:1', '-d', '-dafterok:1', '--wrap=true', '--kill-on-invalid-dep=no']) {
      expect(() => checkSlurmJobs(jobs({ sbatchOptions: ['-p', 'x', opt] })), opt).toThrow(new InputError(`sbatch option ${opt}: shrinkwrap slurm sets the array and the dependency itself`));
    }
    for (const opt of ['-A', 'acct', '--account=a', '-p', 'short', '--time=1:00:00', '--mem=4G', '-D', '/x']) expect(() => checkSlurmJobs(jobs({ sbatchOptions: [opt] }))).not.toThrow();
    expect(() => checkSlurmJobs(jobs({ partsDir: '/s/a\\b' }))).toThrow(/--parts \/s\/a\\b: a backslash in the path turns off sbatch's %a/);
    expect(() => checkSlurmJobs(jobs({ partsDir: '/s/o.sqfs', output: '/s/o.sqfs' }))).toThrow(/cannot be the output/);
  });
});

describe('the releases', () => {
  const none = { project: null, platform: null };

  it('in the order given, asetup order made canonical, comments skipped, each part named as build --parts names it', () => {
    const f = path.join(work, 'releases.txt');
    fs.writeFileSync(f, '# prod\nAnalysisBase,21.2.75\n\n21.2.74,AnalysisBase  # old\nAthAnalysis,21.2.75,x86_64-slc6-gcc62-opt\n');
    expect(slurmReleases(['P,1.0'], [f], none)).toEqual([
      { text: 'P,1.0', name: 'P-1.0' },
      { text: 'AnalysisBase,21.2.75', name: 'AnalysisBase-21.2.75' },
      { text: 'AnalysisBase,21.2.74', name: 'AnalysisBase-21.2.74' },
      { text: 'AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt', name: 'AthAnalysis-21.2.75-x86_64-slc6-gcc62-opt' },
    ]);
  });

  it('--project and --platform fill in what a line leaves out', () => {
    expect(slurmReleases(['21.2.75', 'AthAnalysis,21.2.75,x86_64-centos7-gcc62-opt'], [], { project: 'AnalysisBase', platform: 'x86_64-slc6-gcc62-opt' })).toEqual([
      { text: 'AnalysisBase,21.2.75,x86_64-slc6-gcc62-opt', name: 'AnalysisBase-21.2.75-x86_64-slc6-gcc62-opt' },
      { text: 'AthAnalysis,21.2.75,x86_64-centos7-gcc62-opt', name: 'AthAnalysis-21.2.75-x86_64-centos7-gcc62-opt' },
    ]);
  });

  it("odd bytes in a name become _, and a part's name never starts with a dot", () => {
    expect(partName("it's", '1.0', null)).toBe('it_s-1.0');
    expect(partName('..P', '1.0', 'a b')).toBe('__P-1.0-a_b');
  });

  it('a release twice, one without a project, a bad line or none at all: one line naming where', () => {
    const f = path.join(work, 'twice.txt');
    fs.writeFileSync(f, 'AnalysisBase,21.2.75\n21.2.75,AnalysisBase\n');
    expect(() => slurmReleases([], [f], none)).toThrow(new InputError(`${f}:2: release AnalysisBase,21.2.75 again (first at ${f}:1, AnalysisBase,21.2.75): each release is one task and one part`));
    fs.writeFileSync(f, 'AnalysisBase,21.2.75\n21.2.74\n');
    expect(() => slurmReleases([], [f], none)).toThrow(new InputError(`${f}:2: each part is named by its project: give PROJECT,21.2.74 (or --project)`));
    fs.writeFileSync(f, 'AnalysisBase,21.2.75\nlatest\n');
    expect(() => slurmReleases([], [f], none)).toThrow(new RegExp(`^${f}:2: 'latest': expected`));
    fs.writeFileSync(f, '# nothing yet\n');
    expect(() => slurmReleases([], [f], none)).toThrow(/^give the releases: --releases-file FILE/);
  });
});

describe('the --dry-run script', () => {
  it('writes exactly the two scripts, even where a path holds its here-document end, and submits them in order', () => {
    const partsDir = path.join(work, 'dry\nEND_OF_PART_SCRIPT\n');
    const j = jobs({ partsDir, sbatchOptions: ["--comment=it's"] });
    const script = dryRunScript(j);
    // sbatch stood in for by a function that logs its arguments and answers with job ids 7 and 8
    // (each call runs in a subshell: the count is kept in a file).
    const log = path.join(work, 'sbatch.log');
    const run = spawnSync('sh', ['-c', `sbatch() { printf '%s|' "$@" >> ${shellQuote(log)}; echo >> ${shellQuote(log)}; echo >> ${shellQuote(log + '.n')}; echo "$(($(wc -l < ${shellQuote(log + '.n')}) + 6));cluster"; }\n${script}`], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe('7 8\n');
    expect(fs.readFileSync(path.join(partsDir, 'part.sh'), 'utf8')).toBe(taskScript(j));
    expect(fs.readFileSync(path.join(partsDir, 'merge.sh'), 'utf8')).toBe(mergeScript(j));
    expect(fs.statSync(path.join(partsDir, 'logs')).isDirectory()).toBe(true);
    expect(fs.readFileSync(log, 'utf8')).toBe(`${taskSbatchArgs(j).join('|')}|\n${mergeSbatchArgs(j, '7').join('|')}|\n`);
  });
});

describe('the options each part is built with', () => {
  /** The slurm command after parsing `args`, its action not run. */
  function parsed(args: string[]): Command {
    const program = makeProgram();
    const slurm = program.commands.find((c) => c.name() === 'slurm')!;
    slurm.action(() => {});
    program.parse(['slurm', ...args], { from: 'user' });
    return slurm;
  }

  it('as given, one word each, values that look like options kept with their option', () => {
    const cmd = parsed(['--releases-file', 'f', '-o', 'o.sqfs', '--exclude', '-x', '--exclude', '*.pdf', '--no-closure', '--compression', 'zstd', '--platform', 'x86_64-slc6-gcc62-opt', '--no-default-exclusions', '--filters', 'open', 'readlink', '--base', 'b', '--force']);
    expect(partBuildOptions(cmd)).toEqual(['--platform=x86_64-slc6-gcc62-opt', '--exclude=-x', '--exclude=*.pdf', '--no-default-exclusions', '--no-closure', '--filters=open', '--filters=readlink', '--compression=zstd']);
    expect(partBuildOptions(parsed(['--closure', 'symlink,elf', '-o', 'o']))).toEqual(['--closure=symlink,elf']);
  });

  it("defaults are left to the build's own", () => {
    expect(partBuildOptions(parsed(['-o', 'o.sqfs']))).toEqual([]);
  });
});

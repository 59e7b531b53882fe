// `shrinkwrap slurm`: one image from many releases, built on many nodes. A job array builds one
// part per release into a shared directory (`build --release X --part`), and a merge job, started
// once every task has ended, checks that each left a part and merges them (`merge`), or names the
// releases that failed and writes nothing.
//
// The merge job depends on the array with `afterany`, not `afterok`: with afterok a failed task
// would leave it pending for ever (DependencyNeverSatisfied), and nobody would say which release
// failed. Each task leaves `<release>.ok` or `<release>.failed` (the array job's id, then the
// reason) beside its part; the id tells this run's results from an earlier run's in the same
// directory. Jobs run in the directory `shrinkwrap slurm` was run from (sbatch's default), so
// relative paths in the options mean what they meant there; ours are absolute.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BuildError, InputError, describeSystemError } from '../model/errors.js';
import { parseReleaseArg, readReleasesFile } from '../select/release/index.js';

/** What the two jobs do, every path absolute. */
export interface SlurmJobs {
  /** The releases, one task each, in the order given. */
  releases: SlurmRelease[];
  /** The shared directory: parts, results, the job scripts, logs/. */
  partsDir: string;
  /** The merged image. */
  output: string;
  /** The merge's --base, as given. */
  base: string | null;
  /** Give --force to merge. */
  force: boolean;
  /** Options the merge gets besides (the base image's --platform OS/ARCH). */
  mergeOptions: string[];
  /** Shell words that run shrinkwrap on a node (already quoted). */
  command: string;
  /** Options every `build --part` gets besides its release (selection, compression). */
  buildOptions: string[];
  /** The user's sbatch options, given to both jobs after ours (theirs win). */
  sbatchOptions: string[];
  /** SOURCE_DATE_EPOCH for both jobs, when set where they are submitted. */
  sourceDateEpoch: string | null;
}

/** One task's release. */
export interface SlurmRelease {
  /** `PROJECT,VERSION[,PLATFORM]`, --project and --platform filled in. */
  text: string;
  /** Its part's name in the shared directory, less `.part.sqfs`: `PROJECT-VERSION[-PLATFORM]`. */
  name: string;
}

/** A word for sh and bash: single-quoted unless plainly safe. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A part's name as `build --parts DIR` names it (so that it reuses the parts a Slurm run left):
 * `PROJECT-VERSION[-PLATFORM]`, every byte but [A-Za-z0-9._+-] made `_`, no leading dot.
 */
export function partName(project: string, version: string, platform: string | null): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._+-]/g, '_');
  return [project, version, ...(platform ? [platform] : [])].map(safe).join('-').replace(/^\.+/, (dots) => '_'.repeat(dots.length));
}

/**
 * The releases of --release and --releases-file, project and platform filled from --project and
 * --platform (a part is named by them), each part once (two tasks must not write one part).
 * Their syntax is checked here; whether they exist, by each task.
 */
export function slurmReleases(args: string[], files: string[], defaults: { project: string | null; platform: string | null }): SlurmRelease[] {
  const requests = [...args.map((a) => parseReleaseArg(a, `--release ${a}`)), ...files.flatMap((f) => readReleasesFile(f))];
  if (requests.length === 0) throw new InputError('give the releases: --releases-file FILE (one [PROJECT,]VERSION[,PLATFORM] per line) or --release');
  const seen = new Map<string, { text: string; origin: string }>();
  for (const r of requests) {
    const project = r.project ?? defaults.project;
    if (project === null) throw new InputError(`${r.origin}: each part is named by its project: give PROJECT,${r.version} (or --project)`);
    const platform = r.platform ?? defaults.platform;
    const text = [project, r.version, ...(platform === null ? [] : [platform])].join(',');
    const name = partName(project, r.version, platform);
    const first = seen.get(name);
    if (first !== undefined) throw new InputError(`${r.origin}: release ${text} again (first at ${first.origin}, ${first.text}): each release is one task and one part`);
    seen.set(name, { text, origin: r.origin });
  }
  return [...seen].map(([name, { text }]) => ({ text, name }));
}

/** Where a release's part goes. */
export function partPath(partsDir: string, release: SlurmRelease): string {
  return path.join(partsDir, `${release.name}.part.sqfs`);
}

/** sbatch options that would break the two jobs' wiring. */
const RESERVED_SBATCH = /^(-a|--array|-d|--dependency|--wrap|--kill-on-invalid-dep)(=|$)|^-[ad]./;

/** The shared directory, and what the jobs need of the options; one line for what cannot work. */
export function checkSlurmJobs(jobs: SlurmJobs): void {
  // In sbatch's file name patterns a backslash turns off every %-pattern: all tasks would log to one file.
  if (jobs.partsDir.includes('\\')) throw new InputError(`--parts ${jobs.partsDir}: a backslash in the path turns off sbatch's %a in log names; choose a directory without one`);
  if (path.resolve(jobs.partsDir) === path.resolve(jobs.output)) throw new InputError(`--parts ${jobs.partsDir}: the parts directory cannot be the output`);
  const reserved = jobs.sbatchOptions.find((o) => RESERVED_SBATCH.test(o));
  if (reserved !== undefined) throw new InputError(`sbatch option ${reserved}: shrinkwrap slurm sets the array and the dependency itself`);
}

/** A log name under the parts directory for sbatch --output: `%` is sbatch's pattern character. */
function logPattern(partsDir: string, name: string): string {
  return path.join(partsDir, 'logs').replace(/%/g, '%%') + '/' + name;
}

export const TASK_SCRIPT = 'part.sh';
export const MERGE_SCRIPT = 'merge.sh';
/** %a: the task's index in the array. */
const TASK_LOG = 'part-%a.out';
const MERGE_LOG = 'merge-%j.out';

function epochLine(jobs: SlurmJobs): string[] {
  return jobs.sourceDateEpoch === null ? [] : [`export SOURCE_DATE_EPOCH=${shellQuote(jobs.sourceDateEpoch)}`];
}

/** The releases and their parts' names, as two bash arrays indexed by task. */
function releasesLines(jobs: SlurmJobs): string[] {
  return [`releases=(${jobs.releases.map((r) => shellQuote(r.text)).join(' ')})`, `names=(${jobs.releases.map((r) => shellQuote(r.name)).join(' ')})`];
}

/** The array job: task N builds release N's part and leaves its result for the merge job. */
export function taskScript(jobs: SlurmJobs): string {
  const build = [`${jobs.command} build --release="$release" --part -o "$part" --force --no-checksum`, ...jobs.buildOptions.map(shellQuote)].join(' ');
  return [
    '#!/bin/bash',
    '# Written by shrinkwrap slurm. Task N builds release N as a part in the shared directory, and leaves',
    '# <name>.ok or <name>.failed beside its part <name>.part.sqfs (the array job id, then why) for the merge job.',
    '#SBATCH --job-name=shrinkwrap-part',
    `#SBATCH --array=0-${jobs.releases.length - 1}`,
    'set -u',
    ...epochLine(jobs),
    `dir=${shellQuote(jobs.partsDir)}`,
    ...releasesLines(jobs),
    'release=${releases[$SLURM_ARRAY_TASK_ID]}',
    'name=${names[$SLURM_ARRAY_TASK_ID]}',
    'part="$dir/$name.part.sqfs"',
    'job=$SLURM_ARRAY_JOB_ID',
    'rm -f -- "$dir/$name.ok" "$dir/$name.failed"',
    // A trap, not an ignored signal (which the build would inherit): on scancel or the time limit
    // Slurm signals every process of the task; the build stops, and this script says so.
    "trap 'signalled=1' TERM",
    'signalled=0',
    // A copy of what the build says, for its error line (removed at the end; a SIGKILL leaves it in logs/, not on the node).
    'log=$(mktemp "$dir/logs/.part-$SLURM_ARRAY_TASK_ID.XXXXXX") || exit 1',
    // tee ignores SIGTERM: were it to die with the build, the build's last words would go to a
    // broken pipe (and shrinkwrap, as of this writing, then does not exit on SIGTERM).
    `${build} 2>&1 | (trap '' TERM; exec tee -- "$log")`,
    'status=${PIPESTATUS[0]}',
    'if [ "$status" -eq 0 ] && [ -f "$part" ]; then',
    '  printf \'%s\\n\' "$job" > "$dir/$name.ok"',
    'else',
    "  reason=$(grep -a '^shrinkwrap: error: ' -- \"$log\" | tail -n 1)",
    '  reason=${reason#shrinkwrap: error: }',
    '  if [ "$signalled" = 1 ]; then reason="stopped by SIGTERM (scancel, or the time limit)${reason:+: $reason}"',
    '  elif [ -z "$reason" ] && [ "$status" -gt 128 ]; then reason="killed by signal $((status - 128))"',
    '  elif [ -z "$reason" ] && [ "$status" -eq 0 ]; then reason="the build wrote no part"',
    '  elif [ -z "$reason" ]; then reason="the build exited with status $status"',
    '  fi',
    '  [ "$status" -ne 0 ] || status=1',
    '  printf \'%s\\n%s\\n\' "$job" "$reason" > "$dir/$name.failed"',
    'fi',
    'rm -f -- "$log"',
    'exit "$status"',
    '',
  ].join('\n');
}

/** The merge job (argument: the array job's id): every release's result, then the merge, or one line per failed release. */
export function mergeScript(jobs: SlurmJobs): string {
  const merge = [
    `exec ${jobs.command} merge -o ${shellQuote(jobs.output)}`,
    ...(jobs.base === null ? [] : [shellQuote(`--base=${jobs.base}`)]),
    ...(jobs.force ? ['--force'] : []),
    ...jobs.mergeOptions.map(shellQuote),
  ];
  const parts = jobs.releases.map((r) => `  ${shellQuote(partPath(jobs.partsDir, r))}`);
  return [
    '#!/bin/bash',
    '# Written by shrinkwrap slurm. Runs once every task of the array job ($1) has ended: merges the',
    '# parts if every task left one, else names each release that failed, writes nothing and fails.',
    '#SBATCH --job-name=shrinkwrap-merge',
    'set -u',
    ...epochLine(jobs),
    `dir=${shellQuote(jobs.partsDir)}`,
    ...releasesLines(jobs),
    'job=${1:?the array job id}',
    'failed=0',
    'for i in "${!releases[@]}"; do',
    '  release=${releases[$i]}',
    '  name=${names[$i]}',
    '  if [ "$(head -n 1 -- "$dir/$name.ok" 2>/dev/null)" = "$job" ] && [ -f "$dir/$name.part.sqfs" ]; then continue; fi',
    '  failed=$((failed + 1))',
    '  if [ "$(head -n 1 -- "$dir/$name.failed" 2>/dev/null)" = "$job" ]; then',
    '    reason=$(sed -n 2p -- "$dir/$name.failed")',
    '  else',
    '    reason="no part and no result: the task was cancelled, killed or never ran"',
    '  fi',
    `  printf 'shrinkwrap: error: release %s failed (task %s of job %s): %s (log: %s)\\n' "$release" "$i" "$job" "$reason" "$dir/logs/part-$i.out" >&2`,
    'done',
    'if [ "$failed" -gt 0 ]; then',
    `  printf 'shrinkwrap: error: %s of %s releases failed: %s not written\\n' "$failed" "\${#releases[@]}" ${shellQuote(jobs.output)} >&2`,
    '  exit 1',
    'fi',
    `${merge.join(' ')} \\`,
    parts.join(' \\\n'),
    '',
  ].join('\n');
}

/** sbatch's arguments for the array job. */
export function taskSbatchArgs(jobs: SlurmJobs): string[] {
  return ['--parsable', `--output=${logPattern(jobs.partsDir, TASK_LOG)}`, ...jobs.sbatchOptions, path.join(jobs.partsDir, TASK_SCRIPT)];
}

/** sbatch's arguments for the merge job, after the array job `arrayJob`. */
export function mergeSbatchArgs(jobs: SlurmJobs, arrayJob: string): string[] {
  return [
    '--parsable',
    `--dependency=afterany:${arrayJob}`,
    '--kill-on-invalid-dep=yes',
    `--output=${logPattern(jobs.partsDir, MERGE_LOG)}`,
    ...jobs.sbatchOptions,
    path.join(jobs.partsDir, MERGE_SCRIPT),
    arrayJob,
  ];
}

/** A here-document delimiter that is no line of `text`. */
function delimiterFor(text: string, base: string): string {
  const lines = new Set(text.split('\n'));
  let d = base;
  while (lines.has(d)) d += '_';
  return d;
}

function hereDocument(file: string, text: string, base: string): string[] {
  const end = delimiterFor(text, base);
  return [`cat > ${shellQuote(file)} <<'${end}'`, text.replace(/\n$/, ''), end];
}

/**
 * --dry-run: a shell script that does what `shrinkwrap slurm` would do (write the job scripts,
 * submit both), to read, or to run by hand.
 */
export function dryRunScript(jobs: SlurmJobs): string {
  const quoted = (args: string[]) => args.map(shellQuote).join(' ');
  // The array job's id is known once it is submitted: "$array" where the merge's arguments hold it.
  const sentinel = '\0array\0';
  const merge = mergeSbatchArgs(jobs, sentinel).map((a) => a.split(sentinel).map((p) => (p === '' ? '' : shellQuote(p))).join('"$array"'));
  return [
    '#!/bin/sh',
    '# shrinkwrap slurm --dry-run: what it would write and submit (nothing was). Run this to do it by hand.',
    'set -e',
    `mkdir -p -- ${shellQuote(path.join(jobs.partsDir, 'logs'))}`,
    ...hereDocument(path.join(jobs.partsDir, TASK_SCRIPT), taskScript(jobs), 'END_OF_PART_SCRIPT'),
    ...hereDocument(path.join(jobs.partsDir, MERGE_SCRIPT), mergeScript(jobs), 'END_OF_MERGE_SCRIPT'),
    `array=$(sbatch ${quoted(taskSbatchArgs(jobs))})`,
    'array=${array%%;*}',
    `merge=$(sbatch ${merge.join(' ')})`,
    'echo "$array ${merge%%;*}"',
    '',
  ].join('\n');
}

export interface Submitted {
  arrayJob: string;
  mergeJob: string;
}

/** The job id in `sbatch --parsable`'s output (`ID` or `ID;CLUSTER`). */
export function parsableJobId(stdout: string): string | null {
  const m = /^(\d+)(?:;\S*)?\s*$/.exec(stdout.trim());
  return m ? m[1]! : null;
}

/** Run a Slurm client command; its output, or one line saying why it failed. */
async function slurmCommand(cmd: string, args: string[]): Promise<{ ok: boolean; stdout: string; problem: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', (err) => {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found: is this a Slurm submit host? (--dry-run prints the scripts)' : describeSystemError(err);
      resolve({ ok: false, stdout, problem: `${cmd}: ${why}` });
    });
    child.on('close', (code, signal) => {
      const said = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '').pop();
      const problem = said ?? `${cmd} ${signal === null ? `exited with status ${code}` : `was killed by ${signal}`}`;
      resolve({ ok: code === 0, stdout, problem });
    });
  });
}

async function sbatch(args: string[], what: string): Promise<string> {
  const r = await slurmCommand('sbatch', args);
  const id = r.ok ? parsableJobId(r.stdout) : null;
  if (id === null) throw new BuildError(`submitting the ${what}: ${r.ok ? `sbatch printed no job id (${JSON.stringify(r.stdout.trim())})` : r.problem}`);
  return id;
}

/** Write the job scripts into the shared directory and submit the array, then the merge job after it. */
export async function submitSlurmJobs(jobs: SlurmJobs): Promise<Submitted> {
  try {
    fs.mkdirSync(path.join(jobs.partsDir, 'logs'), { recursive: true });
    fs.writeFileSync(path.join(jobs.partsDir, TASK_SCRIPT), taskScript(jobs), { mode: 0o755 });
    fs.writeFileSync(path.join(jobs.partsDir, MERGE_SCRIPT), mergeScript(jobs), { mode: 0o755 });
  } catch (err) {
    throw new InputError(`--parts ${jobs.partsDir}: ${describeSystemError(err)}`);
  }
  const arrayJob = await sbatch(taskSbatchArgs(jobs), `job array (${jobs.releases.length} releases)`);
  try {
    return { arrayJob, mergeJob: await sbatch(mergeSbatchArgs(jobs, arrayJob), 'merge job') };
  } catch (err) {
    // Parts nobody would merge: take the array back.
    await slurmCommand('scancel', [arrayJob]);
    throw err;
  }
}

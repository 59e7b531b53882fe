// `shrinkwrap slurm`: its options (the build's own Option objects for what each part's build takes),
// and the command line of each part's build from the options given.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Command, Option } from 'commander';
import { type SlurmJobs, checkSlurmJobs, dryRunScript, shellQuote, slurmReleases, submitSlurmJobs } from '../compose/slurm.js';
import { InputError } from '../model/errors.js';
import { AtomicOutput, obeySignals } from '../util/atomic.js';
import { groupOptions, withExamples } from './help.js';

/** build's options that every part's build is given as they were given here (selection and compression). */
const FOR_EACH_PART = [
  '--cvmfs-root',
  '--project',
  '--platform',
  '--spec',
  '--include',
  '--exclude',
  '--repo',
  '--dbrelease',
  '--skip-unreadable',
  '--recipe',
  '--pack',
  '--drop-pack',
  '--no-default-exclusions',
  '--closure',
  '--no-closure',
  '--env-file',
  '--ld-library-path',
  '--trace',
  '--trace-format',
  '--policy',
  '--filters',
  '--cvmfs-proxy',
  '--cvmfs-keys',
  '--cvmfs-cache',
  '--cvmfs-allow-expired',
  '--cvmfs-variant',
  '--cvmfs-revision',
  '--cvmfs-tag',
  '--cvmfs-parallel',
  '--cvmfs-timeout',
  '--compression',
  '--level',
  '--block-size',
  '--mtime',
  '--owner',
  '--no-dedup',
  '--threads',
  '--no-space-check',
  '--progress',
];

const EXAMPLES = [
  'shrinkwrap slurm --releases-file prod.txt -o /scratch/prod.sqfs',
  'shrinkwrap slurm --releases-file prod.txt -o prod.sqfs -- -p short -t 1:00:00',
  'shrinkwrap slurm --releases-file prod.txt -o prod.sqfs --dry-run > submit.sh',
];

interface SlurmFlags {
  releasesFile?: string[];
  release?: string[];
  output?: string;
  base?: string;
  parts?: string;
  shrinkwrap?: string;
  dryRun?: boolean;
  force?: boolean;
  quiet?: boolean;
  [option: string]: unknown;
}

/** Add `slurm` to the program, taking FOR_EACH_PART's options from `build`. */
export function addSlurmCommand(program: Command, build: Command): Command {
  const cmd = program
    .command('slurm')
    .summary('build one image on a Slurm cluster: a job array builds a part per release, a merge job joins them')
    .description(
      withExamples(
        'Submit a Slurm job array that builds one part per release into a shared directory (shrinkwrap build --part), and a job that, ' +
          'once every task has ended, merges the parts into the image (shrinkwrap merge), or names the releases that failed and writes nothing. ' +
          'Jobs run in the current directory, which must be on a file system the nodes share, as must --parts and the output. ' +
          'Prints the two job ids on stdout.',
        EXAMPLES,
      ),
    )
    .argument('[sbatch-options...]', 'options for sbatch, after --, given to both jobs (e.g. -- --partition=short --time=2:00:00)')
    .addOption(new Option('--releases-file <file>', 'the releases, one [PROJECT,]VERSION[,PLATFORM] per line (# comments); one task each').argParser(collect))
    .addOption(new Option('--release <[project,]version[,platform]>', 'a release besides the file\'s (repeatable)').argParser(collect))
    .option('-o, --output <path>', 'the merged SquashFS image, written by the merge job only if every release built (required)')
    .option('--base <image>', "the merge's base image (a root filesystem DIR or tarball, oci:DIR, docker-archive:FILE, docker://HOST/REPO:TAG)")
    .option('--parts <dir>', 'the shared directory for the parts, job scripts and logs/ (default: OUTPUT.parts)')
    .option('--shrinkwrap <command>', 'how the jobs run shrinkwrap, as shell words (default: this node and this shrinkwrap, by absolute path)')
    .option('--dry-run', 'print what would be written and submitted, as a shell script, and submit nothing')
    .option('--force', 'replace an existing output (each task replaces its part of an earlier run anyway)');
  for (const long of FOR_EACH_PART) {
    const option = build.options.find((o) => o.long === long);
    if (option === undefined) throw new Error(`build has no ${long}`);
    cmd.addOption(option);
  }
  cmd.option('-q, --quiet', 'print errors only').action((sbatchOptions: string[], flags: SlurmFlags, self: Command) => runSlurm(sbatchOptions, flags, self));
  return groupOptions(cmd);
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** FOR_EACH_PART's options as given on this command line, as `--name=value` words (values may start with `-`). */
export function partBuildOptions(cmd: Command): string[] {
  const values = cmd.opts<Record<string, unknown>>();
  const out: string[] = [];
  const done = new Set<string>();
  for (const long of FOR_EACH_PART) {
    const option = cmd.options.find((o) => o.long === long)!;
    const key = option.attributeName();
    if (done.has(key) || cmd.getOptionValueSource(key) !== 'cli') continue;
    done.add(key);
    const value = values[key];
    const twin = (negate: boolean, takesValue: boolean) =>
      cmd.options.find((o) => o.attributeName() === key && o.negate === negate && (o.required || o.optional) === takesValue)!;
    if (value === false) out.push(twin(true, false).long!);
    else if (value === true) out.push(twin(false, false).long!);
    else for (const v of Array.isArray(value) ? value : [value]) out.push(`${twin(false, true).long!}=${String(v)}`);
  }
  return out;
}

/** --platform's two kinds (a release's; OS/ARCH, with a `/`, the base image's), each at most once, as build takes them. */
function platformOf(flags: SlurmFlags, kind: 'release' | 'image'): string | null {
  const given = ((flags['platform'] as string[] | undefined) ?? []).filter((p) => p.includes('/') === (kind === 'image'));
  if (given.length > 1) throw new InputError(`--platform ${given.join(' --platform ')}: two ${kind === 'image' ? 'base image platforms (OS/ARCH)' : 'release platforms'}; give one`);
  return given[0] ?? null;
}

/** The command that runs this very shrinkwrap: this node binary and this script, by absolute path. */
function thisShrinkwrap(): string {
  return [process.execPath, fs.realpathSync(process.argv[1]!)].map(shellQuote).join(' ');
}

async function runSlurm(sbatchOptions: string[], flags: SlurmFlags, cmd: Command): Promise<void> {
  obeySignals();
  if (flags.output === undefined) throw new InputError('-o, --output <path>: say where the merged image goes (see shrinkwrap slurm --help)');
  // commander keeps the words as given on the program (not in its typings): a word before -- is a mistake, not an sbatch option.
  const given = (cmd.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? [];
  if (sbatchOptions.length > 0 && !given.includes('--')) {
    throw new InputError(`${sbatchOptions[0]}: sbatch options go after -- (shrinkwrap slurm ... -- --partition=short)`);
  }
  const output = path.resolve(flags.output);
  const jobs: SlurmJobs = {
    releases: slurmReleases(flags.release ?? [], flags.releasesFile ?? [], { project: (flags['project'] as string | undefined) ?? null, platform: platformOf(flags, 'release') }),
    partsDir: path.resolve(flags.parts ?? `${flags.output}.parts`),
    output,
    base: flags.base ?? null,
    force: flags.force ?? false,
    // --platform OS/ARCH picks the base from an index: the merge's business (each part's build gets it too, unused there).
    mergeOptions: [platformOf(flags, 'image')].flatMap((p) => (p === null ? [] : [`--platform=${p}`])),
    command: flags.shrinkwrap ?? thisShrinkwrap(),
    buildOptions: partBuildOptions(cmd),
    sbatchOptions,
    sourceDateEpoch: process.env['SOURCE_DATE_EPOCH'] ?? null,
  };
  checkSlurmJobs(jobs);
  // Refused now, not hours later by the merge job: an output that exists (without --force), or in no directory.
  AtomicOutput.prepare(flags.output, jobs.force, { type: 'file', what: 'a SquashFS image' });
  if (flags.dryRun) {
    process.stdout.write(dryRunScript(jobs));
    return;
  }
  const { arrayJob, mergeJob } = await submitSlurmJobs(jobs);
  process.stdout.write(`${arrayJob} ${mergeJob}\n`);
  if (!flags.quiet) {
    process.stderr.write(
      `shrinkwrap: submitted job array ${arrayJob} (${jobs.releases.length} releases, parts in ${jobs.partsDir}) and merge job ${mergeJob} (writes ${output} once every part is built); logs in ${jobs.partsDir}/logs\n`,
    );
  }
}

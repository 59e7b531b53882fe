#!/usr/bin/env node
// The shrinkwrap command line: options in, stages called, results out. No logic of its own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { composeImage, imageEpoch } from '../compose/image.js';
import { fromText } from '../model/bytes.js';
import { Diagnostics } from '../model/diagnostics.js';
import { EXIT, ShrinkwrapError } from '../model/errors.js';
import { assignHardLinks } from '../model/plan.js';
import { selectPayload } from '../select/index.js';
import { MOUNT } from '../select/spec/parse.js';
import { requireDirectory, walkTree } from '../sources/posix.js';
import { AtomicOutput } from '../util/atomic.js';
import { writeDir } from '../writers/dir/index.js';
import { Out, humanBytes } from './output.js';
import { renderPlanJson, renderPlanText, summaryLines } from './render-plan.js';

const VERSION: string = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;

interface SelectionFlags {
  cvmfsRoot: string;
  spec?: string[];
  repo?: string;
  closure: boolean;
  quiet?: boolean;
}

interface BuildFlags extends SelectionFlags {
  output: string;
  format: 'dir';
  base?: string;
  force?: boolean;
}

interface PlanFlags extends SelectionFlags {
  json?: boolean;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function addSelectionOptions(cmd: Command): Command {
  return cmd
    .option('--cvmfs-root <dir>', 'the source: a tree laid out like /cvmfs, one directory per repository', '/cvmfs')
    .addOption(new Option('--spec <file>', 'cvmfs_shrinkwrap spec file (repeatable; specs union)').argParser(collect))
    .option('--repo <fqrn>', 'repository of relative spec lines (default: from the file name <fqrn>.spec)')
    .option('--no-closure', 'do not follow selected symlinks to their targets')
    .option('-q, --quiet', 'print errors only');
}

function diagnostics(quiet: boolean | undefined): Diagnostics {
  return new Diagnostics(quiet ? null : (w) => process.stderr.write(`shrinkwrap: warning: ${w.message}\n`));
}

function finishWarnings(diag: Diagnostics, quiet: boolean | undefined): void {
  if (quiet) return;
  for (const line of diag.suppressedSummary()) process.stderr.write(`shrinkwrap: ${line}\n`);
}

function selectionOf(flags: SelectionFlags) {
  return { cvmfsRoot: flags.cvmfsRoot, specs: flags.spec ?? [], repo: flags.repo ?? null, closure: flags.closure };
}

async function runPlan(flags: PlanFlags): Promise<void> {
  const diag = diagnostics(flags.quiet);
  const payload = selectPayload(selectionOf(flags), diag);
  const out = new Out();
  if (flags.json) {
    await renderPlanJson(payload.entries, { ...payload.summary, closure: payload.closure }, diag.warnings, out);
  } else {
    await renderPlanText(payload.entries, payload.summary, diag.warnings, out);
  }
  finishWarnings(diag, flags.quiet);
}

async function runBuild(flags: BuildFlags): Promise<void> {
  const diag = diagnostics(flags.quiet);
  // Refuse an existing output before the long part, not after it.
  const output = AtomicOutput.prepare(flags.output, flags.force ?? false);
  let base = null;
  if (flags.base !== undefined) {
    const baseRoot = fromText(path.resolve(flags.base));
    requireDirectory(baseRoot, '--base');
    base = walkTree(baseRoot, '/', `base ${flags.base}`, diag);
    assignHardLinks(base);
  }
  const payload = selectPayload(selectionOf(flags), diag);
  const image = composeImage({ base, payload: payload.entries, mount: MOUNT, epoch: imageEpoch(payload.entries) }, diag);
  try {
    const isRoot = process.getuid?.() === 0;
    output.begin();
    const result = await writeDir(image, fromText(output.tmp), { keepOwnership: isRoot }, diag);
    output.commit();
    if (!flags.quiet) {
      for (const line of summaryLines(payload.summary, diag.warnings.length)) process.stderr.write(`shrinkwrap: ${line}\n`);
      process.stderr.write(
        `shrinkwrap: wrote ${flags.output} (${flags.format}): ${result.entries} entries, ${result.files} files, ${humanBytes(result.bytes)}\n`,
      );
    }
  } finally {
    output.abort(); // no-op after commit
  }
  finishWarnings(diag, flags.quiet);
}

export function makeProgram(): Command {
  const program = new Command('shrinkwrap')
    .description(
      'Build self-contained container images for sites without CVMFS: select what releases need from a /cvmfs tree, ' +
        'complete it (symlink targets), put it into a base root filesystem and write the image.',
    )
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .showSuggestionAfterError(true);

  addSelectionOptions(
    program
      .command('build', { isDefault: true })
      .description('write an image (the default command: `shrinkwrap --spec S -o OUT` is `shrinkwrap build --spec S -o OUT`)'),
  )
    .requiredOption('-o, --output <path>', 'where to write the image (written beside it under a temporary name, renamed when complete)')
    .addOption(new Option('--format <format>', 'image format').choices(['dir']).default('dir'))
    .option('--base <rootfs-dir>', 'base root filesystem directory; the selection lands in its /cvmfs')
    .option('--force', 'replace an existing output')
    .action((flags: BuildFlags) => runBuild(flags));

  addSelectionOptions(program.command('plan').description("list what the image's /cvmfs will hold, and why"))
    .option('--json', 'print one JSON document {"entries":[...],"summary":{...}}')
    .action((flags: PlanFlags) => runPlan(flags));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await makeProgram().parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      process.stderr.write(`shrinkwrap: error: ${err.message.replace(/^error: /, '')} (see shrinkwrap --help)\n`);
      return EXIT.badInput;
    }
    if (err instanceof ShrinkwrapError) {
      process.stderr.write(`shrinkwrap: error: ${err.message}\n`);
      return err.exitCode;
    }
    // A bug: say so in one line; the stack only on request.
    const e = err as Error;
    process.stderr.write(`shrinkwrap: internal error: ${e?.message ?? String(err)} (set SHRINKWRAP_DEBUG=1 for details)\n`);
    if (process.env['SHRINKWRAP_DEBUG']) process.stderr.write(`${e?.stack}\n`);
    return 3;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

// What a new operator meets first (issue 20, item 9): bare `shrinkwrap`, a mistyped option or
// command, `build --help`, a mistyped project or a branch for a release, an empty /cvmfs, and the
// example's warnings, each of which says whether it is expected and what to do about it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { CLI, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { makeTree, tmpDir } from '../helpers/tree.js';

let cvmfs: string;
let base: string;
let work: string;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-first-');
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('the command line', () => {
  it('bare shrinkwrap prints the help on stderr and exits 2, not "required option -o"', () => {
    const r = shrinkwrap([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: shrinkwrap \[options\] \[command\]/);
    expect(r.stderr).toMatch(/Commands:\n {2}build \[options\]/);
    expect(r.stderr).toMatch(/Start with `shrinkwrap build --help`/);
    expect(r.stderr).not.toMatch(/required|--output/);
  });

  it('an unknown option is named, even before the missing -o of the default command', () => {
    expectOneLineError(shrinkwrap(['--frobnicate']), 2, "unknown option '--frobnicate'");
    expectOneLineError(shrinkwrap(['build', '--frobnicate', '--spec', 'x']), 2, "unknown option '--frobnicate'");
    expectOneLineError(shrinkwrap(['--fromat', 'oci']), 2, /unknown option '--fromat'.*Did you mean --format\?/);
  });

  it('a mistyped command is named as one, with the commands there are', () => {
    expectOneLineError(shrinkwrap(['biuld', '-o', 'x']), 2, "unknown command 'biuld' (commands: build, plan, slurm, spec, trace, merge, verify, report, push, help)");
  });

  it('build without -o says where the image should go, in one line', () => {
    expectOneLineError(shrinkwrap(['build', '--spec', 'x.spec']), 2, '-o, --output <path>: say where to write the image');
  });

  it('build --help: four examples, then the options in groups, every option placed', () => {
    const r = shrinkwrap(['build', '--help']);
    expect(r.code).toBe(0);
    const headings = r.stdout.split('\n').filter((l) => /^\S.*:$/.test(l));
    expect(headings).toEqual([
      'Examples:',
      'What to select:',
      'Base image:',
      'Output:',
      'Format and compression:',
      'Closures (what the selection needs besides):',
      'Traces (selecting what a job touched):',
      'Registry and HTTP source:',
      'Advanced:',
    ]);
    const examples = r.stdout.split('Examples:\n')[1]!.split('\n\n')[0]!.split('\n');
    expect(examples).toHaveLength(4);
    // Each fits 80 columns: commander would wrap a longer one without its indent.
    for (const e of examples) expect(e.length, e).toBeLessThanOrEqual(80);
    for (const e of examples) expect(e).toMatch(/^ {2}shrinkwrap build .* -o \S+$/);
    const group = (h: string) => r.stdout.split(`\n${h}\n`)[1]!.split('\n\n')[0]!;
    expect(group('What to select:')).toMatch(/^ {2}--release /);
    expect(group('Output:')).toMatch(/^ {2}-o, --output <path>/);
    expect(group('Base image:')).toMatch(/--base <image>/);
    expect(group('Registry and HTTP source:')).toMatch(/--tls-verify[\s\S]*--cvmfs-proxy/);
    expect(group('Advanced:')).toMatch(/-h, --help/);
  });

  it('plan --help groups its options too, with its own examples', () => {
    const r = shrinkwrap(['plan', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/^Options:$/m);
    expect(r.stdout).toMatch(/Examples:\n {2}shrinkwrap plan --release/);
    expect(r.stdout).toMatch(/Output:\n[\s\S]*--explain <path>/);
  });
});

describe('a release named wrongly', () => {
  it('a mistyped project lists the projects the recipes know, and the nearest', () => {
    expectOneLineError(
      shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'AthAnalsis,21.2.75']),
      2,
      /--release AthAnalsis,21\.2\.75: release AthAnalsis 21\.2\.75 not found under \S+: AthAnalsis is not a project the recipes know \(did you mean AthAnalysis\?\); they know AnalysisBase, AnalysisTop, AthAnalysis, AthDerivation, AthGeneration, AthSimulation, Athena$/m,
    );
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', 'Zebra,21.2.75']), 2, /Zebra is not a project the recipes know; they know AnalysisBase, /);
  });

  it('a branch for a release says so, without the recipe regex, and lists releases there', () => {
    const r = shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', '21.2']);
    expectOneLineError(r, 2, /'21\.2' is a release branch, not a release: give the full version \(nearest under \S+: AnalysisBase,21\.2\.74, /);
    expect(r.stderr).not.toMatch(/[\\^$]|\(\?</);
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', cvmfs, '--release', '1.2.3.4.5']), 2, /'1\.2\.3\.4\.5' is not a release version \(nearest under /);
  });
});

describe('an empty /cvmfs', () => {
  it('a root with nothing in it (autofs not triggered, CernVM-FS not mounted) says so in one line', () => {
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    const why = /\S+empty is empty and has no atlas\.cern\.ch: CernVM-FS is not mounted there, or autofs could not mount the repository \(check: cvmfs_config probe atlas\.cern\.ch\)/;
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', empty, '--release', 'AnalysisBase,21.2.75']), 2, why);
    const spec = path.join(work, 'atlas.cern.ch.spec');
    fs.writeFileSync(spec, '/repo/sw/*\n');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', empty, '--spec', spec, '-o', path.join(work, 'x.sqfs')]), 2, why);
    expect(fs.existsSync(path.join(work, 'x.sqfs'))).toBe(false);
  });

  it('a repository directory with nothing in it is a repository not mounted', () => {
    const root = makeTree(path.join(work, 'unmounted'), { 'atlas.cern.ch': { dir: true }, 'sft.cern.ch/x': 'x' });
    expectOneLineError(
      shrinkwrap(['plan', '--cvmfs-root', root, '--release', 'AnalysisBase,21.2.75']),
      2,
      /\/atlas\.cern\.ch is an empty directory: the repository is not mounted \(check: cvmfs_config probe atlas\.cern\.ch\)/,
    );
  });

  it('a root with other repositories still names the missing one as before', () => {
    const root = makeTree(path.join(work, 'other'), { 'sft.cern.ch/x': 'x' });
    const spec = path.join(work, 'atlas.cern.ch.spec');
    fs.writeFileSync(spec, '/repo/sw/*\n');
    expectOneLineError(shrinkwrap(['plan', '--cvmfs-root', root, '--spec', spec]), 2, /repository atlas\.cern\.ch not found under /);
  });
});

describe("the example's warnings", () => {
  it('each says whether it is expected and how to fix or silence it; the hints given do silence them', () => {
    const out = path.join(work, 'example.sqfs');
    const args = ['--cvmfs-root', cvmfs, '--base', base, '--release', 'AnalysisBase,21.2.75'];
    const r = shrinkwrap(['build', ...args, '-o', out, '--no-checksum']);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('shrinkwrap: warning: '));
    expect(warnings).toHaveLength(7);
    for (const w of warnings) expect(w, w).toMatch(/\((?:not )?expected [^()]*(?:\([^()]*\)[^()]*)*(?:--(?:exclude|include) '[^']+'|nothing to (?:add|fix)[^()]*)\)$/);
    // Follow every hint: each warning it names goes away (the ones with nothing to do stay).
    const hints = warnings.flatMap((w) => [...w.matchAll(/(--(?:exclude|include)) '([^']+)'/g)].map((m) => [m[1]!, m[2]!]));
    expect(hints).toHaveLength(5);
    const p = shrinkwrap(['plan', ...args, '--base', base, ...hints.flat()]);
    expect(p.code, p.stderr).toBe(0);
    const left = p.stderr.split('\n').filter((l) => l.startsWith('shrinkwrap: warning: '));
    expect(left).toEqual([expect.stringMatching(/NotInImage, which is not in the source tree.*nothing to add\)$/)]);
  });

  it('a reader that goes away (--help | true) ends the run quietly: no EPIPE stack trace', () => {
    // `true` is gone long before Node has started, so the help's write meets a closed pipe.
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" build --help | true`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});

// The doc-test: every shell command shown in README.md, docs/usage.md and docs/site-install.md runs
// here, against the bundled example, and exits 0 (issue 20: the README tour once built a SquashFS
// image and then chrooted into it). A block that cannot run on a test machine (a registry, a remote
// host, a runtime not installed, a `…` placeholder) is marked in the document, just before it, with
//   <!-- doc-test: skip (why) -->
// and nothing else is left out: a block with a placeholder and no mark fails this test.
// Commands run through `sh -c`, as a reader pastes them, in one directory per document (so a later
// block sees what an earlier one wrote), where `fixtures/out` is the example and `specs` the
// bundled specs; `npx shrinkwrap` and `shrinkwrap` are the built CLI, `sudo ` is dropped (the
// tests run as root).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { CLI, REPO_ROOT } from '../helpers/cli.js';
import { canFuse } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const DOCS = ['README.md', 'docs/usage.md', 'docs/site-install.md'];
const SKIP_MARK = /^<!-- doc-test: skip \((.+)\) -->$/;
const COMMAND_TIMEOUT_MS = 60_000;

interface DocCommand {
  line: number; // 1-based, where the command starts
  text: string; // continuation lines joined as the shell joins them
}

interface DocBlock {
  doc: string;
  line: number;
  commands: DocCommand[];
  skip: string | null; // the reason given by a skip mark, or null: the block runs
}

/** The code blocks of a Markdown document (fenced with no language or a shell one, or indented by
 *  four spaces after a blank line), with the skip mark that precedes each, if any. */
function docBlocks(doc: string, text: string): { blocks: DocBlock[]; strayMarks: number[] } {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  const strayMarks: number[] = [];
  let pendingSkip: { reason: string; line: number } | null = null;
  const open = (start: number, body: string[]): void => {
    blocks.push({ doc, line: start + 1, commands: commandsOf(body, start + 1), skip: pendingSkip?.reason ?? null });
    pendingSkip = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^```\s*(\S*)\s*$/.exec(line);
    if (fence) {
      let end = i + 1;
      while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
      if (['', 'sh', 'bash', 'shell', 'console'].includes(fence[1]!)) open(i + 1, lines.slice(i + 1, end));
      i = end;
      continue;
    }
    if (/^ {4}\S/.test(line) && (i === 0 || /^$|^<!--.*-->$/.test(lines[i - 1]!.trim()))) {
      let end = i;
      // An indented block runs on over blank lines as long as indented lines follow.
      while (end < lines.length && (/^ {4}/.test(lines[end]!) || (lines[end]!.trim() === '' && /^ {4}\S/.test(lines[end + 1] ?? '')))) end++;
      open(i, lines.slice(i, end).map((l) => l.slice(4)));
      i = end - 1;
      continue;
    }
    const mark = SKIP_MARK.exec(line.trim());
    if (mark) {
      if (pendingSkip) strayMarks.push(pendingSkip.line);
      pendingSkip = { reason: mark[1]!, line: i + 1 };
    } else if (line.trim() !== '' && pendingSkip) {
      strayMarks.push(pendingSkip.line); // a mark must stand right before its block
      pendingSkip = null;
    }
  }
  if (pendingSkip) strayMarks.push((pendingSkip as { line: number }).line);
  return { blocks, strayMarks };
}

/** One command per line, a line ending in `\` joined with the next. */
function commandsOf(body: string[], firstLine: number): DocCommand[] {
  const commands: DocCommand[] = [];
  let current: DocCommand | null = null;
  body.forEach((l, k) => {
    if (current === null) {
      if (l.trim() === '') return;
      current = { line: firstLine + k, text: l };
    } else {
      current.text += '\n' + l;
    }
    if (!l.endsWith('\\')) {
      commands.push(current);
      current = null;
    }
  });
  if (current) commands.push(current);
  return commands;
}

/** What a reader types, as this machine runs it: the built CLI for `npx shrinkwrap`, no `sudo`. */
function asRun(command: string): string {
  return command.replace(/\bnpx shrinkwrap\b/g, 'shrinkwrap').replace(/(^|[;&|(]\s*)sudo\s+/g, '$1');
}

/** The first word of each command that is a program (not a shell builtin nor a variable). */
function programsOf(block: DocBlock): string[] {
  const builtins = new Set(['cd', '.', 'export', 'set', 'unset', 'true', 'false', 'test', '[', 'echo']);
  return [...new Set(block.commands.map((c) => asRun(c.text).trim().split(/\s+/)[0]!))].filter((w) => !builtins.has(w) && !w.includes('='));
}

const documents = DOCS.map((doc) => ({ doc, ...docBlocks(doc, fs.readFileSync(path.join(REPO_ROOT, doc), 'utf8')) }));

let work: string;
let bin: string;
let example: string;

beforeAll(async () => {
  const { cvmfs } = await ensureExample();
  example = path.dirname(cvmfs);
  work = tmpDir('sw-doctest-');
  bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  const wrapper = path.join(bin, 'shrinkwrap');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
  fs.chmodSync(wrapper, 0o755);
});

afterAll(() => {
  if (!work) return;
  // A block that failed between its mount and its unmount must not leave the mount behind.
  for (const mnt of mountsUnder(work).reverse()) spawnSync('umount', ['-l', mnt], { stdio: 'ignore' });
  fs.rmSync(work, { recursive: true, force: true });
});

function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m.startsWith(dir + '/'));
}

/** A directory laid out as the repository root is for the reader: fixtures/out, specs. */
function docDir(doc: string): string {
  const dir = path.join(work, doc.replace(/[/.]/g, '-'));
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(path.join(dir, 'fixtures'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'tmp'));
    fs.symlinkSync(example, path.join(dir, 'fixtures/out'));
    fs.symlinkSync(path.join(REPO_ROOT, 'specs'), path.join(dir, 'specs'));
  }
  return dir;
}

function runCommand(doc: string, command: DocCommand): void {
  const cwd = docDir(doc);
  const r = spawnSync('sh', ['-c', asRun(command.text)], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    timeout: COMMAND_TIMEOUT_MS,
    env: { ...process.env, PATH: `${bin}:${process.env['PATH']}`, TMPDIR: path.join(cwd, 'tmp') },
  });
  const where = `${doc}:${command.line}: ${command.text}`;
  expect(r.status, `${where}\nexit ${r.status ?? r.signal}\n${r.stderr.slice(-3000)}`).toBe(0);
}

/** What the site-install page's commands take as given (its "Outputs" table), made from the example. */
const SITE_INSTALL_OUTPUTS = [
  'shrinkwrap --cvmfs-root fixtures/out/cvmfs --release AnalysisBase,21.2.75 --base fixtures/out/base-rootfs -o atlas.sqfs',
  'shrinkwrap --cvmfs-root fixtures/out/cvmfs --release AnalysisBase,21.2.75 --base fixtures/out/base-rootfs -o atlas.sif',
  'shrinkwrap --cvmfs-root fixtures/out/cvmfs --release AnalysisBase,21.2.75 -o atlas-cvmfs.sqfs',
  'shrinkwrap --cvmfs-root fixtures/out/cvmfs --release AnalysisBase,21.2.75 --base fixtures/out/base-rootfs --format oci -o atlas-oci --tag atlas/analysisbase:21.2.75',
  'shrinkwrap --cvmfs-root fixtures/out/cvmfs --release AnalysisBase,21.2.75 --base fixtures/out/base-rootfs --format docker-archive -o atlas.tar --tag atlas/analysisbase:21.2.75',
];
const SETUP: Record<string, string[]> = { 'docs/site-install.md': SITE_INSTALL_OUTPUTS };

describe('doc-test: the commands in the documentation', () => {
  it('finds the documents\' commands, and every skip mark stands before a block and says why', () => {
    for (const d of documents) {
      expect(d.strayMarks, `${d.doc}: skip marks not directly before a code block, at lines`).toEqual([]);
      expect(d.blocks.length, `${d.doc} has no code blocks`).toBeGreaterThan(0);
    }
    const readme = documents.find((d) => d.doc === 'README.md')!;
    const runnable = readme.blocks.filter((b) => b.skip === null).flatMap((b) => b.commands.map((c) => c.text));
    // The tour's directory image and the chroot into it (issue 20's broken pair) are among them.
    expect(runnable.some((c) => /--format dir\b[\s\S]*-o img\b/.test(c))).toBe(true);
    expect(runnable.some((c) => /^sudo chroot img /.test(c))).toBe(true);
  });

  it('marks every block holding a … placeholder as not run', () => {
    const unmarked = documents.flatMap((d) => d.blocks).filter((b) => b.skip === null && b.commands.some((c) => c.text.includes('…')));
    expect(unmarked.map((b) => `${b.doc}:${b.line}`)).toEqual([]);
  });

  for (const d of documents.filter((doc) => doc.blocks.some((b) => b.skip === null))) {
    describe(d.doc, () => {
      const setup = SETUP[d.doc];
      if (setup) {
        it('makes the outputs the page starts from', () => {
          for (const text of setup) runCommand(d.doc, { line: 0, text });
        });
      }
      for (const block of d.blocks.filter((b) => b.skip === null)) {
        const programs = programsOf(block);
        const missing = programs.filter((p) => p !== 'shrinkwrap' && !hasCommand(p));
        const needsRoot = block.commands.some((c) => /(^|[;&|(]\s*)(sudo|chroot|mount|umount)\s/.test(c.text));
        const needsFuse = programs.includes('squashfuse');
        const what = `${d.doc}:${block.line}`;
        const runs =
          canRun(missing.length === 0, what, `needs ${missing.join(', ')}`) &&
          canRun(!needsRoot || isRoot, what, 'needs root') &&
          canRun(!needsFuse || canFuse(), what, 'needs /dev/fuse, squashfuse and fusermount3');
        const first = block.commands[0]!.text.split('\n')[0]!.replace(/\s+#.*/, '');
        const more = block.commands.length > 1 ? ` (and ${block.commands.length - 1} more)` : '';
        it.runIf(runs)(`${what}: ${first}${more}`, () => {
          for (const command of block.commands) runCommand(d.doc, command);
        });
      }
    });
  }
});

// Ctrl-C and SIGTERM in every phase of a build (and of plan): the run exits within a second of
// the signal, with 130 (SIGINT) or 143 (SIGTERM), and leaves nothing behind: no output, no
// temporary beside it, no work directory under its $TMPDIR. Before the handlers were installed at
// the start, a signal during the walk or the base killed the process outright (no status of its
// own, work directories left); with them installed, a synchronous phase would defer it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { makeBigTree } from '../../fixtures/big-tree.js';
import { CLI } from '../helpers/cli.js';
import { member } from '../helpers/raw-tar.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
let big: string;
let example: { cvmfs: string; base: string };
let baseTar: string;
let bigSif: string;

beforeAll(async () => {
  work = tmpDir('sw-signals-');
  // A walk of a few seconds even on a fast disk.
  big = path.join(work, 'big');
  makeBigTree(big, { entries: 60_000 });
  fs.writeFileSync(path.join(work, 'all.spec'), '/*\n');
  const ex = await ensureExample();
  example = { cvmfs: ex.cvmfs, base: ex.base };
  baseTar = path.join(work, 'base.tar.gz');
  fs.writeFileSync(baseTar, bigBaseTarball());
  // The same kind of large base as a SIF (siftool new + add): seconds of decompressing its partition.
  bigSif = path.join(work, 'big-base.sif');
  execFileSync('mksquashfs', [big, path.join(work, 'big-base.sqfs'), '-quiet', '-no-progress', '-noappend']);
  execFileSync('siftool', ['new', bigSif]);
  execFileSync('siftool', ['add', bigSif, path.join(work, 'big-base.sqfs'), '--datatype', '4', '--parttype', '2', '--partfs', '1', '--partarch', '2']);
}, 120_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A root filesystem tarball of 300,000 small files: seconds of decompressing and applying. */
function bigBaseTarball(): Buffer {
  const parts: Buffer[] = [member({ name: 'usr/', flag: '5', mode: 0o755 })];
  for (let d = 0; d < 300; d++) {
    parts.push(member({ name: `usr/d${d}/`, flag: '5', mode: 0o755 }));
    for (let f = 0; f < 1000; f++) parts.push(member({ name: `usr/d${d}/f${f}`, mode: 0o644 }, Buffer.from(`${d}/${f}\n`)));
  }
  parts.push(Buffer.alloc(1024));
  return zlib.gzipSync(Buffer.concat(parts), { level: 1 });
}

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** Milliseconds from the signal to the exit. */
  afterSignal: number;
}

/** Run the CLI in `dir` with $TMPDIR at `dir/tmp`; send `signal` once `ready()` holds; wait for the exit. */
function interrupt(dir: string, args: string[], signal: NodeJS.Signals, ready: (stderr: string) => boolean): Promise<Ended> {
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, TMPDIR: path.join(dir, 'tmp'), SOURCE_DATE_EPOCH: '1600000000' } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  let sentAt = 0;
  const poll = setInterval(() => {
    if (sentAt === 0 && ready(stderr)) {
      sentAt = Date.now();
      child.kill(signal);
    }
  }, 10);
  return new Promise((resolve) => {
    child.on('close', (code, sig) => {
      clearInterval(poll);
      resolve({ code, signal: sig, stderr, afterSignal: sentAt === 0 ? -1 : Date.now() - sentAt });
    });
  });
}

/**
 * Once the walk has reported progress (--progress: a line as it starts, then every 10 s): the CLI
 * is loaded and walking, however long Node took to start on a loaded machine.
 */
const walking = (stderr: string) => stderr.includes('selecting: ');

/** Once a work directory of the run holds a decompressed layer. */
function layerBeingRead(dir: string): () => boolean {
  return () => fs.readdirSync(path.join(dir, 'tmp')).some((w) => w.startsWith('shrinkwrap-base-') && fs.readdirSync(path.join(dir, 'tmp', w)).length > 0);
}

function expectObeyed(r: Ended, signal: NodeJS.Signals, dir: string, inputs: string[]): void {
  expect(r.afterSignal, `no signal sent: the run ended first\n${r.stderr}`).toBeGreaterThanOrEqual(0);
  expect(r.signal, 'killed by the signal: no handler ran').toBeNull();
  expect(r.code, r.stderr).toBe(signal === 'SIGINT' ? 130 : 143);
  expect(r.stderr).toContain(`interrupted by ${signal}`);
  expect(r.afterSignal, 'exit delay after the signal (ms)').toBeLessThan(1000);
  expect(fs.readdirSync(dir).sort()).toEqual([...inputs, 'tmp'].sort());
  expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
}

function runDir(name: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  return dir;
}

describe('signals: every phase stops within a second, nothing left', () => {
  for (const [format, signal] of [['dir', 'SIGINT'], ['oci', 'SIGTERM'], ['squashfs', 'SIGINT']] as const) {
    it(`${signal} during the walk of a ${format} build`, async () => {
      const dir = runDir(`walk-${format}`);
      const args = ['build', '--cvmfs-root', big, '--spec', path.join(work, 'all.spec'), '--repo', 'atlas.cern.ch', '--format', format, '-o', path.join(dir, 'img'), '--progress'];
      expectObeyed(await interrupt(dir, args, signal, walking), signal, dir, []);
    }, 30_000);
  }

  it('SIGTERM during the walk of a sif build (the partition streams into the container meanwhile)', async () => {
    const dir = runDir('walk-sif');
    const args = ['build', '--cvmfs-root', big, '--spec', path.join(work, 'all.spec'), '--repo', 'atlas.cern.ch', '--base', example.base, '-o', path.join(dir, 'img.sif'), '--progress'];
    expectObeyed(await interrupt(dir, args, 'SIGTERM', walking), 'SIGTERM', dir, []);
  }, 30_000);

  it('SIGINT while a build decompresses the partition of a large SIF base', async () => {
    const dir = runDir('base-sif');
    const args = ['build', '--cvmfs-root', example.cvmfs, '--release', 'AnalysisBase,21.2.75', '--base', bigSif, '-o', path.join(dir, 'img.sqfs'), '-q'];
    expectObeyed(await interrupt(dir, args, 'SIGINT', layerBeingRead(dir)), 'SIGINT', dir, []);
  }, 30_000);

  it('SIGTERM while a large sparse file is written (its zero blocks queue nothing to wait for)', async () => {
    const dir = runDir('sparse');
    const tree = path.join(work, 'sparse-tree', 'x.ch');
    fs.mkdirSync(tree, { recursive: true });
    fs.closeSync(fs.openSync(path.join(tree, 'holes'), 'w'));
    fs.truncateSync(path.join(tree, 'holes'), 20 * 2 ** 30); // 20 GiB of holes: no disk used
    fs.writeFileSync(path.join(work, 'x.ch.spec'), '/cvmfs/x.ch/*\n');
    const args = ['build', '--cvmfs-root', path.dirname(tree), '--spec', path.join(work, 'x.ch.spec'), '-o', path.join(dir, 'img.sqfs'), '--progress'];
    // Two seconds in: the CLI is loaded and the file's holes are being read (that takes ~10 s; the
    // selection, one file, prints no progress line before it).
    const started = Date.now();
    const reading = () => Date.now() - started > 2000;
    expectObeyed(await interrupt(dir, args, 'SIGTERM', reading), 'SIGTERM', dir, []);
  }, 30_000);

  it('SIGTERM during the walk of plan', async () => {
    const dir = runDir('walk-plan');
    const args = ['plan', '--cvmfs-root', big, '--spec', path.join(work, 'all.spec'), '--repo', 'atlas.cern.ch', '--progress'];
    expectObeyed(await interrupt(dir, args, 'SIGTERM', walking), 'SIGTERM', dir, []);
  }, 30_000);

  for (const [command, signal] of [['build', 'SIGINT'], ['plan', 'SIGTERM']] as const) {
    it(`${signal} while ${command} decompresses and reads a large base tarball`, async () => {
      const dir = runDir(`base-${command}`);
      const out = command === 'build' ? ['-o', path.join(dir, 'img.sqfs')] : [];
      const args = [command, '--cvmfs-root', example.cvmfs, '--release', 'AnalysisBase,21.2.75', '--base', baseTar, ...out, '-q'];
      expectObeyed(await interrupt(dir, args, signal, layerBeingRead(dir)), signal, dir, []);
    }, 30_000);
  }

  // The example's release evaluation and ELF closure take tens of milliseconds: the signal goes
  // when the selection has said its first word (a closure's warning), so that it lands there and
  // not before Node has loaded the CLI (a signal then kills it outright, with nothing to remove).
  it('SIGINT during a release build (release evaluation, closures)', async () => {
    const dir = runDir('release');
    const args = ['build', '--cvmfs-root', example.cvmfs, '--release', 'AnalysisBase,21.2.75', '--base', example.base, '--format', 'oci', '-o', path.join(dir, 'img')];
    const r = await interrupt(dir, args, 'SIGINT', (stderr) => stderr.includes('warning:'));
    if (r.afterSignal < 0 && r.code === 0) return; // finished first: nothing to interrupt
    expectObeyed(r, 'SIGINT', dir, []);
  }, 30_000);
});

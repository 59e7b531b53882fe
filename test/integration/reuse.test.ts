// build --reuse PREVIOUS: a rebuild after a few files changed takes the previous image's compressed
// blocks for the files whose path, size and time did not change, and the image holds exactly what a
// build without --reuse holds (kernel mount: diff -r and listings with modes, owners, times, link
// counts; unsquashfs; verify --data). The unchanged files' blocks are the previous image's bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { REPO_ROOT, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canKernelMount, diffTrees, findListing, run, unsquashfsListing, withKernelMount } from '../helpers/consumers.js';
import { canRun } from '../helpers/env.js';
import { noise } from '../helpers/squashfs-tree.js';
import { tmpDir } from '../helpers/tree.js';

type Reader = typeof import('../../src/sources/squashfs/reader.js');
let reader: Reader;

const SPEC = path.join(REPO_ROOT, 'specs/examples/atlas.cern.ch.spec');
const REL = 'atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.75/InstallArea/x86_64-slc6-gcc62-opt';
/** Four files of the selection changed (content and time; the last keeps its size), one added, one removed. */
const CHANGED = [`${REL}/lib/libxAODJet.so`, `${REL}/lib/libxAODTracking.so`, `${REL}/share/big.dat`, `${REL}/lib/libxAODPFlow.so`];
const ADDED = `${REL}/share/added.txt`;
const REMOVED = `${REL}/lib/libxAODMuon.so`;
/** Large, unchanged: its blocks must be the previous image's bytes. */
const BIG = `${REL}/share/big-unchanged.dat`;
// 4 KiB blocks: most of the example's files have blocks as well as a tail.
const BS = ['--block-size', '4K'];

let work: string;
let before: string;
let after: string;
const out = (name: string) => path.join(work, name);
/** A build of the example from `root`; `args` added. */
const build = (root: string, output: string, args: string[] = []) =>
  shrinkwrap(['build', '--cvmfs-root', root, '--spec', SPEC, ...BS, '-o', output, '--json', ...args], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } });

beforeAll(async () => {
  reader = (await import(path.join(REPO_ROOT, 'dist/src/sources/squashfs/reader.js'))) as Reader;
  const { cvmfs } = await ensureExample();
  work = tmpDir('reuse');
  before = out('cvmfs-before');
  after = out('cvmfs-after');
  run('cp', ['-a', cvmfs, before]);
  fs.writeFileSync(path.join(before, CHANGED[2]!), noise(50_000, 7));
  fs.writeFileSync(path.join(before, BIG), noise(300_000, 8));
  run('touch', ['-d', '@1600000000', path.join(before, CHANGED[2]!), path.join(before, BIG)]);
  run('cp', ['-a', before, after]);
  fs.writeFileSync(path.join(after, CHANGED[2]!), noise(50_000, 9)); // other blocks
  for (const f of CHANGED.slice(0, 3)) fs.appendFileSync(path.join(after, f), 'changed\n'); // a new time too
  // The same size, other bytes, a new time: only the time tells it changed.
  const sameSize = path.join(after, CHANGED[3]!);
  fs.writeFileSync(sameSize, Buffer.from(fs.readFileSync(sameSize)).reverse());
  run('touch', ['-d', '@1650000000', sameSize]);
  fs.writeFileSync(path.join(after, ADDED), 'a new file\n');
  fs.rmSync(path.join(after, REMOVED));
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Json {
  files: number;
  reused?: { from: string; files: number; bytes: number };
}
const json = (r: ReturnType<typeof shrinkwrap>): Json => {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Json;
};

/** The compressed bytes of a file's blocks in an image, and their place relative to blocks_start. */
async function blocksOf(img: string, p: string): Promise<{ bytes: Buffer; words: number[] }> {
  const image = await reader.openSquashfs(img);
  try {
    const e = image.lookup('/' + p)!;
    const total = [...e.blockSizes!].reduce((s, w) => s + (w & 0xffffff), 0);
    return { bytes: image.pread(e.blocksStart!, total), words: [...e.blockSizes!] };
  } finally {
    image.close();
  }
}

describe('build --reuse', () => {
  it('a rebuild holds what a build without --reuse holds, and copies the unchanged files\' blocks', async () => {
    const prev = out('prev.sqfs');
    json(build(before, prev));
    const plain = build(after, out('full.sqfs'));
    const full = json(plain);
    const r = build(after, out('reused.sqfs'), ['--reuse', prev]);
    const reused = json(r);
    expect(r.stderr).toBe(plain.stderr); // the example's own warnings, nothing more
    // Every file but the three changed and the one added; the removed one is simply not there.
    expect(full.reused).toBeUndefined();
    expect(reused.files).toBe(full.files);
    const empty = unsquashfsListing(out('full.sqfs')).filter((l) => l.startsWith('-') && l.split(' ')[2] === '0').length;
    expect(reused.reused).toMatchObject({ from: prev, files: full.files - CHANGED.length - 1 - empty });
    expect(reused.reused!.bytes).toBeGreaterThan(300_000);

    // The summary line says it.
    const quiet = shrinkwrap(['build', '--cvmfs-root', after, '--spec', SPEC, ...BS, '-o', out('summary.sqfs'), '--reuse', prev]);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toMatch(new RegExp(`wrote .*summary\\.sqfs: .*; ${reused.reused!.files} files \\(.*\\) copied from ${prev}\\n`));

    // The same tree: unsquashfs listings (modes, owners, sizes, times) and the kernel's view.
    expect(unsquashfsListing(out('reused.sqfs'))).toEqual(unsquashfsListing(out('full.sqfs')));
    if (canRun(canKernelMount(), 'kernel squashfs mount', 'run as root with loop devices')) {
      withKernelMount(out('full.sqfs'), work, (a) =>
        withKernelMount(out('reused.sqfs'), work, (b) => {
          expect(diffTrees(a, b)).toBe('');
          expect(findListing(b)).toEqual(findListing(a));
          expect(fs.readFileSync(path.join(b, CHANGED[0]!), 'latin1').endsWith('changed\n')).toBe(true);
          expect(fs.readFileSync(path.join(b, CHANGED[3]!)).equals(fs.readFileSync(path.join(after, CHANGED[3]!)))).toBe(true);
          expect(fs.existsSync(path.join(b, REMOVED))).toBe(false);
        }),
      );
    }
    const verified = shrinkwrap(['verify', out('reused.sqfs'), '--data']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/: OK: /);

    // The unchanged large file: its compressed blocks are the previous image's, byte for byte; a
    // changed one's are not.
    const [old, now] = [await blocksOf(prev, BIG), await blocksOf(out('reused.sqfs'), BIG)];
    expect(old.words.length).toBeGreaterThan(50);
    expect(now.words).toEqual(old.words);
    expect(now.bytes.equals(old.bytes)).toBe(true);
    const [oldChanged, nowChanged] = [await blocksOf(prev, CHANGED[2]!), await blocksOf(out('reused.sqfs'), CHANGED[2]!)];
    expect(nowChanged.bytes.equals(oldChanged.bytes)).toBe(false);
  });

  it('an unchanged tree rebuilt with --reuse takes every file from the previous image', () => {
    const prev = out('same-prev.sqfs');
    const first = json(build(before, prev));
    const again = json(build(before, out('same-again.sqfs'), ['--reuse', prev]));
    const empty = unsquashfsListing(prev).filter((l) => l.startsWith('-') && l.split(' ')[2] === '0').length;
    expect(again.reused!.files).toBe(first.files - empty);
    expect(unsquashfsListing(out('same-again.sqfs'))).toEqual(unsquashfsListing(prev));
    // Not byte for byte: the previous fragment blocks are copied where their first file is, which is not where a build packs them.
    expect(Math.abs(fs.statSync(out('same-again.sqfs')).size - fs.statSync(prev).size)).toBeLessThan(8192);
    // The same output as the input (--force): the previous image is read while its replacement is written.
    const inPlace = json(build(after, prev, ['--reuse', prev, '--force']));
    expect(inPlace.reused!.files).toBe(again.reused!.files - CHANGED.length - 1);
    expect(unsquashfsListing(prev)).toEqual(unsquashfsListing(out('full.sqfs')));
  });

  it('a SIF is a previous image too (its partition), for a SIF or a SquashFS build on a base', async () => {
    const { base } = await ensureExample();
    const prev = out('prev.sif');
    json(build(before, prev, ['--base', base]));
    const fullSif = json(build(after, out('full.sif'), ['--base', base]));
    const sif = json(build(after, out('reused.sif'), ['--base', base, '--reuse', prev]));
    // The base's files are taken too; the files shrinkwrap generates (provenance, setup) never are.
    expect(sif.reused!.files).toBeGreaterThan(fullSif.files - 30);
    expect(sif.reused!.files).toBeLessThan(fullSif.files - CHANGED.length - 1);
    const sqfs = json(build(after, out('reused-on-base.sqfs'), ['--base', base, '--reuse', prev]));
    expect(sqfs.reused!.files).toBe(sif.reused!.files);
    // The partition of a SIF is the SquashFS image: compare what each holds.
    const listing = (img: string) => run('sqfs2tar', [img]).length; // readable by sqfs2tar at all
    expect(listing(out('reused-on-base.sqfs'))).toBeGreaterThan(0);
    json(build(after, out('full-on-base.sqfs'), ['--base', base]));
    expect(unsquashfsListing(out('reused-on-base.sqfs'))).toEqual(unsquashfsListing(out('full-on-base.sqfs')));
    for (const img of ['reused.sif', 'reused-on-base.sqfs']) {
      const v = shrinkwrap(['verify', out(img), '--data']);
      expect(v.code, v.stdout + v.stderr).toBe(0);
    }
    if (canRun(canKernelMount(), 'kernel squashfs mount', 'run as root with loop devices')) {
      withKernelMount(out('full-on-base.sqfs'), work, (a) =>
        withKernelMount(out('reused-on-base.sqfs'), work, (b) => {
          expect(diffTrees(a, b)).toBe('');
          expect(findListing(b)).toEqual(findListing(a));
        }),
      );
    }
  });

  it('a previous image of another compressor is ignored with one warning: the build compresses everything', () => {
    const prev = out('prev-xz.sqfs');
    json(build(before, prev, ['--compression', 'xz']));
    const r = build(after, out('after-xz.sqfs'), ['--reuse', prev]);
    const doc = json(r);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('--reuse'));
    expect(warnings).toEqual([`shrinkwrap: warning: --reuse ${prev}: ignored: it is xz with 4 KiB blocks, this build is gzip with 4 KiB blocks; every file is compressed anew`]);
    expect(doc.reused).toEqual({ from: prev, files: 0, bytes: 0 });
    json(build(after, out('after-plain.sqfs')));
    expect(fs.readFileSync(out('after-xz.sqfs')).equals(fs.readFileSync(out('after-plain.sqfs')))).toBe(true);
    // Another block size, the same.
    const other = build(after, out('after-bs.sqfs'), ['--reuse', out('prev.sqfs'), '--block-size', '8K']);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stderr).toContain('ignored: it is gzip with 4 KiB blocks, this build is gzip with 8 KiB blocks');
  });

  it('a previous image that cannot be read: one line, exit 2, nothing written', () => {
    const text = out('not-an-image.sqfs');
    fs.writeFileSync(text, 'hello\n'.repeat(100));
    const cut = out('cut.sqfs');
    json(build(before, out('whole.sqfs')));
    fs.writeFileSync(cut, fs.readFileSync(out('whole.sqfs')).subarray(0, 20_000));
    for (const [prev, why] of [
      [out('missing.sqfs'), /--reuse .*missing\.sqfs: .*no such file/i],
      [text, /--reuse .*not-an-image\.sqfs: not a SquashFS image or a SIF container/],
      [cut, /--reuse .*cut\.sqfs: /],
    ] as const) {
      const target = out('never.sqfs');
      const r = shrinkwrap(['build', '--cvmfs-root', after, '--spec', SPEC, ...BS, '-o', target, '--reuse', prev]);
      expectOneLineError(r, 2, why);
      expect(fs.existsSync(target)).toBe(false);
      expect(fs.readdirSync(work).filter((f) => f.startsWith('never') || f.startsWith('.never'))).toEqual([]);
    }
    // Only SquashFS builds take it.
    const dir = shrinkwrap(['build', '--cvmfs-root', after, '--spec', SPEC, '-o', out('dir/'), '--reuse', out('whole.sqfs')]);
    expectOneLineError(dir, 2, '--reuse needs --format squashfs or sif');
  });
});

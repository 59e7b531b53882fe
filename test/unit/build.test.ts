// compose/build.ts: the whole build as one function of typed options, called without the CLI. The
// result says what was written; the image is read back by unsquashfs; a bad option is an
// InputError before anything is written; a failed build leaves no temporary output behind.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { unsquashfsListing } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

// The build as compiled (dist/): its SquashFS compression runs on worker threads, as in the CLI.
type BuildModule = typeof import('../../src/compose/build.js');
type ErrorsModule = typeof import('../../src/model/errors.js');
type DiagnosticsModule = typeof import('../../src/model/diagnostics.js');
let m: BuildModule;
let errors: ErrorsModule;
let diagnostics: DiagnosticsModule;

let work: string;
let cvmfs: string;
let spec: string;
const T = 1_600_000_000;

beforeAll(async () => {
  m = (await import(path.join(REPO_ROOT, 'dist/src/compose/build.js'))) as BuildModule;
  errors = (await import(path.join(REPO_ROOT, 'dist/src/model/errors.js'))) as ErrorsModule;
  diagnostics = (await import(path.join(REPO_ROOT, 'dist/src/model/diagnostics.js'))) as DiagnosticsModule;
  work = tmpDir('sw-build-');
  cvmfs = makeTree(path.join(work, 'cvmfs'), {
    'atlas.cern.ch/repo/sw/a.txt': 'hello\n',
    'atlas.cern.ch/repo/sw/bin/tool': { file: '#!/bin/sh\necho tool\n', mode: 0o755 },
    'atlas.cern.ch/repo/sw/link': { link: 'a.txt' },
    'atlas.cern.ch/repo/other/not-selected': 'no\n',
  });
  for (const p of ['atlas.cern.ch/repo/sw/a.txt', 'atlas.cern.ch/repo/sw/bin/tool', 'atlas.cern.ch/repo/sw/bin', 'atlas.cern.ch/repo/sw']) fs.utimesSync(path.join(cvmfs, p), T, T);
  spec = writeSpec(work, 'atlas.cern.ch.spec', ['/repo/sw/*']);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function options(output: string, extra: Partial<Parameters<BuildModule['build']>[0]> = {}): Parameters<BuildModule['build']>[0] {
  return {
    output,
    format: 'squashfs',
    base: null,
    selection: { cvmfsRoot: cvmfs, specs: [spec], repo: null, closure: true },
    compression: 'gzip',
    threads: 2,
    ...extra,
  };
}

const hooks = () => ({ diagnostics: new diagnostics.Diagnostics(null) });

/** Names in `dir` that a build leaves only while it runs (or when it was killed). */
const temporaries = (dir: string) => fs.readdirSync(dir).filter((n) => n.includes('.shrinkwrap-tmp-') || n.includes('.shrinkwrap-old-'));

describe('build(): the whole build without the CLI', () => {
  it('writes a SquashFS image and says what it wrote', async () => {
    const out = path.join(work, 'one', 'image.sqfs');
    fs.mkdirSync(path.dirname(out));
    const r = await m.build(options(out), hooks());
    expect(r.output).toBe(out);
    expect(r.format).toBe('squashfs');
    expect(r.base).toBeNull();
    expect(r.push).toBeNull();
    expect(r.warnings).toEqual([]);
    expect(r.image).toMatchObject({ format: 'squashfs', compression: 'gzip', level: 6, blockSize: 131072, files: 2, bytes: fs.statSync(out).size });
    const sum = crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex');
    expect(r.sha256).toBe(sum);
    expect(fs.readFileSync(`${out}.sha256`, 'utf8')).toBe(`${sum}  image.sqfs\n`);
    expect(r.payload.summary.entries).toBe(r.payload.entries.length);
    expect(Object.keys(r.payload.summary.repositories)).toEqual(['atlas.cern.ch']);
    expect(temporaries(path.dirname(out))).toEqual([]);
    if (!canRun(hasCommand('unsquashfs'), 'unsquashfs -lln of the image', 'unsquashfs is not installed')) return;
    // Without a base the image is the /cvmfs content itself; the spec's glob leaves repo/other out.
    const listing = unsquashfsListing(out)
      .map((l) => l.slice(l.indexOf(' /') + 1))
      .sort();
    expect(listing).toEqual(['/', '/atlas.cern.ch', '/atlas.cern.ch/repo', '/atlas.cern.ch/repo/sw', '/atlas.cern.ch/repo/sw/a.txt', '/atlas.cern.ch/repo/sw/bin', '/atlas.cern.ch/repo/sw/bin/tool', '/atlas.cern.ch/repo/sw/link -> a.txt']);
  });

  it('writes a directory image, with the marker that lets --force replace it', async () => {
    const out = path.join(work, 'two', 'tree');
    fs.mkdirSync(path.dirname(out));
    const r = await m.build(options(out, { format: 'dir' }), hooks());
    expect(r.image).toEqual({ format: 'dir', entries: r.payload.entries.length + 1, files: 2, contentBytes: 'hello\n'.length + '#!/bin/sh\necho tool\n'.length });
    expect(r.sha256).toBeNull();
    expect(fs.readFileSync(path.join(out, 'atlas.cern.ch/repo/sw/a.txt'), 'utf8')).toBe('hello\n');
    expect(fs.readlinkSync(path.join(out, 'atlas.cern.ch/repo/sw/link'))).toBe('a.txt');
    expect(fs.existsSync(path.join(path.dirname(out), '.tree.shrinkwrap'))).toBe(true);
    expect(temporaries(path.dirname(out))).toEqual([]);
    // Again over it: refused without force, replaced with it.
    await expect(m.build(options(out, { format: 'dir' }), hooks())).rejects.toThrow(/output .*tree already exists \(use --force to replace it\)/);
    await m.build(options(out, { format: 'dir', force: true }), hooks());
  });

  it('refuses a bad combination of options with an InputError, before anything is written', async () => {
    const dir = path.join(work, 'three');
    fs.mkdirSync(dir);
    const bad = m.build(options(path.join(dir, 'image.sqfs'), { devices: true }), hooks());
    await expect(bad).rejects.toBeInstanceOf(errors.InputError);
    await expect(bad).rejects.toThrow('--devices needs --format dir');
    await expect(m.build(options(path.join(dir, 'image'), { format: 'oci', compression: 'xz' }), hooks())).rejects.toThrow(/--compression xz: OCI layers are gzip/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('removes its temporary output when it fails', async () => {
    const dir = path.join(work, 'four');
    fs.mkdirSync(dir);
    // SquashFS starts its output before the selection; the image's time then fails (a bad
    // SOURCE_DATE_EPOCH), after the data feed has written the selected files' blocks.
    let during: string[] = [];
    const progress = {
      stage: () => ({ tick: () => {}, done: () => (during = temporaries(dir)) }),
      writing: () => ({ update: () => {}, stop: () => {} }),
    };
    const saved = process.env['SOURCE_DATE_EPOCH'];
    process.env['SOURCE_DATE_EPOCH'] = 'soon';
    try {
      const failing = m.build(options(path.join(dir, 'image.sqfs')), { ...hooks(), progress });
      await expect(failing).rejects.toThrow('SOURCE_DATE_EPOCH=soon: not a whole number of seconds');
      await expect(failing).rejects.toBeInstanceOf(errors.InputError);
    } finally {
      if (saved === undefined) delete process.env['SOURCE_DATE_EPOCH'];
      else process.env['SOURCE_DATE_EPOCH'] = saved;
    }
    expect(during).toHaveLength(1);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

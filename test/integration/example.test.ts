// The bundled example end to end: the README's first command, checked.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MOUNTPOINTS, RUNTIME_MOUNTPOINTS } from '../../src/compose/generated.js';
import { EXAMPLE } from '../../fixtures/example-cvmfs.js';
import { ensureExample } from '../../fixtures/example.js';
import { REPO_ROOT, shrinkwrap } from '../helpers/cli.js';
import { canKernelMount, withKernelMount } from '../helpers/consumers.js';
import { canRun, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const SPEC = path.join(REPO_ROOT, 'specs/examples/atlas.cern.ch.spec');
let cvmfs: string;
let base: string;
let work: string;
let image: string;
let build: ReturnType<typeof shrinkwrap>;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir();
  image = path.join(work, 'img');
  build = shrinkwrap(['build', '--format', 'dir', '--cvmfs-root', cvmfs, '--base', base, '--spec', SPEC, '-o', image]);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

const inImage = (rel: string) => path.join(image, 'cvmfs', rel);

describe('example: AnalysisBase 21.2.75 into the base root filesystem', () => {
  it('builds, reporting the FIFO, the dangling link and the link out of /cvmfs', () => {
    expect(build.code, build.stderr).toBe(0);
    expect(build.stderr).toMatch(/warning: .*logDir\/alrb\.fifo: FIFO skipped/);
    expect(build.stderr).toMatch(/warning: .*lib\/libMissing\.so -> libMissing\.so\.1: .* does not exist; kept as a link/);
    expect(build.stderr).toMatch(/warning: .*bin\/python-system -> \/usr\/bin\/python3: points outside \/cvmfs; kept as a link/);
    expect(build.stderr).toMatch(/atlas\.cern\.ch +\d+ entries/);
    expect(build.stderr).toMatch(/sft\.cern\.ch +\d+ entries/);
  });

  it('holds the base root filesystem and the selection under /cvmfs, and nothing else', () => {
    // Besides the base and /cvmfs: the provenance directory, the default site mount points (empty)
    // and the runtime mount points the base lacks (/home, /var/tmp).
    const mountpoints = DEFAULT_MOUNTPOINTS.map((m) => m.slice(1));
    const runtime = RUNTIME_MOUNTPOINTS.filter((m) => m.path.lastIndexOf('/') === 0).map((m) => m.path.slice(1));
    // And what apptainer build adds: /.singularity.d and its links at the root.
    const apptainer = ['.singularity.d', 'singularity', '.run', '.exec', '.shell', '.test', 'environment'];
    expect(fs.readdirSync(image).sort()).toEqual([...new Set([...fs.readdirSync(base), 'cvmfs', '.shrinkwrap', ...mountpoints, ...runtime, ...apptainer])].sort());
    for (const m of mountpoints) expect(fs.readdirSync(path.join(image, m))).toEqual([]);
    expect(fs.readdirSync(path.join(image, '.shrinkwrap')).sort()).toEqual(['plan.json', 'provenance.json', 'specs']);
    // Every repository of the source has its directory; the unselected ones are empty.
    expect(fs.readdirSync(path.join(image, 'cvmfs')).sort()).toEqual(fs.readdirSync(cvmfs).sort());
    for (const r of fs.readdirSync(cvmfs)) if (r !== 'atlas.cern.ch' && r !== 'sft.cern.ch') expect(fs.readdirSync(path.join(image, 'cvmfs', r))).toEqual([]);
    expect(fs.existsSync(inImage(`${EXAMPLE.analysisBase}/lib/libxAODRootAccess.so`))).toBe(true);
    expect(fs.existsSync(inImage('sft.cern.ch/lcg/releases/gcc/6.2.0-b9934/x86_64-slc6/setup.sh'))).toBe(true);
    expect(fs.existsSync(inImage('atlas.cern.ch/repo/sw/database/DBRelease/31.8.1/sqlite200/ALLP200.db'))).toBe(true);
    const software = inImage('atlas.cern.ch/repo/sw/software/21.2');
    expect(fs.readdirSync(path.join(software, 'AnalysisBase'))).toEqual(['21.2.75']);
    expect(fs.readdirSync(software).sort()).toEqual(['AnalysisBase', 'AnalysisBaseExternals', 'atlas', 'sw']);
    expect(fs.readdirSync(inImage('atlas.cern.ch/repo/sw/database/DBRelease')).sort()).toEqual(['31.8.1', 'current']);
    expect(fs.readdirSync(inImage('atlas.cern.ch/repo'))).not.toContain('containers');
    expect(fs.readdirSync(inImage('atlas.cern.ch/repo/ATLASLocalRootBase/logDir'))).toEqual(['lastUpdate']);
  });

  it('copies the payload byte for byte with its metadata (diff and find against the source)', () => {
    const rel = EXAMPLE.analysisBase;
    const diff = spawnSync('diff', ['-r', '--no-dereference', path.join(cvmfs, rel), inImage(rel)], { encoding: 'utf8' });
    expect(diff.status, diff.stdout + diff.stderr).toBe(0);
    const list = (top: string) =>
      execFileSync('find', ['.', '-printf', '%y %m %U:%G %T@ %n %l %P\\n'], { cwd: top, encoding: 'utf8' }).split('\n').sort();
    expect(list(inImage(rel))).toEqual(list(path.join(cvmfs, rel)));
  });

  it('keeps the hard link pair, the mode-000 file, names with spaces and UTF-8', () => {
    const data = inImage(`${EXAMPLE.analysisBase}/data/PathResolver`);
    expect(fs.statSync(path.join(data, 'a.xml')).ino).toBe(fs.statSync(path.join(data, 'b.xml')).ino);
    expect(fs.lstatSync(path.join(data, 'unreadable.dat')).mode & 0o7777).toBe(0);
    expect(fs.readdirSync(data)).toEqual(expect.arrayContaining(['file with spaces.txt', 'données-é.txt']));
  });

  it.runIf(canRun(isRoot, 'chroot into the example image', 'needs root'))('runs the release binary inside the image with chroot', () => {
    const r = spawnSync('chroot', [image, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
    expect(r.status).toBe(0);
  });

  it.runIf(canRun(canKernelMount(), 'the example as a mounted SquashFS', 'needs root, loop devices and the squashfs module'))(
    'as SquashFS with the base: mounted by the kernel, the release binary runs in a chroot, and verify matches the plan',
    () => {
      const sqfs = path.join(work, 'example.sqfs');
      const b = shrinkwrap(['--cvmfs-root', cvmfs, '--base', base, '--spec', SPEC, '-o', sqfs, '-q']);
      expect(b.code, b.stderr).toBe(0);
      const plan = path.join(work, 'example-plan.json');
      fs.writeFileSync(plan, shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, '--spec', SPEC, '-q']).stdout);
      const v = shrinkwrap(['verify', sqfs, '--data', '--manifest', plan, '--image-root', '/cvmfs']);
      expect(v.code, v.stdout).toBe(0);
      withKernelMount(sqfs, work, (mnt) => {
        const r = spawnSync('chroot', [mnt, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
      });
    },
  );

  it('plans the same selection twice, byte for byte', () => {
    const args = ['plan', '--json', '--cvmfs-root', cvmfs, '--spec', SPEC, '-q'];
    const a = shrinkwrap(args);
    const b = shrinkwrap(args, { cwd: work, env: { ...process.env, TZ: 'Pacific/Chatham' } });
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const doc = JSON.parse(a.stdout);
    expect(doc.summary.repositories['sft.cern.ch'].entries).toBeGreaterThan(0);
    expect(doc.entries.every((e: { reason: string }) => e.reason.length > 0)).toBe(true);
  });
});

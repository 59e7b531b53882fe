// SIF output and SIF bases (issue 21), checked with the real consumers: siftool (header, list,
// info, dump), the kernel (a loop device at the partition's offset, as apptainer mounts it as
// root), squashfuse -o offset (apptainer's FUSE driver), chroot running the example release; and
// `verify`. SIF files as --base: ours, one siftool made, a SquashFS image; and bad ones, refused
// in one line with nothing written.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE } from '../../fixtures/example-cvmfs.js';
import { ensureExample } from '../../fixtures/example.js';
import { REPO_ROOT, type Run, expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canFuse, canKernelMount, diffTrees, findListing, run, unsquashfsListing, withKernelMount } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { findSharedFixture } from '../helpers/shared-fixtures.js';
import { descriptorField, goTime, patchedCopy, siftool, siftoolDump, siftoolFields, siftoolList, withSifKernelMount, withSifSquashfuse } from '../helpers/sif.js';
import { tmpDir } from '../helpers/tree.js';

const SPEC = path.join(REPO_ROOT, 'specs/examples/atlas.cern.ch.spec');
const EPOCH = 1700000000;
const ENV = { ...process.env, SOURCE_DATE_EPOCH: String(EPOCH) };
/** This machine's architecture as Go (and SIF) name it. */
const ARCH = ({ x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
/** siftool add --partarch's number for it. */
const ARCH_CODE = ['386', 'amd64', 'arm', 'arm64', 'ppc64', 'ppc64le'].indexOf(ARCH) + 1;
/** Where writers/sif puts the partition: after the header, the table and room for the metadata objects. */
const PARTITION_OFFSET = 98304;
/** The files of a build that name its base (and so differ between two bases with the same tree). */
const NAMES_BASE = ['.shrinkwrap/provenance.json', '.singularity.d/Singularity', '.singularity.d/labels.json', '.singularity.d/runscript.help'];
const FIXTURES = findSharedFixture('sif', 'one-group.sif');

const haveSiftool = canRun(hasCommand('siftool'), 'SIF output read by siftool', 'siftool is not installed');
const haveSquashfsTools = canRun(hasCommand('unsquashfs') && hasCommand('mksquashfs'), 'SIF partitions read by unsquashfs', 'squashfs-tools is not installed');
const haveKernel = canRun(canKernelMount(), 'the SIF partition mounted by the kernel', 'needs root, loop devices and the squashfs module');
const haveFuse = canRun(canFuse(), 'the SIF partition mounted by squashfuse', 'needs /dev/fuse, squashfuse and fusermount3');

let cvmfs: string;
let base: string;
let work: string;
let sif: string;
let sqfs: string;
let buildSif: Run;
let buildSqfs: Run;

function build(args: string[], env: NodeJS.ProcessEnv = ENV): Run {
  return shrinkwrap(['build', '--cvmfs-root', cvmfs, '--spec', SPEC, '-q', ...args], { env });
}

const sha256 = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A tree's listing without the files that name the base. */
const withoutBaseNames = (lines: string[]) => lines.filter((l) => !NAMES_BASE.some((n) => l.endsWith(`/${n}`) || l.endsWith(`|${n}`)));

/** The file content of an image path, from the SquashFS image or SIF partition `img` (unsquashfs -o for a SIF). */
function catFromImage(img: string, inside: string, offset = 0): string {
  return run('unsquashfs', ['-o', String(offset), '-cat', img, inside]);
}

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-sif-');
  sif = path.join(work, 'example.sif');
  sqfs = path.join(work, 'example.sqfs');
  buildSif = build(['--base', base, '-o', sif]);
  buildSqfs = build(['--base', base, '-o', sqfs]);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('the example as SIF: what siftool shows', () => {
  it('builds both, -o X.sif choosing the format', () => {
    expect(buildSif.code, buildSif.stderr).toBe(0);
    expect(buildSqfs.code, buildSqfs.stderr).toBe(0);
    expect(fs.readFileSync(sif).subarray(32, 42).toString('latin1')).toBe('SIF_MAGIC\0');
    expect(fs.readFileSync(sqfs).subarray(0, 4).toString('latin1')).toBe('hsqs');
  });

  it.runIf(haveSiftool)('header: launch script, version, this machine’s architecture, an ID, SOURCE_DATE_EPOCH, 3 of 48 descriptors used', () => {
    const h = siftoolFields(siftool(['header', sif]));
    expect(h.get('Launch Script')).toBe('#!/usr/bin/env run-singularity');
    expect(h.get('Version')).toBe('01');
    expect(h.get('Primary Architecture')).toBe(ARCH);
    expect(h.get('ID')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(h.get('ID')).not.toBe('00000000-0000-0000-0000-000000000000');
    expect(h.get('Created At')).toBe(goTime(EPOCH));
    expect(h.get('Modified At')).toBe(goTime(EPOCH));
    expect(Number(h.get('Descriptors Total')) - Number(h.get('Descriptors Free'))).toBe(3);
    expect(h.get('Descriptors Total')).toBe('48');
    expect(h.get('Descriptors Offset')).toBe('4096');
    expect(h.get('Data Offset')).toBe('32176');
  });

  it.runIf(haveSiftool)('list: Def.FILE, JSON.Generic, then the primary SquashFS partition, packed as the Go library packs them', () => {
    const rows = siftoolList(siftool(['list', sif]));
    expect(rows.map((r) => [r.id, r.group, r.link, r.type])).toEqual([
      [1, '1', 'NONE', 'Def.FILE'],
      [2, '1', 'NONE', 'JSON.Generic'],
      [3, '1', 'NONE', `FS (Squashfs/*System/${ARCH})`],
    ]);
    expect(rows[0]!.start).toBe(32176);
    expect(rows[1]!.start).toBe(rows[0]!.end); // no alignment for metadata objects
    expect(rows[2]!.start).toBe(PARTITION_OFFSET);
    expect(rows[2]!.start % 4096).toBe(0);
    expect(rows[2]!.end).toBe(fs.statSync(sif).size); // the file ends where the last object does
  });

  it.runIf(haveSiftool)('info: object 2 is inspect-metadata.json; object 3 the partition, as long as the .sqfs', () => {
    const meta = siftoolFields(siftool(['info', '2', sif]));
    expect(meta.get('Data Type')).toBe('JSON.Generic');
    expect(meta.get('Name')).toBe('inspect-metadata.json');
    const part = siftoolFields(siftool(['info', '3', sif]));
    expect(part.get('Filesystem Type')).toBe('Squashfs');
    expect(part.get('Partition Type')).toBe('*System');
    expect(part.get('Architecture')).toBe(ARCH);
    expect(part.get('Offset')).toBe(String(PARTITION_OFFSET));
    expect(part.get('Size')).toBe(String(fs.statSync(sqfs).size));
  });

  it.runIf(haveSiftool)('dump 3: byte-identical to the --format squashfs image', () => {
    const dumped = siftoolDump(3, sif, path.join(work, 'dump3.sqfs'));
    const image = fs.readFileSync(sqfs);
    expect(dumped.length).toBe(image.length);
    expect(dumped.equals(image)).toBe(true);
  });

  it.runIf(haveSiftool && haveSquashfsTools)('dump 1: the definition, naming the base and the spec; the same text as /.singularity.d/Singularity', () => {
    const def = siftool(['dump', '1', sif]);
    expect(def).toMatch(/^Bootstrap: localimage\nFrom: (.*)\n/);
    expect(def).toContain(`From: ${base}\n`);
    expect(def).toContain(`# Spec: ${SPEC}\n`);
    expect(def).toMatch(/^%labels$/m);
    expect(def).toMatch(/^%environment$/m);
    expect(def).toMatch(/^%runscript$/m);
    expect(catFromImage(sqfs, '.singularity.d/Singularity')).toBe(def);
  });

  it.runIf(haveSiftool && haveSquashfsTools)('dump 2: JSON whose data.attributes.labels hold apptainer’s org.label-schema.* and ours, as labels.json does', () => {
    const doc = JSON.parse(siftool(['dump', '2', sif]));
    expect(doc.type).toBe('container');
    const labels = doc.data.attributes.labels as Record<string, string>;
    expect(labels['org.label-schema.build-arch']).toBe(ARCH);
    expect(labels['org.label-schema.schema-version']).toBe('1.0');
    expect(labels['org.label-schema.build-date']).toBe('Tuesday_14_November_2023_22:13:20_UTC');
    expect(labels['org.label-schema.usage.singularity.deffile.bootstrap']).toBe('localimage');
    expect(labels['org.label-schema.usage.singularity.deffile.from']).toBe(base);
    expect(labels['io.shrinkwrap.repositories']).toBe('atlas.cern.ch,sft.cern.ch');
    expect(doc.data.attributes.deffile).toBe(siftool(['dump', '1', sif]).replace(/\n+$/, ''));
    // The image's labels.json says the same (apptainer inspect reads either).
    expect(JSON.parse(catFromImage(sqfs, '.singularity.d/labels.json'))).toEqual(labels);
  });
});

describe('the SIF partition mounted as apptainer mounts it', () => {
  const modes: Record<string, number> = {
    '.singularity.d/labels.json': 0o644,
    '.singularity.d/runscript': 0o755,
    '.singularity.d/env/90-environment.sh': 0o755,
    '.singularity.d/actions/exec': 0o755,
  };

  it.runIf(haveKernel)('by the kernel (loop, offset, sizelimit): the example release runs inside with chroot; the tree is the .sqfs tree', () => {
    const size = fs.statSync(sqfs).size;
    const fromSqfs = withKernelMount(sqfs, work, (mnt) => findListing(mnt));
    const fromSif = withSifKernelMount(sif, PARTITION_OFFSET, size, work, (mnt) => {
      const r = spawnSync('chroot', [mnt, '/bin/sh', '-c', EXAMPLE.runCommand], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('xAODDump: AnalysisBase 21.2.75 OK\n');
      expect(r.status).toBe(0);
      for (const [p, mode] of Object.entries(modes)) {
        const st = fs.lstatSync(path.join(mnt, p));
        expect(st.isFile(), p).toBe(true);
        expect((st.mode & 0o7777).toString(8), p).toBe(mode.toString(8));
      }
      return findListing(mnt);
    });
    expect(fromSif.length).toBeGreaterThan(500);
    expect(fromSif).toEqual(fromSqfs);
  });

  it.runIf(haveFuse && haveKernel)('by squashfuse -o offset: the same tree as the kernel shows', () => {
    const size = fs.statSync(sqfs).size;
    const kernel = withSifKernelMount(sif, PARTITION_OFFSET, size, work, (mnt) => findListing(mnt));
    const fuse = withSifSquashfuse(sif, PARTITION_OFFSET, work, (mnt) => {
      for (const [p, mode] of Object.entries(modes)) expect((fs.lstatSync(path.join(mnt, p)).mode & 0o7777).toString(8), p).toBe(mode.toString(8));
      expect(fs.readlinkSync(path.join(mnt, 'singularity'))).toBe('.singularity.d/runscript');
      return findListing(mnt);
    });
    expect(fuse).toEqual(kernel);
  });
});

describe('reproducible', () => {
  it.runIf(haveSiftool)('two builds give the same bytes and the same ID; other content, another ID', () => {
    const again = path.join(work, 'again');
    fs.mkdirSync(again);
    const second = path.join(again, 'example.sif');
    const r = build(['--base', base, '-o', second]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(second)).toBe(sha256(sif));
    const id = (f: string) => siftoolFields(siftool(['header', f])).get('ID');
    expect(id(second)).toBe(id(sif));

    // One spec line fewer: another selection, so another partition, so another ID.
    const otherSpecDir = path.join(work, 'other-spec');
    fs.mkdirSync(otherSpecDir);
    const otherSpec = path.join(otherSpecDir, 'atlas.cern.ch.spec');
    const lines = fs.readFileSync(SPEC, 'utf8').split('\n');
    expect(lines.filter((l) => l.includes('GoodRunsLists'))).toHaveLength(1);
    fs.writeFileSync(otherSpec, lines.filter((l) => !l.includes('GoodRunsLists')).join('\n'));
    const other = path.join(work, 'other.sif');
    const o = shrinkwrap(['build', '--cvmfs-root', cvmfs, '--spec', otherSpec, '-q', '--base', base, '-o', other], { env: ENV });
    expect(o.code, o.stderr).toBe(0);
    expect(siftoolDump(3, other, path.join(work, 'other-part')).equals(siftoolDump(3, sif, path.join(work, 'this-part')))).toBe(false);
    expect(id(other)).not.toBe(id(sif));
  });
});

describe('verify X.sif', () => {
  it('verify and verify --data: OK, exit 0', () => {
    for (const args of [['verify', sif], ['verify', '--data', sif]]) {
      const r = shrinkwrap(args);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/: OK: /);
      expect(r.stdout).toContain('3 objects');
    }
  });

  it('verify --json: the 3 objects as siftool lists them, the partition, the labels', () => {
    const r = shrinkwrap(['verify', '--json', sif]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.format).toBe('sif');
    const s = doc.stats.sif;
    expect(s.arch).toBe(ARCH);
    expect(s.objects.map((o: { id: number; type: string; name: string }) => [o.id, o.type, o.name])).toEqual([
      [1, 'Def.FILE', ''],
      [2, 'JSON.Generic', 'inspect-metadata.json'],
      [3, `FS (Squashfs/*System/${ARCH})`, ''],
    ]);
    expect(s.partition).toEqual({ id: 3, offset: PARTITION_OFFSET, size: fs.statSync(sqfs).size });
    expect(s.labels['org.label-schema.build-arch']).toBe(ARCH);
    expect(s.labels['io.shrinkwrap.source']).toBe(cvmfs);
    if (haveSiftool) {
      expect(s.id).toBe(siftoolFields(siftool(['header', sif])).get('ID'));
      const listed = siftoolList(siftool(['list', sif]));
      expect(s.objects.map((o: { id: number; group: string; link: string; offset: number; size: number; type: string }) => ({ id: o.id, group: o.group, link: o.link, start: o.offset, end: o.offset + o.size, type: o.type }))).toEqual(listed);
    }
  });
});

describe('a SIF or SquashFS file as --base', () => {
  let dirFromDir: string;
  beforeAll(() => {
    dirFromDir = path.join(work, 'dir-from-dir');
    const r = build(['--format', 'dir', '--base', base, '-o', dirFromDir]);
    expect(r.code, r.stderr).toBe(0);
  });

  const provenanceBase = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, '.shrinkwrap/provenance.json'), 'utf8')).base;

  for (const form of ['X.sif', 'sif:X.sif'] as const) {
    it(`our own SIF as --base ${form}: the same tree as the directory base (--format dir), provenance kind "sif"`, () => {
      const out = path.join(work, `dir-from-${form.replace(/[^a-z.]/gi, '-')}`);
      const r = build(['--format', 'dir', '--base', form === 'X.sif' ? sif : `sif:${sif}`, '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(diffTrees(dirFromDir, out, ['provenance.json', 'Singularity', 'labels.json', 'runscript.help'])).toBe('');
      expect(withoutBaseNames(findListing(out))).toEqual(withoutBaseNames(findListing(dirFromDir)));
      expect(provenanceBase(out)).toEqual({ name: sif, kind: 'sif', digest: `sha256:${sha256(sif)}` });
    });
  }

  it.runIf(haveSquashfsTools).each(['X.sif', 'sif:X.sif'])('our own SIF as --base %s, SquashFS output: the same tree as from the directory base', (form) => {
    const out = path.join(work, `sqfs-from-${form.replace(/[^a-z.]/gi, '-')}.sqfs`);
    const r = build(['--base', form === 'X.sif' ? sif : `sif:${sif}`, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(withoutBaseNames(unsquashfsListing(out))).toEqual(withoutBaseNames(unsquashfsListing(sqfs)));
    const a = fs.mkdtempSync(path.join(work, 'x-a-')) + '/t';
    const b = fs.mkdtempSync(path.join(work, 'x-b-')) + '/t';
    run('unsquashfs', ['-q', '-no-xattrs', '-d', a, sqfs]);
    run('unsquashfs', ['-q', '-no-xattrs', '-d', b, out]);
    expect(diffTrees(a, b, ['provenance.json', 'Singularity', 'labels.json', 'runscript.help'])).toBe('');
    // The base's labels are kept: its own provenance, now the base's.
    const labels = JSON.parse(catFromImage(out, '.singularity.d/labels.json'));
    expect(labels['io.shrinkwrap.base.sha256']).toBe(`sha256:${sha256(sif)}`);
    expect(JSON.parse(catFromImage(out, '.shrinkwrap/provenance.json')).base.kind).toBe('sif');
  });

  it.runIf(haveSiftool && haveSquashfsTools)('a SIF siftool made (new + add of a mksquashfs image of the base) is accepted; the build works', () => {
    const part = path.join(work, 'base-rootfs.sqfs');
    run('mksquashfs', [base, part, '-noappend', '-quiet', '-no-progress']);
    const made = path.join(work, 'siftool-made.sif');
    siftool(['new', made]);
    siftool(['add', made, part, '--datatype', '4', '--parttype', '2', '--partfs', '1', '--partarch', String(ARCH_CODE)]);
    expect(siftoolList(siftool(['list', made])).map((row) => row.type)).toEqual([`FS (Squashfs/*System/${ARCH})`]);
    const out = path.join(work, 'dir-from-siftool');
    const r = build(['--format', 'dir', '--base', made, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(diffTrees(dirFromDir, out, ['provenance.json', 'Singularity', 'labels.json', 'runscript.help'])).toBe('');
    expect(withoutBaseNames(findListing(out))).toEqual(withoutBaseNames(findListing(dirFromDir)));
    expect(provenanceBase(out)).toEqual({ name: made, kind: 'sif', digest: `sha256:${sha256(made)}` });
    // And as a SIF again: verify says it is sound.
    const outSif = path.join(work, 'sif-from-siftool.sif');
    const s = build(['--base', made, '-o', outSif]);
    expect(s.code, s.stderr).toBe(0);
    expect(shrinkwrap(['verify', '--data', outSif]).code).toBe(0);
  });

  it.runIf(haveSquashfsTools)('a .sqfs base works too (provenance kind "squashfs")', () => {
    const part = path.join(work, 'base-rootfs-2.sqfs');
    run('mksquashfs', [base, part, '-noappend', '-quiet', '-no-progress']);
    const out = path.join(work, 'dir-from-sqfs');
    const r = build(['--format', 'dir', '--base', part, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(diffTrees(dirFromDir, out, ['provenance.json', 'Singularity', 'labels.json', 'runscript.help'])).toBe('');
    expect(withoutBaseNames(findListing(out))).toEqual(withoutBaseNames(findListing(dirFromDir)));
    expect(provenanceBase(out)).toEqual({ name: part, kind: 'squashfs', digest: `sha256:${sha256(part)}` });
  });
});

describe('bad SIF inputs: one line naming the file, exit 2, nothing written; verify reports them', () => {
  /** The bad files, made in beforeAll from our SIF (descriptor slot 2 is the partition). */
  const bad: Array<{ what: string; file: () => string; build: RegExp; verify: RegExp | null }> = [];
  const slot = 2;

  beforeAll(() => {
    const dir = path.join(work, 'bad');
    fs.mkdirSync(dir);
    const at = (n: string) => path.join(dir, n);
    fs.writeFileSync(at('truncated.sif'), fs.readFileSync(sif).subarray(0, 100));
    const magic = fs.readFileSync(sif);
    magic.write('SIF_MAGIX', 32, 'latin1');
    fs.writeFileSync(at('wrong-magic.sif'), magic);
    patchedCopy(sif, at('offset-out.sif'), [{ at: descriptorField(slot, 'offset'), bytes: 8, value: fs.statSync(sif).size + 4096 }]);
    patchedCopy(sif, at('size-out.sif'), [{ at: descriptorField(slot, 'size'), bytes: 8, value: fs.statSync(sif).size }]);
    patchedCopy(sif, at('encrypted.sif'), [{ at: descriptorField(slot, 'fsType'), bytes: 4, value: 5 }]);
    patchedCopy(sif, at('ext3.sif'), [{ at: descriptorField(slot, 'fsType'), bytes: 4, value: 2 }]);
  });

  const inBad = (n: string) => () => path.join(work, 'bad', n);
  bad.push(
    { what: 'a truncated header (the first 100 bytes)', file: inBad('truncated.sif'), build: /not a SIF file|header/, verify: /not a SIF file|header/ },
    { what: 'the wrong magic', file: inBad('wrong-magic.sif'), build: /SIF_MAGIC/, verify: /SIF_MAGIC/ },
    { what: 'a partition offset beyond the file', file: inBad('offset-out.sif'), build: /object 3.*beyond the end of the file/, verify: /object 3.*beyond the end of the file/ },
    { what: 'a partition size beyond the file', file: inBad('size-out.sif'), build: /object 3.*beyond the end of the file/, verify: /object 3.*beyond the end of the file/ },
    { what: 'an encrypted partition', file: inBad('encrypted.sif'), build: /encrypted/i, verify: /encrypted/i },
    { what: 'an ext3 primary partition', file: inBad('ext3.sif'), build: /Ext3, not SquashFS/, verify: /Ext3, not SquashFS/ },
  );
  if (FIXTURES) {
    bad.push(
      { what: 'no primary partition (one-object-generic-json.sif)', file: () => path.join(FIXTURES, 'one-object-generic-json.sif'), build: /no primary system partition/, verify: /no primary system partition/ },
      { what: 'a partition of another architecture (one-group.sif, 386)', file: () => path.join(FIXTURES, 'one-group.sif'), build: new RegExp(`386, not ${ARCH}`), verify: null },
    );
  }

  for (const b of bad) {
    it(`build refuses ${b.what}`, () => {
      const file = b.file();
      const outDir = fs.mkdtempSync(path.join(work, 'out-'));
      for (const form of [file, `sif:${file}`]) {
        const r = build(['--base', form, '-o', path.join(outDir, 'image.sif')]);
        expectOneLineError(r, 2, file);
        expect(r.stderr).toMatch(b.build);
        expect(fs.readdirSync(outDir), form).toEqual([]);
      }
    });

    if (b.verify === null) {
      // verify checks the file, not whether this machine runs it: a sound 386 SIF is OK, and says 386.
      it(`verify accepts ${b.what}, naming its architecture`, () => {
        const r = shrinkwrap(['verify', b.file()]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(r.stdout).toMatch(/: OK: sif 386,/);
      });
      continue;
    }
    const expected = b.verify;
    it(`verify reports ${b.what}`, () => {
      const r = shrinkwrap(['verify', b.file()]);
      expect(r.code).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stdout + r.stderr).toMatch(expected);
      expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
      expect((r.stdout + r.stderr).split('\n').some((l) => l.includes(b.file()))).toBe(true);
    });
  }
});

describe('--format sif without --base', () => {
  it('is refused in one line, exit 2, nothing written', () => {
    const outDir = fs.mkdtempSync(path.join(work, 'out-'));
    for (const args of [['-o', path.join(outDir, 'image.sif')], ['--format', 'sif', '-o', path.join(outDir, 'image')]]) {
      const r = build(args);
      expectOneLineError(r, 2, '--base');
      expect(r.stderr).toMatch(/--format sif/);
      expect(fs.readdirSync(outDir)).toEqual([]);
    }
  });
});

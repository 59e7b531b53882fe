// `shrinkwrap merge --format oci|docker-archive` (issue 22, item 4): parts as layers. The example's
// parts (two releases by `build --part`, sft.cern.ch by mksquashfs) merged on the example base as an
// OCI layout: umoci unpacks a rootfs whose /cvmfs is the SquashFS merge's (content and listings),
// oci-image-tool validates it, skopeo reads it and the docker-archive. Each part's layer is built
// once and kept beside it: a second merge copies the kept blobs (same digests, the kept files
// untouched) and gives the same bytes; a changed part gets its layer built again. Conflicts settle
// as in the SquashFS merge, with the winner visible; bad input is one line.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { diffTrees, findListing, run } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { mksquashfs } from '../helpers/squashfs-tree.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
let example: { cvmfs: string; base: string };
let parts: string[];
const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const p = (name: string) => path.join(work, name);
const isRoot = process.getuid?.() === 0;

const hasTools = () =>
  canRun(
    ['mksquashfs', 'unsquashfs', 'umoci', 'skopeo', 'oci-image-tool'].every(hasCommand),
    'merge --format oci tests',
    'squashfs-tools, umoci, skopeo and oci-image-tool are needed (.ci/run installs them)',
  );

interface Layer {
  label: string;
  digest: string;
  cached: boolean;
  kept: boolean;
  part?: string;
  rebuilt?: boolean;
  lost?: number;
}
interface Report {
  image: { format: string; layers: Layer[]; manifestDigest: string };
  sha256: string | null;
}

function ok(args: string[]): string {
  const r = shrinkwrap(args, { env });
  expect(r.code, r.stderr).toBe(0);
  return r.stderr;
}

/** Merge with --json; the report. */
function mergeJson(args: string[]): Report {
  const r = shrinkwrap(['merge', '--json', ...args], { env });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

/** umoci's rootfs of a layout (as root: owners kept; otherwise rootless, owners mapped to us). */
function unpack(layout: string, tag = 'latest'): string {
  const bundle = `${layout}-bundle`;
  fs.rmSync(bundle, { recursive: true, force: true });
  run('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${layout}:${tag}`, bundle]);
  return path.join(bundle, 'rootfs');
}

/** The SquashFS image extracted by unsquashfs. */
function extracted(img: string): string {
  const dir = `${img}-x`;
  fs.rmSync(dir, { recursive: true, force: true });
  run('unsquashfs', ['-q', '-n', '-d', dir, img]);
  return dir;
}

/** Listings to compare (owners only where umoci kept them). */
const listing = (dir: string) => findListing(dir, { nlink: true }).map((l) => (isRoot ? l : l.replace(/^(\S+ \S+) \S+/, '$1 -')));

/** Every file's inode and modification time. */
const stamps = (files: string[]) => files.map((f) => `${f} ${fs.statSync(f).ino} ${fs.statSync(f).mtimeMs}`);

/** The layers' kept files beside the parts. */
const keptFiles = () => parts.flatMap((f) => [`${f}.layer.tar.gz`, `${f}.layer.tar.gz.json`]);

/** The /cvmfs of an OCI layout equals that of the SquashFS merge of the same parts (content, listing). */
function expectSameCvmfs(layout: string, sqfs: string, tag = 'latest'): void {
  const rootfs = unpack(layout, tag);
  const x = extracted(sqfs);
  expect(diffTrees(path.join(x, 'cvmfs'), path.join(rootfs, 'cvmfs'))).toBe('');
  expect(listing(path.join(rootfs, 'cvmfs'))).toEqual(listing(path.join(x, 'cvmfs')));
  expect(listing(path.join(rootfs, 'cvmfs')).length).toBeGreaterThan(100);
}

beforeAll(async () => {
  example = await ensureExample();
  work = tmpDir('merge-oci');
  if (!hasCommand('mksquashfs')) return;
  ok(['build', '-q', '--cvmfs-root', example.cvmfs, '--release', 'AnalysisBase,21.2.75', '--part', '-o', p('ab75.part.sqfs')]);
  ok(['build', '-q', '--cvmfs-root', example.cvmfs, '--release', 'AnalysisBase,21.2.74', '--part', '-o', p('ab74.part.sqfs')]);
  mksquashfs(path.join(example.cvmfs, 'sft.cern.ch'), p('sft.sqfs'), ['-keep-as-directory']);
  parts = ['ab75.part.sqfs', 'ab74.part.sqfs', 'sft.sqfs'].map(p);
  // Outputs of the same name in two places: their bytes are compared.
  for (const d of ['one', 'two', 'a', 'b']) fs.mkdirSync(p(d));
}, 300_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.runIf(hasTools())('merge --format oci', () => {
  it('writes a layout, one layer per part, whose /cvmfs is the SquashFS merge\'s; a second merge copies the kept layers and gives the same bytes', () => {
    ok(['merge', '-q', '--base', example.base, '-o', p('merged.sqfs'), ...parts]);
    const first = mergeJson(['--format', 'oci', '--base', example.base, '--tag', 'test/merged:1', '-o', p('one/img'), ...parts]);
    const labels = first.image.layers.map((l) => l.label);
    // A directory base is a layer of its own, then the parts in the order given, then what shrinkwrap adds.
    expect(labels).toEqual(['base root filesystem', 'part ab75.part.sqfs', 'part ab74.part.sqfs', 'part sft.sqfs', expect.stringMatching(/^added by shrinkwrap/)]);
    expect(first.image.layers.filter((l) => l.cached)).toEqual([]);
    for (const f of keptFiles()) expect(fs.existsSync(f), f).toBe(true);
    expect(fs.readdirSync(work).filter((f) => f.includes('shrinkwrap-tmp'))).toEqual([]);
    // A part's kept layer is its blob in the layout.
    const record = JSON.parse(fs.readFileSync(`${parts[0]}.layer.tar.gz.json`, 'utf8'));
    expect(record.layer.digest).toBe(first.image.layers[1]!.digest);
    expect(run('sha256sum', [`${parts[0]}.layer.tar.gz`]).split(' ')[0]).toBe(first.image.layers[1]!.digest.slice(7));

    expect(run('oci-image-tool', ['validate', '--type', 'image', p('one/img')])).toContain('Validation succeeded');
    expectSameCvmfs(p('one/img'), p('merged.sqfs'), '1');
    // The generated files are those of the SquashFS merge on the base (provenance aside: it says how parts went in).
    const rootfs = unpack(p('one/img'), '1');
    const x = extracted(p('merged.sqfs'));
    expect(fs.readFileSync(path.join(rootfs, 'release_setup.sh'), 'utf8')).toBe(fs.readFileSync(path.join(x, 'release_setup.sh'), 'utf8'));
    expect(diffTrees(path.join(x, '.singularity.d'), path.join(rootfs, '.singularity.d'))).toBe('');
    const prov = JSON.parse(fs.readFileSync(path.join(rootfs, '.shrinkwrap/provenance.json'), 'utf8'));
    expect(prov.merged.map((m: { file: string }) => m.file)).toEqual(['ab75.part.sqfs', 'ab74.part.sqfs', 'sft.sqfs']);
    const inspect = JSON.parse(run('skopeo', ['inspect', `oci:${p('one/img')}:1`]));
    expect(inspect.Env).toContain('BASH_ENV=/release_setup.sh');
    expect(inspect.Labels['io.shrinkwrap.releases']).toBe('AnalysisBase,21.2.75 AnalysisBase,21.2.74');
    expect(inspect.Labels['io.shrinkwrap.parts']).toMatch(/^ab75\.part\.sqfs@sha256:[0-9a-f]{64} ab74\.part\.sqfs@sha256:[0-9a-f]{64} sft\.sqfs@sha256:[0-9a-f]{64}$/);
    expect(inspect.Created).toBe('2023-11-14T22:13:20Z');

    // Again: the kept layers are copied, untouched, and the layout is the same bytes.
    const before = stamps(keptFiles());
    const second = mergeJson(['--format', 'oci', '--base', example.base, '--tag', 'test/merged:1', '-o', p('two/img'), ...parts]);
    expect(second.image.layers.filter((l) => l.cached).map((l) => l.part)).toEqual(['ab75.part.sqfs', 'ab74.part.sqfs', 'sft.sqfs']);
    expect(second.image.layers.map((l) => l.digest)).toEqual(first.image.layers.map((l) => l.digest));
    expect(stamps(keptFiles())).toEqual(before);
    expect(diffTrees(p('one/img'), p('two/img'))).toBe('');
  });

  it('builds a changed part\'s layer again, and copies the others', () => {
    const out = (n: string) => ['--format', 'oci', '--base', example.base, '-o', p(n), ...parts];
    mergeJson(out('warm'));
    // The same release built again: another file (new time, new inode), the same tree.
    const tmp = p('ab74.again.sqfs');
    ok(['build', '-q', '--cvmfs-root', example.cvmfs, '--release', 'AnalysisBase,21.2.74', '--part', '-o', tmp]);
    fs.renameSync(tmp, parts[1]!);
    const r = mergeJson(out('changed'));
    const byPart = Object.fromEntries(r.image.layers.filter((l) => l.part).map((l) => [l.part, l.cached]));
    expect(byPart).toEqual({ 'ab75.part.sqfs': true, 'ab74.part.sqfs': false, 'sft.sqfs': true });
    // Built again from the same tree: the same layer, and kept again.
    expect(r.image.layers[2]!.digest).toBe(JSON.parse(fs.readFileSync(`${parts[1]}.layer.tar.gz.json`, 'utf8')).layer.digest);
    expect(mergeJson(out('after')).image.layers.filter((l) => l.cached)).toHaveLength(3);
  });

  it('writes a docker-archive (from the name) that skopeo reads, with its .sha256, the same bytes each time', () => {
    const a = mergeJson(['--base', example.base, '-o', p('a/img.tar'), ...parts]);
    const b = mergeJson(['--base', example.base, '-o', p('b/img.tar'), ...parts]);
    expect(a.image.format).toBe('docker-archive');
    expect(fs.readFileSync(p('a/img.tar')).equals(fs.readFileSync(p('b/img.tar')))).toBe(true);
    expect(fs.readFileSync(p('a/img.tar.sha256'), 'utf8')).toBe(`${a.sha256}  img.tar\n`);
    const inspect = JSON.parse(run('skopeo', ['inspect', `docker-archive:${p('a/img.tar')}`]));
    expect(inspect.Layers).toHaveLength(5);
    run('skopeo', ['copy', `docker-archive:${p('a/img.tar')}`, `oci:${p('copied')}:latest`]);
    expectSameCvmfs(p('copied'), p('merged.sqfs'));
  });

  it('settles conflicts as the SquashFS merge does, the winner visible; a part whose entries lost gets a layer of the rest for that merge only', () => {
    // A part at odds with the releases: another lastUpdate, a file where they have a directory, a directory's other mode.
    const c = p('conflict-tree');
    fs.mkdirSync(path.join(c, 'atlas.cern.ch/repo/ATLASLocalRootBase/logDir'), { recursive: true });
    fs.mkdirSync(path.join(c, 'atlas-condb.cern.ch/repo/conditions'), { recursive: true });
    fs.writeFileSync(path.join(c, 'atlas.cern.ch/repo/ATLASLocalRootBase/logDir/lastUpdate'), 'another time\n');
    fs.writeFileSync(path.join(c, 'atlas-condb.cern.ch/repo/conditions/logDir'), 'a file, not a directory\n');
    fs.writeFileSync(path.join(c, 'atlas.cern.ch/repo/only-here'), 'new\n');
    fs.chmodSync(path.join(c, 'atlas.cern.ch/repo'), 0o750);
    const conflict = p('conflict.sqfs');
    const both = run('sh', ['-c', `mksquashfs '${c}/atlas.cern.ch' '${c}/atlas-condb.cern.ch' '${conflict}' -noappend -quiet -no-progress && echo done`]);
    expect(both).toContain('done');
    const set = [parts[0]!, parts[1]!, conflict];
    const refused = shrinkwrap(['merge', '--format', 'oci', '-o', p('c-none'), ...set], { env });
    expectOneLineError(refused, 2, /conflict\.sqfs: the parts conflict \(--part-priority/);
    expect(fs.existsSync(p('c-none'))).toBe(false);
    for (const [priority, rebuilt] of [
      ['first', ['conflict.sqfs']],
      ['last', ['ab75.part.sqfs', 'ab74.part.sqfs']],
    ] as const) {
      ok(['merge', '-q', '--base', example.base, '--part-priority', priority, '-o', p(`c-${priority}.sqfs`), ...set]);
      const r = shrinkwrap(['merge', '--base', example.base, '--part-priority', priority, '--format', 'oci', '-o', p(`c-${priority}`), ...set], { env });
      expect(r.code, r.stderr).toBe(0);
      for (const part of rebuilt) expect(r.stderr).toMatch(new RegExp(`${part.replace('.', '\\.')}: \\d+ of its entries lost a conflict: its layer was built for this merge without them \\(not kept\\)`));
      expect(r.stderr.match(/lost a conflict/g)).toHaveLength(rebuilt.length);
      expectSameCvmfs(p(`c-${priority}`), p(`c-${priority}.sqfs`));
    }
    const winner = (layout: string) => fs.readFileSync(path.join(unpack(layout), 'cvmfs/atlas.cern.ch/repo/ATLASLocalRootBase/logDir/lastUpdate'), 'utf8');
    expect(winner(p('c-last'))).toBe('another time\n');
    expect(winner(p('c-first'))).not.toBe('another time\n');
    // A layer built for one merge is not kept: the releases' kept layers are still theirs.
    const r = mergeJson(['--format', 'oci', '-o', p('c-after'), ...parts]);
    expect(r.image.layers.filter((l) => l.cached)).toHaveLength(3);
  });

  it('keeps layers in --layer-cache DIR, per compression', () => {
    const cache = p('cache');
    fs.mkdirSync(cache);
    const r1 = mergeJson(['--format', 'oci', '--compression', 'zstd', '--layer-cache', cache, '-o', p('z1'), parts[2]!]);
    expect(r1.image.layers.filter((l) => l.cached)).toEqual([]);
    expect(fs.readdirSync(cache).sort()).toEqual(['sft.sqfs.layer.tar.zst', 'sft.sqfs.layer.tar.zst.json']);
    const r2 = mergeJson(['--format', 'oci', '--compression', 'zstd', '--layer-cache', cache, '-o', p('z2'), parts[2]!]);
    expect(r2.image.layers.filter((l) => l.cached)).toHaveLength(1);
    // Another level is another layer: built, and kept in place of the other.
    const r3 = mergeJson(['--format', 'oci', '--compression', 'zstd', '--level', '9', '--layer-cache', cache, '-o', p('z3'), parts[2]!]);
    expect(r3.image.layers.filter((l) => l.cached)).toEqual([]);
    expect(r3.image.layers[0]!.digest).not.toBe(r2.image.layers[0]!.digest);
  });

  it('bad input: one line naming the option, nothing written', () => {
    const fail = (args: string[], culprit: RegExp) => expectOneLineError(shrinkwrap(['merge', ...args], { env }), 2, culprit);
    fail(['-o', p('x.sif'), parts[2]!], /-o .*x\.sif: merge writes squashfs, oci or docker-archive, not sif/);
    fail(['--format', 'oci', '--compression', 'xz', '-o', p('bad'), parts[2]!], /--compression xz: OCI layers are gzip/);
    fail(['--format', 'oci', '--level', '99', '-o', p('bad'), parts[2]!], /--level 99: gzip takes 1 to 9/);
    fail(['--format', 'oci', '--block-size', '64K', '-o', p('bad'), parts[2]!], /--block-size: SquashFS only/);
    fail(['--format', 'oci', '--layer-cache', p('no-such-dir'), '-o', p('bad'), parts[2]!], /--layer-cache .*no-such-dir: no such directory/);
    fail(['--tag', 'a:b', '-o', p('bad.sqfs'), parts[2]!], /--tag needs --format oci or docker-archive/);
    fail(['--compression', 'none', '-o', p('bad.sqfs'), parts[2]!], /--compression none: OCI layers only/);
    fs.mkdirSync(p('d1'));
    fs.mkdirSync(p('d2'));
    fs.copyFileSync(parts[2]!, p('d1/p.sqfs'));
    fs.copyFileSync(parts[2]!, p('d2/p.sqfs'));
    fs.mkdirSync(p('lc'));
    fail(['--format', 'oci', '--layer-cache', p('lc'), '-o', p('bad'), p('d1/p.sqfs'), p('d2/p.sqfs')], /parts .*d1\/p\.sqfs and .*d2\/p\.sqfs have the same file name/);
    fail(['--format', 'oci', '-o', p('bad'), p('missing.sqfs')], /missing\.sqfs: no such file/);
    expect(fs.existsSync(p('bad'))).toBe(false);
    expect(fs.readdirSync(p('lc'))).toEqual([]);
  });
});

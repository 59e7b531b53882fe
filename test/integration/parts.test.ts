// Parts from releases (issue 22, item 2): `build --release X --part` writes the release's /cvmfs
// selection alone with its index (/.shrinkwrap/part.json: each file's sha256, what the part was
// built from), and `build --release A --release B --parts DIR` keeps one part per release in DIR:
// built where missing, reused where its index matches (a line says so), rebuilt where an option, a
// recipe or pack, or the source changed, then merged. The merged image is the one `shrinkwrap
// merge` makes of the same parts by hand, and its /cvmfs is what a normal build of both releases holds.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canKernelMount, diffTrees, findListing, run, unsquashfsListing, withKernelMount } from '../helpers/consumers.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
let cvmfs: string;
let base: string;
const AB75 = 'AnalysisBase,21.2.75';
const AB74 = 'AnalysisBase,21.2.74';
const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
const p = (name: string) => path.join(work, name);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

function ok(args: string[]): string {
  const r = shrinkwrap(args, { env });
  expect(r.code, r.stderr).toBe(0);
  return r.stderr;
}

/** The lines --parts prints for each part. */
function partLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^shrinkwrap: AnalysisBase,21\.2\.7[45]: /.test(l)).map((l) => l.slice('shrinkwrap: '.length));
}

/** An image unpacked by unsquashfs (the kernel's mount is used where it can be). */
function unpacked(img: string): string {
  const dir = p(`x-${path.basename(img)}`);
  fs.rmSync(dir, { recursive: true, force: true });
  run('unsquashfs', ['-q', '-n', '-d', dir, img]);
  return dir;
}

const hasTools = () => canRun(hasCommand('unsquashfs'), 'squashfs-tools', 'apt-get install squashfs-tools');

beforeAll(async () => {
  const example = await ensureExample();
  base = example.base;
  work = tmpDir('sw-parts-');
  // A copy: one test changes the source.
  cvmfs = p('cvmfs');
  run('cp', ['-a', example.cvmfs, cvmfs]);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('build --part', () => {
  it('writes the /cvmfs-only image of the release plus /.shrinkwrap/part.json, whose sha256 are the files\'', () => {
    if (!hasTools()) return;
    ok(['build', '-q', '--cvmfs-root', cvmfs, '--release', AB75, '-o', p('plain.sqfs')]);
    ok(['build', '-q', '--cvmfs-root', cvmfs, '--release', AB75, '--part', '-o', p('ab.part.sqfs')]);
    const plain = unsquashfsListing(p('plain.sqfs'));
    const part = unsquashfsListing(p('ab.part.sqfs'));
    const index = part.filter((l) => / \/\.shrinkwrap(\/|$)/.test(l));
    expect(index.map((l) => l.replace(/^.* \//, '/')).sort()).toEqual(['/.shrinkwrap', '/.shrinkwrap/part.json']);
    expect(part.filter((l) => !index.includes(l))).toEqual(plain);

    const check = (top: string) => {
      expect(diffTrees(unpacked(p('plain.sqfs')), top, ['.shrinkwrap'])).toBe('');
      const doc = JSON.parse(fs.readFileSync(path.join(top, '.shrinkwrap/part.json'), 'utf8'));
      expect(doc.format).toBe('shrinkwrap-part');
      expect(doc.version).toBe(1);
      expect(doc.releases.map((r: { project: string; version: string }) => `${r.project},${r.version}`)).toEqual([AB75]);
      expect(doc.match.image).toMatchObject({ compression: 'gzip', level: 6, blockSize: 131072 });
      expect(Object.keys(doc.match.files)).toContain('specs/recipes/atlas.recipe');
      // Every regular file of the part (hard links name a file listed once) and nothing else.
      const files = findListing(top).filter((l) => l.startsWith('f ')).map((l) => '/' + Buffer.from(l.split('|')[1]!, 'latin1').toString('utf8')); // find's names are bytes; the index's UTF-8 text
      const listed = (doc.files as Array<[string, number, string]>).map((f) => f[0]);
      const firstNames = new Set(listed);
      expect(listed.length).toBeGreaterThan(400);
      expect(files.filter((f) => f !== '/.shrinkwrap/part.json').every((f) => firstNames.has(f) || fs.statSync(path.join(top, f)).nlink > 1)).toBe(true);
      for (const [file, size, digest] of doc.files as Array<[string, number, string]>) {
        const bytes = fs.readFileSync(path.join(top, file));
        expect(bytes.length, file).toBe(size);
        expect(digest, file).toBe(sha(bytes));
        expect(digest, file).toBe(sha(fs.readFileSync(path.join(cvmfs, file))));
      }
      expect(doc.selected.files).toBe(listed.length);
    };
    if (canKernelMount()) withKernelMount(p('ab.part.sqfs'), work, check);
    else check(unpacked(p('ab.part.sqfs')));
  });

  it('is refused without --release, with --base, in another format, and with --parts, in one line', () => {
    const spec = p('one.spec');
    fs.writeFileSync(spec, '/cvmfs/atlas.cern.ch/repo/sw/local/etc/cric_pandaqueues.json\n');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--spec', spec, '--part', '-o', p('r1.sqfs')]), 2, '--part needs --release');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--release', AB75, '--base', base, '--part', '-o', p('r2.sqfs')]), 2, '--part takes no --base');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--release', AB75, '--part', '-o', p('r3/')]), 2, '--part writes SquashFS');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--release', AB75, '--part', '--parts', p('P0'), '-o', p('r4.sqfs')]), 2, '--part and --parts');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--release', '21.2.74', '--parts', p('P0'), '-o', p('r5.sqfs')]), 2, 'give PROJECT,21.2.74');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--release', AB75, '--spec', spec, '--parts', p('P0'), '-o', p('r6.sqfs')]), 2, '--spec with --parts');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, '--spec', spec, '--parts', p('P0'), '-o', p('r7.sqfs')]), 2, '--parts needs --release');
    for (const f of ['r1.sqfs', 'r2.sqfs', 'r3', 'r4.sqfs', 'r5.sqfs', 'r6.sqfs', 'r7.sqfs', 'P0']) expect(fs.existsSync(p(f)), f).toBe(false);
  });
});

describe('build --parts DIR', () => {
  const dir = () => p('P');
  const parts = () => [`${dir()}/AnalysisBase-21.2.74.part.sqfs`, `${dir()}/AnalysisBase-21.2.75.part.sqfs`];
  const stamp = (f: string) => {
    const s = fs.statSync(f);
    return `${s.ino}:${s.mtimeMs}`;
  };
  const both = (out: string, extra: string[] = []) => ['build', '--cvmfs-root', cvmfs, '--release', AB75, '--release', AB74, '--parts', dir(), '--base', base, '-o', p(out), ...extra];

  it('builds the parts, then reuses them; the image is the hand merge of DIR/*.part.sqfs, its /cvmfs a normal build of both releases', () => {
    if (!hasTools()) return;
    const firstErr = ok(both('first.sqfs'));
    expect(partLines(firstErr)).toEqual([`${AB75}: built (no part)`, `${AB74}: built (no part)`]);
    expect(firstErr).toMatch(/from 2 parts \(0 reused, 2 built, 0 rebuilt\)/);
    expect(fs.readdirSync(dir()).filter((n) => n.endsWith('.part.sqfs')).sort()).toEqual(['AnalysisBase-21.2.74.part.sqfs', 'AnalysisBase-21.2.75.part.sqfs']);
    const before = parts().map(stamp);

    const secondErr = ok(both('second.sqfs'));
    // Counted, not timed: nothing built the second time.
    expect(secondErr).toMatch(/wrote \S+second\.sqfs: .* from 2 parts \(2 reused, 0 built, 0 rebuilt\)/);
    const second = partLines(secondErr);
    expect(second).toHaveLength(2);
    expect(second[0]).toMatch(/^AnalysisBase,21\.2\.75: part reused \(same options and recipes, selection stamp [0-9a-f]{12}, \d+ files\)$/);
    expect(second[1]).toMatch(/^AnalysisBase,21\.2\.74: part reused \(/);
    // Reused, not written again: the same files (inode and time), and the same image.
    expect(parts().map(stamp)).toEqual(before);
    expect(fs.readFileSync(p('second.sqfs')).equals(fs.readFileSync(p('first.sqfs')))).toBe(true);

    // By hand: merge of DIR/*.part.sqfs (the shell's order) on the same base.
    ok(['merge', '-q', '--base', base, '-o', p('hand.sqfs'), ...parts()]);
    expect(fs.readFileSync(p('hand.sqfs')).equals(fs.readFileSync(p('first.sqfs')))).toBe(true);

    // A normal build of both releases (without a base: /cvmfs alone) holds the same /cvmfs.
    ok(['build', '-q', '--cvmfs-root', cvmfs, '--release', AB75, '--release', AB74, '-o', p('normal.sqfs')]);
    const normal = unsquashfsListing(p('normal.sqfs'));
    const merged = unsquashfsListing(p('first.sqfs'))
      .filter((l) => / \/cvmfs(\/|$)/.test(l))
      .map((l) => l.replace(' /cvmfs', ' /').replace(' //', ' /'));
    expect(merged).toEqual(normal);
    const compare = (mergedTop: string, normalTop: string) => {
      expect(diffTrees(normalTop, mergedTop)).toBe('');
      expect(findListing(mergedTop)).toEqual(findListing(normalTop));
    };
    if (canKernelMount()) withKernelMount(p('first.sqfs'), work, (m) => withKernelMount(p('normal.sqfs'), work, (n) => compare(path.join(m, 'cvmfs'), n)));
    else compare(path.join(unpacked(p('first.sqfs')), 'cvmfs'), unpacked(p('normal.sqfs')));
  });

  it('rebuilds a part whose options, pack or source changed, and says what changed', () => {
    if (!hasTools()) return;
    if (!fs.existsSync(parts()[1]!)) ok(both('again.sqfs'));
    // Another compressor: both parts.
    const zstd = partLines(ok(both('zstd.sqfs', ['--compression', 'zstd'])));
    expect(zstd).toEqual([`${AB75}: rebuilt (image.compression: gzip → zstd; image.level: 6 → 3)`, `${AB74}: rebuilt (image.compression: gzip → zstd; image.level: 6 → 3)`]);
    expect(run('unsquashfs', ['-s', parts()[0]!])).toMatch(/Compression zstd/);

    // A rule pack given as a file, then changed: rebuilt, naming it; the part holds what it now selects.
    const pack = p('extra.pack');
    fs.writeFileSync(pack, '# extra files\ninclude atlas.cern.ch/repo/sw/local/etc/cric_pandaqueues.json\n');
    const withPack = (out: string) => both(out, ['--compression', 'zstd', '--pack', pack]);
    expect(partLines(ok(withPack('pack1.sqfs')))[0]).toMatch(/^AnalysisBase,21\.2\.75: rebuilt \(files\.pack extra\.pack: none → [0-9a-f]{12}; selection\.packs: /);
    expect(partLines(ok(withPack('pack2.sqfs')))[0]).toMatch(/part reused/);
    fs.appendFileSync(pack, 'include atlas.cern.ch/repo/sw/database/GroupData/dev/SUSYTools/xsdb/mc15_13TeV/Backgrounds.txt\n');
    expect(partLines(ok(withPack('pack3.sqfs')))[0]).toMatch(/^AnalysisBase,21\.2\.75: rebuilt \(files\.pack extra\.pack: [0-9a-f]{12} → [0-9a-f]{12}\)$/);
    expect(unsquashfsListing(parts()[1]!).some((l) => l.endsWith('/SUSYTools/xsdb/mc15_13TeV/Backgrounds.txt'))).toBe(true);

    // The source changed under one release (a directory source has no revision: its selection is compared).
    const touched = path.join(cvmfs, 'atlas.cern.ch/repo/sw/software/21.2/AnalysisBase/21.2.74/InstallArea/x86_64-slc6-gcc62-opt/data/PathResolver/a.xml');
    fs.appendFileSync(touched, '<!-- changed -->\n');
    const lines = partLines(ok(withPack('source.sqfs')));
    expect(lines[0]).toMatch(/^AnalysisBase,21\.2\.75: part reused/);
    expect(lines[1]).toMatch(/^AnalysisBase,21\.2\.74: rebuilt \(the selection changed: \d+ → \d+ entries, stamp [0-9a-f]{12} → [0-9a-f]{12}\)$/);
    const doc = JSON.parse(run('unsquashfs', ['-cat', parts()[0]!, '.shrinkwrap/part.json']));
    const entry = (doc.files as Array<[string, number, string]>).find((f) => touched.endsWith(f[0]))!;
    expect(entry[2]).toBe(sha(fs.readFileSync(touched)));
  });
});

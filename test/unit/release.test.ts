// The pieces behind --release: the setup-script evaluator, globs, recipe and pack files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/model/errors.js';
import { GlobExclusions, compileGlob, globMatches } from '../../src/select/glob.js';
import { lcgPackages, parseReleaseArg } from '../../src/select/release/index.js';
import { bundledRecipes, expandTemplate, loadPack, parsePack, parseRecipe } from '../../src/select/release/recipe.js';
import { type ScriptHost, evaluateSetup, normalise, splitStatements } from '../../src/select/release/shell.js';
import { tmpDir } from '../helpers/tree.js';

/** An in-memory tree of scripts and directories (image paths). */
function memoryHost(files: Record<string, string>, dirs: string[] = []): ScriptHost {
  return {
    read: (p) => files[normalise(p)] ?? null,
    kind: (p) => (files[normalise(p)] !== undefined ? 'file' : dirs.includes(normalise(p)) ? 'dir' : null),
    resolve: (p) => normalise(p),
  };
}

describe('setup-script evaluator', () => {
  it('follows the AtlasCMake chain: BASH_SOURCE, $(cd $(dirname …); pwd), relative base-project paths, prepends', () => {
    const ia = '/cvmfs/r/sw/21.2/P/1.0/InstallArea/plat';
    const ext = '/cvmfs/r/sw/21.2/PExternals/1.0/InstallArea/plat';
    const host = memoryHost({
      [`${ia}/setup.sh`]: [
        'if [ "x${BASH_SOURCE[0]}" = "x" ]; then',
        '  P_DIR=/wrong',
        'else',
        '  P_DIR=$(cd $(dirname ${BASH_SOURCE[0]}); pwd)',
        'fi',
        'export P_DIR',
        `source "\${P_DIR}/../../../../PExternals/1.0/InstallArea/plat/setup.sh"  # base project`,
        'LD_LIBRARY_PATH="${P_DIR}/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"; export LD_LIBRARY_PATH',
      ].join('\n'),
      [`${ext}/setup.sh`]: [
        'E_DIR=${E_DIR:-' + ext + '}',
        'BRANCH=${E_DIR%/*/*/*/*}',
        '[ -d /cvmfs/nowhere ] && LD_LIBRARY_PATH=/cvmfs/nowhere',
        '[ -d ${E_DIR} ] && export LD_LIBRARY_PATH="${E_DIR}/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"',
        '. /cvmfs/r/gcc/setup.sh',
      ].join('\n'),
      '/cvmfs/r/gcc/setup.sh': 'export LD_LIBRARY_PATH=/cvmfs/r/gcc/lib64:$LD_LIBRARY_PATH\n',
    }, [ext]);
    const r = evaluateSetup(`${ia}/setup.sh`, host);
    expect(r.env.get('P_DIR')).toBe(ia);
    expect(r.env.get('BRANCH')).toBe('/cvmfs/r/sw/21.2'); // * in ${V%pat} matches across /, as in sh
    expect(r.env.get('LD_LIBRARY_PATH')).toBe(`${ia}/lib:/cvmfs/r/gcc/lib64:${ext}/lib`);
    expect(r.scripts.map((s) => [s.path, s.found])).toEqual([
      [`${ia}/setup.sh`, true],
      [`${ext}/setup.sh`, true],
      ['/cvmfs/r/gcc/setup.sh', true],
    ]);
    expect(r.scripts[1]!.from).toBe(`${ia}/setup.sh:7`);
    expect(r.unknown).toEqual([]);
  });

  it('takes one branch of if/elif/else, skips functions, loops and case, and lists what it could not evaluate', () => {
    const host = memoryHost({
      '/cvmfs/r/s.sh': [
        'X=1',
        'if [ "$X" = 2 ]; then A=two; elif [ -n "$X" ]; then A=nonempty; else A=else; fi',
        'f() {',
        '  B=inside-function',
        '}',
        'for d in a b; do C=loop; done',
        'case $X in 1) D=case ;; esac',
        'V=$(uname -m)',
        'unset X',
        'if [ -z "$X" ]; then E=unset; fi',
        'return 0',
        'F=after-return',
      ].join('\n'),
    });
    const r = evaluateSetup('/cvmfs/r/s.sh', host);
    expect(Object.fromEntries(r.env)).toEqual({ A: 'nonempty', V: '', E: 'unset' });
    expect(r.unknown.join('\n')).toMatch(/s\.sh:3: 'f\(\)' block not evaluated/);
    expect(r.unknown.join('\n')).toMatch(/s\.sh:8: command substitution 'uname -m' not evaluated/);
  });

  it('reports a missing sourced script, stops a sourcing cycle, and never leaves the tree', () => {
    const host = memoryHost({
      '/cvmfs/r/a.sh': '. /cvmfs/r/b.sh\n. /cvmfs/r/missing.sh\n. /etc/profile\n',
      '/cvmfs/r/b.sh': 'source /cvmfs/r/a.sh\nB=1\n',
    });
    const r = evaluateSetup('/cvmfs/r/a.sh', host);
    expect(r.env.get('B')).toBe('1');
    expect(r.scripts.filter((s) => !s.found).map((s) => s.path)).toEqual(['/cvmfs/r/missing.sh', '/etc/profile']);
    expect(r.unknown.join('\n')).toMatch(/sources itself \(cycle\)/);
  });

  it('splits statements on ; && || outside quotes and $( ), and drops comments', () => {
    expect(splitStatements(`A="x;y" && B='#' # comment; C=1`).map((c) => c.map((x) => x.words))).toEqual([[["A=\"x;y\""], ["B='#'"]]]);
    expect(splitStatements('X=$(cd a; pwd); Y=1').map((c) => c.map((x) => x.words))).toEqual([[['X=$(cd a; pwd)']], [['Y=1']]]);
  });
});

describe('globs (fast-glob syntax) on paths under /cvmfs', () => {
  const m = (g: string, p: string) => globMatches(compileGlob(g, 'test'), p);
  it('matches *, **, ?, [..], {a,b} and names at any depth', () => {
    expect(m('atlas.cern.ch/repo/*/x', 'atlas.cern.ch/repo/sw/x')).toBe(true);
    expect(m('atlas.cern.ch/repo/*/x', 'atlas.cern.ch/repo/sw/y/x')).toBe(false);
    expect(m('atlas.cern.ch/**/x', 'atlas.cern.ch/x')).toBe(true);
    expect(m('atlas.cern.ch/**/x', 'atlas.cern.ch/a/b/c/x')).toBe(true);
    expect(m('/cvmfs/sft.cern.ch/lcg/**', 'sft.cern.ch/lcg/a/b')).toBe(true);
    expect(m('*.pdf', 'atlas.cern.ch/a/doc/manual.pdf')).toBe(true);
    expect(m('*.pdf', 'atlas.cern.ch/a/pdf')).toBe(false);
    expect(m('lib{a,b}.so*', 'r/lib/libb.so.1')).toBe(true);
    expect(m('lib[!a].so', 'r/libb.so')).toBe(true);
    expect(m('lib[!a].so', 'r/liba.so')).toBe(false);
    expect(m('x?y', 'r/x/y')).toBe(false);
  });

  it('rejects absolute paths outside /cvmfs, .. and unclosed brackets, naming the option', () => {
    expect(() => compileGlob('/usr/lib/*', '--exclude /usr/lib/*')).toThrow(/--exclude \/usr\/lib\/\*: .*paths under \/cvmfs/);
    expect(() => compileGlob('a/../b', '--include a/../b')).toThrow(/'\.\.' is not allowed/);
    expect(() => compileGlob('a/[bc', 'x')).toThrow(/unclosed \[/);
  });

  it('keep lines make exceptions to exclusions', () => {
    const g = new GlobExclusions();
    g.exclude('r/sw/*/InstallArea/*', 'pack:1');
    g.keep('r/sw/*/InstallArea/plat', 'pack:2');
    expect(g.at('/cvmfs/r/sw/P/InstallArea/other')?.origin).toBe('pack:1');
    expect(g.at('/cvmfs/r/sw/P/InstallArea/plat')).toBeNull();
    expect(g.at('/cvmfs/r/sw/P/InstallArea/plat/lib')).toBeNull();
  });
});

describe('recipes and packs', () => {
  it('the bundled ATLAS recipe parses and names the CMake-era layout and projects', () => {
    const [atlas] = bundledRecipes();
    expect(atlas!.name).toBe('atlas');
    expect(atlas!.projects).toEqual(['AnalysisBase', 'AthAnalysis', 'AnalysisTop', 'AthDerivation', 'Athena', 'AthSimulation', 'AthGeneration']);
    expect(atlas!.version.exec('21.2.178.0')!.groups!['branch']).toBe('21.2');
    expect(atlas!.version.test('21.2')).toBe(false);
    for (const p of ['release-metadata', 'compiler-runtime', 'dbrelease', 'pilot-markers', 'default-exclusions']) expect(loadPack(p).lines.length).toBeGreaterThan(0);
  });

  it('bad recipe and pack lines are errors naming file:line', () => {
    const dir = tmpDir();
    try {
      const bad = (name: string, text: string) => {
        fs.writeFileSync(path.join(dir, name), text);
        return path.join(dir, name);
      };
      const base = 'name x\nrepo r.ch\nversion ^(?<branch>[0-9]+)\\.[0-9]+$\nprojects P\narea {repo}/{branch}\nrelease {area}/{project}/{version}/{platform}\n';
      expect(() => parseRecipe(bad('a.recipe', base + 'colour blue\n'))).toThrow(/a\.recipe:7: unknown recipe key 'colour'/);
      expect(() => parseRecipe(bad('b.recipe', base.replace('(?<branch>', '(')))).toThrow(/b\.recipe:3: the version pattern needs a named group/);
      expect(() => parseRecipe(bad('c.recipe', base + 'packs x if colour=red\n'))).toThrow(/c\.recipe:7: condition 'colour=red'/);
      expect(() => parseRecipe(bad('d.recipe', base.replace('/{platform}', '')))).toThrow(/d\.recipe:6: the release path must end in \/\{platform\}/);
      expect(() => parsePack(bad('e.pack', '# about\ninclude a\nadd b\n'), 'e')).toThrow(/e\.pack:3: expected include, exclude or keep/);
      expect(() => parseRecipe(path.join(dir, 'absent.recipe'))).toThrow(InputError);
      expect(() => loadPack('no-such-pack')).toThrow(/rule pack 'no-such-pack' not found \(bundled packs: compiler-runtime, dbrelease, default-exclusions/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('templates: one result per value of a list variable, none for an empty one; {a,b} is left to the glob', () => {
    expect(expandTemplate('{chain}/lib{a,b}.so', { chain: ['x', 'y'] }, 'o')).toEqual(['x/lib{a,b}.so', 'y/lib{a,b}.so']);
    expect(expandTemplate('{dbrelease}/x', { dbrelease: [] }, 'o')).toEqual([]);
    expect(() => expandTemplate('{nope}', {}, 'p.pack:3')).toThrow(/p\.pack:3: unknown variable \{nope\}/);
  });

  it('release arguments: [PROJECT,]VERSION[,PLATFORM] or asetup\'s VERSION,PROJECT[,PLATFORM]', () => {
    const P = 'x86_64-slc6-gcc62-opt';
    expect(parseReleaseArg('21.2.75', 'o')).toEqual({ project: null, version: '21.2.75', platform: null, origin: 'o' });
    expect(parseReleaseArg('AnalysisBase,21.2.75', 'o')).toMatchObject({ project: 'AnalysisBase', platform: null });
    expect(parseReleaseArg('21.2.75,AnalysisBase', 'o')).toMatchObject({ project: 'AnalysisBase', platform: null });
    expect(parseReleaseArg(`AthAnalysis,21.2.75,${P}`, 'o')).toEqual({ project: 'AthAnalysis', version: '21.2.75', platform: P, origin: 'o' });
    expect(parseReleaseArg(`21.2.75,AthAnalysis,${P}`, 'o')).toMatchObject({ project: 'AthAnalysis', version: '21.2.75', platform: P });
    expect(parseReleaseArg(` 21.2.75 , ${P} , AthAnalysis `, 'o')).toMatchObject({ project: 'AthAnalysis', platform: P }); // the dashed field, wherever it is
    expect(parseReleaseArg(`21.2.75,${P}`, 'o')).toMatchObject({ project: null, platform: P }); // the project from --project
    expect(parseReleaseArg('P,1.0,plat', 'o')).toMatchObject({ project: 'P', platform: 'plat' }); // a recipe's platform without '-': the last of three
    for (const bad of ['', 'AnalysisBase', 'a,b,c,21.2', '21.2.75,21.2.76', 'x/y,21.2.75', `A,21.2.75,${P},x`, `21.2.75,${P},x86_64-centos7-gcc62-opt`, 'A,21.2.75,linux/amd64', 'A,,21.2.75', 'A B,21.2.75']) {
      expect(() => parseReleaseArg(bad, '--release'), bad).toThrow(/expected \[PROJECT,\]VERSION\[,PLATFORM\], e\.g\./);
    }
    expect(() => parseReleaseArg('A,21.2.75,linux/amd64', '--release')).toThrow(/--platform OS\/ARCH is the base image's/);
  });

  it('LCG_externals lines: header lines skipped, malformed package lines named', () => {
    expect(lcgPackages('PLATFORM: p\nCOMPILER: GNU;6.2.0\nROOT; abc12; 6.08.06; ./ROOT/6.08.06/p; Python-597a5\n', 'f')).toEqual([
      { name: 'ROOT', version: '6.08.06', path: './ROOT/6.08.06/p', line: 3 },
    ]);
    expect(() => lcgPackages('ROOT; abc12; 6.08.06\n', 'LCG_externals.txt')).toThrow(/LCG_externals\.txt:1: expected NAME; HASH; VERSION; PATH/);
  });
});

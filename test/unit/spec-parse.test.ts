import { describe, expect, it } from 'vitest';
import { fromText } from '../../src/model/bytes.js';
import { Diagnostics } from '../../src/model/diagnostics.js';
import { InputError } from '../../src/model/errors.js';
import { parseSpec, repoFromFileName } from '../../src/select/spec/parse.js';

const parse = (text: string, repo: string | null = 'r.ch', repos = ['r.ch', 'sft.cern.ch']) => {
  const diag = new Diagnostics();
  const rules = parseSpec(fromText(text), { file: 'x.spec', repo }, (r) => repos.includes(r), diag);
  return { rules: rules.map((r) => [r.kind, r.path, r.origin]), diag };
};

const error = (text: string, repo: string | null = 'r.ch') => {
  try {
    parse(text, repo);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error(`no error for ${JSON.stringify(text)}`);
};

describe('spec grammar (cvmfs_shrinkwrap spec_tree.cc)', () => {
  it('parses the four line kinds, comments and blank lines', () => {
    const { rules } = parse('# comment\n\n/a/b\n/c/*\n^/d/*\n!/e\n  /f  \n\t# indented comment\n');
    expect(rules).toEqual([
      ['exact', '/cvmfs/r.ch/a/b', 'x.spec:3'],
      ['recursive', '/cvmfs/r.ch/c', 'x.spec:4'],
      ['flat', '/cvmfs/r.ch/d', 'x.spec:5'],
      ['exclude', '/cvmfs/r.ch/e', 'x.spec:6'],
      ['exact', '/cvmfs/r.ch/f', 'x.spec:7'],
    ]);
  });

  it('reads ^path without a star as an exact line, and !path* as !path', () => {
    expect(parse('^/a\n!/b/*\n').rules).toEqual([
      ['exact', '/cvmfs/r.ch/a', 'x.spec:1'],
      ['exclude', '/cvmfs/r.ch/b', 'x.spec:2'],
    ]);
  });

  it('takes the repository root lines /*, ^/* and ^/', () => {
    expect(parse('/*\n^/*\n^/\n').rules.map((r) => [r[0], r[1]])).toEqual([
      ['recursive', '/cvmfs/r.ch'],
      ['flat', '/cvmfs/r.ch'],
      ['exact', '/cvmfs/r.ch'],
    ]);
  });

  it('parses CRLF files exactly like LF files', () => {
    const lf = parse('/a/*\n^/b/*\n!/a/x\n').rules;
    expect(parse('/a/*\r\n^/b/*\r\n!/a/x\r\n').rules).toEqual(lf);
  });

  it('ignores empty components and drops "." ones', () => {
    expect(parse('//a//b/\n/a/./c\n').rules.map((r) => r[1])).toEqual(['/cvmfs/r.ch/a/b', '/cvmfs/r.ch/a/c']);
  });

  it('treats only a final star as special, and warns when it is glued to a name', () => {
    const { rules, diag } = parse('/a/b*\n/a/*/c\n');
    expect(rules).toEqual([
      ['recursive', '/cvmfs/r.ch/a/b', 'x.spec:1'],
      ['exact', '/cvmfs/r.ch/a/*/c', 'x.spec:2'],
    ]);
    expect(diag.warnings.map((w) => w.kind)).toEqual(['spec-star', 'spec-star']);
    expect(diag.warnings[0]!.message).toMatch(/x\.spec:1: .*not names starting with 'b'/);
    expect(diag.warnings[1]!.message).toMatch(/x\.spec:2: .*literal/);
  });

  it('takes a trailing "# ..." literally, with a warning', () => {
    const { rules, diag } = parse('/a/b # the b dir\n');
    expect(rules).toEqual([['exact', '/cvmfs/r.ch/a/b # the b dir', 'x.spec:1']]);
    expect(diag.warnings).toHaveLength(1);
    expect(diag.warnings[0]!.message).toMatch(/^x\.spec:1: .*comments must be on a line of their own/);
  });

  it.each([
    ['lcg/x', 1, "must start with '/', '^' or '!'"],
    ['*', 1, "must start with '/', '^' or '!'"],
    ['/ok\n^', 2, "nothing after '^'"],
    ['!', 1, "nothing after '!'"],
    ['^*', 1, "no path after '^*'"],
    ['!*', 1, "no path after '!*'"],
    ['^a/*', 1, "must start with '/'"],
    ['/a/../b', 1, "'..' is not allowed"],
    ['/ok\n/ok2\n!/x/..', 3, "'..' is not allowed"],
  ])('rejects %j at its line', (text, line, why) => {
    const msg = error(text);
    expect(msg.startsWith(`x.spec:${line}: invalid spec line`)).toBe(true);
    expect(msg).toContain(why);
    expect(msg).not.toContain('\n');
  });

  it('accepts absolute /cvmfs/<fqrn>/ lines for repositories under the root', () => {
    expect(parse('/cvmfs/sft.cern.ch/lcg/*\n/lcg/x\n').rules.map((r) => r[1])).toEqual(['/cvmfs/sft.cern.ch/lcg', '/cvmfs/r.ch/lcg/x']);
    // Without a repository, only absolute lines are possible.
    expect(parse('/cvmfs/sft.cern.ch/lcg/*\n', null).rules.map((r) => r[1])).toEqual(['/cvmfs/sft.cern.ch/lcg']);
    expect(error('/lcg/*\n', null)).toMatch(/^x\.spec:1: .*repository is unknown/);
  });

  it('keeps non-UTF-8 bytes of a path as they are', () => {
    const diag = new Diagnostics();
    const text = Buffer.concat([Buffer.from('/a/'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]).toString('latin1');
    const rules = parseSpec(text, { file: 'x.spec', repo: 'r.ch' }, () => false, diag);
    expect(Buffer.from(rules[0]!.path, 'latin1')).toEqual(Buffer.concat([Buffer.from('/cvmfs/r.ch/a/'), Buffer.from([0xff, 0xfe])]));
  });

  it('names the repository from the spec file name', () => {
    expect(repoFromFileName('/x/atlas.cern.ch.spec')).toBe('atlas.cern.ch');
    expect(repoFromFileName('sft.cern.ch.spec.txt')).toBe('sft.cern.ch');
    expect(repoFromFileName('cvmfs-sft.cern.ch.spec.txt')).toBe('sft.cern.ch');
    expect(repoFromFileName('my.spec')).toBeNull();
    expect(repoFromFileName('atlas.cern.ch.txt')).toBeNull();
  });
});

// The import rule of docs/architecture.md, checked on the source: cli → compose → select / writers →
// sources / registry / verify → formats / codecs → model, util; nothing imports cli, writers never
// import select, and the floor (model, util) imports only itself.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

const SRC = path.join(REPO_ROOT, 'src');

/** Which top-level folders each folder may import (besides itself). */
const MAY_IMPORT: Record<string, string[]> = {
  cli: ['report', 'compose', 'select', 'writers', 'sources', 'registry', 'verify', 'formats', 'codecs', 'model', 'util'],
  report: ['compose', 'select', 'sources', 'formats', 'codecs', 'model', 'util'],
  compose: ['select', 'writers', 'sources', 'registry', 'formats', 'codecs', 'model', 'util'],
  select: ['sources', 'formats', 'model', 'util'],
  writers: ['sources', 'registry', 'formats', 'codecs', 'model', 'util'],
  verify: ['sources', 'formats', 'codecs', 'model', 'util'],
  sources: ['registry', 'formats', 'codecs', 'model', 'util'],
  registry: ['formats', 'model', 'util'],
  formats: ['model', 'util'],
  codecs: ['model', 'util'],
  model: ['util'],
  util: ['model'],
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? sourceFiles(p) : /\.c?ts$/.test(d.name) ? [p] : [];
  });
}

/** Every relative import of every source file, as [importing folder, imported path under src]. */
function imports(): Array<{ file: string; from: string; to: string }> {
  const out: Array<{ file: string; from: string; to: string }> = [];
  for (const file of sourceFiles(SRC)) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"`;]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      const to = path.relative(SRC, path.resolve(path.dirname(file), spec));
      out.push({ file: path.relative(SRC, file), from: path.relative(SRC, file).split(path.sep)[0]!, to });
    }
  }
  return out;
}

describe('imports follow the flow', () => {
  const all = imports();

  it('finds the imports it checks', () => {
    expect(all.length).toBeGreaterThan(300);
    expect(Object.keys(MAY_IMPORT).sort()).toEqual(fs.readdirSync(SRC).filter((d) => fs.statSync(path.join(SRC, d)).isDirectory()).sort());
  });

  it('each folder imports only the folders below it', () => {
    const wrong = all.filter(({ from, to }) => {
      const target = to.split(path.sep)[0]!;
      return target !== from && !(MAY_IMPORT[from] ?? []).includes(target);
    });
    expect(wrong.map((w) => `${w.file} imports ${w.to}`)).toEqual([]);
  });

  it('nothing imports cli; writers import no format from sources', () => {
    const wrong = all.filter(({ from, to }) => (from !== 'cli' && to.startsWith('cli' + path.sep)) || (from === 'writers' && /^sources\/[^/]+\/format/.test(to)));
    expect(wrong.map((w) => `${w.file} imports ${w.to}`)).toEqual([]);
  });
});

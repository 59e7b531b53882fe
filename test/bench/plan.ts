// Bench: `shrinkwrap plan` over a generated 1,000,000-entry tree against find(1) listing the same
// tree with type and size (`find ROOT -printf '%y %s %p\n'`). Targets (issue 2): at most 3x find's
// wall time, at most 1 GiB peak RSS. The same selection by `--include 'REPO/**'` against the spec
// line (issue 20: a glob with a literal prefix costs about what the spec line does), and a
// `REPO/**/*.so` glob, in the same run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeBigTree } from '../../fixtures/big-tree.js';
import { compare, summary } from './measure.js';

export interface PlanBenchOptions {
  work: string;
  cli: string;
  entries: number;
  reps: number;
}

export function benchPlan(o: PlanBenchOptions): string[] {
  const root = path.join(o.work, `tree-${o.entries}`);
  const stamp = path.join(o.work, `tree-${o.entries}.done`);
  if (!fs.existsSync(stamp)) {
    process.stderr.write(`generating ${o.entries} entries under ${root} (once; kept for later runs)\n`);
    fs.rmSync(root, { recursive: true, force: true });
    makeBigTree(root, { entries: o.entries });
    fs.writeFileSync(stamp, '');
  }
  // Both tools get the real path: find(1) does not follow a symlinked starting point.
  const real = fs.realpathSync(root);
  const repo = fs.readdirSync(real)[0]!;
  const spec = path.join(o.work, `${repo}.spec`);
  fs.writeFileSync(spec, '/*\n');
  const cmds = {
    find: ['find', real, '-printf', '%y %s %p\n'],
    'shrinkwrap plan': [process.execPath, o.cli, 'plan', '--cvmfs-root', real, '--spec', spec],
    'shrinkwrap plan --json': [process.execPath, o.cli, 'plan', '--json', '--cvmfs-root', real, '--spec', spec],
    [`shrinkwrap plan --include '${repo}/**'`]: [process.execPath, o.cli, 'plan', '--cvmfs-root', real, '--include', `${repo}/**`],
    [`shrinkwrap plan --include '${repo}/**/*.so'`]: [process.execPath, o.cli, 'plan', '--cvmfs-root', real, '--include', `${repo}/**/*.so`],
  };
  process.stderr.write('warming the page cache\n');
  compare({ find: cmds.find }, 1);
  const results = compare(cmds, o.reps);
  const find = summary(results['find']!);
  const rows = [
    `Tree: ${o.entries.toLocaleString('en')} entries (fixtures/big-tree.ts), spec \`/*\`, page cache warm, median of ${o.reps}.`,
    '',
    '| command | wall s | CPU s | peak RSS MiB | wall / find | wall / spec line | target |',
    '|---|---|---|---|---|---|---|',
  ];
  const specLine = summary(results['shrinkwrap plan']!);
  for (const [name, samples] of Object.entries(results)) {
    const s = summary(samples);
    const ratio = s.wall / find.wall;
    const target = name === 'find' ? '' : ratio <= 3 && s.rssMiB <= 1024 ? 'met (≤ 3×, ≤ 1 GiB)' : 'MISSED (≤ 3×, ≤ 1 GiB)';
    const vsSpec = name === 'find' ? '' : (s.wall / specLine.wall).toFixed(2);
    rows.push(`| \`${name}\` | ${s.wall.toFixed(2)} | ${s.cpu.toFixed(2)} | ${s.rssMiB.toFixed(0)} | ${name === 'find' ? '1.00' : ratio.toFixed(2)} | ${vsSpec} | ${target} |`);
  }
  return rows;
}

// Bench: `shrinkwrap merge` of three parts against mksquashfs of their union (the image one would
// otherwise build) and against `cat PARTS > /dev/null` (reading the parts once), gzip-6 and
// zstd-3, 128 KiB blocks, 2 processors, warm page cache, in the same run. Inputs: the squashfs
// bench's tree (squashfs.ts realisticTree) split into three parts made by mksquashfs
// -keep-as-directory. Goals (issue 22): merge ≤ 0.1× mksquashfs at gzip-6, ≤ 0.5× at zstd-3,
// ≤ 2× cat. The merged image's size is compared with the parts' total.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compare, summary } from './measure.js';
import { realisticTree } from './squashfs.js';

export interface MergeBenchOptions {
  work: string;
  cli: string;
  reps: number;
}

/** The three parts' sources: directories of the tree, each a <name>/ at its part's root. */
const SPLIT = [['x86_64-linux-gnu'], ['share'], ['include', 'python3.11', 'python3.11-copy']];

/** Read every file under `paths`, untimed, so that each run starts with a warm cache. */
function warm(paths: string[]): void {
  execFileSync('sh', ['-c', 'for p; do tar -cf - -C "$(dirname "$p")" "$(basename "$p")" | cat >/dev/null; done', 'warm', ...paths]);
}

export async function benchMerge(o: MergeBenchOptions): Promise<string[]> {
  const tree = realisticTree(o.work);
  const repo = path.join(tree.root, 'r.bench');
  const out = (name: string) => path.join(o.work, name);
  const rows = [
    `Input: the squashfs bench's tree (${(tree.bytes / 1e9).toFixed(2)} GB: ${SPLIT.map((s) => s.join(' + ')).join(' | ')}) as three parts made by \`mksquashfs DIR… PART -keep-as-directory\` at the same compressor, level and 128 KiB blocks (untimed). ` +
      `merge writes the three under one root (no base); mksquashfs writes the union from the directories (\`-processors 2 -no-xattrs\`); cat reads the parts. Warm cache (every input read, untimed, before each run), median of ${o.reps}.`,
    '',
    '| compressor | tool | wall s | CPU s | peak RSS MiB | image MB | compared with | time ratio | goal |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const sizes: string[] = [];
  for (const [codec, level, goal] of [
    ['gzip', '6', 0.1],
    ['zstd', '3', 0.5],
  ] as const) {
    const mk = (sources: string[], dest: string, extra: string[] = []) => [
      'mksquashfs', ...sources, dest, '-noappend', '-comp', codec, '-Xcompression-level', level, '-b', '128K', '-processors', '2', '-no-xattrs', '-quiet', '-no-progress', ...extra,
    ];
    const parts = SPLIT.map((dirs, i) => {
      const part = out(`merge-part${i + 1}-${codec}.sqfs`);
      if (!fs.existsSync(part)) {
        process.stderr.write(`making ${part} (once)\n`);
        const [cmd, ...args] = mk(dirs.map((d) => path.join(repo, d)), part + '.tmp', dirs.length === 1 ? ['-keep-as-directory'] : []);
        execFileSync(cmd!, args);
        fs.renameSync(part + '.tmp', part);
      }
      return part;
    });
    const merged = out(`merge-out-${codec}.sqfs`);
    const mergedSum = out(`merge-out-sum-${codec}.sqfs`);
    const union = out(`merge-union-${codec}.sqfs`);
    const tools: Record<string, { cmd: string[]; output?: string; against?: string; goal?: number }> = {
      'shrinkwrap merge --no-checksum': { cmd: [process.execPath, o.cli, 'merge', '-q', '--no-checksum', '-o', merged, ...parts], output: merged, against: 'mksquashfs (union)', goal },
      'shrinkwrap merge': { cmd: [process.execPath, o.cli, 'merge', '-q', '-o', mergedSum, ...parts], output: mergedSum, against: 'cat PARTS > /dev/null', goal: 2 },
      'mksquashfs (union)': { cmd: mk(SPLIT.flat().map((d) => path.join(repo, d)), union), output: union },
      'cat PARTS > /dev/null': { cmd: ['sh', '-c', 'cat "$@" > /dev/null', 'cat', ...parts] },
    };
    process.stderr.write(`merge ${codec}-${level}\n`);
    const before = (tool: string): void => {
      const t = tools[tool]!;
      if (t.output) {
        fs.rmSync(t.output, { force: true });
        fs.rmSync(`${t.output}.sha256`, { force: true });
      }
      warm(tool.startsWith('mksquashfs') ? SPLIT.flat().map((d) => path.join(repo, d)) : parts);
    };
    const res = compare(Object.fromEntries(Object.entries(tools).map(([k, t]) => [k, t.cmd])), o.reps, { before });
    // The --no-checksum merge against cat too: merging costs a copy of the parts.
    const catWall = summary(res['cat PARTS > /dev/null']!).wall;
    for (const [tool, t] of Object.entries(tools)) {
      const r = summary(res[tool]!);
      const size = t.output ? `${(fs.statSync(t.output).size / 1e6).toFixed(1)}` : '';
      let ratio = ' | ';
      if (t.against) {
        const x = r.wall / summary(res[t.against]!).wall;
        ratio = `${x.toFixed(3)} | ≤ ${t.goal} ${x <= t.goal! ? 'met' : 'MISSED'}`;
      }
      rows.push(`| ${codec}-${level} | ${tool} | ${r.wall.toFixed(2)} | ${r.cpu.toFixed(1)} | ${r.rssMiB.toFixed(0)} | ${size} | ${t.against ?? ''} | ${ratio} |`);
    }
    const bare = summary(res['shrinkwrap merge --no-checksum']!).wall;
    rows.push(`| ${codec}-${level} | shrinkwrap merge --no-checksum | | | | | cat PARTS > /dev/null | ${(bare / catWall).toFixed(3)} | ≤ 2 ${bare / catWall <= 2 ? 'met' : 'MISSED'} |`);
    const partsTotal = parts.reduce((s, p) => s + fs.statSync(p).size, 0);
    const mergedSize = fs.statSync(merged).size;
    sizes.push(
      `${codec}-${level}: parts ${(partsTotal / 1e6).toFixed(1)} MB in all, merged ${(mergedSize / 1e6).toFixed(1)} MB (${(mergedSize / partsTotal).toFixed(3)}×), mksquashfs of the union ${(fs.statSync(union).size / 1e6).toFixed(1)} MB.`,
    );
    for (const t of Object.values(tools)) {
      if (!t.output) continue;
      fs.rmSync(t.output, { force: true });
      fs.rmSync(`${t.output}.sha256`, { force: true });
    }
  }
  return [...rows, '', ...sizes];
}

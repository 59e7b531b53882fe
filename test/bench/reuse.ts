// Bench: `build --reuse PREVIOUS` after 2 % of the files changed, against a full build of the same
// tree, gzip-6, 128 KiB blocks, warm page cache, in the same run. Input: the squashfs bench's tree
// (squashfs.ts realisticTree), copied once to <work>/reuse-tree with every 50th file (in path
// order) appended to (content and time change); the previous image is a build of the original tree
// (untimed). Goal (issue 22): --reuse ≤ 0.2× the full build's time.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compare, summary } from './measure.js';
import { realisticTree } from './squashfs.js';

export interface ReuseBenchOptions {
  work: string;
  cli: string;
  reps: number;
}

/** One file in this many is changed. */
const EVERY = 50;

/** Every regular file under `root`, in byte order of their relative paths. */
function filesOf(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (d.isFile()) out.push(p);
    }
  };
  walk(root);
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The changed copy, made once: <work>/reuse-tree, and how many files it changed. */
function changedTree(work: string, original: string): { root: string; changed: number; files: number } {
  const root = path.join(work, 'reuse-tree');
  const stamp = path.join(work, 'reuse-tree.done');
  if (!fs.existsSync(stamp)) {
    process.stderr.write(`copying ${original} to ${root}, changing one file in ${EVERY} (once)\n`);
    fs.rmSync(root, { recursive: true, force: true });
    execFileSync('cp', ['-a', original, root]);
    const files = filesOf(root);
    let changed = 0;
    for (let i = EVERY - 1; i < files.length; i += EVERY) {
      fs.appendFileSync(files[i]!, 'changed\n');
      changed++;
    }
    fs.writeFileSync(stamp, `${changed} ${files.length}\n`);
  }
  const [changed, files] = fs.readFileSync(stamp, 'utf8').trim().split(' ').map(Number);
  return { root, changed: changed!, files: files! };
}

export async function benchReuse(o: ReuseBenchOptions): Promise<string[]> {
  const tree = realisticTree(o.work);
  const after = changedTree(o.work, tree.root);
  const spec = path.join(o.work, 'r.bench.spec');
  fs.writeFileSync(spec, '/*\n');
  const out = (name: string) => path.join(o.work, name);
  const sw = (root: string) => [process.execPath, o.cli, '--cvmfs-root', root, '--spec', spec, '--force', '-q', '--compression', 'gzip', '--level', '6', '--block-size', '128K', '--no-checksum'];
  const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };
  const previous = out('reuse-previous.sqfs');
  process.stderr.write(`building ${previous} from ${tree.root} (untimed)\n`);
  execFileSync(sw(tree.root)[0]!, [...sw(tree.root).slice(1), '-o', previous], { env });
  const tools: Record<string, { cmd: string[]; output: string }> = {
    'shrinkwrap (full build)': { cmd: [...sw(after.root), '-o', out('reuse-full.sqfs')], output: out('reuse-full.sqfs') },
    'shrinkwrap --reuse PREVIOUS': { cmd: [...sw(after.root), '-o', out('reuse-reused.sqfs'), '--reuse', previous], output: out('reuse-reused.sqfs') },
  };
  const before = (tool: string): void => {
    fs.rmSync(tools[tool]!.output, { force: true });
    execFileSync('sh', ['-c', 'tar -cf - -C "$1" . | cat >/dev/null; cat "$2" >/dev/null', 'warm', after.root, previous]);
  };
  process.stderr.write('reuse gzip-6\n');
  const res = compare(
    Object.fromEntries(Object.entries(tools).map(([k, t]) => [k, ['env', 'SOURCE_DATE_EPOCH=1700000000', ...t.cmd]])),
    o.reps,
    { before },
  );
  // What the --reuse build took, from its JSON report (untimed).
  const report = JSON.parse(execFileSync(process.execPath, [...sw(after.root).slice(1), '-o', out('reuse-json.sqfs'), '--reuse', previous, '--json'], { env, encoding: 'utf8' })) as {
    reused: { files: number; bytes: number };
  };
  const full = summary(res['shrinkwrap (full build)']!);
  const rows = [
    `Input: the squashfs bench's tree (${(tree.bytes / 1e9).toFixed(2)} GB, ${after.files.toLocaleString('en-US')} files); a copy with ${after.changed.toLocaleString('en-US')} of them (one in ${EVERY}, ${((100 * after.changed) / after.files).toFixed(1)} %) appended to. ` +
      `PREVIOUS: shrinkwrap's build of the original tree (untimed). Both builds read the changed copy; gzip-6, 128 KiB blocks, --no-checksum, SOURCE_DATE_EPOCH set, warm cache (the tree and PREVIOUS read, untimed, before each run), median of ${o.reps}.`,
    '',
    '| tool | wall s | CPU s | peak RSS MiB | image MB | time ratio | goal |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [tool, t] of Object.entries(tools)) {
    const r = summary(res[tool]!);
    const size = (fs.statSync(t.output).size / 1e6).toFixed(1);
    const ratio = tool.includes('--reuse') ? `${(r.wall / full.wall).toFixed(3)} | ≤ 0.2 ${r.wall / full.wall <= 0.2 ? 'met' : 'MISSED'}` : ' | ';
    rows.push(`| ${tool} | ${r.wall.toFixed(2)} | ${r.cpu.toFixed(1)} | ${r.rssMiB.toFixed(0)} | ${size} | ${ratio} |`);
  }
  const sizes = [fs.statSync(tools['shrinkwrap --reuse PREVIOUS']!.output).size, fs.statSync(tools['shrinkwrap (full build)']!.output).size];
  rows.push(
    '',
    `--reuse took ${report.reused.files.toLocaleString('en-US')} files (${(report.reused.bytes / 1e9).toFixed(2)} GB) from PREVIOUS; its image is ${(sizes[0]! / sizes[1]!).toFixed(4)}× the full build's size (the tails of changed files left in the fragment blocks it copied).`,
  );
  for (const f of [...Object.values(tools).map((t) => t.output), out('reuse-json.sqfs'), previous]) fs.rmSync(f, { force: true });
  return rows;
}

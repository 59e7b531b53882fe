// Bench: `--format sif` against `--format squashfs` for the same build, in the same run (issue 21:
// within 2 %; the container should cost nothing). The squashfs bench's tree of real content
// (/cvmfs), on the example's base root filesystem (fixtures/base-rootfs.ts), gzip and threads at
// their defaults, the default .sha256 for both. The SIF's partition is streamed while the
// selection runs, then its few KiB of objects and its header are written: the same image, plus a
// header, two objects and the room kept for them. Checked after the runs (if siftool is on PATH):
// `siftool dump <partition id>` of the SIF equals the .sqfs byte for byte.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureExample } from '../../fixtures/example.js';
import { compare, median, summary } from './measure.js';
import { realisticTree } from './squashfs.js';

export interface SifBenchOptions {
  work: string;
  cli: string;
  reps: number;
}

/** Read every file under `root`, untimed, so that each run starts with the tree in the page cache. */
function warm(root: string): void {
  execFileSync('sh', ['-c', 'tar -cf - -C "$1" . | cat >/dev/null', 'warm', root]);
}

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'which', cmd], { stdio: 'ignore' }).status === 0;
}

/** The id of the SIF's system partition, from `siftool list` (the row whose type is `FS (…System…)`). */
function partitionId(sif: string): string {
  const listing = execFileSync('siftool', ['list', sif], { encoding: 'utf8' });
  const row = listing.split('\n').find((l) => /\|\s*FS \(.*System/.test(l));
  if (!row) throw new Error(`siftool list ${sif}: no system partition\n${listing}`);
  return row.split('|')[0]!.trim();
}

export async function benchSif(o: SifBenchOptions): Promise<string[]> {
  const reps = Math.max(o.reps, 5);
  const example = await ensureExample();
  const big = realisticTree(o.work);
  const spec = path.join(o.work, 'r.bench.spec');
  fs.writeFileSync(spec, '/*\n');
  const out = (ext: string) => path.join(o.work, `sif-bench.${ext}`);
  // A fixed SOURCE_DATE_EPOCH: without it the image holds the build's time (provenance, superblock),
  // and two builds seconds apart differ in those bytes.
  const node = ['env', 'SOURCE_DATE_EPOCH=1700000000', process.execPath, o.cli];
  const common = ['--cvmfs-root', big.root, '--spec', spec, '--base', example.base, '--force', '-q'];
  const tools: Record<string, { cmd: string[]; output: string }> = {
    squashfs: { cmd: [...node, ...common, '--format', 'squashfs', '-o', out('sqfs')], output: out('sqfs') },
    sif: { cmd: [...node, ...common, '--format', 'sif', '-o', out('sif')], output: out('sif') },
  };
  // Each run writes a new file after the tree is read into the page cache (see compare()).
  const before = (tool: string): void => {
    fs.rmSync(tools[tool]!.output, { force: true });
    fs.rmSync(`${tools[tool]!.output}.sha256`, { force: true });
    warm(big.root);
  };
  // The last run of each is kept for the partition check below.
  const res = compare(
    Object.fromEntries(Object.entries(tools).map(([k, t]) => [k, t.cmd])),
    reps,
    { before },
  );
  const s = summary(res['squashfs']!);
  const f = summary(res['sif']!);
  const sqfsBytes = fs.statSync(tools['squashfs']!.output).size;
  const sifBytes = fs.statSync(tools['sif']!.output).size;
  const ratio = f.wall / s.wall;
  const cpuRatio = f.cpu / s.cpu;
  // Paired: the two runs of a round are adjacent, so a load that drifts over minutes (other jobs on
  // this shared VM) hits both alike; the median of the rounds' ratios.
  const paired = median(res['sif']!.map((x, i) => x.wall / res['squashfs']![i]!.wall));
  const rssMedian = (xs: { maxRssKiB: number }[]) => median(xs.map((x) => x.maxRssKiB)) / 1024;

  let check = 'not checked: siftool is not on PATH';
  if (onPath('siftool')) {
    const id = partitionId(tools['sif']!.output);
    const cmp = spawnSync('sh', ['-c', 'siftool dump "$1" "$2" | cmp - "$3"', 'check', id, tools['sif']!.output, tools['squashfs']!.output], { encoding: 'utf8' });
    check =
      cmp.status === 0
        ? `\`siftool dump ${id} SIF | cmp - SQFS\`: identical (${sqfsBytes} bytes)`
        : `\`siftool dump ${id} SIF | cmp - SQFS\`: DIFFERENT (${(cmp.stdout + cmp.stderr).trim()})`;
    if (cmp.status !== 0) process.exitCode = 1;
  }
  process.stderr.write(`partition check: ${check}\n`);

  const rows = [
    `Input: ${(big.bytes / 1e9).toFixed(2)} GB of real content (the squashfs bench's tree) under \`/cvmfs\` of the example's base root filesystem (\`--base ${example.base}\`). Page cache warm, gzip and threads at their defaults, \`.sha256\` written (the default); ${reps} rounds, the two formats alternating and each round starting with the other; median wall and CPU, peak RSS as the median of the runs' peaks (max in brackets).`,
    '',
    `Command: \`${['SOURCE_DATE_EPOCH=1700000000', 'node', ...tools['sif']!.cmd.slice(3)].join(' ')}\` (and \`--format squashfs -o ${out('sqfs')}\`)`,
    '',
    '| format | wall s | runs s | CPU s | peak RSS MiB | output bytes | wall / squashfs | CPU / squashfs | target |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, r, bytes] of [
    ['squashfs', s, sqfsBytes],
    ['sif', f, sifBytes],
  ] as const) {
    const mine = name === 'sif';
    const runs = res[name]!.map((x) => x.wall.toFixed(2)).join(', ');
    rows.push(
      `| ${name} | ${r.wall.toFixed(2)} | ${runs} | ${r.cpu.toFixed(1)} | ${rssMedian(res[name]!).toFixed(0)} (${r.rssMiB.toFixed(0)}) | ${bytes} | ${mine ? ratio.toFixed(3) : '1.000'} | ${mine ? cpuRatio.toFixed(3) : '1.000'} | ${mine ? (ratio <= 1.02 ? 'met (≤ 1.02)' : 'MISSED (≤ 1.02)') : ''} |`,
    );
  }
  rows.push('', `Median of the rounds' sif / squashfs wall ratios: ${paired.toFixed(3)}. SIF − SquashFS: ${sifBytes - sqfsBytes} bytes. Partition: ${check}.`);
  for (const t of Object.values(tools)) {
    fs.rmSync(t.output, { force: true });
    fs.rmSync(`${t.output}.sha256`, { force: true });
  }
  return rows;
}

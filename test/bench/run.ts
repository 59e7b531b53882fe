// npm run bench [-- SUITE...]: speed and memory against the reference tools, in the same run.
// Prints Markdown for docs/benchmarks.md. Environment: BENCH_DIR (work directory, default
// ./bench-out), BENCH_REPS (default 3), BENCH_PLAN_ENTRIES (default 1000000), BENCH_REPORT_ENTRIES (default 2000000), BENCH_SCALE_SIZES and
// BENCH_SCALE_CELLS (scale: sizes, and parts of cell names to run, e.g. "zstd,plan"),
// BENCH_SQUASHFS_ONLY (squashfs: the cases whose "input cache codec" contains it, e.g. "big warm zstd").
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireGnuTime } from './measure.js';
import { benchCvmfsHttp } from './cvmfs-http.js';
import { benchLayer } from './layer.js';
import { benchMerge } from './merge.js';
import { benchPlan } from './plan.js';
import { benchReport } from './report.js';
import { benchReuse } from './reuse.js';
import { benchScale } from './scale.js';
import { benchSif } from './sif.js';
import { benchSquashfs } from './squashfs.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = path.join(repoRoot, 'dist/src/cli/shrinkwrap.cjs');
const work = path.resolve(process.env['BENCH_DIR'] ?? path.join(repoRoot, 'bench-out'));
const reps = Number(process.env['BENCH_REPS'] ?? 3);

const suites: Record<string, () => string[] | Promise<string[]>> = {
  plan: () => benchPlan({ work, cli, entries: Number(process.env['BENCH_PLAN_ENTRIES'] ?? 1_000_000), reps }),
  squashfs: () => benchSquashfs({ work, cli, repoRoot, reps }),
  layer: () => benchLayer({ work, cli, reps }),
  // shrinkwrap merge of three parts against mksquashfs of their union and cat of the parts (issue 22).
  merge: () => benchMerge({ work, cli, reps }),
  // build --reuse after 2 % of the files changed, against a full build (issue 22).
  reuse: () => benchReuse({ work, cli, reps }),
  // The HTML report of a synthetic plan (BENCH_REPORT_ENTRIES, default 2000000).
  report: () => benchReport({ work, cli, entries: Number(process.env['BENCH_REPORT_ENTRIES'] ?? 2_000_000), reps }),
  // At least 5 rounds whatever BENCH_REPS says (issue 21: within 2 %).
  sif: () => benchSif({ work, cli, reps }),
  // Not in the default set: ~25 minutes, most of it the serial build (BENCH_CVMFS_SERIAL_REPS, default 1).
  'cvmfs-http': () => benchCvmfsHttp({ work, cli, repoRoot, reps, serialReps: Number(process.env['BENCH_CVMFS_SERIAL_REPS'] ?? 1) }),
  // Not in the default set: tens of minutes and ~30 GB of disk.
  scale: () => benchScale({ work, cli, sizes: (process.env['BENCH_SCALE_SIZES'] ?? '500000,1000000,2000000').split(',').map(Number) }),
};

async function main(): Promise<void> {
  requireGnuTime();
  const chosen = process.argv.slice(2);
  for (const name of chosen) if (!suites[name]) throw new Error(`unknown suite ${name}; suites: ${Object.keys(suites).join(', ')}`);
  fs.mkdirSync(work, { recursive: true });
  const cpus = os.cpus();
  console.log(`Machine: ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`);
  for (const name of chosen.length > 0 ? chosen : Object.keys(suites).filter((s) => s !== 'scale' && s !== 'cvmfs-http')) {
    console.log(`\n### ${name}\n`);
    console.log((await suites[name]!()).join('\n'));
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});

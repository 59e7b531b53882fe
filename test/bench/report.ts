// Bench (issue 23): the HTML report of a 2,000,000-entry plan. A synthetic plan document shaped
// like a release (releases → packages → directories → files, log-normal sizes, reasons of every
// kind) is written once; then (1) in-process, what `plan --html` adds to a plan it already holds
// (the model and the page), and (2) `shrinkwrap report PLAN.json` end to end (reading 2,000,000
// JSON lines too). Targets: the page under 20 MB, built in under 10 % of the plan's time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { display } from '../../src/model/bytes.js';
import { renderHtml } from '../../src/report/html.js';
import { planReport } from '../../src/report/model.js';
import { parsePlanDocument } from '../../src/report/read.js';
import { measure } from './measure.js';

export interface ReportBenchOptions {
  work: string;
  cli: string;
  entries: number;
  reps: number;
}

/** A deterministic generator (xorshift32): the same plan every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

const REASONS = [
  'release Bench 1.0.0 (--release Bench,1.0.0)',
  'base project BenchExternals 1.0.0 of Bench 1.0.0: its setup.sh',
  'pack compiler-runtime for Bench 1.0.0 (specs/packs/compiler-runtime.pack:2): the runtime',
  'specs/bench.spec:3 tree /cvmfs/sw.bench/extra/*',
  'ELF closure: libz.so.1 needed by /cvmfs/sw.bench/bin/x',
  'symlink closure: target of /cvmfs/sw.bench/latest',
];

/** Write a plan document of `n` entries as `plan --json` lays it out. */
export function writeSyntheticPlan(file: string, n: number): void {
  const random = rng(23);
  const fd = fs.openSync(file, 'w');
  const lines: string[] = [];
  const flush = () => {
    fs.writeSync(fd, lines.join(''));
    lines.length = 0;
  };
  let count = 0;
  const emit = (p: string, type: string, size: number, reason: string) => {
    lines.push(`${count === 0 ? '' : ',\n'}{"path":${JSON.stringify(p)},"type":"${type}","size":${size},"mode":${type === 'dir' ? 493 : 420},"uid":0,"gid":0,"mtime":1557878400,"reason":${JSON.stringify(reason)}}`);
    count++;
    if (lines.length >= 10000) flush();
  };
  fs.writeSync(fd, '{"entries":[\n');
  emit('/cvmfs/sw.bench', 'dir', 0, 'ancestor of specs/bench.spec:3');
  for (let part = 0; count < n; part++) {
    const reason = REASONS[part % REASONS.length]!;
    const top = `/cvmfs/sw.bench/p${String(part).padStart(3, '0')}`;
    emit(top, 'dir', 0, reason);
    for (let pkg = 0; pkg < 40 && count < n; pkg++) {
      const pdir = `${top}/package-${String(pkg).padStart(2, '0')}`;
      emit(pdir, 'dir', 0, reason);
      for (let d = 0; d < 25 && count < n; d++) {
        const dir = `${pdir}/dir${String(d).padStart(2, '0')}`;
        emit(dir, 'dir', 0, reason);
        for (let f = 0; f < 40 && count < n; f++) {
          // Log-normal around 2 KiB, capped at 64 MiB.
          const u = Math.max(1e-9, random());
          const v = random();
          const size = Math.min(64 << 20, Math.round(2048 * Math.exp(1.6 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v))));
          emit(`${dir}/file-${String(f).padStart(2, '0')}.dat`, f % 17 === 16 ? 'symlink' : 'file', size, reason);
        }
      }
    }
  }
  flush();
  fs.writeSync(fd, `\n],\n"summary":{"entries":${count},"warnings":[]}}\n`);
  fs.closeSync(fd);
}

function* fileChunks(file: string): Generator<Buffer> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let k = fs.readSync(fd, buf); k > 0; k = fs.readSync(fd, buf)) yield Buffer.from(buf.subarray(0, k));
  } finally {
    fs.closeSync(fd);
  }
}

export function benchReport(o: ReportBenchOptions): string[] {
  const plan = path.join(o.work, `report-plan-${o.entries}.json`);
  if (!fs.existsSync(plan)) {
    process.stderr.write(`writing a ${o.entries}-entry plan to ${plan} (once)\n`);
    writeSyntheticPlan(plan + '.tmp', o.entries);
    fs.renameSync(plan + '.tmp', plan);
  }
  const rows = [
    `Plan: a synthetic ${o.entries.toLocaleString('en-US')}-entry plan document (test/bench/report.ts, ${(fs.statSync(plan).size / 1e6).toFixed(0)} MB), ${o.reps} runs, median.`,
    '',
    '| step | wall s | page MB | nodes in the page | peak RSS MiB |',
    '|---|---|---|---|---|',
  ];
  const loaded = parsePlanDocument(fileChunks(plan), plan);
  const times: number[] = [];
  let html = '';
  let nodes = 0;
  for (let r = 0; r < o.reps; r++) {
    const t0 = process.hrtime.bigint();
    // As `plan --html` calls it (report/index.ts payloadReport): paths through display(), in path order.
    const model = planReport({ title: 'bench', entries: loaded.entries, text: display, sorted: true, summary: loaded.summary, warnings: loaded.warnings });
    html = renderHtml(model);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    nodes = model.tree.name.length;
  }
  times.sort((a, b) => a - b);
  const mb = Buffer.byteLength(html) / 1e6;
  rows.push(`| model and page from the entries in memory (what \`plan --html\` adds) | ${times[times.length >> 1]!.toFixed(2)} | ${mb.toFixed(1)} | ${nodes.toLocaleString('en-US')} | |`);
  const out = path.join(o.work, 'report.html');
  const cli: number[] = [];
  let rss = 0;
  for (let r = 0; r < o.reps; r++) {
    const s = measure([process.execPath, o.cli, 'report', plan, '-o', out, '-q']);
    cli.push(s.wall);
    rss = Math.max(rss, s.maxRssKiB);
  }
  cli.sort((a, b) => a - b);
  rows.push(`| \`shrinkwrap report PLAN.json\` (reading the document too) | ${cli[cli.length >> 1]!.toFixed(2)} | ${(fs.statSync(out).size / 1e6).toFixed(1)} | | ${(rss / 1024).toFixed(0)} |`);
  return rows;
}

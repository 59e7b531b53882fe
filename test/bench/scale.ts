// Bench (issue 6): end to end at release scale. Generated trees of three sizes (the largest
// 2,000,000 entries and ≥ 10 GB: many small text files, some large ones; fixtures/big-tree.ts
// 'realistic'), and for each: `plan`, `build` to squashfs (gzip-6 and zstd-3) and to OCI (gzip-6),
// against the cvmfs_shrinkwrap route on the same machine in the same run: copy the selection to a
// staging directory (`cp -a`), then `mksquashfs STAGING OUT -processors 2` at the same compressor
// and level. One run per cell (a cell of the largest size takes minutes). Every cell starts with
// an empty page cache where we may drop it (root): otherwise whichever route runs second reads a
// tree the first one just cached, and at 2,000,000 entries tree, staging copy and image do not fit
// in memory together anyway.
// Targets: ≥ 1.3× faster than the staging route with gzip, ≥ 2× with zstd, no staging bytes,
// peak RSS < 1 GiB, time linear in bytes and entries.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeBigTree } from '../../fixtures/big-tree.js';
import { dropCaches, measure } from './measure.js';

export interface ScaleBenchOptions {
  work: string;
  cli: string;
  /** Entries of each tree, smallest first. */
  sizes: number[];
}

function du(p: string): number {
  return Number(execFileSync('du', ['-sb', '--apparent-size', p], { encoding: 'utf8' }).split('\t')[0]);
}

export function benchScale(o: ScaleBenchOptions): string[] {
  const cold = dropCaches();
  const rows = [
    `Trees: fixtures/big-tree.ts \`realistic\` (log-normal file sizes around 2 KiB, up to 1 MiB), spec \`/*\`. One run per cell, ${cold ? 'each starting with an empty page cache (drop_caches)' : 'page cache as it comes (not root: cannot drop it)'}.`,
    '',
    '| entries | GB | command | wall s | CPU s | peak RSS MiB | output GB | staging GB | vs staging route | target |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const entries of o.sizes) {
    const root = path.join(o.work, `scale-${entries}`);
    const stamp = `${root}.done`;
    if (!fs.existsSync(stamp)) {
      process.stderr.write(`generating ${entries} entries under ${root} (once)\n`);
      fs.rmSync(root, { recursive: true, force: true });
      makeBigTree(root, { entries, fileBytes: 'realistic', seed: 6 });
      fs.writeFileSync(stamp, '');
    }
    const repo = fs.readdirSync(root)[0]!;
    const spec = path.join(o.work, `${repo}.spec`);
    fs.writeFileSync(spec, '/*\n');
    const bytes = du(root);
    const gb = (bytes / 1e9).toFixed(2);
    const out = path.join(o.work, 'scale-out');
    const staging = path.join(o.work, 'scale-staging');
    const clean = () => {
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(staging, { recursive: true, force: true });
    };
    const sw = (args: string[]) => [process.execPath, o.cli, '--cvmfs-root', root, '--spec', spec, '-q', '--force', ...(args.includes('--format') ? [] : ['--format', 'squashfs']), ...args];
    const cells: Array<{ name: string; cmd: string[]; compare?: string; target?: number }> = [
      { name: 'shrinkwrap plan', cmd: ['sh', '-c', `'${process.execPath}' '${o.cli}' plan --cvmfs-root '${root}' --spec '${spec}' > /dev/null`] },
      { name: 'shrinkwrap squashfs gzip-6', cmd: sw(['-o', out, '--compression', 'gzip', '--level', '6']), compare: 'staging + mksquashfs gzip-6', target: 1.3 },
      { name: 'staging + mksquashfs gzip-6', cmd: ['sh', '-c', `cp -a '${root}' '${staging}' && mksquashfs '${staging}' '${out}' -noappend -comp gzip -Xcompression-level 6 -b 128K -processors 2 -no-xattrs -quiet -no-progress`] },
      { name: 'shrinkwrap squashfs zstd-3', cmd: sw(['-o', out, '--compression', 'zstd', '--level', '3']), compare: 'staging + mksquashfs zstd-3', target: 2 },
      { name: 'staging + mksquashfs zstd-3', cmd: ['sh', '-c', `cp -a '${root}' '${staging}' && mksquashfs '${staging}' '${out}' -noappend -comp zstd -Xcompression-level 3 -b 128K -processors 2 -no-xattrs -quiet -no-progress`] },
      { name: 'shrinkwrap oci gzip-6', cmd: sw(['--format', 'oci', '-o', out, '--compression', 'gzip', '--level', '6']) },
    ];
    // BENCH_SCALE_CELLS: comma-separated parts of cell names to run (e.g. "zstd,plan"); default all.
    const only = (process.env['BENCH_SCALE_CELLS'] ?? '').split(',').filter(Boolean);
    if (only.length > 0) cells.splice(0, cells.length, ...cells.filter((c) => only.some((part) => c.name.includes(part))));
    const results = new Map<string, { wall: number; cpu: number; rss: number; outBytes: number; stagingBytes: number }>();
    for (const c of cells) {
      clean();
      if (cold) dropCaches();
      process.stderr.write(`${entries} entries: ${c.name}\n`);
      const s = measure(c.cmd);
      const outBytes = fs.existsSync(out) ? du(out) : 0;
      const stagingBytes = fs.existsSync(staging) ? du(staging) : 0;
      results.set(c.name, { wall: s.wall, cpu: s.user + s.sys, rss: s.maxRssKiB / 1024, outBytes, stagingBytes });
      process.stderr.write(`  ${s.wall.toFixed(1)} s, ${(s.maxRssKiB / 1024).toFixed(0)} MiB\n`);
    }
    clean();
    const firstRow = rows.length;
    for (const c of cells) {
      const r = results.get(c.name)!;
      const ref = c.compare ? results.get(c.compare) : undefined;
      const speedup = ref ? ref.wall / r.wall : undefined;
      const met = c.target === undefined ? (c.name.startsWith('shrinkwrap') ? (r.rss < 1024 ? 'RSS met' : 'RSS MISSED') : '') : speedup! >= c.target && r.rss < 1024 ? `met (≥ ${c.target}×)` : `MISSED (≥ ${c.target}×)`;
      rows.push(
        `| ${entries.toLocaleString('en')} | ${gb} | ${c.name} | ${r.wall.toFixed(1)} | ${r.cpu.toFixed(1)} | ${r.rss.toFixed(0)} | ${(r.outBytes / 1e9).toFixed(2)} | ${(r.stagingBytes / 1e9).toFixed(2)} | ${speedup ? speedup.toFixed(2) + '× faster' : ''} | ${met} |`,
      );
    }
    // A size's rows as soon as they exist: a run of the largest size is long, and may be stopped.
    process.stderr.write(rows.slice(firstRow).join('\n') + '\n');
  }
  return rows;
}

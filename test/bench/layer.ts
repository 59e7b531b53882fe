// Bench: shrinkwrap's OCI layer writer against `tar -c --sort=name SRC | gzip -6` on the same tree,
// in the same run (issue 5 target: at least as fast). shrinkwrap's figure is a whole
// `build --format oci` (selection walk, tar stream, compression, digests, layout), not the writer
// alone: the comparison an operator makes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compare, summary } from './measure.js';
import { realisticTree } from './squashfs.js';

export interface LayerBenchOptions {
  work: string;
  cli: string;
  reps: number;
}

export function benchLayer(o: LayerBenchOptions): string[] {
  const big = realisticTree(o.work);
  const spec = path.join(o.work, 'r.bench.spec');
  fs.writeFileSync(spec, '/*\n');
  const ours = path.join(o.work, 'layer-oci');
  const theirs = path.join(o.work, 'layer-tar.tar.gz');
  const rows = [
    `Input: ${(big.bytes / 1e9).toFixed(2)} GB of real content (the squashfs bench's tree). Page cache warm, gzip level 6, median of ${o.reps}; MB/s = input bytes / wall time.`,
    '',
    '| tool | wall s | MB/s | CPU s | peak RSS MiB | layer MB | time ratio | size ratio | target |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const cmds = {
    shrinkwrap: ['sh', '-c', `rm -rf '${ours}' && exec '${process.execPath}' '${o.cli}' --cvmfs-root '${big.root}' --spec '${spec}' --format oci -o '${ours}' -q --compression gzip --level 6 --no-default-mountpoints`],
    'tar | gzip -6': ['sh', '-c', `tar -C '${big.root}' -c --sort=name --numeric-owner . | gzip -6 > '${theirs}'`],
  };
  const res = compare(cmds, o.reps);
  const s = summary(res['shrinkwrap']!);
  const t = summary(res['tar | gzip -6']!);
  const blobs = path.join(ours, 'blobs/sha256');
  const layerBytes = Math.max(...fs.readdirSync(blobs).map((b) => fs.statSync(path.join(blobs, b)).size));
  const tarBytes = fs.statSync(theirs).size;
  const timeRatio = s.wall / t.wall;
  const sizeRatio = layerBytes / tarBytes;
  for (const [tool, r, size] of [
    ['shrinkwrap', s, layerBytes],
    ['tar | gzip -6', t, tarBytes],
  ] as const) {
    const mine = tool === 'shrinkwrap';
    rows.push(
      `| ${tool.replace('|', '\\|')} | ${r.wall.toFixed(2)} | ${(big.bytes / 1e6 / r.wall).toFixed(1)} | ${r.cpu.toFixed(1)} | ${r.rssMiB.toFixed(0)} | ${(size / 1e6).toFixed(1)} | ${mine ? timeRatio.toFixed(2) : '1.00'} | ${mine ? sizeRatio.toFixed(3) : '1.000'} | ${mine ? (timeRatio <= 1 ? 'met' : 'MISSED') : ''} |`,
    );
  }
  fs.rmSync(ours, { recursive: true, force: true });
  fs.rmSync(theirs, { force: true });
  return rows;
}

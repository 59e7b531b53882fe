// Bench: shrinkwrap's SquashFS writer against mksquashfs at the same compressor, level and block
// size, 2 processors, in the same run. Inputs: the bundled example release, and a tree of real
// content from this machine (shared libraries, /usr/share text, headers, a Python tree twice for
// duplicates), about 1.5 GB. Targets (issue 4): at least as fast as mksquashfs and no larger
// (size ratio <= 1.01) for gzip and zstd; peak RSS under 512 MiB on the big tree.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureExample } from '../../fixtures/example.js';
import { compare, summary } from './measure.js';

export interface SquashfsBenchOptions {
  work: string;
  cli: string;
  repoRoot: string;
  reps: number;
}

const SOURCES = ['/usr/lib/x86_64-linux-gnu', '/usr/share', '/usr/include', '/usr/lib/python3.11'];

/** The realistic tree, made once: <work>/sqfs-tree/r.bench/{lib,share,include,python3.11,python3.11-copy}. */
export function realisticTree(work: string): { root: string; bytes: number } {
  const root = path.join(work, 'sqfs-tree');
  const stamp = path.join(work, 'sqfs-tree.done');
  if (!fs.existsSync(stamp)) {
    process.stderr.write(`copying ${SOURCES.join(', ')} to ${root} (once)\n`);
    fs.rmSync(root, { recursive: true, force: true });
    const repo = path.join(root, 'r.bench');
    fs.mkdirSync(repo, { recursive: true });
    for (const src of SOURCES.filter((s) => fs.existsSync(s))) execFileSync('cp', ['-a', src, path.join(repo, path.basename(src))]);
    if (fs.existsSync('/usr/lib/python3.11')) execFileSync('cp', ['-a', '/usr/lib/python3.11', path.join(repo, 'python3.11-copy')]);
    fs.writeFileSync(stamp, '');
  }
  // Apparent bytes of content, each inode once (what both writers read).
  const bytes = Number(execFileSync('du', ['-sb', '--apparent-size', root], { encoding: 'utf8' }).split('\t')[0]);
  return { root, bytes };
}

export async function benchSquashfs(o: SquashfsBenchOptions): Promise<string[]> {
  const example = await ensureExample();
  const exampleSpec = path.join(o.repoRoot, 'specs/examples/atlas.cern.ch.spec');
  const big = realisticTree(o.work);
  const bigSpec = path.join(o.work, 'r.bench.spec');
  fs.writeFileSync(bigSpec, '/*\n');
  const out = (name: string) => path.join(o.work, name);
  const rows = [
    `Inputs: the example release (\`specs/examples/atlas.cern.ch.spec\`), and ${(big.bytes / 1e9).toFixed(2)} GB of real content (${SOURCES.join(', ')}, the Python tree twice). Page cache warm, 128 KiB blocks, median of ${o.reps}; MB/s = input bytes / wall time.`,
    '',
    '| input | compressor | tool | wall s | MB/s | CPU s | peak RSS MiB | image MB | time ratio | size ratio | target |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [codec, level] of [
    ['gzip', '6'],
    ['zstd', '3'],
  ] as const) {
    for (const input of ['example', 'big'] as const) {
      const [root, spec, mkRoot, bytes] =
        input === 'big'
          ? [big.root, bigSpec, big.root, big.bytes]
          : [example.cvmfs, exampleSpec, null, 0];
      const ours = out(`ours-${input}-${codec}.sqfs`);
      const theirs = out(`mksquashfs-${input}-${codec}.sqfs`);
      // For the example, mksquashfs gets the same selection: the directory shrinkwrap writes (a fair
      // comparison of writers; the selection itself is benched by `plan`).
      let mkSource = mkRoot;
      if (!mkSource) {
        mkSource = out('example-selection');
        fs.rmSync(mkSource, { recursive: true, force: true });
        execFileSync(process.execPath, [o.cli, '--format', 'dir', '--cvmfs-root', root, '--spec', spec, '-o', mkSource, '-q']);
      }
      const sw = [process.execPath, o.cli, '--cvmfs-root', root, '--spec', spec, '--force', '-q', '--compression', codec, '--level', level, '--block-size', '128K'];
      // By default shrinkwrap also writes OUTPUT.sha256, reading the whole image back at the end;
      // --no-checksum writes what mksquashfs writes, an image only. Both are timed.
      const bare = out(`ours-${input}-${codec}-bare.sqfs`);
      const outputs: Record<string, string> = { shrinkwrap: ours, 'shrinkwrap --no-checksum': bare, mksquashfs: theirs };
      const cmds: Record<string, string[]> = {
        shrinkwrap: [...sw, '-o', ours],
        ...(input === 'big' ? { 'shrinkwrap --no-checksum': [...sw, '-o', bare, '--no-checksum'] } : {}),
        mksquashfs: ['mksquashfs', mkSource, theirs, '-noappend', '-comp', codec, '-Xcompression-level', level, '-b', '128K', '-processors', '2', '-no-xattrs', '-quiet', '-no-progress'],
      };
      process.stderr.write(`${input} ${codec}-${level}\n`);
      // Each run writes a new file, as a first build does: replacing the last run's output would
      // charge the freeing of its blocks (~0.1 s for 500 MB) to whichever tool comes next.
      const res = compare(cmds, o.reps, { before: (tool) => fs.rmSync(outputs[tool]!, { force: true }) });
      const m = summary(res['mksquashfs']!);
      const mo = fs.statSync(theirs).size;
      const inBytes = bytes || Number(execFileSync('du', ['-sb', '--apparent-size', mkSource], { encoding: 'utf8' }).split('\t')[0]);
      for (const tool of Object.keys(cmds)) {
        const r = summary(res[tool]!);
        const size = fs.statSync(outputs[tool]!).size;
        const mine = tool !== 'mksquashfs';
        const [timeRatio, sizeRatio] = [r.wall / m.wall, size / mo];
        const met = !mine ? '' : input === 'example' ? '(startup-bound)' : timeRatio <= 1 && sizeRatio <= 1.01 && r.rssMiB < 512 ? 'met' : 'MISSED';
        rows.push(
          `| ${input} | ${codec}-${level} | ${tool} | ${r.wall.toFixed(2)} | ${(inBytes / 1e6 / r.wall).toFixed(1)} | ${r.cpu.toFixed(1)} | ${r.rssMiB.toFixed(0)} | ${(size / 1e6).toFixed(1)} | ${timeRatio.toFixed(2)} | ${sizeRatio.toFixed(3)} | ${met} |`,
        );
      }
      for (const f of Object.values(outputs)) fs.rmSync(f, { force: true });
    }
  }
  return rows;
}

// Bench: shrinkwrap's SquashFS writer against mksquashfs at the same compressor, level and block
// size, 2 processors, in the same run. Inputs: the bundled example release, and a tree of real
// content from this machine (shared libraries, /usr/share text, headers, a Python tree twice for
// duplicates), about 1.5 GB, with a warm page cache and (zstd) a cold one. Targets (issue 4): at
// least as fast as mksquashfs and no larger (size ratio <= 1.01) for gzip and zstd; peak RSS under
// 512 MiB on the big tree. Each of our rows is compared with the reference that writes the same
// outputs: an image (--no-checksum against mksquashfs), or an image and its .sha256.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureExample } from '../../fixtures/example.js';
import { compare, dropCaches, summary } from './measure.js';

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

/** Read every file under `root`, untimed, so that a warm run really starts warm (see compare()). */
function warm(root: string): void {
  execFileSync('sh', ['-c', 'tar -cf - -C "$1" . | cat >/dev/null', 'warm', root]);
}

interface Tool {
  cmd: string[];
  /** The image it writes (and OUTPUT.sha256 beside it, for some). */
  output: string;
  /** The reference tool it is compared with; none for the references themselves. */
  against?: string;
}

export async function benchSquashfs(o: SquashfsBenchOptions): Promise<string[]> {
  const example = await ensureExample();
  const exampleSpec = path.join(o.repoRoot, 'specs/examples/atlas.cern.ch.spec');
  const big = realisticTree(o.work);
  const bigSpec = path.join(o.work, 'r.bench.spec');
  fs.writeFileSync(bigSpec, '/*\n');
  const out = (name: string) => path.join(o.work, name);
  const canDrop = dropCaches();
  if (!canDrop) process.stderr.write('NOTE: cannot write /proc/sys/vm/drop_caches (not root?): the cold-cache rows are skipped\n');
  const rows = [
    `Inputs: the example release (\`specs/examples/atlas.cern.ch.spec\`), and ${(big.bytes / 1e9).toFixed(2)} GB of real content (${SOURCES.join(', ')}, the Python tree twice). 128 KiB blocks, median of ${o.reps}; MB/s = input bytes / wall time. Warm: every input file is read (untimed) just before each run; cold: the page cache is dropped before each run.`,
    '',
    '| input | cache | compressor | tool | wall s | MB/s | CPU s | peak RSS MiB | image MB | compared with | time ratio | size ratio | target |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const cases: { input: 'example' | 'big'; cache: 'warm' | 'cold'; codec: string; level: string }[] = [];
  for (const [codec, level] of [
    ['gzip', '6'],
    ['zstd', '3'],
  ] as const) {
    cases.push({ input: 'example', cache: 'warm', codec, level }, { input: 'big', cache: 'warm', codec, level });
  }
  if (canDrop) cases.push({ input: 'big', cache: 'cold', codec: 'zstd', level: '3' });
  // BENCH_SQUASHFS_ONLY="big warm zstd": only the cases whose "input cache codec" contains it.
  const only = process.env['BENCH_SQUASHFS_ONLY'];
  for (const { input, cache, codec, level } of cases) {
    if (only && !`${input} ${cache} ${codec}`.includes(only)) continue;
    const [root, spec, mkRoot, bytes] = input === 'big' ? [big.root, bigSpec, big.root, big.bytes] : [example.cvmfs, exampleSpec, null, 0];
    // For the example, mksquashfs gets the same selection: the directory shrinkwrap writes (a fair
    // comparison of writers; the selection itself is benched by `plan`).
    let mkSource = mkRoot;
    if (!mkSource) {
      mkSource = out('example-selection');
      fs.rmSync(mkSource, { recursive: true, force: true });
      execFileSync(process.execPath, [o.cli, '--format', 'dir', '--cvmfs-root', root, '--spec', spec, '-o', mkSource, '-q']);
    }
    const sw = [process.execPath, o.cli, '--cvmfs-root', root, '--spec', spec, '--force', '-q', '--compression', codec, '--level', level, '--block-size', '128K'];
    const mk = (dest: string) => ['mksquashfs', mkSource!, dest, '-noappend', '-comp', codec, '-Xcompression-level', level, '-b', '128K', '-processors', '2', '-no-xattrs', '-quiet', '-no-progress'];
    const name = (tool: string) => out(`${tool}-${input}-${codec}.sqfs`);
    // Two pairs, each like for like. shrinkwrap --no-checksum writes what mksquashfs writes, an
    // image. By default shrinkwrap also writes OUTPUT.sha256 (it reads the whole image back at the
    // end); the operator who wants that from mksquashfs runs sha256sum after it.
    const tools: Record<string, Tool> = {
      'shrinkwrap --no-checksum': { cmd: [...sw, '-o', name('ours-bare'), '--no-checksum'], output: name('ours-bare'), against: 'mksquashfs' },
      mksquashfs: { cmd: mk(name('mk')), output: name('mk') },
    };
    if (input === 'big' && cache === 'warm') {
      tools['shrinkwrap'] = { cmd: [...sw, '-o', name('ours')], output: name('ours'), against: 'mksquashfs && sha256sum' };
      tools['mksquashfs && sha256sum'] = {
        cmd: ['sh', '-c', 'out=$1; shift; "$@" && sha256sum "$out" > "$out.sha256"', 'mk', name('mk-sum'), ...mk(name('mk-sum'))],
        output: name('mk-sum'),
      };
    }
    process.stderr.write(`${input} ${cache} ${codec}-${level}\n`);
    // Each run writes a new file, as a first build does: replacing the last run's output would
    // charge the freeing of its blocks (~0.1 s for 500 MB) to whichever tool comes next.
    const before = (tool: string): void => {
      fs.rmSync(tools[tool]!.output, { force: true });
      fs.rmSync(`${tools[tool]!.output}.sha256`, { force: true });
      if (cache === 'cold') dropCaches();
      else warm(tool.startsWith('mksquashfs') ? mkSource! : root); // the tree this tool reads (they differ for the example)
    };
    const res = compare(
      Object.fromEntries(Object.entries(tools).map(([k, t]) => [k, t.cmd])),
      o.reps,
      { before },
    );
    const inBytes = bytes || Number(execFileSync('du', ['-sb', '--apparent-size', mkSource], { encoding: 'utf8' }).split('\t')[0]);
    for (const [tool, t] of Object.entries(tools)) {
      const r = summary(res[tool]!);
      const size = fs.statSync(t.output).size;
      let ratios = ' | | ';
      let met = '';
      if (t.against) {
        const ref = summary(res[t.against]!);
        const [timeRatio, sizeRatio] = [r.wall / ref.wall, size / fs.statSync(tools[t.against]!.output).size];
        ratios = `${timeRatio.toFixed(2)} | ${sizeRatio.toFixed(3)} | `;
        met = input === 'example' ? '(startup-bound)' : timeRatio <= 1 && sizeRatio <= 1.01 && r.rssMiB < 512 ? 'met' : 'MISSED';
      }
      rows.push(
        `| ${input} | ${cache} | ${codec}-${level} | ${tool} | ${r.wall.toFixed(2)} | ${(inBytes / 1e6 / r.wall).toFixed(1)} | ${r.cpu.toFixed(1)} | ${r.rssMiB.toFixed(0)} | ${(size / 1e6).toFixed(1)} | ${t.against ?? ''} | ${ratios}${met} |`,
      );
    }
    for (const t of Object.values(tools)) {
      fs.rmSync(t.output, { force: true });
      fs.rmSync(`${t.output}.sha256`, { force: true });
    }
  }
  return rows;
}

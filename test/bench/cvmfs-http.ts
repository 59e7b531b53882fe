// Bench: building from a CernVM-FS repository over HTTP (issue 19). The squashfs bench's tree of
// real content is published as a repository (fixtures/cvmfs-repo.ts: nested catalogs at a few
// points, files above 4 MiB chunked), served from 127.0.0.1 by test/helpers/cvmfs-server.ts with
// 20 ms added to each response, and built whole into a SquashFS image (gzip-6):
//   cold   an empty object cache, 32 requests in flight (the default), and again with 1 (serial);
//   warm   the object cache full, against the same build from the directory tree.
// Goals (issue 19): cold ≤ 1.3 × the floor max(bytes / loopback bandwidth, requests × 20 ms /
// parallelism), where bytes and requests are what the server counted and the bandwidth is measured
// by fetching a large file from the same server without the delay; warm ≤ 1.1 × the directory.
// Environment: BENCH_CVMFS_SERIAL_REPS (default 1: a serial build takes ~15 minutes; 0 skips it).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Counts, type CvmfsServer, startCvmfsServer } from '../helpers/cvmfs-server.js';
import { type Sample, measure, median, summary } from './measure.js';
import { realisticTree } from './squashfs.js';

export interface CvmfsHttpBenchOptions {
  work: string;
  cli: string;
  repoRoot: string;
  reps: number;
  serialReps: number;
}

const FQRN = 'r.bench';
const DELAY_MS = 20;
const PARALLEL = 32;
/** Nested catalogs: the top directories, and two big ones below /share. */
const NESTED = ['/x86_64-linux-gnu', '/include', '/share', '/share/doc', '/share/man', '/python3.11', '/python3.11-copy'];
const CHUNK_ABOVE = 4 * 2 ** 20;
const LOOPBACK_FILE = 'loopback-256MiB.bin';

interface Published {
  /** Served directory: <dir>/<fqrn>/.cvmfspublished, <dir>/keys/<fqrn>.pub. */
  dir: string;
  keys: string;
  objects: number;
  catalogs: number;
  /** Stored (compressed) bytes under data/. */
  storedBytes: number;
  seconds: number;
}

/** The tree published once into <work>/cvmfs-repo; published again when the tree, options or publisher changed. */
function publishedRepository(o: CvmfsHttpBenchOptions, tree: string): Published {
  const dir = path.join(o.work, 'cvmfs-repo');
  const stamp = path.join(o.work, 'cvmfs-repo.done');
  const publisher = path.join(o.repoRoot, 'dist/fixtures/cvmfs-repo.js');
  const publisherHash = createHash('sha256');
  for (const f of [publisher, path.join(o.repoRoot, 'dist/src/formats/cvmfs/catalog.js')]) publisherHash.update(fs.readFileSync(f));
  const key = JSON.stringify({ tree, treeStamp: fs.statSync(path.join(o.work, 'sqfs-tree.done')).mtimeMs, NESTED, CHUNK_ABOVE, publisher: publisherHash.digest('hex') });
  const previous = fs.existsSync(stamp) ? (JSON.parse(fs.readFileSync(stamp, 'utf8')) as { key: string; published: Published }) : null;
  if (previous?.key === key && fs.existsSync(path.join(dir, FQRN, '.cvmfspublished'))) return previous.published;
  process.stderr.write(`publishing ${tree} as ${FQRN} into ${dir} (once; kept for later runs)\n`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(stamp, { force: true });
  const args = [publisher, tree, dir, FQRN, '--nested', NESTED.join(','), '--chunk-above', String(CHUNK_ABOVE)];
  const res = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' })) as { objects: number; catalogs: number; seconds: number };
  const storedBytes = Number(execFileSync('du', ['-sb', '--apparent-size', path.join(dir, FQRN, 'data')], { encoding: 'utf8' }).split('\t')[0]);
  const published: Published = { dir, keys: path.join(dir, 'keys'), objects: res.objects, catalogs: res.catalogs, storedBytes, seconds: res.seconds };
  fs.writeFileSync(stamp, JSON.stringify({ key, published }));
  return published;
}

/** Loopback bandwidth in bytes/s: a 256 MiB file fetched by curl from the same server with no delay, median of 3. */
async function loopbackBandwidth(dir: string): Promise<number> {
  const file = path.join(dir, LOOPBACK_FILE);
  if (fs.statSync(file, { throwIfNoEntry: false })?.size !== 256 * 2 ** 20) {
    const fd = fs.openSync(file, 'w');
    for (let i = 0; i < 256; i++) fs.writeSync(fd, randomBytes(2 ** 20));
    fs.closeSync(fd);
  }
  const server = await startCvmfsServer(dir, { delayMs: 0 });
  try {
    const speeds: number[] = [];
    for (let i = 0; i < 4; i++) {
      // The server answers on its own worker thread, so a synchronous curl is fine. The first run warms up.
      const child = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{speed_download}', `${server.url}/${LOOPBACK_FILE}`], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`curl: ${child.stderr}`);
      const speed = Number(child.stdout);
      if (i > 0) speeds.push(speed);
    }
    return median(speeds);
  } finally {
    await server.stop();
  }
}

/** Read every file under `root`, untimed, so that a warm run starts warm. */
function warm(root: string): void {
  execFileSync('sh', ['-c', 'tar -cf - -C "$1" . | cat >/dev/null', 'warm', root]);
}

interface Traffic {
  requests: number;
  bytes: number;
}

/** What the server saw between two counts: requests, and the bytes of the files it answered with. */
function trafficBetween(before: Counts, after: Counts, dir: string): Traffic {
  let bytes = 0;
  for (const [urlPath, n] of Object.entries(after.seen)) {
    const more = n - (before.seen[urlPath] ?? 0);
    if (more === 0) continue;
    const size = fs.statSync(path.join(dir, urlPath.replace(/^\/cvmfs\//, '')), { throwIfNoEntry: false })?.size ?? 0;
    bytes += more * size;
  }
  return { requests: after.total - before.total, bytes };
}

interface Run {
  samples: Sample[];
  traffic: Traffic[];
}

/** `reps` timed runs of `cmd`, each after `before()` and `sync` (untimed), with the server's traffic of each. */
async function runs(name: string, cmd: string[], reps: number, server: CvmfsServer, dir: string, before: () => void): Promise<Run> {
  const run: Run = { samples: [], traffic: [] };
  for (let i = 0; i < reps; i++) {
    before();
    spawnSync('sync');
    const c0 = await server.counts();
    const s = measure(cmd);
    const t = trafficBetween(c0, await server.counts(), dir);
    run.samples.push(s);
    run.traffic.push(t);
    process.stderr.write(`  ${name} #${i + 1}: ${s.wall.toFixed(2)} s, ${(s.maxRssKiB / 1024).toFixed(0)} MiB, ${t.requests} requests, ${(t.bytes / 1e6).toFixed(1)} MB\n`);
  }
  return run;
}

function sha256Of(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]!;
}

export async function benchCvmfsHttp(o: CvmfsHttpBenchOptions): Promise<string[]> {
  const tree = realisticTree(o.work);
  const repoTree = path.join(tree.root, FQRN);
  const repo = publishedRepository(o, repoTree);
  const spec = path.join(o.work, `${FQRN}.spec`);
  fs.writeFileSync(spec, '/*\n');
  const out = (name: string) => path.join(o.work, `cvmfs-http-${name}.sqfs`);
  const cache = (name: string) => path.join(o.work, `cvmfs-http-cache-${name}`);
  process.stderr.write('measuring loopback bandwidth\n');
  const bandwidth = await loopbackBandwidth(repo.dir);
  process.stderr.write(`  ${(bandwidth / 1e6).toFixed(0)} MB/s\n`);

  const server = await startCvmfsServer(repo.dir, { delayMs: DELAY_MS });
  const common = ['--spec', spec, '--force', '-q', '--no-checksum', '--compression', 'gzip', '--level', '6', '--block-size', '128K'];
  const http = (name: string, parallel: number) => [
    process.execPath, o.cli, '--cvmfs-root', server.url, '--cvmfs-keys', repo.keys, '--cvmfs-cache', cache(name), '--cvmfs-allow-expired',
    '--cvmfs-parallel', String(parallel), ...common, '-o', out(name),
  ];
  const fresh = (name: string, emptyCache: boolean) => (): void => {
    fs.rmSync(out(name), { force: true });
    if (emptyCache) fs.rmSync(cache(name), { recursive: true, force: true });
  };
  const results: Record<string, Run> = {};
  let maxConcurrent = 0;
  try {
    process.stderr.write(`cold, --cvmfs-parallel ${PARALLEL}\n`);
    results['cold'] = await runs('cold', http('cold', PARALLEL), o.reps, server, repo.dir, fresh('cold', true));
    maxConcurrent = (await server.counts()).maxConcurrent;

    // Warm: the cache filled once (untimed), then alternated with the directory build, rep by rep,
    // each starting with its input read into the page cache.
    process.stderr.write('warm cache against the directory\n');
    fresh('warm', true)();
    measure(http('warm', PARALLEL));
    const dirCmd = [process.execPath, o.cli, '--cvmfs-root', tree.root, ...common, '-o', out('dir')];
    results['warm'] = { samples: [], traffic: [] };
    results['dir'] = { samples: [], traffic: [] };
    for (let i = 0; i < o.reps; i++) {
      const order = i % 2 === 0 ? (['warm', 'dir'] as const) : (['dir', 'warm'] as const);
      for (const name of order) {
        const cmd = name === 'warm' ? http('warm', PARALLEL) : dirCmd;
        const r = await runs(name, cmd, 1, server, repo.dir, () => {
          fresh(name, false)();
          warm(name === 'warm' ? cache('warm') : repoTree);
        });
        results[name]!.samples.push(...r.samples);
        results[name]!.traffic.push(...r.traffic);
      }
    }

    if (o.serialReps > 0) {
      process.stderr.write('cold, --cvmfs-parallel 1 (serial)\n');
      results['serial'] = await runs('serial', http('serial', 1), o.serialReps, server, repo.dir, fresh('serial', true));
    }
  } finally {
    await server.stop();
  }

  const identical = sha256Of(out('warm')) === sha256Of(out('dir')) && sha256Of(out('cold')) === sha256Of(out('dir'));
  const rows = [
    `Repository: the squashfs bench's tree (${(tree.bytes / 1e9).toFixed(2)} GB, \`${FQRN}\`) published by \`fixtures/cvmfs-repo.ts\`: ${repo.catalogs} catalogs (nested at ${NESTED.map((n) => `\`${n}\``).join(', ')}), files above ${CHUNK_ABOVE / 2 ** 20} MiB chunked, ${repo.objects.toLocaleString('en')} objects, ${(repo.storedBytes / 1e6).toFixed(0)} MB stored. Served from 127.0.0.1 with ${DELAY_MS} ms added to each response; loopback bandwidth ${(bandwidth / 1e6).toFixed(0)} MB/s (curl, a 256 MiB file, no delay). Spec \`/*\`, SquashFS gzip-6, 128 KiB blocks, \`--no-checksum\`; median of ${o.reps} (serial: ${o.serialReps}). Floor = max(bytes / bandwidth, requests × ${DELAY_MS} ms / parallelism), bytes and requests as the server counted them. Most requests in flight at once (cold, ${PARALLEL}): ${maxConcurrent}. Images from HTTP and from the directory: ${identical ? 'identical' : 'DIFFER'}.`,
    '',
    '| build | cache | parallel | wall s | CPU s | peak RSS MiB | requests | MB fetched | requests/s | floor s | wall / floor | wall / directory | goal |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const dir = summary(results['dir']!.samples);
  /** `parallel`: the cold builds' requests in flight, for their floor; null for the others. */
  const row = (label: string, name: string, cacheState: string, parallel: number | null, shownParallel: number | null = parallel): void => {
    const run = results[name];
    if (!run) return;
    const s = summary(run.samples);
    const t = run.traffic[run.traffic.length - 1]!;
    const requests = median(run.traffic.map((x) => x.requests));
    const floor = parallel ? Math.max(t.bytes / bandwidth, (requests * DELAY_MS) / 1000 / parallel) : 0;
    const versusFloor = floor > 0 ? s.wall / floor : 0;
    const versusDir = s.wall / dir.wall;
    let goal = '';
    if (name === 'cold') goal = versusFloor <= 1.3 ? 'met (≤ 1.3 × floor)' : 'MISSED (≤ 1.3 × floor)';
    if (name === 'warm') goal = versusDir <= 1.1 ? 'met (≤ 1.1 × directory)' : 'MISSED (≤ 1.1 × directory)';
    rows.push(
      `| ${label} | ${cacheState} | ${shownParallel ?? ''} | ${s.wall.toFixed(2)} | ${s.cpu.toFixed(1)} | ${s.rssMiB.toFixed(0)} | ${requests} | ${(t.bytes / 1e6).toFixed(1)} | ${name === 'dir' ? '' : (requests / s.wall).toFixed(0)} | ${floor ? floor.toFixed(2) : ''} | ${floor ? versusFloor.toFixed(2) : ''} | ${name === 'dir' ? '1.00' : versusDir.toFixed(2)} | ${goal} |`,
    );
  };
  row('HTTP', 'cold', 'empty', PARALLEL);
  row('HTTP', 'serial', 'empty', 1);
  row('HTTP', 'warm', 'full', null, PARALLEL);
  row('directory', 'dir', '', null);
  for (const name of ['cold', 'warm', 'dir', 'serial']) {
    fs.rmSync(out(name), { force: true });
    fs.rmSync(cache(name), { recursive: true, force: true });
  }
  return rows;
}

// The write progress bar on a terminal (issue 20, item 11): an OCI image's bar counts the file
// content and the files it writes, and ends at 100 % with done = total ("4.9 MiB of 4.0 MiB" and
// "0 files" before: it counted tar bytes, headers and padding included, and no files).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { CLI } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tree.js';

let cvmfs: string;
let base: string;
let work: string;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-progress-');
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** The last frame of the bar the build drew on a terminal (script(1) gives it one). */
function lastFrame(args: string[]): string {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '200' } });
  expect(r.status, r.stdout).toBe(0);
  const frames = r.stdout.split(/\r|\x1b\[1G/).filter((f) => f.startsWith('writing '));
  expect(frames.length).toBeGreaterThan(0);
  return frames[frames.length - 1]!;
}

/** Regular files (tar type '-') and their bytes in the layers of an OCI layout, as GNU tar lists them. */
function layerFiles(layout: string): { files: number; bytes: number } {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const blob = (d: string) => path.join(layout, 'blobs', ...d.split(':'));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), 'utf8'));
  let files = 0;
  let bytes = 0;
  for (const l of manifest.layers) {
    const list = execFileSync('tar', ['-tvzf', blob(l.digest)], { encoding: 'utf8', maxBuffer: 1 << 26 });
    for (const line of list.split('\n')) {
      if (!line.startsWith('-')) continue;
      files++;
      bytes += Number(line.split(/\s+/)[2]);
    }
  }
  return { files, bytes };
}

describe('the write progress bar', () => {
  it('oci: ends at 100 %, done = total, counting the files it wrote', () => {
    const out = path.join(work, 'img');
    const frame = lastFrame(['build', '--cvmfs-root', cvmfs, '--base', base, '--release', 'AnalysisBase,21.2.75', '--format', 'oci', '-o', out, '--no-checksum']);
    const m = /\] 100% \| (\S+ \S+) of (\S+ \S+) \| \S+ \S+\/s \| ETA 0 s \| (\d+) files/.exec(frame);
    expect(m, frame).not.toBeNull();
    expect(m![1]).toBe(m![2]);
    const { files, bytes } = layerFiles(out);
    expect(Number(m![3])).toBe(files);
    expect(files).toBeGreaterThan(400);
    // The total is the files' content (humanBytes of the tar listing's sizes).
    expect(m![2]).toBe(`${(bytes / 2 ** 20).toFixed(1)} MiB`);
  });
});

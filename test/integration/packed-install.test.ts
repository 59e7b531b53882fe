// The README's way onto PATH from a tarball: `npm pack` (whose `prepare` compiles dist/), then
// `npm install -g --prefix EMPTY TARBALL`, and the installed `shrinkwrap` works on its own: help,
// a plan from the packed recipes, a SquashFS image (gzip, through the packed dependencies) that
// verify accepts. The pack runs in a copy of the working tree (tracked and new files, as a clone
// with these changes would have them), so this test's tsc does not rewrite the dist/ that other
// tests are running. The install runs no install scripts (--ignore-scripts): they compile the
// optional better-sqlite3 and zstd-napi from source, five minutes here, and the CLI works without
// them (lzma-native loads the prebuilt binary its package carries, as its own script would).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const NPM_TIMEOUT_MS = 240_000;

let work: string;

beforeAll(() => {
  work = tmpDir('sw-packed-');
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 26, timeout: NPM_TIMEOUT_MS, env: { ...process.env, npm_config_update_notifier: 'false' } });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function ok(cmd: string, args: string[], cwd: string): string {
  const r = run(cmd, args, cwd);
  expect(r.code, `${cmd} ${args.join(' ')}\n${r.out.slice(-4000)}`).toBe(0);
  return r.out;
}

/** The working tree as a fresh clone with these changes would hold it, node_modules shared. */
function copyOfCheckout(into: string): void {
  const files = ok('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], REPO_ROOT).split('\0');
  for (const f of files) {
    if (f === '' || !fs.existsSync(path.join(REPO_ROOT, f))) continue; // deleted, not yet committed
    fs.mkdirSync(path.dirname(path.join(into, f)), { recursive: true });
    fs.copyFileSync(path.join(REPO_ROOT, f), path.join(into, f));
  }
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(into, 'node_modules'));
}

const canPack = canRun(hasCommand('npm') && hasCommand('git') && fs.existsSync(path.join(REPO_ROOT, '.git')), 'packed install', 'needs npm and a git checkout');

describe('packed install', () => {
  it.runIf(canPack)('npm pack, then npm install -g --prefix EMPTY TARBALL: the installed shrinkwrap runs, plans and builds', async () => {
    const { cvmfs, base } = await ensureExample();
    const checkout = path.join(work, 'checkout');
    const packs = path.join(work, 'packs');
    const prefix = path.join(work, 'prefix');
    fs.mkdirSync(packs);
    copyOfCheckout(checkout);

    const packed = ok('npm', ['pack', '--pack-destination', packs], checkout);
    expect(packed).toMatch(/> tsc -p tsconfig\.json/); // prepare built dist/ in the copy
    const [tarball] = fs.readdirSync(packs);
    expect(tarball).toMatch(/^shrinkwrap-\d+\.\d+\.\d+\.tgz$/);
    const members = ok('tar', ['-tzf', path.join(packs, tarball!)], work).split('\n');
    expect(members).toContain('package/dist/src/cli/shrinkwrap.cjs');
    expect(members).toContain('package/specs/recipes/atlas.recipe');
    expect(members.filter((m) => /^package\/(dist\/(test|fixtures)|src|test|fixtures)\//.test(m))).toEqual([]);

    ok('npm', ['install', '-g', '--prefix', prefix, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(packs, tarball!)], work);
    const bin = path.join(prefix, 'bin/shrinkwrap');
    expect(fs.realpathSync(bin)).toBe(path.join(prefix, 'lib/node_modules/shrinkwrap/dist/src/cli/shrinkwrap.cjs'));

    // Run as a user would: by PATH, from a directory that has nothing of the checkout.
    const env = { ...process.env, PATH: `${path.dirname(bin)}:${process.env['PATH']}` };
    const sh = (line: string): string => {
      const r = spawnSync('sh', ['-c', line], { cwd: work, env, encoding: 'utf8', timeout: NPM_TIMEOUT_MS });
      expect(r.status, `${line}\n${r.stderr}`).toBe(0);
      return r.stdout;
    };
    expect(sh('command -v shrinkwrap').trim()).toBe(bin);
    expect(sh('shrinkwrap --help')).toMatch(/^Usage: shrinkwrap/);
    expect(sh(`shrinkwrap plan --cvmfs-root '${cvmfs}' --release AnalysisBase,21.2.75`)).toMatch(/AnalysisBase/);
    sh(`shrinkwrap --cvmfs-root '${cvmfs}' --release AnalysisBase,21.2.75 --base '${base}' -o ab.sqfs -q`);
    sh('shrinkwrap verify --data ab.sqfs && sha256sum -c ab.sqfs.sha256');
  }, 600_000);
});

// What an image records for an audit (/.shrinkwrap/provenance.json, the OCI labels): the command,
// the inputs' absolute paths, each repository's revision and root catalog where a mounted client
// says them, and when it was made.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shrinkwrap } from '../helpers/cli.js';
import { hasCommand } from '../helpers/env.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };
const ROOT_HASH = '0123456789abcdef0123456789abcdef01234567';

let work: string;
let spec: string;

beforeAll(() => {
  work = tmpDir('sw-provenance-');
  makeTree(path.join(work, 'cvmfs'), { 'x.ch/sw/setup.sh': 'export X=1\n', 'x.ch/sw/lib/libx.so': 'elf', 'y.ch/data/d': 'd' });
  makeTree(path.join(work, 'base'), { 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n', 'bin/sh': '#!\n' });
  spec = writeSpec(work, 'x.ch.spec', ['/sw/*']);
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A build run from `cwd` with relative paths, as an operator types it. */
function buildIn(cwd: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = ENV) {
  const r = shrinkwrap(['--cvmfs-root', path.relative(cwd, path.join(work, 'cvmfs')), '--base', path.relative(cwd, path.join(work, 'base')), '--spec', path.relative(cwd, spec), '-o', out, '-q', ...extra], { cwd, env });
  expect(r.code, r.stderr).toBe(0);
  return r;
}

function provenanceOf(dirImage: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(path.join(dirImage, '.shrinkwrap/provenance.json'), 'utf8'));
}

function ociConfig(layout: string): Record<string, any> {
  const blob = (d: string) => JSON.parse(fs.readFileSync(path.join(layout, 'blobs/sha256', d.slice('sha256:'.length)), 'utf8'));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifest = blob(index.manifests[0].digest);
  return { manifest, config: blob(manifest.config.digest) };
}

describe('provenance', () => {
  it('records the command as typed (the output path left out), absolute input paths, and created = SOURCE_DATE_EPOCH', () => {
    const cwd = fs.mkdtempSync(path.join(work, 'cwd-'));
    // What never changes the bytes is left out (-q, --threads, --json, --creds: a secret).
    buildIn(cwd, 'img/', ['--mtime', 'keep', '--threads', '2', '--json', '--creds=user:secret']);
    const p = provenanceOf(path.join(cwd, 'img'));
    expect(p['command']).toEqual(['shrinkwrap', '--cvmfs-root', '../cvmfs', '--base', '../base', '--spec', '../x.ch.spec', '-o', 'OUTPUT', '--mtime', 'keep']);
    expect(p['source'].cvmfsRoot).toBe(path.join(work, 'cvmfs'));
    expect(p['source'].repositories).toBeUndefined(); // a copy: no client attributes
    expect(p['base']).toEqual({ name: path.join(work, 'base'), kind: 'dir', digest: null });
    expect(p['specs']).toEqual([expect.objectContaining({ file: 'x.ch.spec', path: spec })]);
    expect(p['created']).toBe('2020-09-13T12:26:40Z');
  });

  it('created is the build time without SOURCE_DATE_EPOCH (not the newest file time)', () => {
    const env = { ...process.env };
    delete env['SOURCE_DATE_EPOCH'];
    const before = Math.floor(Date.now() / 1000);
    buildIn(work, 'now/', [], env);
    const after = Math.ceil(Date.now() / 1000);
    const created = Date.parse(provenanceOf(path.join(work, 'now'))['created']) / 1000;
    expect(created).toBeGreaterThanOrEqual(before);
    expect(created).toBeLessThanOrEqual(after);
  });

  it('the same inputs give the same image wherever it is written and under whatever name', () => {
    const a = fs.mkdtempSync(path.join(work, 'place-a-'));
    buildIn(a, 'one.sqfs');
    buildIn(a, path.join(work, 'elsewhere.sqfs'));
    expect(fs.readFileSync(path.join(a, 'one.sqfs')).equals(fs.readFileSync(path.join(work, 'elsewhere.sqfs')))).toBe(true);
  });

  it.runIf(hasCommand('setfattr'))("a mounted client's revision and root catalog (user.revision, user.root_hash) go into provenance and the OCI labels", () => {
    const repo = path.join(work, 'cvmfs/x.ch');
    execFileSync('setfattr', ['-n', 'user.revision', '-v', '4711', repo]);
    execFileSync('setfattr', ['-n', 'user.root_hash', '-v', ROOT_HASH, repo]);
    try {
      buildIn(work, 'rev/');
      expect(provenanceOf(path.join(work, 'rev'))['source'].repositories).toEqual([{ fqrn: 'x.ch', revision: 4711, rootCatalog: ROOT_HASH }]);
      buildIn(work, 'rev-oci', ['--format', 'oci', '--tag', 'rev:1']);
      const { manifest, config } = ociConfig(path.join(work, 'rev-oci'));
      const labels = config.config.Labels;
      expect(labels['io.shrinkwrap.revisions']).toBe(`x.ch@4711:${ROOT_HASH}`);
      expect(labels['io.shrinkwrap.source']).toBe(path.join(work, 'cvmfs'));
      expect(labels['org.opencontainers.image.base.name']).toBe(path.join(work, 'base'));
      expect(labels['org.opencontainers.image.created']).toBe('2020-09-13T12:26:40Z');
      expect(config.created).toBe('2020-09-13T12:26:40Z');
      // --format is not recorded: the format is the image itself (and a SIF's partition is the SquashFS image of the same command).
      expect(labels['io.shrinkwrap.command']).toBe('shrinkwrap --cvmfs-root cvmfs --base base --spec x.ch.spec -o OUTPUT --tag rev:1');
      expect(manifest.annotations['org.opencontainers.image.base.name']).toBe(path.join(work, 'base'));
    } finally {
      execFileSync('setfattr', ['-x', 'user.revision', repo]);
      execFileSync('setfattr', ['-x', 'user.root_hash', repo]);
    }
  });

  it('a base given as oci:DIR:TAG is named by its absolute directory', () => {
    buildIn(work, 'base-oci', ['--format', 'oci', '--tag', 'b:1']);
    const r = shrinkwrap(['--cvmfs-root', 'cvmfs', '--base', 'oci:base-oci:1', '--spec', 'x.ch.spec', '--format', 'oci', '-o', 'on-oci', '-q'], { cwd: work, env: ENV });
    expect(r.code, r.stderr).toBe(0);
    const { config } = ociConfig(path.join(work, 'on-oci'));
    expect(config.config.Labels['org.opencontainers.image.base.name']).toBe(`oci:${path.join(work, 'base-oci')}:1`);
  });
});

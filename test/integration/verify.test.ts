// `shrinkwrap verify` on every format the example builds, against the example's plan, and on OCI
// layouts and docker-archives damaged one way each: one line naming the blob, exit 1.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { readTar } from '../../src/sources/tar/reader.js';
import { REPO_ROOT, type Run, shrinkwrap } from '../helpers/cli.js';
import { member, pax, tarball } from '../helpers/raw-tar.js';
import { tmpDir } from '../helpers/tree.js';

const SPEC = path.join(REPO_ROOT, 'specs/examples/atlas.cern.ch.spec');
let work: string;
let plan: string;
const images: Record<string, string> = {};

beforeAll(async () => {
  const { cvmfs, base } = await ensureExample();
  work = tmpDir();
  const build = (name: string, args: string[]) => {
    const out = path.join(work, name);
    const r = shrinkwrap(['--cvmfs-root', cvmfs, '--spec', SPEC, '-q', '-o', out, ...args]);
    if (r.code !== 0) throw new Error(`build ${name}: ${r.stderr}`);
    images[name] = out;
  };
  build('base.sqfs', ['--base', base]);
  build('nobase.sqfs', []);
  build('oci-gzip', ['--base', base, '--format', 'oci']);
  build('oci-zstd', ['--base', base, '--format', 'oci', '--compression', 'zstd']);
  build('image.tar', ['--base', base, '--format', 'docker-archive']);
  plan = path.join(work, 'plan.json');
  fs.writeFileSync(plan, shrinkwrap(['plan', '--json', '--cvmfs-root', cvmfs, '--spec', SPEC, '-q']).stdout);
}, 300_000);

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** The problem lines of a failed verify (the last line is the summary). */
function problems(r: Run): string[] {
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  expect(lines.at(-1)).toMatch(/: \d+ problems?: /);
  return lines.slice(0, -1);
}

const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const blobFile = (dir: string, digest: string) => path.join(dir, 'blobs/sha256', digest.slice('sha256:'.length));
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

/** A copy of the gzip OCI layout, with its manifest (and config) open for edits that are then stored under their new digests. */
function layoutCopy(name: string) {
  const dir = path.join(work, name);
  fs.cpSync(images['oci-gzip']!, dir, { recursive: true });
  const index = readJson(path.join(dir, 'index.json'));
  const manifest = readJson(blobFile(dir, index.manifests[0].digest));
  const config = readJson(blobFile(dir, manifest.config.digest));
  const store = (doc: unknown) => {
    const bytes = Buffer.from(JSON.stringify(doc));
    fs.writeFileSync(blobFile(dir, sha256(bytes)), bytes);
    return { digest: sha256(bytes), size: bytes.length };
  };
  /** Store config and manifest as they now are, and point the index at them. */
  const rechain = () => {
    Object.assign(manifest.config, store(config));
    Object.assign(index.manifests[0], store(manifest));
    fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
  };
  const last = manifest.layers.length - 1;
  return { dir, manifest, config, rechain, last, lastLayer: manifest.layers[last] as { digest: string; size: number } };
}

describe('verify passes every format the example builds, against its plan', () => {
  for (const name of ['base.sqfs', 'nobase.sqfs', 'oci-gzip', 'oci-zstd', 'image.tar']) {
    it(name, () => {
      // No --image-root: an image with a base says where its payload is (/.shrinkwrap/).
      const r = shrinkwrap(['verify', images[name]!, '--manifest', plan]);
      expect(r.stdout + r.stderr).toMatch(/: OK: .*, \d+ manifest entries compared\n$/);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      if (!name.endsWith('.sqfs')) expect(r.stdout).toMatch(/1 manifest, 6 layers, 8 blobs/);
    });
  }

  it('--manifest on a base image, without --image-root: the tree is compared under /cvmfs, and a difference is found', () => {
    const doc = readJson(plan);
    const dropped = doc.entries.pop();
    const short = path.join(work, 'plan-short.json');
    fs.writeFileSync(short, JSON.stringify(doc));
    for (const name of ['base.sqfs', 'oci-gzip', 'image.tar']) {
      const r = shrinkwrap(['verify', images[name]!, '--manifest', short]);
      expect(r.code, r.stdout).toBe(1);
      expect(problems(r)).toEqual([`${images[name]}: manifest: ${dropped.path} is in the image but not in the manifest`]);
    }
  });

  it('an explicit --image-root still wins', () => {
    const r = shrinkwrap(['verify', images['base.sqfs']!, '--manifest', plan, '--image-root', '/']);
    expect(r.code).toBe(1);
    expect(problems(r).length).toBeGreaterThan(100);
  });

  it('--json names the format', () => {
    const r = shrinkwrap(['verify', images['oci-zstd']!, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ format: 'oci', ok: true, problems: [], stats: { manifests: 1, layers: 6, blobs: 8, entries: expect.any(Number) } });
    expect(JSON.parse(shrinkwrap(['verify', images['image.tar']!, '--json']).stdout).format).toBe('docker-archive');
  });
});

describe('verify fails a damaged OCI layout with one line naming the blob', () => {
  it('a corrupted byte in a layer', () => {
    const { dir, lastLayer } = layoutCopy('corrupt-byte');
    const f = blobFile(dir, lastLayer.digest);
    const bytes = fs.readFileSync(f);
    bytes[bytes.length >> 1] ^= 0x40;
    fs.writeFileSync(f, bytes);
    const r = shrinkwrap(['verify', dir, '--manifest', plan]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([expect.stringMatching(new RegExp(`^${dir}: layer 6 ${lastLayer.digest}: content has digest sha256:[0-9a-f]{64}, but the image says ${lastLayer.digest}$`))]);
  });

  it('a wrong size in a descriptor', () => {
    const c = layoutCopy('wrong-size');
    c.lastLayer.size += 1;
    c.rechain();
    const r = shrinkwrap(['verify', c.dir]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([`${c.dir}: layer 6 ${c.lastLayer.digest}: the blob is ${c.lastLayer.size - 1} bytes, its descriptor says ${c.lastLayer.size}`]);
  });

  it('a wrong diff_id in the config', () => {
    const c = layoutCopy('wrong-diff-id');
    const right = c.config.rootfs.diff_ids[c.last];
    const wrong = sha256(Buffer.from('not this layer'));
    c.config.rootfs.diff_ids[c.last] = wrong;
    c.rechain();
    const r = shrinkwrap(['verify', c.dir]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([`${c.dir}: layer 6 ${c.lastLayer.digest}: uncompressed content has digest ${right}, but the config's diff_id says ${wrong}`]);
  });

  it('a missing blob', () => {
    const { dir, lastLayer } = layoutCopy('missing-blob');
    fs.rmSync(blobFile(dir, lastLayer.digest));
    const r = shrinkwrap(['verify', dir, '--manifest', plan]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([`${dir}: layer 6 ${lastLayer.digest}: missing: no blobs/sha256/${lastLayer.digest.slice(7)}`]);
    expect(r.stderr).toMatch(/warning: .*the tree was not compared with the plan/);
  });

  it('a layer that is not a well-formed tar (its digest and diff_id right)', () => {
    const c = layoutCopy('bad-tar');
    const tar = tarball(member({ name: 'etc/passwd' }, Buffer.from('root:x:0:0::/root:/bin/sh\n')));
    tar.write('12345670', 148, 'latin1'); // a checksum that is not this header's
    const blob = gzipSync(tar);
    fs.writeFileSync(blobFile(c.dir, sha256(blob)), blob);
    Object.assign(c.lastLayer, { digest: sha256(blob), size: blob.length });
    c.config.rootfs.diff_ids[c.last] = sha256(tar);
    c.rechain();
    const r = shrinkwrap(['verify', c.dir]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([expect.stringMatching(new RegExp(`^${c.dir}: layer 6 ${sha256(blob)}: .*checksum`, 'i'))]);
  });

  it('a whiteout applied: a plan entry the top layer deletes is missing', () => {
    const c = layoutCopy('whiteout');
    const doc = readJson(plan);
    const victim = doc.entries.find((e: { type: string; path: string }) => e.type === 'file' && e.path.includes('/lib/'));
    const name = '.' + path.posix.join(path.posix.dirname(victim.path), '.wh.' + path.posix.basename(victim.path));
    const tar = tarball(pax([['path', name]]), member({ name: 'whiteout' }));
    const blob = gzipSync(tar);
    fs.writeFileSync(blobFile(c.dir, sha256(blob)), blob);
    c.manifest.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(blob), size: blob.length });
    c.config.rootfs.diff_ids.push(sha256(tar));
    c.rechain();
    const r = shrinkwrap(['verify', c.dir, '--manifest', plan]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(problems(r)).toEqual([`${c.dir}: manifest: ${victim.path}: missing from the image`]);
  });
});

describe('verify fails a damaged docker-archive with one line naming the blob', () => {
  /** The member of the archive holding the last layer. */
  function lastLayerMember(file: string) {
    const members = [...readTar(file, file)];
    const docker = JSON.parse(fs.readFileSync(file).toString('latin1', ...(() => {
      const m = members.find((x) => x.name === 'manifest.json')!;
      return [m.offset, m.offset + m.size] as const;
    })()));
    const name: string = docker[0].Layers.at(-1);
    return { name, member: members.find((m) => m.name === name)!, digest: 'sha256:' + path.basename(name) };
  }

  it('a corrupted byte in a layer', () => {
    const file = path.join(work, 'corrupt.tar');
    fs.copyFileSync(images['image.tar']!, file);
    const { member, digest } = lastLayerMember(file);
    const bytes = fs.readFileSync(file);
    bytes[member.offset + (member.size >> 1)] ^= 0x40;
    fs.writeFileSync(file, bytes);
    const r = shrinkwrap(['verify', file, '--manifest', plan]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([expect.stringMatching(new RegExp(`^${file}: layer 6 ${digest}: content has digest sha256:[0-9a-f]{64}, but the image says ${digest}$`))]);
  });

  it('a missing blob', () => {
    const unpacked = path.join(work, 'unpacked');
    fs.mkdirSync(unpacked);
    execFileSync('tar', ['-xf', images['image.tar']!, '-C', unpacked]);
    const { name, digest } = lastLayerMember(images['image.tar']!);
    fs.rmSync(path.join(unpacked, name));
    const file = path.join(work, 'missing.tar');
    execFileSync('tar', ['-cf', file, '-C', unpacked, '.']);
    const r = shrinkwrap(['verify', file]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([`${file}: layer 6 ${digest}: missing: no ${name} in the archive`]);
  });
});

describe('docker-archive: manifest.json, with and without a layout beside it', () => {
  /** The archive unpacked, changed by `edit`, packed again with GNU tar. */
  function repacked(name: string, edit: (dir: string) => void): string {
    const dir = path.join(work, `${name}-unpacked`);
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xf', images['image.tar']!, '-C', dir]);
    edit(dir);
    const file = path.join(work, `${name}.tar`);
    execFileSync('tar', ['-cf', file, '-C', dir, '.']);
    return file;
  }

  it('an archive without index.json (docker < 25) is checked by manifest.json, against the plan', () => {
    const file = repacked('no-layout', (dir) => {
      fs.rmSync(path.join(dir, 'index.json'));
      fs.rmSync(path.join(dir, 'oci-layout'));
    });
    const r = shrinkwrap(['verify', file, '--manifest', plan]);
    expect(r.stdout).toMatch(/: OK: docker-archive, 1 manifest, 6 layers, 6 blobs .*manifest entries compared/);
    expect(r.code).toBe(0);
  });

  it("manifest.json naming other layers than index.json's image: one line", () => {
    const file = repacked('swapped', (dir) => {
      const docker = readJson(path.join(dir, 'manifest.json'));
      const layers: string[] = docker[0].Layers;
      [layers[4], layers[5]] = [layers[5]!, layers[4]!];
      fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(docker));
    });
    const r = shrinkwrap(['verify', file]);
    expect(r.code).toBe(1);
    expect(problems(r)).toEqual([expect.stringMatching(/: manifest\.json names layers .*, not those of index\.json's image/)]);
  });
});

describe('verify refuses what is no image, in one line', () => {
  it('a directory without oci-layout', () => {
    const r = shrinkwrap(['verify', work]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^shrinkwrap: error: .*a directory without an oci-layout file/);
  });
});

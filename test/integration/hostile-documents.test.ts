// Hostile JSON documents (issue 17, cases 12, 13, 17, 19, 21): image layouts, docker-archives,
// registries, auth files and plans that are FIFOs, devices, huge, of the wrong types, trickled a
// byte at a time, or that hold newlines. Each is refused in one line naming the document and the
// JSON path, with the right exit status, quickly, and nothing is written.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { CLI, type Run, expectOneLineError } from '../helpers/cli.js';
import { canRun, hasCommand } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

let work: string;
/** SHRINKWRAP_CACHE of the registry tests: a pull's cache is not an output, so it is kept out of `work`. */
let caches: string;
let cvmfs: string;
let baseDir: string;
const RELEASE = ['--release', 'AnalysisBase,21.2.75'];
// No credentials from the environment of whoever runs the suite; HOME is set per test.
const ENV: NodeJS.ProcessEnv = { ...process.env, SOURCE_DATE_EPOCH: '1600000000' };
for (const k of ['SHRINKWRAP_REGISTRY_AUTH', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR']) delete ENV[k];
/** A hang is a failure: the CLI is killed after this long. */
const KILL_AFTER_MS = 25_000;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** The CLI without blocking this process (servers run inside the test), killed if it hangs. */
function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run & { ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { env: { ...ENV, HOME: path.join(work, 'home-none'), ...env }, cwd: work });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const sha = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');
const blobFile = (dir: string, digest: string) => path.join(work, dir, 'blobs/sha256', digest.replace(/^sha256:/, ''));
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

interface Good {
  index: { manifests: Array<Record<string, unknown>> };
  manifest: { config: { digest: string; size: number; mediaType: string }; layers: Array<{ digest: string; size: number; mediaType: string }> };
  config: Record<string, unknown> & { config?: Record<string, unknown> };
}
let good: Good;

/** Stores `content` (a JSON value, or raw text) as a blob of `dir`; its descriptor's digest and size. */
function putBlob(dir: string, content: unknown): { digest: string; size: number } {
  const bytes = Buffer.from(typeof content === 'string' ? content : JSON.stringify(content));
  const digest = `sha256:${sha(bytes)}`;
  fs.writeFileSync(blobFile(dir, digest), bytes);
  return { digest, size: bytes.length };
}

/** A copy of the good layout with its config, manifest or index replaced (each correctly digested and linked). */
function variant(name: string, edit: { config?: unknown; manifest?: unknown; index?: unknown }): string {
  execFileSync('cp', ['-a', 'good', name], { cwd: work });
  let manifest: unknown = good.manifest;
  if (edit.config !== undefined) manifest = { ...good.manifest, config: { ...good.manifest.config, ...putBlob(name, edit.config) } };
  if (edit.manifest !== undefined) manifest = edit.manifest;
  const index = edit.index ?? { ...good.index, manifests: [{ ...good.index.manifests[0], ...putBlob(name, manifest) }] };
  fs.writeFileSync(path.join(work, name, 'index.json'), typeof index === 'string' ? index : JSON.stringify(index));
  return name;
}

/** A docker-archive of `members` (name → content; a JSON value or raw text). */
function dockerArchive(name: string, members: Record<string, unknown>): string {
  const dir = path.join(work, `${name}.d`);
  fs.mkdirSync(dir);
  for (const [m, content] of Object.entries(members)) fs.writeFileSync(path.join(dir, m), typeof content === 'string' ? content : JSON.stringify(content));
  execFileSync('tar', ['-C', dir, '-cf', path.join(work, name), ...Object.keys(members)]);
  fs.rmSync(dir, { recursive: true });
  return path.join(work, name);
}

/** A build on `base`, each to its own output: one that wrongly succeeds must not make the next fail for "already exists". */
let outputs = 0;
const build = (base: string, extra: string[] = []) => ['--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '-o', path.join(work, `never-${++outputs}.sqfs`), ...extra];
/** A good SquashFS image for `verify --manifest` (outside `work`: made once, not an output of a test). */
let image: string;

beforeAll(async () => {
  work = tmpDir('sw-hostile-');
  caches = tmpDir('sw-hostile-cache-');
  ({ cvmfs, base: baseDir } = await ensureExample());
  fs.mkdirSync(path.join(work, 'home-none'));
  image = path.join(caches, 'good.sqfs');
  const made = await run(['--cvmfs-root', cvmfs, ...RELEASE, '-o', image, '-q']);
  if (made.code !== 0) throw new Error(`the good image: ${made.stderr}`);
  if (!hasCommand('umoci')) return;
  execFileSync('sh', ['-c', `umoci init --layout good && umoci new --image good:t && umoci unpack --rootless --image good:t b && rm -rf b/rootfs && cp -a '${baseDir}' b/rootfs && umoci repack --image good:t b && rm -rf b`], { cwd: work });
  const index = readJson(path.join(work, 'good/index.json'));
  const manifest = readJson(blobFile('good', index.manifests[0].digest));
  good = { index, manifest, config: readJson(blobFile('good', manifest.config.digest)) };
  // Uncompressed, for docker-archives.
  execFileSync('sh', ['-c', `gzip -dc '${blobFile('good', good.manifest.layers[0]!.digest)}' > '${path.join(work, 'layer.tar')}'`]);
});

afterAll(() => execFileSync('rm', ['-rf', work, caches]));

/** Runs `args`, expects one line naming `culprit` with `code`, and no output left behind. */
async function expectRefused(args: string[], code: number, culprit: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Run & { ms: number }> {
  const before = fs.readdirSync(work).sort();
  const r = await run(args, env);
  expectOneLineError(r, code, culprit);
  expect(fs.readdirSync(work).sort()).toEqual(before);
  return r;
}

const needsUmoci = () => canRun(hasCommand('umoci'), 'hostile documents', 'umoci builds the good layout');

describe('case 12: documents that are FIFOs or devices are refused, not read', () => {
  const rows: Array<[string, () => [string[], NodeJS.ProcessEnv?], RegExp]> = [
    [
      'manifest blob is a FIFO',
      () => {
        const dir = variant('manifest-fifo', {});
        const file = blobFile(dir, (readJson(path.join(work, dir, 'index.json')) as Good['index']).manifests[0]!['digest'] as string);
        fs.rmSync(file);
        execFileSync('mkfifo', [file]);
        return [build(`oci:${path.join(work, dir)}:t`)];
      },
      /manifest-fifo:t: manifest sha256:[0-9a-f]{64} \(.*\): not a regular file \(a FIFO\)/,
    ],
    [
      'config blob is a FIFO',
      () => {
        execFileSync('cp', ['-a', 'good', 'config-fifo'], { cwd: work });
        const file = blobFile('config-fifo', good.manifest.config.digest);
        fs.rmSync(file);
        execFileSync('mkfifo', [file]);
        return [build(`oci:${path.join(work, 'config-fifo')}:t`)];
      },
      /config-fifo:t: config sha256:[0-9a-f]{64} \(.*\): not a regular file \(a FIFO\)/,
    ],
    [
      'index.json -> /dev/zero',
      () => {
        execFileSync('cp', ['-a', 'good', 'index-zero'], { cwd: work });
        fs.rmSync(path.join(work, 'index-zero/index.json'));
        fs.symlinkSync('/dev/zero', path.join(work, 'index-zero/index.json'));
        return [build(`oci:${path.join(work, 'index-zero')}:t`)];
      },
      /index-zero\/index\.json: is a symbolic link/,
    ],
    [
      'layer blob is a FIFO described as 0 bytes',
      () => {
        const empty = `sha256:${sha('')}`;
        const dir = variant('layer-fifo', { manifest: { ...good.manifest, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: empty, size: 0 }] } });
        execFileSync('mkfifo', [blobFile(dir, empty)]);
        return [build(`oci:${path.join(work, dir)}:t`)];
      },
      /layer-fifo:t: layer 1 sha256:e3b0c4[0-9a-f]+: .* is not a regular file/,
    ],
    [
      '~/.docker/config.json is a FIFO',
      () => {
        fs.mkdirSync(path.join(work, 'home-fifo/.docker'), { recursive: true });
        execFileSync('mkfifo', [path.join(work, 'home-fifo/.docker/config.json')]);
        return [build('docker://127.0.0.1:9/x/y:1', ['--tls-verify', 'false']), { HOME: path.join(work, 'home-fifo') }];
      },
      /home-fifo\/\.docker\/config\.json: not a regular file \(a FIFO\)/,
    ],
    [
      'verify --manifest is a FIFO',
      () => {
        execFileSync('mkfifo', [path.join(work, 'plan.fifo')]);
        return [['verify', image, '--manifest', path.join(work, 'plan.fifo')]];
      },
      /--manifest .*plan\.fifo: not a regular file \(a FIFO\)/,
    ],
    [
      'push: index.json -> /dev/zero',
      () => {
        execFileSync('cp', ['-a', 'good', 'push-zero'], { cwd: work });
        fs.rmSync(path.join(work, 'push-zero/index.json'));
        fs.symlinkSync('/dev/zero', path.join(work, 'push-zero/index.json'));
        return [['push', `oci:${path.join(work, 'push-zero')}`, 'docker://127.0.0.1:9/x/y:1', '--tls-verify', 'false']];
      },
      /push-zero\/index\.json: is a symbolic link/,
    ],
  ];
  for (const [name, setup, culprit] of rows) {
    it(`${name}: exit 2 at once, one line naming it`, async () => {
      if (!needsUmoci()) return;
      const [args, env] = setup();
      const r = await expectRefused(args, 2, culprit, env);
      expect(r.ms).toBeLessThan(15_000);
    });
  }
});

describe('registry documents (a registry in this process)', () => {
  let server: http.Server;
  let port: number;
  /** repository → manifest (or index) served for tag 1; blobs come from the good layout. */
  const documents = new Map<string, { type: string; body: string }>();
  const trickling = new Set<NodeJS.Timeout>();
  /** Sends `body` one byte every 2 s: never idle for long, never done. */
  const trickle = (res: http.ServerResponse, body: Buffer) => {
    let i = 0;
    const t = setInterval(() => {
      if (i < body.length) res.write(body.subarray(i, ++i));
      else {
        clearInterval(t);
        res.end();
      }
    }, 2000);
    trickling.add(t);
    res.on('close', () => clearInterval(t));
  };
  const requests: string[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      requests.push(url);
      if (url === '/v2/') return void res.writeHead(200).end('{}');
      const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url);
      if (!m) return void res.writeHead(404).end();
      const [, repo, kind, ref] = m as unknown as [string, string, string, string];
      if (kind === 'manifests') {
        if (repo === 'newline/img') {
          return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such\\nmanifest\\u001b[31m"}]}');
        }
        if (repo === 'trickle/manifest') {
          res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': '1000' });
          return trickle(res, Buffer.alloc(1000, ' '));
        }
        const doc = documents.get(repo);
        if (!doc) return void res.writeHead(404).end();
        return void res.writeHead(200, { 'content-type': doc.type }).end(doc.body);
      }
      const file = path.join(work, 'good/blobs/sha256', ref.replace(/^sha256:/, ''));
      if (!/^sha256:[0-9a-f]{64}$/.test(ref) || !fs.existsSync(file)) return void res.writeHead(404).end();
      const bytes = fs.readFileSync(file);
      res.writeHead(200, { 'content-length': String(bytes.length) });
      if (repo === 'trickle/blob' && ref === good.manifest.config.digest) return trickle(res, bytes);
      res.end(bytes);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
    if (!hasCommand('umoci')) return;
    const layer = good.manifest.layers[0]!;
    const manifest = (layers: unknown[]) => ({ type: OCI_MANIFEST, body: JSON.stringify({ ...good.manifest, mediaType: OCI_MANIFEST, layers }) });
    documents.set('layers/null', manifest([null]));
    documents.set('layer/nosize', manifest([{ mediaType: layer.mediaType, digest: layer.digest }]));
    documents.set('layer/stringsize', manifest([{ ...layer, size: String(layer.size) }]));
    documents.set('index/null', { type: OCI_INDEX, body: JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [null] }) });
    documents.set('trickle/blob', manifest([layer]));
    documents.set('layer/huge', manifest([{ ...layer, size: 64 * 2 ** 30 + 1 }]));
  });
  afterAll(() => {
    for (const t of trickling) clearInterval(t);
    server.closeAllConnections();
    server.close();
  });
  const ref = (repo: string) => `docker://127.0.0.1:${port}/${repo}:1`;
  const pull = (repo: string, extra: string[] = []) => build(ref(repo), ['--tls-verify', 'false', '--platform', 'linux/amd64', ...extra]);

  it('case 13: a manifest sent one byte every 2 s ends at --registry-timeout, not never', async () => {
    const r = await expectRefused(pull('trickle/manifest', ['--registry-timeout', '3']), 1, /trickle\/manifest:1: .*manifests\/1: not finished within 3 s/);
    expect(r.ms).toBeLessThan(15_000);
  });
  it('case 13 sibling: a blob (the config) sent one byte every 2 s ends too', async () => {
    if (!needsUmoci()) return;
    const r = await expectRefused(pull('trickle/blob', ['--registry-timeout', '3']), 1, /trickle\/blob:1: .*blobs\/sha256:[0-9a-f]{64}: not finished within 3(\.\d+)? s/, { SHRINKWRAP_CACHE: path.join(caches, 'trickle') });
    expect(r.ms).toBeLessThan(15_000);
  });
  // The PUT gets 200 and a trickled body: the error is the status, read within the deadline.
  it('case 13 sibling: push has --registry-timeout, and a trickled answer ends at it', async () => {
    if (!needsUmoci()) return;
    const r = await expectRefused(['push', `oci:${path.join(work, 'good')}:t`, ref('trickle/manifest'), '--tls-verify', 'false', '--registry-timeout', '3'], 1, /trickle\/manifest:1: unexpected answer 200 OK \(manifest 1\)/);
    expect(r.ms).toBeLessThan(15_000);
  });
  it('case 14 sibling: a layer described larger than --max-layer-size is refused before it is downloaded', async () => {
    if (!needsUmoci()) return;
    const blobGets = () => requests.filter((u) => u.startsWith('/v2/layer/huge/blobs/')).length;
    await expectRefused(pull('layer/huge'), 2, /layer\/huge:1: layer sha256:[0-9a-f]{64} is 68719476737 bytes, more than --max-layer-size allows/, { SHRINKWRAP_CACHE: path.join(caches, 'huge') });
    expect(blobGets()).toBe(0);
  });
  const rows: Array<[string, string, RegExp]> = [
    ['case 17: manifest layers:[null]', 'layers/null', /layers\/null:1: manifest 1: layers\[0\]: expected an object, got null/],
    ['case 17: index manifests:[null]', 'index/null', /index\/null:1: manifest 1: manifests\[0\]: expected an object, got null/],
    ['case 17: layer descriptor without size', 'layer/nosize', /layer\/nosize:1: manifest 1: layers\[0\]\.size: missing/],
    ['case 21: layer size given as a string', 'layer/stringsize', /layer\/stringsize:1: manifest 1: layers\[0\]\.size: expected a size \(a whole number of bytes\), got the string "\d+"/],
    ['case 21 sibling: a registry error message with a newline and an escape', 'newline/img', /newline\/img:1: no such\\nmanifest\\u001b\[31m \(404\)/],
  ];
  for (const [name, repo, culprit] of rows) {
    it(`${name}: exit 2, one line naming the document and the field`, async () => {
      if (!needsUmoci()) return;
      await expectRefused(pull(repo), 2, culprit, { SHRINKWRAP_CACHE: path.join(caches, repo) });
    });
  }
});

describe('case 17: documents of the wrong shape are exit 2 naming the file and the field', () => {
  const rows: Array<[string, () => [string[], NodeJS.ProcessEnv?], RegExp]> = [
    ['OCI index manifests:[null]', () => [build(`oci:${path.join(work, variant('oci-index-null', { index: { schemaVersion: 2, manifests: [null] } }))}`)], /oci-index-null\/index\.json: manifests\[0\]: expected an object, got null/],
    ['OCI manifest null', () => [build(`oci:${path.join(work, variant('oci-manifest-null', { manifest: null }))}:t`)], /oci-manifest-null:t: manifest sha256:[0-9a-f]{64}: expected an object, got null/],
    ['OCI config null', () => [build(`oci:${path.join(work, variant('oci-config-null', { config: 'null' }))}:t`)], /oci-config-null:t: config sha256:[0-9a-f]{64}: expected an object, got null/],
    ['OCI layers:[null]', () => [build(`oci:${path.join(work, variant('oci-layers-null', { manifest: { ...good.manifest, layers: [null] } }))}:t`)], /oci-layers-null:t: manifest sha256:[0-9a-f]{64}: layers\[0\]: expected an object, got null/],
    [
      'docker-archive manifest [null]',
      () => [build(`docker-archive:${dockerArchive('da-null.tar', { 'manifest.json': [null], 'config.json': good.config, 'layer.tar': '' })}`)],
      /da-null\.tar: manifest\.json: \[0\]: expected an object, got null/,
    ],
    [
      'docker-archive RepoTags a string',
      () => [build(`docker-archive:${dockerArchive('da-tags.tar', { 'manifest.json': [{ Config: 'config.json', RepoTags: 'img:t', Layers: ['layer.tar'] }], 'config.json': good.config })}:img:t`)],
      /da-tags\.tar:img:t: manifest\.json: \[0\]\.RepoTags: expected an array of strings, got the string "img:t"/,
    ],
    [
      'docker-archive Layers:[1]',
      () => [build(`docker-archive:${dockerArchive('da-layers.tar', { 'manifest.json': [{ Config: 'config.json', RepoTags: ['img:t'], Layers: [1] }], 'config.json': good.config })}`)],
      /da-layers\.tar: manifest\.json: \[0\]\.Layers\[0\]: expected a string, got the number 1/,
    ],
    [
      'docker-archive config null',
      () => [build(`docker-archive:${dockerArchive('da-config.tar', { 'manifest.json': [{ Config: 'config.json', RepoTags: ['img:t'], Layers: ['layer.tar'] }], 'config.json': 'null', 'layer.tar': '' })}`)],
      /da-config\.tar: config config\.json: expected an object, got null/,
    ],
    [
      'docker-archive manifest.json over 4 GiB',
      () => {
        // A header saying 4 GiB + 1 bytes, then a sparse hole of that size: no disk is used.
        const file = path.join(work, 'da-huge.tar');
        execFileSync('python3', ['-c', `import tarfile
size = 4 * 1024**3 + 1
h = tarfile.TarInfo('manifest.json'); h.size = size
with open('${file}', 'wb') as f:
    f.write(h.tobuf(tarfile.USTAR_FORMAT))
    f.truncate(512 + (size + 511) // 512 * 512 + 1024)`]);
        return [build(`docker-archive:${file}`)];
      },
      /da-huge\.tar: manifest\.json is 4294967297 bytes, more than the 4194304 allowed/,
    ],
    [
      '~/.docker/config.json with "auth": 5',
      () => {
        fs.mkdirSync(path.join(work, 'home-auth/.docker'), { recursive: true });
        fs.writeFileSync(path.join(work, 'home-auth/.docker/config.json'), JSON.stringify({ auths: { '127.0.0.1:9': { auth: 5 } } }));
        return [build('docker://127.0.0.1:9/x/y:1', ['--tls-verify', 'false']), { HOME: path.join(work, 'home-auth') }];
      },
      /home-auth\/\.docker\/config\.json: auths\["127\.0\.0\.1:9"\]\.auth: expected a string, got the number 5/,
    ],
    [
      'verify --manifest with entries:[null]',
      () => {
        fs.writeFileSync(path.join(work, 'plan-null.json'), '{"entries":[null]}');
        return [['verify', image, '--manifest', path.join(work, 'plan-null.json')]];
      },
      /--manifest .*plan-null\.json: entries\[0\]: expected an object, got null/,
    ],
    [
      'verify --manifest with a numeric path',
      () => {
        fs.writeFileSync(path.join(work, 'plan-num.json'), JSON.stringify({ entries: [{ path: 5, type: 'dir', size: 0, mode: 0o755, uid: 0, gid: 0, mtime: 0 }] }));
        return [['verify', image, '--manifest', path.join(work, 'plan-num.json')]];
      },
      /--manifest .*plan-num\.json: entries\[0\]\.path: expected a string, got the number 5/,
    ],
  ];
  for (const [name, setup, culprit] of rows) {
    it(`${name}`, async () => {
      if (!needsUmoci()) return;
      const [args, env] = setup();
      await expectRefused(args, 2, culprit, env);
    });
  }
});

describe('case 19: a base config of the wrong types is refused naming the field, not carried over mangled', () => {
  const rows: Array<[string, Record<string, unknown>, RegExp]> = [
    ['Env a string', { Env: 'PATH=/opt/bin' }, /config\.Env: expected an array of strings, got the string "PATH=\/opt\/bin"/],
    ['Labels a string', { Labels: 'abc' }, /config\.Labels: expected an object, got the string "abc"/],
    ['Env a number', { Env: 5 }, /config\.Env: expected an array of strings, got the number 5/],
    ['Cmd a string (sibling)', { Cmd: '/bin/sh' }, /config\.Cmd: expected an array of strings, got the string "\/bin\/sh"/],
  ];
  for (const [name, inner, culprit] of rows) {
    it(`${name}: exit 2`, async () => {
      if (!needsUmoci()) return;
      const dir = variant(`cfg-${name.split(' ').slice(0, 2).join('-')}`, { config: { ...good.config, config: { ...good.config.config, ...inner } } });
      await expectRefused(build(`oci:${path.join(work, dir)}:t`, ['--format', 'oci']), 2, new RegExp(`${dir}:t: config sha256:[0-9a-f]{64}: ${culprit.source}`));
    });
  }
  it('history and diff_ids of the wrong types (siblings): exit 2', async () => {
    if (!needsUmoci()) return;
    const a = variant('cfg-history', { config: { ...good.config, history: 'made by hand' } });
    await expectRefused(build(`oci:${path.join(work, a)}:t`, ['--format', 'oci']), 2, /cfg-history:t: config sha256:[0-9a-f]{64}: history: expected an array, got the string "made by hand"/);
    const b = variant('cfg-diffids', { config: { ...good.config, rootfs: { type: 'layers', diff_ids: [5] } } });
    await expectRefused(build(`oci:${path.join(work, b)}:t`), 2, /cfg-diffids:t: config sha256:[0-9a-f]{64}: rootfs\.diff_ids\[0\]: expected a digest/);
  });
});

describe('case 21: sizes, digests and references', () => {
  it('an OCI layer size given as a string names the field (not "is 198 bytes, its descriptor says 198")', async () => {
    if (!needsUmoci()) return;
    const layer = good.manifest.layers[0]!;
    const dir = variant('oci-size-string', { manifest: { ...good.manifest, layers: [{ ...layer, size: String(layer.size) }] } });
    await expectRefused(build(`oci:${path.join(work, dir)}:t`), 2, /oci-size-string:t: manifest sha256:[0-9a-f]{64}: layers\[0\]\.size: expected a size \(a whole number of bytes\), got the string "\d+"/);
  });
  it('a newline in a docker:// reference: one line, naming the option', async () => {
    const r = await expectRefused(build('docker://127.0.0.1:9/x\ny:1'), 2, /--base docker:\/\/127\.0\.0\.1:9\/x\\ny:1: invalid image reference: contains a control character/);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
  });
  it('any message echoing a newline the user gave is one line (sibling: the last resort in the CLI)', async () => {
    await expectRefused(build(`oci:${path.join(work, 'no\nlayout')}`), 2, /--base oci:.*no\\nlayout: .*no such directory/);
  });
  it('a digest of the wrong length (sibling): names the field', async () => {
    if (!needsUmoci()) return;
    const layer = good.manifest.layers[0]!;
    const dir = variant('oci-digest-short', { manifest: { ...good.manifest, layers: [{ ...layer, digest: layer.digest.slice(0, 20) }] } });
    await expectRefused(build(`oci:${path.join(work, dir)}:t`), 2, /oci-digest-short:t: manifest sha256:[0-9a-f]{64}: layers\[0\]\.digest: expected a sha256 digest \(64 lowercase hex digits\)/);
  });
});

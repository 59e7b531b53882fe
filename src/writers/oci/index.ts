// OCI output: an image layout directory (`--format oci`) or the combined docker-archive that
// `docker load`, `podman load` and skopeo read (`--format docker-archive`: the same layout plus a
// Docker manifest.json, in one tar). The base image's layer blobs are kept byte for byte (same
// digests, so registries deduplicate them and can mount them across repositories); the new layers
// hold what shrinkwrap adds; the config extends the base's (diff_ids, history, Env, Labels).
// Every JSON document is serialised with a fixed key order and SOURCE_DATE_EPOCH as its time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Descriptor, type ImageConfig, type Index, type Manifest, MediaType, REF_NAME, hostPlatform } from '../../formats/oci.js';
import { blobName, blobPath, makeBlobsDir, writeFileAtomic, writeLayoutFiles } from '../../formats/oci-layout.js';
import { fromText, fsArg } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, describeSystemError } from '../../model/errors.js';
import { sha256 } from '../../util/digest.js';
import { TarEncoder } from '../tar/encoder.js';
import { type LayerCompression, writeLayer } from '../tar/layer.js';

export interface KeptLayer {
  /** The blob as stored in the base (a file, or a member of a docker-archive). */
  blob: { file: string; offset: number; length: number };
  digest: string;
  diffId: string;
  mediaType: string;
}

export interface NewLayer {
  /** What it holds, for history and messages: "atlas.cern.ch", "release AnalysisBase 21.2.75", ... */
  label: string;
  entries: Entry[];
  /** The layer's blob, made already (a merged part's, kept in its cache): copied, not written. */
  blob?: KeptLayer;
  /** Passed on to writeLayer: where files' content comes from (default: their source). */
  content?: (e: Entry) => Iterable<Buffer>;
}

export interface OciWriteOptions {
  format: 'oci' | 'docker-archive';
  /** Repository name and tag: index annotations, docker-archive RepoTags. */
  name: string;
  tag: string;
  /** The base config (null: a fresh one for this machine's platform). */
  baseConfig: ImageConfig | null;
  baseLayers: KeptLayer[];
  /** A base that has no layer blobs (a directory): its entries become the first new layer. */
  layers: NewLayer[];
  compression: LayerCompression;
  level: number;
  threads: number;
  epoch: number;
  /** Environment to set (NAME=value), replacing same-named base variables. */
  env: string[];
  labels: Record<string, string>;
  /** Manifest annotations (base digest and name). */
  annotations: Record<string, string>;
  createdBy: string;
  /** File content and files written into new layers so far (all layers together). */
  onProgress?: (contentBytes: number, files: number) => void;
}

export interface OciWriteResult {
  manifestDigest: string;
  configDigest: string;
  layers: Array<{ label: string; digest: string; diffId: string; size: number; kept: boolean }>;
  bytes: number;
}

/** The blobs of the layout being written; `bytes` counts what was added. */
class BlobStore {
  readonly dir: string;
  bytes = 0;
  constructor(private readonly layout: string) {
    this.dir = makeBlobsDir(layout);
  }
  /** Every digest here is a sha256 we computed or checked. */
  path(digest: string): string {
    const file = blobPath(this.layout, digest);
    if (file === null) throw new BuildError(`${digest}: only sha256 blobs can be stored`);
    return file;
  }
  json(doc: unknown): { digest: string; size: number } {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = sha256(bytes);
    writeFileAtomic(this.path(digest), bytes);
    this.bytes += bytes.length;
    return { digest, size: bytes.length };
  }
  async copy(l: KeptLayer): Promise<void> {
    const to = this.path(l.digest);
    if (fs.existsSync(to)) return;
    const { file, offset, length } = l.blob;
    if (offset === 0 && fs.statSync(file).size === length) fs.copyFileSync(file, to, fs.constants.COPYFILE_FICLONE);
    else await pipeline(fs.createReadStream(file, { start: offset, end: offset + length - 1, highWaterMark: 1 << 20 }), fs.createWriteStream(to));
    this.bytes += length;
  }
}

/** Write the image layout into `layoutDir` (created). */
async function writeLayout(layoutDir: string, o: OciWriteOptions, diag: Diagnostics): Promise<OciWriteResult & { manifestSize: number; configName: string; layerNames: string[] }> {
  const store = new BlobStore(layoutDir);
  const created = new Date(o.epoch * 1000).toISOString().replace('.000Z', 'Z');
  const result: OciWriteResult['layers'] = [];
  const descriptors: Descriptor[] = [];
  for (const l of o.baseLayers) {
    await store.copy(l);
    descriptors.push({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length });
    result.push({ label: 'base', digest: l.digest, diffId: l.diffId, size: l.blob.length, kept: true });
  }
  const done = { bytes: 0, files: 0 };
  for (const [i, layer] of o.layers.entries()) {
    if (layer.blob) {
      const l = layer.blob;
      await store.copy(l);
      descriptors.push({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length });
      result.push({ label: layer.label, digest: l.digest, diffId: l.diffId, size: l.blob.length, kept: false });
      continue;
    }
    const tmp = path.join(store.dir, `.new-layer-${i}`);
    const before = { ...done };
    const onProgress = (b: number, f: number) => {
      done.bytes = before.bytes + b;
      done.files = before.files + f;
      o.onProgress?.(done.bytes, done.files);
    };
    const blob = await writeLayer(layer.entries, tmp, { compression: o.compression, level: o.level, threads: o.threads, onProgress, content: layer.content }, diag);
    fs.renameSync(tmp, store.path(blob.digest));
    store.bytes += blob.size;
    descriptors.push({ mediaType: blob.mediaType, digest: blob.digest, size: blob.size });
    result.push({ label: layer.label, digest: blob.digest, diffId: blob.diffId, size: blob.size, kept: false });
  }

  // The config: the base's, extended; key order as the base had it, new keys in spec order.
  const base: ImageConfig = o.baseConfig ? structuredClone(o.baseConfig) : { architecture: hostPlatform().split('/')[1], os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
  const inner = { ...(base.config ?? {}) };
  const env = new Map<string, string>();
  for (const kv of inner.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']) env.set(kv.slice(0, kv.indexOf('=')), kv);
  for (const kv of o.env) env.set(kv.slice(0, kv.indexOf('=')), kv);
  inner.Env = [...env.values()];
  inner.Labels = { ...(inner.Labels ?? {}), ...o.labels };
  const history = [...(base.history ?? [])];
  if (!o.baseConfig && o.baseLayers.length > 0) history.push({ created, created_by: 'base root filesystem tarball', comment: 'base' });
  for (const l of o.layers) history.push({ created, created_by: o.createdBy, comment: l.label });
  const config: ImageConfig = {
    ...base,
    created,
    config: inner,
    rootfs: { type: 'layers', diff_ids: result.map((l) => l.diffId) },
    history,
  };
  const configDesc = store.json(config);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDesc.digest, size: configDesc.size },
    layers: descriptors,
    annotations: { 'org.opencontainers.image.created': created, ...o.annotations },
  };
  const manifestDesc = store.json(manifest);
  const index: Index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [
      {
        mediaType: MediaType.ociManifest,
        digest: manifestDesc.digest,
        size: manifestDesc.size,
        annotations: { 'io.containerd.image.name': `${o.name}:${o.tag}`, [REF_NAME]: o.tag },
      },
    ],
  };
  writeLayoutFiles(layoutDir, index);
  return {
    manifestDigest: manifestDesc.digest,
    configDigest: configDesc.digest,
    layers: result,
    bytes: store.bytes,
    manifestSize: manifestDesc.size,
    configName: blobName(configDesc.digest)!,
    layerNames: descriptors.map((d) => blobName(d.digest)!),
  };
}

/**
 * Write the image to `out` (a directory for oci, a file for docker-archive; it must not exist and
 * is created exclusively). A docker-archive's layout is staged in `stageDir` (created; best beside
 * `out`, on its file system), and each blob is removed from there once it is in the tar: the
 * archive needs little more space than its own size.
 */
export async function writeOci(out: string, o: OciWriteOptions, diag: Diagnostics, stageDir: string): Promise<OciWriteResult> {
  try {
    if (o.format === 'oci') {
      fs.mkdirSync(out);
      return await writeLayout(out, o, diag);
    }
    fs.mkdirSync(stageDir, { mode: 0o700 });
    const r = await writeLayout(stageDir, o, diag);
    // Docker's manifest.json beside the layout: what `docker load` reads (docker ≥ 25 writes the same).
    const dockerManifest = [{ Config: r.configName, RepoTags: [`${o.name}:${o.tag}`], Layers: r.layerNames }];
    fs.writeFileSync(path.join(stageDir, 'manifest.json'), JSON.stringify(dockerManifest));
    await tarDirectory(stageDir, out, o.epoch, diag);
    fs.rmSync(stageDir, { recursive: true, force: true });
    return { ...r, bytes: fs.statSync(out).size };
  } catch (err) {
    if (err instanceof BuildError || (err as { exitCode?: number }).exitCode !== undefined) throw err;
    throw new BuildError(`cannot write ${out}: ${describeSystemError(err)}`);
  }
}

/** A flat tar of a small directory tree (the layout): sorted, root-owned, one fixed time. */
async function tarDirectory(dir: string, out: string, epoch: number, diag: Diagnostics): Promise<void> {
  const entries: Entry[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.statSync(path.join(dir, r));
      const common = { path: '/' + r, uid: 0, gid: 0, mtime: epoch, reason: 'docker-archive' };
      if (st.isDirectory()) {
        entries.push({ ...common, type: 'dir', mode: 0o755, size: 0 });
        walk(r);
      } else entries.push({ ...common, type: 'file', mode: 0o644, size: st.size, source: fromText(path.join(dir, r)) });
    }
  };
  walk('');
  // Exclusively: the output's directory may be shared, and a name there may be a planted link.
  const fd = fs.openSync(out, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
  try {
    const tar = new TarEncoder((b) => {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done);
    }, diag);
    for (const e of entries) {
      await tar.add(e);
      // Each staged file, once in the archive, gives its space back.
      if (e.source !== undefined) fs.rmSync(fsArg(e.source));
    }
    await tar.end();
  } finally {
    fs.closeSync(fd);
  }
}

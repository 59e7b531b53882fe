// An OCI image layout directory (image-spec image-layout.md) as a base image: index.json → (nested
// index → platform) → manifest → config and layers. Every document is checked against the digest
// and size of the descriptor that names it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError, describeSystemError } from '../../model/errors.js';
import { MEDIA } from '../registry/client.js';
import { platformText } from '../registry/layout.js';
import { sha256 } from '../../util/digest.js';
import type { Region } from './blob.js';


const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

/** The parts of a stored image a base needs: its config, its layers' blobs, and its identity. */
export interface StoredImage {
  manifestDigest: string;
  config: ImageConfig;
  layers: Array<{ region: Region; descriptor: Descriptor }>;
  /** The tag it was stored under, if any. */
  refName: string | null;
}

/** The image config fields shrinkwrap reads or carries over (image-spec config.md). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: { Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string; Labels?: Record<string, string>; User?: string };
  rootfs?: { type: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [k: string]: unknown;
}

/** `linux/amd64` for this machine (what a runtime here would pick). */
export function hostPlatform(): string {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', arm: 'arm' };
  return `linux/${arch[process.arch] ?? process.arch}`;
}


/** Pick the descriptor for `platform` (os/arch[/variant]) from an index; InputError listing what there is. */
export function choosePlatform(manifests: Descriptor[], platform: string, label: string): Descriptor {
  const [os, arch, variant] = platform.split('/');
  const match = manifests.filter((d) => d.platform && d.platform.os === os && d.platform.architecture === arch && (!variant || d.platform.variant === variant));
  if (match.length === 0) {
    // Attestations (buildx) are listed as unknown/unknown: they are not images.
    const have = manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => platformText(d.platform!));
    throw new InputError(`${label}: no ${platform} image in the index (has ${[...new Set(have)].join(', ') || 'no platforms'}); choose one with --platform OS/ARCH`);
  }
  return match[0]!;
}

class Layout {
  constructor(
    readonly dir: string,
    readonly label: string,
  ) {}

  blobPath(d: Descriptor, what: string): string {
    const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(String(d?.digest));
    if (!m || m[1] !== 'sha256' || m[2]!.length !== 64) throw new InputError(`${this.label}: ${what} has an invalid digest '${d?.digest}'`);
    return path.join(this.dir, 'blobs', m[1], m[2]!);
  }

  /** A small JSON document, verified against its descriptor. */
  json<T>(d: Descriptor, what: string): { value: T; bytes: Buffer } {
    const file = this.blobPath(d, what);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      throw new InputError(`${this.label}: ${what} ${d.digest}: missing blob (${describeSystemError(err)})`);
    }
    const digest = sha256(bytes);
    if (digest !== d.digest) throw new InputError(`${this.label}: ${what} blob ${d.digest} has digest ${digest} (corrupt layout)`);
    if (typeof d.size === 'number' && d.size !== bytes.length) throw new InputError(`${this.label}: ${what} ${d.digest} is ${bytes.length} bytes, its descriptor says ${d.size}`);
    try {
      return { value: JSON.parse(bytes.toString('utf8')) as T, bytes };
    } catch {
      throw new InputError(`${this.label}: ${what} ${d.digest} is not valid JSON`);
    }
  }
}

/** Read an image from an OCI layout directory. `tag` null: the layout's only image. */
export function readOciLayout(dir: string, tag: string | null, platform: string, label: string): StoredImage {
  const layout = new Layout(dir, label);
  const read = (name: string) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as unknown;
    } catch (err) {
      const why = err instanceof SyntaxError ? 'not valid JSON' : describeSystemError(err);
      throw new InputError(`${label}: ${path.join(dir, name)}: ${why}`);
    }
  };
  const marker = read('oci-layout') as { imageLayoutVersion?: string };
  if (typeof marker?.imageLayoutVersion !== 'string') throw new InputError(`${label}: ${path.join(dir, 'oci-layout')}: no imageLayoutVersion (not an OCI image layout)`);
  const index = read('index.json') as { manifests?: Descriptor[] };
  const all = Array.isArray(index?.manifests) ? index.manifests : [];
  const refName = (d: Descriptor) => d.annotations?.['org.opencontainers.image.ref.name'] ?? null;
  let chosen: Descriptor;
  if (tag !== null) {
    const hits = all.filter((d) => refName(d) === tag);
    if (hits.length === 0) throw new InputError(`${label}: no image tagged '${tag}' (tags: ${all.map(refName).filter(Boolean).join(', ') || 'none'})`);
    chosen = hits.length === 1 ? hits[0]! : choosePlatform(hits, platform, label);
  } else {
    if (all.length === 0) throw new InputError(`${label}: index.json lists no images`);
    const tags = [...new Set(all.map(refName))];
    if (tags.length > 1) throw new InputError(`${label}: the layout holds several images; name one as ${label}:TAG (tags: ${tags.filter(Boolean).join(', ')})`);
    chosen = all.length === 1 ? all[0]! : choosePlatform(all, platform, label);
  }
  // Nested indexes (docker ≥ 25, multi-platform layouts) until a manifest.
  for (let depth = 0; chosen.mediaType === MEDIA.ociIndex || chosen.mediaType === MEDIA.dockerList; depth++) {
    if (depth > 4) throw new InputError(`${label}: indexes nested too deep`);
    const nested = layout.json<{ manifests?: Descriptor[] }>(chosen, 'index').value;
    chosen = choosePlatform(nested.manifests ?? [], platform, label);
  }
  if (chosen.mediaType !== MEDIA.ociManifest && chosen.mediaType !== MEDIA.dockerManifest) {
    throw new InputError(`${label}: unknown media type '${chosen.mediaType}' for an image manifest`);
  }
  const manifest = layout.json<{ config?: Descriptor; layers?: Descriptor[] }>(chosen, 'manifest').value;
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new InputError(`${label}: manifest ${chosen.digest} has no config or layers`);
  const config = layout.json<ImageConfig>(manifest.config, 'config').value;
  const layers = manifest.layers.map((d, i) => {
    if (!LAYER_TYPES.has(d.mediaType)) throw new InputError(`${label}: layer ${i + 1} ${d.digest}: unknown media type '${d.mediaType}'`);
    const file = layout.blobPath(d, `layer ${i + 1}`);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) throw new InputError(`${label}: layer ${i + 1} ${d.digest}: missing blob ${file}`);
    if (st.size !== d.size) throw new InputError(`${label}: layer ${i + 1} ${d.digest} is ${st.size} bytes, its descriptor says ${d.size}`);
    return { region: { file, offset: 0, length: st.size }, descriptor: d };
  });
  return { manifestDigest: chosen.digest, config, layers, refName: tag ?? refName(all[0]!) };
}

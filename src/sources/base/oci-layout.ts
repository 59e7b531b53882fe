// An OCI image layout directory (image-spec image-layout.md) as a base image: index.json → (nested
// index → platform) → manifest → config and layers. Every document is checked against the digest
// and size of the descriptor that names it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../../model/errors.js';
import { MEDIA } from '../../registry/client.js';
import { indexCheck, manifestCheck, platformText } from '../../registry/layout.js';
import { sha256 } from '../../util/digest.js';
import { type Check, MAX_CONFIG, MAX_DOCUMENT, any, arr, bool, digest, map, nullable, obj, optional, parseJson, readJsonFile, readRegularFile, singleLine, str } from '../../util/json-check.js';
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
  // Docker writes null for empty ones (the check lets null through, and every reader uses `??`);
  // the types say absent only, to match the OCI writer's OciConfig.
  config?: { Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string; Labels?: Record<string, string>; User?: string };
  rootfs?: { type: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [k: string]: unknown;
}

const strings = arr(str, 'an array of strings');
const objectOf = map(any);
/**
 * The fields of an image config the code reads or extends, with the types it relies on (a string
 * Env would be spread into characters, Labels "abc" into keys 0, 1, 2). Docker writes null for
 * empty lists and maps; absent and null mean the same.
 */
export const imageConfigCheck: Check<ImageConfig> = obj({
  architecture: optional(str),
  os: optional(str),
  variant: optional(str),
  config: optional(
    nullable(
      obj({
        Env: optional(nullable(strings)),
        Entrypoint: optional(nullable(strings)),
        Cmd: optional(nullable(strings)),
        WorkingDir: optional(str),
        User: optional(str),
        Labels: optional(nullable(map(str))),
        ExposedPorts: optional(nullable(objectOf)),
        Volumes: optional(nullable(objectOf)),
        StopSignal: optional(str),
      }),
    ),
  ),
  rootfs: obj({ type: str, diff_ids: arr(digest) }),
  history: optional(
    arr(obj({ created: optional(str), created_by: optional(str), author: optional(str), comment: optional(str), empty_layer: optional(bool) })),
  ),
}) as Check<ImageConfig>;

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

  /** Descriptors were checked (digest grammar) when their document was read; we store sha256 only. */
  blobPath(d: Descriptor, what: string): string {
    const m = /^sha256:([a-f0-9]{64})$/.exec(d.digest);
    if (!m) throw new InputError(`${this.label}: ${what} ${singleLine(d.digest, 80)}: only sha256 blobs can be read`);
    return path.join(this.dir, 'blobs', 'sha256', m[1]!);
  }

  /** A small JSON document, verified against its descriptor, then checked against its schema. */
  json<T>(d: Descriptor, what: string, check: Check<T>, limit = MAX_DOCUMENT): { value: T; bytes: Buffer } {
    const file = this.blobPath(d, what);
    const name = `${this.label}: ${what} ${d.digest}`;
    // The descriptor's size first: no need to open a blob that cannot be the one named.
    if (d.size > limit) throw new InputError(`${name}: its descriptor says ${d.size} bytes, more than the ${limit} allowed`);
    const bytes = readRegularFile(file, `${name} (${file})`, { limit });
    const digest = sha256(bytes);
    if (digest !== d.digest) throw new InputError(`${this.label}: ${what} blob ${d.digest} has digest ${digest} (corrupt layout)`);
    if (d.size !== bytes.length) throw new InputError(`${name} is ${bytes.length} bytes, its descriptor says ${d.size}`);
    return { value: parseJson(bytes, check, name), bytes };
  }
}

const markerCheck = obj({ imageLayoutVersion: str });

/** Read an image from an OCI layout directory. `tag` null: the layout's only image. */
export function readOciLayout(dir: string, tag: string | null, platform: string, label: string): StoredImage {
  const layout = new Layout(dir, label);
  // The layout's own files: regular files, not links (nothing in a layout needs to point elsewhere).
  const read = <T>(name: string, check: Check<T>) => readJsonFile(path.join(dir, name), check, `${label}: ${path.join(dir, name)}`, { limit: MAX_DOCUMENT, noFollow: true }).value;
  read('oci-layout', markerCheck);
  const all = read('index.json', indexCheck).manifests;
  const refName = (d: Descriptor) => d.annotations?.['org.opencontainers.image.ref.name'] ?? null;
  let chosen: Descriptor;
  if (tag !== null) {
    const hits = all.filter((d) => refName(d) === tag);
    if (hits.length === 0) throw new InputError(`${label}: no image tagged '${tag}' (tags: ${singleLine(all.map(refName).filter(Boolean).join(', ') || 'none', 200)})`);
    chosen = hits.length === 1 ? hits[0]! : choosePlatform(hits, platform, label);
  } else {
    if (all.length === 0) throw new InputError(`${label}: index.json lists no images`);
    const tags = [...new Set(all.map(refName))];
    if (tags.length > 1) throw new InputError(`${label}: the layout holds several images; name one as ${label}:TAG (tags: ${singleLine(tags.filter(Boolean).join(', '), 200)})`);
    chosen = all.length === 1 ? all[0]! : choosePlatform(all, platform, label);
  }
  // Nested indexes (docker ≥ 25, multi-platform layouts) until a manifest.
  for (let depth = 0; chosen.mediaType === MEDIA.ociIndex || chosen.mediaType === MEDIA.dockerList; depth++) {
    if (depth > 4) throw new InputError(`${label}: indexes nested too deep`);
    const nested = layout.json(chosen, 'index', indexCheck).value;
    chosen = choosePlatform(nested.manifests, platform, label);
  }
  if (chosen.mediaType !== MEDIA.ociManifest && chosen.mediaType !== MEDIA.dockerManifest) {
    throw new InputError(`${label}: unknown media type '${singleLine(chosen.mediaType, 100)}' for an image manifest`);
  }
  const manifest = layout.json(chosen, 'manifest', manifestCheck).value;
  const config = layout.json(manifest.config, 'config', imageConfigCheck, MAX_CONFIG).value;
  const layers = manifest.layers.map((d, i) => {
    if (!LAYER_TYPES.has(d.mediaType)) throw new InputError(`${label}: layer ${i + 1} ${d.digest}: unknown media type '${singleLine(d.mediaType, 100)}'`);
    const file = layout.blobPath(d, `layer ${i + 1}`);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) throw new InputError(`${label}: layer ${i + 1} ${d.digest}: missing blob ${file}`);
    // A FIFO or device described as 0 bytes would pass the size check and block or never end.
    if (!st.isFile()) throw new InputError(`${label}: layer ${i + 1} ${d.digest}: ${file} is not a regular file`);
    if (st.size !== d.size) throw new InputError(`${label}: layer ${i + 1} ${d.digest} is ${st.size} bytes, its descriptor says ${d.size}`);
    return { region: { file, offset: 0, length: st.size }, descriptor: d };
  });
  return { manifestDigest: chosen.digest, config, layers, refName: tag ?? refName(all[0]!) };
}

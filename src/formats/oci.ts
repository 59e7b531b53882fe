// The OCI image format (image-spec descriptor.md, manifest.md, image-index.md, config.md) and the
// Docker v2 schema 2 documents that share its shape: media types, the document types, and the
// schema checks every reader applies, so that everything after a check gets well-typed values.
// Readers (sources/base, registry pull) and writers (writers/oci, registry push) import these;
// nothing here reads or writes a file (the layout on disk is formats/oci-layout.ts).
import { type Check, any, arr, bool, digest, int, map, nullable, obj, optional, size, str } from '../util/json-check.js';

/** Every media type shrinkwrap reads or writes, by name. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociRestrictedLayer: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociRestrictedLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociRestrictedLayerZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** What a media type names; a layer type also says how its tar is compressed. */
type Kind = { role: 'index' | 'manifest' | 'config' } | { role: 'layer'; compression: LayerCompression };

const KINDS: ReadonlyMap<string, Kind> = new Map<string, Kind>([
  [MediaType.ociIndex, { role: 'index' }],
  [MediaType.dockerManifestList, { role: 'index' }],
  [MediaType.ociManifest, { role: 'manifest' }],
  [MediaType.dockerManifest, { role: 'manifest' }],
  [MediaType.ociConfig, { role: 'config' }],
  [MediaType.ociLayer, { role: 'layer', compression: 'none' }],
  [MediaType.ociLayerGzip, { role: 'layer', compression: 'gzip' }],
  [MediaType.ociLayerZstd, { role: 'layer', compression: 'zstd' }],
  [MediaType.ociRestrictedLayer, { role: 'layer', compression: 'none' }],
  [MediaType.ociRestrictedLayerGzip, { role: 'layer', compression: 'gzip' }],
  [MediaType.ociRestrictedLayerZstd, { role: 'layer', compression: 'zstd' }],
  [MediaType.dockerLayer, { role: 'layer', compression: 'gzip' }],
  [MediaType.dockerForeignLayer, { role: 'layer', compression: 'gzip' }],
]);

/** An OCI index or a Docker manifest list. */
export function isIndex(mediaType: string): boolean {
  return KINDS.get(mediaType)?.role === 'index';
}

/** An OCI image manifest or a Docker v2 schema 2 manifest. */
export function isManifest(mediaType: string): boolean {
  return KINDS.get(mediaType)?.role === 'manifest';
}

/** A layer type we can read (OCI, non-distributable, Docker). */
export function isLayer(mediaType: string): boolean {
  return KINDS.get(mediaType)?.role === 'layer';
}

/** The OCI layer type for a compression: what we label a layer with, ours or a base's (relabelled, same bytes). */
export function layerMediaType(compression: LayerCompression): string {
  return { none: MediaType.ociLayer, gzip: MediaType.ociLayerGzip, zstd: MediaType.ociLayerZstd }[compression];
}

/** The Accept header of a manifest request: indexes and manifests, OCI and Docker. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');

/** The annotation that tags a manifest in an index. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** An index (or Docker manifest list). */
export interface Index {
  schemaVersion?: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** A manifest or an index before its media type is known. */
export interface ImageDocument {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** The container part of an image config (what a runtime starts the container with). */
export interface ContainerConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  [k: string]: unknown;
}

/**
 * The image config fields shrinkwrap reads or extends; others pass through untouched. Docker
 * writes null for empty lists and maps (the check lets null through, and every reader uses `??`);
 * the types say absent only.
 */
export interface ImageConfig {
  created?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  config?: ContainerConfig;
  rootfs?: { type: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [k: string]: unknown;
}

export const platformCheck: Check<Platform> = obj({ architecture: str, os: str, variant: optional(str) });
export const descriptorCheck: Check<Descriptor> = obj({
  mediaType: str,
  digest,
  size,
  platform: optional(platformCheck),
  annotations: optional(map(str)),
  urls: optional(arr(str)),
});
/** A manifest: a config and layers. */
export const manifestCheck = obj({ schemaVersion: optional(int), mediaType: optional(str), config: descriptorCheck, layers: arr(descriptorCheck) }) as Check<Manifest>;
/** An index (or Docker manifest list). */
export const indexCheck = obj({ schemaVersion: optional(int), mediaType: optional(str), manifests: arr(descriptorCheck) }) as Check<Index>;
/** Either, before its media type is known: the fields present must have their types. */
export const documentCheck: Check<ImageDocument> = obj({
  schemaVersion: optional(any as Check<number>),
  mediaType: optional(str),
  config: optional(descriptorCheck),
  layers: optional(arr(descriptorCheck)),
  manifests: optional(arr(descriptorCheck)),
});

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

/** `linux/amd64`, `linux/arm64/v8`. */
export function platformText(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join('/');
}

/** `linux/amd64` for this machine (what a runtime here would pick). */
export function hostPlatform(): string {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', arm: 'arm' };
  return `linux/${arch[process.arch] ?? process.arch}`;
}

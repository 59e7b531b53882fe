// An OCI image layout directory (image-spec image-layout.md) as a base image: index.json → (nested
// index → platform) → manifest → config and layers. Every document is checked against the digest
// and size of the descriptor that names it.
import * as fs from 'node:fs';
import { type Descriptor, type ImageConfig, REF_NAME, imageConfigCheck, indexCheck, isIndex, isLayer, isManifest, manifestCheck, platformText } from '../../formats/oci.js';
import { LayoutReader, readLayoutIndex } from '../../formats/oci-layout.js';
import { InputError } from '../../model/errors.js';
import { MAX_CONFIG, singleLine } from '../../util/json-check.js';
import type { Region } from './blob.js';

/** The parts of a stored image a base needs: its config, its layers' blobs, and its identity. */
export interface StoredImage {
  manifestDigest: string;
  config: ImageConfig;
  layers: Array<{ region: Region; descriptor: Descriptor }>;
  /** The tag it was stored under, if any. */
  refName: string | null;
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

/** Read an image from an OCI layout directory. `tag` null: the layout's only image. */
export function readOciLayout(dir: string, tag: string | null, platform: string, label: string): StoredImage {
  const layout = new LayoutReader(dir, label);
  const all = readLayoutIndex(dir, (file) => `${label}: ${file}`, { marker: true }).manifests;
  const refName = (d: Descriptor) => d.annotations?.[REF_NAME] ?? null;
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
  for (let depth = 0; isIndex(chosen.mediaType); depth++) {
    if (depth > 4) throw new InputError(`${label}: indexes nested too deep`);
    const nested = layout.json(chosen, 'index', indexCheck).value;
    chosen = choosePlatform(nested.manifests, platform, label);
  }
  if (!isManifest(chosen.mediaType)) {
    throw new InputError(`${label}: unknown media type '${singleLine(chosen.mediaType, 100)}' for an image manifest`);
  }
  const manifest = layout.json(chosen, 'manifest', manifestCheck).value;
  const config = layout.json(manifest.config, 'config', imageConfigCheck, MAX_CONFIG).value;
  const layers = manifest.layers.map((d, i) => {
    if (!isLayer(d.mediaType)) throw new InputError(`${label}: layer ${i + 1} ${d.digest}: unknown media type '${singleLine(d.mediaType, 100)}'`);
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

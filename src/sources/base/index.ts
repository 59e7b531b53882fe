// `--base`: the image a build starts from, in any of the forms operators have it:
//   DIR                            a root filesystem directory
//   FILE (.tar, .tar.gz, .tar.zst) a root filesystem tarball
//   oci:DIR[:TAG]                  an OCI image layout
//   docker-archive:FILE[:REF]      `docker save` / `podman save` output
//   docker://HOST/REPO:TAG         a registry (pulled into the work directory first)
//   FILE.sif, sif:FILE             a SIF container (its primary SquashFS partition)
//   FILE (SquashFS)                a SquashFS image of a root filesystem
// Each becomes one flattened tree of entries (whiteouts applied, content addressed in place) plus,
// for OCI output, the layer blobs to keep byte for byte and the config to extend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ImageConfig, hostPlatform, layerMediaType } from '../../formats/oci.js';
import { fromText } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import type { Entry } from '../../model/entry.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import { assignHardLinks } from '../../model/plan.js';
import { parseImageLocation } from '../../registry/reference.js';
import { runStepsAsync } from '../../util/steps.js';
import { makeWorkDir } from '../../util/workdir.js';
import { walkTree } from '../posix.js';
import { readTar } from '../tar/reader.js';
import { type BlobCompression, type OpenedLayer, type Region, openLayer } from './blob.js';
import { readDockerArchive } from './docker-archive.js';
import { LayerStack } from './flatten.js';
import { type StoredImage, readOciLayout } from './oci-layout.js';
import { BaseView } from './view.js';
import { readSifBase } from './sif.js';
import { readSquashfsBase } from './squashfs.js';
import { imageFileKind } from '../image-file.js';
import { sha256File } from '../../util/digest.js';

export type BaseKind = 'dir' | 'tarball' | 'oci' | 'docker-archive' | 'registry' | 'sif' | 'squashfs';

export interface BaseLayer {
  blob: Region;
  compression: BlobCompression;
  digest: string;
  diffId: string;
  /** Media type for an OCI manifest (Docker types relabelled: the bytes and digests do not change). */
  mediaType: string;
}

export interface BaseImage {
  /** As given on the command line. */
  text: string;
  kind: BaseKind;
  /** The flattened root filesystem, in path order, "/" first. */
  entries: Entry[];
  view: BaseView;
  /** Identity for provenance: the manifest digest (oci, registry), the image ID (docker-archive), the tarball's sha256. */
  digest: string | null;
  /** Layer blobs to keep in OCI output; empty for a directory (the writer makes one layer of it). */
  layers: BaseLayer[];
  config: ImageConfig | null;
  /** The labels a SIF base carries (its provenance); null for other kinds. */
  labels?: Record<string, string> | null;
}

export interface BaseOptions {
  /** `os/arch[/variant]` to pick from an index; default: this machine's. */
  platform: string | null;
  /** Directory entries shrinkwrap makes (parents missing from a layer) get this time. */
  epoch: number;
  /** docker:// only. */
  registry?: { tlsVerify: boolean; creds?: string; timeoutMs?: number };
  /** The most one compressed layer may decompress to (--max-layer-size); default DEFAULT_MAX_LAYER_SIZE. */
  maxLayerSize?: number;
  /** After each layer is read: layers done, and their uncompressed bytes. */
  onLayer?: (layers: number, bytes: number) => void;
}

export async function openBase(text: string, opts: BaseOptions, diag: Diagnostics): Promise<BaseImage> {
  const platform = opts.platform ?? hostPlatform();
  const where = parseImageLocation(text, '--base', ['path', 'oci', 'docker-archive', 'registry', 'sif']);
  switch (where.kind) {
    case 'sif':
      return fromSif(text, where.file, platform);
    case 'oci':
      if (!fs.existsSync(where.dir)) throw new InputError(`--base ${text}: ${where.dir}: no such directory`);
      return fromStored(text, 'oci', readOciLayout(where.dir, where.tag, platform, text), opts, true);
    case 'docker-archive':
      if (!fs.existsSync(where.file)) throw new InputError(`--base ${text}: ${where.file}: no such file`);
      return fromStored(text, 'docker-archive', readDockerArchive(where.file, where.ref, text), opts, false);
    case 'registry': {
      const { pullBase } = await import('./registry.js');
      const { layout, tag } = await pullBase(where.reference, platform, opts.registry ?? { tlsVerify: true }, opts.maxLayerSize);
      return fromStored(text, 'registry', readOciLayout(layout, tag, platform, text), opts, true);
    }
    case 'path':
      return fromPath(text, opts, diag);
  }
}

/** A root filesystem directory or tarball. */
async function fromPath(text: string, opts: BaseOptions, diag: Diagnostics): Promise<BaseImage> {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(text, { throwIfNoEntry: false });
  } catch (err) {
    throw new InputError(`--base ${text}: ${describeSystemError(err)}`);
  }
  if (!st) throw new InputError(`--base ${text}: no such file or directory (expected a root filesystem directory or tarball, a SquashFS image, a SIF (FILE.sif, sif:FILE), oci:DIR[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO:TAG)`);
  if (st.isFile() && st.size > 0) {
    const magic = fileMagic(text);
    if (magic === 'sif') return fromSif(text, text, opts.platform ?? hostPlatform());
    if (magic === 'squashfs') return fromSquashfs(text);
  }
  if (st.isDirectory()) {
    const entries = walkTree(fromText(path.resolve(text)), '/', `base ${text}`, diag);
    assignHardLinks(entries);
    return { text, kind: 'dir', entries, view: new BaseView(entries), digest: null, layers: [], config: null };
  }
  // A root filesystem tarball is a one-layer image; it is kept as that layer when it is one. An empty
  // file, or an archive without members, would be an empty root filesystem: a mistake, never a base.
  if (st.size === 0) throw new InputError(`--base ${text}: an empty file (0 bytes), not a tar archive`);
  const work = makeWorkDir('base');
  const file = path.resolve(text);
  const layer = await openLayer({ file, offset: 0, length: st.size }, `--base ${text}`, work, undefined, opts.maxLayerSize);
  const stack = new LayerStack(opts.epoch);
  const members = await runStepsAsync(stack.applySteps(readTar(layer.tar.file, `--base ${text}`, layer.tar.offset, layer.tar.length), layer.tar.file, text));
  if (members === 0) throw new InputError(`--base ${text}: no members: an empty archive is not a root filesystem`);
  const entries = stack.entries();
  return { text, kind: 'tarball', entries, view: new BaseView(entries), digest: layer.digest, layers: [baseLayer(layer)], config: null };
}

/** What a base file is by its first bytes: a SIF container, a SquashFS image, or something else (a tarball). */
function fileMagic(file: string): 'sif' | 'squashfs' | null {
  let kind: ReturnType<typeof imageFileKind> = null;
  try {
    kind = imageFileKind(file);
  } catch {
    return null; // reading it as a tarball says what is wrong
  }
  if (kind === 'sif' || kind === 'squashfs') return kind;
  // A name that says SIF is read as one, so that what is wrong with it is said in SIF's terms.
  if (file.toLowerCase().endsWith('.sif')) return 'sif';
  return null;
}

/** A SIF container: its primary partition's tree; its labels for provenance; its file's sha256 as identity. */
async function fromSif(text: string, file: string, platform: string): Promise<BaseImage> {
  if (!fs.existsSync(file)) throw new InputError(`--base ${text}: ${file}: no such file`);
  const arch = platform.split('/')[1] ?? '';
  const sif = await readSifBase(file, text, arch, makeWorkDir('base'));
  const digest = await sha256File(file);
  return { text, kind: 'sif', entries: sif.entries, view: new BaseView(sif.entries), digest, layers: [], config: null, labels: sif.labels };
}

/** A SquashFS image of a root filesystem. */
async function fromSquashfs(text: string): Promise<BaseImage> {
  const tree = await readSquashfsBase(text, `--base ${text}`, undefined, makeWorkDir('base'));
  const digest = await sha256File(text);
  return { text, kind: 'squashfs', entries: tree.entries, view: new BaseView(tree.entries), digest, layers: [], config: null };
}

function baseLayer(l: OpenedLayer): BaseLayer {
  return { blob: l.blob, compression: l.compression, digest: l.digest, diffId: l.diffId, mediaType: layerMediaType(l.compression) };
}

async function fromStored(text: string, kind: BaseKind, img: StoredImage, opts: BaseOptions, checkDigests: boolean): Promise<BaseImage> {
  // An explicit --platform must match the image even when there was no index to choose from.
  if (opts.platform && img.config.os && img.config.architecture) {
    const [os, arch, variant] = opts.platform.split('/');
    const cfgVariant = typeof img.config['variant'] === 'string' ? img.config['variant'] : undefined;
    if (os !== img.config.os || arch !== img.config.architecture || (variant && cfgVariant && variant !== cfgVariant)) {
      throw new InputError(`${text}: the image is ${img.config.os}/${img.config.architecture}${cfgVariant ? '/' + cfgVariant : ''}, not ${opts.platform}`);
    }
  }
  const work = makeWorkDir('base');
  const diffIds = img.config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== img.layers.length) {
    throw new InputError(`${text}: the config lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff_ids for ${img.layers.length} layers`);
  }
  const stack = new LayerStack(opts.epoch);
  const layers: BaseLayer[] = [];
  let tarBytes = 0;
  for (const [i, l] of img.layers.entries()) {
    const label = `${text}: layer ${i + 1}${l.descriptor.digest ? ` (${l.descriptor.digest.slice(0, 19)})` : ''}`;
    const opened = await openLayer(l.region, label, work, { digest: checkDigests ? l.descriptor.digest : undefined, diffId: diffIds[i] }, opts.maxLayerSize);
    await runStepsAsync(stack.applySteps(readTar(opened.tar.file, label, opened.tar.offset, opened.tar.length), opened.tar.file, label));
    layers.push(baseLayer(opened));
    tarBytes += opened.tar.length;
    opts.onLayer?.(layers.length, tarBytes);
  }
  const entries = stack.entries();
  return { text, kind, entries, view: new BaseView(entries), digest: img.manifestDigest, layers, config: img.config };
}

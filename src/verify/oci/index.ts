// A checker for OCI image layouts and docker-archives (`shrinkwrap verify DIR|FILE.tar`): every blob
// against the descriptor that names it (present, size, sha256), the documents against their schemas
// (formats/oci.ts), each layer decompressed against its config's diff_id and read to its end as a
// tar (sources/tar), the layers applied in order with their whiteouts (sources/base/flatten.ts), and
// that tree against a plan with `--manifest`. Each problem is one line naming the blob; the readers
// are the build's own (a base is read the same way), with what they throw collected, not fatal.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { type Descriptor, type ImageConfig, type Index, imageConfigCheck, indexCheck, isIndex, isLayer, isManifest, manifestCheck } from '../../formats/oci.js';
import { readLayoutIndex } from '../../formats/oci-layout.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, InputError } from '../../model/errors.js';
import { DEFAULT_MAX_LAYER_SIZE, type Region, openLayer } from '../../sources/base/blob.js';
import { readDockerArchive } from '../../sources/base/docker-archive.js';
import { LayerStack } from '../../sources/base/flatten.js';
import { readTar } from '../../sources/tar/reader.js';
import { type Check, MAX_CONFIG, MAX_DOCUMENT, parseJson, singleLine } from '../../util/json-check.js';
import { makeWorkDir } from '../../util/workdir.js';
import { type ManifestEntry, PLAN_ROOT, compareManifest, payloadRoot } from '../manifest.js';
import { Problems } from '../problems.js';
import { type BlobStore, archiveMembers, archiveStore, digestOfName, layoutStore, readRegionBytes } from './store.js';

export interface OciVerifyOptions {
  manifest?: ManifestEntry[];
  /** Where the plan's /cvmfs is in the image; default: what the image says of itself (/.shrinkwrap/). */
  imageRoot?: string;
  maxProblems?: number;
}

export interface OciVerifyStats {
  fileSize: number;
  /** Image manifests checked (an index may list several). */
  manifests: number;
  layers: number;
  /** Blobs found with the size their descriptor says, and their bytes. */
  blobs: number;
  blobBytes: number;
  /** Entries of the flattened tree (of the last image, when there are several). */
  entries: number;
}

export interface OciVerifyResult {
  problems: string[];
  warnings: string[];
  stats: OciVerifyStats;
}

/** What a checker is given of one image's layers. */
interface LayerRef {
  label: string;
  /** Null when the blob is missing or of the wrong size (reported already). */
  region: Region | null;
  /** The sha256 it must have, where the image names one. */
  digest?: string;
  /** A layer media type (a tar): others (attestations) are checked as blobs only. */
  tar: boolean;
}

/** Indexes nest (docker ≥ 25, multi-platform layouts); deeper than this is a loop or an attack. */
const MAX_INDEX_DEPTH = 4;

class OciChecker {
  readonly stats: OciVerifyStats;
  /** Images (by config digest) whose layers were checked: a docker-archive names its image twice. */
  private readonly imagesDone = new Map<string, Array<string | undefined>>();
  private work: string | null = null;

  constructor(
    private readonly store: BlobStore,
    readonly p: Problems,
    private readonly opts: OciVerifyOptions,
    fileSize: number,
  ) {
    this.stats = { fileSize, manifests: 0, layers: 0, blobs: 0, blobBytes: 0, entries: 0 };
  }

  /** The layer digests of the image of this config digest, if it was checked already. */
  checked(configDigest: string): Array<string | undefined> | undefined {
    return this.imagesDone.get(configDigest);
  }

  /** Every image an index lists, nested indexes included. */
  async index(idx: Index, depth = 0): Promise<void> {
    for (const d of idx.manifests) {
      if (isIndex(d.mediaType)) {
        if (depth >= MAX_INDEX_DEPTH) this.p.add(`index ${d.digest}: indexes nested deeper than ${MAX_INDEX_DEPTH}`);
        else {
          const nested = this.document(d, 'index', indexCheck, MAX_DOCUMENT);
          if (nested) await this.index(nested, depth + 1);
        }
      } else if (isManifest(d.mediaType)) await this.manifest(d);
      else {
        this.p.add(`${d.digest}: unknown media type '${singleLine(d.mediaType, 100)}' in an index`);
        await this.opaqueBlob(d, 'blob');
      }
    }
  }

  async manifest(d: Descriptor): Promise<void> {
    this.stats.manifests++;
    const m = this.document(d, 'manifest', manifestCheck, MAX_DOCUMENT);
    if (!m) return;
    // An attestation (buildx) is a manifest of in-toto documents: its blobs are checked, no tree.
    const image = !m.config.mediaType.includes('in-toto') && m.layers.every((l) => isLayer(l.mediaType));
    const config = image ? this.document(m.config, 'config', imageConfigCheck, MAX_CONFIG) : null;
    if (!image) await this.opaqueBlob(m.config, 'config');
    const layers: LayerRef[] = [];
    for (const [i, l] of m.layers.entries()) {
      const label = `layer ${i + 1} ${l.digest}`;
      const tar = isLayer(l.mediaType);
      if (!tar) await this.opaqueBlob(l, `layer ${i + 1}`);
      layers.push({ label, region: tar ? this.blob(l, `layer ${i + 1}`) : null, digest: l.digest, tar });
    }
    if (image) await this.image(config, m.config.digest, layers);
  }

  /**
   * One image: the config's diff_ids against the layers, each layer's digest, its tar read to the
   * end, the layers flattened and the tree compared with the plan. `config` null: it was reported.
   */
  async image(config: ImageConfig | null, id: string, layers: LayerRef[]): Promise<void> {
    if (this.imagesDone.has(id)) return;
    this.imagesDone.set(id, layers.map((l) => l.digest));
    const diffIds = config?.rootfs?.diff_ids;
    if (config && diffIds?.length !== layers.length) this.p.add(`config ${id}: lists ${diffIds?.length ?? 'no'} diff_ids for ${layers.length} layers`);
    const stack = new LayerStack(0);
    let whole = config !== null;
    for (const [i, l] of layers.entries()) {
      if (!l.region) {
        whole = false;
        continue;
      }
      this.stats.layers++;
      if (!(await this.layer(l, l.region, diffIds?.[i], whole ? stack : null))) whole = false;
    }
    if (!whole) {
      if (this.opts.manifest) this.p.warn(`config ${id}: the tree was not compared with the plan: its layers could not all be read`);
      return;
    }
    const entries = stack.entries();
    this.stats.entries = entries.length;
    if (this.opts.manifest) this.compareTree(entries, this.opts.manifest);
  }

  /** One layer: digest (before anything is decompressed), diff_id, tar; applied to `stack` if given. False if it failed (reported). */
  private async layer(l: LayerRef, region: Region, diffId: string | undefined, stack: LayerStack | null): Promise<boolean> {
    this.work ??= makeWorkDir('verify');
    let tar: Region | null = null;
    try {
      const opened = await openLayer(region, l.label, this.work, { digest: l.digest, diffId }, DEFAULT_MAX_LAYER_SIZE);
      if (opened.tar.file !== region.file) tar = opened.tar;
      const members = readTar(opened.tar.file, l.label, opened.tar.offset, opened.tar.length);
      if (stack) stack.apply(members, opened.tar.file, l.label);
      else for (const _ of members); // read to its end: well-formed or not
      return true;
    } catch (err) {
      if (!(err instanceof InputError || err instanceof BuildError)) throw err;
      this.p.add(err.message);
      return false;
    } finally {
      // The flattened tree keeps paths and metadata only: the decompressed tar can go now.
      if (tar) fs.rmSync(tar.file, { force: true });
    }
  }

  private compareTree(entries: Entry[], manifest: ManifestEntry[]): void {
    const paths = new Set(entries.map((e) => e.path));
    const root = payloadRoot(this.opts.imageRoot, (path) => paths.has(path));
    compareManifest(() => entries, manifest, PLAN_ROOT, root, this.p);
  }

  /** A blob that is there with its descriptor's size, or null (reported). */
  blob(d: Descriptor, what: string): Region | null {
    const r = this.store.find(d.digest);
    if (typeof r === 'string') {
      this.p.add(`${what} ${d.digest}: ${r}`);
      return null;
    }
    if (r.length !== d.size) {
      this.p.add(`${what} ${d.digest}: the blob is ${r.length} bytes, its descriptor says ${d.size}`);
      return null;
    }
    this.stats.blobs++;
    this.stats.blobBytes += r.length;
    return r;
  }

  /** A JSON document's blob: there, its size and sha256 as described, then its schema; null if not (reported). */
  document<T>(d: Descriptor, what: string, check: Check<T>, limit: number): T | null {
    const name = `${what} ${d.digest}`;
    if (d.size > limit) {
      this.p.add(`${name}: its descriptor says ${d.size} bytes, more than the ${limit} allowed`);
      return null;
    }
    const r = this.blob(d, what);
    if (!r) return null;
    try {
      const bytes = readRegionBytes(r, name);
      const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
      if (digest !== d.digest) {
        this.p.add(`${name}: content has digest ${digest}`);
        return null;
      }
      return parseJson(bytes, check, name);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      this.p.add(err.message);
      return null;
    }
  }

  /** A blob that is neither a document we read nor a layer: there, its size and digest. */
  private async opaqueBlob(d: Descriptor, what: string): Promise<void> {
    const r = this.blob(d, what);
    if (!r) return;
    const h = createHash('sha256');
    if (r.length > 0) for await (const chunk of fs.createReadStream(r.file, { start: r.offset, end: r.offset + r.length - 1 })) h.update(chunk as Buffer);
    const digest = 'sha256:' + h.digest('hex');
    if (digest !== d.digest) this.p.add(`${what} ${d.digest}: content has digest ${digest}`);
  }
}

function finish(c: OciChecker): OciVerifyResult {
  return { problems: c.p.finish(), warnings: c.p.warnings, stats: c.stats };
}

/** Check an OCI image layout directory. Problems are returned, not thrown. */
export async function verifyOciLayout(dir: string, opts: OciVerifyOptions = {}): Promise<OciVerifyResult> {
  const c = new OciChecker(layoutStore(dir), new Problems(opts.maxProblems ?? 1000, dir), opts, 0);
  let idx: Index;
  try {
    idx = readLayoutIndex(dir, (file) => file, { marker: true });
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    c.p.add(err.message);
    return finish(c);
  }
  if (idx.manifests.length === 0) c.p.add('index.json lists no images');
  await c.index(idx);
  c.stats.fileSize = c.stats.blobBytes;
  return finish(c);
}

/**
 * Check a docker-archive: the OCI layout inside it where there is one (shrinkwrap and docker ≥ 25
 * write one), and the image Docker's manifest.json names (what `docker load` reads).
 */
export async function verifyDockerArchive(file: string, opts: OciVerifyOptions = {}): Promise<OciVerifyResult> {
  const p = new Problems(opts.maxProblems ?? 1000, file);
  const fileSize = fs.statSync(file).size;
  const failed = (err: unknown) => {
    if (!(err instanceof InputError || err instanceof BuildError)) throw err;
    p.add(err.message);
  };
  let members: ReturnType<typeof archiveMembers>;
  try {
    members = archiveMembers(readTar(file, file));
  } catch (err) {
    failed(err);
    return { problems: p.finish(), warnings: p.warnings, stats: new OciChecker(archiveStore(file, new Map()), p, opts, fileSize).stats };
  }
  const c = new OciChecker(archiveStore(file, members), p, opts, fileSize);
  const indexMember = members.get('index.json');
  if (indexMember) {
    try {
      if (indexMember.type !== 'file') throw new InputError(`index.json is a ${indexMember.type} in the archive, not a file`);
      if (indexMember.size > MAX_DOCUMENT) throw new InputError(`index.json: ${indexMember.size} bytes, more than the ${MAX_DOCUMENT} allowed`);
      const bytes = readRegionBytes({ file, offset: indexMember.offset, length: indexMember.size }, 'index.json');
      await c.index(parseJson(bytes, indexCheck, 'index.json'));
    } catch (err) {
      failed(err);
    }
  }
  // Docker's manifest.json (what `docker load` reads): the image the layout holds, or, in an
  // archive without one (docker < 25), the image checked here.
  const layoutProblems = p.list.length;
  let stored: ReturnType<typeof readDockerArchive>;
  try {
    stored = readDockerArchive(file, null, file);
  } catch (err) {
    // A blob missing from the layout is missing from manifest.json's image too: said once.
    if (!indexMember || layoutProblems === 0) failed(err);
    return finish(c);
  }
  const names = new Map<number, string>();
  for (const [name, m] of members) names.set(m.offset, name);
  const layerNames = stored.layers.map((l) => names.get(l.region.offset) ?? '?');
  if (indexMember) {
    // manifest.json's image must be one the layout holds (checked above): its config and layers.
    const layoutLayers = c.checked(stored.manifestDigest);
    // After a problem with the layout, a mismatch here would only say it again.
    if (p.list.length > 0) return finish(c);
    if (!layoutLayers) p.add(`manifest.json names config ${stored.manifestDigest}, which no image of index.json has`);
    else if (layerNames.map(digestOfName).join() !== layoutLayers.join()) p.add(`manifest.json names layers ${layerNames.join(', ')}, not those of index.json's image (${layoutLayers.join(', ')})`);
    return finish(c);
  }
  // An archive without a layout (docker < 25): manifest.json is its manifest, its members the blobs.
  c.stats.manifests++;
  for (const l of stored.layers) {
    c.stats.blobs++;
    c.stats.blobBytes += l.region.length;
  }
  const layers: LayerRef[] = stored.layers.map((l, i) => {
    const name = layerNames[i]!;
    return { label: `layer ${i + 1} ${name}`, region: l.region, digest: digestOfName(name), tar: true };
  });
  await c.image(stored.config, stored.manifestDigest, layers);
  return finish(c);
}

// Pull one image from a registry into an OCI image layout. Manifests and configs are stored byte
// for byte (their digests are what base.digest, dedup and cross-repo mounts rely on), Docker v2s2
// media types included; an index is resolved to one platform. Blobs are verified while they stream.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeSystemError, InputError } from '../model/errors.js';
import { type Descriptor, documentCheck, type ImageDocument, indexCheck, isIndex, isManifest, MANIFEST_ACCEPT, manifestCheck, MediaType, type Platform, platformText, REF_NAME } from '../formats/oci.js';
import { blobPath, makeBlobsDir, writeFileAtomic, writeLayoutFiles } from '../formats/oci-layout.js';
import { removeOnInterrupt, tempPathBeside } from '../util/atomic.js';
import { sha256, sha256File } from '../util/digest.js';
import { MAX_CONFIG, MAX_DOCUMENT, checkJson, obj, optional, parseJson, readRegularFile, singleLine, str } from '../util/json-check.js';
import { RegistryClient, type RegistryOptions } from './client.js';
import { runLimited } from './parallel.js';
import type { ImageReference } from './reference.js';

export interface PullResult {
  manifestDigest: string;
  layout: string;
  tag: string;
  /** os/architecture[/variant] of the image's config. */
  platform: string;
}

/** What a pull reads of the config: the platform it reports. */
const platformOfConfig = obj({ os: optional(str), architecture: optional(str), variant: optional(str) });
const PARALLEL_BLOBS = 3;

export async function pullToLayout(
  ref: ImageReference,
  layoutDir: string,
  opts: RegistryOptions & { platform?: string; maxLayerSize?: number },
): Promise<PullResult> {
  const client = new RegistryClient(ref, [`repository:${ref.repository}:pull`], opts);
  try {
    const want = parsePlatform(client, opts.platform ?? 'linux/amd64');
    const top = await getManifest(client, ref.digest ?? ref.tag!, ref.digest);
    let chosen = top;
    let platform: Platform | undefined;
    if (isIndex(top.mediaType)) {
      const d = choosePlatform(client, checkJson(indexCheck, top.doc, `${client.prefix}: index ${top.digest}`).manifests, want);
      platform = d.platform;
      chosen = await getManifest(client, d.digest, d.digest, d.size);
      if (isIndex(chosen.mediaType)) throw client.input(`${d.digest} for ${platformText(want)} is another index (nested indexes are not supported)`);
    }
    const { config, layers } = checkJson(manifestCheck, chosen.doc, `${client.prefix}: manifest ${chosen.digest}`);
    // Before downloading: a config is read whole, so it may not be larger than we read.
    if (config.size > MAX_CONFIG) throw client.input(`config ${config.digest} is ${config.size} bytes, more than the ${MAX_CONFIG} allowed`);
    // A layer is downloaded to disk as big as its descriptor says: no bigger than it may decompress to.
    for (const l of layers) {
      if (opts.maxLayerSize !== undefined && l.size > opts.maxLayerSize) {
        throw client.input(`layer ${l.digest} is ${l.size} bytes, more than --max-layer-size allows (${opts.maxLayerSize}; raise it if the layer is genuine)`);
      }
    }

    makeBlobsDir(layoutDir);
    const unique = new Map<string, Descriptor>();
    for (const d of [config, ...layers]) unique.set(d.digest, d);
    await runLimited([...unique.values()], PARALLEL_BLOBS, (d) => fetchBlob(client, layoutDir, d));
    const manifestFile = blobPath(layoutDir, chosen.digest)!;
    if (fs.statSync(manifestFile, { throwIfNoEntry: false })?.size !== chosen.bytes.length || !fs.readFileSync(manifestFile).equals(chosen.bytes)) {
      writeFileAtomic(manifestFile, chosen.bytes);
    }

    const tag = ref.tag ?? 'latest';
    const descriptor: Descriptor = { mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.bytes.length };
    if (platform) descriptor.platform = platform;
    descriptor.annotations = { [REF_NAME]: tag };
    writeLayoutFiles(layoutDir, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [descriptor] });

    const configLabel = `${client.prefix}: config ${config.digest}`;
    const imageConfig = parseJson(readRegularFile(blobPath(layoutDir, config.digest)!, configLabel, { limit: MAX_CONFIG }), platformOfConfig, configLabel);
    const got = platformText({ os: imageConfig.os ?? '?', architecture: imageConfig.architecture ?? '?', variant: imageConfig.variant });
    return { manifestDigest: chosen.digest, layout: layoutDir, tag, platform: got };
  } finally {
    client.close();
  }
}

function parsePlatform(client: RegistryClient, text: string): Platform {
  const [os, architecture, variant, extra] = text.split('/');
  if (!os || !architecture || extra !== undefined || variant === '') {
    throw new InputError(`${client.prefix}: platform '${text}' is not OS/ARCH[/VARIANT] (e.g. linux/amd64)`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** arm64 images are v8 whether or not they say so. */
function variantOf(p: Platform): string {
  return p.variant ?? (p.architecture === 'arm64' ? 'v8' : '');
}

function choosePlatform(client: RegistryClient, manifests: Descriptor[], want: Platform): Descriptor {
  const candidates = manifests.filter((d) => d.platform?.os === want.os && d.platform.architecture === want.architecture);
  const found = want.variant ? candidates.find((d) => variantOf(d.platform!) === variantOf(want)) : candidates[0];
  if (found) return found;
  // Attestations (buildx) are listed as unknown/unknown; they are not images.
  const has = [...new Set(manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => platformText(d.platform!)))];
  throw client.input(`no ${platformText(want)} image in the index (has ${has.length ? has.join(', ') : 'no platforms'})`);
}

interface Fetched {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  doc: ImageDocument;
}

async function getManifest(client: RegistryClient, reference: string, expected: string | null, size?: number): Promise<Fetched> {
  const res = await client.request({
    method: 'GET',
    url: client.path(`manifests/${reference}`),
    headers: { accept: MANIFEST_ACCEPT },
  });
  if (res.status !== 200) return client.fail(res, `manifest ${reference}`);
  const bytes = await client.readBody(res, MAX_DOCUMENT);
  const digest = sha256(bytes);
  if (expected && digest !== expected) throw client.build(`manifest ${expected}: digest mismatch (got ${digest})`);
  if (size !== undefined && bytes.length !== size) throw client.build(`manifest ${reference}: size mismatch (got ${bytes.length} bytes, expected ${size})`);
  const header = res.headers['docker-content-digest'];
  if (typeof header === 'string' && header.startsWith('sha256:') && header !== digest) {
    throw client.build(`manifest ${reference}: the registry says ${header} but its bytes hash to ${digest}`);
  }
  const doc = parseJson(bytes, documentCheck, `${client.prefix}: manifest ${reference}`);
  if (doc.schemaVersion !== 2) throw client.input(`manifest ${reference} has schemaVersion ${singleLine(String(JSON.stringify(doc.schemaVersion)), 40)} (only 2 is supported)`);
  const contentType = (res.headers['content-type'] ?? '').split(';')[0]!.trim();
  const known = isIndex(contentType) || isManifest(contentType);
  const mediaType = known ? contentType : (doc.mediaType ?? (doc.manifests ? MediaType.ociIndex : MediaType.ociManifest));
  return { bytes, digest, mediaType, doc };
}

/** Into blobs/sha256 unless a verified copy is there already; hashed and counted as it streams. */
async function fetchBlob(client: RegistryClient, layoutDir: string, d: Descriptor): Promise<void> {
  const file = blobPath(layoutDir, d.digest);
  if (!file) throw client.build(`blob ${d.digest}: only sha256 digests are supported`);
  if (fs.statSync(file, { throwIfNoEntry: false })?.size === d.size && (await sha256File(file)) === d.digest) {
    client.log(`${d.digest}: already in ${layoutDir}`);
    return;
  }
  const res = await client.request({ method: 'GET', url: client.path(`blobs/${d.digest}`), redirects: true, bytes: d.size });
  if (res.status !== 200) return client.fail(res, `blob ${d.digest}`);
  const hash = createHash('sha256');
  let n = 0;
  const check = new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      hash.update(chunk);
      // Stop at the first byte too many rather than fill the disk.
      if (n > d.size) done(client.build(`blob ${d.digest}: size mismatch (more than the ${d.size} bytes expected)`));
      else done(null, chunk);
    },
  });
  // Created exclusively under a name no one can plant a link at (the cache may be shared).
  const tmp = tempPathBeside(file);
  const forget = removeOnInterrupt(tmp); // a Ctrl-C leaves no half blob in the cache
  try {
    await pipeline(res.body, check, fs.createWriteStream(tmp, { flags: 'wx' }));
    if (n !== d.size) throw client.build(`blob ${d.digest}: size mismatch (got ${n} bytes, expected ${d.size})`);
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== d.digest) throw client.build(`blob ${d.digest}: digest mismatch (got ${got})`);
    fs.renameSync(tmp, file);
    forget();
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    forget();
    // Errors of the file (disk full) name the file; the others are the network's.
    if ((err as NodeJS.ErrnoException).path) throw client.build(`${tmp}: ${describeSystemError(err)}`);
    throw client.networkError(err, res.url);
  }
  client.log(`${d.digest}: ${d.size} bytes`);
}

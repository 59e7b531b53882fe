// Push one image (or index) of an OCI image layout to a registry, following distribution-spec's
// push order: blobs first (skipped when present, mounted from another repository when possible,
// else uploaded whole or in chunks), config after layers, the manifest last with its exact bytes.
import * as fs from 'node:fs';
import { type Descriptor, documentCheck, indexCheck, isIndex, manifestCheck, REF_NAME } from '../formats/oci.js';
import { blobPath, readLayoutIndex } from '../formats/oci-layout.js';
import { InputError } from '../model/errors.js';
import { sha256 } from '../util/digest.js';
import { checkJson, MAX_DOCUMENT, parseJson, readRegularFile, singleLine } from '../util/json-check.js';
import { RegistryClient, type RegistryOptions, type Response, withDigest } from './client.js';
import { runLimited } from './parallel.js';
import { displayReference, type ImageReference } from './reference.js';

export interface PushResult {
  manifestDigest: string;
  /** Blobs (layers and configs, not manifests). */
  uploaded: number;
  skipped: number;
  mounted: number;
  bytesUploaded: number;
}

export interface PushOptions extends RegistryOptions {
  /** Repositories on the same registry to try a cross-repository mount from, in order. */
  mountFrom?: string[];
  /** 0: one PUT per blob (default); > 0: PATCH chunks of this many bytes. */
  chunkSize?: number;
}

const PARALLEL_BLOBS = 3;

export async function pushLayout(layoutDir: string, tag: string | null, ref: ImageReference, opts: PushOptions): Promise<PushResult> {
  const top = selectManifest(layoutDir, tag);
  if (ref.digest && ref.digest !== top.digest) {
    throw new InputError(`${displayReference(ref)}: names ${ref.digest} but the image in ${layoutDir} is ${top.digest}`);
  }
  const mountFrom = (opts.mountFrom ?? []).filter((r) => r !== ref.repository);
  const scopes = [`repository:${ref.repository}:pull,push`, ...mountFrom.map((r) => `repository:${r}:pull`)];
  const client = new RegistryClient(ref, scopes, opts);
  const pusher = new Pusher(client, layoutDir, mountFrom, opts.chunkSize ?? 0);
  try {
    await pusher.document(top, ref.tag ?? ref.digest!);
    return { manifestDigest: top.digest, ...pusher.counts };
  } finally {
    client.close();
  }
}

/** The descriptor in index.json whose ref.name is `tag`, or the only one. */
function selectManifest(layoutDir: string, tag: string | null): Descriptor {
  const { manifests } = readLayoutIndex(layoutDir, (file) => file, { marker: false });
  const tags = manifests.map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => t !== undefined);
  const listed = singleLine(tags.length ? tags.join(', ') : 'none', 200);
  if (tag === null) {
    if (manifests.length === 1) return manifests[0]!;
    throw new InputError(`${layoutDir}: holds ${manifests.length} images; name one (tags: ${listed})`);
  }
  const found = manifests.filter((d) => d.annotations?.[REF_NAME] === tag);
  if (found.length !== 1) throw new InputError(`${layoutDir}: ${found.length ? 'several images are' : 'no image is'} tagged '${tag}' (tags: ${listed})`);
  return found[0]!;
}

class Pusher {
  readonly counts = { uploaded: 0, skipped: 0, mounted: 0, bytesUploaded: 0 };

  constructor(
    private readonly client: RegistryClient,
    private readonly layoutDir: string,
    private readonly mountFrom: string[],
    private readonly chunkSize: number,
  ) {}

  private layoutError(what: string): InputError {
    return new InputError(`${this.layoutDir}: ${what}`);
  }

  /** The file of `d`, present with the size its descriptor gives. */
  private blobFile(d: Descriptor): string {
    const file = blobPath(this.layoutDir, d.digest);
    if (!file) throw this.layoutError(`${d.digest}: only sha256 digests are supported`);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) throw this.layoutError(`blob ${d.digest} is missing`);
    if (!st.isFile()) throw this.layoutError(`blob ${d.digest} is not a regular file`);
    if (st.size !== d.size) throw this.layoutError(`blob ${d.digest} is ${st.size} bytes, its descriptor says ${d.size}`);
    return file;
  }

  /** A manifest after its blobs, or an index after its manifests; `reference` is the tag or digest to put it under. */
  async document(d: Descriptor, reference: string): Promise<void> {
    const label = `${this.layoutDir}: manifest ${d.digest}`;
    const bytes = readRegularFile(this.blobFile(d), label, { limit: MAX_DOCUMENT });
    if (sha256(bytes) !== d.digest) throw this.layoutError(`blob ${d.digest} does not hash to its name`);
    const doc = parseJson(bytes, documentCheck, label);
    const mediaType = doc.mediaType ?? d.mediaType;
    if (isIndex(mediaType)) {
      for (const m of checkJson(indexCheck, doc, label).manifests) await this.document(m, m.digest);
    } else {
      const { config, layers: all } = checkJson(manifestCheck, doc, label);
      const layers = [...new Map(all.map((l) => [l.digest, l])).values()].filter((l) => l.digest !== config.digest);
      await runLimited(layers, PARALLEL_BLOBS, (l) => this.blob(l));
      await this.blob(config);
    }
    const res = await this.client.request({
      method: 'PUT',
      url: this.client.path(`manifests/${reference}`),
      headers: { 'content-type': mediaType },
      body: () => bytes,
      bytes: bytes.length,
    });
    if (res.status !== 201) return this.client.fail(res, `manifest ${reference}`);
    res.body.resume();
    this.checkDigest(res, d.digest, `manifest ${reference}`);
    this.client.log(`manifest ${d.digest} → ${reference}`);
  }

  private checkDigest(res: Response, digest: string, what: string): void {
    const answered = res.headers['docker-content-digest'];
    if (typeof answered === 'string' && answered !== digest) {
      throw this.client.build(`${what}: the registry stored ${answered}, not ${digest}`);
    }
  }

  private async blob(d: Descriptor): Promise<void> {
    const { client } = this;
    const file = this.blobFile(d);
    const head = await client.request({ method: 'HEAD', url: client.path(`blobs/${d.digest}`) });
    if (head.status === 200) {
      head.body.resume();
      this.counts.skipped++;
      client.log(`${d.digest}: already there`);
      return;
    }
    if (head.status !== 404) return client.fail(head, `blob ${d.digest}`);
    head.body.resume();

    let session: URL | null = null;
    for (const [i, from] of this.mountFrom.entries()) {
      const res = await client.request({ method: 'POST', url: client.path(`blobs/uploads/?mount=${d.digest}&from=${from}`) });
      if (res.status !== 201 && res.status !== 202) return client.fail(res, `mount of ${d.digest} from ${from}`);
      res.body.resume();
      if (res.status === 201) {
        this.counts.mounted++;
        client.log(`${d.digest}: mounted from ${from}`);
        return;
      }
      session = this.location(res);
      if (i === this.mountFrom.length - 1) break;
      // Not in `from`: end the session the registry opened instead, and try the next repository.
      const del = await client.request({ method: 'DELETE', url: session });
      del.body.resume();
      session = null;
    }
    if (!session) {
      const res = await client.request({ method: 'POST', url: client.path('blobs/uploads/') });
      if (res.status !== 202) return client.fail(res, `upload of ${d.digest}`);
      res.body.resume();
      session = this.location(res);
      const min = Number(res.headers['oci-chunk-min-length'] ?? 0);
      if (this.chunkSize > 0) session = await this.patchChunks(d, file, session, Math.max(this.chunkSize, min));
    } else if (this.chunkSize > 0) {
      session = await this.patchChunks(d, file, session, this.chunkSize);
    }

    // Chunked uploads end with an empty PUT; monolithic ones carry the whole blob in it.
    const whole = this.chunkSize === 0 && d.size > 0;
    const res = await client.request({
      method: 'PUT',
      url: withDigest(session, d.digest),
      headers: whole ? { 'content-type': 'application/octet-stream', 'content-length': String(d.size) } : {},
      body: whole ? () => fs.createReadStream(file) : undefined,
      bytes: whole ? d.size : 0,
    });
    if (res.status !== 201) return client.fail(res, `upload of ${d.digest}`);
    res.body.resume();
    this.checkDigest(res, d.digest, `blob ${d.digest}`);
    this.counts.uploaded++;
    this.counts.bytesUploaded += d.size;
    client.log(`${d.digest}: uploaded ${d.size} bytes`);
  }

  private async patchChunks(d: Descriptor, file: string, session: URL, chunk: number): Promise<URL> {
    for (let start = 0; start < d.size; start += chunk) {
      const end = Math.min(start + chunk, d.size) - 1;
      const res = await this.client.request({
        method: 'PATCH',
        url: session,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(end - start + 1),
          'content-range': `${start}-${end}`,
        },
        body: () => fs.createReadStream(file, { start, end }),
        bytes: end - start + 1,
      });
      if (res.status !== 202) return this.client.fail(res, `chunk ${start}-${end} of ${d.digest}`);
      res.body.resume();
      session = this.location(res);
    }
    return session;
  }

  /** The upload URL the registry gave, resolved against the request's (it may be relative). */
  private location(res: Response): URL {
    const location = res.headers.location;
    if (!location) throw this.client.build(`${res.url.pathname}: answer ${res.status} without a Location`);
    return new URL(location, res.url);
  }
}

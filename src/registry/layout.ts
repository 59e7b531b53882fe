// What pull and push share about OCI image layouts (image-spec image-layout.md): descriptors,
// content-addressed blob paths, hashing, and a small pool for concurrent transfers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Check, any, arr, digest, int, map, obj, optional, size, str } from '../util/json-check.js';

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

/** A manifest or an index, as far as transfers care. */
export interface ImageDocument {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

// The shapes the code relies on (image-spec descriptor.md, manifest.md, image-index.md), checked
// where a document is read so that everything after it gets well-typed values.
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
export const manifestCheck = obj({ schemaVersion: optional(int), mediaType: optional(str), config: descriptorCheck, layers: arr(descriptorCheck) });
/** An index (or Docker manifest list). */
export const indexCheck = obj({ schemaVersion: optional(int), mediaType: optional(str), manifests: arr(descriptorCheck) });
/** Either, before its media type is known: the fields present must have their types. */
export const documentCheck: Check<ImageDocument> = obj({
  schemaVersion: optional(any as Check<number>),
  mediaType: optional(str),
  config: optional(descriptorCheck),
  layers: optional(arr(descriptorCheck)),
  manifests: optional(arr(descriptorCheck)),
});

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const SHA256 = /^sha256:([a-f0-9]{64})$/;

export { sha256, sha256File } from '../util/digest.js';

/** `blobs/sha256/<hex>` under `layoutDir`, or null for a digest we cannot store (another algorithm). */
export function blobPath(layoutDir: string, digest: string): string | null {
  const m = SHA256.exec(digest);
  return m ? path.join(layoutDir, 'blobs', 'sha256', m[1]!) : null;
}

/** The temporary name a file is written under before it is renamed into place. */
export function tmpPath(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.shrinkwrap-tmp-${process.pid}`);
}

export function writeFileAtomic(file: string, data: Buffer | string): void {
  const tmp = tmpPath(file);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** `linux/amd64`, `linux/arm64/v8`. */
export function platformText(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join('/');
}

/**
 * `fn` over `items`, at most `limit` at a time, in order of start. After a failure no new item
 * starts; the ones running are waited for (so none outlives the call), then the first error is thrown.
 */
export async function runLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw (failure as { err: unknown }).err;
}

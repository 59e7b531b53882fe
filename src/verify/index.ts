// `shrinkwrap verify`: which checker an image needs, by what it is: a directory with an
// `oci-layout` marker (an OCI layout), a tar (a docker-archive), a SIF container, anything else a SquashFS image
// (whose checker names what is wrong with a file that is not one).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError, describeSystemError } from '../model/errors.js';
import { imageFileKind } from '../sources/image-file.js';
import { type ManifestEntry, readManifestFile } from './manifest.js';
import { type OciVerifyResult, type OciVerifyStats, verifyDockerArchive, verifyOciLayout } from './oci/index.js';
import { type VerifyResult, type VerifyStats, verifySquashfs } from './squashfs/index.js';
import { type SifVerifyResult, verifySif } from './sif.js';

export { type ManifestEntry, readManifestFile };
export type { OciVerifyStats, VerifyStats };

export type ImageFormat = 'squashfs' | 'sif' | 'oci' | 'docker-archive';

export interface ImageVerifyOptions {
  manifest?: ManifestEntry[];
  /** Where the plan's /cvmfs is in the image; default: what the image says of itself. */
  imageRoot?: string;
  /** SquashFS: also decompress every data block (OCI layers are always decompressed). */
  data?: boolean;
}

export type ImageVerifyResult = ({ format: 'squashfs' } & VerifyResult) | ({ format: 'sif' } & SifVerifyResult) | ({ format: 'oci' | 'docker-archive' } & OciVerifyResult);

/** The format of the image at `file`, by its content. InputError when it cannot be one. */
export function imageFormat(file: string): ImageFormat {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new InputError(`${file}: ${describeSystemError(err)}`);
  }
  if (st.isDirectory()) {
    if (fs.existsSync(path.join(file, 'oci-layout')) || fs.existsSync(path.join(file, 'index.json'))) return 'oci';
    throw new InputError(`${file}: a directory without an oci-layout file: verify checks SquashFS images, OCI layouts and docker-archives`);
  }
  if (!st.isFile()) throw new InputError(`${file}: not a regular file`);
  const kind = imageFileKind(file);
  // A docker-archive is a tar; a file named .sif is checked as a SIF (and told what it lacks).
  if (kind === 'tar') return 'docker-archive';
  if (kind === 'sif' || file.toLowerCase().endsWith('.sif')) return 'sif';
  return 'squashfs';
}

export async function verifyImage(file: string, opts: ImageVerifyOptions): Promise<ImageVerifyResult> {
  const format = imageFormat(file);
  switch (format) {
    case 'squashfs':
      return { format, ...(await verifySquashfs(file, { manifest: opts.manifest, imageRoot: opts.imageRoot, data: opts.data ?? false })) };
    case 'sif':
      return { format, ...(await verifySif(file, { manifest: opts.manifest, imageRoot: opts.imageRoot, data: opts.data ?? false })) };
    case 'oci':
      return { format, ...(await verifyOciLayout(file, { manifest: opts.manifest, imageRoot: opts.imageRoot })) };
    case 'docker-archive':
      return { format, ...(await verifyDockerArchive(file, { manifest: opts.manifest, imageRoot: opts.imageRoot })) };
  }
}

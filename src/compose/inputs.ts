// The build's inputs once options are parsed: the base image read and flattened, and the
// selection's options completed with what the base provides (its libraries, its OS).
import type { Diagnostics } from '../model/diagnostics.js';
import type { SelectOptions } from '../select/index.js';
import { baseLibraries } from '../select/closure/base-libs.js';
import { type ReleaseOptions, baseOsTag } from '../select/release/index.js';
import { type BaseImage, type BaseOptions, openBase } from '../sources/base/index.js';
import { type ProgressHooks, silentProgress } from './hooks.js';
import { type HttpSourceOptions, openCvmfsTree } from '../sources/cvmfs/open.js';
import type { CvmfsTree } from '../sources/cvmfs/tree.js';

/** --base and how to read it. */
export interface BaseRequest {
  /** In any of its forms: DIR, tarball, oci:DIR[:TAG], docker-archive:FILE[:REF], docker://HOST/REPO:TAG. */
  text: string;
  /** `os/arch[/variant]` to pick from an index; null: this machine's. */
  platform: string | null;
  registry: NonNullable<BaseOptions['registry']>;
  maxLayerSize: number;
}

/** What to select: the selection's options less what the base and the build fill in. */
export interface SelectionRequest extends Omit<SelectOptions, 'base' | 'releases' | 'onProgress' | 'onWalkFile' | 'source'> {
  releases?: Omit<ReleaseOptions, 'baseOs'> | null;
  /** How to read `cvmfsRoot` when it is a URL. */
  http?: HttpSourceOptions | null;
}

/** The tree the selection reads, as `--cvmfs-root` names it; `closeTree` gives it back. */
export function openSource(request: SelectionRequest, diag: Diagnostics, o: { xattrs: boolean }): CvmfsTree {
  return openCvmfsTree(request.cvmfsRoot, request.http ?? null, diag, o);
}

/** The base flattened; null without one. */
export async function openBaseImage(request: BaseRequest | null, diag: Diagnostics, progress: ProgressHooks = silentProgress): Promise<BaseImage | null> {
  if (request === null) return null;
  const epoch = Number(process.env['SOURCE_DATE_EPOCH'] ?? 0) || 0;
  const reading = progress.stage(`reading base ${request.text}`, 'layers');
  try {
    return await openBase(request.text, { platform: request.platform, epoch, registry: request.registry, onLayer: reading.tick, maxLayerSize: request.maxLayerSize }, diag);
  } finally {
    reading.done();
  }
}

/** The selection's options: what the base provides is never bundled, and its OS picks a release's platform. */
export function selectOptions(request: SelectionRequest, baseImage: BaseImage | null): SelectOptions {
  const base = baseImage ? baseLibraries(baseImage.view) : null;
  const releases = request.releases ? { ...request.releases, baseOs: baseImage ? baseOsTag(baseImage.view) : null } : null;
  return { ...request, releases, base };
}

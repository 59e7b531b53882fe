// docker://… as a base: pulled into a per-repository OCI layout in the user's cache, so a second
// build does not download again (blobs present with the right digest are kept), then read like
// any oci: base. $SHRINKWRAP_CACHE, else $XDG_CACHE_HOME/shrinkwrap, else ~/.cache/shrinkwrap.
import * as os from 'node:os';
import * as path from 'node:path';
import { credentialsFor } from '../../registry/auth.js';
import { pullToLayout } from '../../registry/pull.js';
import type { ImageReference } from '../../registry/reference.js';

export function cacheDir(): string {
  const env = process.env['SHRINKWRAP_CACHE'];
  if (env) return env;
  const xdg = process.env['XDG_CACHE_HOME'];
  return path.join(xdg && xdg !== '' ? xdg : path.join(os.homedir(), '.cache'), 'shrinkwrap');
}

export async function pullBase(
  ref: ImageReference,
  platform: string,
  reg: { tlsVerify: boolean; creds?: string; timeoutMs?: number },
  maxLayerSize?: number,
): Promise<{ layout: string; tag: string }> {
  const layout = path.join(cacheDir(), 'pull', ref.registry.replace(/:/g, '_'), ...ref.repository.split('/'));
  const credentials = credentialsFor(ref.registry, reg.creds);
  const r = await pullToLayout(ref, layout, { tlsVerify: reg.tlsVerify, credentials, platform, timeoutMs: reg.timeoutMs, maxLayerSize });
  return { layout, tag: r.tag };
}

// Which tree `--cvmfs-root` names: a directory laid out like /cvmfs (a mounted client or a copy),
// or the URL of a server's /cvmfs (a Stratum-1, a stratum 0, a mirror) read over HTTP with no client.
import * as os from 'node:os';
import * as path from 'node:path';
import { fromText } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { requireDirectory } from '../posix.js';
import { obeySignals, onInterrupt } from '../../util/atomic.js';
import { Fetcher } from './http/fetch/fetcher.js';
import { parseProxyList, parseServerList } from './http/fetch/servers.js';
import { HttpTree } from './http/tree.js';
import { PosixTree } from './posix.js';
import type { CvmfsTree } from './tree.js';

/** How to read repositories over HTTP (the `--cvmfs-*` options). */
export interface HttpSourceOptions {
  /** CVMFS_HTTP_PROXY syntax; null: the environment's http_proxy / https_proxy / no_proxy. */
  proxy: string | null;
  keysDir: string;
  cacheDir: string;
  allowExpired: boolean;
  variants: Map<string, string>;
  revision: number | null;
  tag: string | null;
  parallel: number;
  timeoutMs: number;
}

/** `http://…` or `https://…`, alone or as the first of a `;` list. */
export function isCvmfsUrl(root: string): boolean {
  return /^https?:\/\//i.test(root.trim());
}

/** Where objects fetched over HTTP are kept between builds: $XDG_CACHE_HOME/shrinkwrap/cvmfs. */
export function defaultCvmfsCache(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CACHE_HOME'] && path.isAbsolute(env['XDG_CACHE_HOME']) ? env['XDG_CACHE_HOME'] : path.join(os.homedir(), '.cache');
  return path.join(base, 'shrinkwrap', 'cvmfs');
}

export const DEFAULT_CVMFS_HTTP: HttpSourceOptions = {
  proxy: null,
  keysDir: '/etc/cvmfs/keys',
  cacheDir: '',
  allowExpired: false,
  variants: new Map(),
  revision: null,
  tag: null,
  parallel: 32,
  timeoutMs: 30_000,
};

/** The tree `root` names. The caller closes it (`closeTree`) when the build no longer reads it. */
export function openCvmfsTree(root: string, http: HttpSourceOptions | null, diag: Diagnostics, o: { xattrs: boolean }): CvmfsTree {
  if (isCvmfsUrl(root)) {
    const h = http ?? DEFAULT_CVMFS_HTTP;
    const servers = parseServerList(root);
    const fetcher = new Fetcher({
      servers,
      proxies: h.proxy === null ? null : parseProxyList(h.proxy),
      parallel: h.parallel,
      timeoutMs: h.timeoutMs,
      retries: 3,
      cacheDir: h.cacheDir || defaultCvmfsCache(),
      log: (line) => diag.warn('cvmfs-failover', line),
    });
    // Interrupted, the fetch worker stops and removes what it was writing before the process exits.
    obeySignals();
    const unregister = onInterrupt(() => fetcher.close());
    return new HttpTree(fetcher, { ...h, now: new Date(), label: root, xattrs: o.xattrs }, diag, unregister);
  }
  const rootText = path.resolve(root);
  requireDirectory(fromText(rootText), '--cvmfs-root');
  return new PosixTree(fromText(rootText), { xattrs: o.xattrs });
}

/** Give back what a tree holds beyond the build (the HTTP tree's fetch worker and catalogs). */
export async function closeTree(tree: CvmfsTree): Promise<void> {
  tree.release();
  if (tree instanceof HttpTree) await tree.close();
}

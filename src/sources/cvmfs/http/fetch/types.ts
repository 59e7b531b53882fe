// The fetcher's options and requests (fetcher.ts re-exports them).
import type { ProxyGroup } from './servers.js';

export interface FetcherOptions {
  /** URL templates, each containing @fqrn@ (see servers.ts). */
  servers: string[];
  /** null: from http_proxy/https_proxy/no_proxy (and HTTP_PROXY...) in the environment, else DIRECT. */
  proxies: ProxyGroup[] | null;
  /** Requests in flight per server (default 32). */
  parallel: number;
  /** Idle timeout per request: no byte for this long. */
  timeoutMs: number;
  /** Per server, with back-off, on 5xx, resets, timeouts (default 3). */
  retries: number;
  /** Content-addressed cache root (created 0700 if absent). */
  cacheDir: string;
  /** One line when a server or proxy is skipped (fail-over), with why. */
  log: (line: string) => void;
}

export type HashAlgorithm = 'sha1' | 'rmd160' | 'shake128';

export interface ObjectRequest {
  fqrn: string;
  /** 'data/ab/cdef…C' relative to the repository URL. */
  path: string;
  algorithm: HashAlgorithm;
  /** Expected hash of the bytes as stored. */
  digestHex: string;
  /** zlib: inflated (streaming) while hashing. */
  compressed: boolean;
  /** Refuse an object whose inflated size exceeds this (the catalog's size). */
  maxBytes?: number;
  /** Refuse an inflated size different from this (a data object whose size the catalog knows). */
  exactBytes?: number;
}

export interface ChunkedRequest {
  fqrn: string;
  /** Cache name of the assembled file, e.g. the file's hash string. */
  key: string;
  size: number;
  chunks: Array<ObjectRequest & { offset: number; size: number }>;
}

export interface FetchStats {
  requests: number;
  objects: number;
  fromCache: number;
  bytesWire: number;
  bytesStored: number;
  retries: number;
  perServer: Record<string, number>;
}

export function isChunked(r: ObjectRequest | ChunkedRequest): r is ChunkedRequest {
  return (r as ChunkedRequest).chunks !== undefined;
}

export function emptyStats(): FetchStats {
  return { requests: 0, objects: 0, fromCache: 0, bytesWire: 0, bytesStored: 0, retries: 0, perServer: {} };
}

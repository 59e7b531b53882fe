// What the Fetcher (main thread) and its download worker say to each other.
import type { FetchStats, FetcherOptions, ObjectRequest, ChunkedRequest } from './types.js';

/** Int32 slots of the shared control buffer. */
export const CTL = {
  /** Bumped (and notified) by the worker after each reply on the sync port. */
  reply: 0,
  /** Bumped by the worker whenever anything happens (a request starts, bytes arrive, a retry): a blocked caller waits while this moves. */
  activity: 1,
  length: 2,
} as const;

export interface WorkerData {
  options: Omit<FetcherOptions, 'log'>;
  control: SharedArrayBuffer;
  env: Record<string, string | undefined>;
  userAgent: string;
}

export type Job =
  | { id: number; kind: 'file'; fqrn: string; name: string; maxBytes: number; sync: boolean }
  | { id: number; kind: 'object'; request: ObjectRequest | ChunkedRequest; sync: boolean; prefetch: boolean }
  | { id: number; kind: 'close'; sync: false };

export type Reply =
  | { id: number; ok: true; path?: string; bytes?: Uint8Array; stats: FetchStats }
  | { id: number; ok: false; error: string; input: boolean; notFound: boolean; stats: FetchStats }
  | { id: -1; log: string }
  | { id: -2; stats: FetchStats };

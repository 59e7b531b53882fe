// The parts of a merge: SquashFS images whose root holds `<fqrn>/…` directories (mksquashfs DIR
// part.sqfs -keep-as-directory, or a shrinkwrap build without --base), read as entries under /cvmfs
// whose files carry their stored blocks (model/entry.ts `stored`), so that the writer copies them.
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { display } from '../../model/bytes.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import { type ImageEntry, type SquashfsImage, openSquashfs } from '../../sources/squashfs/reader.js';
import type { Steps } from '../../util/steps.js';
import { StoredSource } from '../../writers/squashfs/stored.js';

/** What the superblock says of a part (provenance records it). */
export interface PartFacts {
  compressor: string;
  blockSize: number;
  inodes: number;
  bytesUsed: number;
  mkfsTime: number;
}

export interface Part {
  /** As given on the command line. */
  file: string;
  image: SquashfsImage;
  source: StoredSource;
  facts: PartFacts;
  /** Its entries under the mount point, in path order, without its root and its /.shrinkwrap/. */
  entries: Entry[];
  /** The first name of each file with several names (hard links name it): path → entry. */
  firstNames: Map<string, Entry>;
  files: number;
  /** Bytes of file content. */
  bytes: number;
}

/** What a part's root may not hold besides repositories: shrinkwrap's records, replaced by the merge's own. */
const RECORDS = '/.shrinkwrap';

/** Open a part: its superblock and tables; one line naming it when it is no SquashFS image or is cut short. */
export async function openPart(file: string): Promise<{ image: SquashfsImage; facts: PartFacts }> {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new InputError(`${file}: no such file`);
  if (!st.isFile()) throw new InputError(`${file}: not a file (a part is a SquashFS image)`);
  const image = await openSquashfs(file);
  const sb = image.superblock;
  if (image.fileSize < sb.bytesUsed) {
    image.close();
    throw new InputError(`${file}: truncated: ${image.fileSize} bytes, its superblock says ${sb.bytesUsed}`);
  }
  return { image, facts: { compressor: sb.compressor, blockSize: sb.blockSize, inodes: sb.inodeCount, bytesUsed: sb.bytesUsed, mkfsTime: sb.mkfsTime } };
}

/**
 * A part's entries under `mount`, read with pauses (the caller's event loop turns: signals). The
 * root's children must be directories (repositories); a /cvmfs at the root means a root file
 * system, not a part.
 */
export function* partEntries(file: string, image: SquashfsImage, source: StoredSource, mount: string): Steps<Omit<Part, 'file' | 'image' | 'source' | 'facts'>> {
  const reason = `part ${file}`;
  const entries: Entry[] = [];
  const firstNames = new Map<string, Entry>();
  let files = 0;
  let bytes = 0;
  let n = 0;
  if (image.lookup('/cvmfs')?.type === 'dir') {
    throw new InputError(`${file}: holds /cvmfs: a root file system, not a part (a part holds <fqrn>/ directories at its root: mksquashfs DIR part.sqfs -keep-as-directory, or shrinkwrap without --base)`);
  }
  for (const ie of image.walk()) {
    if ((++n & 4095) === 0) yield;
    if (ie.path === '/') continue;
    if (ie.path === RECORDS || ie.path.startsWith(RECORDS + '/')) continue;
    if (ie.path.lastIndexOf('/') === 0) checkTopLevel(file, ie);
    const e = plainEntry(ie, mount, reason);
    if (ie.type === 'file') {
      e.stored = source.blocksOf(ie);
      files++;
      bytes += ie.size;
      if (ie.nlink > 1) firstNames.set(e.path, e);
    }
    entries.push(e);
  }
  return { entries, firstNames, files, bytes };
}

function checkTopLevel(file: string, e: ImageEntry): void {
  if (e.type !== 'dir') {
    throw new InputError(`${file}: ${display(e.path)} at its root is a ${e.type}, not a repository directory (a part holds <fqrn>/ directories at its root: mksquashfs DIR part.sqfs -keep-as-directory)`);
  }
}

/** The entry without the reader's details, under `mount`. */
function plainEntry(ie: ImageEntry, mount: string, reason: string): Entry {
  const e: Entry = { path: mount + ie.path, type: ie.type, mode: ie.mode, uid: ie.uid, gid: ie.gid, mtime: ie.mtime, size: ie.size, reason };
  if (ie.target !== undefined) e.target = ie.type === 'hardlink' ? mount + ie.target : ie.target;
  if (ie.rdev !== undefined) e.rdev = ie.rdev;
  if (ie.xattrs !== undefined && ie.xattrs.length > 0) e.xattrs = ie.xattrs;
  return e;
}

/** Read and check every part; every bad one is named (one line), and nothing stays open then. */
export async function openParts(files: string[]): Promise<Array<{ file: string; image: SquashfsImage; facts: PartFacts }>> {
  const opened: Array<{ file: string; image: SquashfsImage; facts: PartFacts }> = [];
  const bad: string[] = [];
  for (const file of files) {
    try {
      opened.push({ file, ...(await openPart(file)) });
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      // The reader names the file in most of its messages, not in all (a table it cannot read).
      bad.push(err.message.startsWith(file) ? err.message : `${file}: ${err.message}`);
    }
  }
  if (bad.length > 0) {
    for (const p of opened) p.image.close();
    throw new InputError(bad.length === 1 ? bad[0]! : `${bad.length} parts cannot be merged: ${bad.join('; ')}`);
  }
  return opened;
}

// The parts' sha256 (provenance records them) on a thread of its own: the main thread meanwhile
// copies their blocks, and hashing them there first would cost another read of every byte.
const HASHER = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
const out = [];
for (const f of workerData) {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(f, 'r');
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  out.push(h.digest('hex'));
}
parentPort.postMessage(out);
`;

/** The sha256 (hex) of each file, computed on a worker thread; `stop()` ends it early. */
export function hashFiles(files: string[]): { digests: Promise<string[]>; stop: () => void } {
  const worker = new Worker(HASHER, { eval: true, workerData: files });
  const digests = new Promise<string[]>((resolve, reject) => {
    worker.once('message', (m: string[]) => resolve(m));
    worker.once('error', (err) => reject(new BuildError(`cannot read the parts for their sha256: ${describeSystemError(err)}`)));
    worker.once('exit', () => reject(new BuildError('the parts\' sha256 thread ended early')));
  });
  digests.catch(() => {}); // awaited later, or not at all when the merge fails first
  return { digests, stop: () => void worker.terminate() };
}

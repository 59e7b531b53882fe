// A SquashFS image as a base root filesystem: a `.sqfs` file, or the primary partition of a SIF
// container (`sif.ts`). Its tree becomes base entries; the content of its files is decompressed
// once into one file in the work directory, each entry pointing at its bytes there (offset and
// size), the way a gzip layer is decompressed to a tar: every writer reads (file, offset) ranges.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromText } from '../../model/bytes.js';
import type { Entry } from '../../model/entry.js';
import { BuildError, InputError, describeSystemError } from '../../model/errors.js';
import { type Steps, runStepsAsync } from '../../util/steps.js';
import { type FileRegion, type ImageEntry, type SquashfsImage, openSquashfs } from '../squashfs/reader.js';

/** Pause (let a signal in) after this many entries, or this many bytes of content written. */
const PAUSE_ENTRIES = 2000;
const PAUSE_BYTES = 16 << 20;

export interface SquashfsBaseTree {
  entries: Entry[];
  /** Bytes of file content decompressed into the work directory. */
  contentBytes: number;
}

/**
 * The tree of the image in `file` (or of `region` of it), its file contents decompressed to
 * `work`. `label` names the image in messages ("--base x.sif: partition 3").
 */
export async function readSquashfsBase(file: string, label: string, region: FileRegion | undefined, work: string): Promise<SquashfsBaseTree> {
  let image: SquashfsImage;
  try {
    image = await openSquashfs(file, { region });
  } catch (err) {
    throw new InputError(`${label}: ${stripPath(describeSystemError(err), file)}`);
  }
  const contentFile = path.join(work, 'squashfs-content');
  let fd: number;
  try {
    fd = fs.openSync(contentFile, 'wx', 0o600);
  } catch (err) {
    image.close();
    throw new BuildError(`cannot write ${contentFile}: ${describeSystemError(err)}`);
  }
  try {
    return await runStepsAsync(entriesOf(image, label, fd, fromText(contentFile)));
  } catch (err) {
    if (err instanceof InputError) throw new InputError(`${label}: ${stripPath(err.message, file)}`);
    if ((err as NodeJS.ErrnoException).code !== undefined) throw new BuildError(`cannot write ${contentFile}: ${describeSystemError(err)}`);
    throw err;
  } finally {
    fs.closeSync(fd);
    image.close();
  }
}

/** The reader names the file in its messages; the label says it better (and names the partition). */
function stripPath(message: string, file: string): string {
  return message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
}

function* entriesOf(image: SquashfsImage, label: string, fd: number, contentFile: string): Steps<SquashfsBaseTree> {
  const entries: Entry[] = [];
  const reason = `base ${label}`;
  let at = 0;
  let sincePause = 0;
  for (const img of image.walk()) {
    const e = plainEntry(img, reason);
    if (img.type === 'file') {
      // Empty files too: every writer reads a file's (source, offset, size), even of 0 bytes.
      e.source = contentFile;
      e.offset = at;
      for (const block of image.readBlocks(img)) {
        writeAll(fd, block, at);
        at += block.length;
        sincePause += block.length;
      }
    }
    entries.push(e);
    sincePause += 4096; // an entry costs about as much as a page of content
    if (sincePause >= PAUSE_BYTES || entries.length % PAUSE_ENTRIES === 0) {
      sincePause = 0;
      yield;
    }
  }
  return { entries, contentBytes: at };
}

/** The entry a writer needs, without the SquashFS details behind it. */
function plainEntry(img: ImageEntry, reason: string): Entry {
  const e: Entry = { path: img.path, type: img.type, mode: img.mode, uid: img.uid, gid: img.gid, mtime: img.mtime, size: img.size, reason };
  if (img.target !== undefined) e.target = img.target;
  if (img.rdev !== undefined) e.rdev = img.rdev;
  if (img.xattrs && img.xattrs.length > 0) e.xattrs = img.xattrs;
  return e;
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done, pos + done);
}

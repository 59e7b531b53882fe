// --reuse PREVIOUS: a SquashFS build takes the compressed blocks of the previous image for every
// file whose image path, size and modification time are those of a file there (the quick check
// rsync makes), instead of reading and compressing it again: the entry's `stored` field is set
// before the data writer sees it (writers/squashfs/stored.ts, model/entry.ts StoredBlocks).
//
// The selection offers the walk's files to the writer as it finds them, so they are matched as they
// are walked: the previous image's entries come from its own walk, in path order, in step with the
// selection's (both in path order), and what the selection's walk passed over (the base, closure
// additions, removed files) is kept for a second pass over the composed image. Files shrinkwrap
// generates (/.shrinkwrap/, /release_setup.sh, Apptainer's files) are never matched: their times
// are the image's, not their content's.
import * as path from 'node:path';
import { fromText } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import { type Entry, comparePaths } from '../model/entry.js';
import { InputError, describeSystemError } from '../model/errors.js';
import type { CodecName } from '../codecs/index.js';
import { type ImageEntry, type SquashfsImage, openSquashfs } from '../sources/squashfs/reader.js';
import { readSif, squashfsPartition } from '../sources/sif/index.js';
import { imageFileKind } from '../sources/image-file.js';
import { StoredSource } from '../writers/squashfs/stored.js';
import type { MtimePolicy } from './image.js';

/** Files that took the previous image's blocks, and their content bytes. */
export interface ReuseCounts {
  files: number;
  bytes: number;
}

/** What the output will be: the previous image's blocks are copied only into the same compressor and block size. */
export interface ReuseTarget {
  compression: 'none' | CodecName;
  blockSize: number;
  mtime: MtimePolicy;
}

/** A file of the previous image, as much of it as matching and copying need. */
interface Candidate {
  path: string;
  size: number;
  mtime: number;
  entry: ImageEntry;
}

export class PreviousImage {
  /** The previous image's entries, in path order, read as the selection walks. */
  private readonly entries: Generator<ImageEntry>;
  private current: ImageEntry | undefined;
  /** Its files the walk passed over, in path order: for the second pass (base, closures). */
  private readonly passed: Candidate[] = [];
  /** SOURCE_DATE_EPOCH, which --mtime clamp clamps to (null: unset, the epoch is the newest payload time). */
  private readonly envEpoch: number | null;

  private constructor(
    /** As the user gave it (messages). */
    readonly file: string,
    private readonly image: SquashfsImage,
    private readonly source: StoredSource,
    private readonly policy: 'keep' | 'clamp',
  ) {
    this.entries = image.walk();
    this.advance(); // the root: a damaged inode table fails here, before anything is written
    const env = process.env['SOURCE_DATE_EPOCH'];
    this.envEpoch = env !== undefined && /^\d+$/.test(env) ? Number(env) : null;
  }

  /**
   * Open `file` (a SquashFS image, or a SIF whose primary partition is one). InputError, one line
   * naming it, when it cannot be read; null, with one warning, when its blocks cannot serve this
   * build (another compressor or block size, or --mtime SECONDS, which leaves no time to compare).
   */
  static async open(file: string, target: ReuseTarget, diag: Diagnostics): Promise<PreviousImage | null> {
    const label = `--reuse ${file}`;
    if (typeof target.mtime === 'number') {
      diag.warn('reuse-ignored', `${label}: ignored: with --mtime ${target.mtime} every file has the same time, so an unchanged file cannot be told from a changed one`);
      return null;
    }
    const region = imageRegion(file, label);
    let image: SquashfsImage;
    try {
      image = await openSquashfs(file, region ? { region } : {});
    } catch (err) {
      throw new InputError(`${label}: ${unprefixed(err, file)}`);
    }
    let previous: PreviousImage;
    try {
      // StoredSource opens the file again when it first copies: by absolute path, as the selection's walk changes directory.
      previous = new PreviousImage(file, image, new StoredSource(image, fromText(path.resolve(file)), region?.offset ?? 0), target.mtime);
    } catch (err) {
      image.close();
      throw err; // the walk's first read (PreviousImage.advance): already one line naming the option
    }
    const sb = image.superblock;
    const kib = (n: number) => `${n / 1024} KiB blocks`;
    if (target.compression === 'none' || sb.compressor !== target.compression || sb.blockSize !== target.blockSize) {
      previous.close();
      const ours = target.compression === 'none' ? 'writes its blocks uncompressed' : `is ${target.compression} with ${kib(target.blockSize)}`;
      diag.warn('reuse-ignored', `${label}: ignored: it is ${sb.compressor} with ${kib(sb.blockSize)}, this build ${ours}; every file is compressed anew`);
      return null;
    }
    return previous;
  }

  /**
   * A regular file of the selection's walk (its /cvmfs path: `imagePath` is where it lands in the
   * image), before it is offered to the writer: takes the previous image's blocks if it matches.
   * Walked files come in path order; one out of order is simply not matched.
   */
  walked(e: Entry, imagePath: string): void {
    const mtime = this.policy === 'clamp' && this.envEpoch !== null && e.mtime >= this.envEpoch ? null : e.mtime;
    let c = this.current;
    while (c !== undefined && comparePaths(c.path, imagePath) < 0) {
      this.pass(c);
      c = this.advance();
    }
    if (c === undefined || c.path !== imagePath) return;
    this.advance();
    if (mtime !== null) this.take(e, c, mtime);
  }

  /**
   * The composed image (path order, times as written), after the walk: its files not marked yet
   * (closure additions, the base) are matched against the previous files the walk passed over.
   * `generated`: what shrinkwrap wrote itself, never matched. Returns what took stored blocks.
   */
  composed(image: readonly Entry[], generated: ReadonlySet<Entry>, epoch: number): ReuseCounts {
    for (let c = this.current; c !== undefined; c = this.advance()) this.pass(c);
    const passed = this.passed;
    let k = 0;
    const counts: ReuseCounts = { files: 0, bytes: 0 };
    for (const e of image) {
      if (e.type !== 'file') continue;
      if (e.stored === undefined && k < passed.length && !generated.has(e)) {
        while (k < passed.length && comparePaths(passed[k]!.path, e.path) < 0) k++;
        const c = passed[k];
        // --mtime clamp: a time at the epoch may have been clamped, so it says nothing of the content's.
        if (c !== undefined && c.path === e.path && !(this.policy === 'clamp' && e.mtime >= epoch)) this.take(e, c.entry, e.mtime);
      }
      if (e.stored !== undefined) {
        counts.files++;
        counts.bytes += e.size;
      }
    }
    this.passed.length = 0;
    return counts;
  }

  /** Close the image (after the writer is done with its blocks). */
  close(): void {
    this.source.close();
    this.image.close();
  }

  /** Set `e.stored` when the previous file `c` has its size and time (empty files have nothing to copy). */
  private take(e: Entry, c: ImageEntry, mtime: number): void {
    if (e.type !== 'file' || e.size === 0 || c.blocksStart === undefined || c.fileSize !== e.size || c.mtime !== mtime) return;
    e.stored = this.source.blocksOf(c);
  }

  private advance(): ImageEntry | undefined {
    let next: IteratorResult<ImageEntry>;
    try {
      next = this.entries.next();
    } catch (err) {
      throw new InputError(`--reuse ${this.file}: ${unprefixed(err, this.file)}`);
    }
    this.current = next.done ? undefined : next.value;
    return this.current;
  }

  /** A previous entry the walk went past: kept for the second pass if it is a file (a hard link's other names too). */
  private pass(c: ImageEntry): void {
    if (c.blocksStart !== undefined && c.fileSize > 0) this.passed.push({ path: c.path, size: c.fileSize, mtime: c.mtime, entry: c });
  }
}

/** Where the image is in the file: a SIF's primary partition; undefined for a SquashFS file. */
function imageRegion(file: string, label: string): { offset: number; size: number } | undefined {
  let kind: ReturnType<typeof imageFileKind>;
  try {
    kind = imageFileKind(file);
  } catch (err) {
    throw new InputError(`${label}: ${describeSystemError(err)}`);
  }
  if (kind === 'squashfs') return undefined;
  if (kind !== 'sif') throw new InputError(`${label}: not a SquashFS image or a SIF container`);
  try {
    const d = squashfsPartition(readSif(file), null, label).descriptor;
    return { offset: d.offset, size: d.size };
  } catch (err) {
    if (err instanceof InputError && err.message.startsWith(label)) throw err;
    throw new InputError(`${label}: ${unprefixed(err, file)}`);
  }
}

/** A reader's message without the file name it starts with (the caller names the option and file). */
function unprefixed(err: unknown, file: string): string {
  if (!(err instanceof InputError)) return describeSystemError(err);
  const m = err.message;
  return m.startsWith(`${file}: `) ? m.slice(file.length + 2) : m;
}

// `build --release X --part`: what a build does differently when it writes a part. A part is the
// /cvmfs selection alone (a /cvmfs-only SquashFS image, `<fqrn>/…` at its root, nothing generated)
// plus its index (index-file.ts), so that `merge` and `build --parts` can take it as one file.
import * as path from 'node:path';
import type { Entry } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import type { Payload } from '../../select/index.js';
import type { SelectionRequest } from '../inputs.js';
import type { Sources } from '../provenance.js';
import { type PartImageOptions, type PartIndex, partIndexEntries, startPartIndex as start } from './index-file.js';

/** What --part goes with: releases, no base, SquashFS. One line each. */
export function checkPartRules(o: { format: string; base: unknown; selection: Pick<SelectionRequest, 'releases'> }, option = '--part'): void {
  if (!o.selection.releases || o.selection.releases.requests.length === 0) {
    throw new InputError(`${option} needs --release (a part is the /cvmfs selection of a release, merged onto a base later)`);
  }
  if (o.base !== null && o.base !== undefined && option === '--part') {
    throw new InputError('--part takes no --base: a part holds /cvmfs content only, put on a base when parts are merged (build --parts DIR --base IMAGE, or shrinkwrap merge --base IMAGE)');
  }
  if (o.format !== 'squashfs') throw new InputError(`${option} writes SquashFS (--format squashfs): parts are merged by copying their compressed blocks`);
}

export interface PartInProgress {
  write: (sources: Sources, file: string) => Promise<PartIndex>;
  stop: () => void;
}

/** Start a part's index for the selection (its files are hashed on a thread meanwhile). */
export function startPartIndex(payload: Payload, selection: SelectionRequest, image: PartImageOptions): PartInProgress {
  return start(payload, selection, image);
}

/** The index written into the work directory, as the part's generated entries. */
export async function writePartIndex(part: PartInProgress, sources: Sources, work: string, epoch: number): Promise<Entry[]> {
  const file = path.join(work, 'part.json');
  try {
    await part.write(sources, file);
  } finally {
    part.stop();
  }
  return partIndexEntries(file, epoch);
}

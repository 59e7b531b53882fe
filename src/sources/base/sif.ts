// A SIF container as a base: its primary system partition (SquashFS) is the root filesystem, read
// by our SquashFS reader (squashfs.ts); its label objects are kept as the base's provenance.
import type { Entry } from '../../model/entry.js';
import { readSif, sifLabels, squashfsPartition } from '../sif/index.js';
import { readSquashfsBase } from './squashfs.js';

export interface SifBase {
  entries: Entry[];
  /** The labels the container carries (its JSON label objects, merged in table order). */
  labels: Record<string, string>;
  /** The partition's architecture (Go name). */
  arch: string;
}

/** The root filesystem of `file`'s primary partition; `arch`: the architecture the build is for. */
export async function readSifBase(file: string, text: string, arch: string, work: string): Promise<SifBase> {
  const label = `--base ${text}`;
  const sif = readSif(file);
  const part = squashfsPartition(sif, arch, label);
  const d = part.descriptor;
  const tree = await readSquashfsBase(file, `${label}: partition ${d.id}`, { offset: d.offset, size: d.size }, work);
  return { entries: tree.entries, labels: sifLabels(sif, label), arch };
}

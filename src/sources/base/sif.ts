// A SIF container as a base: its primary system partition (SquashFS) is the root filesystem, read
// by our SquashFS reader (squashfs.ts); its label objects are kept as the base's provenance.
import * as fs from 'node:fs';
import type { Entry } from '../../model/entry.js';
import { InputError } from '../../model/errors.js';
import { DataType } from '../../formats/sif.js';
import { type SifFile, readSif, squashfsPartition } from '../sif/index.js';
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

/**
 * The labels of the container: JSON label objects (type JSON.Labels) and generic JSON objects
 * named like apptainer's labels object, flattened to strings. Other JSON objects are not labels.
 */
export function sifLabels(sif: SifFile, label: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of sif.objects) {
    const isLabels = d.dataType === DataType.labels || (d.dataType === DataType.genericJson && /labels/i.test(d.name));
    if (!isLabels || d.size === 0) continue;
    if (d.size > 16 << 20) throw new InputError(`${label}: object ${d.id} (labels) is ${d.size} bytes, more than labels ever are`);
    const fd = fs.openSync(sif.path, 'r');
    let text: string;
    try {
      const buf = Buffer.alloc(d.size);
      fs.readSync(fd, buf, 0, d.size, d.offset);
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new InputError(`${label}: object ${d.id} (labels) is not JSON`);
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InputError(`${label}: object ${d.id} (labels) is not a JSON object`);
    for (const [k, v] of Object.entries(doc as Record<string, unknown>)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

// `verify X.sif`: the container first (header, descriptors inside the file and not overlapping,
// ids, counts: sources/sif), then the SquashFS image in its primary partition, checked as a
// `.sqfs` is (verify/squashfs), with its problems named by partition. The objects and labels are
// reported too (`verify --json`), as `siftool list` and `apptainer inspect` show them.
import { DATA_TYPE_NAMES, DataType, FS_TYPE_NAMES, FsType, PART_TYPE_NAMES, PARTITION_ALIGN, archName, decodePartitionExtra, groupText, linkText } from '../formats/sif.js';
import { InputError } from '../model/errors.js';
import { objectName, primaryPartition, readObject, readSif, sifLabels, sifProblems } from '../sources/sif/index.js';
import { verifySquashfs } from './squashfs/index.js';
import { type VerifyOptions, type VerifyResult, type VerifyStats, emptyStats } from './squashfs/report.js';

export interface SifObjectReport {
  id: number;
  /** As siftool prints it: "FS (Squashfs/*System/amd64)", "JSON.Generic". */
  type: string;
  group: string;
  link: string;
  offset: number;
  size: number;
  name: string;
}

export interface SifVerifyStats extends VerifyStats {
  sif: {
    id: string;
    arch: string;
    objects: SifObjectReport[];
    /** The partition checked: its object id, offset and size (null: none). */
    partition: { id: number; offset: number; size: number } | null;
    labels: Record<string, string>;
  };
}

export interface SifVerifyResult extends VerifyResult {
  stats: SifVerifyStats;
}

export async function verifySif(file: string, opts: VerifyOptions = {}): Promise<SifVerifyResult> {
  const sif = readSif(file);
  const problems = sifProblems(sif);
  const warnings: string[] = [];
  const objects = sif.objects.map(objectReport);
  const id = sif.header.id.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  let labels: Record<string, string> = {};
  try {
    labels = sifLabels(sif, file);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    problems.push(err.message.slice(file.length + 2));
  }
  for (const d of sif.objects) {
    if (d.dataType !== DataType.genericJson) continue;
    try {
      JSON.parse(readObject(sif, d, file).toString('utf8'));
    } catch {
      problems.push(`${objectName(d)}${d.name ? ` ${d.name}` : ''}: not JSON`);
    }
  }
  const part = primaryPartition(sif);
  const stats: SifVerifyStats = { ...emptyStats(sif.fileSize), sif: { id, arch: archName(sif.header.arch), objects, partition: null, labels } };
  if (!part) {
    problems.push('no primary system partition: nothing for a runtime to mount');
    return { problems, warnings, stats };
  }
  const d = part.descriptor;
  const where = `partition ${d.id}`;
  if (part.extra.fsType !== FsType.squash) {
    problems.push(`${where}: ${FS_TYPE_NAMES[part.extra.fsType] ?? `file system type ${part.extra.fsType}`}, not SquashFS: not checked further`);
    return { problems, warnings, stats };
  }
  if (part.extra.arch !== sif.header.arch) problems.push(`${where}: architecture ${archName(part.extra.arch)}, but the header says ${archName(sif.header.arch)}`);
  if (d.offset % PARTITION_ALIGN !== 0) warnings.push(`${where}: offset ${d.offset} is not a multiple of ${PARTITION_ALIGN} (the Go library aligns partitions to pages)`);
  if (d.size % 512 !== 0) problems.push(`${where}: size ${d.size} is not a multiple of 512: a loop device (sizelimit) cuts the image short`);
  if (problems.some((p) => p.startsWith(objectName(d)) || p.includes(`overlaps ${objectName(d)}`))) return { problems, warnings, stats };
  stats.sif.partition = { id: d.id, offset: d.offset, size: d.size };
  const r = await verifySquashfs(file, { ...opts, region: { offset: d.offset, size: d.size } });
  return {
    problems: [...problems, ...r.problems.map((p) => `${where}: ${p}`)],
    warnings: [...warnings, ...r.warnings.map((w) => `${where}: ${w}`)],
    // The file's size is the container's; the rest of the figures are the partition's.
    stats: { ...r.stats, fileSize: sif.fileSize, sif: stats.sif },
  };
}

/** Signature hash types as siftool prints them (Go's crypto.Hash names). */
const HASH_NAMES: Readonly<Record<number, string>> = { 1: 'SHA-256', 2: 'SHA-384', 3: 'SHA-512', 4: 'BLAKE2s-256', 5: 'BLAKE2b-256' };

function objectReport(d: ReturnType<typeof readSif>['objects'][number]): SifObjectReport {
  let type = DATA_TYPE_NAMES[d.dataType] ?? 'Unknown';
  if (d.dataType === DataType.partition) {
    const p = decodePartitionExtra(d.extra);
    type = `FS (${FS_TYPE_NAMES[p.fsType] ?? 'Unknown'}/${PART_TYPE_NAMES[p.partType] ?? 'Unknown'}/${archName(p.arch)})`;
  } else if (d.dataType === DataType.signature) {
    type = `Signature (${HASH_NAMES[d.extra.readInt32LE(0)] ?? 'Unknown'})`;
  }
  return { id: d.id, type, group: groupText(d.groupId), link: linkText(d.linkedId), offset: d.offset, size: d.size, name: d.name };
}

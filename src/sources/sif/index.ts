// Reading a SIF container: its header and descriptors (formats/sif.ts), checked the way a reader
// must before it trusts an offset: the descriptor table and every object inside the file, no two
// objects overlapping, ids unique. The primary system partition is what a base and `verify` read.
import * as fs from 'node:fs';
import { InputError, describeSystemError } from '../../model/errors.js';
import {
  DATA_TYPE_NAMES,
  DESCRIPTOR_SIZE,
  DataType,
  FS_TYPE_NAMES,
  FsType,
  HEADER_SIZE,
  type PartitionExtra,
  PartType,
  SIF_MAGIC,
  SIF_VERSION,
  type SifDescriptor,
  type SifHeader,
  archName,
  decodeDescriptor,
  decodeHeader,
  decodePartitionExtra,
} from '../../formats/sif.js';

/** More descriptors than any real file has; a larger count is a damaged header, not a table to read. */
const MAX_DESCRIPTORS = 65536;

export interface SifFile {
  path: string;
  fileSize: number;
  header: SifHeader;
  /** The descriptors in use, in table order. */
  objects: SifDescriptor[];
}

/** Open and decode a SIF file; InputError (one line naming the file) when it is not one or is cut short. */
export function readSif(path: string): SifFile {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new InputError(`${path}: ${describeSystemError(err)}`);
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < HEADER_SIZE) throw new InputError(`${path}: not a SIF file: ${fileSize} bytes, shorter than the ${HEADER_SIZE}-byte header`);
    const header = decodeHeader(readAt(fd, 0, HEADER_SIZE));
    if (header.magic !== SIF_MAGIC) throw new InputError(`${path}: not a SIF file (no ${SIF_MAGIC} at byte 32)`);
    if (header.version !== SIF_VERSION) throw new InputError(`${path}: SIF version ${JSON.stringify(header.version)}; only ${SIF_VERSION} is read`);
    const { descriptorsOffset: at, descriptorsTotal: total } = header;
    if (!Number.isSafeInteger(total) || total < 0 || total > MAX_DESCRIPTORS) throw new InputError(`${path}: the header counts ${header.descriptorsTotal} descriptors`);
    if (!Number.isSafeInteger(at) || at < HEADER_SIZE || at + total * DESCRIPTOR_SIZE > fileSize) {
      throw new InputError(`${path}: the descriptor table (${total} × ${DESCRIPTOR_SIZE} bytes at ${at}) is not inside the file (${fileSize} bytes)`);
    }
    const table = readAt(fd, at, total * DESCRIPTOR_SIZE);
    const objects: SifDescriptor[] = [];
    for (let i = 0; i < total; i++) {
      const d = decodeDescriptor(table.subarray(i * DESCRIPTOR_SIZE, (i + 1) * DESCRIPTOR_SIZE));
      if (d.used) objects.push(d);
    }
    return { path, fileSize, header, objects };
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, buf, done, len - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/** How an object is named in messages: "object 3 (FS)". */
export function objectName(d: SifDescriptor): string {
  return `object ${d.id} (${DATA_TYPE_NAMES[d.dataType] ?? `type 0x${d.dataType.toString(16)}`})`;
}

/**
 * What is wrong with the container's structure, one line each: objects outside the file or
 * before the data section, objects that overlap, repeated ids, counts that disagree.
 */
export function sifProblems(sif: SifFile): string[] {
  const out: string[] = [];
  const { header: h, fileSize } = sif;
  if (h.descriptorsFree !== h.descriptorsTotal - sif.objects.length) {
    out.push(`header: ${h.descriptorsFree} descriptors free, but ${h.descriptorsTotal - sif.objects.length} of ${h.descriptorsTotal} are unused`);
  }
  const tableEnd = h.descriptorsOffset + h.descriptorsTotal * DESCRIPTOR_SIZE;
  if (h.dataOffset < tableEnd) out.push(`header: the data section (at ${h.dataOffset}) starts inside the descriptor table (which ends at ${tableEnd})`);
  const ids = new Set<number>();
  for (const d of sif.objects) {
    const name = objectName(d);
    if (ids.has(d.id)) out.push(`${name}: id ${d.id} is used twice`);
    ids.add(d.id);
    if (!Number.isSafeInteger(d.offset) || !Number.isSafeInteger(d.size) || d.offset < 0 || d.size < 0) {
      out.push(`${name}: offset ${d.offset}, size ${d.size}: not a place in a file`);
    } else if (d.offset + d.size > fileSize) {
      out.push(`${name}: bytes ${d.offset}-${d.offset + d.size} are beyond the end of the file (${fileSize} bytes)`);
    } else if (d.offset < h.dataOffset) {
      out.push(`${name}: starts at ${d.offset}, before the data section (${h.dataOffset})`);
    }
  }
  const placed = sif.objects.filter((d) => d.size > 0 && Number.isSafeInteger(d.offset)).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < placed.length; i++) {
    const a = placed[i - 1]!;
    const b = placed[i]!;
    if (b.offset < a.offset + a.size) out.push(`${objectName(b)} (bytes ${b.offset}-${b.offset + b.size}) overlaps ${objectName(a)} (bytes ${a.offset}-${a.offset + a.size})`);
  }
  const end = Math.max(h.dataOffset, ...placed.map((d) => d.offset + d.size));
  if (h.dataSize !== end - h.dataOffset) out.push(`header: data size ${h.dataSize}, but the objects end ${end - h.dataOffset} bytes into the data section`);
  return out;
}

export interface PrimaryPartition {
  descriptor: SifDescriptor;
  extra: PartitionExtra;
}

/** The primary system partition, if the container has one (the first, as apptainer takes it). */
export function primaryPartition(sif: SifFile): PrimaryPartition | null {
  for (const d of sif.objects) {
    if (d.dataType !== DataType.partition) continue;
    const extra = decodePartitionExtra(d.extra);
    if (extra.partType === PartType.primarySystem) return { descriptor: d, extra };
  }
  return null;
}

/**
 * The primary partition as a SquashFS root filesystem to read, or one line saying why it cannot
 * be: no partition, an encrypted one (or a cryptographic message: apptainer's encrypted images),
 * another file system, another architecture than `arch` (a Go name; null: any).
 */
export function squashfsPartition(sif: SifFile, arch: string | null, label: string): PrimaryPartition {
  const crypt = sif.objects.find((d) => d.dataType === DataType.cryptoMessage);
  const part = primaryPartition(sif);
  if (!part) throw new InputError(`${label}: no primary system partition: the SIF holds ${describeObjects(sif)}`);
  const what = objectName(part.descriptor);
  if (part.extra.fsType === FsType.encryptedSquash || crypt) {
    throw new InputError(`${label}: the root file system is encrypted (${crypt ? objectName(crypt) + ' holds its key' : what + ' is encrypted SquashFS'}); decrypt it first (apptainer build with --pem-path or --passphrase)`);
  }
  if (part.extra.fsType !== FsType.squash) {
    throw new InputError(`${label}: the primary partition (${what}) is ${FS_TYPE_NAMES[part.extra.fsType] ?? `file system type ${part.extra.fsType}`}, not SquashFS`);
  }
  const partArch = archName(part.extra.arch);
  if (arch !== null && partArch !== arch) throw new InputError(`${label}: the primary partition is for ${partArch}, not ${arch} (give --platform linux/${partArch} to build for it)`);
  const problems = sifProblems(sif).filter((p) => p.startsWith(what) || p.includes(`overlaps ${what}`));
  if (problems.length > 0) throw new InputError(`${label}: ${problems[0]}`);
  return part;
}

function describeObjects(sif: SifFile): string {
  if (sif.objects.length === 0) return 'no objects';
  return sif.objects.map((d) => DATA_TYPE_NAMES[d.dataType] ?? `type 0x${d.dataType.toString(16)}`).join(', ');
}

/** Metadata objects are small; a larger one is a damaged descriptor, not something to read into memory. */
const MAX_METADATA = 16 << 20;

/** The bytes of a metadata object (not a partition). */
export function readObject(sif: SifFile, d: SifDescriptor, label: string): Buffer {
  if (d.size > MAX_METADATA) throw new InputError(`${label}: ${objectName(d)} is ${d.size} bytes, more than metadata ever is`);
  if (d.offset + d.size > sif.fileSize) throw new InputError(`${label}: ${objectName(d)} is beyond the end of the file`);
  const fd = fs.openSync(sif.path, 'r');
  try {
    return readAt(fd, d.offset, d.size);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The container's labels, where `apptainer inspect` finds them: the `inspect-metadata.json`
 * object's data.attributes.labels; else JSON.Labels objects (Singularity 3 wrote those).
 */
export function sifLabels(sif: SifFile, label: string): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (labels: unknown) => {
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) return;
    for (const [k, v] of Object.entries(labels as Record<string, unknown>)) out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  };
  for (const d of sif.objects) {
    const inspect = d.name === 'inspect-metadata.json';
    if (!inspect && d.dataType !== DataType.labels) continue;
    const doc = parseJsonObject(readObject(sif, d, label), `${label}: ${objectName(d)}${d.name ? ` ${d.name}` : ''}`);
    if (inspect) {
      const data = doc['data'] as Record<string, unknown> | undefined;
      put((data?.['attributes'] as Record<string, unknown> | undefined)?.['labels']);
    } else put(doc);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InputError(`${what} is not JSON`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InputError(`${what} is not a JSON object`);
  return doc as Record<string, unknown>;
}

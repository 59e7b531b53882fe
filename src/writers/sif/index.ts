// writers/sif: a SIF container around the SquashFS image, laid out as `apptainer build` lays it
// out (formats/sif.ts): header, 48 descriptors at 4096, then the definition (Def.FILE), the
// inspect-metadata.json object (JSON.Generic) and the SquashFS image as the primary system
// partition, page-aligned. The partition is streamed straight into the file by writers/squashfs
// (its `within` option) while the selection runs, before the objects that describe the finished
// image are known: it starts after room reserved for them (METADATA_ROOM). Objects too large for
// that room (never seen: they are a few KiB) follow the partition instead; the descriptors keep
// apptainer's order either way.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { BuildError, describeSystemError } from '../../model/errors.js';
import { SUPERBLOCK_SIZE, decodeSuperblock } from '../../formats/squashfs/index.js';
import {
  ARCH_CODES,
  ARCH_UNKNOWN,
  DEFAULT_DESCRIPTORS,
  DESCRIPTORS_OFFSET,
  DESCRIPTOR_SIZE,
  DataType,
  FsType,
  GROUP_MASK,
  PARTITION_ALIGN,
  PartType,
  SIF_LAUNCH_SCRIPT,
  SIF_MAGIC,
  SIF_VERSION,
  type SifDescriptor,
  encodeDescriptor,
  encodeHeader,
  encodePartitionExtra,
} from '../../formats/sif.js';

/** Where the data section starts: after the header and the descriptor table (32176, as the Go library has it). */
export const DATA_OFFSET = DESCRIPTORS_OFFSET + DEFAULT_DESCRIPTORS * DESCRIPTOR_SIZE;
/** Room kept before the partition for the definition and the metadata object. */
const METADATA_ROOM = 64 << 10;
/** Where the SquashFS partition starts. */
export const PARTITION_OFFSET = alignUp(DATA_OFFSET + METADATA_ROOM, PARTITION_ALIGN);
/** apptainer build puts every object in group 1. */
const GROUP = GROUP_MASK | 1;

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A metadata object: its type, name and bytes. */
export interface SifObjectInput {
  dataType: number;
  name: string;
  data: Buffer;
}

export interface SifFinish {
  /** Metadata objects, in apptainer's order (definition, then JSON objects by name). */
  objects: SifObjectInput[];
  /** Bytes of the SquashFS image written at PARTITION_OFFSET (padded to 4 KiB). */
  partitionSize: number;
  /** Go architecture name of the image. */
  arch: string;
  /** The container's and its objects' time (SOURCE_DATE_EPOCH, or now). */
  time: number;
}

export interface SifWritten {
  bytes: number;
  id: string;
  arch: string;
  partition: { id: number; offset: number; size: number };
  objects: Array<{ id: number; type: number; name: string; offset: number; size: number }>;
}

/**
 * Write the objects, descriptors and header around the partition already written, and cut the
 * file where its last object ends. `fd` is the output, open for writing.
 */
export function finishSif(fd: number, output: string, f: SifFinish): SifWritten {
  try {
    return finish(fd, f);
  } catch (err) {
    throw new BuildError(`cannot write ${output}: ${describeSystemError(err)}`);
  }
}

function finish(fd: number, f: SifFinish): SifWritten {
  const metaBytes = f.objects.reduce((n, o) => n + o.data.length, 0);
  const before = DATA_OFFSET + metaBytes <= PARTITION_OFFSET;
  const partitionEnd = PARTITION_OFFSET + f.partitionSize;
  // File positions: the objects packed one after another (alignment 1, as the Go library packs
  // non-partition objects), before the partition or after it.
  let at = before ? DATA_OFFSET : partitionEnd;
  const placed = f.objects.map((o) => {
    const offset = at;
    at += o.data.length;
    return { ...o, offset };
  });
  const fileEnd = before ? partitionEnd : at;
  for (const o of placed) writeAll(fd, o.data, o.offset);
  fs.ftruncateSync(fd, fileEnd);

  const arch = ARCH_CODES[f.arch] ?? ARCH_UNKNOWN;
  const descriptors: SifDescriptor[] = placed.map((o, i) => descriptor(i + 1, o.dataType, o.name, o.offset, o.data.length, Buffer.alloc(0), f.time));
  const partitionId = placed.length + 1;
  descriptors.push(descriptor(partitionId, DataType.partition, '', PARTITION_OFFSET, f.partitionSize, encodePartitionExtra({ fsType: FsType.squash, partType: PartType.primarySystem, arch }), f.time));
  setPadding(descriptors);

  const table = Buffer.alloc(DEFAULT_DESCRIPTORS * DESCRIPTOR_SIZE);
  descriptors.forEach((d, i) => encodeDescriptor(d).copy(table, i * DESCRIPTOR_SIZE));
  writeAll(fd, table, DESCRIPTORS_OFFSET);

  const id = containerId(fd, f.objects, f.partitionSize);
  const header = encodeHeader({
    launchScript: SIF_LAUNCH_SCRIPT,
    magic: SIF_MAGIC,
    version: SIF_VERSION,
    arch,
    id,
    createdAt: f.time,
    modifiedAt: f.time,
    descriptorsFree: DEFAULT_DESCRIPTORS - descriptors.length,
    descriptorsTotal: DEFAULT_DESCRIPTORS,
    descriptorsOffset: DESCRIPTORS_OFFSET,
    descriptorsSize: DEFAULT_DESCRIPTORS * DESCRIPTOR_SIZE,
    dataOffset: DATA_OFFSET,
    dataSize: fileEnd - DATA_OFFSET,
  });
  writeAll(fd, header, 0);
  return {
    bytes: fileEnd,
    id: uuidText(id),
    arch: f.arch,
    partition: { id: partitionId, offset: PARTITION_OFFSET, size: f.partitionSize },
    objects: placed.map((o, i) => ({ id: i + 1, type: o.dataType, name: o.name, offset: o.offset, size: o.data.length })),
  };
}

function descriptor(id: number, dataType: number, name: string, offset: number, size: number, extra: Buffer, time: number): SifDescriptor {
  return { dataType, used: true, id, groupId: GROUP, linkedId: 0, offset, size, sizeWithPadding: size, createdAt: time, modifiedAt: time, uid: 0, gid: 0, name, extra };
}

/** SizeWithPadding: the object's size plus the gap between the previous object (in the file) and it. */
function setPadding(descriptors: SifDescriptor[]): void {
  let end = DATA_OFFSET;
  for (const d of [...descriptors].sort((a, b) => a.offset - b.offset)) {
    d.sizeWithPadding = d.offset - end + d.size;
    end = d.offset + d.size;
  }
}

/**
 * The container's UUID, from its content: SHA-256 over the objects and the partition's superblock
 * and metadata tables (which record every block's place and size), as an RFC 9562 version 8 UUID.
 * The same image gets the same id; a different one, another.
 */
function containerId(fd: number, objects: SifObjectInput[], partitionSize: number): Buffer {
  const h = crypto.createHash('sha256');
  for (const o of objects) h.update(o.data);
  const sb = readAt(fd, PARTITION_OFFSET, SUPERBLOCK_SIZE);
  h.update(sb);
  const { inodeTableStart, bytesUsed } = decodeSuperblock(sb);
  const tablesStart = Number(inodeTableStart);
  const tablesEnd = Math.min(Number(bytesUsed), partitionSize);
  if (tablesStart < tablesEnd) h.update(readAt(fd, PARTITION_OFFSET + tablesStart, tablesEnd - tablesStart));
  const id = h.digest().subarray(0, 16);
  id[6] = (id[6]! & 0x0f) | 0x80;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return Buffer.from(id);
}

export function uuidText(id: Buffer): string {
  const x = id.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  for (let done = 0; done < len; ) {
    const n = fs.readSync(fd, buf, done, len - done, pos + done);
    if (n === 0) throw new Error(`the partition ends at ${pos + done}, before its tables`);
    done += n;
  }
  return buf;
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  for (let done = 0; done < buf.length; ) done += fs.writeSync(fd, buf, done, buf.length - done, pos + done);
}

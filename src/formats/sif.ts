// The Singularity Image Format (SIF), version 01, as the reference Go library (apptainer/sif v2,
// pkg/sif) lays it out: a 128-byte global header, a table of fixed-size descriptors (4096 bytes
// into the file, 48 of them by default), then the data objects the descriptors point at. All
// integers little-endian; strings are fixed-size byte arrays padded with NULs. Encode and decode
// side by side; reading a file (bounds, overlaps) is sources/sif, writing one writers/sif.
import { InputError } from '../model/errors.js';

export const SIF_MAGIC = 'SIF_MAGIC';
export const SIF_VERSION = '01';
/** What `apptainer build` puts first, so that `./image.sif` runs (apptainer's run-singularity). */
export const SIF_LAUNCH_SCRIPT = '#!/usr/bin/env run-singularity\n';
export const HEADER_SIZE = 128;
export const DESCRIPTOR_SIZE = 585;
export const DEFAULT_DESCRIPTORS = 48;
export const DESCRIPTORS_OFFSET = 4096;
/** Partitions start on a page boundary (the Go library aligns them so): a loop device maps them. */
export const PARTITION_ALIGN = 4096;
/** Stored group ids carry this mask; 0 means "no group". Linked ids carry it when they name a group. */
export const GROUP_MASK = 0xf0000000;

const LAUNCH_LEN = 32;
const MAGIC_LEN = 10;
const VERSION_LEN = 3;
const ARCH_LEN = 3;
const NAME_LEN = 128;
const EXTRA_LEN = 384;

/** Data object types (pkg/sif DataType). */
export const DataType = {
  deffile: 0x4001,
  envVar: 0x4002,
  labels: 0x4003,
  partition: 0x4004,
  signature: 0x4005,
  genericJson: 0x4006,
  generic: 0x4007,
  cryptoMessage: 0x4008,
  sbom: 0x4009,
  ociRootIndex: 0x400a,
  ociBlob: 0x400b,
} as const;

/** The names `siftool list` prints for them. */
export const DATA_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x4001: 'Def.FILE',
  0x4002: 'Env.Vars',
  0x4003: 'JSON.Labels',
  0x4004: 'FS',
  0x4005: 'Signature',
  0x4006: 'JSON.Generic',
  0x4007: 'Generic/Raw',
  0x4008: 'Cryptographic Message',
  0x4009: 'SBOM',
  0x400a: 'OCI.RootIndex',
  0x400b: 'OCI.Blob',
};

/** Partition file system types (pkg/sif FSType). */
export const FsType = { squash: 1, ext3: 2, immutableObjects: 3, raw: 4, encryptedSquash: 5 } as const;
export const FS_TYPE_NAMES: Readonly<Record<number, string>> = { 1: 'Squashfs', 2: 'Ext3', 3: 'Archive', 4: 'Raw', 5: 'Encrypted squashfs' };

/** Partition types (pkg/sif PartType). */
export const PartType = { system: 1, primarySystem: 2, data: 3, overlay: 4 } as const;
export const PART_TYPE_NAMES: Readonly<Record<number, string>> = { 1: 'System', 2: '*System', 3: 'Data', 4: 'Overlay' };

/** Architecture codes of the header and of partitions, by Go architecture name (pkg/sif arch.go). */
export const ARCH_CODES: Readonly<Record<string, string>> = {
  '386': '01',
  amd64: '02',
  arm: '03',
  arm64: '04',
  ppc64: '05',
  ppc64le: '06',
  mips: '07',
  mipsle: '08',
  mips64: '09',
  mips64le: '10',
  s390x: '11',
  riscv64: '12',
};
export const ARCH_UNKNOWN = '00';

/** The architecture a code stands for (the Go name), or `unknown (code)`. */
export function archName(code: string): string {
  for (const [name, c] of Object.entries(ARCH_CODES)) if (c === code) return name;
  return code === ARCH_UNKNOWN ? 'unknown' : `unknown (${JSON.stringify(code)})`;
}

export interface SifHeader {
  launchScript: string;
  magic: string;
  version: string;
  /** Architecture code ("02"), ARCH_UNKNOWN when no primary partition says one. */
  arch: string;
  /** 16 bytes. */
  id: Buffer;
  createdAt: number;
  modifiedAt: number;
  descriptorsFree: number;
  descriptorsTotal: number;
  descriptorsOffset: number;
  descriptorsSize: number;
  dataOffset: number;
  dataSize: number;
}

export interface SifDescriptor {
  dataType: number;
  used: boolean;
  id: number;
  /** As stored: GROUP_MASK | group; GROUP_MASK alone (or 0) for none. */
  groupId: number;
  /** As stored: an object id, GROUP_MASK | group, or 0 for none. */
  linkedId: number;
  offset: number;
  size: number;
  /** The object's size plus the alignment gap before it. */
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt: number;
  uid: number;
  gid: number;
  name: string;
  /** EXTRA_LEN bytes, read by the type's own decoder (partitionExtra, signatureExtra). */
  extra: Buffer;
}

export interface PartitionExtra {
  fsType: number;
  partType: number;
  arch: string;
}

function putString(buf: Buffer, at: number, len: number, s: string, what: string): void {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length > len) throw new InputError(`SIF ${what} "${s}" is longer than ${len} bytes`);
  buf.fill(0, at, at + len);
  bytes.copy(buf, at);
}

function getString(buf: Buffer, at: number, len: number): string {
  const field = buf.subarray(at, at + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function putI64(buf: Buffer, at: number, v: number): void {
  buf.writeBigInt64LE(BigInt(v), at);
}

/** An int64 field as a number; beyond 2^53 (never valid for an offset or size) it is reported as such. */
function getI64(buf: Buffer, at: number): number {
  const v = buf.readBigInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER) ? Number.NaN : Number(v);
}

export function encodeHeader(h: SifHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  putString(b, 0, LAUNCH_LEN, h.launchScript, 'launch script');
  putString(b, 32, MAGIC_LEN, h.magic, 'magic');
  putString(b, 42, VERSION_LEN, h.version, 'version');
  putString(b, 45, ARCH_LEN, h.arch, 'architecture');
  if (h.id.length !== 16) throw new Error('internal: a SIF id is 16 bytes');
  h.id.copy(b, 48);
  const ints = [h.createdAt, h.modifiedAt, h.descriptorsFree, h.descriptorsTotal, h.descriptorsOffset, h.descriptorsSize, h.dataOffset, h.dataSize];
  ints.forEach((v, i) => putI64(b, 64 + 8 * i, v));
  return b;
}

export function decodeHeader(b: Buffer): SifHeader {
  if (b.length < HEADER_SIZE) throw new InputError(`a SIF header is ${HEADER_SIZE} bytes, the file has ${b.length}`);
  return {
    launchScript: getString(b, 0, LAUNCH_LEN),
    magic: getString(b, 32, MAGIC_LEN),
    version: getString(b, 42, VERSION_LEN),
    arch: getString(b, 45, ARCH_LEN),
    id: Buffer.from(b.subarray(48, 64)),
    createdAt: getI64(b, 64),
    modifiedAt: getI64(b, 72),
    descriptorsFree: getI64(b, 80),
    descriptorsTotal: getI64(b, 88),
    descriptorsOffset: getI64(b, 96),
    descriptorsSize: getI64(b, 104),
    dataOffset: getI64(b, 112),
    dataSize: getI64(b, 120),
  };
}

// Descriptor field offsets (the Go struct packed by encoding/binary: no alignment padding).
const D = { type: 0, used: 4, id: 5, group: 9, link: 13, offset: 17, size: 25, padded: 33, created: 41, modified: 49, uid: 57, gid: 65, name: 73, extra: 201 } as const;

export function encodeDescriptor(d: SifDescriptor): Buffer {
  const b = Buffer.alloc(DESCRIPTOR_SIZE);
  b.writeInt32LE(d.dataType, D.type);
  b[D.used] = d.used ? 1 : 0;
  b.writeUInt32LE(d.id, D.id);
  b.writeUInt32LE(d.groupId >>> 0, D.group);
  b.writeUInt32LE(d.linkedId >>> 0, D.link);
  putI64(b, D.offset, d.offset);
  putI64(b, D.size, d.size);
  putI64(b, D.padded, d.sizeWithPadding);
  putI64(b, D.created, d.createdAt);
  putI64(b, D.modified, d.modifiedAt);
  putI64(b, D.uid, d.uid);
  putI64(b, D.gid, d.gid);
  putString(b, D.name, NAME_LEN, d.name, 'object name');
  if (d.extra.length > EXTRA_LEN) throw new Error('internal: SIF descriptor extra too long');
  d.extra.copy(b, D.extra);
  return b;
}

export function decodeDescriptor(b: Buffer): SifDescriptor {
  return {
    dataType: b.readInt32LE(D.type),
    used: b[D.used] !== 0,
    id: b.readUInt32LE(D.id),
    groupId: b.readUInt32LE(D.group),
    linkedId: b.readUInt32LE(D.link),
    offset: getI64(b, D.offset),
    size: getI64(b, D.size),
    sizeWithPadding: getI64(b, D.padded),
    createdAt: getI64(b, D.created),
    modifiedAt: getI64(b, D.modified),
    uid: getI64(b, D.uid),
    gid: getI64(b, D.gid),
    name: getString(b, D.name, NAME_LEN),
    extra: Buffer.from(b.subarray(D.extra, D.extra + EXTRA_LEN)),
  };
}

/** A partition's extra: file system type, partition type, architecture code. */
export function encodePartitionExtra(p: PartitionExtra): Buffer {
  const b = Buffer.alloc(EXTRA_LEN);
  b.writeInt32LE(p.fsType, 0);
  b.writeInt32LE(p.partType, 4);
  putString(b, 8, ARCH_LEN, p.arch, 'architecture');
  return b;
}

export function decodePartitionExtra(extra: Buffer): PartitionExtra {
  return { fsType: extra.readInt32LE(0), partType: extra.readInt32LE(4), arch: getString(extra, 8, ARCH_LEN) };
}

/** A group as `siftool` prints it: "1", or "NONE". */
export function groupText(stored: number): string {
  const group = (stored & ~GROUP_MASK) >>> 0;
  return group === 0 ? 'NONE' : String(group);
}

/** A link as `siftool` prints it: "3", "1 (G)" for a group, or "NONE". */
export function linkText(stored: number): string {
  if (stored === 0) return 'NONE';
  if ((stored & GROUP_MASK) >>> 0 === GROUP_MASK) return `${(stored & ~GROUP_MASK) >>> 0} (G)`;
  return String(stored);
}

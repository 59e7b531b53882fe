// Records as tables of fields: a record's layout is written once, as [name, bytes, offset], and the
// same table encodes and decodes it, so the two directions cannot disagree. Little-endian; u64
// fields are JS numbers (exact below 2^53; all ones is 2^64).

export type Field<K extends string> = readonly [name: K, bytes: 2 | 4 | 8, at: number];

/** A u64 as a JS number (all ones is 2^64). */
export function readU64(buf: Buffer, at: number): number {
  return Number(buf.readBigUInt64LE(at));
}

/** A u64 from a number below 2^53, or 2^64 for all ones. */
export function writeU64(buf: Buffer, v: number, at: number): void {
  if (v === 2 ** 64) {
    buf.writeUInt32LE(0xffffffff, at);
    buf.writeUInt32LE(0xffffffff, at + 4);
    return;
  }
  buf.writeUInt32LE(v % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(v / 2 ** 32), at + 4);
}

export function encodeFields<K extends string>(buf: Buffer, base: number, fields: readonly Field<K>[], values: Partial<Record<K, number>>): void {
  for (const [name, bytes, at] of fields) {
    const v = values[name] ?? 0;
    if (bytes === 2) buf.writeUInt16LE(v, base + at);
    else if (bytes === 4) buf.writeUInt32LE(v, base + at);
    else writeU64(buf, v, base + at);
  }
}

/** Decode `fields` at `base` into `into`; with `partial`, fields beyond the buffer are left out. */
export function decodeFields<K extends string>(buf: Buffer, base: number, fields: readonly Field<K>[], into: Partial<Record<K, number>>, partial = false): void {
  for (const [name, bytes, at] of fields) {
    if (partial && base + at + bytes > buf.length) continue;
    into[name] = bytes === 2 ? buf.readUInt16LE(base + at) : bytes === 4 ? buf.readUInt32LE(base + at) : readU64(buf, base + at);
  }
}

// Extended attribute records in the xattr key/value stream: a key (u16 type = prefix index, with
// XATTR_OOL for a value stored elsewhere; u16 name length; the name without its prefix), then a
// value (u32 size; the bytes, or for XATTR_OOL a u64 reference to a value record).

/** The prefixes SquashFS can store, by type. */
export const XATTR_PREFIXES = ['user.', 'trusted.', 'security.'] as const;
/** Bit of a key's type: the value is a reference to a value stored once elsewhere. */
export const XATTR_OOL = 0x100;
export const XATTR_KEY_SIZE = 4;
export const XATTR_VALUE_SIZE = 4;

/** The prefix type and the rest of a full attribute name; null for one SquashFS cannot store (ACLs...). */
export function xattrPrefix(name: string): [type: number, rest: string] | null {
  for (let t = 0; t < XATTR_PREFIXES.length; t++) {
    const p = XATTR_PREFIXES[t]!;
    if (name.startsWith(p) && name.length > p.length) return [t, name.slice(p.length)];
  }
  return null;
}

/** A key record for full name `name` (which xattrPrefix accepts), then its value record. */
export function encodeXattr(name: string, value: Buffer): Buffer {
  const [type, rest] = xattrPrefix(name)!;
  const key = Buffer.from(rest, 'latin1');
  const b = Buffer.alloc(XATTR_KEY_SIZE + key.length + XATTR_VALUE_SIZE + value.length);
  b.writeUInt16LE(type, 0);
  b.writeUInt16LE(key.length, 2);
  key.copy(b, XATTR_KEY_SIZE);
  b.writeUInt32LE(value.length, XATTR_KEY_SIZE + key.length);
  value.copy(b, XATTR_KEY_SIZE + key.length + XATTR_VALUE_SIZE);
  return b;
}

export interface XattrKey {
  /** Prefix index and XATTR_OOL. */
  type: number;
  nameLength: number;
}

export function decodeXattrKey(buf: Buffer): XattrKey {
  return { type: buf.readUInt16LE(0), nameLength: buf.readUInt16LE(2) };
}

/** The prefix of a key type, undefined when the type is unknown. */
export function keyPrefix(type: number): string | undefined {
  if ((type & ~(XATTR_OOL | 0xff)) !== 0) return undefined;
  return XATTR_PREFIXES[type & 0xff];
}

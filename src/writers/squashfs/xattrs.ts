// The xattr table: key/value records in a metadata stream, one id entry per distinct set of
// attributes (identical sets share an id), and a header pointing at both.
import { MetadataWriter, type Compress } from './metadata.js';

const PREFIXES: Array<[string, number]> = [
  ['user.', 0],
  ['trusted.', 1],
  ['security.', 2],
];

/** SquashFS can store user., trusted. and security. attributes; null for anything else (ACLs...). */
export function xattrPrefix(name: string): [type: number, rest: string] | null {
  for (const [p, t] of PREFIXES) if (name.startsWith(p) && name.length > p.length) return [t, name.slice(p.length)];
  return null;
}

export class XattrTable {
  private readonly ids = new Map<string, number>();
  private readonly sets: Array<Array<[string, Buffer]>> = [];

  /** Id of a set of attributes (already filtered to storable ones), or 0xFFFFFFFF for none. */
  idOf(xattrs: Array<[string, Buffer]> | undefined): number {
    if (!xattrs || xattrs.length === 0) return 0xffffffff;
    const sorted = [...xattrs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const key = sorted.map(([k, v]) => `${k}\0${v.toString('base64')}`).join('\0');
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.sets.length;
      this.ids.set(key, id);
      this.sets.push(sorted);
    }
    return id;
  }

  get count(): number {
    return this.sets.length;
  }

  /** The table placed at absolute `start`: bytes to append and the header position (superblock pointer). */
  place(start: number, compress: Compress): { bytes: Buffer; headerStart: number } {
    const kv = new MetadataWriter(compress);
    const idEntries = Buffer.alloc(16 * this.sets.length);
    this.sets.forEach((set, i) => {
      const { block, offset } = kv.position();
      let size = 0;
      for (const [name, value] of set) {
        const [type, rest] = xattrPrefix(name)!;
        const key = Buffer.from(rest, 'latin1');
        const head = Buffer.alloc(4);
        head.writeUInt16LE(type, 0);
        head.writeUInt16LE(key.length, 2);
        const vlen = Buffer.alloc(4);
        vlen.writeUInt32LE(value.length, 0);
        kv.write(Buffer.concat([head, key, vlen, value]));
        size += 4 + key.length + 4 + value.length;
      }
      idEntries.writeBigUInt64LE((BigInt(block) << 16n) | BigInt(offset), 16 * i);
      idEntries.writeUInt32LE(set.length, 16 * i + 8);
      idEntries.writeUInt32LE(size, 16 * i + 12);
    });
    const kvBytes = kv.finish();
    const ids = new MetadataWriter(compress);
    ids.write(idEntries);
    const idBytes = ids.finish();
    const idStart = start + kvBytes.length;
    const header = Buffer.alloc(16 + 8 * ids.chunkStarts.length);
    header.writeBigUInt64LE(BigInt(start), 0);
    header.writeUInt32LE(this.sets.length, 8);
    ids.chunkStarts.forEach((off, i) => header.writeBigUInt64LE(BigInt(idStart + off), 16 + 8 * i));
    return { bytes: Buffer.concat([kvBytes, idBytes, header]), headerStart: idStart + idBytes.length };
  }
}

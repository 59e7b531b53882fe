// The xattr table: key/value records in a metadata stream, one id entry per distinct set of
// attributes (identical sets share an id), and a header pointing at both; and which of an entry's
// attributes an image can hold.
import { display } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import type { Entry } from '../../model/entry.js';
import {
  NO_XATTR,
  XATTR_ID_ENTRY_SIZE,
  XATTR_ID_HEADER_SIZE,
  encodeXattr,
  encodeXattrIdEntry,
  encodeXattrIdHeader,
  makeRef,
  writeU64,
  xattrPrefix,
} from '../../formats/squashfs/index.js';
import { MetadataWriter, type Compress } from './metadata.js';

/** An entry's attributes that SquashFS and Linux let it keep; the others are dropped with a warning. */
export function storableXattrs(e: Entry, diag: Diagnostics): Array<[string, Buffer]> | undefined {
  return e.xattrs?.filter(([k]) => {
    if (!xattrPrefix(k)) {
      diag.warnPath('xattr-dropped', e.path, `extended attribute ${display(k)} dropped (SquashFS stores user., trusted. and security. only)`);
      return false;
    }
    // Linux allows user.* only on regular files and directories; unsquashfs -d fails on others.
    if (k.startsWith('user.') && e.type !== 'file' && e.type !== 'dir') {
      diag.warnPath('xattr-dropped', e.path, `extended attribute ${display(k)} dropped (Linux allows user. attributes only on files and directories)`);
      return false;
    }
    return true;
  });
}

export class XattrTable {
  private readonly ids = new Map<string, number>();
  private readonly sets: Array<Array<[string, Buffer]>> = [];

  /** Id of a set of attributes (already filtered to storable ones), or 0xFFFFFFFF for none. */
  idOf(xattrs: Array<[string, Buffer]> | undefined): number {
    if (!xattrs || xattrs.length === 0) return NO_XATTR;
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
    const idEntries = Buffer.alloc(XATTR_ID_ENTRY_SIZE * this.sets.length);
    this.sets.forEach((set, i) => {
      const { block, offset } = kv.position();
      let size = 0;
      for (const [name, value] of set) {
        const record = encodeXattr(name, value);
        kv.write(record);
        size += record.length;
      }
      encodeXattrIdEntry(idEntries, i, { ref: makeRef(block, offset), count: set.length, size });
    });
    const kvBytes = kv.finish();
    const ids = new MetadataWriter(compress);
    ids.write(idEntries);
    const idBytes = ids.finish();
    const idStart = start + kvBytes.length;
    const header = Buffer.alloc(XATTR_ID_HEADER_SIZE + 8 * ids.chunkStarts.length);
    encodeXattrIdHeader(header, { kvStart: start, count: this.sets.length });
    ids.chunkStarts.forEach((off, i) => writeU64(header, idStart + off, XATTR_ID_HEADER_SIZE + 8 * i));
    return { bytes: Buffer.concat([kvBytes, idBytes, header]), headerStart: idStart + idBytes.length };
  }
}

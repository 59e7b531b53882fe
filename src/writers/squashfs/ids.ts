// The id table: each distinct uid and gid once, in order of first appearance; inodes store their
// owner and group as indexes into it.
import type { Entry } from '../../model/entry.js';
import { BuildError } from '../../model/errors.js';
import { ID_ENTRY_SIZE, encodeIdEntry } from '../../formats/squashfs/index.js';

export class IdTable {
  private readonly ids = new Map<number, number>();

  /** Every entry's uid and gid, in entry order (the order decides the indexes). */
  static of(entries: readonly Entry[]): IdTable {
    const t = new IdTable();
    for (const e of entries) {
      t.indexOf(e.uid);
      t.indexOf(e.gid);
    }
    return t;
  }

  indexOf(id: number): number {
    let i = this.ids.get(id);
    if (i === undefined) {
      i = this.ids.size;
      // id_count is a u16: at most 65535 distinct values.
      if (i >= 0xffff) throw new BuildError('more than 65535 distinct uids and gids: SquashFS cannot store them (try --owner)');
      this.ids.set(id, i);
    }
    return i;
  }

  get count(): number {
    return this.ids.size;
  }

  /** The table's entries, to be laid out as a lookup table. */
  entries(): Buffer {
    const b = Buffer.alloc(ID_ENTRY_SIZE * this.ids.size);
    for (const [v, i] of this.ids) encodeIdEntry(b, i, v);
    return b;
  }
}

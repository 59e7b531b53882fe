// Reading extended attributes: an inode's xattr index names an entry of the xattr id table, which
// points at the set's key/value records (formats/squashfs/xattrs.ts).
import { InputError, describeSystemError } from '../../model/errors.js';
import { XATTR_KEY_SIZE, XATTR_OOL, XATTR_VALUE_SIZE, type XattrIdEntry, decodeXattrIdEntry, decodeXattrKey, hex, keyPrefix, readU64, refBlock, refOffset } from '../../formats/squashfs/index.js';
import type { SquashfsImage } from './image.js';

/** The xattr id table entry `index`. */
export function xattrEntry(image: SquashfsImage, index: number): XattrIdEntry {
  const x = image.xattr;
  if (!x || !x.table) throw new InputError(`${image.path}: xattr index ${index} but the image has no readable xattr table`);
  if (index >= x.count) throw new InputError(`${image.path}: xattr index ${index} is not below the xattr id count ${x.count}`);
  return decodeXattrIdEntry(x.table, index);
}

/**
 * An xattr set with the two sizes a writer may store in its id entry: `listSize` = Σ (full name
 * + NUL + value), what mksquashfs writes; `diskSize` = bytes of its key/value records, what
 * squashfs-tools-ng writes. The kernel does not use the field.
 */
export function readXattrSet(image: SquashfsImage, index: number): { entry: XattrIdEntry; pairs: Array<[string, Buffer]>; listSize: number; diskSize: number } {
  const x = image.xattr!;
  const e = xattrEntry(image, index);
  const out: Array<[string, Buffer]> = [];
  const where = `${image.path}: xattr id ${index}`;
  const cursorAt = (ref: number) => image.cursor(x.kvStart + refBlock(ref), refOffset(ref), x.idBlocksStart);
  try {
    const c = cursorAt(e.ref);
    let size = 0;
    for (let i = 0; i < e.count; i++) {
      const k = decodeXattrKey(c.read(XATTR_KEY_SIZE));
      const prefix = keyPrefix(k.type);
      if (prefix === undefined) throw new InputError(`key ${i} has unknown type ${hex(k.type)}`);
      const name = prefix + c.read(k.nameLength).toString('latin1');
      const vsize = c.read(XATTR_VALUE_SIZE).readUInt32LE(0);
      let value = c.read(vsize);
      if (k.type & XATTR_OOL) {
        if (vsize !== 8) throw new InputError(`out-of-line value of key ${i} has size ${vsize} (must be 8)`);
        const vc = cursorAt(readU64(value, 0));
        value = vc.read(vc.read(XATTR_VALUE_SIZE).readUInt32LE(0));
      }
      out.push([name, Buffer.from(value)]);
      size += name.length + 1 + value.length;
    }
    return { entry: e, pairs: out, listSize: size, diskSize: c.consumed };
  } catch (err) {
    throw new InputError(`${where}: ${describeSystemError(err)}`);
  }
}

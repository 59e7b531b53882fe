// CRC-32 (the gzip/zip polynomial): node:zlib's where Node has it (>= 20.15), else a table.
import zlib from 'node:zlib';

let table: Uint32Array | null = null;

function slowCrc32(b: Buffer, crc: number): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function crc32(b: Buffer, crc = 0): number {
  return typeof zlib.crc32 === 'function' ? zlib.crc32(b, crc) : slowCrc32(b, crc);
}

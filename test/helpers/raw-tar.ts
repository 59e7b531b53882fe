// A raw tar writer for hostile-input tests: every ustar field as given, only the checksum computed,
// so that a test controls the exact bytes a reader sees (PAX records, GNU long names, base-256).

export interface Header {
  name: string | Buffer;
  /** Type flag: '0' file, '1' hard link, '2' symlink, '5' directory, 'x' PAX, 'L' GNU long name... */
  flag?: string;
  size?: number;
  /** The size field's raw text, when it must be something other than the octal of `size`. */
  sizeField?: string;
  linkname?: string | Buffer;
  mode?: number;
  /** Raw bytes of the uid field (8 bytes), e.g. GNU base-256. */
  uidField?: Buffer;
}

export function header(h: Header): Buffer {
  const b = Buffer.alloc(512);
  const put = (v: string | Buffer, off: number, len: number) => (typeof v === 'string' ? Buffer.from(v, 'latin1') : v).copy(b, off, 0, len);
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(h.name, 0, 100);
  put(octal(h.mode ?? (h.flag === '5' ? 0o755 : 0o644), 8), 100, 8);
  put(h.uidField ?? octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(h.sizeField ?? octal(h.size ?? 0, 12), 124, 12);
  put(octal(1_500_000_000, 12), 136, 12);
  put(h.flag ?? '0', 156, 1);
  put(h.linkname ?? '', 157, 100);
  put('ustar\0' + '00', 257, 8);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return b;
}

function pad(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** One member: its header and its content, padded. */
export function member(h: Header, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([header({ size: body.length, ...h }), pad(body)]);
}

/** A PAX `x` header carrying `records` (values raw), for the member that follows. */
export function pax(records: Array<[string, string | Buffer]>, flag = 'x'): Buffer {
  const body = Buffer.concat(
    records.map(([k, v]) => {
      const rest = Buffer.concat([Buffer.from(` ${k}=`, 'latin1'), typeof v === 'string' ? Buffer.from(v, 'latin1') : v, Buffer.from('\n')]);
      let len = rest.length + 1;
      while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
      return Buffer.concat([Buffer.from(String(len)), rest]);
    }),
  );
  return member({ name: 'PaxHeaders/x', flag }, body);
}

export function tarball(...members: Buffer[]): Buffer {
  return Buffer.concat([...members, Buffer.alloc(1024)]);
}

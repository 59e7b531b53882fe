// A raw tar writer for hostile-input tests: every ustar field as given, only the checksum computed,
// so that a test controls the exact bytes a reader sees (PAX records, GNU long names, base-256).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

export interface RawMember {
  /** The ustar name field (≤ 100 bytes; longer names go in `pax.path`). */
  name: string;
  /** Type flag: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo. */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  content?: Buffer | string;
  /** The size field as written (default: the content's length, octal). */
  sizeField?: string;
  devmajor?: number;
  devminor?: number;
  /** PAX records written in an 'x' header before this member, values as given (any bytes). */
  pax?: Record<string, string | Buffer>;
}

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
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
}

export function header(h: Header): Buffer {
  const b = Buffer.alloc(512);
  const put = (v: string | Buffer, off: number, len: number) => (typeof v === 'string' ? Buffer.from(v, 'latin1') : v).copy(b, off, 0, len);
  const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(h.name, 0, 100);
  put(octal(h.mode ?? (h.flag === '5' ? 0o755 : 0o644), 8), 100, 8);
  put(h.uidField ?? octal(h.uid ?? 0, 8), 108, 8);
  put(octal(h.gid ?? 0, 8), 116, 8);
  put(h.sizeField ?? octal(h.size ?? 0, 12), 124, 12);
  put(octal(h.mtime ?? 1_500_000_000, 12), 136, 12);
  put(h.flag ?? '0', 156, 1);
  put(h.linkname ?? '', 157, 100);
  put('ustar\0' + '00', 257, 8);
  put(octal(h.devmajor ?? 0, 8), 329, 8);
  put(octal(h.devminor ?? 0, 8), 337, 8);
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

/** An archive from member descriptions (the shape the property test generates). */
export function rawTar(members: RawMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const content = typeof m.content === 'string' ? Buffer.from(m.content, 'latin1') : (m.content ?? Buffer.alloc(0));
    if (m.pax && Object.keys(m.pax).length > 0) {
      // PAX values as UTF-8 text (what tar writes), or the exact bytes given.
      parts.push(pax(Object.entries(m.pax).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v])));
    }
    const flag = m.type ?? '0';
    const h: Header = { name: m.name, flag, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime ?? 1_600_000_000, linkname: m.linkname, sizeField: m.sizeField, devmajor: m.devmajor, devminor: m.devminor };
    parts.push(flag === '0' ? member(h, content) : header({ ...h, size: 0 }));
  }
  return tarball(...parts);
}

/**
 * An OCI image layout holding one image whose layers are these (uncompressed) tar archives, in
 * order, under `dir`; returns `oci:DIR:TAG`.
 */
export function rawOciLayout(dir: string, layers: Buffer[], tag = 'test'): string {
  const blobs = `${dir}/blobs/sha256`;
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const hex = crypto.createHash('sha256').update(data).digest('hex');
    fs.writeFileSync(`${blobs}/${hex}`, data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layerDescs = layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...put(l) }));
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/bin:/bin'] },
        rootfs: { type: 'layers', diff_ids: layerDescs.map((l) => l.digest) },
        history: layers.map(() => ({ created_by: 'raw-tar test layer' })),
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: layerDescs }),
    ),
  );
  fs.writeFileSync(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return `oci:${dir}:${tag}`;
}

// Tar archives byte by byte, for hostile inputs: every header field is what the test says, including
// what no honest tar writer produces (NULs in PAX paths, hex sizes, names that climb out, links
// before the entries below them). Only ustar headers and PAX extended headers.
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

const BLOCK = 512;

function field(buf: Buffer, offset: number, length: number, value: string | Buffer): void {
  const b = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  b.copy(buf, offset, 0, Math.min(b.length, length));
}

function octal(n: number, length: number): string {
  return n.toString(8).padStart(length - 1, '0');
}

function header(m: { name: string; type: string; mode: number; uid: number; gid: number; mtime: number; size: string; linkname: string; devmajor: number; devminor: number }): Buffer {
  const h = Buffer.alloc(BLOCK);
  field(h, 0, 100, m.name);
  field(h, 100, 8, octal(m.mode, 8));
  field(h, 108, 8, octal(m.uid, 8));
  field(h, 116, 8, octal(m.gid, 8));
  field(h, 124, 12, m.size);
  field(h, 136, 12, octal(m.mtime, 12));
  field(h, 156, 1, m.type);
  field(h, 157, 100, m.linkname);
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 265, 32, 'root');
  field(h, 297, 32, 'root');
  field(h, 329, 8, octal(m.devmajor, 8));
  field(h, 337, 8, octal(m.devminor, 8));
  // The checksum is computed with its own field as spaces.
  field(h, 148, 8, '        ');
  let sum = 0;
  for (const byte of h) sum += byte;
  field(h, 148, 8, `${octal(sum, 7)}\0`);
  return h;
}

function padded(data: Buffer): Buffer[] {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return pad === 0 ? [data] : [data, Buffer.alloc(pad)];
}

/** One PAX record: "<len> key=value\n", where len counts itself. */
function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/** The whole archive: members, then the two zero blocks. */
export function rawTar(members: RawMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const content = typeof m.content === 'string' ? Buffer.from(m.content, 'latin1') : (m.content ?? Buffer.alloc(0));
    if (m.pax && Object.keys(m.pax).length > 0) {
      const records = Buffer.concat(Object.entries(m.pax).map(([k, v]) => paxRecord(k, v)));
      parts.push(header({ name: 'PaxHeaders/x', type: 'x', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: octal(records.length, 12), linkname: '', devmajor: 0, devminor: 0 }));
      parts.push(...padded(records));
    }
    const type = m.type ?? '0';
    parts.push(
      header({
        name: m.name,
        type,
        mode: m.mode ?? (type === '5' ? 0o755 : 0o644),
        uid: m.uid ?? 0,
        gid: m.gid ?? 0,
        mtime: m.mtime ?? 1_600_000_000,
        size: m.sizeField ?? octal(type === '0' ? content.length : 0, 12),
        linkname: m.linkname ?? '',
        devmajor: m.devmajor ?? 0,
        devminor: m.devminor ?? 0,
      }),
    );
    if (type === '0' && content.length > 0) parts.push(...padded(content));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
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

// `docker save` / `podman save` / `skopeo copy docker-archive:` output as a base image. Every
// current reader goes by manifest.json only: [{Config, RepoTags, Layers}], where Layers name
// members (uncompressed `<id>/layer.tar`, skopeo's `<diffid>.tar` behind symlinks, or docker ≥ 25's
// `blobs/sha256/<digest>`, gzip-compressed with the containerd store). Layers are addressed inside
// the archive file itself: nothing is copied unless it must be decompressed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { display } from '../../model/bytes.js';
import { InputError } from '../../model/errors.js';
import { type TarMember, readTar } from '../tar/reader.js';
import { sha256 } from '../../util/digest.js';
import type { Region } from './blob.js';
import type { ImageConfig, StoredImage } from './oci-layout.js';

interface ManifestItem {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}

/** Tags compare the way users write them: `busybox:1`, `docker.io/library/busybox:1` are one image. */
function canonicalTag(t: string): string {
  const s = t.replace(/^docker\.io\//, '').replace(/^library\//, '');
  return /:[^/]*$/.test(s) ? s : s + ':latest';
}

export function readDockerArchive(file: string, ref: string | null, label: string): StoredImage {
  const members = new Map<string, TarMember>();
  for (const m of readTar(file, label)) members.set(path.posix.normalize(m.name.replace(/^\.\//, '')), m);
  const member = (name: string, what: string, hops = 0): TarMember => {
    const m = members.get(path.posix.normalize(name));
    if (!m) throw new InputError(`${label}: ${what} '${display(name)}' is not in the archive`);
    if (m.type === 'symlink' && hops < 8) return member(path.posix.join(path.posix.dirname(m.name), m.linkname), what, hops + 1);
    if (m.type !== 'file') throw new InputError(`${label}: ${what} '${display(name)}' is a ${m.type}, not a file`);
    return m;
  };
  const text = (m: TarMember) => {
    const buf = Buffer.alloc(m.size);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, buf, 0, m.size, m.offset);
    } finally {
      fs.closeSync(fd);
    }
    return buf;
  };
  const parse = <T>(buf: Buffer, what: string): T => {
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch {
      throw new InputError(`${label}: ${what} is not valid JSON`);
    }
  };
  const items = parse<ManifestItem[]>(text(member('manifest.json', 'manifest')), 'manifest.json');
  if (!Array.isArray(items) || items.length === 0) throw new InputError(`${label}: manifest.json lists no images`);
  let item: ManifestItem;
  const tagsOf = (i: ManifestItem) => i.RepoTags ?? [];
  if (ref !== null) {
    const want = canonicalTag(ref);
    const hit = items.find((i) => tagsOf(i).some((t) => canonicalTag(t) === want));
    if (!hit) throw new InputError(`${label}: no image tagged '${ref}' (tags: ${items.flatMap(tagsOf).join(', ') || 'none'})`);
    item = hit;
  } else {
    if (items.length > 1) throw new InputError(`${label}: the archive holds ${items.length} images; name one as ${label}:REPO:TAG (tags: ${items.flatMap(tagsOf).join(', ')})`);
    item = items[0]!;
  }
  if (typeof item.Config !== 'string' || !Array.isArray(item.Layers)) throw new InputError(`${label}: manifest.json entry without Config or Layers`);
  const configBytes = text(member(item.Config, 'config'));
  const config = parse<ImageConfig>(configBytes, item.Config);
  const layers = item.Layers.map((name, i) => {
    const m = member(name, `layer ${i + 1}`);
    const region: Region = { file, offset: m.offset, length: m.size };
    // The digest is known once the blob is read (openLayer); the media type follows its content.
    return { region, descriptor: { mediaType: '', digest: '', size: m.size } };
  });
  return { manifestDigest: sha256(configBytes), config, layers, refName: tagsOf(item)[0] ?? null };
}

// `docker save` / `podman save` / `skopeo copy docker-archive:` output as a base image. Every
// current reader goes by manifest.json only: [{Config, RepoTags, Layers}], where Layers name
// members (uncompressed `<id>/layer.tar`, skopeo's `<diffid>.tar` behind symlinks, or docker ≥ 25's
// `blobs/sha256/<digest>`, gzip-compressed with the containerd store). Layers are addressed inside
// the archive file itself: nothing is copied unless it must be decompressed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { display } from '../../model/bytes.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import { type TarMember, readTar } from '../tar/reader.js';
import { sha256 } from '../../util/digest.js';
import { type Infer, MAX_CONFIG, MAX_DOCUMENT, arr, nullable, obj, optional, parseJson, singleLine, str } from '../../util/json-check.js';
import type { Region } from './blob.js';
import { imageConfigCheck } from '../../formats/oci.js';
import type { StoredImage } from './oci-layout.js';

const strings = arr(str, 'an array of strings');
/** manifest.json: one item per image (docker's image/tarexport; `Parent`, `LayerSources` are not read). */
const manifestCheck = arr(obj({ Config: str, RepoTags: optional(nullable(strings)), Layers: strings }));
type ManifestItem = Infer<typeof manifestCheck>[number];

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
    if (!m) throw new InputError(`${label}: ${what} '${singleLine(display(name), 200)}' is not in the archive`);
    if (m.type === 'symlink' && hops < 8) return member(path.posix.join(path.posix.dirname(m.name), m.linkname), what, hops + 1);
    if (m.type !== 'file') throw new InputError(`${label}: ${what} '${singleLine(display(name), 200)}' is a ${m.type}, not a file`);
    return m;
  };
  /** A member's bytes, refused before reading when larger than `limit`. */
  const text = (m: TarMember, what: string, limit: number) => {
    if (m.size > limit) throw new InputError(`${label}: ${what} is ${m.size} bytes, more than the ${limit} allowed`);
    const buf = Buffer.alloc(m.size);
    let n = 0;
    try {
      const fd = fs.openSync(file, 'r');
      try {
        for (let got; n < m.size && (got = fs.readSync(fd, buf, n, m.size - n, m.offset + n)) > 0; ) n += got;
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      throw new InputError(`${label}: ${what}: ${describeSystemError(err)}`);
    }
    if (n < m.size) throw new InputError(`${label}: ${what}: the archive ends inside it`);
    return buf;
  };
  const items = parseJson(text(member('manifest.json', 'manifest'), 'manifest.json', MAX_DOCUMENT), manifestCheck, `${label}: manifest.json`);
  if (items.length === 0) throw new InputError(`${label}: manifest.json lists no images`);
  let item: ManifestItem;
  const tagsOf = (i: ManifestItem) => i.RepoTags ?? [];
  if (ref !== null) {
    const want = canonicalTag(ref);
    const hit = items.find((i) => tagsOf(i).some((t) => canonicalTag(t) === want));
    if (!hit) throw new InputError(`${label}: no image tagged '${ref}' (tags: ${singleLine(items.flatMap(tagsOf).join(', ') || 'none', 200)})`);
    item = hit;
  } else {
    if (items.length > 1) throw new InputError(`${label}: the archive holds ${items.length} images; name one as ${label}:REPO:TAG (tags: ${singleLine(items.flatMap(tagsOf).join(', '), 200)})`);
    item = items[0]!;
  }
  const configName = `config ${singleLine(item.Config, 200)}`;
  const configBytes = text(member(item.Config, 'config'), configName, MAX_CONFIG);
  const config = parseJson(configBytes, imageConfigCheck, `${label}: ${configName}`);
  const layers = item.Layers.map((name, i) => {
    const m = member(name, `layer ${i + 1}`);
    const region: Region = { file, offset: m.offset, length: m.size };
    // The digest is known once the blob is read (openLayer); the media type follows its content.
    return { region, descriptor: { mediaType: '', digest: '', size: m.size } };
  });
  return { manifestDigest: sha256(configBytes), config, layers, refName: tagsOf(item)[0] ?? null };
}

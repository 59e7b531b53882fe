// Image references as users write them: `docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`, the
// `docker://` optional. The grammar is distribution's (reference/regexp.go), read from its spec
// text; Docker Hub's defaults (registry, `library/`, tag `latest`) are client conventions.
// parseImageLocation reads every option that names an image (oci:, docker-archive:, docker://).
import * as fs from 'node:fs';
import { InputError } from '../model/errors.js';
import { singleLine } from '../util/json-check.js';

export interface ImageReference {
  /** host[:port]; docker.io becomes registry-1.docker.io. */
  registry: string;
  /** Path on the registry; single Docker Hub names get `library/`. */
  repository: string;
  /** null only when a digest names the image. */
  tag: string | null;
  digest: string | null;
  /** As the user wrote it. */
  text: string;
}

const DOCKER_HUB = 'registry-1.docker.io';
/** The names Docker Hub goes by (in references and in auth files' keys). */
export const HUB_ALIASES: ReadonlySet<string> = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** `docker://` plus the reference as written: the prefix of every message about it (one line whatever it holds). */
export function displayReference(ref: Pick<ImageReference, 'text'>): string {
  return singleLine(ref.text.startsWith('docker://') ? ref.text : `docker://${ref.text}`, 300);
}

/** `option`: where the text came from (`--base`), named in the message when it is refused. */
export function parseImageReference(text: string, option?: string): ImageReference {
  const bad = (why: string): never => {
    throw new InputError(`${option ? `${option} ` : ''}${displayReference({ text })}: invalid image reference: ${why}`);
  };
  let rest = text.startsWith('docker://') ? text.slice('docker://'.length) : text;
  if (rest === '') bad('empty');
  if (/[\u0000-\u001f\u007f]/.test(rest)) bad('contains a control character');
  if (/\s/.test(rest)) bad('contains white space');

  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad(`digest '${digest}' is not sha256: followed by 64 lowercase hex digits`);
  }

  // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag '${tag}' must be 1-128 of letters, digits, '_', '.', '-' and not start with '.' or '-'`);
  }

  // The first component is a registry when it looks like a host: a dot, a port, or localhost.
  let registry = 'docker.io';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      registry = first;
      rest = rest.slice(slash + 1);
      checkRegistry(registry, bad);
    }
  }
  if (rest === '') bad('no repository');
  const components = rest.split('/');
  for (const c of components) {
    if (c !== c.toLowerCase()) bad(`repository '${rest}' must be lowercase`);
    if (!COMPONENT.test(c)) bad(`repository component '${c}' must be lowercase letters and digits separated by '.', '_', '__' or '-'`);
  }

  if (HUB_ALIASES.has(registry)) {
    registry = DOCKER_HUB;
    if (components.length === 1) rest = `library/${rest}`;
  }
  if (registry.length + 1 + rest.length > 255) bad('name longer than 255 characters');
  if (tag === null && digest === null) tag = 'latest';
  return { registry, repository: rest, tag, digest, text };
}

function checkRegistry(registry: string, bad: (why: string) => never): void {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::(\d+))?$/.exec(registry);
  if (!m) return bad(`registry '${registry}' is not HOST[:PORT]`);
  const host = m[1]!;
  const port = m[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) bad(`port ${port} out of range`);
  if (!host.startsWith('[') && !host.split('.').every((l) => DOMAIN_LABEL.test(l))) bad(`registry host '${host}' is not a valid host name`);
}

/** Where an image is, by the prefix it was written with. */
export type ImageLocation =
  | { kind: 'path'; text: string; path: string }
  | { kind: 'oci'; text: string; dir: string; tag: string | null }
  | { kind: 'docker-archive'; text: string; file: string; ref: string | null }
  | { kind: 'sif'; text: string; file: string }
  | { kind: 'registry'; text: string; reference: ImageReference };
export type LocationKind = ImageLocation['kind'];

/** How each kind is written, for the message refusing a kind an option does not take. */
const FORMS: Record<LocationKind, string> = {
  path: 'a root filesystem directory or tarball',
  oci: 'oci:DIR[:TAG] (an OCI image layout, as --format oci writes)',
  'docker-archive': 'docker-archive:FILE[:REF]',
  sif: 'sif:FILE (a SIF container, as apptainer build writes)',
  registry: 'docker://HOST/REPO:TAG',
};

function prefixKind(text: string): LocationKind | null {
  if (text.startsWith('oci:')) return 'oci';
  if (text.startsWith('docker-archive:')) return 'docker-archive';
  if (text.startsWith('docker://')) return 'registry';
  if (text.startsWith('sif:')) return 'sif';
  return null;
}

/**
 * The one reading of an image location, for --base, --push and `push`: `oci:DIR[:TAG]`,
 * `docker-archive:FILE[:REF]`, `docker://HOST/REPO:TAG|@sha256:…`. Text without a prefix is a
 * path where `accepts` takes one (--base), else a registry reference with `docker://` left out.
 * A kind not in `accepts` is refused naming `option` and the forms it takes.
 */
export function parseImageLocation<K extends LocationKind>(text: string, option: string, accepts: readonly K[]): Extract<ImageLocation, { kind: K }> {
  const kind = prefixKind(text) ?? ((accepts as readonly LocationKind[]).includes('path') ? 'path' : 'registry');
  if (!(accepts as readonly LocationKind[]).includes(kind)) throw new InputError(`${option} ${text}: expected ${accepts.map((k) => FORMS[k]).join(' or ')}`);
  return locate(kind, text, option) as Extract<ImageLocation, { kind: K }>;
}

function locate(kind: LocationKind, text: string, option: string): ImageLocation {
  switch (kind) {
    case 'path':
      return { kind, text, path: text };
    case 'registry':
      return { kind, text, reference: parseImageReference(text, option) };
    case 'docker-archive': {
      const [file, ref] = splitStored(text.slice('docker-archive:'.length));
      return { kind, text, file, ref };
    }
    case 'sif':
      return { kind, text, file: text.slice('sif:'.length) };
    case 'oci': {
      const [dir, tag] = splitStored(text.slice('oci:'.length));
      // A tag holds no ':' (`push` took the tag after the last one; the stricter of the two rules).
      if (tag !== null && tag.includes(':')) throw new InputError(`${option} ${text}: tag '${singleLine(tag, 200)}' contains ':' (oci:DIR[:TAG])`);
      return { kind, text, dir, tag };
    }
  }
}

/**
 * `DIR[:TAG]`, `FILE[:REF]`: the part after a ':' is a tag or reference only if the part before it
 * exists (a directory or file may have ':' in its name; a docker-archive REF is REPO:TAG). The
 * first such split wins; a path that exists whole has none.
 */
function splitStored(rest: string): [string, string | null] {
  if (fs.existsSync(rest)) return [rest, null];
  for (let i = rest.indexOf(':'); i > 0; i = rest.indexOf(':', i + 1)) {
    if (fs.existsSync(rest.slice(0, i))) return [rest.slice(0, i), rest.slice(i + 1)];
  }
  return [rest, null];
}

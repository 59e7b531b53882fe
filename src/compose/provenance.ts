// What an image says about itself: /.shrinkwrap/provenance.json, the plan and the specs it was
// built from (/.shrinkwrap/plan.json, /.shrinkwrap/specs/), and the OCI config's labels and the
// manifest's annotations naming the base.
import type { OpenRepository } from '../sources/cvmfs/http/repository.js';
import { hashString, parseHashString } from '../formats/cvmfs/hash.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { display, fromText } from '../model/bytes.js';
import type { Diagnostics } from '../model/diagnostics.js';
import type { Entry } from '../model/entry.js';
import type { Payload } from '../select/index.js';
import { MOUNT } from '../select/spec/parse.js';
import { specFilesOf } from '../select/spec/write.js';
import type { BaseImage } from '../sources/base/index.js';
import { isCvmfsUrl } from '../sources/cvmfs/open.js';
import { readOneXattr } from '../sources/xattrs.js';
import { parseImageLocation } from '../registry/reference.js';
import { sha256 } from '../util/digest.js';
import { Out } from '../util/out.js';
import { type ApptainerFiles, apptainerFiles } from './apptainer.js';
import { generatedEntries } from './generated.js';
import { renderPlanJson } from './plan-json.js';

/** shrinkwrap's version, from its package.json (dist/src/compose/ and src/compose/ alike are two levels below). */
export const VERSION: string = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;

/** What the image was built from, as provenance names it. */
export interface Sources {
  /** Absolute (sourcePath), or the URLs as given. */
  cvmfsRoot: string;
  /** The command, as typed (the output's path left out: cli/build-options.ts). */
  commandLine: string[];
  /** The time the image says it was made (createdTime). */
  created: number;
  /** Spec and trace files (recorded by name and digest). */
  specs: string[];
  traces: string[];
  /** Repositories read over HTTP: which revision and root catalog (null for a directory). */
  repositories?: OpenRepository[] | null;
  /** Repositories read from a mounted client: the same, from its attributes (mountedRevisions). */
  mounted?: MountedRevision[];
}

export interface MountedRevision {
  fqrn: string;
  revision: number;
  rootCatalog: string;
}

/** `created`: SOURCE_DATE_EPOCH where set (reproducible builds set it), else now. */
export function createdTime(): number {
  const env = process.env['SOURCE_DATE_EPOCH'];
  // compose/image.ts's imageEpoch has refused a SOURCE_DATE_EPOCH that is not a whole number.
  return env !== undefined && env !== '' ? Number(env) : Math.floor(Date.now() / 1000);
}

/** --cvmfs-root as an audit wants it: a directory's absolute path; URLs as given. */
export function sourcePath(cvmfsRoot: string): string {
  return isCvmfsUrl(cvmfsRoot) ? cvmfsRoot : path.resolve(cvmfsRoot);
}

/** --base with its path made absolute where it names one (a directory, tarball, oci:, docker-archive:). */
export function absoluteBaseName(text: string): string {
  const where = parseImageLocation(text, '--base', ['path', 'oci', 'docker-archive', 'registry', 'sif']);
  switch (where.kind) {
    case 'path':
      return path.resolve(where.path);
    case 'sif':
      // The kind says it is a SIF: FILE.sif and sif:FILE name the same base, and give the same image.
      return path.resolve(where.file);
    case 'oci':
      return `oci:${path.resolve(where.dir)}${where.tag !== null ? `:${where.tag}` : ''}`;
    case 'docker-archive':
      return `docker-archive:${path.resolve(where.file)}${where.ref !== null ? `:${where.ref}` : ''}`;
    default:
      return text;
  }
}

/**
 * The revision and root catalog of each repository as a mounted CVMFS client serves it: its
 * `user.revision` and `user.root_hash` attributes on the repository's root. A copy of /cvmfs has
 * none (then nothing is recorded), unless it was copied with attributes from a mount (rsync -X).
 */
export function mountedRevisions(cvmfsRoot: string, repositories: readonly string[]): MountedRevision[] {
  const out: MountedRevision[] = [];
  for (const fqrn of repositories) {
    const root = `${fromText(cvmfsRoot)}/${fqrn}`;
    const revision = readOneXattr(root, 'user.revision')?.toString('latin1').trim();
    const hash = readOneXattr(root, 'user.root_hash')?.toString('latin1').trim();
    if (revision === undefined || !/^\d+$/.test(revision) || hash === undefined) continue;
    let rootCatalog: string;
    try {
      rootCatalog = hashString(parseHashString(hash.replace(/[A-Z]$/, ''))); // a catalog's 'C' suffix, if shown
    } catch {
      continue; // not a hash: not a CVMFS client's attribute
    }
    out.push({ fqrn: display(fqrn), revision: Number(revision), rootCatalog });
  }
  return out;
}

/** One string a shell splits back into `words` (the label holding the command). */
function shellWords(words: readonly string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Each repository's revision and root catalog, from the HTTP source or a mounted client. */
export function revisionsOf(sources: Sources): Array<Record<string, unknown>> | null {
  if (sources.repositories) return sources.repositories.map((r) => ({ fqrn: r.fqrn, revision: r.revision, rootCatalog: hashString(r.rootCatalog), tag: r.tag, published: r.published }));
  if (sources.mounted && sources.mounted.length > 0) return sources.mounted.map((r) => ({ ...r }));
  return null;
}

/** The image's time as OCI and provenance write it: 2024-01-02T03:04:05Z. */
function isoTime(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace('.000Z', 'Z');
}

function baseIdentity(baseImage: BaseImage | null): { name: string; kind: string; digest: string | null } | null {
  return baseImage ? { name: absoluteBaseName(baseImage.text), kind: baseImage.kind, digest: baseImage.digest } : null;
}

/** /.shrinkwrap/provenance.json's document. */
export function provenance(sources: Sources, payload: Payload, baseImage: BaseImage | null): Record<string, unknown> {
  const digestOf = (f: string) => sha256(fs.readFileSync(f));
  const revisions = revisionsOf(sources);
  return {
    tool: { name: 'shrinkwrap', version: VERSION },
    created: isoTime(sources.created),
    command: sources.commandLine,
    base: baseIdentity(baseImage),
    source: { cvmfsRoot: sources.cvmfsRoot, ...(revisions ? { repositories: revisions } : {}) },
    releases: payload.releases.map((r) => ({ project: r.project, version: r.version, platform: r.platform, path: display(r.path) })),
    specs: sources.specs.map((f) => ({ file: path.basename(f), path: path.resolve(f), digest: digestOf(f) })),
    traces: sources.traces.map((f) => ({ file: path.basename(f), path: path.resolve(f), digest: digestOf(f) })),
    selection: { entries: payload.summary.entries, bytes: payload.summary.bytes, repositories: Object.keys(payload.summary.repositories).map(display).sort() },
  };
}

/** The OCI image config's labels. */
export function provenanceLabels(sources: Sources, payload: Payload, baseImage: BaseImage | null): Record<string, string> {
  const labels: Record<string, string> = {
    'org.opencontainers.image.created': isoTime(sources.created),
    'io.shrinkwrap.version': VERSION,
    'io.shrinkwrap.command': shellWords(sources.commandLine),
    'io.shrinkwrap.source': sources.cvmfsRoot,
    'io.shrinkwrap.repositories': Object.keys(payload.summary.repositories).map(display).sort().join(','),
  };
  const revisions = revisionsOf(sources);
  // fqrn@revision:root-catalog, for each repository whose revision is known.
  if (revisions) labels['io.shrinkwrap.revisions'] = revisions.map((r) => `${r['fqrn']}@${r['revision']}:${r['rootCatalog']}`).join(' ');
  if (payload.releases.length > 0) labels['io.shrinkwrap.releases'] = payload.releases.map((r) => `${r.project},${r.version}`).join(' ');
  if (baseImage) {
    labels['org.opencontainers.image.base.name'] = absoluteBaseName(baseImage.text);
    // A manifest digest where the base has one; a docker-archive has only its image ID (config digest).
    // A file's sha256 (tarball, SIF, SquashFS) is no manifest digest: it gets a label of its own.
    const fileDigest = baseImage.kind === 'tarball' || baseImage.kind === 'sif' || baseImage.kind === 'squashfs';
    if (baseImage.digest) labels[baseImage.kind === 'docker-archive' ? 'io.shrinkwrap.base.image-id' : fileDigest ? 'io.shrinkwrap.base.sha256' : 'org.opencontainers.image.base.digest'] = baseImage.digest;
  }
  return labels;
}

/** The OCI manifest's annotations: the base, where it has a manifest digest. */
export function baseAnnotations(baseImage: BaseImage | null): Record<string, string> {
  if (!baseImage) return {};
  const out: Record<string, string> = { 'org.opencontainers.image.base.name': absoluteBaseName(baseImage.text) };
  if (baseImage.digest && (baseImage.kind === 'oci' || baseImage.kind === 'registry')) out['org.opencontainers.image.base.digest'] = baseImage.digest;
  return out;
}

export interface GeneratedFor {
  sources: Sources;
  payload: Payload;
  baseImage: BaseImage | null;
  /** The image is a root filesystem (a base, or an OCI image): a /cvmfs-only image gets nothing. */
  rootfs: boolean;
  mountpoints: string[];
  epoch: number;
  /** The run's work directory: the generated files' content is written there. */
  work: string;
  /** The image's architecture (Go name: amd64), for Apptainer's labels and a SIF's header. */
  arch: string;
}

export interface Generated {
  entries: Entry[];
  /** What Apptainer reads (compose/apptainer.ts); null for a /cvmfs-only image. */
  apptainer: ApptainerFiles | null;
}

/** The generated files: setup script, mount points, /cvmfs/<fqrn>, /.shrinkwrap/, /.singularity.d/. */
export async function generatedFor(input: GeneratedFor, diag: Diagnostics): Promise<Generated> {
  const { payload, epoch, work } = input;
  // A /cvmfs-only image (no base) stays an exact mirror of the selection: nothing is added to it.
  if (!input.rootfs) return { entries: [], apptainer: null };
  const planFile = path.join(work, 'plan.json');
  const plan = new Out(fs.createWriteStream(planFile), planFile);
  await renderPlanJson(payload.entries, { ...payload.summary, closure: payload.closure, elf: payload.elf }, diag.warnings, plan);
  await plan.end();
  const files: Array<{ name: string; content?: string; hostFile?: string }> = [
    { name: 'plan.json', hostFile: planFile },
    { name: 'provenance.json', content: JSON.stringify(provenance(input.sources, payload, input.baseImage), null, 1) + '\n' },
  ];
  for (const [repo, text] of specFilesOf(payload.rules)) files.push({ name: `specs/${repo}.spec`, content: text });
  const labels = provenanceLabels(input.sources, payload, input.baseImage);
  const apptainer = apptainerFiles({ sources: input.sources, releases: payload.releases, baseImage: input.baseImage, labels, arch: input.arch, version: VERSION });
  const entries = generatedEntries(
    {
      releases: payload.releases.map((r) => ({ name: `${r.project},${r.version}`, setup: display(r.setupScript), compilers: r.compilers.map(display) })),
      repositories: input.sources.repositories ? input.sources.repositories.map((r) => r.fqrn).sort() : repositoriesOf(input.sources.cvmfsRoot),
      mountpoints: input.mountpoints,
      files,
      apptainer,
      epoch,
      mount: MOUNT,
    },
    VERSION,
    work,
  );
  return { entries, apptainer };
}

/** The repositories of the source (/cvmfs/<fqrn> exists in the image for each, selected or not). */
function repositoriesOf(cvmfsRoot: string): string[] {
  try {
    return fs
      .readdirSync(cvmfsRoot, { withFileTypes: true, encoding: 'latin1' })
      .filter((d) => d.isDirectory() && d.name.includes('.'))
      .map((d) => d.name)
      .sort();
  } catch {
    return []; // selectPayload has checked the source already
  }
}

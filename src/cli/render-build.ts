// What `build` prints once the image is written: the summary on stderr, or one JSON report on stdout.
import type { BuildResult, WrittenImage } from '../compose/build.js';
import { display } from '../model/bytes.js';
import type { PushResult } from '../registry/push.js';
import type { FetchStats } from '../sources/cvmfs/http/fetch/fetcher.js';
import { humanBytes } from '../util/size.js';
import { releaseLines, summaryLines } from './render-plan.js';

/** One line on what was written: size, format, and what it holds. */
export function writtenText(image: WrittenImage): string {
  if (image.format === 'squashfs' || image.format === 'sif') {
    const comp = image.compression === 'none' ? 'uncompressed' : `${image.compression} level ${image.level}`;
    const size =
      image.format === 'sif'
        ? `${humanBytes(image.sif.bytes)} (sif ${image.sif.arch}, id ${image.sif.id}; partition ${image.sif.partition.id}: squashfs, ${comp}, ${humanBytes(image.blockSize)} blocks)`
        : `${humanBytes(image.bytes)} (squashfs, ${comp}, ${humanBytes(image.blockSize)} blocks)`;
    return (
      `${size}: ${image.inodes} inodes, ` +
      `${image.files} files, ${humanBytes(image.bytesIn)} of content` +
      (image.dedupFiles > 0 ? `; ${image.dedupFiles} duplicate files, ${humanBytes(image.dedupBytes)} saved` : '') +
      (image.sparseBytes > 0 ? `; ${humanBytes(image.sparseBytes)} of zero blocks not stored` : '')
    );
  }
  if (image.format === 'dir') return `dir: ${image.entries} entries, ${image.files} files, ${humanBytes(image.contentBytes)}`;
  const kept = image.layers.filter((l) => l.kept).length;
  const added = image.layers
    .filter((l) => !l.kept)
    .map((l) => `${l.label} ${humanBytes(l.size)}`)
    .join(', ');
  return `${humanBytes(image.bytes)} (${image.format}, ${image.name}, manifest ${image.manifestDigest.slice(0, 19)}…): ${kept} base layers kept, ${image.layers.length - kept} new (${added})`;
}

export function pushSummary(to: string, r: PushResult): string {
  return `pushed ${to} (${r.manifestDigest}): ${r.uploaded} blobs uploaded (${humanBytes(r.bytesUploaded)}), ${r.skipped} already there, ${r.mounted} mounted from another repository`;
}

/** The summary on stderr, each line `shrinkwrap: `-prefixed. */
export function buildSummaryLines(r: BuildResult): string[] {
  const lines: string[] = [];
  if (r.push) lines.push(pushSummary(r.push.to, r.push));
  lines.push(...summaryLines(r.payload.summary, r.warnings.length));
  if (r.payload.releases.length > 0) lines.push(...releaseLines(r.payload));
  if (r.fetched) lines.push(fetchedText(r.fetched));
  lines.push(`wrote ${r.output}: ${writtenText(r.image)}${r.reused ? reusedText(r.reused) : ''}`);
  if (r.sha256) lines.push(`wrote ${r.output}.sha256: ${r.sha256}`);
  return lines;
}

/** --reuse on the summary line: `; 1,234 files (5.6 GB) copied from PREVIOUS`. */
function reusedText(r: NonNullable<BuildResult['reused']>): string {
  return `; ${r.files.toLocaleString('en-US')} files (${humanBytes(r.bytes)}) copied from ${r.from}`;
}

/** What an HTTP source fetched, and from where. */
function fetchedText(s: FetchStats): string {
  const servers = Object.entries(s.perServer)
    .map(([server, n]) => `${n.toLocaleString('en-US')} to ${server}`)
    .join(', ');
  const retried = s.retries ? `, ${s.retries.toLocaleString('en-US')} retried` : '';
  return `fetched: ${s.objects.toLocaleString('en-US')} objects not in the cache, ${humanBytes(s.bytesWire)} in ${s.requests.toLocaleString('en-US')} requests (${servers || 'none'}${retried})`;
}

/** The image's own fields in the JSON report, in the order the report has always had them. */
function imageJson(image: WrittenImage): Record<string, unknown> {
  if (image.format === 'sif') {
    const { bytes, id, arch, partition, objects } = image.sif;
    return { bytes, id, arch, partition, objects, inodes: image.inodes, files: image.files, contentBytes: image.bytesIn, dedupFiles: image.dedupFiles, dedupBytes: image.dedupBytes };
  }
  if (image.format === 'squashfs') {
    return { bytes: image.bytes, inodes: image.inodes, files: image.files, contentBytes: image.bytesIn, dedupFiles: image.dedupFiles, dedupBytes: image.dedupBytes };
  }
  if (image.format === 'dir') return { entries: image.entries, files: image.files, contentBytes: image.contentBytes };
  return { bytes: image.bytes, manifestDigest: image.manifestDigest, configDigest: image.configDigest, layers: image.layers, name: image.name };
}

/** `build --json`: one document. */
export function buildJson(r: BuildResult): string {
  const repositories: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r.payload.summary.repositories)) repositories[display(k)] = v;
  const doc = {
    output: r.output,
    format: r.format,
    ...imageJson(r.image),
    ...(r.sha256 ? { sha256: r.sha256 } : {}),
    ...(r.push ? { push: r.push } : {}),
    ...(r.fetched ? { fetched: r.fetched } : {}),
    ...(r.reused ? { reused: r.reused } : {}),
    base: r.base,
    selection: { entries: r.payload.summary.entries, bytes: r.payload.summary.bytes, repositories, parts: r.payload.parts, releases: r.payload.releases.map((rel) => `${rel.project},${rel.version}`) },
    warnings: r.warnings.map((w) => ({ kind: w.kind, message: w.message })),
  };
  return JSON.stringify(doc, null, 1) + '\n';
}

// Where an image's blobs are: the files of an OCI layout (`blobs/sha256/<hex>`), or the members of
// a docker-archive (the same names inside the tar, as shrinkwrap and docker ≥ 25 write them). A blob
// is a region of a file either way, so one checker serves both.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blobName, blobPath } from '../../formats/oci-layout.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import type { Region } from '../../sources/base/blob.js';
import type { TarMember } from '../../sources/tar/reader.js';

export interface BlobStore {
  /** The blob named `digest`, or why there is none (one phrase: "missing: blobs/sha256/…"). */
  find(digest: string): Region | string;
}

/** The blobs of an OCI layout directory; a link or a non-file is not a blob. */
export function layoutStore(dir: string): BlobStore {
  return {
    find(digest) {
      const file = blobPath(dir, digest);
      if (file === null) return 'not a sha256 digest: only sha256 blobs can be read';
      const name = path.relative(dir, file);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(file, { throwIfNoEntry: false });
      } catch (err) {
        return `${name}: ${describeSystemError(err)}`;
      }
      if (!st) return `missing: no ${name}`;
      if (!st.isFile()) return `${name} is not a regular file`;
      return { file, offset: 0, length: st.size };
    },
  };
}

/** A docker-archive's members by name (`./` and repeated slashes gone, as docker-archive.ts reads them). */
export function archiveMembers(members: Iterable<TarMember>): Map<string, TarMember> {
  const byName = new Map<string, TarMember>();
  for (const m of members) byName.set(memberName(m.name), m);
  return byName;
}

export function memberName(name: string): string {
  return path.posix.normalize(name.replace(/^\.\//, ''));
}

/** The blobs of a docker-archive: members `blobs/sha256/<hex>`. */
export function archiveStore(file: string, members: Map<string, TarMember>): BlobStore {
  return {
    find(digest) {
      const name = blobName(digest);
      if (name === null) return 'not a sha256 digest: only sha256 blobs can be read';
      const m = members.get(name);
      if (!m) return `missing: no ${name} in the archive`;
      if (m.type !== 'file') return `${name} is a ${m.type} in the archive, not a file`;
      return { file, offset: m.offset, length: m.size };
    },
  };
}

/** The bytes of a region no larger than `limit` (checked by the caller). */
export function readRegionBytes(r: Region, label: string): Buffer {
  const buf = Buffer.alloc(r.length);
  let n = 0;
  try {
    const fd = fs.openSync(r.file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      for (let got; n < r.length && (got = fs.readSync(fd, buf, n, r.length - n, r.offset + n)) > 0; ) n += got;
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new InputError(`${label}: ${describeSystemError(err)}`);
  }
  if (n < r.length) throw new InputError(`${label}: the file ends after ${n} of its ${r.length} bytes`);
  return buf;
}

/** A digest the archive's member name claims (`blobs/sha256/<hex>`), or undefined (docker < 25's `<id>/layer.tar`). */
export function digestOfName(name: string): string | undefined {
  const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
  return m ? `sha256:${m[1]!}` : undefined;
}

// Third-party fixtures in shared/fixtures (real files made by other projects' tools), found beside
// the checkout or beside one of its parents, as the developers' machines and CI lay them out.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canRun } from './env.js';

/** shared/fixtures/NAME if it holds `marker`, else null. */
export function findSharedFixture(name: string, marker: string): string | null {
  for (let dir = path.resolve(import.meta.dirname, '../..'); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'shared/fixtures', name);
    if (fs.existsSync(path.join(candidate, marker))) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

export const LEGACY_AUFS_FQRN = 'legacy_aufs.cern.ch';

/** The real repository published by cvmfs_server, or null (and a loud skip; an error in CI). */
export function legacyAufsFixture(what: string): string | null {
  const dir = findSharedFixture('cvmfs-legacy-aufs', 'legacy_aufs_repo.tar.gz');
  return canRun(dir !== null, what, 'shared/fixtures/cvmfs-legacy-aufs is not beside the checkout') ? dir : null;
}

/** Its two tarballs unpacked into `into`: `srv/cvmfs/<fqrn>/…` (as served) and `etc/cvmfs/keys/`. */
export function unpackLegacyAufs(fixture: string, into: string): { served: string; keys: string } {
  for (const tarball of ['legacy_aufs_repo.tar.gz', 'keys.tar.gz']) execFileSync('tar', ['-xzf', path.join(fixture, tarball), '-C', into]);
  return { served: path.join(into, 'srv/cvmfs'), keys: path.join(into, 'etc/cvmfs/keys') };
}

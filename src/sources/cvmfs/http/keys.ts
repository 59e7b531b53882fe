// Which master public keys verify a repository's whitelist, found in a keys directory the way a
// CernVM-FS client finds them. The client (mountpoint.cc CreateSignatureManager) loads every
// `*.pub` in CVMFS_KEYS_DIR (sorted, not recursive), and accepts a whitelist that any of them
// signed; the stock configuration points CVMFS_KEYS_DIR at /etc/cvmfs/keys/<domain> for the
// domains it knows (domain.d/cern.ch.conf: /etc/cvmfs/keys/cern.ch) and at /etc/cvmfs/keys
// otherwise, where a repository's own key is conventionally `<fqrn>.pub`.
// Given the top directory (/etc/cvmfs/keys or a copy of it), we try <dir>/<fqrn>.pub, then the
// domain's keys <dir>/<domain>/*.pub (domain: the fqrn without its first label) where that directory
// has any, else <dir>/*.pub: as the client, a key of another domain never signs for this one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../../../model/errors.js';

/** The fqrn without its first label: `atlas.cern.ch` → `cern.ch` (cvmfs_config's domain). */
export function repositoryDomain(fqrn: string): string | null {
  const dot = fqrn.indexOf('.');
  return dot < 0 || dot === fqrn.length - 1 ? null : fqrn.slice(dot + 1);
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The `*.pub` files directly in `dir`, sorted (FindFilesBySuffix); none when it is no directory. */
function pubFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.pub'))
    .sort()
    .map((n) => path.join(dir, n))
    .filter(isFile);
}

/** Paths of the master public keys to try for `fqrn`, most specific first; InputError when none. */
export function findMasterKeys(keysDir: string, fqrn: string): string[] {
  const domain = repositoryDomain(fqrn);
  const domainKeys = domain ? pubFiles(path.join(keysDir, domain)) : [];
  const candidates = [path.join(keysDir, `${fqrn}.pub`), ...(domainKeys.length > 0 ? domainKeys : pubFiles(keysDir))];
  const found = [...new Set(candidates.filter(isFile))];
  if (found.length === 0) {
    const places = [`${fqrn}.pub`, ...(domain ? [`${domain}/*.pub`] : []), '*.pub'].join(', ');
    throw new InputError(`${fqrn}: no master public key in ${keysDir} (looked for ${places})`);
  }
  return found;
}

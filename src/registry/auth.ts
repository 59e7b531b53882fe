// Registry credentials: where they come from (--creds, SHRINKWRAP_REGISTRY_AUTH, the auth files
// podman and docker write). How they are sent (Basic, or for a Bearer token) is the client's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputError } from '../model/errors.js';
import { HUB_ALIASES } from './reference.js';
import { MAX_DOCUMENT, map, nullable, obj, optional, parseJson, readRegularFile, singleLine, str } from '../util/json-check.js';

export interface Credentials {
  username: string;
  password: string;
}

function parseUserPass(text: string, where: string): Credentials {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new InputError(`${singleLine(where, 300)}: expected USER:PASSWORD`);
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Credentials for `registry` (host[:port] as in ImageReference): `--creds USER:PASS`, else
 * SHRINKWRAP_REGISTRY_AUTH, else the first auth file that has an entry for the registry
 * (${REGISTRY_AUTH_FILE}, ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.docker/config.json).
 */
export function credentialsFor(registry: string, creds: string | undefined): Credentials | null {
  if (creds !== undefined) return parseUserPass(creds, '--creds');
  const env = process.env['SHRINKWRAP_REGISTRY_AUTH'];
  if (env) return parseUserPass(env, 'SHRINKWRAP_REGISTRY_AUTH');
  const files: string[] = [];
  if (process.env['REGISTRY_AUTH_FILE']) files.push(process.env['REGISTRY_AUTH_FILE']);
  if (process.env['XDG_RUNTIME_DIR']) files.push(path.join(process.env['XDG_RUNTIME_DIR'], 'containers/auth.json'));
  files.push(path.join(os.homedir(), '.docker/config.json'));
  for (const file of files) {
    const found = fromAuthFile(file, registry);
    if (found) return found;
  }
  return null;
}

/** docker's config.json and containers' auth.json, as far as credentials go (credsStore and helpers are not used). */
const authFileCheck = obj({
  auths: optional(nullable(map(nullable(obj({ auth: optional(str), username: optional(str), password: optional(str) }))))),
});

/** Keys of `auths` name a registry as `host`, `https://host/…` or, for Docker Hub, `https://index.docker.io/v1/`. */
function fromAuthFile(file: string, registry: string): Credentials | null {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    return null; // absent (or unreadable) files are the common case
  }
  // A regular file of sane size: a FIFO or /dev/zero in its place must not hang or fill memory.
  const auths = parseJson(readRegularFile(file, file, { limit: MAX_DOCUMENT }), authFileCheck, file).auths ?? {};
  const wanted = HUB_ALIASES.has(registry) ? HUB_ALIASES : new Set([registry]);
  for (const [key, entry] of Object.entries(auths)) {
    const host = key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
    if (!wanted.has(host) || !entry) continue;
    if (entry.auth) return parseUserPass(Buffer.from(entry.auth, 'base64').toString('utf8'), `${file}: auths["${key}"].auth`);
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  }
  return null;
}

// Where a repository is read from: the server list (CVMFS_SERVER_URL), the proxy chain
// (CVMFS_HTTP_PROXY), and the proxy the environment names for a URL (http_proxy, no_proxy).
import * as net from 'node:net';
import { InputError } from '../../../../model/errors.js';

/** The placeholder a server URL template has for the repository's name. */
export const FQRN = '@fqrn@';

/**
 * `;`-separated servers: `http(s)://HOST[:PORT]/PATH` (the server's /cvmfs base; the repository
 * is below it) or a URL that names the repository itself with `@fqrn@`, as CVMFS_SERVER_URL has.
 * Returns URL templates, each containing `@fqrn@`.
 */
export function parseServerList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(';')) {
    const item = raw.trim();
    if (item === '') continue;
    const bad = () => new InputError(`server list: ${item}: not an http(s)://HOST[:PORT]/PATH URL`);
    let url: URL;
    try {
      url = new URL(item.replaceAll(FQRN, 'fqrn-placeholder'));
    } catch {
      throw bad();
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.search !== '' || url.hash !== '' || url.username !== '' || /\s/.test(item)) throw bad();
    out.push(item.includes(FQRN) ? item : `${item.replace(/\/+$/, '')}/${FQRN}`);
  }
  if (out.length === 0) throw new InputError(`server list: "${text}" names no server`);
  return out;
}

/** A template with the repository's name filled in. */
export function serverUrl(template: string, fqrn: string): string {
  return template.replaceAll(FQRN, fqrn);
}

/** A server as messages name it: its /cvmfs base, or the template if the name is not at its end. */
export function serverName(template: string): string {
  return template.endsWith(`/${FQRN}`) ? template.slice(0, -FQRN.length - 1) : template;
}

/** Load-balanced proxies (`http://host:port`, or `DIRECT`: no proxy), used together. */
export type ProxyGroup = string[];

export const DIRECT = 'DIRECT';

/**
 * CVMFS_HTTP_PROXY: groups separated by `;`, tried in order when one fails; members of a group
 * separated by `|`, load-balanced. `DIRECT` (or an empty member) means no proxy. `auto` (a proxy
 * list discovered through WPAD/PAC files) is not done here: it is dropped, and a list of nothing
 * else is refused.
 */
export function parseProxyList(text: string): ProxyGroup[] {
  const groups: ProxyGroup[] = [];
  let sawAuto = false;
  for (const rawGroup of text.split(';')) {
    const group: ProxyGroup = [];
    for (const raw of rawGroup.split('|')) {
      const m = raw.trim();
      if (m === '' || m === DIRECT) {
        if (!group.includes(DIRECT)) group.push(DIRECT);
      } else if (m === 'auto') {
        sawAuto = true;
      } else {
        group.push(normaliseProxy(m, `proxy list: ${m}`));
      }
    }
    if (group.length > 0) groups.push(group);
  }
  if (groups.length === 0) {
    throw new InputError(sawAuto ? `proxy list: "${text}": auto (WPAD proxy discovery) is not supported; name the proxies, or DIRECT` : `proxy list: "${text}" names no proxy (use DIRECT for none)`);
  }
  return groups;
}

/** `host:port` → `http://host:port`; only HTTP proxies (what the CVMFS client uses too). */
function normaliseProxy(value: string, what: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InputError(`${what}: not a proxy URL (http://HOST:PORT)`);
  }
  if (url.protocol !== 'http:') throw new InputError(`${what}: only http:// proxies are supported`);
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '') throw new InputError(`${what}: not a proxy URL (http://HOST:PORT)`);
  return `http://${url.host}`;
}

/**
 * The proxy the environment names for `url`, or null (direct): `http_proxy` / `https_proxy`
 * (then the upper-case names, then `all_proxy`), unless `no_proxy` matches the host as curl
 * matches it: `*` is everything; otherwise comma- or space-separated names, each matching the
 * host itself and its subdomains (a leading dot changes nothing), an IP address or CIDR range,
 * and with `:PORT` only that port.
 */
export function proxyFromEnvironment(url: string, env: NodeJS.ProcessEnv): string | null {
  const u = new URL(url);
  const scheme = u.protocol.replace(/:$/, '');
  const value = firstSet(env, [`${scheme}_proxy`, `${scheme.toUpperCase()}_PROXY`, 'all_proxy', 'ALL_PROXY']);
  if (!value) return null;
  const noProxy = firstSet(env, ['no_proxy', 'NO_PROXY']);
  const port = u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port);
  if (noProxy && bypassesProxy(u.hostname.replace(/^\[|\]$/g, '').toLowerCase(), port, noProxy)) return null;
  return normaliseProxy(value, `${scheme}_proxy ${value}`);
}

function firstSet(env: NodeJS.ProcessEnv, names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n]?.trim();
    if (v) return v;
  }
  return undefined;
}

function bypassesProxy(host: string, port: number, noProxy: string): boolean {
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const portMatch = /^(.*[^:]):(\d+)$/.exec(entry);
    if (portMatch && !entry.startsWith('[') && net.isIP(entry) === 0) {
      if (Number(portMatch[2]) !== port) continue;
      entry = portMatch[1]!;
    }
    entry = entry.replace(/^\[|\]$/g, '');
    if (entry.includes('/')) {
      if (inCidr(host, entry)) return true;
      continue;
    }
    if (net.isIP(entry) !== 0) {
      if (host === entry) return true;
      continue;
    }
    entry = entry.replace(/^\.+/, '');
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function inCidr(host: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const family = net.isIP(base ?? '');
  const bits = Number(bitsText);
  if (family === 0 || net.isIP(host) !== family || !Number.isInteger(bits)) return false;
  const list = new net.BlockList();
  try {
    list.addSubnet(base!, bits, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
  return list.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

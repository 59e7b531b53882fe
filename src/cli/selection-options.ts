// The options `build` and `plan` share: what to select, and the base image. Parsed into the
// typed requests compose takes (compose/inputs.ts).
import * as fs from 'node:fs';
import { type Command, Option } from 'commander';
import type { BaseRequest, SelectionRequest } from '../compose/inputs.js';
import { InputError, describeSystemError } from '../model/errors.js';
import { type ReleaseOptions, parseReleaseArg, readReleasesFile } from '../select/release/index.js';
import { bundledRecipes, parseRecipe } from '../select/release/recipe.js';
import type { TraceEventName, TraceFormat } from '../select/trace/index.js';
import { DEFAULT_MAX_LAYER_SIZE_TEXT } from '../sources/base/blob.js';
import { parseSize } from '../util/size.js';
import { type HttpSourceOptions, isCvmfsUrl } from '../sources/cvmfs/open.js';

export interface TraceFlags {
  traceFormat?: TraceFormat;
  policy: 'pdir' | 'exact';
  filters?: TraceEventName[];
}

export interface SelectionFlags extends TraceFlags {
  /** undefined (neither option), false (--no-closure), or the kinds given to --closure. */
  closure?: boolean | string;
  envFile?: string;
  ldLibraryPath?: string;
  cvmfsRoot: string;
  spec?: string[];
  trace?: string[];
  repo?: string;
  quiet?: boolean;
  release?: string[];
  releasesFile?: string[];
  project?: string;
  platform?: string[];
  recipe?: string[];
  pack?: string[];
  dropPack?: string[];
  defaultExclusions: boolean;
  dbrelease?: string;
  include?: string[];
  exclude?: string[];
  base?: string;
  tlsVerify: boolean;
  creds?: string;
  registryTimeout: string;
  maxLayerSize: string;
  skipUnreadable?: boolean;
  cvmfsProxy?: string;
  cvmfsKeys: string;
  cvmfsCache?: string;
  cvmfsAllowExpired?: boolean;
  cvmfsVariant?: string[];
  cvmfsRevision?: string;
  cvmfsTag?: string;
  cvmfsParallel: string;
  cvmfsTimeout: string;
}

export const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

const TRACE_EVENTS = ['open', 'opendir', 'lookup', 'statfs', 'getattr', 'listxattr', 'getxattr', 'readlink'];

/** How traces become spec lines: the same choices as cvmfs's spec_builder.py. */
export function addTraceOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--trace-format <format>', 'trace format (default: detected)').choices(['cvmfs', 'strace', 'parrot', 'paths']))
    .addOption(new Option('--policy <policy>', 'pdir: an opened file brings its whole directory (flat); exact: only what was touched').choices(['pdir', 'exact']).default('pdir'))
    .addOption(new Option('--filters <event...>', 'leave out these trace events').choices(TRACE_EVENTS));
}

export const REGISTRY_TIMEOUT_HELP = 'give up on a registry request that makes no progress for this long, or that takes longer in all (plus 1 s per 64 KiB of a blob)';

export function addSelectionOptions(cmd: Command): Command {
  return addTraceOptions(cmd)
    .option('--cvmfs-root <dir|url>', "the source: a tree laid out like /cvmfs (one directory per repository), or a server's /cvmfs URL read over HTTP with no client (http://HOST[:PORT]/cvmfs; several separated by ';' are tried in order)", '/cvmfs')
    .option('--cvmfs-proxy <proxies>', 'HTTP source: proxies as CVMFS_HTTP_PROXY writes them ("http://p1:3128|http://p2:3128;DIRECT"); default: $http_proxy, else none')
    .option('--cvmfs-keys <dir>', "HTTP source: the repositories' public master keys (<fqrn>.pub, <domain>/*.pub)", '/etc/cvmfs/keys')
    .option('--cvmfs-cache <dir>', 'HTTP source: where fetched objects are kept between builds (default: $XDG_CACHE_HOME/shrinkwrap/cvmfs)')
    .option('--cvmfs-allow-expired', "HTTP source: read a repository whose whitelist has expired (an archived repository), with a warning")
    .addOption(new Option('--cvmfs-variant <VAR=VALUE>', 'HTTP source: the value of $(VAR) in variant symlinks (repeatable)').argParser(collect))
    .option('--cvmfs-revision <n>', 'HTTP source: build from this older revision of the repository')
    .option('--cvmfs-tag <name>', 'HTTP source: build from this named snapshot (from the history database)')
    .option('--cvmfs-parallel <n>', 'HTTP source: requests in flight per server', '32')
    .option('--cvmfs-timeout <seconds>', 'HTTP source: give up on a request that makes no progress for this long', '30')
    .addOption(new Option('--spec <file>', 'cvmfs_shrinkwrap spec file (repeatable; specs union)').argParser(collect))
    .addOption(new Option('--trace <file>', 'access trace: CVMFS tracer log, strace -f output, Parrot name list or path list (repeatable; traces union)').argParser(collect))
    .option('--repo <fqrn>', 'repository of relative spec lines and tracer logs (default: from the file name <fqrn>.spec, <fqrn>.trace.log)')
    .option('--closure <kinds>', 'closures to apply: symlink (the default), elf (shared libraries the selected ELF objects need), or symlink,elf')
    .option('--no-closure', 'do not follow selected symlinks to their targets')
    .option('--env-file <file>', "a recorded environment (`env` output after the release's setup): its LD_LIBRARY_PATH guides the ELF closure")
    .option('--ld-library-path <dirs>', 'LD_LIBRARY_PATH for the ELF closure (colon-separated /cvmfs directories)')
    .addOption(new Option('--release <[project,]version[,platform]>', 'a release to put in the image, e.g. 21.2.75, AnalysisBase,21.2.75 or AthAnalysis,21.2.75,x86_64-slc6-gcc62-opt (repeatable; each may name its own platform)').argParser(collect))
    .addOption(new Option('--releases-file <file>', 'releases, one [PROJECT,]VERSION[,PLATFORM] per line (# comments)').argParser(collect))
    .option('--project <name>', 'project of releases given without one (AnalysisBase, Athena, ...)')
    .addOption(new Option('--platform <platform>', "the platform of releases given without one, e.g. x86_64-centos7-gcc8-opt (needed when a release has several); with a /, OS/ARCH[/VARIANT], the base image platform to take from an index (default: this machine's); give both with --platform twice").argParser(collect))
    .addOption(new Option('--recipe <file>', 'a release recipe besides the bundled specs/recipes/*.recipe (repeatable)').argParser(collect))
    .addOption(new Option('--pack <name|file>', 'a rule pack to apply besides the recipe\'s (specs/packs/<name>.pack or a file; repeatable)').argParser(collect))
    .addOption(new Option('--drop-pack <name>', "leave out one of the recipe's rule packs (repeatable)").argParser(collect))
    .option('--no-default-exclusions', 'keep what the default-exclusions pack leaves out (other platforms, docs, old DBReleases, images)')
    .option('--dbrelease <version>', "DBRelease to include: a version, or none (default: what DBRelease/current points to, for releases whose recipe takes one)")
    .addOption(new Option('--include <glob>', 'also select what this glob matches under /cvmfs (fast-glob syntax, e.g. atlas.cern.ch/repo/sw/database/GroupData/dev/SUSYTools/**; repeatable)').argParser(collect))
    .addOption(new Option('--exclude <glob>', 'leave out what this glob matches: a path under /cvmfs, or a name at any depth like *.pdf (repeatable)').argParser(collect))
    .option('--base <image>', 'the image to build on: a root filesystem DIR or tarball (.tar, .tar.gz, .tar.zst), a SquashFS image, a SIF (FILE.sif or sif:FILE), oci:DIR[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO:TAG; its ld.so.conf tells the ELF closure what it provides')
    .option('--tls-verify <bool>', 'docker:// base: verify the registry\'s TLS certificate (false also allows plain HTTP)', (v) => parseBool(v, '--tls-verify'), true)
    .option('--creds <user:password>', 'docker:// base: registry credentials (default: $SHRINKWRAP_REGISTRY_AUTH, then containers/auth.json, ~/.docker/config.json)')
    .option('--registry-timeout <seconds>', REGISTRY_TIMEOUT_HELP, '60')
    .option('--max-layer-size <size>', 'the most one compressed base layer or tarball may decompress to (K, M, G, T suffixes)', DEFAULT_MAX_LAYER_SIZE_TEXT)
    .option('--skip-unreadable', 'leave out files and directories this user may not read (each a warning, listed in --json) instead of failing')
    .option('-q, --quiet', 'print errors only');
}

/**
 * --platform is two things, told apart by their shape: OS/ARCH[/VARIANT] (with a `/`) for the base
 * image, the rest the platform of releases given without one. Each at most once.
 */
function platformOf(flags: SelectionFlags, kind: 'release' | 'image'): string | null {
  const given = (flags.platform ?? []).filter((p) => p.includes('/') === (kind === 'image'));
  if (given.length > 1) {
    const what = kind === 'image' ? 'base image platforms (OS/ARCH)' : `release platforms (a release's own goes with it: --release PROJECT,VERSION,PLATFORM)`;
    throw new InputError(`--platform ${given.join(' --platform ')}: two ${what}; give one`);
  }
  return given[0] ?? null;
}

const releasePlatform = (flags: SelectionFlags) => platformOf(flags, 'release');
const imagePlatform = (flags: SelectionFlags) => platformOf(flags, 'image');

/** --registry-timeout SECONDS, in milliseconds. */
export function registryTimeout(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InputError(`--registry-timeout ${text}: expected whole seconds, at least 1`);
  return Number(text) * 1000;
}

export function parseBool(v: string, opt: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InputError(`${opt} ${v}: expected true or false`);
}

/** --base and how to read it; null without --base. */
export function baseRequestOf(flags: SelectionFlags): BaseRequest | null {
  if (flags.base === undefined) return null;
  return {
    text: flags.base,
    platform: imagePlatform(flags),
    registry: { tlsVerify: flags.tlsVerify, creds: flags.creds, timeoutMs: registryTimeout(flags.registryTimeout) },
    maxLayerSize: parseSize(flags.maxLayerSize, '--max-layer-size', { expected: `expected a size in bytes, or with a K, M, G or T suffix (e.g. ${DEFAULT_MAX_LAYER_SIZE_TEXT})` }),
  };
}

/** --closure symlink,elf / --no-closure → which closures run. */
function closures(flags: SelectionFlags): { symlink: boolean; elf: boolean; explicit: boolean } {
  if (flags.closure === false) return { symlink: false, elf: false, explicit: true };
  if (flags.closure === undefined || flags.closure === true) return { symlink: true, elf: false, explicit: false };
  const kinds = flags.closure.split(',').map((k) => k.trim());
  for (const k of kinds) if (k !== 'symlink' && k !== 'elf') throw new InputError(`--closure ${flags.closure}: expected symlink, elf or symlink,elf`);
  // ELF libraries are reached through links: the ELF closure implies the symlink closure.
  return { symlink: true, elf: kinds.includes('elf'), explicit: true };
}

/** LD_LIBRARY_PATH for the ELF closure: --ld-library-path, else the one in --env-file. */
function ldLibraryPath(flags: SelectionFlags): string[] {
  let value = flags.ldLibraryPath;
  if (value === undefined && flags.envFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(flags.envFile, 'latin1');
    } catch (err) {
      throw new InputError(`--env-file ${flags.envFile}: ${describeSystemError(err)}`);
    }
    const line = text.split('\n').find((l) => l.startsWith('LD_LIBRARY_PATH=') || l.startsWith('export LD_LIBRARY_PATH='));
    if (!line) throw new InputError(`--env-file ${flags.envFile}: no LD_LIBRARY_PATH= line (record it with: env > FILE, after the release's setup)`);
    value = line.slice(line.indexOf('=') + 1).replace(/^["']|["']\r?$/g, '').replace(/\r$/, '');
  }
  return (value ?? '').split(':').filter((d) => d.startsWith('/'));
}

/** --release, --releases-file and friends; null when no release is asked for. */
function releasesOf(flags: SelectionFlags): Omit<ReleaseOptions, 'baseOs'> | null {
  const requests = (flags.release ?? []).map((r) => parseReleaseArg(r, `--release ${r}`));
  for (const f of flags.releasesFile ?? []) requests.push(...readReleasesFile(f));
  if (requests.length === 0) {
    for (const [opt, v] of [['--project', flags.project], ['--platform', releasePlatform(flags) ?? undefined], ['--dbrelease', flags.dbrelease], ['--pack', flags.pack], ['--drop-pack', flags.dropPack]] as const) {
      if (v !== undefined) throw new InputError(`${opt} needs --release or --releases-file`);
    }
    return null;
  }
  return {
    requests,
    project: flags.project ?? null,
    platform: releasePlatform(flags),
    recipes: [...bundledRecipes(), ...(flags.recipe ?? []).map((f) => parseRecipe(f))],
    packs: flags.pack ?? [],
    dropPacks: [...(flags.dropPack ?? []), ...(flags.defaultExclusions ? [] : ['default-exclusions'])],
    dbrelease: flags.dbrelease ?? null,
  };
}

/** What to select (compose/inputs.ts completes it with what the base provides). */
export function selectionRequestOf(flags: SelectionFlags): SelectionRequest {
  const c = closures(flags);
  imagePlatform(flags); // two OS/ARCH are refused with or without --base
  return {
    cvmfsRoot: flags.cvmfsRoot,
    specs: flags.spec ?? [],
    traces: { files: flags.trace ?? [], format: flags.traceFormat, policy: flags.policy, filters: flags.filters ?? [] },
    repo: flags.repo ?? null,
    closure: c.symlink,
    // undefined: the default (on with releases); an explicit --closure decides.
    elf: c.elf ? { ldLibraryPath: ldLibraryPath(flags) } : c.explicit ? null : undefined,
    releases: releasesOf(flags),
    include: flags.include ?? [],
    exclude: flags.exclude ?? [],
    skipUnreadable: flags.skipUnreadable ?? false,
    http: httpSourceOf(flags),
  };
}

/** The --cvmfs-* options of an HTTP source; null for a directory (they are refused there). */
function httpSourceOf(flags: SelectionFlags): HttpSourceOptions | null {
  const given = [
    ['--cvmfs-proxy', flags.cvmfsProxy],
    ['--cvmfs-cache', flags.cvmfsCache],
    ['--cvmfs-allow-expired', flags.cvmfsAllowExpired],
    ['--cvmfs-variant', flags.cvmfsVariant],
    ['--cvmfs-revision', flags.cvmfsRevision],
    ['--cvmfs-tag', flags.cvmfsTag],
  ].filter(([, v]) => v !== undefined);
  if (!isCvmfsUrl(flags.cvmfsRoot)) {
    if (given.length > 0) throw new InputError(`${given[0]![0]}: only for a --cvmfs-root read over HTTP (http://HOST/cvmfs), not a directory`);
    return null;
  }
  const variants = new Map<string, string>();
  for (const v of flags.cvmfsVariant ?? []) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(v);
    if (!m) throw new InputError(`--cvmfs-variant ${v}: expected VAR=VALUE`);
    variants.set(m[1]!, m[2]!);
  }
  if (flags.cvmfsRevision !== undefined && flags.cvmfsTag !== undefined) throw new InputError('--cvmfs-revision and --cvmfs-tag: give one of them');
  return {
    proxy: flags.cvmfsProxy ?? null,
    keysDir: flags.cvmfsKeys,
    cacheDir: flags.cvmfsCache ?? '',
    allowExpired: flags.cvmfsAllowExpired ?? false,
    variants,
    revision: flags.cvmfsRevision === undefined ? null : wholeNumber(flags.cvmfsRevision, '--cvmfs-revision', 0),
    tag: flags.cvmfsTag ?? null,
    parallel: wholeNumber(flags.cvmfsParallel, '--cvmfs-parallel', 1, 1024),
    timeoutMs: wholeNumber(flags.cvmfsTimeout, '--cvmfs-timeout', 1, 86_400) * 1000,
  };
}

function wholeNumber(text: string, opt: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new InputError(`${opt} ${text}: expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ' up'}`);
  }
  return Number(text);
}

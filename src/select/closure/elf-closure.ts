// ELF closure: the shared libraries that selected executables and libraries need (DT_NEEDED),
// found the way the dynamic loader would find them, without running anything (never ldd):
// DT_RPATH (unless DT_RUNPATH), then LD_LIBRARY_PATH (emulated from the release's setup chain, or
// given by the operator), then the directories a trace shows the loader searching, then DT_RUNPATH,
// then the base image's ld.so.conf and default directories; $ORIGIN and friends expanded. The first
// directory that has the library wins: under /cvmfs it is selected with the links on the way; in
// the base image it is left to the base. glibc, libnss and GPU driver libraries are never bundled
// (the base image or the host provides them); needs found nowhere are reported.
import { display } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { type Entry, normalizeAbsolute, parentPath } from '../../model/entry.js';
import type { Selection } from '../selection.js';
import { MOUNT, type SpecRule } from '../spec/parse.js';
import type { SpecTree } from '../spec/tree.js';
import type { BaseLibraries } from './base-libs.js';
import { ElfError, expandDynamicString, readElfFrom } from './elf.js';
import { throughLinks } from './links.js';
import type { Steps } from '../../util/steps.js';

/** Libraries that come with the OS or the GPU driver: bundling them breaks images. */
const SYSTEM_LIBRARY =
  /^(ld-linux[^/]*|ld64\.so|lib(c|m|dl|pthread|rt|util|resolv|anl|crypt|nsl|BrokenLocale|mvec|thread_db|nss_[^.]+|cuda|nvidia-[^.]+|GLX_nvidia|EGL_nvidia|nvcuvid|OpenCL))\.so(\.[0-9.]+)?$/;

const PLATFORM: Record<number, string> = { 62: 'x86_64', 183: 'aarch64', 3: 'i686', 21: 'ppc64le', 22: 's390x' };

export interface ElfClosureStats {
  /** ELF objects read. */
  objects: number;
  /** Entries added (libraries and the links to them). */
  added: number;
  unresolved: number;
  /** Needs met by the base image (not bundled). */
  fromBase: number;
}

/** Where the closure looks, besides each object's own DT_RPATH/DT_RUNPATH. */
export interface ElfSearch {
  /** LD_LIBRARY_PATH (image paths). */
  ldLibraryPath: readonly string[];
  /** Directories a trace shows the loader searching (image paths). */
  traced: readonly string[];
  /** The base image's loader directories; null without a base. */
  base: BaseLibraries | null;
}

/**
 * One pass over selected files not looked at yet. Returns the symlinks it selected (for the
 * symlink closure) and whether anything was added; the caller repeats until nothing is.
 */
/** ELF objects read between pauses (see util/steps.ts). */
const PAUSE_EVERY = 64;

export function* elfClosurePass(
  sel: Selection,
  tree: SpecTree,
  search: ElfSearch,
  seen: Set<Entry>,
  stats: ElfClosureStats,
  diag: Diagnostics,
): Steps<{ links: string[]; added: boolean }> {
  const links: string[] = [];
  const before = sel.size;
  const todo: Entry[] = [];
  // Entries, not paths: a path is built anew each time it is asked for (TreeEntry).
  for (const e of sel.all()) if (e.type === 'file' && !seen.has(e)) todo.push(e);
  let read = 0;
  // A tree read over the network fetches their content many at a time, and the pass waits for each.
  sel.source.prefetch?.(todo.map((e) => e.source!));
  for (const e of todo) {
    if (++read % PAUSE_EVERY === 0) yield;
    const ready = sel.source.contentReady?.(e.source!);
    if (ready) yield ready;
    seen.add(e);
    let info;
    try {
      info = readElfFrom(sel.source.openContent(e.source!));
    } catch (err) {
      if (err instanceof ElfError) diag.warnPath('elf-malformed', e.path, `not a usable ELF object (${err.message})`);
      continue;
    }
    if (!info || info.needed.length === 0) continue;
    stats.objects++;
    const ctx = { origin: parentPath(e.path), elfClass: info.class, platform: PLATFORM[info.machine] ?? 'unknown' };
    const own = (list: string[]) => list.filter((d) => d !== '').map((d) => expandDynamicString(d, ctx));
    const dirs = unique([
      ...(info.runpath.length > 0 ? [] : own(info.rpath)),
      ...search.ldLibraryPath,
      ...search.traced,
      ...own(info.runpath),
      ...(search.base?.dirs ?? []),
    ]);
    // A hostile object may name 10^5 needs and 10^5 search directories: the lookups are bounded.
    let lookups = 0;
    for (const needed of new Set(info.needed)) {
      if (SYSTEM_LIBRARY.test(needed)) continue;
      const candidates = libraryCandidates(needed, dirs);
      const reason = `ELF closure: ${display(needed)} needed by ${display(e.path)}`;
      if (lookups + candidates.length > MAX_LOOKUPS_PER_OBJECT) {
        diag.warnPath('elf-search-limit', e.path, `${info.needed.length} needs in ${dirs.length} directories: more than ${MAX_LOOKUPS_PER_OBJECT} lookups; the rest of its needs (from ${display(needed)}) are not looked for`);
        break;
      }
      lookups += candidates.length;
      let found = false;
      for (const c of candidates) {
        if (c.startsWith(MOUNT + '/')) found = select(sel, tree, c, reason, links);
        else if (search.base?.has(display(normalizeAbsolute(c)))) {
          stats.fromBase++;
          found = true;
        }
        if (found) break;
      }
      if (!found) {
        stats.unresolved++;
        const where = search.base ? `under ${MOUNT} or in the base image` : `under ${MOUNT}`;
        diag.warnPath('elf-unresolved', e.path, `needs ${display(needed)}, not found ${where} in ${dirs.length > 0 ? shownDirs(dirs) : 'any search path'}${search.base ? '' : ' (the base image must provide it)'}`);
      }
    }
  }
  stats.added += sel.size - before;
  return { links, added: sel.size > before };
}

/** Candidate paths looked up for one object's needs (needs × search directories, as far as it gets). */
const MAX_LOOKUPS_PER_OBJECT = 200_000;

/** A search path for a message: a hostile object's 10^5 directories must not make a line of megabytes. */
function shownDirs(dirs: string[]): string {
  const shown = dirs.slice(0, 20).map(display).join(':');
  return dirs.length > 20 ? `${shown}:… (${dirs.length - 20} more)` : shown;
}

/**
 * Where the loader would look for a need. A name with a `/` is a path as it stands (a relative one
 * is relative to a working directory we cannot know); `.`, `..` and empty names are no library.
 * `..` in a path is left for throughLinks, which resolves it after the links before it, as the
 * kernel does.
 */
function libraryCandidates(needed: string, dirs: string[]): string[] {
  if (needed.includes('/')) return needed.startsWith('/') ? [needed] : [];
  if (needed === '' || needed === '.' || needed === '..') return [];
  return dirs.map((d) => `${d.replace(/\/+$/, '')}/${needed}`);
}

function unique(dirs: string[]): string[] {
  return [...new Set(dirs.map((d) => d.replace(/\/+$/, '') || '/'))];
}

/** Select a candidate library path (and every link on the way) if it exists; true when it does. */
function select(sel: Selection, tree: SpecTree, path: string, reason: string, links: string[]): boolean {
  const rule: SpecRule = { kind: 'exact', path, origin: 'ELF closure', text: display(path), reason };
  const chain = throughLinks(rule, sel.source);
  const last = chain[chain.length - 1];
  // A directory is no library (a need of `/cvmfs/r/lib/..` ends at one).
  const st = last ? sel.source.stat(last.path) : null;
  if (!st || st.isDirectory()) return false;
  if (chain.some((r) => tree.exclusionOf(r.path))) return false;
  for (const r of chain) {
    if (sel.has(r.path)) continue;
    const st = sel.source.stat(r.path);
    if (!st) return false;
    sel.addAncestors(r.path, `ancestor of ${display(r.path)} (${reason})`);
    const entry = sel.entryAt(r.path, st, reason);
    if (!entry) continue;
    sel.add(entry);
    if (entry.type === 'symlink') links.push(r.path);
  }
  return true;
}

// Why an entry is in the image, in the few kinds a report colours by, and which part of a release
// it belongs to. Both are read from the entry's reason text, the one field every plan carries (the
// image's /.shrinkwrap/plan.json has no part per entry), so a report of a plan file, an image and a
// live plan group the same entries the same way.

/** A kind of reason: its key, what the legend says, and the short tag drawn in the treemap (read without colour). */
export interface Category {
  key: string;
  label: string;
  tag: string;
}

export const REASON_CATEGORIES: readonly Category[] = [
  { key: 'spec', label: 'spec line or --include glob', tag: 'SPEC' },
  { key: 'release', label: 'release recipe', tag: 'REL' },
  { key: 'pack', label: 'rule pack', tag: 'PACK' },
  { key: 'symlink', label: 'symlink closure', tag: 'LINK' },
  { key: 'elf', label: 'ELF closure', tag: 'ELF' },
  { key: 'trace', label: 'trace', tag: 'TRACE' },
  { key: 'base', label: 'base image', tag: 'BASE' },
  { key: 'ancestor', label: 'ancestor directory', tag: 'DIR' },
  { key: 'other', label: 'other', tag: 'OTHER' },
];

/** What a comparison of two plans colours by. */
export const CHANGE_CATEGORIES: readonly Category[] = [
  { key: 'added', label: 'added (only in the second)', tag: 'ADDED' },
  { key: 'removed', label: 'removed (only in the first)', tag: 'GONE' },
  { key: 'grown', label: 'grown', tag: 'GREW' },
  { key: 'shrunk', label: 'shrunk', tag: 'SHRANK' },
  { key: 'same', label: 'unchanged', tag: 'SAME' },
];

export const CHANGE = { added: 0, removed: 1, grown: 2, shrunk: 3, same: 4 } as const;

const REASON_INDEX = new Map(REASON_CATEGORIES.map((c, i) => [c.key, i]));
const cat = (key: string): number => REASON_INDEX.get(key)!;

// A spec or trace rule's reason is `<origin> <kind> <path>`; a trace's origin ends in its policy, `(name)`.
const TRACE_RULE = / \([\w-]+\):\d+ (?:exact|tree|flat) /;
const SPEC_RULE = /^\S[^]*?:\d+ (?:exact|tree|flat) /;

/** The category index (into REASON_CATEGORIES) of a reason text. */
export function reasonCategory(reason: string): number {
  if (reason.startsWith('ancestor of ')) return cat('ancestor');
  if (reason.startsWith('symlink closure')) return cat('symlink');
  if (reason.startsWith('ELF closure')) return cat('elf');
  if (reason.startsWith('pack ')) return cat('pack');
  if (/^(?:release |base project |setup chain of |LCG package)/.test(reason)) return cat('release');
  if (reason.startsWith('base ')) return cat('base');
  if (reason.startsWith('--include ')) return cat('spec');
  if (TRACE_RULE.test(reason)) return cat('trace');
  if (SPEC_RULE.test(reason)) return cat('spec');
  return cat('other');
}

export const OTHER_PART = 'other (spec lines, traces, closures, ancestors)';

/** The release part a reason names (`release AnalysisBase 21.2.75`, `pack pilot-markers`, ...), else OTHER_PART. */
export function reasonPart(reason: string): string {
  let m = /^release (\S+ \S+) \(/.exec(reason) ?? /^setup chain of (\S+ \S+):/.exec(reason);
  if (m) return `release ${m[1]}`;
  if ((m = /^base project (\S+ \S+) of /.exec(reason))) return `base project ${m[1]}`;
  if ((m = /^pack (\S+) for /.exec(reason))) return `pack ${m[1]}`;
  if (/^LCG package/.test(reason)) return 'LCG packages';
  return OTHER_PART;
}

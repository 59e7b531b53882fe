// What a warning means to the operator who reads it: whether it is expected, and how to fix or
// silence it. Added where warnings are printed, not to the warnings themselves: those go into
// plan.json (and /.shrinkwrap/plan.json in the image) as they are.
import type { Warning } from '../model/diagnostics.js';

/** The path a message starts with (`PATH -> TARGET: ...` or `PATH: ...`), as an --exclude argument. */
function leadingPath(message: string): string | null {
  const m = /^(\/cvmfs\/\S+?)(?: -> |: )/.exec(message);
  return m ? m[1]! : null;
}

/** The /cvmfs path a setup-chain warning names (`VARIABLE names PATH, which ...`). */
function namedPath(message: string): string | null {
  return /\bnames (\/cvmfs\/\S+?), which/.exec(message)?.[1] ?? null;
}

const quote = (p: string) => `'${p.replace(/'/g, "'\\''")}'`;

const excludeHint = (w: Warning) => {
  const p = leadingPath(w.message);
  return p ? `--exclude ${quote(p)}` : '--exclude PATH';
};

const ADVICE: Record<string, (w: Warning) => string> = {
  'symlink-dangling': (w) => `expected where the link is broken in the source too; to leave the link out: ${excludeHint(w)}`,
  'symlink-outside': (w) => `expected for a link into the host system: the base image provides its target or not; to leave the link out: ${excludeHint(w)}`,
  'symlink-excluded': () => 'expected: an exclusion wins over the closure; to keep the target, drop the rule that excludes it (--drop-pack NAME, --no-default-exclusions)',
  'setup-path-missing': (w) => {
    const p = namedPath(w.message);
    if (/is not in the source tree/.test(w.message)) return 'expected where the source lacks it too: a job reading it would fail on this source as well; nothing to add';
    return `expected unless jobs read it; to add it: --include ${quote(p ?? 'PATH')}`;
  },
  'cvmfs-bind': () => 'expected in every image built on a --base: a note for the site, nothing to fix in the image',
  'include-nothing': () => 'not expected: check the glob against the tree (shrinkwrap plan --explain PATH says why a path is not selected)',
  'elf-unresolved': () => 'expected if the base image provides it at run time; otherwise show the closure its directory: --ld-library-path DIR or --env-file',
  'setuid-dropped': () => 'expected with --format dir; to keep the bits: --keep-setuid',
  'device-skipped': () => 'expected with --format dir when not root; to create the nodes: --devices, as root',
};

/** The warning as printed: its message, then what to make of it where that is known. */
export function warningLine(w: Warning): string {
  const advice = ADVICE[w.kind];
  return advice ? `${w.message} (${advice(w)})` : w.message;
}

/** The kinds with advice (for the test that every warning of the example carries some). */
export const ADVISED_KINDS = Object.keys(ADVICE);

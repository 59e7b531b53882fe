// How `build --help` and `plan --help` are laid out: options in groups a new operator can scan
// (what to select first, the rarely needed last), after three examples.
import { type Command, Help, Option } from 'commander';

/** Headings in the order they are shown, each with its options' long names. */
export const OPTION_GROUPS: [heading: string, longNames: string[]][] = [
  ['What to select:', ['--release', '--releases-file', '--project', '--platform', '--spec', '--include', '--exclude', '--repo', '--dbrelease', '--cvmfs-root', '--skip-unreadable']],
  ['Base image:', ['--base', '--max-layer-size']],
  ['Output:', ['--output', '--format', '--force', '--reuse', '--tag', '--part', '--parts', '--json', '--html', '--report', '--explain', '--push', '--no-checksum', '--no-space-check', '--quiet', '--progress']],
  ['Format and compression:', ['--compression', '--level', '--block-size', '--layer-per', '--threads', '--no-dedup', '--no-export-table']],
  ['Parts (merge):', ['--part-priority', '--no-recompress']],
  ['Closures (what the selection needs besides):', ['--closure', '--no-closure', '--env-file', '--ld-library-path']],
  ['Traces (selecting what a job touched):', ['--trace', '--trace-format', '--policy', '--filters']],
  ['Registry and HTTP source:', ['--tls-verify', '--creds', '--registry-timeout', '--cvmfs-proxy', '--cvmfs-keys', '--cvmfs-cache', '--cvmfs-allow-expired', '--cvmfs-variant', '--cvmfs-revision', '--cvmfs-tag', '--cvmfs-parallel', '--cvmfs-timeout']],
  ['Slurm:', ['--dry-run', '--shrinkwrap']],
  ['Advanced:', ['--recipe', '--pack', '--drop-pack', '--no-default-exclusions', '--xattrs', '--mtime', '--owner', '--mountpoint', '--no-default-mountpoints', '--devices', '--keep-setuid', '--help']],
];

const ORDER = new Map(OPTION_GROUPS.map(([heading], i) => [heading, i]));
const GROUP_OF = new Map(OPTION_GROUPS.flatMap(([heading, names]) => names.map((n) => [n, heading] as const)));
const PLACE = new Map(OPTION_GROUPS.flatMap(([, names]) => names).map((n, i) => [n, i]));

/** An option's place in the table (within its group, options show in the table's order); commands keep theirs. */
function placeOf(item: Command | Option): number {
  return item instanceof Option && item.long !== undefined ? (PLACE.get(item.long) ?? PLACE.size) : 0;
}

/**
 * Put each of `cmd`'s options (and its help option) under its heading, shown in OPTION_GROUPS'
 * order. An option not in the table stays under commander's "Options:", last: a test looks for that
 * heading, so a new option cannot go unplaced.
 */
export function groupOptions(cmd: Command): Command {
  const helpOption = new Option('-h, --help', 'display help for command');
  cmd.addHelpOption(helpOption);
  for (const o of [...cmd.options, helpOption]) {
    const heading = o.long === undefined ? undefined : GROUP_OF.get(o.long);
    if (heading !== undefined) o.helpGroup(heading);
  }
  return cmd.configureHelp({
    groupItems<T extends Command | Option>(this: Help, unsorted: T[], visible: T[], getGroup: (item: T) => string): Map<string, T[]> {
      const groups = Help.prototype.groupItems.call(this, unsorted, visible, getGroup as (item: Command | Option) => string) as Map<string, T[]>;
      const rank = (h: string) => ORDER.get(h) ?? OPTION_GROUPS.length;
      for (const items of groups.values()) items.sort((a, b) => placeOf(a) - placeOf(b));
      return new Map([...groups].sort(([a], [b]) => rank(a) - rank(b)));
    },
  });
}

/** A command's description followed by examples, one per line, indented as commander indents items. */
export function withExamples(description: string, examples: string[]): string {
  return `${description}\n\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}`;
}

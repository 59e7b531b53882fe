// cvmfs_shrinkwrap spec files (reference cvmfs-spec-and-trace.md §1.2), parsed into rules whose
// paths are image paths (/cvmfs/<fqrn>/...). Semantics live in tree.ts; this file is grammar only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { display, fromBuffer, fsPath } from '../../model/bytes.js';
import type { Diagnostics } from '../../model/diagnostics.js';
import { InputError, describeSystemError } from '../../model/errors.js';
import { MOUNT } from '../../sources/cvmfs/tree.js';

export type RuleKind = 'exact' | 'recursive' | 'flat' | 'exclude';

export interface SpecRule {
  kind: RuleKind;
  /** Image path the rule is about, e.g. /cvmfs/atlas.cern.ch/repo/sw (byte string). */
  path: string;
  /** Where the rule comes from, e.g. `atlas.cern.ch.spec:12`. */
  origin: string;
  /** The line as written (display text). */
  text: string;
  /** Ready-made reason for entries this rule selects (shared string: one per rule, not per entry). */
  reason: string;
}

/** Where the repositories are, so that `/cvmfs/<fqrn>/…` lines can be told from relative ones. */
export { MOUNT };

/** The repository a spec file names by its file name: `<fqrn>.spec`, `<fqrn>.spec.txt`, `cvmfs-<fqrn>.spec`. */
export function repoFromFileName(file: string): string | null {
  const m = /^(?:cvmfs-)?(.+?)\.spec(?:\.txt)?$/.exec(path.basename(file));
  return m && m[1]!.includes('.') ? m[1]! : null;
}

export interface SpecSource {
  /** Name used in messages and reasons (as given on the command line). */
  file: string;
  /** Repository of relative lines; null when only absolute lines are allowed. */
  repo: string | null;
}

export function readSpecFile(file: string, repoOption: string | null, isRepo: (fqrn: string) => boolean, diag: Diagnostics): SpecRule[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(fsPath(file));
  } catch (err) {
    throw new InputError(`spec file ${display(file)}: ${describeSystemError(err)}`);
  }
  const repo = repoOption ?? repoFromFileName(file);
  return parseSpec(fromBuffer(buf), { file: display(file), repo }, isRepo, diag);
}

const kindWord: Record<RuleKind, string> = {
  exact: 'exact',
  recursive: 'tree',
  flat: 'flat',
  exclude: 'exclude',
};

/**
 * Parse spec text (a byte string). Throws InputError naming file:line for a line upstream would
 * reject (it aborts there), or that has a `..` component.
 */
export function parseSpec(text: string, src: SpecSource, isRepo: (fqrn: string) => boolean, diag: Diagnostics): SpecRule[] {
  const rules: SpecRule[] = [];
  const lines = text.split('\n');
  // A final newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    const origin = `${src.file}:${i + 1}`;
    // Upstream trims spaces and tabs only, so CRLF files keep a '\r' in every path; we drop it.
    const line = raw.replace(/\r$/, '').replace(/^[ \t]+|[ \t]+$/g, '');
    if (line === '' || line.startsWith('#')) return;
    const shown = display(line);
    const fail = (why: string): never => {
      throw new InputError(`${origin}: invalid spec line '${shown}': ${why}`);
    };
    let body = line;
    let sigil = '';
    const first = body[0];
    if (first === '^' || first === '!') {
      sigil = first;
      body = body.slice(1);
    } else if (first !== '/') {
      fail("a line must start with '/', '^' or '!'");
    }
    if (body === '') fail(`nothing after '${sigil}'`);
    let kind: RuleKind;
    if (body.endsWith('*')) {
      body = body.slice(0, -1);
      kind = sigil === '^' ? 'flat' : sigil === '!' ? 'exclude' : 'recursive';
      if (body !== '' && !body.endsWith('/')) {
        diag.warn(
          'spec-star',
          `${origin}: '${shown}' selects the whole tree ${display(body)}, not names starting with '${display(body.slice(body.lastIndexOf('/') + 1))}' (a final '*' is not a glob)`,
        );
      }
    } else {
      kind = sigil === '!' ? 'exclude' : 'exact';
    }
    if (body === '') fail(`no path after '${sigil}*'`);
    if (!body.startsWith('/')) fail("the path must start with '/'");
    if (/[ \t]#/.test(body)) {
      diag.warn('spec-comment', `${origin}: '${shown}' is taken as a path; comments must be on a line of their own`);
    }
    const parts: string[] = [];
    for (const c of body.split('/')) {
      if (c === '' || c === '.') continue;
      if (c === '..') fail("'..' is not allowed in a spec path");
      if (c.includes('*')) {
        diag.warn('spec-star', `${origin}: '*' in the middle of '${shown}' is a literal character in a name, not a glob`);
      }
      parts.push(c);
    }
    // `/cvmfs/<fqrn>/…` names a repository directly; anything else is relative to the spec's repository.
    let imagePath: string;
    if (parts[0] === 'cvmfs' && parts.length >= 2 && isRepo(parts[1]!)) {
      imagePath = '/' + parts.join('/');
    } else {
      if (src.repo === null) {
        fail(`the spec's repository is unknown: give --repo FQRN, name the file <fqrn>.spec, or write ${MOUNT}/<fqrn>/...`);
      }
      imagePath = [MOUNT, src.repo, ...parts].join('/');
    }
    rules.push({ kind, path: imagePath, origin, text: shown, reason: `${origin} ${kindWord[kind]} ${shown}` });
  });
  return rules;
}

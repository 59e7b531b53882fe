// What Apptainer expects of an image it did not build itself, written the way `apptainer build`
// writes it (its internal/pkg/build/sources and assemblers/sif.go; /work/wt/SIF-FACTS.md §3):
//   /.singularity.d/Singularity      the definition: how the image was made (also SIF object 1)
//   /.singularity.d/labels.json      org.label-schema.* and our io.shrinkwrap.* provenance
//   /.singularity.d/env/             01-base.sh, 90-environment.sh (%environment), 99-base.sh
//   /.singularity.d/runscript(.help) startscript, actions/{exec,run,shell,start,test}, libs/
//   /singularity, /.run, /.exec, /.shell, /.test, /environment   the links build makes
// and the SIF's inspect-metadata.json object, which `apptainer inspect` reads without mounting.
// The texts are ours; their places, modes and formats are Apptainer's. Every image with a root
// filesystem carries them, so a SIF's partition is the SquashFS image of the same build.
import * as path from 'node:path';
import type { BaseImage } from '../sources/base/index.js';
import { hostPlatform } from '../formats/oci.js';
import type { Sources } from './provenance.js';

export interface ApptainerInput {
  sources: Sources;
  /** The image's releases (the selection's, or a merge's parts'). */
  releases: ReadonlyArray<{ project: string; version: string; platform: string }>;
  baseImage: BaseImage | null;
  /** Labels the image carries already (provenanceLabels). */
  labels: Record<string, string>;
  /** Go architecture name of the image (amd64). */
  arch: string;
  version: string;
}

export interface ApptainerFiles {
  /** Image path → content and mode, under /.singularity.d. */
  files: Array<{ path: string; content: string; mode: number }>;
  dirs: string[];
  /** Root links → targets (relative, as apptainer build makes them). */
  links: Array<{ path: string; target: string }>;
  /** The definition text (/.singularity.d/Singularity, and the SIF's Def.FILE object). */
  definition: string;
  /** The SIF's inspect-metadata.json object (compact JSON, as apptainer writes it). */
  inspectMetadata: string;
  labels: Record<string, string>;
}

const D = '/.singularity.d';

/** The image's architecture (a Go name, as SIF and Apptainer's labels have it): the base's, else the platform asked for, else this machine's. */
export function imageArch(baseImage: BaseImage | null, platform: string | null): string {
  const fromConfig = baseImage?.config?.architecture;
  if (typeof fromConfig === 'string' && fromConfig !== '') return fromConfig;
  return (platform ?? hostPlatform()).split('/')[1] ?? 'unknown';
}

/** Everything below, from the build's inputs. */
export function apptainerFiles(input: ApptainerInput): ApptainerFiles {
  const { agent, from } = bootstrapOf(input.baseImage);
  const environment = environmentSection(input.releases);
  const runscript = RUNSCRIPT;
  const help = helpText(input);
  const definition = definitionText(input, agent, from, environment, help);
  const labels = labelsOf(input, agent, from);
  const files = [
    { path: `${D}/Singularity`, content: definition, mode: 0o644 },
    { path: `${D}/labels.json`, content: labelsJson(labels), mode: 0o644 },
    { path: `${D}/env/01-base.sh`, content: ENV_01, mode: 0o755 },
    { path: `${D}/env/90-environment.sh`, content: `#!/bin/sh\n\n${environment}\n`, mode: 0o755 },
    { path: `${D}/env/99-base.sh`, content: ENV_99, mode: 0o755 },
    { path: `${D}/runscript`, content: runscript, mode: 0o755 },
    { path: `${D}/runscript.help`, content: help, mode: 0o644 },
    { path: `${D}/startscript`, content: STARTSCRIPT, mode: 0o755 },
    ...Object.entries(ACTIONS).map(([name, body]) => ({ path: `${D}/actions/${name}`, content: body, mode: 0o755 })),
  ];
  const links = [
    { path: '/singularity', target: '.singularity.d/runscript' },
    { path: '/.run', target: '.singularity.d/actions/run' },
    { path: '/.exec', target: '.singularity.d/actions/exec' },
    { path: '/.test', target: '.singularity.d/actions/test' },
    { path: '/.shell', target: '.singularity.d/actions/shell' },
    { path: '/environment', target: '.singularity.d/env/90-environment.sh' },
  ];
  const inspectMetadata = JSON.stringify({
    data: {
      attributes: {
        environment: { [`${D}/env/90-environment.sh`]: trimEnd(`#!/bin/sh\n\n${environment}\n`) },
        labels,
        runscript: trimEnd(runscript),
        helpfile: trimEnd(help),
        deffile: trimEnd(definition),
        startscript: trimEnd(STARTSCRIPT),
      },
    },
    type: 'container',
  });
  return { files, dirs: [`${D}/libs`], links, definition, inspectMetadata, labels };
}

/** `apptainer inspect` prints file contents less their trailing newlines. */
function trimEnd(s: string): string {
  return s.replace(/\n+$/, '');
}

/** The definition's header: where apptainer would bootstrap the same base from. */
function bootstrapOf(base: BaseImage | null): { agent: string; from: string | null } {
  if (!base) return { agent: 'scratch', from: null };
  const text = base.text;
  switch (base.kind) {
    case 'registry':
      return { agent: 'docker', from: text.replace(/^docker:\/\//, '') };
    case 'oci':
      return { agent: 'oci', from: absolutePath(text.replace(/^oci:/, '')) };
    case 'docker-archive':
      return { agent: 'docker-archive', from: absolutePath(text.replace(/^docker-archive:/, '')) };
    case 'sif':
    case 'squashfs':
    case 'dir':
      return { agent: 'localimage', from: path.resolve(text.replace(/^sif:/, '')) };
    case 'tarball':
      // Apptainer has no agent for a root filesystem tarball: the definition says so in a comment.
      return { agent: 'scratch', from: null };
  }
}

/** DIR[:TAG] or FILE[:REF] with the path made absolute (the definition outlives the working directory). */
function absolutePath(text: string): string {
  return text.startsWith('/') ? text : path.resolve(text);
}

function environmentSection(releases: ApptainerInput['releases']): string {
  if (releases.length === 0) return '# (no release: nothing to set up)';
  return [
    '# The release environment: /release_setup.sh, sourced by every shell that starts here',
    '# (/.singularity.d/env/90-shrinkwrap-release.sh sources it for apptainer run, exec and shell).',
    'export SHRINKWRAP_RELEASE_SETUP=/release_setup.sh',
    'export BASH_ENV=/release_setup.sh',
    'export ENV=/release_setup.sh',
  ].join('\n');
}

function helpText(input: ApptainerInput): string {
  const releases = input.releases.map((r) => `${r.project} ${r.version} (${r.platform})`);
  const lines = [
    // Where the inputs were is in labels.json and provenance.json: the help is the same wherever they were.
    `Made by shrinkwrap ${input.version}: /cvmfs content copied into a base root filesystem.`,
    releases.length > 0 ? `Releases: ${releases.join(', ')}; set up by /release_setup.sh for every run, exec and shell.` : 'No release: the /cvmfs content chosen by the spec files.',
    '',
    'Usage:',
    '  apptainer run IMAGE COMMAND [ARGS...]   run COMMAND in the release environment',
    '  apptainer run IMAGE                     an interactive shell in it',
    '  apptainer exec IMAGE COMMAND            the same, as exec',
    '',
    'What it holds and why: /.shrinkwrap/plan.json; its inputs: /.shrinkwrap/provenance.json.',
    '',
  ];
  return lines.join('\n');
}

function definitionText(input: ApptainerInput, agent: string, from: string | null, environment: string, help: string): string {
  const { sources, releases, baseImage } = input;
  const indent = (s: string) =>
    s
      .split('\n')
      .map((l) => (l === '' ? '' : `    ${l}`))
      .join('\n');
  const lines = [`Bootstrap: ${agent}`];
  if (from !== null) lines.push(`From: ${from}`);
  lines.push(
    '',
    `# Not built by apptainer: shrinkwrap ${input.version} copied the /cvmfs content below into`,
    baseImage ? `# the root filesystem of ${baseImage.text}${baseImage.kind === 'tarball' ? ' (a tarball: apptainer has no agent for one)' : ''}.` : '# an empty root filesystem.',
  );
  if (sources.commandLine.length > 0) lines.push(`# Command: ${sources.commandLine.join(' ')}`);
  lines.push(`# Source: ${sources.cvmfsRoot}`);
  for (const r of releases) lines.push(`# Release: ${r.project},${r.version} ${r.platform}`);
  for (const f of sources.specs) lines.push(`# Spec: ${f}`);
  for (const f of sources.traces) lines.push(`# Trace: ${f}`);
  lines.push('', '%labels');
  for (const [k, v] of Object.entries(input.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) lines.push(`    ${k} ${v.replace(/\n/g, ' ')}`);
  lines.push('', '%environment', indent(environment), '', '%runscript', indent(RUNSCRIPT_BODY), '', '%help', indent(help.replace(/\n+$/, '')), '');
  return lines.join('\n');
}

/** The labels as apptainer build sets them (metadata.go addBuildLabels), then ours. */
function labelsOf(input: ApptainerInput, agent: string, from: string | null): Record<string, string> {
  const created = input.sources.created;
  const labels: Record<string, string> = {
    ...(input.baseImage?.labels ?? {}),
    'org.label-schema.schema-version': '1.0',
    'org.label-schema.build-date': buildDate(created),
    'org.label-schema.build-arch': input.arch,
    'org.label-schema.usage': `${D}/runscript.help`,
    'org.label-schema.usage.singularity.deffile.bootstrap': agent,
    'org.opencontainers.image.architecture': input.arch,
    ...input.labels,
  };
  if (from !== null) labels['org.label-schema.usage.singularity.deffile.from'] = from;
  return labels;
}

/** labels.json as Go's json.MarshalIndent(labels, "", "\t") writes it: keys sorted, no newline at the end. */
export function labelsJson(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (keys.length === 0) return '{}';
  return `{\n${keys.map((k) => `\t${goJson(k)}: ${goJson(labels[k]!)}`).join(',\n')}\n}`;
}

/** A JSON string as Go's encoder writes it (it escapes <, > and & as \u003c…, unlike JSON.stringify). */
function goJson(s: string): string {
  return JSON.stringify(s).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** org.label-schema.build-date as apptainer writes it: Tuesday_5_March_2024_9:7:3_UTC (no zero padding). */
export function buildDate(epoch: number): string {
  const d = new Date(epoch * 1000);
  return `${WEEKDAYS[d.getUTCDay()]}_${d.getUTCDate()}_${MONTHS[d.getUTCMonth()]}_${d.getUTCFullYear()}_${d.getUTCHours()}:${d.getUTCMinutes()}:${d.getUTCSeconds()}_UTC`;
}

const ENV_01 = '#!/bin/sh\n# Apptainer/Singularity environment: the scripts in this directory are sourced in name order\n# before a command runs in the container (apptainer run, exec, shell).\n';

const ENV_99 = [
  '#!/bin/sh',
  '# Libraries a runtime binds into the container (apptainer --nv and --rocm put them in /.singularity.d/libs).',
  'if [ -z "${LD_LIBRARY_PATH:-}" ]; then',
  '    LD_LIBRARY_PATH=/.singularity.d/libs',
  'else',
  '    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"',
  'fi',
  'PS1="${PS1:-Apptainer> }"',
  'export LD_LIBRARY_PATH PS1',
  '',
].join('\n');

/** %runscript: the command given, or an interactive shell; the environment is set up before it. */
const RUNSCRIPT_BODY = [
  '# The command given, in the release environment (/.singularity.d/env/ set it up); without one, a shell.',
  'if [ $# -eq 0 ]; then',
  '    if [ -x /bin/bash ]; then exec /bin/bash; fi',
  '    exec /bin/sh',
  'fi',
  'exec "$@"',
].join('\n');

const RUNSCRIPT = `#!/bin/sh\n\n${RUNSCRIPT_BODY}\n`;

const STARTSCRIPT = '#!/bin/sh\n# No instance service: `apptainer instance start` runs nothing here.\n';

const SOURCE_ENV = 'for shrinkwrap_env in /.singularity.d/env/*.sh; do\n    if [ -f "$shrinkwrap_env" ]; then . "$shrinkwrap_env"; fi\ndone\nunset shrinkwrap_env\n';

/**
 * The action scripts older runtimes run (Singularity 2, and tools that call them by path; Apptainer
 * runs its own, built in): set up the environment, then do the action.
 */
const ACTIONS: Record<string, string> = {
  exec: `#!/bin/sh\n${SOURCE_ENV}exec "$@"\n`,
  run: `#!/bin/sh\n${SOURCE_ENV}if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript "$@"; fi\nexec /bin/sh "$@"\n`,
  shell: `#!/bin/sh\n${SOURCE_ENV}if [ -n "\${SINGULARITY_SHELL:-}" ]; then exec $SINGULARITY_SHELL "$@"; fi\nif [ -x /bin/bash ]; then exec /bin/bash --norc "$@"; fi\nexec /bin/sh "$@"\n`,
  start: `#!/bin/sh\n${SOURCE_ENV}if [ -x /.singularity.d/startscript ]; then exec /.singularity.d/startscript "$@"; fi\n`,
  test: `#!/bin/sh\n${SOURCE_ENV}if [ -x /.singularity.d/test ]; then exec /.singularity.d/test "$@"; fi\nexit 0\n`,
};

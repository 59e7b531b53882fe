// What shrinkwrap adds to an image with a root filesystem, checked by its consumers: the mount
// points container runtimes bind onto (ch-run runs the example release from a SquashFS image on a
// base that has none of them), and /release_setup.sh under dash and busybox sh, with and without
// bash in the image.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { shrinkwrap } from '../helpers/cli.js';
import { canFuse, unsquashfsListing } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const RELEASES = ['--release', 'AthAnalysis,21.2.75', '--release', 'AnalysisBase,21.2.75', '--platform', 'x86_64-slc6-gcc62-opt'];
const RUN_ANALYSISBASE = 'SHRINKWRAP_RELEASE=AnalysisBase,21.2.75 . /release_setup.sh && xAODDump';
const XAODDUMP_OK = 'xAODDump: AnalysisBase 21.2.75 OK\n';
const PATH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

let cvmfs: string;
let work: string;
/** The example's base without /dev, /proc, /sys, /tmp and /root: /bin/sh (dash), a few programs, their libraries, /etc. */
let bare: string;

beforeAll(async () => {
  let base: string;
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir();
  bare = path.join(work, 'bare-base');
  fs.cpSync(base, bare, { recursive: true, verbatimSymlinks: true });
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'root']) fs.rmSync(path.join(bare, d), { recursive: true });
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

function build(base: string, out: string, format: 'squashfs' | 'dir'): string {
  const r = shrinkwrap(['build', '--cvmfs-root', cvmfs, '--base', base, ...RELEASES, '--format', format, '-o', out, '-q']);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

/** `unsquashfs -lln` lines of the image's top directories and /etc, as "perms size path". */
function topListing(img: string): string[] {
  return unsquashfsListing(img)
    .map((l) => l.split(' '))
    .filter((f) => /^\/(?:[^/]+|etc\/[^/]+|var\/tmp)$/.test(f[5]!))
    .map((f) => `${f[0]} ${f[2]} ${f.slice(5).join(' ')}`);
}

describe('runtime mount points', () => {
  it('are added where the base has none: /dev /proc /sys /home, /tmp and /var/tmp 1777, /etc/hosts and /etc/resolv.conf empty files', () => {
    const list = topListing(build(bare, path.join(work, 'bare.sqfs'), 'squashfs'));
    for (const want of [
      'drwxr-xr-x - /dev',
      'dr-xr-xr-x - /proc',
      'dr-xr-xr-x - /sys',
      'drwxr-xr-x - /home',
      'drwxrwxrwt - /tmp',
      'drwxrwxrwt - /var/tmp',
      '-rw-r--r-- 0 /etc/hosts',
      '-rw-r--r-- 0 /etc/resolv.conf',
    ])
      expect(list).toContain(want);
    // The base's own /etc content is kept beside them.
    expect(list).toContain('-rw-r--r-- 30 /etc/passwd');
  });

  it("never replace the base's own, whatever its type: a link, a file, a directory with its mode", () => {
    const base = path.join(work, 'own-base');
    fs.cpSync(bare, base, { recursive: true, verbatimSymlinks: true });
    fs.symlinkSync('../run/systemd/resolve/stub-resolv.conf', path.join(base, 'etc/resolv.conf'));
    fs.writeFileSync(path.join(base, 'etc/hosts'), '127.0.0.1 localhost\n');
    fs.symlinkSync('/var/home', path.join(base, 'home'));
    fs.mkdirSync(path.join(base, 'tmp'), { mode: 0o700 });
    fs.chmodSync(path.join(base, 'tmp'), 0o700);
    fs.writeFileSync(path.join(base, 'var'), 'a file where /var would be\n');
    const list = topListing(build(base, path.join(work, 'own.sqfs'), 'squashfs'));
    expect(list).toContain('lrwxrwxrwx 39 /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf');
    expect(list).toContain('-rw-r--r-- 20 /etc/hosts');
    expect(list).toContain('lrwxrwxrwx 9 /home -> /var/home');
    expect(list).toContain('drwx------ - /tmp');
    // /var is the base's file, so there is no /var/tmp to add.
    expect(list).toContain('-rw-r--r-- 27 /var');
    expect(list.filter((l) => l.endsWith('/var/tmp'))).toEqual([]);
    // The ones it lacks are still there.
    expect(list).toContain('drwxr-xr-x - /dev');
  });

  it.runIf(canRun(hasCommand('ch-run') && canFuse(), 'ch-run on a SquashFS image', 'needs ch-run (Debian: charliecloud-runtime), squashfuse and /dev/fuse'))(
    'let ch-run run the example release from a SquashFS image built on a bare base',
    () => {
      const img = path.join(work, 'bare.sqfs');
      if (!fs.existsSync(img)) build(bare, img, 'squashfs');
      const r = spawnSync('ch-run', [img, '--', '/bin/sh', '-c', RUN_ANALYSISBASE], { encoding: 'utf8', env: { ...PATH_ENV, USER: 'root', HOME: work } });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(XAODDUMP_OK);
      expect(r.status).toBe(0);
    },
  );
});

describe('/release_setup.sh under dash and busybox sh', () => {
  /** Image directories keyed by the shell that is /bin/sh and whether bash is in the image. */
  const images = new Map<string, string>();
  const image = (shell: 'dash' | 'busybox', withBash: boolean): string => {
    const key = `${shell}${withBash ? '+bash' : ''}`;
    let dir = images.get(key);
    if (dir) return dir;
    dir = path.join(work, `img-${key}`);
    if (!images.has('dash')) images.set('dash', build(bare, path.join(work, 'img-dash'), 'dir'));
    if (key !== 'dash') {
      fs.cpSync(images.get('dash')!, dir, { recursive: true, verbatimSymlinks: true });
      if (shell === 'busybox') copyInto(dir, realCommand('busybox'), '/bin/sh');
      if (withBash) {
        // bash, and dirname for the release's `$(dirname ${BASH_SOURCE[0]})`, as a base with bash has.
        copyInto(dir, realCommand('bash'), '/bin/bash');
        copyInto(dir, realCommand('dirname'), '/bin/dirname');
        for (const lib of sharedLibraries(realCommand('bash'))) if (!lexists(path.join(dir, lib))) copyInto(dir, fs.realpathSync(lib), lib);
      }
    }
    expect(fs.existsSync(path.join(dir, 'bin/bash'))).toBe(withBash);
    expect(fs.readFileSync(path.join(dir, 'bin/sh')).equals(fs.readFileSync(realCommand(shell === 'dash' ? 'dash' : 'busybox')))).toBe(true);
    images.set(key, dir);
    return dir;
  };
  /** Runs `script` with the image's /bin/sh in a chroot. */
  const inImage = (dir: string, script: string) => spawnSync('chroot', [dir, '/bin/sh', '-c', script], { encoding: 'utf8', env: PATH_ENV });

  const shells = ['dash', ...(canRun(hasCommand('busybox'), 'busybox sh tests', 'needs busybox (Debian: busybox-static)') ? ['busybox' as const] : [])] as const;
  describe.runIf(canRun(isRoot, 'release_setup.sh in a chroot', 'needs root'))('in a chroot', () => {
    it.each(shells)('%s without bash: sets up a POSIX release, and the release binary runs', (shell) => {
      const dir = image(shell, false);
      const version = inImage(dir, 'echo "${BASH_VERSION:-no bash}"');
      expect(version.stdout).toBe('no bash\n');
      const r = inImage(dir, `${RUN_ANALYSISBASE} && echo "$AtlasProject $SHRINKWRAP_RELEASE_SETUP_DONE"`);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${XAODDUMP_OK}AnalysisBase 1\n`);
      // A second call does nothing, and succeeds.
      const twice = inImage(dir, `${RUN_ANALYSISBASE} && . /release_setup.sh && echo again`);
      expect(twice.stdout).toBe(`${XAODDUMP_OK}again\n`);
    });

    it.each(shells)('%s without bash: a bash-only release setup (AthAnalysis, BASH_SOURCE) fails in one line, the shell lives on', (shell) => {
      const r = inImage(image(shell, false), '. /release_setup.sh; echo "status $? ${AthAnalysis_DIR:-unset}"');
      expect(r.stdout).toBe('status 1 unset\n');
      expect(r.stderr).toMatch(/[Bb]ad substitution/);
      expect(r.stderr).toMatch(/release_setup\.sh: the release setup failed under this shell, and the image has no bash/);
    });

    it.each(shells)('%s with bash in the image: the bash-only setup runs in bash, says so, and its variables arrive intact', (shell) => {
      const dir = image(shell, true);
      // A value with a single quote, a newline, $ and a backslash survives the trip through bash.
      const odd = "it's $HOME \\ \"q\"\nline 2";
      const r = spawnSync('chroot', [dir, '/bin/sh', '-c', '. /release_setup.sh && printf "%s|%s|%s" "$AthAnalysis_DIR" "$LD_LIBRARY_PATH" "$ODD"'], {
        encoding: 'utf8',
        env: { ...PATH_ENV, ODD: odd },
      });
      expect(r.stderr).toBe('release_setup.sh: this shell is not bash: the release setup runs in bash, its exported variables are taken over\n');
      const [dirVar, ldPath, oddBack] = r.stdout.split('|');
      // bash's BASH_SOURCE located the release where it sits in the image.
      expect(dirVar).toBe('/cvmfs/atlas.cern.ch/repo/sw/software/21.2/AthAnalysis/21.2.75/InstallArea/x86_64-slc6-gcc62-opt');
      expect(ldPath).toMatch(/^\/cvmfs\/.*AthAnalysis\/21\.2\.75\/InstallArea\/x86_64-slc6-gcc62-opt\/lib:/);
      expect(oddBack).toBe(odd);
      expect(r.status).toBe(0);
      // The POSIX release runs the same way through bash.
      expect(inImage(dir, RUN_ANALYSISBASE).stdout).toBe(XAODDUMP_OK);
    });

    it('bash itself sources the chain in place, silently', () => {
      const r = spawnSync('chroot', [image('dash', true), '/bin/bash', '-c', '. /release_setup.sh && f() { :; } && echo "$AthAnalysis_DIR"'], { encoding: 'utf8', env: PATH_ENV });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/AthAnalysis\/21\.2\.75\/InstallArea\/x86_64-slc6-gcc62-opt\n$/);
    });
  });

  it.each(shells)('parses with %s -n (no bashisms in what shrinkwrap writes)', (shell) => {
    const dir = image('dash', false);
    const args = shell === 'busybox' ? ['sh', '-n', path.join(dir, 'release_setup.sh')] : ['-n', path.join(dir, 'release_setup.sh')];
    const r = spawnSync(shell, args, { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function realCommand(cmd: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return fs.realpathSync(r.stdout.trim());
}

/** Host paths of the shared libraries `exe` loads (a static executable has none). */
function sharedLibraries(exe: string): string[] {
  const out = spawnSync('ldd', [exe], { encoding: 'utf8' }).stdout;
  return [...out.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g)].map((m) => m[1]!);
}

/** Copies a host file to `abs` in the image directory, through the image's own symlinks (bin -> usr/bin). */
function copyInto(dir: string, from: string, abs: string): void {
  const dest = path.join(dir, abs);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.rmSync(dest, { force: true });
  fs.copyFileSync(from, dest);
  fs.chmodSync(dest, 0o755);
}

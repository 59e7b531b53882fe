// The real consumers of our images, driven the way a site would drive them.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const UTC = { ...process.env, TZ: 'UTC', LC_ALL: 'C' };

export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: UTC, maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout.slice(-2000)}`);
  return r.stdout;
}

/** `unsquashfs -s` as key: value pairs (plus the raw text). */
export function superblockInfo(img: string): { text: string; get: (key: string) => string | undefined } {
  const text = run('unsquashfs', ['-s', img]);
  return {
    text,
    get: (key) => {
      const m = new RegExp(`^${key}[ :]+(.*)$`, 'm').exec(text);
      return m?.[1]?.trim();
    },
  };
}

/**
 * A listing that every consumer can produce and compare: type, permissions, owner, size of files,
 * mtime, link count of non-directories, link target, path. Sorted. `find` runs on an extracted or
 * mounted tree; `rel` is the subtree to list.
 */
export function findListing(top: string, opts: { nlink?: boolean } = {}): string[] {
  const fmt = `%y %m %U:%G %s %T@ ${opts.nlink === false ? '' : '%n '}%l|%P\\n`;
  return execFileSync('find', ['.', '-printf', fmt], { cwd: top, encoding: 'latin1', maxBuffer: 1 << 28 })
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      // Directory sizes and link counts depend on the file system, not on the image.
      if (l.startsWith('d ')) return l.replace(/^(d \S+ \S+) \d+ (\S+) (\d+ )?/, '$1 - $2 ');
      // Device sizes are 0 everywhere; sockets and fifos too.
      return l;
    })
    .sort();
}

/**
 * `unsquashfs -lln` as "perms uid/gid size mtime path[ -> target]", the squashfs-root prefix cut,
 * devices as "major,minor", and directory sizes (SquashFS listing sizes) as "-".
 */
export function unsquashfsListing(img: string): string[] {
  return run('unsquashfs', ['-lln', img])
    .split('\n')
    .filter((l) => l.includes('squashfs-root'))
    .map((l) =>
      l
        .replace(/ +/g, ' ')
        .replace(/^([cb]\S+ \S+ \d+), (\d+)/, '$1,$2')
        .replace(/^(d\S+ \S+) \d+/, '$1 -')
        .replace(' squashfs-root', ' /')
        .replace(' //', ' /'),
    )
    .sort();
}

export function mounted<T>(mount: (mnt: string) => void, unmount: (mnt: string) => void, work: string, fn: (mnt: string) => T): T {
  const mnt = fs.mkdtempSync(path.join(work, 'mnt-'));
  mount(mnt);
  try {
    return fn(mnt);
  } finally {
    unmount(mnt);
    fs.rmdirSync(mnt);
  }
}

export function withKernelMount<T>(img: string, work: string, fn: (mnt: string) => T): T {
  return mounted(
    (m) => run('mount', ['-t', 'squashfs', '-o', 'loop,ro', img, m]),
    (m) => run('umount', [m]),
    work,
    fn,
  );
}

export function withSquashfuse<T>(img: string, work: string, fn: (mnt: string) => T): T {
  return mounted(
    (m) => run('squashfuse', [img, m]),
    (m) => run('fusermount3', ['-u', m]),
    work,
    fn,
  );
}

/** Can this machine loop-mount a squashfs image (root, loop devices, the squashfs module)? */
export function canKernelMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  return fs.existsSync('/dev/loop-control') && fs.readFileSync('/proc/filesystems', 'utf8').includes('squashfs');
}

export function canFuse(): boolean {
  return fs.existsSync('/dev/fuse') && spawnSync('sh', ['-c', 'command -v squashfuse && command -v fusermount3'], { stdio: 'ignore' }).status === 0;
}

/** `diff -r --no-dereference` of two trees: '' when equal, else what differs. FIFOs and device nodes
 *  (named fifo, dev-*) are left to find listings and lstat: GNU diff reports two of them as different. */
/**
 * The files of an image that record where its inputs were and the command (provenance.json, and
 * Apptainer's definition and labels): two builds of the same content from inputs given otherwise
 * differ there and nowhere else.
 */
export const RECORDS_INPUTS = ['provenance.json', 'Singularity', 'labels.json'];

export function diffTrees(a: string, b: string, exclude: string[] = []): string {
  const r = spawnSync('diff', ['-r', '--no-dereference', '-x', 'fifo', '-x', 'dev-*', ...exclude.flatMap((x) => ['-x', x]), a, b], { encoding: 'latin1', maxBuffer: 1 << 26 });
  if (r.status === 0) return '';
  return (r.stdout + r.stderr).slice(0, 4000) || `diff exited ${r.status}`;
}

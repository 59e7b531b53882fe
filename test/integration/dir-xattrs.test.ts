// Issue 17, case 22: extended attributes of directory sources. A base root filesystem's
// security.capability (ping) and user.* attributes reach every format; a /cvmfs tree's real
// attributes do too, CVMFS's magic ones (user.hash, user.pid, …) never; `plan` says what was done.
// Each build runs twice: with the reader this machine has (the native binding when installed) and
// with the getfattr fallback forced.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shrinkwrap } from '../helpers/cli.js';
import { canFuse, withSquashfuse } from '../helpers/consumers.js';
import { canRun, hasCommand, isRoot } from '../helpers/env.js';
import { makeTree, tmpDir, writeSpec } from '../helpers/tree.js';

// security.capability for cap_net_raw+ep (what ping carries), as getfattr -e hex prints it.
const CAP = '0x0100000200200000000000000000000000000000';
const tools = isRoot && ['getfattr', 'setfattr', 'unsquashfs', 'tar'].every(hasCommand);

let work: string;
let base: string;
let cvmfs: string;
let spec: string;
const NOT_UTF8 = Buffer.from('caf\xe9', 'latin1');

function sh(cmd: string, cwd = work): string {
  return execFileSync('sh', ['-c', cmd], { cwd, encoding: 'latin1', maxBuffer: 1 << 28 });
}

function setfattr(p: string | Buffer, name: string, value: string): void {
  // Through the shell for the name that is not UTF-8 (execFileSync arguments are text).
  const target = typeof p === 'string' ? `'${p}'` : `"$(printf '${[...p].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('')}')"`;
  sh(`setfattr -h -n '${name}' -v '${value}' ${target}`);
}

/** getfattr --dump of a tree, as `relative-path name=value` lines, sorted. */
function attributes(root: string): string[] {
  const out = sh(`getfattr -R -P -h --absolute-names -d -m - -e hex . 2>/dev/null || true`, root);
  const lines: string[] = [];
  let file = '';
  for (const l of out.split('\n')) {
    if (l.startsWith('# file: ')) file = l.slice(8).replace(/^\.\/?/, '/');
    else if (l !== '') lines.push(`${file} ${l}`);
  }
  return lines.sort();
}

function build(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = shrinkwrap(['--cvmfs-root', cvmfs, '--spec', spec, ...args], { cwd: work, env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000', ...env } });
  if (r.code !== 0) throw new Error(`shrinkwrap ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

const READERS: Array<[string, NodeJS.ProcessEnv]> = [
  ['default reader', {}],
  ['getfattr fallback', { SHRINKWRAP_XATTRS: 'getfattr' }],
];

// What the base and the /cvmfs tree must bring into every image.
const EXPECTED_BASE = [
  `/bin/ping security.capability=${CAP}`,
  '/etc/conf user.origin=0x62617365',
  '/opt user.dir=0x796573',
  `/opt/${NOT_UTF8.toString('latin1')} user.name=0x6e6f74207574662d38`,
];
const EXPECTED_CVMFS = ['/cvmfs/repo.test/sw/lib.so user.foo=0x7265616c', '/cvmfs/repo.test/sw user.dirattr=0x31'];

beforeAll(() => {
  if (!tools) return;
  work = tmpDir('sw-dxattr-');
  base = makeTree(path.join(work, 'base'), {
    'bin/ping': { file: 'ping', mode: 0o755 },
    'etc/conf': 'x',
    'opt/plain': 'y',
    'etc/link': { link: 'conf' },
  });
  fs.writeFileSync(Buffer.concat([Buffer.from(path.join(base, 'opt') + '/'), NOT_UTF8]), 'z');
  setfattr(path.join(base, 'bin/ping'), 'security.capability', CAP);
  setfattr(path.join(base, 'etc/conf'), 'user.origin', 'base');
  setfattr(path.join(base, 'opt'), 'user.dir', 'yes');
  setfattr(Buffer.concat([Buffer.from(path.join(base, 'opt') + '/'), NOT_UTF8]), 'user.name', 'not utf-8');
  // The build host's SELinux label is not part of the image.
  setfattr(path.join(base, 'etc/conf'), 'security.selinux', 'system_u:object_r:etc_t:s0');

  cvmfs = makeTree(path.join(work, 'cvmfs'), { 'repo.test/sw/lib.so': 'lib', 'repo.test/sw/bin': 'bin' });
  setfattr(path.join(cvmfs, 'repo.test/sw/lib.so'), 'user.foo', 'real');
  // What a copy made with attributes (rsync -X) of a mounted repository carries: CVMFS's magic ones.
  setfattr(path.join(cvmfs, 'repo.test/sw/lib.so'), 'user.hash', 'da39a3ee5e6b4b0d3255bfef95601890afd80709');
  setfattr(path.join(cvmfs, 'repo.test/sw/bin'), 'user.pid', '4242');
  setfattr(path.join(cvmfs, 'repo.test/sw'), 'user.dirattr', '1');
  setfattr(path.join(cvmfs, 'repo.test/sw'), 'user.catalog_counters', 'self_regular,2');
  spec = writeSpec(work, 'repo.test.spec', ['/sw/*']);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.runIf(canRun(tools, 'directory xattr tests', 'root, getfattr/setfattr, unsquashfs and tar are needed'))('extended attributes of directory sources', () => {
  for (const [reader, env] of READERS) {
    it(`case 22 (${reader}): base and /cvmfs attributes reach dir, squashfs, oci and docker-archive; CVMFS magic and SELinux ones do not`, () => {
      const tag = env['SHRINKWRAP_XATTRS'] ?? 'default';
      const expected = [...EXPECTED_BASE, ...EXPECTED_CVMFS].sort();

      // --keep-setuid: file capabilities are left out of dir output by default (hostile-base-links.test.ts).
      build(['--base', base, '--format', 'dir', '--keep-setuid', '-o', `tree-${tag}`], env);
      expect(attributes(path.join(work, `tree-${tag}`))).toEqual(expected);

      build(['--base', base, '-o', `img-${tag}.sqfs`], env);
      sh(`unsquashfs -no-progress -d sq-${tag} img-${tag}.sqfs >/dev/null`);
      expect(attributes(path.join(work, `sq-${tag}`))).toEqual(expected);
      // Both readers make the same image (the default reader's ran first).
      if (tag !== 'default') expect(fs.readFileSync(path.join(work, `img-${tag}.sqfs`)).equals(fs.readFileSync(path.join(work, 'img-default.sqfs')))).toBe(true);

      build(['--base', base, '--format', 'oci', '-o', `oci-${tag}`], env);
      const layersDir = path.join(work, `oci-${tag}/blobs/sha256`);
      const index = JSON.parse(fs.readFileSync(path.join(work, `oci-${tag}/index.json`), 'utf8'));
      const manifest = JSON.parse(fs.readFileSync(path.join(layersDir, index.manifests[0].digest.slice(7)), 'utf8'));
      fs.mkdirSync(path.join(work, `ociroot-${tag}`));
      for (const l of manifest.layers) {
        sh(`gzip -dc < '${path.join(layersDir, l.digest.slice(7))}' | tar --xattrs --xattrs-include='*' -xpf - -C ociroot-${tag}`);
      }
      expect(attributes(path.join(work, `ociroot-${tag}`))).toEqual(expected);

      build(['--base', base, '--format', 'docker-archive', '-o', `docker-${tag}.tar`], env);
      fs.mkdirSync(path.join(work, `docker-${tag}`));
      sh(`tar -xf docker-${tag}.tar -C docker-${tag}`);
      const dm = JSON.parse(fs.readFileSync(path.join(work, `docker-${tag}/manifest.json`), 'utf8'));
      fs.mkdirSync(path.join(work, `dockerroot-${tag}`));
      for (const l of dm[0].Layers as string[]) {
        sh(`(gzip -dc < 'docker-${tag}/${l}' 2>/dev/null || cat 'docker-${tag}/${l}') | tar --xattrs --xattrs-include='*' -xpf - -C dockerroot-${tag}`);
      }
      expect(attributes(path.join(work, `dockerroot-${tag}`))).toEqual(expected);
    });
  }

  it('case 22: plan says what was done with attributes, per source', () => {
    // Without --xattrs, plan does not list the /cvmfs entries' attributes (a build does): it says so.
    const plain = shrinkwrap(['plan', '--base', base, '--cvmfs-root', cvmfs, '--spec', spec], { cwd: work });
    expect(plain.stdout.split('\n').filter((l) => l.startsWith('xattrs: /cvmfs'))).toEqual(['xattrs: /cvmfs/repo.test: not read (plan --xattrs reads them, as every build does)']);
    const r = shrinkwrap(['plan', '--xattrs', '--base', base, '--cvmfs-root', cvmfs, '--spec', spec], { cwd: work });
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('xattrs: '));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^xattrs: base .*: read \((native|getfattr)\); 4 entries keep attributes; left out: security\.selinux \(1\)$/);
    expect(lines[1]).toMatch(
      /^xattrs: \/cvmfs\/repo\.test: read \((native|getfattr)\), CVMFS magic attributes left out; 2 entries keep attributes; left out: user\.catalog_counters \(1\), user\.hash \(1\), user\.pid \(1\)$/,
    );
  });

  // A mounted repository is a FUSE file system where listing an entry's attributes is a round trip
  // to the daemon: CVMFS's catalog counters (user.repo_counters on the repository root) say whether
  // any entry has attributes. A squashfuse mount of a tree carrying such counters stands in for it.
  it.runIf(canRun(canFuse() && hasCommand('mksquashfs'), 'FUSE /cvmfs test', 'squashfuse, fusermount3 and mksquashfs are needed'))(
    'case 22: a FUSE-mounted repository whose catalog counters count no attributes is not listed; one whose counters do is, without magic ones',
    () => {
      const plan = (counters: string) => {
        const tree = makeTree(path.join(work, `fuse-src-${counters.length}`), { 'sw/lib.so': 'lib' });
        setfattr(tree, 'user.repo_counters', counters);
        setfattr(path.join(tree, 'sw/lib.so'), 'user.foo', 'real');
        setfattr(path.join(tree, 'sw/lib.so'), 'user.hash', 'da39a3ee');
        const img = path.join(work, `fuse-${counters.length}.sqfs`);
        sh(`mksquashfs '${tree}' '${img}' -quiet -noappend -xattrs >/dev/null`);
        const root = fs.mkdtempSync(path.join(work, 'fuse-cvmfs-'));
        const fuseSpec = writeSpec(work, 'fuse.repo.spec', ['/sw/*']);
        return withSquashfuse(img, work, (mnt) => {
          fs.symlinkSync(mnt, path.join(root, 'fuse.repo')); // a repository root may be a link to where it is mounted
          const r = shrinkwrap(['plan', '--xattrs', '--cvmfs-root', root, '--spec', fuseSpec], { cwd: work });
          expect(r.code).toBe(0);
          return r.stdout.split('\n').filter((l) => l.startsWith('xattrs: '));
        });
      };
      expect(plan('self_xattr,0\nsubtree_xattr,0\n')).toEqual([
        'xattrs: /cvmfs/fuse.repo: not read: a CVMFS mount whose catalog counters (user.repo_counters) count no entry with attributes',
      ]);
      const some = plan('self_regular,1\nself_xattr,1\nsubtree_xattr,0\n');
      expect(some).toHaveLength(1);
      expect(some[0]).toMatch(
        /^xattrs: \/cvmfs\/fuse\.repo: read \((native|getfattr); a CVMFS mount whose catalog counters count 1 entries with attributes\), CVMFS magic attributes left out; 1 entry keeps attributes; left out: user\.hash \(1\), user\.repo_counters \(1\)$/,
      );
    },
  );

  // Sibling: the dir writer never set attributes, so a tarball base's (kept in tar and SquashFS
  // output) were lost in dir output too.
  it('case 22 sibling: a rootfs tarball base\'s attributes reach the dir format', () => {
    sh(`tar --xattrs --xattrs-include='*' -C '${base}' -cf base.tar .`);
    build(['--base', path.join(work, 'base.tar'), '--format', 'dir', '--keep-setuid', '-o', 'tree-from-tar']);
    // GNU tar stores security.selinux too: a tarball's attributes are taken as stored.
    expect(attributes(path.join(work, 'tree-from-tar'))).toEqual([...EXPECTED_BASE, '/etc/conf security.selinux=0x73797374656d5f753a6f626a6563745f723a6574635f743a7330', ...EXPECTED_CVMFS].sort());
  });
});

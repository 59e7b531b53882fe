// A pull into a shared cache killed half-way leaves `.<blob>.shrinkwrap-tmp-<pid>-<random>` files:
// the next pull removes those of dead processes of the same user, and nothing else.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeBlobsDir } from '../../src/formats/oci-layout.js';
import { isRoot } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const work = tmpDir('sw-sweep-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A pid that was a process and is no more. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(String(r.stdout).trim());
}

describe('temporaries of killed pulls', () => {
  it('are swept from the blobs directory and the layout when their process is gone, and only those', () => {
    const layout = path.join(work, 'layout');
    const blobs = path.join(layout, 'blobs/sha256');
    fs.mkdirSync(blobs, { recursive: true });
    const dead = deadPid();
    const names = {
      deadBlob: `.${'a'.repeat(64)}.shrinkwrap-tmp-${dead}-0123abcd`,
      liveBlob: `.${'b'.repeat(64)}.shrinkwrap-tmp-${process.ppid}-0123abcd`,
      blob: 'c'.repeat(64),
      deadIndex: `.index.json.shrinkwrap-tmp-${dead}-89abcdef`,
    };
    fs.writeFileSync(path.join(blobs, names.deadBlob), 'partial');
    fs.writeFileSync(path.join(blobs, names.liveBlob), 'in progress');
    fs.writeFileSync(path.join(blobs, names.blob), 'whole');
    fs.writeFileSync(path.join(layout, names.deadIndex), '{');
    // Another user's leftover, and a link under such a name (removed as a link, never followed).
    const othersDead = `.${'d'.repeat(64)}.shrinkwrap-tmp-${dead}-deadbeef`;
    fs.writeFileSync(path.join(blobs, othersDead), 'theirs');
    if (isRoot) fs.chownSync(path.join(blobs, othersDead), 65534, 65534);
    const victim = path.join(work, 'victim');
    fs.writeFileSync(victim, 'keep');
    fs.symlinkSync(victim, path.join(blobs, `.${'e'.repeat(64)}.shrinkwrap-tmp-${dead}-feedf00d`));

    makeBlobsDir(layout);

    const left = fs.readdirSync(blobs).sort();
    expect(left).toContain(names.liveBlob);
    expect(left).toContain(names.blob);
    expect(left).not.toContain(names.deadBlob);
    expect(left.some((n) => n.includes('feedf00d'))).toBe(false);
    if (isRoot) expect(left).toContain(othersDead);
    expect(fs.readdirSync(layout)).not.toContain(names.deadIndex);
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep');
  });
});

// Small host trees for tests, described as a map from relative path to content.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type Node =
  | string // file content
  | { dir: true; mode?: number }
  | { link: string }
  | { hardlinkOf: string }
  | { fifo: true }
  | { file: string; mode: number };

export function tmpDir(prefix = 'sw-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Create `nodes` under `root` (parents made as needed, in the order given). */
export function makeTree(root: string, nodes: Record<string, Node>): string {
  for (const [rel, node] of Object.entries(nodes)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof node === 'string') fs.writeFileSync(p, node);
    else if ('dir' in node) fs.mkdirSync(p, { recursive: true, mode: node.mode ?? 0o755 });
    else if ('link' in node) fs.symlinkSync(node.link, p);
    else if ('hardlinkOf' in node) fs.linkSync(path.join(root, node.hardlinkOf), p);
    else if ('fifo' in node) execFileSync('mkfifo', [p]);
    else {
      fs.writeFileSync(p, node.file);
      fs.chmodSync(p, node.mode);
    }
  }
  return root;
}

export function writeSpec(dir: string, name: string, lines: string[]): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

// Loading the packages that back the codecs: once per thread, quietly, with their versions for
// the backend texts.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const nodeRequire = createRequire(import.meta.url);

/**
 * Run `load` and remove the process-wide 'uncaughtException'/'unhandledRejection' handlers it
 * installs: emscripten glue built for Node adds handlers that rethrow and print the module's whole
 * source; shrinkwrap reports errors itself, in one line.
 */
export async function withoutGlobalHandlers<T>(load: () => Promise<T>): Promise<T> {
  const emitter = process as NodeJS.EventEmitter;
  const events = ['uncaughtException', 'unhandledRejection'];
  const before = events.map((e) => emitter.listeners(e));
  try {
    return await load();
  } finally {
    events.forEach((e, i) => {
      for (const l of emitter.listeners(e)) if (!before[i]!.includes(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
    });
  }
}

const versions = new Map<string, string>();

/** Version of an installed package, found from its entry point (packages whose "exports" hide
 *  package.json included); '?' when it cannot be read. */
export function packageVersion(pkg: string): string {
  let v = versions.get(pkg);
  if (v === undefined) {
    v = '?';
    try {
      let dir = dirname(nodeRequire.resolve(pkg));
      for (let i = 0; i < 6; i++, dir = dirname(dir)) {
        try {
          const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
          if (json.name === pkg) {
            v = json.version ?? '?';
            break;
          }
        } catch {
          // no package.json at this level
        }
      }
    } catch {
      // not installed
    }
    versions.set(pkg, v);
  }
  return v;
}

export function resolvable(pkg: string): boolean {
  try {
    nodeRequire.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

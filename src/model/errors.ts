// Errors that reach the user. The CLI prints `message` on one line and exits with `exitCode`;
// anything else that escapes is a bug and is reported as an internal error.

/** Exit codes, documented in docs/usage.md. */
export const EXIT = {
  ok: 0,
  failed: 1, // the build ran and failed (I/O error, unreadable source, disk full)
  badInput: 2, // the inputs are wrong (usage, spec syntax, missing files, existing output)
  sigint: 130,
  sigterm: 143,
} as const;

export class ShrinkwrapError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'ShrinkwrapError';
  }
}

/** Wrong input: bad option, bad spec line, missing file. */
export class InputError extends ShrinkwrapError {
  constructor(message: string) {
    super(message, EXIT.badInput);
  }
}

/** The work itself failed. */
export class BuildError extends ShrinkwrapError {
  constructor(message: string) {
    super(message, EXIT.failed);
  }
}

/** One line describing a Node system error (`ENOENT: no such file or directory`) without its stack. */
export function describeSystemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e === 'object' && typeof e.code === 'string') {
    const text: Record<string, string> = {
      ENOENT: 'no such file or directory',
      EACCES: 'permission denied',
      EPERM: 'operation not permitted',
      ENOTDIR: 'not a directory',
      EISDIR: 'is a directory',
      EEXIST: 'already exists',
      ENOSPC: 'no space left on device',
      EROFS: 'read-only file system',
      ELOOP: 'too many levels of symbolic links',
      ENAMETOOLONG: 'file name too long',
      EMLINK: 'too many links',
      EXDEV: 'cross-device link',
      EIO: 'input/output error',
      ENOTEMPTY: 'directory not empty',
    };
    return `${text[e.code] ?? e.message.split('\n')[0]} (${e.code})`;
  }
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

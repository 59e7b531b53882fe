// The JSON document checker (src/util/json-check.ts): typed values back unchanged, or one line
// naming the document and the JSON path; and the reader that opens regular files only.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/model/errors.js';
import {
  any,
  arr,
  checkJson,
  digest,
  int,
  map,
  nullable,
  obj,
  oneOf,
  optional,
  parseJson,
  readJsonFile,
  readRegularFile,
  singleLine,
  size,
  str,
} from '../../src/util/json-check.js';
import { tmpDir } from '../helpers/tree.js';

const descriptor = obj({ mediaType: str, digest, size, annotations: optional(map(str)) });
const manifest = obj({ schemaVersion: optional(int), config: descriptor, layers: arr(descriptor) });
const D = `sha256:${'ab'.repeat(32)}`;

function message(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('did not throw');
}

describe('checkers', () => {
  it('return the value itself, unknown fields kept', () => {
    const doc = { schemaVersion: 2, extra: { a: 1 }, config: { mediaType: 'x', digest: D, size: 3 }, layers: [] };
    expect(checkJson(manifest, doc, 'm')).toBe(doc);
  });
  it.each([
    [{ config: null, layers: [] }, 'm: config: expected an object, got null'],
    [{ config: { mediaType: 'x', digest: D, size: 1 }, layers: [null] }, 'm: layers[0]: expected an object, got null'],
    [{ config: { mediaType: 'x', digest: D, size: '198' }, layers: [] }, 'm: config.size: expected a size (a whole number of bytes), got the string "198"'],
    [{ config: { mediaType: 'x', digest: D, size: -1 }, layers: [] }, 'm: config.size: expected a size'],
    [{ config: { mediaType: 'x', digest: D, size: 2 ** 53 }, layers: [] }, 'm: config.size: expected a size'],
    [{ config: { mediaType: 'x', digest: D }, layers: [] }, 'm: config.size: missing'],
    [{ config: { mediaType: 'x', digest: 'sha256:abc', size: 1 }, layers: [] }, 'm: config.digest: expected a sha256 digest (64 lowercase hex digits)'],
    [{ config: { mediaType: 'x', digest: 'nocolon', size: 1 }, layers: [] }, 'm: config.digest: expected a digest (algorithm:hex)'],
    [{ config: { mediaType: 'x', digest: D, size: 1, annotations: { 'a.b': 5 } }, layers: [] }, 'm: config.annotations["a.b"]: expected a string, got the number 5'],
    [{ config: { mediaType: 'x', digest: D, size: 1 }, layers: 'abc' }, 'm: layers: expected an array, got the string "abc"'],
    [null, 'm: expected an object, got null'],
    [[], 'm: expected an object, got an array'],
  ])('%j', (doc, expected) => {
    expect(message(() => checkJson(manifest, doc, 'm'))).toContain(expected);
  });
  it('own fields only: "constructor" is not found on the prototype', () => {
    expect(message(() => checkJson(obj({ constructor: str }), {}, 'd'))).toBe('d: constructor: missing');
  });
  it('nullable, oneOf, any', () => {
    expect(checkJson(obj({ a: nullable(arr(str)) }), { a: null }, 'd')).toEqual({ a: null });
    expect(message(() => checkJson(oneOf('a', 'b'), 'c', 'd'))).toBe('d: expected "a" or "b", got the string "c"');
    expect(checkJson(any, 5, 'd')).toBe(5);
  });
  it('values echoed in a message are one line and short', () => {
    const m = message(() => checkJson(int, `x\ny${'z'.repeat(100)}`, 'd'));
    expect(m).not.toContain('\n');
    expect(m).toContain('x\\ny');
    expect(m.length).toBeLessThan(120);
    expect(singleLine('a\r\n\t\u001b[31m\u2028')).toBe('a\\r\\n\\t\\u001b[31m\\u2028');
  });
  it('parseJson: not JSON names the document', () => {
    expect(message(() => parseJson('{', manifest, 'doc'))).toBe('doc: not valid JSON');
  });
});

describe('readRegularFile', () => {
  const dir = tmpDir('sw-json-check-');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  it('reads a regular file, through a link unless told not to follow', () => {
    fs.writeFileSync(path.join(dir, 'a.json'), '{"x":"y"}');
    fs.symlinkSync('a.json', path.join(dir, 'link.json'));
    expect(readJsonFile(path.join(dir, 'link.json'), obj({ x: str }), 'a', { limit: 100 }).value).toEqual({ x: 'y' });
    expect(message(() => readRegularFile(path.join(dir, 'link.json'), 'link', { limit: 100, noFollow: true }))).toMatch(/^link: is a symbolic link/);
  });
  it('refuses a FIFO without blocking, a device, a directory, and a file over the limit', () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    expect(message(() => readRegularFile(path.join(dir, 'fifo'), 'f', { limit: 100 }))).toBe('f: not a regular file (a FIFO)');
    expect(message(() => readRegularFile('/dev/zero', 'z', { limit: 100 }))).toBe('z: not a regular file (a character device)');
    expect(message(() => readRegularFile(dir, 'd', { limit: 100 }))).toBe('d: not a regular file (a directory)');
    fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(101));
    expect(message(() => readRegularFile(path.join(dir, 'big'), 'b', { limit: 100 }))).toBe('b: 101 bytes, more than the 100 allowed for this document');
    expect(message(() => readRegularFile(path.join(dir, 'none'), 'n', { limit: 100 }))).toBe('n: no such file or directory (ENOENT)');
  });
});

// parseImageLocation: the one reading of oci:, docker-archive: and docker:// for --base, --push and push.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/model/errors.js';
import { parseImageLocation } from '../../src/registry/reference.js';
import { tmpDir } from '../helpers/tree.js';

const dir = tmpDir('sw-location-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const ALL = ['path', 'oci', 'docker-archive', 'registry'] as const;

describe('parseImageLocation', () => {
  it('splits DIR:TAG only where DIR exists, and takes a directory with a colon whole', () => {
    fs.mkdirSync(path.join(dir, 'lay'));
    fs.mkdirSync(path.join(dir, 'with:colon'));
    expect(parseImageLocation(`oci:${dir}/lay`, '--base', ALL)).toMatchObject({ kind: 'oci', dir: `${dir}/lay`, tag: null });
    expect(parseImageLocation(`oci:${dir}/lay:t`, '--base', ALL)).toMatchObject({ kind: 'oci', dir: `${dir}/lay`, tag: 't' });
    expect(parseImageLocation(`oci:${dir}/with:colon`, 'push', ['oci'])).toMatchObject({ dir: `${dir}/with:colon`, tag: null });
    expect(parseImageLocation(`oci:${dir}/nothing:t`, 'push', ['oci'])).toMatchObject({ dir: `${dir}/nothing:t`, tag: null });
  });

  it('refuses an oci: tag with a colon (push took the tag after the last one)', () => {
    expect(() => parseImageLocation(`oci:${dir}/lay:a:b`, '--base', ALL)).toThrow(/--base oci:.*lay:a:b: tag 'a:b' contains ':'/);
  });

  it('keeps a docker-archive REF whole (REPO:TAG)', () => {
    fs.writeFileSync(path.join(dir, 'a.tar'), '');
    expect(parseImageLocation(`docker-archive:${dir}/a.tar:busybox:1`, '--base', ALL)).toMatchObject({ kind: 'docker-archive', file: `${dir}/a.tar`, ref: 'busybox:1' });
  });

  it('reads text without a prefix as a path for --base and as a registry reference elsewhere', () => {
    expect(parseImageLocation('rootfs.tar', '--base', ALL)).toMatchObject({ kind: 'path', path: 'rootfs.tar' });
    expect(parseImageLocation('busybox', '--push', ['registry']).reference).toMatchObject({ registry: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest' });
  });

  it('refuses a kind the option does not take, naming the forms it does', () => {
    expect(() => parseImageLocation('docker://h.io/a:1', 'push', ['oci'])).toThrow(new InputError('push docker://h.io/a:1: expected oci:DIR[:TAG] (an OCI image layout, as --format oci writes)'));
    expect(() => parseImageLocation('oci:x', '--push', ['registry'])).toThrow(new InputError('--push oci:x: expected docker://HOST/REPO:TAG'));
    expect(() => parseImageLocation('docker://UPPER/x', '--push', ['registry'])).toThrow(/--push docker:\/\/UPPER\/x: invalid image reference/);
  });
});

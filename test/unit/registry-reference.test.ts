// Image references (distribution's grammar, Docker Hub conventions) and where credentials come from.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InputError } from '../../src/model/errors.js';
import { credentialsFor } from '../../src/registry/auth.js';
import { parseImageReference } from '../../src/registry/reference.js';
import { tmpDir } from '../helpers/tree.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('parseImageReference', () => {
  it.each([
    ['ubuntu', 'registry-1.docker.io', 'library/ubuntu', 'latest', null],
    ['docker://ubuntu:22.04', 'registry-1.docker.io', 'library/ubuntu', '22.04', null],
    ['docker.io/ubuntu', 'registry-1.docker.io', 'library/ubuntu', 'latest', null],
    ['index.docker.io/atlas/analysisbase:21.2.75', 'registry-1.docker.io', 'atlas/analysisbase', '21.2.75', null],
    ['atlas/analysisbase', 'registry-1.docker.io', 'atlas/analysisbase', 'latest', null],
    ['docker://127.0.0.1:5000/x/y:v1', '127.0.0.1:5000', 'x/y', 'v1', null],
    ['localhost/x', 'localhost', 'x', 'latest', null],
    ['localhost:5000/a/b/c', 'localhost:5000', 'a/b/c', 'latest', null],
    ['registry.cern.ch/atlas/athena:24.0', 'registry.cern.ch', 'atlas/athena', '24.0', null],
    ['gitlab-registry.cern.ch/a_b/c__d/e-f.g', 'gitlab-registry.cern.ch', 'a_b/c__d/e-f.g', 'latest', null],
    [`docker://127.0.0.1:5000/x/y@${D}`, '127.0.0.1:5000', 'x/y', null, D],
    [`quay.io/x/y:v2@${D}`, 'quay.io', 'x/y', 'v2', D],
    [`ubuntu@${D}`, 'registry-1.docker.io', 'library/ubuntu', null, D],
    ['[::1]:5000/x:v', '[::1]:5000', 'x', 'v', null],
  ])('%s', (text, registry, repository, tag, digest) => {
    expect(parseImageReference(text)).toEqual({ registry, repository, tag, digest, text });
  });

  it.each([
    ['', 'empty'],
    ['docker://', 'empty'],
    ['Ubuntu', "repository 'Ubuntu' must be lowercase"],
    ['x/y:', "tag '' must be"],
    ['x/y:-v', "tag '-v' must be"],
    ['x/y@sha256:abc', "digest 'sha256:abc' is not sha256: followed by 64 lowercase hex digits"],
    [`x/y@md5:${'a'.repeat(32)}`, `digest 'md5:${'a'.repeat(32)}' is not sha256:`],
    ['127.0.0.1:5000/', 'no repository'],
    ['127.0.0.1:99999/x', 'port 99999 out of range'],
    ['host_name.example/x', "registry host 'host_name.example' is not a valid host name"],
    ['x//y', "repository component '' must be"],
    ['x/-y', "repository component '-y' must be"],
    ['x y', 'contains white space'],
    [`x/${'a'.repeat(260)}`, 'name longer than 255 characters'],
  ])('refuses %j', (text, why) => {
    const shown = text.startsWith('docker://') ? text : `docker://${text}`;
    expect(() => parseImageReference(text)).toThrow(InputError);
    expect(() => parseImageReference(text)).toThrow(`${shown}: invalid image reference: ${why}`);
  });
});

describe('credentialsFor', () => {
  const saved = { ...process.env };
  const homes: string[] = [];
  afterEach(() => {
    for (const h of homes.splice(0)) fs.rmSync(h, { recursive: true, force: true });
    for (const k of ['SHRINKWRAP_REGISTRY_AUTH', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'HOME']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const isolate = () => {
    const home = tmpDir('sw-creds-');
    homes.push(home);
    process.env['HOME'] = home;
    delete process.env['SHRINKWRAP_REGISTRY_AUTH'];
    delete process.env['REGISTRY_AUTH_FILE'];
    delete process.env['XDG_RUNTIME_DIR'];
    return home;
  };
  const auth = (u: string, p: string) => Buffer.from(`${u}:${p}`).toString('base64');

  it('--creds first, then SHRINKWRAP_REGISTRY_AUTH, then nothing', () => {
    isolate();
    expect(credentialsFor('h:5000', 'me:pa:ss')).toEqual({ username: 'me', password: 'pa:ss' });
    expect(credentialsFor('h:5000', undefined)).toBeNull();
    process.env['SHRINKWRAP_REGISTRY_AUTH'] = 'env:pw';
    expect(credentialsFor('h:5000', undefined)).toEqual({ username: 'env', password: 'pw' });
    expect(credentialsFor('h:5000', 'cli:pw')).toEqual({ username: 'cli', password: 'pw' });
    expect(() => credentialsFor('h:5000', 'nocolon')).toThrow('--creds: expected USER:PASSWORD');
  });

  it('auth files in order: REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, ~/.docker/config.json', () => {
    const home = isolate();
    fs.mkdirSync(path.join(home, '.docker'));
    fs.writeFileSync(
      path.join(home, '.docker/config.json'),
      JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: auth('hub', '1') }, 'h:5000': { auth: auth('docker', '2') } } }),
    );
    expect(credentialsFor('registry-1.docker.io', undefined)).toEqual({ username: 'hub', password: '1' });
    expect(credentialsFor('h:5000', undefined)).toEqual({ username: 'docker', password: '2' });
    expect(credentialsFor('other', undefined)).toBeNull();

    const xdg = path.join(home, 'run');
    fs.mkdirSync(path.join(xdg, 'containers'), { recursive: true });
    fs.writeFileSync(path.join(xdg, 'containers/auth.json'), JSON.stringify({ auths: { 'h:5000': { auth: auth('podman', '3') } } }));
    process.env['XDG_RUNTIME_DIR'] = xdg;
    expect(credentialsFor('h:5000', undefined)).toEqual({ username: 'podman', password: '3' });

    const file = path.join(home, 'auth.json');
    fs.writeFileSync(file, JSON.stringify({ auths: { 'https://h:5000': { username: 'file', password: '4' } } }));
    process.env['REGISTRY_AUTH_FILE'] = file;
    expect(credentialsFor('h:5000', undefined)).toEqual({ username: 'file', password: '4' });

    fs.writeFileSync(file, '{not json');
    expect(() => credentialsFor('h:5000', undefined)).toThrow(`${file}: not valid JSON`);
  });
});

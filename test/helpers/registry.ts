// A throwaway distribution registry (Debian's docker-registry 2.8) on loopback, on a free port, with
// its data in a temporary directory. It runs as the test's user; as root that works as is (the
// Debian unit's User=docker-registry is only a precaution of the service).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpDir } from './tree.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface Registry {
  /** 127.0.0.1:PORT */
  host: string;
  dir: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts the registry. `config` is extra YAML appended to the configuration (an `auth:` section);
 * `tls` serves https with that certificate and key.
 */
export async function startRegistry(opts: { config?: string; tls?: { cert: string; key: string } } = {}): Promise<Registry> {
  const dir = tmpDir('sw-registry-');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const yaml = [
    'version: 0.1',
    'log: {level: warn}',
    `storage: {filesystem: {rootdirectory: ${path.join(dir, 'data')}}, delete: {enabled: true}}`,
    `http:`,
    `  addr: ${host}`,
    `  secret: shrinkwrap-test`,
    ...(opts.tls ? [`  tls: {certificate: ${opts.tls.cert}, key: ${opts.tls.key}}`] : []),
    opts.config ?? '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'config.yml'), yaml + '\n');
  const log = fs.openSync(path.join(dir, 'registry.log'), 'w');
  const child = spawn(REGISTRY_BIN, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForV2(host, !!opts.tls, child, dir);
  return {
    host,
    dir,
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls GET /v2/ until it answers (any status: an auth registry says 401). */
async function waitForV2(host: string, tls: boolean, child: ChildProcess, dir: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${fs.readFileSync(path.join(dir, 'registry.log'), 'utf8')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const lib = tls ? https : http;
      const req = lib.get(`${tls ? 'https' : 'http'}://${host}/v2/`, { rejectUnauthorized: false, agent: false }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${host}: ${fs.readFileSync(path.join(dir, 'registry.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Headless Chromium driven over the DevTools protocol, for the report's browser tests. Node 20 has
// no global WebSocket, so this holds a minimal client (RFC 6455: handshake, masked text frames out,
// unmasked frames in, no extensions) over `net`. Chromium is stopped by its pid.
import { type ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A WebSocket client of text messages. */
class Socket {
  private buf = Buffer.alloc(0);
  private onMessage: (text: string) => void = () => {};

  private constructor(private readonly sock: net.Socket) {}

  static open(url: string): Promise<Socket> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const sock = net.connect(Number(u.port), u.hostname);
      const key = crypto.randomBytes(16).toString('base64');
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      let head = Buffer.alloc(0);
      const onHead = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onHead);
        if (!/^HTTP\/1\.1 101/.test(head.toString('latin1', 0, end))) return reject(new Error(`no WebSocket upgrade: ${head.toString('latin1', 0, end)}`));
        const ws = new Socket(sock);
        sock.on('data', (c: Buffer) => ws.receive(c));
        ws.receive(head.subarray(end + 4));
        resolve(ws);
      };
      sock.on('data', onHead);
    });
  }

  listen(fn: (text: string) => void): void {
    this.onMessage = fn;
  }

  send(text: string): void {
    const payload = Buffer.from(text);
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : len < 65536 ? Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255]) : Buffer.concat([Buffer.from([0x81, 0x80 | 127]), bigLength(len)]);
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ mask[i & 3]!;
    this.sock.write(Buffer.concat([header, mask, masked]));
  }

  /** Frames from the server: unmasked; a message may span continuation frames. */
  private parts: Buffer[] = [];
  private receive(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0]! & 0x80) !== 0;
      const op = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (op === 0x8) return this.sock.end();
      if (op === 0x1 || op === 0x0) {
        this.parts.push(Buffer.from(payload));
        if (fin) {
          const text = Buffer.concat(this.parts).toString('utf8');
          this.parts = [];
          this.onMessage(text);
        }
      }
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A page in a headless Chromium, and the protocol calls the tests need. */
export class Browser {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly proc: ChildProcess,
    private readonly ws: Socket,
    private readonly profile: string,
  ) {
    ws.listen((text) => {
      const msg = JSON.parse(text);
      const w = msg.id !== undefined ? this.waiting.get(msg.id) : undefined;
      if (!w) return;
      this.waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(`${msg.error.message}`));
      else w.resolve(msg.result);
    });
  }

  /** Start Chromium (extra flags, e.g. JavaScript off) and attach to its first page. */
  static async start(extraFlags: string[] = []): Promise<Browser> {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-chromium-'));
    const proc = spawn(CHROMIUM, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-port=0', '--window-size=1280,900', ...extraFlags, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    try {
      const wsUrl = await new Promise<string>((resolve, reject) => {
        let err = '';
        const timer = setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), 30_000);
        proc.stderr!.on('data', (c: Buffer) => {
          err += c.toString();
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        proc.once('exit', (code) => reject(new Error(`chromium exited (${code}): ${err}`)));
      });
      // The browser's endpoint; find the page target and talk to it.
      const port = new URL(wsUrl).port;
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ type: string; webSocketDebuggerUrl: string }>;
      const page = targets.find((t) => t.type === 'page')!;
      const ws = await Socket.open(page.webSocketDebuggerUrl);
      return new Browser(proc, ws, profile);
    } catch (err) {
      if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      throw err;
    }
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  /** A JavaScript expression's value in the page. */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  async open(url: string, ready = 'document.readyState === "complete"'): Promise<void> {
    await this.send('Page.navigate', { url });
    for (let i = 0; i < 200; i++) {
      if (await this.eval<boolean>(ready).catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${url}: not ready (${ready})`);
  }

  /** A real mouse click at the centre of the element `selector` finds. */
  async click(selector: string): Promise<void> {
    const box = await this.eval<{ x: number; y: number } | null>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)}); if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); return { x: r.left + Math.min(r.width / 2, 40), y: r.top + Math.min(r.height / 2, 10) }; })()`,
    );
    if (!box) throw new Error(`no element ${selector}`);
    for (const type of ['mousePressed', 'mouseReleased']) await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
  }

  /** A key pressed and released, as the keyboard sends it (to whatever has the focus). */
  async key(key: 'Enter' | 'Escape' | 'Tab' | 'ArrowRight'): Promise<void> {
    const codes = { Enter: 13, Escape: 27, Tab: 9, ArrowRight: 39 } as const;
    const base = { key, code: key, windowsVirtualKeyCode: codes[key], nativeVirtualKeyCode: codes[key] };
    await this.send('Input.dispatchKeyEvent', { type: 'keyDown', ...base, ...(key === 'Enter' ? { text: '\r' } : {}) });
    await this.send('Input.dispatchKeyEvent', { type: 'keyUp', ...base });
  }

  async screenshot(file: string): Promise<void> {
    const r = await this.send('Page.captureScreenshot', { format: 'png' });
    fs.writeFileSync(file, Buffer.from(r.data, 'base64'));
  }

  /** Kill Chromium (by its process group's id) and remove its profile once it has exited. */
  async stop(): Promise<void> {
    this.ws.close();
    const exited = new Promise((r) => (this.proc.exitCode !== null || this.proc.signalCode !== null ? r(null) : this.proc.once('exit', r)));
    // Its own process group (detached): the renderer and helper processes go with it, by that id.
    process.kill(-this.proc.pid!, 'SIGKILL');
    await exited;
    fs.rmSync(this.profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

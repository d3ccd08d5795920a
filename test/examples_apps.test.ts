// The example apps, run as a DEA runs them (PORT and VCAP_APPLICATION set,
// started with the command the stager detects for them) and asked over HTTP
// and WebSocket.

import t from 'tap';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { create as createTar } from 'tar';
import WebSocket from 'ws';
import { isStagerFailure } from '../bus/messages';
import { staticServerSource } from '../control/stager/droplet';
import { freePort, isAlive, waitForPort, type TeardownHost } from './harness';
import { startStagerEnv } from './stager_harness';

const EXAMPLES = resolve(__dirname, '..', 'examples');

async function runApp(t: TeardownHost, dir: string, argv: string[], env: Record<string, string> = {}): Promise<number> {
  const port = await freePort();
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, PORT: String(port), ...env },
    stdio: 'ignore',
  });
  t.teardown(async () => {
    if (child.pid === undefined || !isAlive(child.pid)) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGKILL');
    await exited;
  });
  await waitForPort(port);
  return port;
}

function get(port: number, path = '/'): Promise<{ status: number; type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
    }).on('error', reject).end();
  });
}

const vcap = (index: number) => JSON.stringify({ name: 'x', instance_index: index });

t.test('hello-node says which instance answered', async (t) => {
  const dir = join(EXAMPLES, 'hello-node');
  const port = await runApp(t, dir, [process.execPath, 'server.js'], { VCAP_APPLICATION: vcap(2) });
  t.equal((await get(port)).body.toString(), 'Hello from hello-node, instance 2\n');
  const fallback = await runApp(t, dir, [process.execPath, 'server.js'], { CF_INSTANCE_INDEX: '5' });
  t.equal((await get(fallback)).body.toString(), 'Hello from hello-node, instance 5\n');
});

t.test('hello-python says which instance answered', async (t) => {
  const port = await runApp(t, join(EXAMPLES, 'hello-python'), ['python3', 'app.py'], { VCAP_APPLICATION: vcap(1) });
  const reply = await get(port);
  t.equal(reply.status, 200);
  t.equal(reply.body.toString(), 'Hello from hello-python, instance 1\n');
});

t.test('static-site: page, stylesheet and image, served by the static server', async (t) => {
  const dir = join(EXAMPLES, 'static-site');
  const port = await runApp(t, dir, [process.execPath, staticServerSource()], { SKIFF_STATIC_ROOT: dir });
  const page = await get(port);
  t.equal(page.type, 'text/html; charset=utf-8');
  const html = page.body.toString();
  t.match(html, /<link rel="stylesheet" href="style\.css">/);
  t.equal((await get(port, '/style.css')).type, 'text/css; charset=utf-8');
  const png = await get(port, '/skiff.png');
  t.equal(png.type, 'image/png');
  t.same(png.body, readFileSync(join(dir, 'skiff.png')));
  t.match(html, /src="skiff\.png"/);
});

function connect(port: number): Promise<{ ws: WebSocket; messages: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`);
    const messages: string[] = [];
    ws.on('message', (data) => messages.push(data.toString()));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('chat-ws: serves its page and broadcasts each message to every client', async (t) => {
  const port = await runApp(t, join(EXAMPLES, 'chat-ws'), [process.execPath, 'server.js'], { VCAP_APPLICATION: vcap(0) });
  const page = await get(port);
  t.equal(page.type, 'text/html; charset=utf-8');
  t.match(page.body.toString(), /new WebSocket\(scheme \+ location\.host \+ '\/chat'\)/);
  t.equal((await get(port, '/chat')).status, 426, 'plain HTTP to the socket path');

  const alice = await connect(port);
  const bob = await connect(port);
  t.teardown(() => {
    alice.ws.terminate();
    bob.ws.terminate();
  });
  alice.ws.send('hello from alice');
  await until(() => bob.messages.length === 1 && alice.messages.length === 1, 'the broadcast');
  t.same(bob.messages, ['hello from alice']);
  t.same(alice.messages, ['hello from alice'], 'the sender sees its own message');

  const big = 'x'.repeat(70_000 - 10_000); // 16-bit and 64-bit lengths both parse
  bob.ws.send(big);
  await until(() => alice.messages.length === 2, 'a 60 kB message');
  t.equal(alice.messages[1], big);

  const pong = new Promise<Buffer>((resolve) => alice.ws.once('pong', resolve));
  alice.ws.ping('are you there');
  t.equal((await pong).toString(), 'are you there', 'ping answered with its payload');

  const closed = new Promise<[number, string]>((resolve) => bob.ws.once('close', (code, reason) => resolve([code, reason.toString()])));
  bob.ws.close(4000, 'bye');
  t.same(await closed, [4000, ''], 'the close code is echoed');

  const tooBig = await connect(port);
  const refused = new Promise<number>((resolve) => tooBig.ws.once('close', (code) => resolve(code)));
  tooBig.ws.send('y'.repeat(70_000));
  t.equal(await refused, 1009, 'a message over 64 KiB closes with 1009');
});

t.test('each example is pushable as-is: the stager detects it', async (t) => {
  const env = await startStagerEnv(t);
  const expected: Record<string, object> = {
    'hello-node': { runtime: 'node', start_command: 'node server.js' },
    'hello-python': { runtime: 'python', start_command: 'python3 app.py' },
    'static-site': { runtime: 'static', start_command: 'node .skiff/static-server.js' },
    'chat-ws': { runtime: 'node', start_command: 'node server.js' },
  };
  for (const [name, wanted] of Object.entries(expected)) {
    const chunks: Buffer[] = [];
    const pack = createTar({ gzip: true, cwd: EXAMPLES, portable: true }, [name]) as unknown as Readable;
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    const { reply } = await env.stage(`example-${name}`, Buffer.concat(chunks));
    if (isStagerFailure(reply)) throw new Error(`${name}: ${reply.error}`);
    t.match(reply, wanted, name);
    t.notMatch(reply.log, /Installing/, `${name} needs nothing installed`);
  }
});

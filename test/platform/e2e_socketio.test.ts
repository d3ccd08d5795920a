// examples/chat-socketio on `skiff up`, two instances, its socket.io driven
// by hand through the router the way a browser's socket.io client does it:
// Engine.IO v4 long-polling (handshake, CONNECT, polls, events) and then the
// WebSocket upgrade, each session with its own cookie jar. Without session
// affinity the polls of a session land on both instances and the one that
// does not hold the session answers 400 "Session ID unknown"; with it every
// request of every session succeeds, and sessions are spread over both.
// Turning affinity on for the running app works without a restart.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { WebSocket } from 'ws';
import { skiff, tempHome } from '../cli_harness';
import { eventually } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const EXAMPLE = join(__dirname, '..', '..', 'examples', 'chat-socketio');
/** Engine.IO v4 separates the packets of one polling payload with a record separator. */
const SEPARATOR = '\x1e';
/** A poll that has nothing to say waits for the ping interval (25 s); a test poll that waits this long has failed. */
const POLL_TIMEOUT_MS = 10_000;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One Engine.IO session as a browser holds it: the host it talks to, its cookie jar, its sid. */
class Session {
  readonly cookies = new Map<string, string>();
  sid = '';
  /** Statuses and bodies of every request, in order. */
  readonly log: Array<{ what: string; status: number; body: string }> = [];
  /** Packets received and not yet taken. */
  private inbox: string[] = [];

  constructor(
    private readonly port: number,
    readonly host: string,
  ) {}

  get cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  request(method: 'GET' | 'POST', query: string, body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { host: this.host };
      if (this.cookies.size > 0) headers.cookie = this.cookieHeader;
      if (body !== undefined) headers['content-type'] = 'text/plain;charset=UTF-8';
      const req = http.request({ host: '127.0.0.1', port: this.port, method, path: `/socket.io/?EIO=4&transport=polling${query}`, headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          for (const cookie of res.headers['set-cookie'] ?? []) {
            const pair = cookie.split(';')[0]!;
            const eq = pair.indexOf('=');
            this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
          }
          this.log.push({ what: `${method} ${body ?? (query || 'handshake')}`, status: res.statusCode ?? 0, body: text });
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
      });
      req.setTimeout(POLL_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${query} had no answer within ${POLL_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** The handshake: Engine.IO OPEN (`0{"sid",...}`). */
  async open(): Promise<Reply> {
    const reply = await this.request('GET', '');
    if (reply.status === 200 && reply.body.startsWith('0')) this.sid = (JSON.parse(reply.body.slice(1)) as { sid: string }).sid;
    return reply;
  }

  /** Sends packets (`40` connect, `42[...]` an event); the server answers "ok". */
  send(packet: string): Promise<Reply> {
    return this.request('POST', `&sid=${this.sid}`, packet);
  }

  /** One poll; its packets go to the inbox. */
  async poll(): Promise<Reply> {
    const reply = await this.request('GET', `&sid=${this.sid}`);
    if (reply.status === 200) this.inbox.push(...reply.body.split(SEPARATOR));
    return reply;
  }

  /** Polls until a packet starting with `prefix` has come (answering pings), and takes it. */
  async receive(prefix: string): Promise<string> {
    for (let polls = 0; polls < 5; polls++) {
      const at = this.inbox.findIndex((p) => p.startsWith(prefix));
      if (at !== -1) return this.inbox.splice(at, 1)[0]!;
      if (this.inbox.includes('2')) {
        this.inbox = this.inbox.filter((p) => p !== '2');
        await this.send('3');
      }
      const reply = await this.poll();
      if (reply.status !== 200) throw new Error(`poll for ${prefix}: ${reply.status} ${reply.body}`);
    }
    throw new Error(`no ${prefix} packet in 5 polls (got ${JSON.stringify(this.inbox)})`);
  }

  get failures(): Array<{ what: string; status: number; body: string }> {
    return this.log.filter((entry) => entry.status !== 200);
  }
}

/**
 * A socket.io client's first steps: handshake, CONNECT to the main
 * namespace, its acknowledgement, the app's hello (which names the instance).
 * Stops at the first refused request: that is what a browser would see too.
 */
async function connectSession(session: Session): Promise<number | undefined> {
  if ((await session.open()).status !== 200) return undefined;
  if ((await session.send('40')).status !== 200) return undefined;
  try {
    await session.receive('40');
    const hello = await session.receive('42["hello"');
    return (JSON.parse(hello.slice(2)) as [string, { instance: number }])[1].instance;
  } catch {
    return undefined;
  }
}

t.test('socket.io long-polling over two instances works with session affinity, and only with it', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-socketio-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 170_000);
  await eventually(() => platform.out().includes('router: '), 'skiff up to print its router line', 60_000);
  const run = async (args: string[], what: string): Promise<string> => {
    const result = await skiff(args, home);
    t.equal(result.code, 0, `${what} (stderr: ${result.stderr.trim().split('\n').slice(-3).join(' | ')})`);
    return result.stdout;
  };

  // The manifest asks for two instances with affinity; the same app is pushed again without it.
  const pushed = await run(['push', EXAMPLE], 'push chat-socketio');
  t.match(pushed, /Installing Node\.js dependencies/, 'express and socket.io come from npm at staging');
  t.match(await run(['app', 'chat-socketio'], 'skiff app'), /^session affinity:\s+on$/m, 'skiff app shows it');
  await run(['push', EXAMPLE, '--name', 'chat-plain', '--no-session-affinity'], 'push chat-plain --no-session-affinity');
  t.match(await run(['app', 'chat-plain'], 'skiff app'), /^session affinity:\s+off$/m, 'the flag wins over the manifest');
  for (const name of ['chat-socketio', 'chat-plain']) t.match(await run(['app', name], `skiff app ${name}`), /^instances:\s+2\/2$/m, `${name} runs two instances`);

  const page = await new Session(ports.router, 'chat-socketio.localhost').request('GET', '');
  t.equal(page.status, 200, 'socket.io answers its handshake through the router');

  await t.test('without affinity, a session meets the instance that does not know it', async (t) => {
    const sessions = [0, 1, 2].map(() => new Session(ports.router, 'chat-plain.localhost'));
    for (const session of sessions) await connectSession(session);
    const failures = sessions.flatMap((s) => s.failures);
    t.ok(failures.length > 0, `some request failed (${JSON.stringify(sessions.map((s) => s.log.map((e) => e.status)))})`);
    for (const failure of failures) {
      t.equal(failure.status, 400, `${failure.what}: 400`);
      t.same(JSON.parse(failure.body), { code: 1, message: 'Session ID unknown' }, 'Session ID unknown');
    }
    t.notOk(sessions.some((s) => s.cookies.has('__VCAP_ID__')), 'and the router set no cookie');
  });

  await t.test('with affinity, every request of every session reaches the instance that holds it', async (t) => {
    const sessions = [0, 1, 2, 3, 4, 5].map(() => new Session(ports.router, 'chat-socketio.localhost'));
    const instances: Array<number | undefined> = [];
    for (const session of sessions) instances.push(await connectSession(session));
    t.same(sessions.flatMap((s) => s.failures), [], 'no request failed');
    t.ok(sessions.every((s) => /^[\w-]+$/.test(s.cookies.get('__VCAP_ID__') ?? '')), 'each client was given its __VCAP_ID__ with the handshake');
    t.same(new Set(instances), new Set([0, 1]), `sessions landed on both instances (${instances})`);

    // A message goes to every session of the sender's instance, the sender included.
    const sender = sessions[0]!;
    const peer = sessions.find((s, i) => i > 0 && instances[i] === instances[0])!;
    t.equal((await sender.send('42["chat message","hello from the first session"]')).status, 200);
    for (const session of [sender, peer]) {
      const message = await session.receive('42["chat message"');
      t.same(JSON.parse(message.slice(2)), ['chat message', { text: 'hello from the first session', instance: instances[0] }]);
    }
    for (let i = 0; i < 3; i++) {
      for (const session of sessions) await session.send(`42["chat message","round ${i}"]`);
      for (const session of sessions) await session.receive(`42["chat message",{"text":"round ${i}"`);
    }
    t.same(sessions.flatMap((s) => s.failures), [], 'three more rounds of sends and polls, none failed');

    // socket.io's next step: the WebSocket upgrade of the same session, which only its instance can take.
    const ws = new WebSocket(`ws://127.0.0.1:${ports.router}/socket.io/?EIO=4&transport=websocket&sid=${sender.sid}`, {
      headers: { host: sender.host, cookie: sender.cookieHeader },
    });
    const frames: string[] = [];
    ws.on('message', (data) => frames.push(data.toString()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    t.teardown(() => ws.terminate());
    ws.send('2probe');
    await eventually(() => frames.includes('3probe'), 'the probe answered over the WebSocket', 5000);
    ws.send('5');
    ws.send('42["chat message","over the websocket"]');
    await eventually(() => frames.some((f) => f.startsWith('42["chat message",{"text":"over the websocket"')), 'the message back over the upgraded session', 5000);
    t.pass('the upgrade followed the pin to the instance holding the session');
    ws.close();
  });

  await t.test('turning affinity on for the running app pins its clients without a restart', async (t) => {
    const token = (JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as { token: string }).token;
    const api = (method: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${ports.api}/apps/chat-plain`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) }).then(
        async (res) => ({ status: res.status, app: (await res.json()) as { version: string; session_affinity: boolean } }),
      );
    const before = await api('GET');
    const changed = await api('PUT', { session_affinity: true });
    t.equal(changed.status, 200);
    t.equal(changed.app.session_affinity, true);
    t.equal(changed.app.version, before.app.version, 'same version: no instance restarted');
    await eventually(async () => (await new Session(ports.router, 'chat-plain.localhost').open()).headers['set-cookie'] !== undefined, 'the routes to pin clients', 10_000);
    const sessions = [0, 1, 2, 3].map(() => new Session(ports.router, 'chat-plain.localhost'));
    const instances: Array<number | undefined> = [];
    for (const session of sessions) instances.push(await connectSession(session));
    t.same(sessions.flatMap((s) => s.failures), [], 'every request of every session succeeds now');
    t.same(new Set(instances), new Set([0, 1]), `on both instances (${instances})`);
    t.equal((await api('GET')).app.version, before.app.version);
  });
});

// The client commands against a stand-in controller that follows
// control/API.md. The real controller is written on another branch at the
// same time; after the merge these flows must run against it instead
// (keep the stand-in minimal until then).

import t from 'tap';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { list as listTar } from 'tar';
import { eventually } from './harness';
import { finish, skiff, skiffOnTerminal, spawnSkiff, tempHome } from './cli_harness';

interface StandInApp {
  name: string;
  state: string;
  instances: number;
  memory: number;
  uris: string[];
  env: Record<string, string>;
  command?: string;
  package_state: string;
  staging_error?: string;
  owner: string;
  since: number;
  /** Bumped on each start and each staging of a started app, as the controller's run_count. */
  runs: number;
  stagingLog: string[];
  stagingDone: boolean;
  upload?: Buffer;
  stdout: string;
}

/** Just enough of control/API.md for the CLI's flows. */
async function startStandIn(t: tap.Test) {
  const users = new Map([['admin@skiff.local', { password: 'right', admin: true }]]);
  const tokens = new Map<string, string>();
  const apps = new Map<string, StandInApp>();
  const requests: string[] = [];
  const send = (res: ServerResponse, status: number, body?: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, description: string) => send(res, status, { code: status * 10, description });
  const readAll = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };
  const view = (app: StandInApp) => ({
    name: app.name, state: app.state, instances: app.instances, memory: app.memory, uris: app.uris, env: app.env,
    runningInstances: app.state === 'STARTED' && app.package_state === 'STAGED' && !app.name.startsWith('crashy') ? app.instances : 0,
    package_state: app.package_state, staging_error: app.staging_error, owner: app.owner, command: app.command ?? null,
    staging: { runtime: 'node', framework: 'node', command: 'node server.js' }, meta: { created: app.since, updated: app.since, last_updated: app.since },
    version: app.package_state === 'STAGED' ? `droplet-${app.runs}` : null, placement_error: null,
  });
  const instancesOf = (app: StandInApp) =>
    app.state !== 'STARTED' ? [] : Array.from({ length: app.instances }, (_, index) => ({
      index, state: app.name.startsWith('crashy') ? 'CRASHED' : 'RUNNING', since: app.since, host: '127.0.0.1', port: 61000 + index, instance: `inst-${index}`,
      version: `droplet-${app.runs}`,
    }));

  const server = createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (req.method === 'GET' && url.pathname === '/info') return send(res, 200, { name: 'skiff', version: '0.1.0', router_url: 'http://localhost:18080' });
    if (req.method === 'POST' && parts[0] === 'users' && parts[2] === 'tokens') {
      const body = JSON.parse((await readAll(req)).toString());
      if (users.get(parts[1]!)?.password !== body.password) return fail(res, 401, 'wrong email or password');
      const token = `tok-${tokens.size}-${parts[1]}`;
      tokens.set(token, parts[1]!);
      return send(res, 200, { token, expires_at: 0 });
    }
    const user = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (user === undefined) return fail(res, 401, 'invalid token');
    if (parts[0] === 'users') {
      if (req.method === 'GET') return send(res, 200, [...users].map(([email, u]) => ({ email, admin: u.admin })));
      if (req.method === 'POST') {
        const body = JSON.parse((await readAll(req)).toString());
        users.set(body.email, { password: body.password, admin: body.admin === true });
        return send(res, 201, { email: body.email, admin: body.admin === true });
      }
      if (req.method === 'DELETE') return users.delete(parts[1]!) ? send(res, 204) : fail(res, 404, 'no such user');
    }
    if (parts[0] !== 'apps') return fail(res, 404, 'not found');
    if (parts.length === 1) {
      if (req.method === 'GET') return send(res, 200, [...apps.values()].map(view));
      const body = JSON.parse((await readAll(req)).toString());
      if (apps.has(body.name)) return fail(res, 409, 'name taken');
      const app: StandInApp = {
        name: body.name, state: 'STOPPED', instances: body.instances ?? 1, memory: body.memory ?? 256, uris: body.uris ?? [`${body.name}.localhost`],
        env: body.env ?? {}, command: body.command, package_state: 'PENDING', owner: user, since: Math.floor(Date.now() / 1000), runs: 0,
        stagingLog: [], stagingDone: false, stdout: 'hello from the app\n',
      };
      apps.set(app.name, app);
      return send(res, 201, view(app));
    }
    const app = apps.get(parts[1]!);
    if (app === undefined) return fail(res, 404, `app not found: ${parts[1]}`);
    const rest = parts.slice(2).join('/');
    if (rest === '' && req.method === 'GET') return send(res, 200, view(app));
    if (rest === '' && req.method === 'DELETE') {
      apps.delete(app.name);
      return send(res, 200, {});
    }
    if (rest === '' && req.method === 'PUT') {
      const body = JSON.parse((await readAll(req)).toString());
      if (body.state === 'STARTED' && app.package_state !== 'STAGED') return fail(res, 400, 'app has no droplet');
      if (body.state === 'STARTED' && app.state !== 'STARTED') {
        app.since = Math.floor(Date.now() / 1000);
        app.runs++;
      }
      for (const key of ['state', 'instances', 'memory', 'uris', 'env', 'command'] as const) if (key in body) (app as unknown as Record<string, unknown>)[key] = body[key];
      return send(res, 200, view(app));
    }
    if (rest === 'application' && req.method === 'PUT') {
      const bits = await readAll(req);
      if (createHash('sha256').update(bits).digest('hex') !== req.headers['x-skiff-sha256']) return fail(res, 400, 'sha256 mismatch');
      app.upload = bits;
      app.package_state = 'STAGING';
      app.stagingDone = false;
      app.stagingLog = ['-----> detected node\n', '-----> installing dependencies\n'];
      setTimeout(() => {
        app.stagingDone = true;
        app.package_state = app.name.startsWith('broken') ? 'FAILED' : 'STAGED';
        // A started app gets fresh instances running the new droplet.
        if (app.package_state === 'STAGED' && app.state === 'STARTED') {
          app.since = Math.floor(Date.now() / 1000);
          app.runs++;
        }
        if (app.package_state === 'FAILED') app.staging_error = 'no start command found';
      }, 300);
      return send(res, 202, { sha256: req.headers['x-skiff-sha256'], size: bits.length, package_state: 'STAGING' });
    }
    if (rest === 'staging_log') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      for (const line of app.stagingLog) res.write(line);
      while (!app.stagingDone) await new Promise((r) => setTimeout(r, 20));
      return res.end(app.package_state === 'FAILED' ? '-----> failed\n' : '-----> staged\n');
    }
    if (rest === 'instances') return send(res, 200, { instances: instancesOf(app) });
    if (rest === 'stats') {
      return send(res, 200, Object.fromEntries(instancesOf(app).map((i) => [String(i.index), {
        state: i.state, stats: { uptime: 3723, mem_quota: 268435456, disk_quota: 1073741824, usage: { cpu: 1.5, mem: 40960, disk: 1048576 } },
      }])));
    }
    if (rest === 'crashes') {
      const old = { instance: 'inst-old', index: 0, since: 1764100000, reason: 'out of memory', exit_status: 137 };
      return send(res, 200, app.name.startsWith('crashy') ? [old, { instance: 'inst-0', index: 0, since: app.since, reason: 'app instance exited', exit_status: 3 }] : [old]);
    }
    const files = /^instances\/([^/]+)\/files(?:\/(.*))?$/.exec(rest);
    if (files) {
      const path = files[2] ?? '';
      if (path === '' || path === 'logs') {
        return send(res, 200, { entries: path === '' ? [{ name: 'app', type: 'directory', size: 0 }, { name: 'logs', type: 'directory', size: 0 }] : [{ name: 'stdout.log', type: 'file', size: app.stdout.length }] });
      }
      if (path !== 'logs/stdout.log') return fail(res, 404, 'no such file');
      const whole = Buffer.from(app.stdout);
      const offset = url.searchParams.has('offset') ? Number(url.searchParams.get('offset')) : url.searchParams.has('tail') ? Math.max(0, whole.length - Number(url.searchParams.get('tail'))) : 0;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'X-Skiff-File-Size': String(whole.length) });
      return res.end(whole.subarray(offset));
    }
    return fail(res, 404, 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return { url, apps, users, requests };
}

function makeAppDir(t: tap.Test, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-cli-app-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, body] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), body);
  }
  return dir;
}

async function loggedIn(t: tap.Test) {
  const api = await startStandIn(t);
  const home = tempHome(t);
  t.equal((await skiff(['target', api.url], home)).code, 0);
  t.equal((await skiff(['login', '--email', 'admin@skiff.local', '--password', 'right'], home)).code, 0);
  return { api, home };
}

t.test('target checks /info and login keeps the token in a 0600 file, never printed', async (t) => {
  const api = await startStandIn(t);
  const home = tempHome(t);
  const target = await skiff(['target', api.url.replace('http://', '') + '/'], home);
  t.equal(target.code, 0, target.stderr);
  t.match(target.stdout, `target: ${api.url} (skiff 0.1.0)`);
  const wrong = await skiff(['login', '--email', 'admin@skiff.local', '--password', 'wrong'], home);
  t.equal(wrong.code, 1);
  t.equal(wrong.stderr, 'skiff login: login failed: wrong email or password\n');
  // SKIFF_PASSWORD keeps the password off the command line (/proc/*/cmdline is world-readable); a flag wins over it.
  const fromEnv = await skiff(['login', '--email', 'admin@skiff.local'], home, { SKIFF_PASSWORD: 'right' });
  t.equal(fromEnv.code, 0, fromEnv.stderr);
  t.equal(fromEnv.stdout, `logged in as admin@skiff.local on ${api.url}\n`, 'SKIFF_PASSWORD logs in off a terminal');
  const flagWins = await skiff(['login', '--email', 'admin@skiff.local', '--password', 'wrong'], home, { SKIFF_PASSWORD: 'right' });
  t.equal(flagWins.stderr, 'skiff login: login failed: wrong email or password\n', '--password wins over SKIFF_PASSWORD');
  const right = await skiff(['login', '--email', 'admin@skiff.local', '--password', 'right'], home);
  t.equal(right.code, 0, right.stderr);
  t.equal(right.stdout, `logged in as admin@skiff.local on ${api.url}\n`);
  const config = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'));
  t.same(Object.keys(config).sort(), ['target', 'token']);
  t.equal(statSync(join(home, 'config.json')).mode & 0o777, 0o600);
  t.notMatch(right.stdout + right.stderr, config.token);

  const badToken = JSON.stringify({ target: api.url, token: 'stale' });
  writeFileSync(join(home, 'config.json'), badToken);
  const rejected = await skiff(['apps'], home);
  t.equal(rejected.code, 1);
  t.equal(rejected.stderr, 'skiff apps: not logged in, or the login expired: run `skiff login`\n');
  t.notMatch(rejected.stderr, 'stale');

  const logout = await skiff(['logout'], home);
  t.equal(logout.code, 0);
  t.same(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')), { target: api.url });
});

t.test('target refuses something that is not a Skiff API', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(404);
    res.end('nope');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const home = tempHome(t);
  const port = (server.address() as { port: number }).port;
  const run = await skiff(['target', `http://127.0.0.1:${port}`], home);
  t.equal(run.code, 1);
  t.equal(run.stderr, `skiff target: http://127.0.0.1:${port} does not look like a Skiff API: GET /info answered HTTP 404\n`);
});

t.test('push: manifest, ignore files, upload, staging log, start, wait, URL', async (t) => {
  const { api, home } = await loggedIn(t);
  const dir = makeAppDir(t, {
    'server.js': 'require("http").createServer((q, s) => s.end("hi")).listen(process.env.PORT)',
    'node_modules/dep/index.js': 'module.exports = 1',
    '.git/HEAD': 'ref: refs/heads/main',
    'notes.tmp': 'scratch',
    'secrets/key': 'x',
    '.cfignore': '*.tmp\n',
    '.skiffignore': 'secrets/\n',
    'manifest.yml': 'applications:\n  - name: shop\n    instances: 2\n    memory: 128M\n    env:\n      GREETING: hello\n    routes:\n      - route: shop.localhost\n      - route: store.localhost\n',
  });
  const run = await skiff(['push', dir], home);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /created shop\n/);
  t.match(run.stdout, /staging:\n-----> detected node\n-----> installing dependencies\n-----> staged\n/);
  t.match(run.stdout, /shop is running at http:\/\/shop\.localhost:18080\/ http:\/\/store\.localhost:18080\/\n$/, 'router port from /info router_url');
  t.match(run.stderr, /2\/2 running/);
  t.match(run.stderr, /uploading \d/, 'plain upload lines off a terminal');
  t.notMatch(run.stderr, /\r/, 'no progress bar redraws off a terminal');

  const app = api.apps.get('shop')!;
  t.same([app.instances, app.memory, app.uris, app.env, app.state], [2, 128, ['shop.localhost', 'store.localhost'], { GREETING: 'hello' }, 'STARTED']);
  const names: string[] = [];
  await listTar({ onReadEntry: (entry) => names.push(entry.path) }).end(app.upload!);
  t.same(names.sort(), ['.cfignore', '.skiffignore', 'manifest.yml', 'node_modules/', 'node_modules/dep/', 'node_modules/dep/index.js', 'server.js']);

  // Pushing again updates instead of creating, and flags beat the manifest.
  const again = await skiff(['push', dir, '--instances', '1', '--memory', '1G'], home);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /updated shop\n/);
  t.same([app.instances, app.memory], [1, 1024]);
});

t.test('push --no-start, a failed staging, and instances that never run', async (t) => {
  const { api, home } = await loggedIn(t);
  const dir = makeAppDir(t, { 'server.js': 'x' });
  const staged = await skiff(['push', dir, '--name', 'quiet', '--no-start'], home);
  t.equal(staged.code, 0, staged.stderr);
  t.match(staged.stdout, /quiet is staged and not started: skiff start quiet\n$/);
  t.equal(api.apps.get('quiet')!.state, 'STOPPED');

  const broken = await skiff(['push', dir, '--name', 'broken'], home);
  t.equal(broken.code, 1);
  t.match(broken.stdout, /-----> failed\n/, 'the staging log is shown');
  t.match(broken.stderr, /skiff push: staging failed: no start command found; broken was removed again \(this push had created it\)\n$/, 'the reason, which this log did not give');
  t.notOk(api.apps.has('broken'), 'a failed first push leaves no app');

  const crashy = await skiff(['push', dir, '--name', 'crashy'], home);
  t.equal(crashy.code, 1);
  t.match(crashy.stderr, /  0\/1 running \(1 CRASHED\)\n==> last lines of logs\/stdout.log \(instance inst-0\) <==\nhello from the app\n/, "the crashed instance's last log lines");
  t.match(crashy.stderr, /skiff push: crashy did not start: its instance crashed: app instance exited \(exit status 3\); more: skiff logs crashy, skiff crashes crashy\n$/);
  t.ok(api.apps.has('crashy'), 'a staged app that crashes is kept, to look into');

  const noName = await skiff(['push', makeAppDir(t, { 'a.js': '' }), '--name', 'Bad'], home);
  t.equal(noName.code, 2);
  const badManifest = await skiff(['push', makeAppDir(t, { 'manifest.yml': 'memory: lots\n' }), '--name', 'x'], home);
  t.equal(badManifest.code, 2);
  const badYaml = await skiff(['push', makeAppDir(t, { 'manifest.yml': 'name: x\nenv:\n  A: 1\n B: 2\n' })], home);
  t.equal(badYaml.code, 2);
  t.equal(badYaml.stderr, 'skiff push: manifest.yml is not valid YAML (line 4, column 1): All mapping items must start at the same column\n    A: 1\n   B: 2\n  ^\n');
  const typo = await skiff(['push', makeAppDir(t, { 'manifest.yml': 'name: typo\nintances: 2\n', 'server.js': 'x' })], home);
  t.equal(typo.code, 0, typo.stderr);
  t.match(typo.stderr, /^warning: manifest.yml: unknown key "intances" \(ignored\)\n/);
  t.equal(api.apps.get('typo')!.instances, 1);
  const empty = await skiff(['push', makeAppDir(t, { '.cfignore': '*\n' }), '--name', 'empty'], home);
  t.equal(empty.code, 1);
  t.match(empty.stderr, /nothing to push/);
  t.notOk(api.apps.has('empty'), 'an empty directory creates nothing');
  t.equal(badManifest.stderr, 'skiff push: manifest.yml: memory must be a size like 256M or 1G (units M, MB, G, GB; no unit: MB), got "lots"\n');
});

t.test('apps, app, scale, env, map, unmap, stats, crashes, files, logs, delete', async (t) => {
  const { api, home } = await loggedIn(t);
  t.equal((await skiff(['apps'], home)).stdout, 'no apps yet: skiff push\n');
  const dir = makeAppDir(t, { 'server.js': 'x' });
  t.equal((await skiff(['push', dir, '--name', 'shop'], home)).code, 0);

  const apps = await skiff(['apps'], home);
  t.equal(apps.stdout, 'NAME  STATE    INSTANCES  MEMORY  URLS\nshop  STARTED  1/1        256M    shop.localhost\n');
  const json = JSON.parse((await skiff(['apps', '--json'], home)).stdout);
  t.equal(json[0].name, 'shop', '--json is the API JSON');

  const show = await skiff(['app', 'shop'], home);
  t.match(show.stdout, /^name: +shop\nstate: +STARTED\n/);
  t.match(show.stdout, /urls: +http:\/\/shop\.localhost:18080\/\n/);
  t.match(show.stdout, /INDEX +STATE +SINCE +ADDRESS\n0 +RUNNING +\d+s ago +127\.0\.0\.1:61000/);
  const unknown = await skiff(['app', 'nope'], home);
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr, 'skiff app: unknown app "nope" (see `skiff apps`)\n');

  t.equal((await skiff(['scale', 'shop', '--instances', '3', '--memory', '512M'], home)).stdout, 'shop: 3 instances of 512M\n');
  t.same([api.apps.get('shop')!.instances, api.apps.get('shop')!.memory], [3, 512]);

  t.equal((await skiff(['env', 'shop', 'A=1', 'B=two words'], home)).code, 0);
  t.equal((await skiff(['env', 'shop', 'A='], home)).code, 0);
  t.equal((await skiff(['env', 'shop'], home)).stdout, 'B=two words\n');
  t.same(JSON.parse((await skiff(['env', 'shop', '--json'], home)).stdout), { B: 'two words' });

  t.equal((await skiff(['map', 'shop', 'Store.localhost'], home)).stdout, 'mapped store.localhost to shop\n');
  t.same(api.apps.get('shop')!.uris, ['shop.localhost', 'store.localhost']);
  t.equal((await skiff(['unmap', 'shop', 'shop.localhost'], home)).code, 0);
  t.same(api.apps.get('shop')!.uris, ['store.localhost']);
  const notMapped = await skiff(['unmap', 'shop', 'other.localhost'], home);
  t.equal(notMapped.code, 1);
  t.equal(notMapped.stderr, 'skiff unmap: other.localhost is not mapped to shop (its routes: store.localhost)\n');

  const stats = await skiff(['stats', 'shop'], home);
  t.equal(stats.stdout.split('\n')[0], 'INDEX  STATE    CPU   MEM           DISK       UPTIME');
  t.equal(stats.stdout.split('\n')[1], '0      RUNNING  1.5%  40.0M (256M)  1.0M (1G)  0d:1h:2m:3s', 'usage (quota); mem in KB, disk in bytes as CF v1');
  t.equal(stats.stdout.split('\n').length, 5, 'a header and three instances');

  const crashes = await skiff(['crashes', 'shop'], home);
  t.match(crashes.stdout, /^INSTANCE +INDEX +SINCE +REASON +EXIT\ninst-old +0 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +out of memory +137\n$/);

  t.equal((await skiff(['files', 'shop'], home)).stdout, 'NAME   SIZE\napp/   -\nlogs/  -\n');
  t.equal((await skiff(['files', 'shop', 'logs/stdout.log', '--instance', '0'], home)).stdout, 'hello from the app\n');
  const missing = await skiff(['files', 'shop', 'nope.txt'], home);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^skiff files: nope.txt: no such file/);
  t.match(api.requests.join('\n'), /GET \/apps\/shop\/instances\/\d\/files\/logs\/stdout\.log/);

  const logs = await skiff(['logs', 'shop'], home);
  t.equal(logs.code, 0);
  t.equal(logs.stdout, '==> logs/stdout.log <==\nhello from the app\n');
  t.match(logs.stderr, /no logs\/stderr\.log/);

  t.equal((await skiff(['delete', 'shop'], home)).stdout, 'deleted shop\n', 'off a terminal delete does not ask');
  t.notOk(api.apps.has('shop'));
  t.equal((await skiff(['delete', 'shop', '--force'], home)).code, 1);
});

t.test('logs --follow prints what the app writes until Ctrl-C', async (t) => {
  const { api, home } = await loggedIn(t);
  t.equal((await skiff(['push', makeAppDir(t, { 'server.js': 'x' }), '--name', 'tail'], home)).code, 0);
  const child = spawnSkiff(['logs', 'tail', '--follow'], home);
  const done = finish(child, 15_000);
  let out = '';
  child.stdout!.on('data', (chunk: string) => (out += chunk));
  await eventually(() => out.includes('hello from the app'), 'the existing log', 8000);
  api.apps.get('tail')!.stdout += 'a new line\n';
  await eventually(() => out.includes('a new line'), 'the new line', 8000);
  child.kill('SIGINT');
  const run = await done;
  t.equal(run.code, 0);
  t.equal(out.split('hello from the app').length, 2, 'old lines are not printed again');
});

t.test('users, add-user, delete-user', async (t) => {
  const { api, home } = await loggedIn(t);
  t.equal((await skiff(['add-user', 'dev@example.com', '--password', 'pw'], home)).stdout, 'added dev@example.com\n');
  t.equal(api.users.get('dev@example.com')?.password, 'pw');
  t.equal((await skiff(['users'], home)).stdout, 'EMAIL              ADMIN\nadmin@skiff.local  yes\ndev@example.com    no\n');
  const noPassword = await skiff(['add-user', 'x@example.com'], home);
  t.equal(noPassword.code, 2);
  t.equal(noPassword.stderr, 'skiff add-user: add-user needs --password when not run on a terminal\n');
  t.equal((await skiff(['delete-user', 'dev@example.com'], home)).stdout, 'deleted dev@example.com\n');
  const again = await skiff(['delete-user', 'dev@example.com'], home);
  t.equal(again.stderr, 'skiff delete-user: unknown user dev@example.com\n');
});

t.test('on a terminal: push draws a progress bar, delete asks first', async (t) => {
  const { api, home } = await loggedIn(t);
  const pushed = await skiffOnTerminal(['push', makeAppDir(t, { 'server.js': 'x' }), '--name', 'tty'], home, []);
  if (pushed === undefined) {
    t.pass('skipped: util-linux script is not installed');
    return;
  }
  t.equal(pushed.code, 0, pushed.stdout);
  t.match(pushed.stdout, /\ruploading \[#+\] 100%/, 'the bar is redrawn in place');
  const kept = await skiffOnTerminal(['delete', 'tty'], home, [['[y/N] ', 'n']]);
  t.equal(kept!.code, 1);
  t.match(kept!.stdout, /delete app tty and its instances\? \[y\/N\] .*not deleted/s);
  t.ok(api.apps.has('tty'));
  const gone = await skiffOnTerminal(['delete', 'tty'], home, [['[y/N] ', 'y']]);
  t.equal(gone!.code, 0);
  t.notOk(api.apps.has('tty'));
});

t.test('--group reaches another owner through ?group=', async (t) => {
  const { api, home } = await loggedIn(t);
  await skiff(['apps', '--group', 'dev@example.com'], home);
  t.ok(api.requests.includes('GET /apps?group=dev%40example.com'));
});

// The static file server as a static site's instance runs it: staged through
// the real stager, unpacked from the droplet, started with its start command
// on $PORT, and asked over HTTP.

import t from 'tap';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { isStagerFailure } from '../bus/messages';
import { freePort, waitForPort } from './harness';
import { zipTree } from './stager_fixtures';
import { startStagerEnv } from './stager_harness';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function ask(port: number, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

// 1x1 transparent PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

t.test('serves the site with the right types, 404s everything else', async (t) => {
  const env = await startStagerEnv(t);
  const { reply } = await env.stage('static-site', zipTree({
    'index.html': '<link rel="stylesheet" href="style.css"><h1>Hello</h1>',
    'style.css': 'h1 { color: teal; }',
    'img/logo.png': PNG,
    'docs/index.html': '<p>docs</p>',
    'data.json': '{"a":1}',
    '.env': 'SECRET=1',
  }, 'site/'));
  if (isStagerFailure(reply)) throw new Error(reply.error);
  const droplet = await env.droplet(reply.sha1);
  const port = await freePort();
  const child = spawn('/bin/sh', ['-c', `exec ${reply.start_command}`], {
    cwd: join(droplet, 'app'),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: String(port) },
    stdio: 'ignore',
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitForPort(port);

  const index = await ask(port, '/');
  t.equal(index.status, 200);
  t.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  t.match(index.body, /<h1>Hello<\/h1>/);

  const css = await ask(port, '/style.css');
  t.equal(css.status, 200);
  t.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  t.equal(css.body, 'h1 { color: teal; }');

  const png = await ask(port, '/img/logo.png');
  t.equal(png.headers['content-type'], 'image/png');
  t.equal(Number(png.headers['content-length']), PNG.length);
  t.equal((await ask(port, '/data.json')).headers['content-type'], 'application/json; charset=utf-8');

  const head = await ask(port, '/style.css', 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.headers['content-length'], String('h1 { color: teal; }'.length));
  t.equal(head.body, '', 'HEAD has no body');

  const notModified = await ask(port, '/style.css', 'GET', { 'If-Modified-Since': String(css.headers['last-modified']) });
  t.equal(notModified.status, 304);

  const dir = await ask(port, '/docs');
  t.equal(dir.status, 301);
  t.equal(dir.headers.location, '/docs/');
  t.match((await ask(port, '/docs/')).body, /docs/);

  t.equal((await ask(port, '/missing.html')).status, 404);
  t.equal((await ask(port, '/../droplet.json')).status, 404, 'no way up with ..');
  t.equal((await ask(port, '/%2e%2e/droplet.json')).status, 404, 'nor encoded');
  t.equal((await ask(port, '/docs/..%2f..%2fdroplet.json')).status, 404);
  t.equal((await ask(port, '/.env')).status, 404, 'dotfiles are not served');
  t.equal((await ask(port, '/.skiff/static-server.js')).status, 404);
  t.equal((await ask(port, '/', 'POST')).status, 405);

  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exits 0 on SIGTERM');
});

// End to end through NATS and JetStream: a package in skiff_bits, a request
// on vcap.stager.default, a droplet in skiff_droplets, for each way an app
// is detected.

import t from 'tap';
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isStagerFailure, type StagerReply, type StagerSuccess } from '../bus/messages';
import { makeWheel, tarGzTree, zipTree } from './stager_fixtures';
import { ObjectStores } from '../bus/platform';
import { storeDroplet } from '../control/stager/stager';
import { scratchDir, startStagerEnv, type StagerEnv } from './stager_harness';

let env: StagerEnv;
t.before(async () => {
  env = await startStagerEnv(t);
});

/** The reply as a success; a failure ends the test with the stager's error and log. */
function success(reply: StagerReply): StagerSuccess {
  if (isStagerFailure(reply)) throw new Error(`staging failed: ${reply.error}\n${reply.log}`);
  return reply;
}

const json = (value: object) => JSON.stringify(value, null, 2);

t.test('Node.js with a start script, zipped as a folder', async (t) => {
  const pkg = zipTree({
    'package.json': json({ name: 'shop', scripts: { start: 'node server.js' } }),
    'server.js': 'require("http").createServer((q, s) => s.end("hi")).listen(process.env.PORT)',
  }, 'shop/');
  const { reply, published } = await env.stage('app-node-start', pkg);
  const ok = success(reply);
  t.match(ok, { runtime: 'node', framework: 'node', start_command: 'node server.js' });
  t.equal(ok.droplet, ok.sha1, 'the droplet is stored under its sha1');
  t.match(ok.log, /Detected Node\.js app \(package\.json scripts\.start\)/);
  t.match(ok.log, /app in folder shop\//);
  t.notMatch(ok.log, /npm install/, 'no dependencies, no npm install');
  t.equal(published, ok.log, 'every log line was published on the staging log subject');

  const dir = await env.droplet(ok.sha1);
  t.same(JSON.parse(readFileSync(join(dir, 'droplet.json'), 'utf8')), { runtime: 'node', framework: 'node', start_command: 'node server.js' });
  t.ok(existsSync(join(dir, 'app/server.js')), 'the folder was unwrapped into app/');
  t.notOk(existsSync(join(dir, 'app/shop')));
});

t.test('Node.js with main only, as tar.gz', async (t) => {
  const { reply } = await env.stage('app-node-main', tarGzTree({ 'package.json': json({ main: 'lib/index.js' }), 'lib/index.js': '' }));
  t.match(success(reply), { runtime: 'node', framework: 'node', start_command: 'node lib/index.js' });
});

t.test('Node.js with server.js only', async (t) => {
  const { reply } = await env.stage('app-node-server', zipTree({ 'server.js': '' }));
  t.match(success(reply), { runtime: 'node', start_command: 'node server.js' });
});

t.test('Node.js dependencies are installed with npm when node_modules is not shipped', async (t) => {
  const pkg = tarGzTree({
    'package.json': json({ name: 'withdep', version: '1.0.0', scripts: { start: 'node server.js' }, dependencies: { localdep: 'file:./vendor/localdep' } }),
    'server.js': 'console.log(require("localdep"))',
    'vendor/localdep/package.json': json({ name: 'localdep', version: '1.0.0', main: 'index.js' }),
    'vendor/localdep/index.js': 'module.exports = "from localdep";',
  });
  const { reply, published } = await env.stage('app-node-deps', pkg);
  const ok = success(reply);
  t.match(ok.log, /Installing Node\.js dependencies: npm install --omit=dev --no-audit --no-fund/);
  t.equal(published, ok.log);
  const dir = await env.droplet(ok.sha1);
  t.ok(lstatSync(join(dir, 'app/node_modules/localdep')), 'the dependency is in the droplet');
  t.equal(readFileSync(join(dir, 'app/node_modules/localdep/index.js'), 'utf8'), 'module.exports = "from localdep";');
});

t.test('Python: app.py; a comment-only requirements.txt needs no pip', async (t) => {
  const { reply } = await env.stage('app-python', zipTree({ 'app.py': 'print("hi")', 'requirements.txt': '# nothing yet\n\n' }));
  const ok = success(reply);
  t.match(ok, { runtime: 'python', framework: 'python', start_command: 'python3 app.py' });
  t.notMatch(ok.log, /pip/);
});

t.test('Python requirements are installed into the app with pip', async (t) => {
  const wheel = makeWheel('skiffdemo', '1.0', 'GREETING = "hello from a wheel"\n');
  const pkg = zipTree({ 'main.py': 'import skiffdemo\n', 'requirements.txt': `./wheels/${wheel.fileName}\n`, [`wheels/${wheel.fileName}`]: wheel.data });
  const { reply } = await env.stage('app-python-pip', pkg);
  const ok = success(reply);
  t.match(ok, { runtime: 'python', start_command: 'python3 main.py' });
  t.match(ok.log, /Installing Python dependencies: python3 -m pip install --target \./);
  const dir = await env.droplet(ok.sha1);
  t.match(readFileSync(join(dir, 'app/skiffdemo.py'), 'utf8'), /hello from a wheel/);
});

t.test('static site: the static server is shipped in the droplet', async (t) => {
  const { reply } = await env.stage('app-static', zipTree({ 'index.html': '<h1>hi</h1>', 'style.css': 'h1{}' }));
  const ok = success(reply);
  t.match(ok, { runtime: 'static', framework: 'static', start_command: 'node .skiff/static-server.js' });
  const dir = await env.droplet(ok.sha1);
  t.match(readFileSync(join(dir, 'app/.skiff/static-server.js'), 'utf8'), /Skiff's static file server/);
});

t.test('a Procfile web: line overrides detection', async (t) => {
  const pkg = zipTree({ 'package.json': json({ scripts: { start: 'node a.js' } }), Procfile: 'web: node b.js --port $PORT\n' });
  const { reply } = await env.stage('app-procfile', pkg);
  t.match(success(reply), { runtime: 'node', framework: 'procfile', start_command: 'node b.js --port $PORT' });
});

t.test("the manifest's command overrides the Procfile and detection", async (t) => {
  const pkg = zipTree({ 'app.py': '', Procfile: 'web: python3 other.py\n' });
  const { reply } = await env.stage('app-manifest', pkg, { command: 'python3 app.py --workers 2' });
  const ok = success(reply);
  t.match(ok, { runtime: 'python', framework: 'manifest', start_command: 'python3 app.py --workers 2' });
  const dir = await env.droplet(ok.sha1);
  t.equal(JSON.parse(readFileSync(join(dir, 'droplet.json'), 'utf8')).start_command, 'python3 app.py --workers 2');
});

t.test('a droplet already in the store is not uploaded again', async (t) => {
  const { reply } = await env.stage('app-twice', tarGzTree({ 'server.js': '' }));
  const ok = success(reply);
  t.match(ok.log, /Droplet uploaded/);
  const droplets = await env.bus.nats.jetstream().views.os(ObjectStores.droplets);
  const before = await droplets.info(ok.sha1);
  const file = join(scratchDir(t), 'droplet.tgz');
  writeFileSync(file, 'not the droplet');
  t.equal(await storeDroplet(droplets, file, ok.sha1), false, 'skipped');
  t.equal((await droplets.info(ok.sha1))?.digest, before?.digest, 'the stored droplet is unchanged');
});

import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { detect, NO_START_COMMAND, npmStartCommand, npmVariablesUsed, procfileWebCommand, runtimeOfCommand, shellQuote } from './detect';

function app(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-detect-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), data);
  }
  return dir;
}

const pkg = (value: object) => JSON.stringify(value);

t.test('Node.js: scripts.start, then main, then server.js or app.js', async (t) => {
  t.match(await detect(app({ 'package.json': pkg({ scripts: { start: 'node x.js' }, main: 'y.js' }), 'y.js': '' }), null),
    { runtime: 'node', framework: 'node', startCommand: 'node x.js' }, 'the start script itself, without npm');
  t.match(await detect(app({ 'package.json': pkg({ main: 'lib/main.js' }), 'lib/main.js': '' }), null),
    { runtime: 'node', framework: 'node', startCommand: 'node lib/main.js' });
  t.match(await detect(app({ 'package.json': pkg({ main: 'my app.js' }), 'my app.js': '' }), null),
    { startCommand: "node 'my app.js'" }, 'an odd main is quoted for the shell');
  t.match(await detect(app({ 'package.json': pkg({ main: 'index.js' }), 'server.js': '' }), null),
    { startCommand: 'node server.js' }, "npm init's absent index.js does not win over server.js");
  t.match(await detect(app({ 'app.js': '' }), null), { runtime: 'node', startCommand: 'node app.js' });
  t.match(await detect(app({ 'server.js': '', 'app.js': '' }), null), { startCommand: 'node server.js' });
});

t.test('scripts.start runs as npm start would, without npm (as Paketo\'s npm-start buildpack composes it)', async (t) => {
  t.equal(npmStartCommand({ start: '  node server.js\n' }), 'node server.js');
  t.equal(npmStartCommand({ prestart: 'node migrate.js', start: 'node server.js', poststart: 'echo done' }),
    'node migrate.js && node server.js && echo done', 'prestart and poststart around it, as npm runs them');
  t.equal(npmStartCommand({ start: 'npm run serve', serve: 'node dist/main.js', preserve: 'tsc' }), 'tsc && node dist/main.js',
    'a start that only runs another script becomes that script (with its own pre script)');
  t.equal(npmStartCommand({ start: 'npm run-script a', a: 'npm run b', b: 'node b.js' }), 'node b.js');
  t.equal(npmStartCommand({ start: 'npm run gone' }), 'npm run gone', 'a script that is not there is left to npm and its error');
  t.equal(npmStartCommand({ start: 'npm start' }), 'npm start', 'no endless loop');
  t.equal(npmStartCommand({ start: 'npm run a', a: 'npm run start' }), 'npm run start', 'nor a longer one');
  t.equal(npmStartCommand({ prestart: 'x' }), undefined, 'no start script: none');
  t.equal(npmStartCommand({ start: 42 }), undefined);
  t.same(npmVariablesUsed({ start: 'node s.js --port $npm_package_config_port', poststart: 'echo ${npm_package_version}', test: '$npm_config_x' }),
    ['npm_package_config_port', 'npm_package_version']);

  const plain = await detect(app({ 'package.json': pkg({ scripts: { start: 'node server.js' } }) }), null);
  t.equal(plain.note, undefined);
  const withVariables = await detect(app({ 'package.json': pkg({ config: { port: '1' }, scripts: { start: 'node s.js $npm_package_config_port' } }) }), null);
  t.match(withVariables, { startCommand: 'node s.js $npm_package_config_port', note: /npm_package_config_port, which only npm sets.*web: npm start/ },
    'the staging log says what npm would have set, and how to keep npm');
});

t.test('Python: app.py, then main.py', async (t) => {
  t.match(await detect(app({ 'app.py': '', 'main.py': '' }), null), { runtime: 'python', framework: 'python', startCommand: 'python3 app.py' });
  t.match(await detect(app({ 'main.py': '', 'requirements.txt': '' }), null), { runtime: 'python', startCommand: 'python3 main.py' });
});

t.test('static site: index.html at the root', async (t) => {
  t.match(await detect(app({ 'index.html': '<h1>hi</h1>', 'style.css': '' }), null),
    { runtime: 'static', framework: 'static', startCommand: 'node .skiff/static-server.js' });
  t.match(await detect(app({ 'index.html': '', 'package.json': pkg({ devDependencies: { x: '1' } }) }), null),
    { runtime: 'static' }, 'a package.json for tooling alone does not make a Node.js app');
});

t.test('Procfile web: overrides detection; the manifest command overrides both', async (t) => {
  const dir = app({ 'package.json': pkg({ scripts: { start: 'node a.js' } }), Procfile: 'worker: node w.js\nweb: node web.js --fast\n' });
  t.match(await detect(dir, null), { runtime: 'node', framework: 'procfile', startCommand: 'node web.js --fast' });
  t.match(await detect(dir, 'node other.js'), { framework: 'manifest', startCommand: 'node other.js' });
  t.match(await detect(app({ Procfile: 'web: python3 -m http.server $PORT', 'index.html': '' }), null),
    { runtime: 'python', framework: 'procfile' }, 'the runtime follows the command');
  t.match(await detect(app({ Procfile: 'web: ./run.sh', 'app.py': '' }), null), { runtime: 'python' }, 'else the files');
  t.match(await detect(app({ Procfile: 'worker: node w.js', 'app.py': '' }), null), { framework: 'python' },
    'a Procfile without web: leaves detection alone');
  await t.rejects(detect(app({ Procfile: 'web:   \n' }), null), /empty web: line/);
});

t.test('nothing to start gives the one clear error', async (t) => {
  await t.rejects(detect(app({ 'README.md': 'hi' }), null), { name: 'StagingError', message: NO_START_COMMAND });
  await t.rejects(detect(app({ 'package.json': pkg({ name: 'x' }) }), null), { message: NO_START_COMMAND });
  await t.rejects(detect(app({ 'package.json': '{ nope' }), null), { name: 'StagingError', message: /package\.json is not valid JSON/ });
});

t.test('helpers', async (t) => {
  t.equal(procfileWebCommand('web:node a.js'), 'node a.js');
  t.equal(procfileWebCommand('# web: no\nworker: x'), undefined);
  t.equal(shellQuote("it's"), `'it'\\''s'`);
  t.equal(runtimeOfCommand('PORT=1 exec /usr/bin/node x.js'), 'node');
  t.equal(runtimeOfCommand('gunicorn app:app'), 'python');
  t.equal(runtimeOfCommand('./run.sh'), undefined);
});

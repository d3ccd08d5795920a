// The first minutes of a new user (design.md, "The first minutes"; issue 11)
// on `skiff up` with its real DEA: a push whose app exits at start, has a
// syntax error, or is killed over its memory right after it listens fails
// within seconds with the reason and the app's last log lines; a push
// beyond every DEA's room says why; a failed first push leaves no app, and
// says the staging error once; a push onto an existing app never deletes
// it; progress lines count only the instances of the current start.
// Every process is ended by pid.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { finish, spawnSkiff, tempHome, type SkiffRun } from '../cli_harness';
import { eventually } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const HELLO = join(__dirname, '..', '..', 'examples', 'hello-node');

function appDir(root: string, name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [file, body] of Object.entries(files)) writeFileSync(join(dir, file), body);
  return dir;
}

function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

t.test('the first minutes: failures say why, at once, and leave nothing behind', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-first-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 300_000);
  await eventually(() => /^router: http/m.test(platform.out()), 'skiff up to print its router line', 60_000);
  const cli = async (args: string[], limitMs = 120_000): Promise<SkiffRun & { ms: number }> => {
    const began = Date.now();
    const result = await finish(spawnSkiff(args, home), limitMs);
    return { ...result, ms: Date.now() - began };
  };
  const apps = async (): Promise<string[]> => (JSON.parse((await cli(['apps', '--json'])).stdout) as Array<{ name: string }>).map((a) => a.name);

  const src = join(dataDir, 'src');
  mkdirSync(src);
  // As a new user writes it: package.json's start script.
  const exits = appDir(src, 'exits', {
    'package.json': '{"name":"exits","scripts":{"start":"node server.js"}}',
    'server.js': "console.log('exits: starting'); console.error('exits: cannot open config.json'); process.exit(3);\n",
  });
  const syntax = appDir(src, 'syntax', { Procfile: 'web: node server.js\n', 'server.js': "const answer = ;\nrequire('node:http').createServer().listen(process.env.PORT);\n" });
  // Listens first, then takes 200 MB: the DEA's sampling kills it a moment after it was RUNNING.
  const hog = appDir(src, 'hog', {
    Procfile: 'web: node server.js\n',
    'server.js': `require('node:http').createServer((q, s) => s.end('hog')).listen(Number(process.env.PORT), () => {
  console.log('hog: listening');
  globalThis.hog = Buffer.alloc(200 * 1024 * 1024, 1);
  console.log('hog: took 200 MB');
});
`,
  });
  const notes = appDir(src, 'notes', { 'notes.txt': 'no app here\n' });
  const empty = appDir(src, 'empty', {});

  const [exited, syntaxed, hogged, huge] = await Promise.all([
    cli(['push', exits]),
    cli(['push', syntax]),
    cli(['push', hog, '--memory', '64M']),
    cli(['push', HELLO, '--name', 'huge', '--memory', '8G']),
  ]);

  t.test('an app that exits at start', async (t) => {
    t.equal(exited.code, 1, 'exits non-zero');
    t.ok(exited.ms < 20_000, `within seconds, not at --timeout (${exited.ms} ms)`);
    t.match(exited.stderr, /==> last lines of logs\/stderr\.log \(instance \w+\) <==\nexits: cannot open config\.json\n/, "the app's last stderr lines");
    t.match(exited.stderr, /==> last lines of logs\/stdout\.log \(instance \w+\) <==\n(.*\n)*exits: starting\n/, 'and stdout');
    t.match(exited.stderr, /skiff push: exits did not start: its instance crashed: app instance exited \(exit status 3\); more: skiff logs exits, skiff crashes exits\n$/);
    t.notMatch(exited.stdout, /is running/);
  });

  t.test('an app with a syntax error', async (t) => {
    t.equal(syntaxed.code, 1);
    t.ok(syntaxed.ms < 20_000, `within seconds (${syntaxed.ms} ms)`);
    t.match(syntaxed.stderr, /const answer = ;\n +\^\n/, 'the line node complains about');
    t.match(syntaxed.stderr, /SyntaxError: Unexpected token ';'/);
    t.match(syntaxed.stderr, /skiff push: syntax did not start: its instance crashed: app instance exited \(exit status 1\)/);
  });

  t.test('an app killed over its memory right after it listened is a failure, not "running"', async (t) => {
    t.equal(hogged.code, 1, `exits non-zero (stdout: ${hogged.stdout.trim().split('\n').pop()})`);
    t.notMatch(hogged.stdout, /is running/);
    t.match(hogged.stderr, /skiff push: hog (crashed right after it started|did not start: its instance crashed): out of memory; /, 'the reason is out of memory');
    t.match(hogged.stderr, /hog: listening/, 'its log shows it got as far as listening');
    t.ok(hogged.ms < 20_000, `${hogged.ms} ms`);
  });

  t.test('a placement no DEA can take says why, at once; scaling to what fits clears it', async (t) => {
    t.equal(huge.code, 1);
    t.match(huge.stderr, /skiff push: huge cannot be placed: no DEA has 8192M free \(largest free: \d+M\)\n$/);
    t.ok(huge.ms < 20_000, `${huge.ms} ms`);
    const view = JSON.parse((await cli(['app', 'huge', '--json'])).stdout) as { placement_error: string | null };
    t.match(view.placement_error, /^no DEA has 8192M free \(largest free: \d+M\)$/, 'the API says it too');
    const scaled = await cli(['scale', 'huge', '--memory', '256M']);
    t.equal(scaled.code, 0, scaled.stderr);
    t.match(scaled.stderr, /1\/1 running/);
    t.equal((JSON.parse((await cli(['app', 'huge', '--json'])).stdout) as { placement_error: string | null }).placement_error, null, 'cleared once placed');
  });

  t.test('restart of a crashing app fails fast too', async (t) => {
    const restarted = await cli(['restart', 'exits']);
    t.equal(restarted.code, 1);
    t.ok(restarted.ms < 20_000, `${restarted.ms} ms`);
    t.match(restarted.stderr, /skiff restart: exits did not start: its instance crashed: app instance exited \(exit status 3\)/);
    t.match(restarted.stderr, /exits: cannot open config\.json/);
  });

  t.test('a fixed push onto the crashed app counts only its own instances', async (t) => {
    writeFileSync(join(exits, 'server.js'), "require('node:http').createServer((q, s) => s.end('fixed')).listen(Number(process.env.PORT));\n");
    const fixed = await cli(['push', exits]);
    t.equal(fixed.code, 0, fixed.stderr);
    t.match(fixed.stdout, /exits is running at http:\/\/exits\.localhost:\d+\//);
    const progress = fixed.stderr.split('\n').filter((line) => /^ {2}\d+\/\d+ running/.test(line));
    t.ok(progress.length > 0, `progress lines: ${progress.join(' | ')}`);
    t.notMatch(progress.join('\n'), /CRASHED|old/, 'no crash records of the earlier version, no old instances');
  });

  t.test('failed first pushes leave no app; a failed push onto an app keeps it', async (t) => {
    const nothing = await cli(['push', empty]);
    t.equal(nothing.code, 1);
    t.match(nothing.stderr, /^skiff push: nothing to push in .*empty/m);
    t.notMatch(nothing.stdout, /created/);

    const unstaged = await cli(['push', notes]);
    t.equal(unstaged.code, 1);
    const all = unstaged.stdout + unstaged.stderr;
    t.equal(occurrences(all, 'no start command'), 1, `the staging error is printed once:\n${all}`);
    t.match(unstaged.stderr, /skiff push: staging failed \(the reason is in the log above\); notes was removed again \(this push had created it\)\n$/);
    t.notOk((await apps()).includes('notes'), 'no app notes');
    t.notOk((await apps()).includes('empty'), 'no app empty');

    const onto = await cli(['push', notes, '--name', 'huge']);
    t.equal(onto.code, 1);
    t.match(onto.stderr, /staging failed \(the reason is in the log above\); the previous version keeps running\n$/);
    t.ok((await apps()).includes('huge'), 'the existing app is kept');
    const still = JSON.parse((await cli(['app', 'huge', '--json'])).stdout) as { runningInstances: number };
    t.equal(still.runningInstances, 1, 'and still runs');
  });
});

// The CLI without any API: help, bad arguments, no target, unreachable target,
// not logged in. Each failure is one line on stderr and a non-zero exit.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './harness';
import { SKIFF_BIN, skiff, skiffOnTerminal, tempHome, type SkiffRun } from './cli_harness';
import { spawn } from 'node:child_process';

function oneErrorLine(t: tap.Test, run: SkiffRun, code: number, pattern: RegExp): void {
  t.equal(run.code, code, `exit ${code}`);
  t.equal(run.stdout, '', 'nothing on stdout');
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `one line: ${run.stderr}`);
  t.match(lines[0], pattern);
}

t.test('help lists the client commands and each command has its own', async (t) => {
  const home = tempHome(t);
  const help = await skiff(['--help'], home);
  t.equal(help.code, 0);
  for (const command of ['push', 'apps', 'scale', 'logs', 'passwd', 'add-user', 'up']) t.match(help.stdout, new RegExp(`\\n  ${command} `));
  // Long names (unbind-service, services-node) keep one column for every description.
  const columns = new Set(help.stdout.split('\n').filter((line) => /^  \S/.test(line)).map((line) => /^  \S+ +/.exec(line)![0].length));
  t.equal(columns.size, 1, 'every command\'s description starts in the same column');
  const push = await skiff(['push', '--help'], home);
  t.equal(push.code, 0);
  t.match(push.stdout, /usage: skiff push \[DIR\]/);
  t.match(push.stdout, /--no-start/);
  t.match(push.stdout, /--session-affinity .*__VCAP_ID__/);
  t.match(push.stdout, /--no-session-affinity /);
  t.notMatch(push.stdout, /\$SKIFF_/, 'client flags are not read from the environment, so help does not name variables');
  const passwd = await skiff(['passwd', '--help'], home);
  t.equal(passwd.code, 0);
  t.match(passwd.stdout, /usage: skiff passwd \[EMAIL\] \[--old P --new P\]/);
  t.match(passwd.stdout, /--old VALUE/);
  t.match(passwd.stdout, /--new VALUE/);
});

t.test('bad arguments: exit 2 with one clear line', async (t) => {
  const home = tempHome(t);
  const cases: Array<[string[], RegExp]> = [
    [['nope'], /^skiff: unknown command "nope"/],
    [['apps', '--bogus'], /^skiff apps: unknown option --bogus$/],
    [['scale', 'shop', '--instances', 'two'], /^skiff scale: --instances must be a number, got "two"$/],
    [['scale', 'shop', '--instances', '-1'], /option --instances needs a value; for one starting with '-' write --instances=VALUE/],
    [['scale', 'shop', '--instances=-1'], /--instances must be a whole number from 0 to 100, got -1/],
    [['scale', 'shop', '--instances', '101'], /^skiff scale: --instances must be a whole number from 0 to 100, got 101$/],
    [['scale', 'shop', '--memory', 'lots'], /^skiff scale: --memory must be a size like 256M or 1G \(units M, MB, G, GB; no unit: MB\), got "lots"$/],
    [['scale', 'shop', '--memory', '128K'], /^skiff scale: --memory must be a size like 256M/],
    // Beyond what the API takes for one instance: refused here, in the user's own units.
    [['scale', 'shop', '--memory', '100G'], /^skiff scale: --memory must be from 16M to 64G, got "100G"$/],
    [['scale', 'shop', '--memory', '8'], /^skiff scale: --memory must be from 16M to 64G, got "8"$/],
    [['push', home, '--name', 'big', '--memory', '100G'], /^skiff push: --memory must be from 16M to 64G, got "100G"$/],
    [['scale', 'shop'], /nothing to change/],
    [['app', 'Bad_Name'], /^skiff app: invalid app name "Bad_Name"/],
    [['app'], /^skiff app: missing app name$/],
    [['app', 'a', 'b'], /unexpected argument "b"/],
    [['env', 'shop', '1X=2'], /invalid variable name "1X"/],
    [['map', 'shop', 'http://x.localhost'], /without http/],
    [['target', 'ftp://x'], /only http/],
    [['push', join(home, 'missing')], /is not a directory$/],
    [['push', home, '--session-affinity', '--no-session-affinity'], /^skiff push: give --session-affinity or --no-session-affinity, not both$/],
    [['add-user', 'not-an-email', '--password', 'p'], /invalid email/],
    // passwd: what is wrong without asking the API (there is no target here) comes first.
    // A stray word may be a misplaced password: not echoed.
    [['passwd', 'a@example.com', 'new-secret-1'], /^skiff passwd: too many arguments \(usage: skiff passwd \[EMAIL\] \[--old P --new P\]\)$/],
    [['passwd', '--old', 'old-secret-1', 'new-secret-1'], /^skiff passwd: EMAIL must be an email address \(usage: skiff passwd \[EMAIL\] \[--old P --new P\]\)$/],
    [['passwd', '--new', 'long-enough-1'], /^skiff passwd: passwd needs --old and --new when not run on a terminal$/],
    [['passwd', '--old', 'old-secret-1'], /^skiff passwd: passwd needs --old and --new when not run on a terminal$/],
    [['passwd', 'a@example.com'], /^skiff passwd: passwd EMAIL needs --new when not run on a terminal$/],
    [['passwd', '--old', 'old-secret-1', '--new='], /^skiff passwd: missing password$/],
    [['passwd', '--old'], /^skiff passwd: option --old needs a value$/],
    // Data services.
    [['marketplace', 'redis'], /^skiff marketplace: unexpected argument "redis"/],
    [['create-service'], /^skiff create-service: missing SERVICE \(skiff marketplace lists them\)$/],
    [['create-service', 'redis'], /^skiff create-service: missing service name$/],
    [['create-service', 'redis', 'My Cache'], /^skiff create-service: invalid service name "My Cache": use lowercase letters/],
    [['create-service', 'redis', 'cache', '--plan', 'Big!'], /^skiff create-service: invalid --plan "Big!"/],
    [['services', 'extra'], /^skiff services: unexpected argument "extra"/],
    [['bind-service', 'cache'], /^skiff bind-service: missing APP \(usage: skiff bind-service NAME APP\)$/],
    [['bind-service', 'cache', 'Bad_App'], /^skiff bind-service: invalid app name "Bad_App"/],
    [['unbind-service', 'Cache!', 'web'], /^skiff unbind-service: invalid service name "Cache!"/],
    [['delete-service'], /^skiff delete-service: missing service name$/],
  ];
  // Independent processes: run them side by side to keep the file quick.
  const runs = await Promise.all(cases.map(([args]) => skiff(args, home)));
  runs.forEach((run, i) => oneErrorLine(t, run, 2, cases[i]![1]));
});

t.test('ssh: bad arguments and no target are one line each', async (t) => {
  const home = tempHome(t);
  oneErrorLine(t, await skiff(['ssh'], home), 2, /^skiff ssh: missing app name/);
  oneErrorLine(t, await skiff(['ssh', 'Shop!'], home), 2, /^skiff ssh: invalid app name/);
  oneErrorLine(t, await skiff(['ssh', 'shop', '--tty', '--no-tty'], home), 2, /not both/);
  oneErrorLine(t, await skiff(['ssh', 'shop', 'ls', '-la'], home), 2, /unknown option -l|-la/);
  oneErrorLine(t, await skiff(['ssh', 'shop', '--', 'ls', '-la'], home), 1, /no target set/);
});

t.test('a reader that goes away (skiff help | head -1) is no error', async (t) => {
  const child = spawn(process.execPath, [SKIFF_BIN, 'help'], { env: { ...process.env, SKIFF_HOME: tempHome(t) }, stdio: ['ignore', 'pipe', 'pipe'] });
  // Our end of its stdout closes before the CLI has started: its first write meets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0, 'exit 0');
  t.notMatch(stderr, /EPIPE|Error/, 'no stack trace');
});

t.test('no target, unreachable target, not logged in', async (t) => {
  const home = tempHome(t);
  oneErrorLine(t, await skiff(['apps'], home), 1, /^skiff apps: no target set: run `skiff target URL`/);
  const port = await freePort();
  oneErrorLine(t, await skiff(['target', `127.0.0.1:${port}`], home), 1, new RegExp(`^skiff target: cannot reach http://127.0.0.1:${port}: connection refused`));
  writeFileSync(join(home, 'config.json'), JSON.stringify({ target: `http://127.0.0.1:${port}` }));
  oneErrorLine(t, await skiff(['apps'], home), 1, /^skiff apps: not logged in to http:\/\/127.0.0.1:\d+: run `skiff login`$/);
  oneErrorLine(t, await skiff(['login', '--email', 'a@b.c'], home), 2, /login needs --email and --password when not run on a terminal/);
  oneErrorLine(t, await skiff(['login', '--email', 'a@b.c', '--password', 'pw'], home), 1, /cannot reach/);
  writeFileSync(join(home, 'config.json'), JSON.stringify({ target: `http://127.0.0.1:${port}`, token: 'tok' }));
  oneErrorLine(t, await skiff(['push', home, '--name', 'shop'], home), 1, /^skiff push: cannot reach/);
  writeFileSync(join(home, 'config.json'), '{broken');
  oneErrorLine(t, await skiff(['apps'], home), 1, /config.json is not valid JSON/);
});

t.test('on a terminal, login asks for what is missing and does not echo the password', async (t) => {
  const home = tempHome(t);
  const port = await freePort();
  writeFileSync(join(home, 'config.json'), JSON.stringify({ target: `http://127.0.0.1:${port}` }));
  const run = await skiffOnTerminal(['login'], home, [['email: ', 'me@example.com'], ['password: ', 'hunter2-secret']]);
  if (run === undefined) {
    t.pass('skipped: util-linux script is not installed');
    return;
  }
  t.equal(run.code, 1);
  t.match(run.stdout, /email: .*me@example\.com/);
  t.match(run.stdout, /password: /);
  t.notMatch(run.stdout + run.stderr, /hunter2/, 'the password is not echoed');
  t.match(run.stdout, /skiff login: cannot reach/, 'it went on to log in with the answers');
});

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { exitStatus, isPtySlave, resizeArgv, sessionArgv, sessionEnv } from './ssh-command';

const launcher = ['setpriv', '--reuid=65534', '--'];

t.test('without a terminal the command runs under sh -c, behind the launcher', async (t) => {
  t.same(sessionArgv(launcher, { command: 'echo $PORT', tty: false, cols: 80, rows: 24 }), [...launcher, '/bin/sh', '-c', 'echo $PORT']);
  t.same(sessionArgv([], { command: '', tty: false, cols: 80, rows: 24 }), ['/bin/sh'], 'no command: sh reads stdin');
});

t.test('with a terminal, script allocates it and stty sizes it', async (t) => {
  const argv = sessionArgv(launcher, { command: '', tty: true, cols: 132, rows: 43 });
  t.same(argv.slice(0, 5), [...launcher, 'script', '-qfec']);
  t.match(argv[5], /^stty cols 132 rows 43 2>\/dev\/null\nexec \/bin\/sh$/);
  t.equal(argv[6], '/dev/null');
});

t.test('a terminal session really gets a terminal of the asked size', { skip: !existsSync('/usr/bin/script') && 'no util-linux script' }, async (t) => {
  const argv = sessionArgv([], { command: 'tty -s && echo on-a-tty; stty size; exit 4', tty: true, cols: 101, rows: 33 });
  const run = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input: '', timeout: 10_000 });
  t.match(run.stdout, /on-a-tty/);
  t.match(run.stdout, /33 101/);
  t.equal(run.status, 4, 'the exit code comes through script');
});

t.test('resizing goes through the launcher and touches pty slaves only', async (t) => {
  t.same(resizeArgv(launcher, '/dev/pts/3', 90, 20), [...launcher, 'stty', '-F', '/dev/pts/3', 'cols', '90', 'rows', '20']);
  t.ok(isPtySlave('/dev/pts/12'));
  for (const path of ['/dev/tty1', '/etc/passwd', '/dev/pts/1/../../sda', 'pipe:[123]']) t.notOk(isPtySlave(path), path);
});

t.test('the session environment is the app\'s, TERM only on a terminal', async (t) => {
  const app = { PORT: '61000', PATH: '/usr/bin:/bin' };
  t.same(sessionEnv(app, false, 'xterm-256color'), app);
  t.same(sessionEnv(app, true, 'xterm-256color'), { ...app, TERM: 'xterm-256color' });
  t.same(sessionEnv(app, true, undefined), { ...app, TERM: 'xterm' });
});

t.test('exit status: the code, else 128 + signal', async (t) => {
  t.equal(exitStatus(3, undefined), 3);
  t.equal(exitStatus(null, 9), 137);
  t.equal(exitStatus(null, undefined), 255);
});

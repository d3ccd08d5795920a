// `skiff passwd` end to end: the compiled CLI against a real `skiff
// controller` on a real nats-server with JetStream.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { skiff, skiffOnTerminal, tempHome } from './cli_harness';
import { ADMIN, startController } from './controller_harness';
import { startNats } from './harness';

const token = (home: string): string => JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')).token;

t.test('skiff passwd against a real controller', async (t) => {
  const nats = await startNats(t);
  const controller = await startController(t, nats);
  const target = `http://127.0.0.1:${controller.port}`;
  const ann = 'ann@example.com';

  const adminHome = tempHome(t);
  t.equal((await skiff(['target', target], adminHome)).code, 0);
  t.equal((await skiff(['login', '--email', ADMIN.email, '--password', ADMIN.password], adminHome)).code, 0);
  t.equal((await skiff(['add-user', ann, '--password', 'ann-password-1'], adminHome)).code, 0);
  const annHome = tempHome(t);
  t.equal((await skiff(['target', target], annHome)).code, 0);
  t.equal((await skiff(['login', '--email', ann, '--password', 'ann-password-1'], annHome)).code, 0);

  await t.test('--old --new changes your own password, logs in again and keeps the new token', async (t) => {
    const before = token(annHome);
    const run = await skiff(['passwd', '--old', 'ann-password-1', '--new', 'ann-password-2'], annHome);
    t.equal(run.code, 0, run.stderr);
    t.equal(run.stdout, `password changed; logged in again as ${ann} with the new password\n`);
    t.equal(run.stderr, '');
    const after = token(annHome);
    t.not(after, before, 'a new token is stored');
    const old = await controller.api.get('/apps', { token: before });
    t.equal(old.status, 401, 'the old token is refused');
    t.match(old.json().description, /log in again/);
    t.equal((await controller.api.get('/info', { token: after })).json().user, ann, "the CLI's new token works");
    t.equal((await skiff(['apps'], annHome)).code, 0, 'and the CLI goes on with it');
    t.equal((await controller.api.post(`/users/${ann}/tokens`, { password: 'ann-password-2' }, { token: null })).status, 200);
    t.notMatch(run.stdout + run.stderr + controller.log(), /ann-password/, 'no password is printed or logged');
  });

  await t.test('API refusals are one line and exit 1; the token is kept', async (t) => {
    const kept = token(annHome);
    const wrong = await skiff(['passwd', '--old', 'not-my-password', '--new', 'ann-password-3'], annHome);
    t.same([wrong.code, wrong.stdout, wrong.stderr], [1, '', 'skiff passwd: the old password is wrong\n']);
    const short = await skiff(['passwd', '--old', 'ann-password-2', '--new', 'short'], annHome);
    t.same([short.code, short.stderr], [1, 'skiff passwd: password must be a string of at least 8 characters\n']);
    const notAdmin = await skiff(['passwd', ADMIN.email, '--new', 'ann-sets-admin-1'], annHome);
    t.same([notAdmin.code, notAdmin.stderr], [1, "skiff passwd: only an admin may set another user's password\n"]);
    t.equal(token(annHome), kept);
    t.equal((await skiff(['apps'], annHome)).code, 0, 'and still works');
  });

  await t.test('bad arguments that need to know who is logged in exit 2', async (t) => {
    const own = await skiff(['passwd', ann, '--new', 'ann-password-3'], annHome);
    t.same([own.code, own.stderr], [2, 'skiff passwd: changing your own password needs --old when not run on a terminal\n']);
    const oldForOther = await skiff(['passwd', ann, '--old', 'x', '--new', 'ann-password-3'], adminHome);
    t.same([oldForOther.code, oldForOther.stderr], [2, `skiff passwd: --old is only for your own password; set ${ann}'s with: skiff passwd ${ann} --new P\n`]);
  });

  await t.test("an admin sets another user's password with EMAIL --new; their CLI must log in again", async (t) => {
    const run = await skiff(['passwd', ann, '--new', 'ann-password-9'], adminHome);
    t.equal(run.code, 0, run.stderr);
    t.equal(run.stdout, `changed the password of ${ann}; their earlier logins no longer work\n`);
    const stale = await skiff(['apps'], annHome);
    t.same([stale.code, stale.stderr], [1, 'skiff apps: not logged in, or the login expired: run `skiff login`\n']);
    t.equal((await skiff(['users'], adminHome)).code, 0, "the admin's own login is untouched");
    t.equal((await skiff(['login', '--email', ann, '--password', 'ann-password-9'], annHome)).code, 0);
    const unknown = await skiff(['passwd', 'nobody@example.com', '--new', 'long-enough-1'], adminHome);
    t.same([unknown.code, unknown.stderr], [1, 'skiff passwd: unknown user nobody@example.com\n']);
  });

  await t.test('on a terminal it asks for the old password and the new one twice, without echo', async (t) => {
    const mismatch = await skiffOnTerminal(['passwd'], annHome, [['old password: ', 'ann-password-9'], ['new password: ', 'ann-password-10'], ['again: ', 'ann-password-11']]);
    if (mismatch === undefined) {
      t.pass('skipped: util-linux script is not installed');
      return;
    }
    t.equal(mismatch.code, 2);
    t.match(mismatch.stdout, /skiff passwd: the new passwords do not match/);
    const run = await skiffOnTerminal(['passwd'], annHome, [['old password: ', 'ann-password-9'], ['new password: ', 'ann-password-10'], ['again: ', 'ann-password-10']]);
    t.equal(run!.code, 0, run!.stdout);
    t.match(run!.stdout, /old password: .*new password: .*new password again: .*password changed; logged in again as ann@example\.com/s);
    t.notMatch(run!.stdout, /ann-password/, 'no password is echoed');
    t.equal((await controller.api.get('/info', { token: token(annHome) })).json().user, ann);
  });
});

// A DEA that dies takes its apps with it, and its next run cleans up.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { eventually, isAlive, startNats } from './harness';
import { ENV_APP, getJson, makeDataDir, putDroplet, recorder, startDea, startRequest, waitGone } from './dea_harness';

// `sh -c` stays the instance's first process and node runs below it: the
// kernel's parent-death signal reaches only sh, so this proves the whole tree goes.
const START = 'echo starting; node server.js';

t.test('SIGKILL of the DEA kills its instances; a restart cleans up', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const dataDir = makeDataDir(t);
  const first = 40000 + Math.floor(Math.random() * 2000) * 10;
  const args = ['--port-range', `${first}-${first + 9}`, '--stop-grace', '2'];
  const sha1 = await putDroplet(rec.bus, { 'server.js': ENV_APP }, START);

  const dea = startDea(t, nats.url, dataDir, args);
  const { id } = await rec.waitFor('dea.advertise', () => true, 'advertise', 15_000);
  const reply: any = await rec.bus.request(`dea.${id}.start`, startRequest({ sha1 }), 5000);
  const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
  const { pid } = await getJson(reg.port, '/env');
  const instanceDir = join(dataDir, 'dea', '0', 'instances', reply.instance);
  t.ok(existsSync(instanceDir));

  dea.child.kill('SIGKILL');
  await dea.exited;
  await waitGone(pid, 'the app (a grandchild of the DEA) dies with it');

  // Something the previous run left behind that the watchdog could not know about.
  mkdirSync(join(dataDir, 'dea', '0', 'instances', 'leftover'));
  const again = startDea(t, nats.url, dataDir, args);
  const second = await rec.waitFor('dea.advertise', (a) => a.id !== id, 'the restarted DEA advertises', 15_000);
  t.not(second.id, id, 'a new DEA id per run');
  t.notOk(existsSync(instanceDir), 'directory of the killed instance removed before advertising');
  t.same(readdirSync(join(dataDir, 'dea', '0', 'instances')), [], 'leftovers removed');
  t.same(readdirSync(join(dataDir, 'dea', '0', 'run')), [], 'records removed');
  t.match(again.log(), /cleaned up after the previous run/);
  await again.stop();
});

t.test('a restart kills orphans the watchdog missed, found by their records', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  const dataDir = makeDataDir(t);
  const first = 40000 + Math.floor(Math.random() * 2000) * 10;
  const args = ['--port-range', `${first}-${first + 9}`];
  const sha1 = await putDroplet(rec.bus, { 'server.js': ENV_APP }, START);
  const dea = startDea(t, nats.url, dataDir, args);
  const { id } = await rec.waitFor('dea.advertise', () => true, 'advertise', 15_000);
  const reply: any = await rec.bus.request(`dea.${id}.start`, startRequest({ sha1 }), 5000);
  const reg = await rec.waitFor('router.register', (r) => r.private_instance_id === reply.instance, 'registered', 15_000);
  const { pid } = await getJson(reg.port, '/env');
  // SIGKILL the watchdog first (as if it had died), then the DEA: the node process outlives both.
  const watchdogPid = Number(/watchdog_pid=(\d+)/.exec(dea.log())?.[1]);
  t.ok(watchdogPid > 0, 'the DEA logs its watchdog');
  process.kill(watchdogPid, 'SIGKILL');
  await eventually(() => !isAlive(watchdogPid), 'watchdog gone');
  dea.child.kill('SIGKILL');
  await dea.exited;
  t.teardown(() => {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  });
  await new Promise((r) => setTimeout(r, 300));
  t.ok(isAlive(pid), 'an orphan is left');

  const again = startDea(t, nats.url, dataDir, args);
  await rec.waitFor('dea.advertise', (a) => a.id !== id, 'the restarted DEA advertises', 15_000);
  await waitGone(pid, 'the orphan is killed by the restarted DEA', 3000);
  await again.stop();
});

t.test('a data dir the app user cannot reach is a clear error', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const nats = await startNats(t);
  const hidden = mkdtempSync(join(tmpdir(), 'skiff-hidden-'));
  chmodSync(hidden, 0o700);
  t.teardown(() => rmSync(hidden, { recursive: true, force: true }));
  const dea = startDea(t, nats.url, join(hidden, 'data'));
  const { code } = await dea.exited;
  t.equal(code, 1);
  t.match(dea.log(), /skiff dea: user nobody cannot reach .*instances: every parent directory must be searchable/);
});

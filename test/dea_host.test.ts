// A real DEA process and its host: dea.max_memory_mb from the config store
// applies without a restart (what it advertises follows each change), a bad
// value is refused with a warning, --memory pins the setting; and at start it
// warns about low inotify limits exactly when the decision on this host's
// /proc values says so.

import t from 'tap';
import { deleteSetting, putSetting } from '../bus/config';
import { inotifyWarning, readInotifyLimits } from '../dea/host-checks';
import { makeDataDir, recorder, startDea } from './dea_harness';
import { eventually, startNats } from './harness';

t.test('dea.max_memory_mb applies live; --memory pins it', async (t) => {
  const nats = await startNats(t);
  const rec = await recorder(t, nats.url);
  await putSetting(rec.bus, 'dea.max_memory_mb', 2048);
  const first = 43000 + Math.floor(Math.random() * 1000) * 10;
  const dea = startDea(t, nats.url, makeDataDir(t), ['--port-range', `${first}-${first + 4}`, '--index', '3']);
  const pinned = startDea(t, nats.url, makeDataDir(t), ['--port-range', `${first + 5}-${first + 9}`, '--index', '4', '--memory', '3000']);
  await eventually(() => /DEA listening/.test(dea.log()) && /DEA listening/.test(pinned.log()), 'both DEAs up', 20_000);
  const idOf = (log: string) => /DEA ready id=(\S+)/.exec(log)?.[1];
  const id = idOf(dea.log())!;
  const pinnedId = idOf(pinned.log())!;
  const advertised = async (deaId: string, memory: number, what: string) => {
    const since = rec.messages.length;
    // dea.locate: every DEA advertises at once instead of within 5 s.
    rec.bus.publish('dea.locate', {});
    await eventually(() => rec.messages.slice(since).some((m) => m.subject === 'dea.advertise' && m.body.id === deaId && m.body.available_memory === memory), what);
    t.pass(what);
  };
  await advertised(id, 2048, 'the stored 2048 MB read at start');
  await advertised(pinnedId, 3000, '--memory wins over the store');

  await putSetting(rec.bus, 'dea.max_memory_mb', 1024);
  await advertised(id, 1024, 'a change applied without a restart');
  await putSetting(rec.bus, 'dea.max_memory_mb', 'lots');
  await eventually(() => /ignoring invalid dea\.max_memory_mb, using the default error="dea\.max_memory_mb must be a number/.test(dea.log()), 'the bad value reported');
  await advertised(id, 4096, 'a bad value: the default, not a crash');
  await putSetting(rec.bus, 'dea.max_memory_mb', 1536);
  await advertised(id, 1536, 'a good value again');
  await deleteSetting(rec.bus, 'dea.max_memory_mb');
  await advertised(id, 4096, 'unset: the default');
  await advertised(pinnedId, 3000, 'the pinned DEA never moved');
});

t.test('inotify limits: the DEA warns at start when this host is below the seed values, with the sysctl line', async (t) => {
  const nats = await startNats(t);
  const expected = inotifyWarning(readInotifyLimits());
  const first = 44000 + Math.floor(Math.random() * 1000) * 10;
  const dea = startDea(t, nats.url, makeDataDir(t), ['--port-range', `${first}-${first + 4}`]);
  await eventually(() => /DEA listening/.test(dea.log()), 'the DEA up', 20_000);
  if (expected === undefined) {
    t.notMatch(dea.log(), /fs\.inotify/, 'limits are high enough here: no warning');
  } else {
    t.ok(dea.log().includes(expected), `the warning: ${expected}`);
    t.match(dea.log(), /WARN .*`sysctl -w fs\.inotify\./);
  }
});

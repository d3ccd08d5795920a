import t from 'tap';
import { openComponentConfig, putSetting } from '../../bus/config';
import { connectBus } from '../../bus/connection';
import { captureLog, eventually, startNats } from '../../test/harness';
import { applyLiveSettings } from './live-settings';
import { StagerService } from './service';
import { Stager } from './stager';

t.test('stager.max_jobs and stager.command_timeout apply at start and on change', async (t) => {
  const nats = await startNats(t);
  const { logger, lines } = captureLog();
  const bus = await connectBus({ servers: nats.url, name: 'live-test', logger });
  t.teardown(() => bus.close());
  await putSetting(bus, 'stager.max_jobs', 3);
  const stager = new Stager(bus, { workDir: '/nonexistent', limits: { maxBytes: 1, maxEntries: 1 }, commandTimeoutMs: 900_000, commandPath: '', maxPackageBytes: 1, buildUids: null }, logger);
  const service = new StagerService(bus, stager, { queue: 'default', maxJobs: 2, maxWaiting: 0 }, logger);
  const config = await openComponentConfig(bus, 'stager', logger);
  t.teardown(() => config.close());
  applyLiveSettings(config, { service, stager }, { maxJobs: 2, commandTimeoutMs: 900_000, pinned: { maxJobs: false, commandTimeout: false } }, logger);
  t.equal(service.maxJobs, 3, 'read at start');

  await putSetting(bus, 'stager.command_timeout', 60);
  await eventually(() => stager.commandTimeoutMs === 60_000, 'command timeout applied live');
  await putSetting(bus, 'stager.max_jobs', 'lots');
  await eventually(() => lines.some((line) => line.includes('ignoring invalid stager.max_jobs')), 'bad value logged');
  t.equal(service.maxJobs, 3, 'a bad value changes nothing');
});

t.test('a setting given by flag or environment is not overridden', async (t) => {
  const nats = await startNats(t);
  const { logger } = captureLog();
  const bus = await connectBus({ servers: nats.url, name: 'live-test', logger });
  t.teardown(() => bus.close());
  await putSetting(bus, 'stager.max_jobs', 7);
  const stager = new Stager(bus, { workDir: '/nonexistent', limits: { maxBytes: 1, maxEntries: 1 }, commandTimeoutMs: 900_000, commandPath: '', maxPackageBytes: 1, buildUids: null }, logger);
  const service = new StagerService(bus, stager, { queue: 'default', maxJobs: 1, maxWaiting: 0 }, logger);
  const config = await openComponentConfig(bus, 'stager', logger);
  t.teardown(() => config.close());
  applyLiveSettings(config, { service, stager }, { maxJobs: 1, commandTimeoutMs: 900_000, pinned: { maxJobs: true, commandTimeout: false } }, logger);
  t.equal(service.maxJobs, 1);
});

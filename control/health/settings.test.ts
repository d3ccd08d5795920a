import t from 'tap';
import { DEFAULT_SETTINGS, resolveSettings } from './settings';

t.test('defaults are Cloud Foundry v1\'s, in ms', async (t) => {
  t.same(DEFAULT_SETTINGS, {
    dropletLostMs: 30_000, flappingTimeoutMs: 500_000, flappingDeath: 1, minRestartDelayMs: 60_000,
    maxRestartDelayMs: 480_000, giveupCrashNumber: 4, analysisIntervalMs: 10_000,
  });
});

t.test('store values apply, flags beat them, bad values are reported and ignored', async (t) => {
  const problems: string[] = [];
  const s = resolveSettings(
    { droplet_lost: 3, min_restart_delay: 0.5, max_restart_delay: 4, giveup_crash_number: 'four', flapping_death: 1.5, analysis_interval: 0, unknown: 1 },
    { dropletLostMs: 7000 },
    (setting, error) => problems.push(`${setting}: ${error}`),
  );
  t.equal(s.dropletLostMs, 7000, 'the flag wins');
  t.equal(s.minRestartDelayMs, 500);
  t.equal(s.maxRestartDelayMs, 4000);
  t.equal(s.giveupCrashNumber, 4, 'not a number: default');
  t.equal(s.flappingDeath, 1, 'not an integer: default');
  t.equal(s.analysisIntervalMs, 10_000, 'a zero period: default');
  t.same(problems, [
    'flapping_death: health.flapping_death must be a whole number 0-1000',
    'giveup_crash_number: health.giveup_crash_number must be a number (0-1000)',
    'analysis_interval: health.analysis_interval must be 0.05-86400 seconds',
  ]);
});

t.test('a max delay below the min delay is raised to it', async (t) => {
  const problems: string[] = [];
  const s = resolveSettings({ min_restart_delay: 10, max_restart_delay: 2 }, {}, (setting) => problems.push(setting));
  t.equal(s.maxRestartDelayMs, 10_000);
  t.same(problems, ['max_restart_delay']);
});

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMPONENTS, parseSettingKey } from './config';
import { checkRelations, checkSetting, SETTINGS, settingsTable } from './settings';

t.test('every key is a valid store key of a known component, listed once', async (t) => {
  const keys = SETTINGS.map((def) => def.key);
  t.equal(new Set(keys).size, keys.length, 'no key twice');
  for (const def of SETTINGS) {
    const { component } = parseSettingKey(def.key);
    t.ok((COMPONENTS as readonly string[]).includes(component), `${def.key}: component ${component}`);
    t.ok(checkSetting(def.key, def.default).ok, `${def.key}: its default passes its own rule`);
  }
});

t.test('values are checked per key, errors name the rule and never the value', async (t) => {
  t.same(checkSetting('router.lb_algorithm', 'least-connection'), { ok: true, value: 'least-connection' });
  t.same(checkSetting('router.lb_algorithm', 'fastest'), { ok: false, error: 'router.lb_algorithm must be one of round-robin, least-connection' });
  t.same(checkSetting('stager.max_jobs', 64), { ok: true, value: 64 });
  t.same(checkSetting('stager.max_jobs', 65), { ok: false, error: 'stager.max_jobs must be a whole number 1-64' });
  t.same(checkSetting('stager.max_jobs', 2.5), { ok: false, error: 'stager.max_jobs must be a whole number 1-64' });
  t.same(checkSetting('stager.max_jobs', '3'), { ok: false, error: 'stager.max_jobs must be a number (1-64)' }, 'a string of digits is not a number');
  t.same(checkSetting('stager.command_timeout', 0.5), { ok: false, error: 'stager.command_timeout must be 1-86400 seconds' });
  t.same(checkSetting('health.analysis_interval', 0.05), { ok: true, value: 0.05 });
  t.same(checkSetting('dea.max_memory_mb', null), { ok: false, error: 'dea.max_memory_mb must be a number (1-16777216 MB)' });
  t.same(checkSetting('dea.max_memory', 1), { ok: false, error: 'unknown setting dea.max_memory' });
  const secret = 'hunter2-secret';
  const refused = checkSetting('router.lb_algorithm', secret);
  t.ok(!refused.ok && !refused.error.includes(secret), 'the value is not echoed');
});

t.test('min and max restart delay may not cross', async (t) => {
  const stored: Record<string, unknown> = { 'health.min_restart_delay': 100 };
  const current = (key: string) => stored[key];
  t.equal(checkRelations('health.max_restart_delay', 50, current), 'health.max_restart_delay (50) must not be below health.min_restart_delay (100): change the other one first');
  t.equal(checkRelations('health.max_restart_delay', 100, current), undefined);
  t.match(checkRelations('health.min_restart_delay', 600, () => undefined), /below health.min_restart_delay \(600\)/, 'against the default max (480)');
  t.equal(checkRelations('router.lb_algorithm', 'round-robin', current), undefined);
});

t.test("the README's table of keys is the registry's", async (t) => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  t.ok(readme.includes(settingsTable()), 'README.md holds settingsTable() verbatim; paste its output when a key changes');
});

import t from 'tap';
import { describeChange } from './events';
import type { AppRecord } from './store';

const app = (overrides: Partial<AppRecord> = {}): AppRecord => ({
  id: 'app1', name: 'shop', owner: 'ann@example.com', state: 'STARTED', instances: 2, memory: 256, disk: 1024,
  uris: ['shop.localhost'], env: { A: '1', SECRET: 'hunter2' }, command: null, package_state: 'STAGED', staging_error: null,
  droplet: 'abc', droplet_object: 'abc', staging: null, bits: null, staging_id: null, run_count: 1, last_updated: 100, created: 100, updated: 100,
  ...overrides,
});

t.test('a change of desired state reads as events', async (t) => {
  t.same(describeChange(app(), app({ state: 'STOPPED' })), [{ type: 'stopped', description: 'stopped' }]);
  t.same(describeChange(app({ state: 'STOPPED' }), app()), [{ type: 'started', description: 'started with 2 instances' }]);
  t.same(describeChange(app(), app({ instances: 3 })), [{ type: 'scaled', description: 'instances 2 -> 3' }]);
  t.same(describeChange(app(), app({ memory: 512, uris: ['a.localhost'] })), [{ type: 'updated', description: 'memory 256M -> 512M; uris a.localhost' }]);
  t.same(describeChange(app(), app({ session_affinity: true })), [{ type: 'updated', description: 'session affinity on' }]);
  t.same(describeChange(app({ session_affinity: true }), app({ session_affinity: false })), [{ type: 'updated', description: 'session affinity off' }]);
  t.same(describeChange(app(), app({ session_affinity: false })), [], 'absent is off');
  t.same(describeChange(app(), app()), [], 'nothing changed, nothing recorded');
});

t.test('env changes name the variables, never their values', async (t) => {
  const [event] = describeChange(app(), app({ env: { A: '1', SECRET: 'swordfish', NEW: 'x' } }));
  t.equal(event!.description, 'env NEW, SECRET');
  t.notMatch(event!.description, /swordfish|hunter2/);
});

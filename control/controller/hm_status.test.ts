import t from 'tap';
import { shownState } from './hm_status';

t.test('an app shows FLAPPING only while started with an index the health manager reports flapping', async (t) => {
  t.equal(shownState('STARTED', { ok: true, indices: new Set([1]) }), 'FLAPPING');
  t.equal(shownState('STARTED', { ok: true, indices: new Set() }), 'STARTED', 'no flapping index');
  t.equal(shownState('STOPPED', { ok: true, indices: new Set([0]) }), 'STOPPED', 'a stopped app is stopped, whatever the manager remembers');
  t.equal(shownState('STARTED', { ok: false, reason: 'no-health-manager', error: 'no responders' }), 'STARTED', 'no health manager: the desired state');
  t.equal(shownState('STARTED', { ok: false, reason: 'unavailable', error: 'timeout' }), 'STARTED', 'no answer in time: the desired state');
  t.equal(shownState('STARTED', undefined), 'STARTED', 'not asked (not staged)');
});

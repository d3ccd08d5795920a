import t from 'tap';
import { readAppRecord } from './desired';

t.test('an app record gives the fields the health manager needs, and nothing else', async (t) => {
  const record = {
    id: 'a1', name: 'shop', owner: 'ann@example.com', state: 'STARTED', instances: 2, memory: 256, env: { SECRET: 'x' },
    droplet: 'abc', run_count: 3, last_updated: 1764100000, package_state: 'STAGED',
  };
  t.same(readAppRecord(record), { id: 'a1', name: 'shop', state: 'STARTED', instances: 2, droplet: 'abc', run_count: 3, last_updated: 1764100000 });
  t.same(readAppRecord({ ...record, droplet: null }), { id: 'a1', name: 'shop', state: 'STARTED', instances: 2, droplet: null, run_count: 3, last_updated: 1764100000 });
});

t.test('a record without them is an error naming the field', async (t) => {
  const good = { id: 'a1', state: 'STOPPED', instances: 1, droplet: null, run_count: 0, last_updated: 1 };
  t.equal(readAppRecord('x'), 'record must be an object');
  t.equal(readAppRecord({ ...good, id: '' }), 'id must be a non-empty string');
  t.equal(readAppRecord({ ...good, state: 'RUNNING' }), 'state must be STARTED or STOPPED');
  t.equal(readAppRecord({ ...good, instances: -1 }), 'instances must be an integer >= 0');
  t.equal(readAppRecord({ ...good, droplet: 5 }), 'droplet must be a string or null');
  t.equal(readAppRecord({ ...good, run_count: 'x' }), 'run_count must be an integer >= 0');
  t.equal(readAppRecord({ ...good, last_updated: null }), 'last_updated must be a number');
  t.equal(typeof readAppRecord(good), 'object');
});

import t from 'tap';
import { summariseInstances } from './wait';

t.test('counts running instances against the wanted number', async (t) => {
  t.same(summariseInstances([], 0), { running: 0, done: true, text: '0/0 running' });
  t.same(summariseInstances([{ index: 0, state: 'STARTING' }], 1), { running: 0, done: false, text: '0/1 running (1 STARTING)' });
  t.same(
    summariseInstances([{ index: 0, state: 'RUNNING' }, { index: 1, state: 'CRASHED' }, { index: 2, state: 'DOWN' }], 3),
    { running: 1, done: false, text: '1/3 running (1 CRASHED, 1 DOWN)' },
  );
  t.same(summariseInstances([{ index: 0, state: 'RUNNING' }, { index: 1, state: 'RUNNING' }], 2).done, true);
});

t.test('instances older than the push do not count', async (t) => {
  const old = { index: 0, state: 'RUNNING', since: 100 };
  const fresh = { index: 0, state: 'RUNNING', since: 200 };
  t.same(summariseInstances([old], 1, 150), { running: 0, done: false, text: '0/1 running (1 RUNNING (old))' });
  t.same(summariseInstances([fresh], 1, 150).done, true);
});

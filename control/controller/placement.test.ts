import t from 'tap';
import { DeaPool } from './placement';

function ad(id: string, available_memory: number, runtimes = ['node'], app_id_to_count: Record<string, number> = {}) {
  return { id, available_memory, runtimes, app_id_to_count };
}

t.test('instances of one app spread across DEAs before doubling up', async (t) => {
  const pool = new DeaPool();
  pool.advertise(ad('a', 4096), 0);
  pool.advertise(ad('b', 1024), 0);
  const req = { appId: 'app', runtime: 'node', memoryMb: 256 };
  const chosen = [pool.choose(req, 1), pool.choose(req, 1), pool.choose(req, 1)];
  t.same(chosen, ['a', 'b', 'a'], 'most free memory first, then the DEA with fewer of this app');
});

t.test('DEAs already running the app are counted from the advertisement', async (t) => {
  const pool = new DeaPool();
  pool.advertise(ad('a', 4096, ['node'], { app: 2 }), 0);
  pool.advertise(ad('b', 512, ['node'], { app: 0, other: 5 }), 0);
  t.equal(pool.choose({ appId: 'app', runtime: 'node', memoryMb: 256 }, 0), 'b');
});

t.test('a DEA without the runtime or the memory is never chosen', async (t) => {
  const pool = new DeaPool();
  pool.advertise(ad('small', 128, ['node', 'python']), 0);
  pool.advertise(ad('static-only', 8192, ['static']), 0);
  t.equal(pool.choose({ appId: 'x', runtime: 'python', memoryMb: 256 }, 0), undefined);
  t.equal(pool.choose({ appId: 'x', runtime: 'python', memoryMb: 128 }, 0), 'small');
  t.equal(pool.choose({ appId: 'x', runtime: 'python', memoryMb: 128 }, 0), undefined, 'memory charged until the next advertisement');
  t.equal(pool.choose({ appId: 'x', runtime: 'static', memoryMb: 4096 }, 0), 'static-only');
});

t.test('a DEA silent for more than 10 s is dropped', async (t) => {
  const pool = new DeaPool();
  pool.advertise(ad('a', 4096), 0);
  t.same(pool.live(10_000), ['a']);
  t.equal(pool.choose({ appId: 'x', runtime: 'node', memoryMb: 1 }, 10_001), undefined);
  t.equal(pool.size(10_001), 0);
  pool.advertise(ad('a', 4096), 10_002);
  t.equal(pool.size(10_003), 1, 'back once it advertises again');
});

t.test('whyNot says what no DEA offers, with the numbers', async (t) => {
  const pool = new DeaPool();
  const req = { appId: 'x', runtime: 'node', memoryMb: 8192 };
  t.equal(pool.whyNot(req, 0), 'no DEA is running');
  pool.advertise(ad('a', 3584, ['node']), 0);
  pool.advertise(ad('b', 1024, ['node', 'python']), 0);
  pool.advertise(ad('s', 16384, ['static']), 0);
  t.equal(pool.choose(req, 0), undefined);
  t.equal(pool.whyNot(req, 0), 'no DEA has 8192M free (largest free: 3584M)', 'the largest among DEAs with the runtime');
  t.equal(pool.whyNot({ appId: 'x', runtime: 'java', memoryMb: 256 }, 0), 'no DEA runs java apps (the DEAs run: node, python, static)');
  pool.choose({ appId: 'x', runtime: 'node', memoryMb: 3000 }, 0);
  t.equal(pool.whyNot(req, 0), 'no DEA has 8192M free (largest free: 1024M)', 'what was placed since the advertisement counts');
  t.equal(pool.whyNot(req, 60_000), 'no DEA is running', 'expired DEAs are gone');
});

t.test('DEAs to avoid (silent about the app\'s instances) are chosen only when no other fits', async (t) => {
  const pool = new DeaPool();
  pool.advertise(ad('a', 4096, ['node'], { app: 1 }), 0);
  pool.advertise(ad('b', 1024, ['node'], { app: 1 }), 0);
  const req = { appId: 'app', runtime: 'node', memoryMb: 256 };
  t.same(pool.holding('app', 1).sort(), ['a', 'b'], 'both advertise instances of the app');
  t.equal(pool.choose(req, 1, new Set(['a'])), 'b', 'the other DEA, though it has less memory');
  t.equal(pool.choose({ ...req, memoryMb: 2048 }, 1, new Set(['a'])), 'a', 'the avoided one when nothing else fits');
  t.same(pool.holding('app', 1).sort(), ['a', 'b'], 'placements charged since do not count as advertised');
  t.same(pool.holding('other', 1), []);
});

// Autoscaling on a real platform (`skiff up` on free ports): an app pushed
// with `--min 1 --max 4 --target-rps 50` gets a steady 200 req/s through the
// router (autocannon, as `skiff bench` uses it), scales out to at least 3
// instances within a minute without a failed request, and once the load
// stops comes back to 1 after `autoscale.scale_in_delay` (5 s here, set
// through the config store). Each decision is an event with its reason.

import { join } from 'node:path';
import t from 'tap';
import { finish, skiff, spawnSkiff, tempHome } from '../cli_harness';
import { eventually, sleep } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const LOAD_APP = join(__dirname, '..', 'fixtures', 'load-app');
const RATE = 200;

interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { total: number };
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (options: Record<string, unknown>, done: (error: Error | null, result: AutocannonResult) => void) => { stop(): void };

interface AppView {
  instances: number;
  runningInstances: number;
}

interface AppEvent {
  type: string;
  actor: string;
  description: string;
}

t.test('an app scales out with its traffic, without a failed request, and back in once it stops', async (t) => {
  const dataDir = platformDataDir(t, 'skiff-autoscale-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 400_000);
  await eventually(() => platform.out().includes('router: '), 'skiff up to print its router line', 90_000);
  for (const [key, value] of [['autoscale.scale_in_delay', '5'], ['autoscale.interval', '1']]) {
    const set = await skiff(['config', 'set', key!, value!], home);
    t.equal(set.code, 0, `config set ${key} ${value} (${set.stderr.trim()})`);
  }
  const pushed = await finish(spawnSkiff(['push', LOAD_APP, '--memory', '64M', '--min', '1', '--max', '4', '--target-rps', '50'], home), 180_000);
  t.equal(pushed.code, 0, `push with a policy (${pushed.stderr.trim().split('\n').slice(-2).join(' | ')})`);
  const shown = await skiff(['app', 'load-app'], home);
  t.match(shown.stdout, /^autoscale:\s+1-4 instances, 50 req\/s per instance$/m, 'skiff app shows the policy');

  const view = async (): Promise<AppView> => JSON.parse((await skiff(['app', 'load-app', '--json'], home)).stdout) as AppView;
  const events = async (): Promise<AppEvent[]> => JSON.parse((await skiff(['events', 'load-app', '--json'], home)).stdout) as AppEvent[];
  t.equal((await view()).instances, 1, 'starts with min instances');

  // A steady rate that needs four instances at 50 req/s each.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require('autocannon') as Autocannon;
  let finished: AutocannonResult | undefined;
  let failure: Error | undefined;
  const load = autocannon(
    { url: `http://127.0.0.1:${ports.router}/`, headers: { host: 'load-app.localhost' }, connections: 8, overallRate: RATE, duration: 120 },
    (error, result) => {
      failure = error ?? undefined;
      finished = result;
    },
  );
  t.teardown(() => load.stop());
  const loadStart = Date.now();
  let peak = 1;
  try {
    await eventually(async () => {
      const app = await view();
      peak = Math.max(peak, app.runningInstances);
      return app.runningInstances >= 3;
    }, 'at least 3 running instances', 60_000);
  } finally {
    t.ok(peak >= 3, `scaled out to ${peak} running instances in ${((Date.now() - loadStart) / 1000).toFixed(1)} s (at most 60 s)`);
  }
  // A little more load on the new instances, then stop.
  await sleep(3000);
  load.stop();
  await eventually(() => finished !== undefined || failure !== undefined, 'the load run to end', 20_000);
  t.equal(failure, undefined, 'the load run ended without an error');
  t.ok(finished!.requests.total > RATE * 3, `requests were made (${finished!.requests.total})`);
  t.equal(finished!.errors, 0, 'no connection error or timeout');
  t.equal(finished!.non2xx, 0, `no failed request (${JSON.stringify(finished!.statusCodeStats)})`);

  const out = (await events()).filter((e) => e.type === 'autoscaled');
  t.ok(out.length >= 1, 'the scale-out is an event');
  t.match(out[0], { actor: 'autoscaler', description: /^autoscaled 1 -> [2-4]: \d+(\.\d)? req\/s per instance > 50$/ }, `with its reason (${out[0]?.description})`);

  // The load is over: after the 5 s delay, back to one instance.
  const quiet = Date.now();
  await eventually(async () => {
    const app = await view();
    return app.instances === 1 && app.runningInstances === 1;
  }, 'back to 1 instance', 90_000);
  t.pass(`back to 1 instance ${((Date.now() - quiet) / 1000).toFixed(1)} s after the load stopped`);
  const all = (await events()).filter((e) => e.type === 'autoscaled');
  t.match(all.at(-1), { actor: 'autoscaler', description: /^autoscaled [2-4] -> 1: \d+(\.\d)? req\/s per instance < 50 for 5 s$/ }, `the scale-in says why (${all.at(-1)?.description})`);

  const shownAfter = await skiff(['autoscale', 'load-app'], home);
  t.equal(shownAfter.code, 0);
  t.match(shownAfter.stdout, /^autoscale:\s+1-4 instances, 50 req\/s per instance$/m);
  t.match(shownAfter.stdout, /autoscaled\s+autoscaler\s+autoscaled 1 -> /, 'skiff autoscale shows the last decisions');
});

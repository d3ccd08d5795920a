import t from 'tap';
import { silentLogger } from '../bus/log';
import { Drainer, type DrainTarget } from './drain';
import { parseRouterOptions } from './options';

function fakeTarget() {
  const calls: string[] = [];
  const state = { inFlight: 0, ws: 0 };
  const target: DrainTarget = {
    markUnhealthy: () => calls.push('unhealthy'),
    stopAccepting: () => calls.push('stopAccepting'),
    inFlight: () => state.inFlight,
    openWebSockets: () => state.ws,
    closeWebSockets: (code, reason) => {
      calls.push(`closeWebSockets ${code} ${reason}`);
      state.ws = 0;
    },
    closeConnections: () => calls.push('closeConnections'),
  };
  return { calls, state, target };
}

t.test('order: unhealthy, wait, stop accepting, 1001 to WebSockets, in-flight done, close connections', async (t) => {
  const { calls, state, target } = fakeTarget();
  state.inFlight = 2;
  state.ws = 3;
  const drainer = new Drainer(target, silentLogger);
  const started = Date.now();
  const done = drainer.drain(100, 5000);
  t.same(calls, ['unhealthy'], 'health first');
  t.ok(drainer.draining);
  await new Promise((r) => setTimeout(r, 150));
  t.same(calls, ['unhealthy', 'stopAccepting', 'closeWebSockets 1001 router shutting down'], 'after the wait');
  state.inFlight = 0;
  const result = await done;
  t.same(calls.at(-1), 'closeConnections');
  t.same(result.timedOut, false);
  t.equal(result.cut, 0);
  t.ok(Date.now() - started >= 100);
});

t.test('a second drain (SIGTERM) joins the first and ends its wait; the timeout cuts', async (t) => {
  const { calls, state, target } = fakeTarget();
  state.inFlight = 1;
  const drainer = new Drainer(target, silentLogger);
  const first = drainer.drain(60_000, 200);
  const second = drainer.drain(0, 200);
  t.equal(first, second, 'same drain');
  const result = await first;
  t.same(result, { timedOut: true, cut: 1, ms: result.ms });
  t.ok(result.ms < 1000, 'the 60 s wait was cut short');
  t.notOk(calls.some((c) => c.startsWith('closeWebSockets')), 'no WebSockets, no close frames');
});

t.test('force() ends the wait for in-flight requests', async (t) => {
  const { state, target } = fakeTarget();
  state.inFlight = 1;
  const drainer = new Drainer(target, silentLogger);
  const done = drainer.drain(0, 60_000);
  setTimeout(() => drainer.force(), 50);
  const result = await done;
  t.equal(result.timedOut, true);
  t.ok(result.ms < 1000);
});

t.test('drain and access log flags: gorouter defaults', async (t) => {
  const o = parseRouterOptions([], {}, () => 's');
  t.equal(o.drainWaitMs, 20_000, '--drain-wait 20 (gorouter drain_wait)');
  t.equal(o.drainTimeoutMs, 900_000, '--drain-timeout 900 (gorouter drain_timeout)');
  t.equal(o.accessLogBufferBytes, 4096 * 1024);
  const set = parseRouterOptions(['--drain-wait', '0', '--drain-timeout', '2.5', '--access-log-buffer-kb', '64'], {}, () => 's');
  t.equal(set.drainWaitMs, 0);
  t.equal(set.drainTimeoutMs, 2500);
  t.equal(set.accessLogBufferBytes, 65536);
  t.throws(() => parseRouterOptions([], { SKIFF_ROUTER_DRAIN_TIMEOUT: '-1' }, () => 's'), { message: /SKIFF_ROUTER_DRAIN_TIMEOUT must be at least 0/ });
});

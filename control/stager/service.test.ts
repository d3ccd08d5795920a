// The service's scheduling on a real nats-server, with a stager stand-in
// whose jobs finish when the test says: how many run at once, what waits,
// what is refused, and that one stager of a group takes each job.

import t from 'tap';
import { connectBus, type Bus } from '../../bus/connection';
import type { StagerReply, StagerRequest } from '../../bus/messages';
import { Subjects } from '../../bus/subjects';
import { captureLog, eventually, startNats, type TeardownHost } from '../../test/harness';
import { StagerService, type Stages } from './service';

class GatedStager implements Stages {
  readonly started: string[] = [];
  private readonly gates = new Map<string, () => void>();

  stage(request: StagerRequest, signal?: AbortSignal): Promise<StagerReply> {
    this.started.push(request.app);
    return new Promise((resolve) => {
      const done = () => resolve({ droplet: 'd', sha1: 'd', runtime: 'node', framework: 'node', start_command: `for ${request.app}`, log: '' });
      this.gates.set(request.app, done);
      signal?.addEventListener('abort', () => resolve({ error: 'staging cancelled', log: '' }));
    });
  }

  finish(app: string): void {
    this.gates.get(app)?.();
  }
}

const request = (app: string): StagerRequest => ({ app, bits: `${app}.sha`, sha: 'sha', manifest: { command: null, env: {} } });

async function setup(t: TeardownHost, maxJobs: number, maxWaiting: number, services = 1) {
  const nats = await startNats(t, { jetstream: false });
  const { logger } = captureLog();
  const bus: Bus = await connectBus({ servers: nats.url, name: 'service-test', logger });
  t.teardown(() => bus.close());
  const stagers = Array.from({ length: services }, () => new GatedStager());
  const running = stagers.map((stager) => {
    const service = new StagerService(bus, stager, { queue: 'default', maxJobs, maxWaiting }, logger);
    service.start();
    t.teardown(() => service.stop());
    return service;
  });
  await bus.flush();
  const ask = (app: string) => bus.request<StagerReply>(Subjects.stager('default'), request(app), 10_000);
  return { bus, stagers, services: running, ask };
}

t.test('runs maxJobs at a time, queues the next ones in order, refuses beyond', async (t) => {
  const { stagers: [stager], services: [service], ask } = await setup(t, 2, 1);
  const a = ask('a');
  const b = ask('b');
  await eventually(() => stager!.started.length === 2, 'two jobs started');
  const c = ask('c');
  await eventually(() => service!.waitingJobs === 1, 'third job waits');
  t.match(await ask('d'), { error: 'all stagers are busy; push again in a minute' });
  t.same(stager!.started, ['a', 'b'], 'the waiting job has not started');
  stager!.finish('b');
  t.match(await b, { start_command: 'for b' });
  await eventually(() => stager!.started.length === 3, 'the waiting job starts when a slot frees');
  stager!.finish('a');
  stager!.finish('c');
  t.match(await a, { start_command: 'for a' });
  t.match(await c, { start_command: 'for c' });
});

t.test('one stager of the queue group takes each job', async (t) => {
  const { stagers, ask } = await setup(t, 4, 4, 2);
  const replies = ['p', 'q', 'r', 's'].map((app) => ask(app));
  await eventually(() => stagers[0]!.started.length + stagers[1]!.started.length === 4, 'all four started');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same([...stagers[0]!.started, ...stagers[1]!.started].sort(), ['p', 'q', 'r', 's'], 'each job once, by one stager');
  for (const s of stagers) for (const app of s.started) s.finish(app);
  await Promise.all(replies);
});

t.test('stopping answers waiting jobs and cancels running ones', async (t) => {
  const { stagers: [stager], services: [service], ask } = await setup(t, 1, 5);
  const running = ask('x');
  await eventually(() => stager!.started.length === 1, 'started');
  const waiting = ask('y');
  await eventually(() => service!.waitingJobs === 1, 'waiting');
  await service!.stop();
  t.match(await running, { error: 'staging cancelled' });
  t.match(await waiting, { error: 'the stager is stopping; push again' });
});

t.test('raising the job limit starts waiting jobs at once', async (t) => {
  const { stagers: [stager], services: [service], ask } = await setup(t, 1, 5);
  const first = ask('m');
  await eventually(() => stager!.started.length === 1, 'first started');
  const second = ask('n');
  await eventually(() => service!.waitingJobs === 1, 'second waits');
  service!.setMaxJobs(2);
  t.same(stager!.started, ['m', 'n']);
  stager!.finish('m');
  stager!.finish('n');
  await Promise.all([first, second]);
});

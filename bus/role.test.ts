import t from 'tap';
import { captureLog } from '../test/harness';
import { untilStopSignal } from './role';

/** As the process delivers a signal: the listener gets its name. */
const deliver = (signal: NodeJS.Signals): boolean => (process.emit as (event: string, ...args: unknown[]) => boolean)(signal, signal);

t.test('the first SIGTERM or SIGINT resolves; a second one is absorbed', async (t) => {
  const { logger, lines } = captureLog('role', 'info');
  const before = { SIGTERM: process.listeners('SIGTERM'), SIGINT: process.listeners('SIGINT') };
  t.teardown(() => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const)
      for (const listener of process.listeners(signal)) if (!before[signal].includes(listener)) process.removeListener(signal, listener);
  });
  const stopped = untilStopSignal(logger, 'stopping all');
  deliver('SIGINT');
  t.equal(await stopped, 'SIGINT');
  deliver('SIGTERM'); // without a listener this would end the process
  t.equal(lines.filter((l) => /stopping all/.test(l)).length, 1, 'logged once');
  t.equal(process.listenerCount('SIGTERM'), before.SIGTERM.length + 1, 'still listening while the role stops');
});

import { spawn } from 'node:child_process';
import t from 'tap';
import { eventually, isAlive } from '../test/harness';
import { GroupWatchdog } from './watchdog';

function sleeper(): number {
  const child = spawn('/bin/sh', ['-c', 'sleep 30; echo done'], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid!;
}

t.test('closing kills the groups still watched, and only those', async (t) => {
  const watched = sleeper();
  const forgotten = sleeper();
  t.teardown(() => {
    for (const pid of [watched, forgotten]) try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  });
  const dog = new GroupWatchdog();
  dog.start();
  dog.watch(watched);
  dog.watch(forgotten);
  dog.forget(forgotten);
  await new Promise((r) => setTimeout(r, 200));
  t.ok(isAlive(watched), 'watching kills nothing');
  dog.close();
  await eventually(() => !isAlive(watched), 'watched group killed');
  t.ok(isAlive(forgotten), 'a forgotten group is left alone');
});

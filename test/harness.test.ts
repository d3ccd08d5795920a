import t from 'tap';
import { connect as tcpConnect } from 'node:net';
import { existsSync } from 'node:fs';
import { freePort, isAlive, startNats, waitForPort } from './harness';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

t.test('a started server accepts connections, and is gone after stop', async (t) => {
  const server = await startNats(t, { jetstream: false });
  t.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  t.ok(await canConnect(server.port), 'accepts connections');
  const pid = server.pid;
  t.ok(isAlive(pid), 'process is running');

  await server.stop();
  t.notOk(isAlive(pid), 'pid no longer alive after stop');
  t.notOk(await canConnect(server.port), 'port no longer answers');
  await server.stop();
  t.pass('stop is idempotent');
});

t.test('restart comes back on the same port with the same store', async (t) => {
  const server = await startNats(t);
  const storeDir = server.storeDir;
  t.ok(storeDir && existsSync(storeDir), 'JetStream store directory exists');
  const firstPid = server.pid;
  await server.stop();
  await server.restart();
  t.not(server.pid, firstPid, 'a new process');
  t.ok(isAlive(server.pid));
  t.ok(await canConnect(server.port), 'same port answers again');
  t.equal(server.storeDir, storeDir);
});

t.test('teardown kills the server and removes its store', async (t) => {
  let pid = 0;
  let storeDir: string | undefined;
  await t.test('inner', async (t) => {
    const server = await startNats(t);
    pid = server.pid;
    storeDir = server.storeDir;
    t.ok(isAlive(pid));
  });
  t.notOk(isAlive(pid), 'server killed by teardown');
  t.notOk(storeDir && existsSync(storeDir), 'store directory removed');
});

t.test('freePort and waitForPort', async (t) => {
  const port = await freePort();
  t.ok(port > 0 && port < 65536);
  await t.rejects(waitForPort(port, '127.0.0.1', 200), /nothing accepted connections/);
});

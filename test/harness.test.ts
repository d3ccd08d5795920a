import t from 'tap';
import { spawn } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { existsSync } from 'node:fs';
import { eventually, freePort, isAlive, startNats, waitForPort } from './harness';

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

// A child test process that starts a server and then dies without teardown:
// by process.exit (the 'exit' hook must kill the server) or by SIGKILL (only
// the parent-death signal can).
async function orphanedServerPid(test: Pick<typeof t, 'ok' | 'teardown'>, ending: 'exit' | 'sigkill'): Promise<number> {
  const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'));
  const script = `
    const { startNats } = require(${JSON.stringify(require.resolve('./harness'))});
    startNats({ teardown() {} }, { jetstream: false }).then((server) => {
      process.stdout.write(server.pid + '\\n');
      ${ending === 'exit' ? 'process.exit(0);' : 'setInterval(() => {}, 1000);'}
    });`;
  const child = spawn(process.execPath, [...loader, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  test.teardown(() => child.kill('SIGKILL'));
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', () => (out.includes('\n') ? undefined : reject(new Error('child exited before starting nats-server'))));
  });
  if (ending === 'sigkill') {
    test.ok(isAlive(pid), 'server runs while its test process lives');
    child.kill('SIGKILL');
  }
  return pid;
}

t.test('no stray nats-server when the test process exits without teardown', async (t) => {
  const pid = await orphanedServerPid(t, 'exit');
  await eventually(() => !isAlive(pid), 'server killed by the exit hook', 5000);
  t.notOk(isAlive(pid));
});

t.test('no stray nats-server when the test process is SIGKILLed', async (t) => {
  const pid = await orphanedServerPid(t, 'sigkill');
  await eventually(() => !isAlive(pid), 'server killed by the parent-death signal', 5000);
  t.notOk(isAlive(pid));
});

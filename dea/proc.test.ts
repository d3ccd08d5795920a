import t from 'tap';
import { cpuPercent, holdsSocket, instanceProcesses, listeningSocketInodes, parseStat, readStat, sysconf, treeUsage, type ProcStat } from './proc';

const line = (pid: number, comm: string, state: string, ppid: number, session: number, ticks: number, rss: number) =>
  `${pid} (${comm}) ${state} ${ppid} ${session} ${session} 0 -1 4194560 100 0 0 0 ${ticks} ${ticks} 0 0 20 0 1 0 ${1000 + pid} 123456 ${rss} 18446744073709551615`;

t.test('parseStat counts fields from the last parenthesis', async (t) => {
  const s = parseStat(line(42, 'evil) S 1 (name', 'S', 7, 40, 5, 300));
  t.match(s, { pid: 42, comm: 'evil) S 1 (name', state: 'S', ppid: 7, pgrp: 40, session: 40, utime: 5, stime: 5, starttime: 1042, rss: 300 });
  t.equal(parseStat('garbage'), undefined);
  t.equal(parseStat('1 (x) S'), undefined, 'truncated stat is rejected');
});

t.test('the live stat of this process parses', async (t) => {
  const s = await readStat(process.pid);
  t.equal(s?.pid, process.pid);
  t.equal(s?.ppid, process.ppid);
  t.ok(s!.rss > 0);
  t.equal(await readStat(0x3fffffff), undefined);
  t.ok(sysconf().pageSize >= 4096);
});

t.test('instanceProcesses: descendants and session members, no zombies, nothing else', async (t) => {
  const table = [
    line(1, 'init', 'S', 0, 1, 0, 1),
    line(100, 'sh', 'S', 50, 100, 1, 10), // the instance root
    line(101, 'node', 'S', 100, 100, 2, 20),
    line(102, 'worker', 'S', 101, 100, 3, 30),
    line(103, 'daemon', 'S', 1, 100, 4, 40), // re-parented, same session
    line(104, 'zombie', 'Z', 100, 100, 0, 0),
    line(105, 'escaped', 'S', 101, 105, 5, 50), // own session, still a descendant
    line(200, 'other', 'S', 1, 200, 9, 90),
  ].map((l) => parseStat(l)!) as ProcStat[];
  const pids = instanceProcesses(table, 100).map((p) => p.pid).sort();
  t.same(pids, [100, 101, 102, 103, 105]);
  const usage = treeUsage(instanceProcesses(table, 100), 4096);
  t.equal(usage.rssBytes, (10 + 20 + 30 + 40 + 50) * 4096);
  t.equal(usage.cpuTicks, 2 * (1 + 2 + 3 + 4 + 5));
  t.same(instanceProcesses(table, 999, 999), [], 'a gone root has no tree');
});

t.test('cpuPercent', async (t) => {
  t.equal(cpuPercent(100, 150, 1000, 100), 50);
  t.equal(cpuPercent(100, 300, 1000, 100), 200, 'more than one core');
  t.equal(cpuPercent(100, 90, 1000, 100), 0);
  t.equal(cpuPercent(100, 150, 0, 100), 0);
});

t.test('the listening socket of a port, and who holds it', async (t) => {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  const inodes = await listeningSocketInodes(port);
  t.equal(inodes.size, 1, 'one listener on the port');
  t.ok(await holdsSocket([process.pid], inodes), 'held by this process');
  t.notOk(await holdsSocket([1], inodes), 'not by another');
  t.equal((await listeningSocketInodes(1)).size, 0, 'nothing listens on port 1');
});

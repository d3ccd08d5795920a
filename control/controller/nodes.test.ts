import t from 'tap';
import { nodeView, recordOf, type ComponentRecord } from './nodes';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const DOWN_AFTER = 40_000;

function rec(over: Partial<ComponentRecord>): ComponentRecord {
  return { node: 'n1', type: 'DEA', index: 0, uuid: 'u', host: '10.0.0.1', start: '2026-12-01T11:00:00Z', last_seen: NOW - 1000, ...over };
}

t.test('one entry per node, roles from the component types, uptime of its oldest running component', async (t) => {
  const view = nodeView([
    rec({ uuid: 'r', type: 'Router', host: '10.0.0.1:8081', start: '2026-12-01T10:00:00Z' }),
    rec({ uuid: 'd', type: 'DEA' }),
    rec({ uuid: 'c', type: 'CloudController', host: '10.0.0.1:9022' }),
    rec({ uuid: 'x', node: 'n2', type: 'HealthManager', host: 'n2.example' }),
  ], NOW, DOWN_AFTER);
  t.same(view.map((n) => [n.node, n.host, n.roles, n.uptime, n.state]), [
    ['n1', '10.0.0.1', ['controller', 'dea', 'router'], 7200, 'running'],
    ['n2', 'n2.example', ['health'], 3600, 'running'],
  ]);
  t.equal(view[0]!.components.length, 3);
  t.equal(view[0]!.last_seen, Math.floor((NOW - 1000) / 1000));
});

t.test('a node is down once none of its components answered within the timeout', async (t) => {
  const silent = NOW - DOWN_AFTER - 1;
  const [node] = nodeView([rec({ uuid: 'a', last_seen: silent }), rec({ uuid: 'b', type: 'Stager', last_seen: silent - 5000 })], NOW, DOWN_AFTER);
  t.equal(node!.state, 'down');
  t.equal(node!.uptime, null);
  t.same(node!.roles, ['dea', 'stager'], 'a down node keeps the roles it had');
  t.equal(node!.last_seen, Math.floor(silent / 1000));
  const [half] = nodeView([rec({ uuid: 'a', last_seen: silent }), rec({ uuid: 'b', type: 'Stager' })], NOW, DOWN_AFTER);
  t.equal(half!.state, 'running', 'one answering component keeps the node running');
  t.same(half!.roles, ['stager'], 'while running, only the roles that answer');
  t.same(half!.components.map((c) => [c.type, c.state]), [['DEA', 'down'], ['Stager', 'running']]);
});

t.test("a restarted component hides its predecessor; a Node's announcement gives roles, host and uptime", async (t) => {
  const [node] = nodeView([
    rec({ uuid: 'old', last_seen: NOW - 600_000 }),
    rec({ uuid: 'new', start: '2026-12-01T11:59:00Z' }),
    rec({ uuid: 'sup', type: 'Node', host: '192.0.2.7', roles: ['dea', 'router'], start: '2026-12-01T06:00:00Z' }),
  ], NOW, DOWN_AFTER);
  t.same(node!.components.map((c) => c.uuid), ['new', 'sup']);
  t.same(node!.roles, ['dea', 'router'], 'assigned roles, even those not running yet');
  t.equal(node!.host, '192.0.2.7');
  t.equal(node!.uptime, 6 * 3600);
});

t.test('records from announcements', async (t) => {
  const message = { type: 'Router', index: 0, uuid: '0-x', host: '10.0.0.1:8081', credentials: ['u', 'secret'] as [string, string], start: 's', uptime: 'u' };
  const record = recordOf(message, NOW);
  t.same(record, { node: '10.0.0.1', type: 'Router', index: 0, uuid: '0-x', host: '10.0.0.1:8081', start: 's', last_seen: NOW }, 'no node: the host stands for it; credentials are not kept');
  t.same(recordOf({ ...message, type: 'Node', node: 'n9', roles: ['router', 'dea'] }, NOW).roles, ['dea', 'router']);
});

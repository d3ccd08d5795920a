// /varz additions (top-10 apps by requests, WebSocket counters,
// ms_since_last_registry_update), /metrics in the Prometheus text format
// (checked line by line against the exposition format, and against /varz),
// and vcap.component.announce / vcap.component.discover on a real NATS.
import t from 'tap';
import type { ComponentAnnounce } from '../bus/messages';
import { decode, validateComponentAnnounce } from '../bus/validate';
import { eventually, sleep, startNats } from './harness';
import { busClient, get, registerRoute, startBackend, startRouter, STATUS_AUTH, STATUS_CREDENTIALS } from './router_harness';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text exposition format 0.0.4: fails on any
 * line that is not a HELP, TYPE or sample line, on a sample whose family has no
 * TYPE before it, on duplicate series, bad names, bad label escapes or values.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
  const labelRe = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      if (helps.has(m[1])) throw new Error(`second HELP for ${m[1]}`);
      helps.add(m[1]);
      continue;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|summary|histogram|untyped)$`).exec(line))) {
      if (types.has(m[1])) throw new Error(`second TYPE for ${m[1]}`);
      types.set(m[1], m[2]);
      current = m[1];
      continue;
    }
    if ((m = sampleRe.exec(line)) === null) throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = m;
    const family = current;
    if (family === undefined) throw new Error(`sample ${name} before any TYPE`);
    const type = types.get(family)!;
    const okName = type === 'summary' ? [family, `${family}_sum`, `${family}_count`].includes(name) : name === family;
    if (!okName) throw new Error(`sample ${name} outside its family (current: ${family})`);
    const labels: Record<string, string> = {};
    let rest = labelText ?? '';
    while (rest !== '') {
      const lm = labelRe.exec(rest);
      if (lm === null) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      rest = rest.slice(lm[0].length);
    }
    if (!/^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$/.test(valueText))
      throw new Error(`bad value in ${JSON.stringify(line)}`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seen.has(key)) throw new Error(`duplicate series ${key}`);
    seen.add(key);
    samples.push({ name, labels, value: Number(valueText.replace('Inf', 'Infinity')) });
  }
  for (const [name, type] of types) {
    if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} does not end in _total`);
    if (!helps.has(name)) throw new Error(`no HELP for ${name}`);
  }
  return { types, samples };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length)?.value;
}

t.test('/varz and /metrics', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const router = await startRouter(t, nats);
  const nc = await busClient(t, nats);
  const backend = await startBackend(t, (req, res) => setTimeout(() => res.end('ok'), req.url === '/slow' ? 50 : 0));
  // 12 apps; app-i gets i + 1 requests: the top 10 are app-11 (12) .. app-2 (3).
  for (let i = 0; i < 12; i++) {
    await registerRoute(nc, router, { port: backend.port, uris: [`app${i}.localhost`], app: `app-${i}`, private_instance_index: '0' });
  }
  for (let i = 0; i < 12; i++) {
    for (let n = 0; n <= i; n++) t.equal((await get({ port: router.port, host: `app${i}.localhost`, path: n === 0 ? '/slow' : '/' })).status, 200);
  }
  t.equal((await get({ port: router.port, host: 'unknown.localhost' })).status, 404);

  const varz = await router.varz();
  t.same(
    varz.top10_app_requests,
    Array.from({ length: 10 }, (_, k) => ({ application_id: `app-${11 - k}`, requests: 12 - k })),
    'top 10 apps by requests, most first',
  );
  t.equal(varz.requests, 79, '78 proxied + 1 unknown route');
  t.equal(varz.in_flight_requests, 0);
  t.equal(varz.draining, false);
  t.ok('websockets' in varz, 'websockets figures present (null until the WebSocket module is wired in)');
  t.equal(varz.access_log, null, 'no access log configured');
  t.type(varz.ms_since_last_registry_update, 'number', 'ms_since_last_registry_update');
  const since = varz.ms_since_last_registry_update as number;
  await sleep(300);
  t.ok((await router.varz()).ms_since_last_registry_update >= since + 250, 'ms_since_last_registry_update grows without updates');

  const denied = await get({ port: router.statusPort, path: '/metrics' });
  t.equal(denied.status, 401, '/metrics needs the status credentials');
  const wrong = await get({ port: router.statusPort, path: '/metrics', headers: { authorization: 'Basic ' + Buffer.from('test:nope').toString('base64') } });
  t.equal(wrong.status, 401, 'wrong password refused');
  const reply = await get({ port: router.statusPort, path: '/metrics', headers: { authorization: STATUS_AUTH } });
  t.equal(reply.status, 200);
  t.equal(reply.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'Prometheus text content type');
  const text = reply.body.toString();
  let parsed: ReturnType<typeof parseExposition>;
  t.doesNotThrow(() => (parsed = parseExposition(text)), 'valid exposition format');
  const { types, samples } = parsed!;
  const after = await router.varz();

  t.equal(types.get('skiff_router_requests_total'), 'counter');
  t.equal(value(samples, 'skiff_router_requests_total'), after.requests, 'requests_total = varz requests');
  t.equal(value(samples, 'skiff_router_responses_total', { status_class: '2xx' }), after.responses_2xx);
  t.equal(value(samples, 'skiff_router_responses_total', { status_class: '4xx' }), 1);
  t.equal(value(samples, 'skiff_router_bad_requests_total'), after.bad_requests);
  t.equal(value(samples, 'skiff_router_requests_in_flight'), 0);
  for (let k = 0; k < 10; k++)
    t.equal(value(samples, 'skiff_router_app_requests_total', { app_id: `app-${11 - k}` }), 12 - k, `app-${11 - k} requests`);
  t.equal(value(samples, 'skiff_router_app_requests_total', { app_id: 'app-0' }), undefined, 'only the top 10 apps');
  t.equal(types.get('skiff_router_request_latency_seconds'), 'summary', 'latency is a summary');
  for (const q of ['0.5', '0.75', '0.9', '0.95', '0.99'])
    t.type(value(samples, 'skiff_router_request_latency_seconds', { quantile: q }), 'number', `quantile ${q}`);
  t.equal(value(samples, 'skiff_router_request_latency_seconds_count'), after.latency_ms.count);
  const p99 = value(samples, 'skiff_router_request_latency_seconds', { quantile: '0.99' })!;
  t.ok(p99 > 0.04 && p99 < 1, `p99 in seconds (${p99}), the 50 ms requests among them`);
  t.ok(Math.abs(value(samples, 'skiff_router_request_latency_seconds', { quantile: '0.5' })! * 1000 - after.latency_ms.p50) < 0.01, 'p50 = varz p50');
  t.equal(value(samples, 'skiff_router_routes'), after.urls);
  t.equal(value(samples, 'skiff_router_endpoints'), after.droplets);
  t.equal(value(samples, 'skiff_router_registry_messages_total', { action: 'register' }), after.registry_messages.register);
  const msSince = value(samples, 'skiff_router_ms_since_last_registry_update')!;
  t.ok(msSince >= 300 && Math.abs(msSince - after.ms_since_last_registry_update) < 1000, 'ms_since_last_registry_update as in /varz');
  t.equal(value(samples, 'skiff_router_nats_connected'), 1);
  t.equal(value(samples, 'skiff_router_draining'), 0);
  t.ok(value(samples, 'process_resident_memory_bytes')! > 1e6);
});

t.test('vcap.component.announce at start, replies to vcap.component.discover', async (t) => {
  const nats = await startNats(t, { jetstream: false });
  const nc = await busClient(t, nats);
  const announced: ComponentAnnounce[] = [];
  nc.subscribe('vcap.component.announce', {
    callback: (_err, msg) => {
      const result = decode(msg.data, validateComponentAnnounce);
      if (result.ok) announced.push(result.value);
      else t.fail(`invalid announce: ${result.error}`);
    },
  });
  await nc.flush();
  const startedBefore = Math.floor(Date.now() / 1000) * 1000;
  const router = await startRouter(t, nats);
  await eventually(() => announced.length > 0, 'vcap.component.announce');
  const a = announced[0];
  const varz = await router.varz();
  t.equal(a.type, 'Router');
  t.equal(a.index, 0);
  t.match(a.uuid, /^0-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  t.equal(a.uuid, varz.uuid, 'uuid is the router id');
  t.equal(a.host, `127.0.0.1:${router.statusPort}`, 'host is ip:status port');
  t.same(a.credentials, [...STATUS_CREDENTIALS], 'the status credentials');
  t.match(a.start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'start: ISO 8601');
  t.ok(Date.parse(a.start) >= startedBefore - 1000 && Date.parse(a.start) <= Date.now(), 'start is when the router started');
  t.match(a.uptime, /^0d:0h:0m:\d+s$/, 'uptime "0d:0h:0m:Ns"');

  await sleep(1100);
  const reply = await nc.request('vcap.component.discover', new TextEncoder().encode('{}'), { timeout: 2000 });
  const d = decode(reply.data, validateComponentAnnounce);
  t.ok(d.ok, 'discover reply has the announce shape');
  if (!d.ok) return;
  t.equal(d.value.uuid, a.uuid);
  t.equal(d.value.host, a.host);
  t.same(d.value.credentials, a.credentials);
  t.equal(d.value.start, a.start);
  t.match(d.value.uptime, /^0d:0h:0m:([1-9]\d*)s$/, 'uptime advanced');

  // The announced host and credentials are enough to read /varz.
  const [ip, port] = d.value.host.split(':');
  t.equal(ip, '127.0.0.1');
  const varzReply = await get({
    port: Number(port),
    path: '/varz',
    headers: { authorization: `Basic ${Buffer.from(d.value.credentials!.join(':')).toString('base64')}` },
  });
  t.equal(varzReply.status, 200, 'announced credentials open /varz');
  t.notMatch(router.log(), new RegExp(STATUS_CREDENTIALS[1]), 'the password never reaches the log');
});

// The Skiff web console: one page on the API's origin. It logs in through
// /console/session (the token stays in an HttpOnly cookie the page never
// sees), follows /console/events (Server-Sent Events) and reconnects when
// the stream ends, and acts through the ordinary REST API, sending
// X-Skiff-Console with every change (the API's guard against sibling apps).

import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';

interface Point {
  t: number;
  rate: number;
  p50: number | null;
  p99: number | null;
  classes: [number, number, number, number];
}

interface Usage {
  index: number;
  state: string;
  cpu: number;
  mem_kb: number;
  disk_bytes: number;
  instance: string;
}

interface AppView {
  id: string;
  name: string;
  state: string;
  instances: number;
  runningInstances: number;
  memory: number;
  uris: string[];
  owner: string;
  traffic?: Point;
  usage: Usage[];
}

interface Snapshot {
  ts: number;
  user: string;
  admin: boolean;
  apps: AppView[];
}

interface Session {
  user: string;
  admin: boolean;
}

const RECONNECT_MS = 2000;
/** Points kept per app for the charts: five minutes of 5 s steps plus the live ones. */
const MAX_POINTS = 240;

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'X-Skiff-Console': '1' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  const parsed = text === '' ? undefined : (JSON.parse(text) as unknown);
  if (!res.ok) {
    const description = (parsed as { description?: string } | undefined)?.description ?? `${res.status} ${res.statusText}`;
    throw Object.assign(new Error(description), { status: res.status });
  }
  return parsed as T;
}

function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    try {
      onLogin(await api<Session>('POST', '/console/session', { email: form.get('email'), password: form.get('password') }));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section class="login">
      <h2>Skiff console</h2>
      <form onSubmit={submit}>
        <input name="email" type="email" placeholder="email" autocomplete="username" required />
        <input name="password" type="password" placeholder="password" autocomplete="current-password" required />
        <button type="submit">Log in</button>
        {error !== null && <div class="error" role="alert">{error}</div>}
      </form>
    </section>
  );
}

/** The live feed; reconnects after any end (a controller restart, a router hiccup). */
function useFeed(onSnapshot: (s: Snapshot) => void, onLogout: () => void): boolean {
  const [live, setLive] = useState(false);
  const handlers = useRef({ onSnapshot, onLogout });
  handlers.current = { onSnapshot, onLogout };
  useEffect(() => {
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const connect = () => {
      source = new EventSource('/console/events');
      source.addEventListener('snapshot', (event) => {
        setLive(true);
        handlers.current.onSnapshot(JSON.parse((event as MessageEvent<string>).data) as Snapshot);
      });
      source.addEventListener('logout', () => {
        closed = true;
        source?.close();
        handlers.current.onLogout();
      });
      source.onerror = () => {
        setLive(false);
        // EventSource retries by itself only while the server keeps answering 200; after a refusal it gives up.
        source?.close();
        if (closed) return;
        timer = setTimeout(async () => {
          try {
            await api('GET', '/console/session');
          } catch (e) {
            if ((e as { status?: number }).status === 401) {
              handlers.current.onLogout();
              return;
            }
          }
          if (!closed) connect();
        }, RECONNECT_MS);
      };
    };
    connect();
    return () => {
      closed = true;
      clearTimeout(timer);
      source?.close();
    };
  }, []);
  return live;
}

function Chart({ title, series, data, id }: { title: string; series: uPlot.Series[]; data: uPlot.AlignedData; id: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const width = Math.max(360, (box.current!.parentElement?.clientWidth ?? 460) - 8);
    plot.current = new uPlot({ width, height: 180, series: [{}, ...series], axes: [{}, { size: 56 }], legend: { live: false } }, data, box.current!);
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => plot.current?.setData(data), [data]);
  return (
    <div class="chart" id={id} data-points={data[0].length} data-last={String(data[1][data[1].length - 1] ?? '')}>
      <h3>{title}</h3>
      <div ref={box} />
    </div>
  );
}

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
}

function AppDetail({ app, points, onError }: { app: AppView; points: Point[]; onError: (m: string | null) => void }) {
  const [count, setCount] = useState(String(app.instances));
  const [events, setEvents] = useState<Array<Record<string, unknown>>>([]);
  const [log, setLog] = useState('');
  useEffect(() => setCount(String(app.instances)), [app.name, app.instances]);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      const name = encodeURIComponent(app.name);
      const found = await api<Array<Record<string, unknown>>>('GET', `/apps/${name}/events`).catch(() => []);
      if (!stop) setEvents(found.slice(-15).reverse());
      const running = app.usage.find((u) => u.state === 'RUNNING');
      if (running !== undefined) {
        const res = await fetch(`/apps/${name}/instances/${running.index}/files/logs/stdout.log`, { credentials: 'same-origin' }).catch(() => null);
        if (!stop && res?.ok) setLog((await res.text()).slice(-4000));
      }
    };
    void load();
    const timer = setInterval(load, 5000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [app.name]);
  const act = async (what: () => Promise<unknown>) => {
    try {
      onError(null);
      await what();
    } catch (e) {
      onError((e as Error).message);
    }
  };
  const path = `/apps/${encodeURIComponent(app.name)}`;
  const rate: uPlot.AlignedData = useMemo(() => [points.map((p) => p.t / 1000), points.map((p) => p.rate)], [points]);
  const latency: uPlot.AlignedData = useMemo(
    () => [points.map((p) => p.t / 1000), points.map((p) => (p.p50 === null ? null : p.p50 * 1000)), points.map((p) => (p.p99 === null ? null : p.p99 * 1000))],
    [points],
  );
  const codes: uPlot.AlignedData = useMemo(
    () => [points.map((p) => p.t / 1000), ...[0, 1, 2, 3].map((c) => points.map((p) => p.classes[c]!))],
    [points],
  );
  return (
    <section id="app-detail" data-app={app.name}>
      <h2>
        {app.name} <span class={`state-${app.state}`} id="detail-state">{app.state}</span>{' '}
        <span class="muted">{app.uris.join(', ')}</span>
      </h2>
      <div class="actions">
        <button class="action" id="start" onClick={() => act(() => api('PUT', path, { state: 'STARTED' }))}>Start</button>
        <button class="action" id="stop" onClick={() => act(() => api('PUT', path, { state: 'STOPPED' }))}>Stop</button>
        <button class="action" id="restart" onClick={() => act(() => api('POST', `${path}/restart`))}>Restart</button>
        <input class="count" id="instances" type="number" min="0" value={count} onInput={(e) => setCount((e.target as HTMLInputElement).value)} />
        <button class="action" id="scale" onClick={() => act(() => api('PUT', path, { instances: Number(count) }))}>Scale</button>
      </div>
      <div class="charts">
        <Chart id="chart-rate" title="requests / s" data={rate} series={[{ label: 'req/s', stroke: '#1f6feb', width: 2 }]} />
        <Chart id="chart-latency" title="latency (ms)" data={latency} series={[{ label: 'p50', stroke: '#1a7f37' }, { label: 'p99', stroke: '#cf222e' }]} />
        <Chart
          id="chart-codes"
          title="responses by status class (per 5 s)"
          data={codes}
          series={[{ label: '2xx', stroke: '#1a7f37' }, { label: '3xx', stroke: '#1f6feb' }, { label: '4xx', stroke: '#9a6700' }, { label: '5xx', stroke: '#cf222e' }]}
        />
      </div>
      <div class="row">
        <div>
          <h2>Instances</h2>
          <table id="instance-table">
            <thead>
              <tr><th>#</th><th>state</th><th class="num">CPU %</th><th class="num">memory MB</th><th class="num">disk MB</th></tr>
            </thead>
            <tbody>
              {app.usage.map((u) => (
                <tr key={u.instance} class="instance">
                  <td>{u.index}</td>
                  <td class={`state-${u.state}`}>{u.state}</td>
                  <td class="num">{fmt(u.cpu)}</td>
                  <td class="num">{fmt(u.mem_kb / 1024)}</td>
                  <td class="num">{fmt(u.disk_bytes / 1048576)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Events</h2>
          <table id="events">
            <tbody>
              {events.map((ev, i) => (
                <tr key={i}><td class="muted">{new Date(Number(ev.timestamp ?? ev.time ?? 0) * 1000).toLocaleTimeString()}</td><td>{String(ev.description ?? ev.type ?? JSON.stringify(ev))}</td></tr>
              ))}
            </tbody>
          </table>
        </div>
        <div>
          <h2>Log (stdout)</h2>
          <pre class="log" id="log">{log}</pre>
        </div>
      </div>
    </section>
  );
}

function AppsTable({ apps, selected, onSelect }: { apps: AppView[]; selected: string | null; onSelect: (name: string) => void }) {
  return (
    <section>
      <h2>Apps</h2>
      <table id="apps">
        <thead>
          <tr><th>name</th><th>state</th><th class="num">instances</th><th class="num">req/s</th><th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">CPU %</th><th>owner</th></tr>
        </thead>
        <tbody>
          {apps.map((a) => (
            <tr key={a.id} class={`app${a.name === selected ? ' selected' : ''}`} data-app={a.name} onClick={() => onSelect(a.name)}>
              <td>{a.name}</td>
              <td class={`state state-${a.state}`}>{a.state}</td>
              <td class="num running">{a.runningInstances}/{a.instances}</td>
              <td class="num rate">{fmt(a.traffic?.rate)}</td>
              <td class="num">{fmt(a.traffic?.p50 == null ? null : a.traffic.p50 * 1000)}</td>
              <td class="num">{fmt(a.traffic?.p99 == null ? null : a.traffic.p99 * 1000)}</td>
              <td class="num">{fmt(a.usage.filter((u) => u.state === 'RUNNING').reduce((s, u) => s + u.cpu, 0))}</td>
              <td class="muted">{a.owner}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {apps.length === 0 && <p class="muted">No apps yet: skiff push one.</p>}
    </section>
  );
}

function Admin() {
  const [nodes, setNodes] = useState<unknown>(null);
  const [users, setUsers] = useState<Array<{ email: string; admin: boolean }>>([]);
  const [config, setConfig] = useState<unknown>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const load = async () => {
      try {
        const [n, u, c] = await Promise.all([api('GET', '/nodes'), api<Array<{ email: string; admin: boolean }>>('GET', '/users'), api('GET', '/config')]);
        setNodes(n);
        setUsers(u);
        setConfig(c);
        setError(null);
      } catch (e) {
        setError((e as Error).message);
      }
    };
    void load();
    const timer = setInterval(load, 10_000);
    return () => clearInterval(timer);
  }, []);
  const rows = (value: unknown): Array<Record<string, unknown>> =>
    Array.isArray(value) ? (value as Array<Record<string, unknown>>) : value !== null && typeof value === 'object' ? Object.entries(value).map(([k, v]) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? { key: k, ...(v as object) } : { key: k, value: v })) : [];
  const table = (id: string, list: Array<Record<string, unknown>>) => {
    const columns = [...new Set(list.flatMap((r) => Object.keys(r)))].slice(0, 8);
    return (
      <table id={id}>
        <thead><tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
        <tbody>
          {list.map((r, i) => (
            <tr key={i}>{columns.map((c) => <td key={c}>{typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c] ?? '')}</td>)}</tr>
          ))}
        </tbody>
      </table>
    );
  };
  return (
    <>
      {error !== null && <div class="error">{error}</div>}
      <section><h2>Nodes</h2>{table('nodes', rows(nodes))}</section>
      <section><h2>Users</h2>{table('users', users)}</section>
      <section><h2>Config store</h2>{table('config', rows(config))}</section>
    </>
  );
}

function Console({ session, onLogout }: { session: Session; onLogout: () => void }) {
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [tab, setTab] = useState<'apps' | 'admin'>('apps');
  const [error, setError] = useState<string | null>(null);
  const history = useRef(new Map<string, Point[]>());
  const [, setTick] = useState(0);
  const live = useFeed(
    (s) => {
      for (const app of s.apps) {
        if (app.traffic === undefined) continue;
        const list = history.current.get(app.name) ?? [];
        const last = list[list.length - 1];
        if (last === undefined || app.traffic.t > last.t) list.push(app.traffic);
        if (list.length > MAX_POINTS) list.splice(0, list.length - MAX_POINTS);
        history.current.set(app.name, list);
      }
      setSnapshot(s);
      setTick((n) => n + 1);
    },
    onLogout,
  );
  useEffect(() => {
    if (selected === null) return;
    // The last five minutes, once, under the live points.
    void api<{ points: Point[] }>('GET', `/console/series/${encodeURIComponent(selected)}`).then(
      ({ points }) => {
        const liveOnes = history.current.get(selected) ?? [];
        const first = liveOnes[0]?.t ?? Infinity;
        history.current.set(selected, [...points.filter((p) => p.t < first), ...liveOnes]);
        setTick((n) => n + 1);
      },
      () => {},
    );
  }, [selected]);
  const app = snapshot?.apps.find((a) => a.name === selected);
  const points = selected === null ? [] : [...(history.current.get(selected) ?? [])];
  const logout = async () => {
    await api('DELETE', '/console/session').catch(() => {});
    onLogout();
  };
  return (
    <>
      <header>
        <h1>Skiff</h1>
        <nav>
          <button id="tab-apps" class={tab === 'apps' ? 'active' : ''} onClick={() => setTab('apps')}>Apps</button>
          {session.admin && <button id="tab-admin" class={tab === 'admin' ? 'active' : ''} onClick={() => setTab('admin')}>Cluster</button>}
        </nav>
        <span id="live" class={`live ${live ? 'on' : 'off'}`}>{live ? 'live' : 'reconnecting'}</span>
        <span class="who" id="who">{session.user}</span>
        <button class="action" id="logout" onClick={logout}>Log out</button>
      </header>
      <main>
        {error !== null && <div class="error" role="alert">{error}</div>}
        {tab === 'apps' ? (
          <>
            <AppsTable apps={snapshot?.apps ?? []} selected={selected} onSelect={setSelected} />
            {app !== undefined && <AppDetail key={app.name} app={app} points={points} onError={setError} />}
          </>
        ) : (
          <Admin />
        )}
      </main>
    </>
  );
}

function Root() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  useEffect(() => {
    api<Session>('GET', '/console/session').then(setSession, () => setSession(null));
  }, []);
  if (session === undefined) return <p class="muted">…</p>;
  if (session === null) return <Login onLogin={setSession} />;
  return <Console session={session} onLogout={() => setSession(null)} />;
}

render(<Root />, document.getElementById('root')!);

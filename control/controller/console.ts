// The web console's side of the API (design.md, Operator view): its files
// under /console/ (built from console/ into dist/console by `npm run build`),
// the login that puts the CLI's token into an HttpOnly cookie, and the live
// feed, Server-Sent Events every 2 s. Everything else the page does goes
// through the ordinary REST API with that cookie.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { appInstances, type AppStatsCollector } from '../../bus/app-stats';
import type { Logger } from '../../bus/log';
import type { Api } from './api';
import { tokenCookie } from './auth';
import { HttpError, type Exchange } from './http';
import type { AppRecord, UserRecord } from './store';
import { checkLogin } from './validation';

/** Where `npm run build` puts the bundle (console/build.js), seen from dist/control/controller. */
export const CONSOLE_DIR = join(__dirname, '..', '..', 'console');
/** The feed's period; also the page's reconnect delay. */
export const FEED_INTERVAL_MS = 2000;
/** Chart steps: 60 of 5 s, the last five minutes (the collector keeps that much). */
export const SERIES_STEP_MS = 5000;
export const SERIES_STEPS = 60;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** The page may load its own files and talk to its own origin, nothing else. */
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

type Register = (method: string, path: string, handle: (e: Exchange, p: Record<string, string>) => Promise<void>) => void;

export class ConsoleRoutes {
  private files: Map<string, Buffer> | undefined;
  private readonly feeds = new Set<() => void>();

  constructor(
    private readonly api: Api,
    private readonly stats: AppStatsCollector,
    private readonly log: Logger,
    private readonly dir = CONSOLE_DIR,
  ) {}

  addRoutes(r: Register): void {
    // Routes match by segments: /console and /console/ both arrive here.
    r('GET', '/console', async (e) => (e.path.endsWith('/') ? this.file(e, '') : e.send(301, '', { Location: '/console/' })));
    r('POST', '/console/session', (e) => this.login(e));
    r('GET', '/console/session', (e) => this.session(e));
    r('DELETE', '/console/session', (e) => this.logout(e));
    r('GET', '/console/events', (e) => this.feed(e));
    r('GET', '/console/series/:name', (e, p) => this.series(e, p.name!));
    r('GET', '/console/*', (e, p) => this.file(e, p['*']!));
  }

  /** Ends every open feed (the controller is stopping; pages reconnect to whichever answers). */
  stop(): void {
    for (const end of this.feeds) end();
  }

  private async login(e: Exchange): Promise<void> {
    const body = await e.readJson();
    const email = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).email : undefined;
    const checked = checkLogin(body);
    if (!checked.ok || typeof email !== 'string' || email === '') throw new HttpError(400, checked.ok ? 'email is required' : checked.error);
    const { token, expiresAt, user } = await this.api.issueToken(email, checked.value.password);
    const secure = e.headers['x-forwarded-proto'] === 'https';
    e.send(200, JSON.stringify({ user: user.email, admin: user.admin }), {
      'Content-Type': 'application/json',
      'Set-Cookie': tokenCookie(token, expiresAt - Date.now() / 1000, secure),
      'Cache-Control': 'no-store',
    });
  }

  private async session(e: Exchange): Promise<void> {
    const user = await this.api.authenticate(e);
    e.json(200, { user: user.email, admin: user.admin });
  }

  private async logout(e: Exchange): Promise<void> {
    e.send(204, '', { 'Set-Cookie': tokenCookie('', 0, e.headers['x-forwarded-proto'] === 'https') });
  }

  /** Admins see every app, as operators; others their own. */
  private async appsFor(user: UserRecord): Promise<AppRecord[]> {
    return user.admin ? this.api.listAllApps() : this.api.appsOf(user.email);
  }

  /** What the page shows of every app, now. */
  private async snapshot(user: UserRecord): Promise<object> {
    const apps = await this.appsFor(user);
    const deas = this.stats.latestDeas();
    const views = await Promise.all(
      apps.map(async (app) => {
        const view = await this.api.view(app);
        const [point] = this.stats.series(app.id, SERIES_STEP_MS, 1);
        return {
          ...view,
          name: app.name,
          traffic: point,
          usage: appInstances(deas, app.id)
            .map((i) => ({ index: i.index, state: i.state, cpu: i.cpu, mem_kb: i.mem_kb, disk_bytes: i.disk_bytes, instance: i.instance }))
            .sort((a, b) => a.index - b.index),
        };
      }),
    );
    views.sort((a, b) => a.name.localeCompare(b.name));
    return { ts: Date.now(), user: user.email, admin: user.admin, apps: views };
  }

  /**
   * `text/event-stream`: a `snapshot` event every 2 s until the client goes
   * or the token stops being valid (`logout`). The page reconnects by itself
   * when the stream ends, so a controller restart costs it one gap.
   */
  private async feed(e: Exchange): Promise<void> {
    let user = await this.api.authenticate(e);
    e.startStream(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    let open = true;
    let wake: (() => void) | undefined;
    const end = () => {
      open = false;
      wake?.();
    };
    this.feeds.add(end);
    e.onAbort(end);
    try {
      await e.write(`retry: ${FEED_INTERVAL_MS}\n\n`);
      while (open) {
        await e.write(`event: snapshot\ndata: ${JSON.stringify(await this.snapshot(user))}\n\n`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, FEED_INTERVAL_MS).unref();
        });
        if (!open) break;
        try {
          user = await this.api.authenticate(e);
        } catch {
          await e.write('event: logout\ndata: {}\n\n');
          break;
        }
      }
    } catch (error) {
      this.log.warn('console feed ended by an error', { error });
    } finally {
      this.feeds.delete(end);
      e.end();
    }
  }

  private async series(e: Exchange, name: string): Promise<void> {
    const user = await this.api.authenticate(e);
    const app = (await this.appsFor(user)).find((a) => a.name === name);
    if (app === undefined) throw new HttpError(404, `no app named ${name}`);
    e.json(200, { step_ms: SERIES_STEP_MS, points: this.stats.series(app.id, SERIES_STEP_MS, SERIES_STEPS) });
  }

  private async file(e: Exchange, name: string): Promise<void> {
    const files = this.load();
    if (files.size === 0) throw new HttpError(503, 'the console is not built: run npm run build (or npm run setup)');
    const wanted = name === '' ? 'index.html' : name;
    const body = files.get(wanted);
    if (body === undefined) throw new HttpError(404, `no console file ${wanted}`);
    e.send(200, body, { 'Content-Type': TYPES[extname(wanted)] ?? 'application/octet-stream', ...PAGE_HEADERS });
  }

  /** The built files, read once (a flat directory of a few small files). */
  private load(): Map<string, Buffer> {
    if (this.files !== undefined && this.files.size > 0) return this.files;
    const files = new Map<string, Buffer>();
    if (existsSync(this.dir)) {
      for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
        if (entry.isFile() && /^[A-Za-z0-9._-]+$/.test(entry.name)) files.set(entry.name, readFileSync(join(this.dir, entry.name)));
      }
    }
    this.files = files;
    return files;
  }
}

import { timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROMETHEUS_CONTENT_TYPE } from './metrics';

export interface StatusSources {
  /** False while draining: /health answers 503 so load balancers stop sending. */
  isServing(): boolean;
  varz(): object;
  routes(): object;
  /** The /varz figures in Prometheus text format. */
  metrics(): string;
}

/**
 * The router's status port. node:http rather than uWebSockets.js, because
 * health checkers (HAProxy's httpchk, older load balancers) probe with HTTP/1.0.
 */
export class StatusServer {
  private readonly server: http.Server;
  private readonly expectedAuth: Buffer;

  constructor(
    private readonly sources: StatusSources,
    user: string,
    password: string,
  ) {
    this.expectedAuth = Buffer.from(`Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`);
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n', { Allow: 'GET, HEAD' });
    switch (path) {
      case '/health':
      case '/healthz':
        return this.sources.isServing()
          ? send(res, 200, 'text/plain', 'ok\n')
          : send(res, 503, 'text/plain', 'draining\n');
      case '/varz':
      case '/routes':
        if (!this.authorized(req.headers.authorization))
          return send(res, 401, 'text/plain', 'unauthorized\n', { 'WWW-Authenticate': 'Basic realm="skiff-router"' });
        return send(res, 200, 'application/json', JSON.stringify(path === '/varz' ? this.sources.varz() : this.sources.routes()) + '\n');
      case '/metrics':
        // Behind the same basic auth as /varz: Prometheus scrapes with `basic_auth` in its scrape config.
        if (!this.authorized(req.headers.authorization))
          return send(res, 401, 'text/plain', 'unauthorized\n', { 'WWW-Authenticate': 'Basic realm="skiff-router"' });
        return send(res, 200, PROMETHEUS_CONTENT_TYPE, this.sources.metrics());
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  }

  private authorized(header: string | undefined): boolean {
    if (header === undefined) return false;
    const given = Buffer.from(header);
    return given.length === this.expectedAuth.length && timingSafeEqual(given, this.expectedAuth);
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

// `GET /apps/:name/instances/:index/ssh` as a WebSocket (control/API.md):
// the request is checked like any API call and the DEA asked to start the
// session before the upgrade, so refusals are plain JSON errors. Then bytes
// are relayed: WebSocket <-> ssh.<session>.* on NATS (bus/platform.ts).
// Output waits in NATS's and the DEA's pipes, not here: while the client's
// buffer is above a high-water mark the DEA is told to pause.

import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import type { Bus, Subscription } from '../../bus/connection';
import type { Logger } from '../../bus/log';
import { deaSshSubject, SSH_MAX_CHUNK, sshSubjects, type SshControl, type SshReply, type SshRequest } from '../../bus/platform';
import { decodeOutput, errorText, exitText, parseClientText } from '../../bus/ssh-frames';
import { decode, RejectionCounter, validateSshExit, validateSshReply } from '../../bus/validate';
import type { Api } from './api';
import { recordEvents } from './events';
import { Exchange, HttpError } from './http';
import { COMMAND_HEADER, parseSshQuery } from './ssh-query';
import type { Store } from './store';

export const SSH_ROUTE = '/apps/:name/instances/:index/ssh';

export interface SshGatewayOptions {
  /** Wait for the DEA to accept a session. */
  startTimeoutMs?: number;
  /** How often the DEA is asked whether the session still lives (a DEA that died sends no exit). */
  pingIntervalMs?: number;
  highWaterBytes?: number;
  lowWaterBytes?: number;
}

const REPLY_STATUS: Record<string, number> = { unknown_instance: 404, too_many_sessions: 429, bad_request: 400, failed: 502 };

interface Attached {
  relay: Relay;
}
type SessionSocket = WebSocket<Attached>;

/** One session: its NATS side from before the upgrade, its WebSocket once open. */
class Relay {
  private ws: SessionSocket | undefined;
  /** Output that arrived before the WebSocket opened. */
  private early: Array<{ data: Uint8Array; binary: boolean }> = [];
  private readonly subscriptions: Subscription[] = [];
  private readonly subjects: ReturnType<typeof sshSubjects>;
  private pausedDea = false;
  /** The last frame is sent: close once the client took everything. */
  private closing = false;
  private over = false;
  private pinger: NodeJS.Timeout | undefined;
  private missedPings = 0;

  constructor(
    readonly id: string,
    private readonly gateway: SshGateway,
  ) {
    this.subjects = sshSubjects(id);
  }

  /** Before the DEA is asked, so no output is missed. */
  listen(bus: Bus): void {
    this.subscriptions.push(
      bus.subscribe(this.subjects.out, (msg) => {
        if (decodeOutput(msg.data) === undefined) {
          this.gateway.rejections.reject('ssh.<session>.out', 'empty frame or unknown channel');
          return;
        }
        this.send(msg.data, true);
      }),
      bus.subscribe(this.subjects.exit, (msg) => {
        const exit = decode(msg.data, validateSshExit);
        if (!exit.ok) {
          this.gateway.rejections.reject('ssh.<session>.exit', exit.error);
          this.finish(errorText('the session ended with an unreadable exit status'));
          return;
        }
        this.finish(exitText(exit.value.exit_status, exit.value.error));
      }),
    );
  }

  attach(ws: SessionSocket): void {
    this.ws = ws;
    for (const { data, binary } of this.early.splice(0)) this.send(data, binary);
    const interval = this.gateway.options.pingIntervalMs ?? 30_000;
    this.pinger = setInterval(() => void this.ping(), interval);
    this.pinger.unref();
    if (this.closing) this.closeWhenDrained();
  }

  private send(data: Uint8Array | string, binary: boolean): void {
    if (this.over) return;
    const ws = this.ws;
    if (ws === undefined) {
      this.early.push({ data: typeof data === 'string' ? Buffer.from(data) : Buffer.from(data), binary });
      return;
    }
    ws.cork(() => ws.send(data, binary));
    if (!this.pausedDea && ws.getBufferedAmount() > (this.gateway.options.highWaterBytes ?? 1024 * 1024)) {
      this.pausedDea = true;
      this.control({ pause: true });
    }
  }

  /** uWS's drain: the client is taking its output again. */
  drained(): void {
    const ws = this.ws;
    if (ws === undefined) return;
    if (this.pausedDea && ws.getBufferedAmount() < (this.gateway.options.lowWaterBytes ?? 256 * 1024)) {
      this.pausedDea = false;
      this.control({ resume: true });
    }
    if (this.closing) this.closeWhenDrained();
  }

  /** A frame from the client: stdin bytes, or resize / EOF. */
  fromClient(message: ArrayBuffer, binary: boolean): void {
    if (this.over || this.closing) return;
    if (binary) {
      // Zero bytes would read as EOF on the bus; stdin bytes it is not. A big
      // frame (a paste) goes in slices: NATS refuses messages over its max payload.
      const bytes = new Uint8Array(message);
      for (let start = 0; start < bytes.length; start += SSH_MAX_CHUNK) {
        this.gateway.publish(this.subjects.in, Buffer.copyBytesFrom(bytes, start, Math.min(SSH_MAX_CHUNK, bytes.length - start)));
      }
      return;
    }
    const parsed = parseClientText(Buffer.from(message).toString('utf8'));
    if ('invalid' in parsed) {
      this.gateway.rejections.reject('ssh websocket', parsed.invalid);
      return;
    }
    if ('eof' in parsed) this.gateway.publish(this.subjects.in, new Uint8Array(0));
    else this.control({ resize: parsed.resize });
  }

  private control(message: SshControl): void {
    this.gateway.publish(this.subjects.ctl, message);
  }

  private async ping(): Promise<void> {
    if (this.over || this.closing) return;
    try {
      const reply = await this.gateway.bus.request<{ ok?: boolean }>(this.subjects.ctl, { ping: true }, 5000);
      this.missedPings = reply.ok === false ? this.missedPings + 1 : 0;
    } catch {
      this.missedPings++;
    }
    if (this.missedPings >= 2 && !this.closing) this.finish(errorText('the DEA running the instance stopped answering'));
  }

  /** The last frame: the exit code or an error; the WebSocket closes once the client has it all. */
  finish(text: string): void {
    if (this.closing || this.over) return;
    this.send(text, false);
    this.closing = true;
    this.stopListening();
    if (this.ws !== undefined) this.closeWhenDrained();
  }

  private closeWhenDrained(): void {
    const ws = this.ws;
    if (ws === undefined || this.over || ws.getBufferedAmount() > 0) return;
    this.over = true;
    ws.end(1000, 'session ended');
  }

  /** The controller stops: the session ends for the client, and on the DEA. */
  shutDown(): void {
    if (this.over) return;
    this.control({ kill: true });
    this.finish(errorText('the controller is shutting down'));
    const ws = this.ws;
    if (ws !== undefined && !this.over) {
      this.over = true;
      ws.end(1001, 'controller shutting down');
    }
  }

  /** The client went away (or never came): the session's processes go too. */
  closed(): void {
    const wasOpen = !this.closing;
    this.over = true;
    this.ws = undefined;
    if (wasOpen) this.control({ kill: true });
    this.stopListening();
  }

  private stopListening(): void {
    clearInterval(this.pinger);
    for (const sub of this.subscriptions.splice(0)) sub.unsubscribe();
    this.gateway.forget(this);
  }
}

export class SshGateway {
  readonly rejections: RejectionCounter;
  private readonly relays = new Set<Relay>();

  constructor(
    readonly bus: Bus,
    private readonly api: Api,
    private readonly store: Store,
    private readonly log: Logger,
    readonly options: SshGatewayOptions = {},
  ) {
    this.rejections = new RejectionCounter(log);
  }

  get openSessions(): number {
    return this.relays.size;
  }

  behavior(): WebSocketBehavior<Attached> {
    return {
      // Stdin comes in small frames; a paste of a few MiB is still welcome.
      maxPayloadLength: 4 * 1024 * 1024,
      // With pings from here, an idle interactive session stays up and a vanished client is noticed.
      idleTimeout: 120,
      sendPingsAutomatically: true,
      // 0 = no limit: with one, uWS drops messages; the DEA is paused instead.
      maxBackpressure: 0,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => (ws as SessionSocket & Attached).relay.attach(ws),
      message: (ws, message, binary) => (ws as SessionSocket & Attached).relay.fromClient(message, binary),
      drain: (ws) => (ws as SessionSocket & Attached).relay.drained(),
      close: (ws) => (ws as SessionSocket & Attached).relay.closed(),
    };
  }

  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const e = new Exchange(res, req);
    this.accept(e, context).catch((error: unknown) => this.api.fail(error, e));
  }

  private async accept(e: Exchange, context: us_socket_context_t): Promise<void> {
    const [, rawName, , rawWhich] = e.path.split('/').filter(Boolean);
    let name: string;
    let which: string;
    try {
      name = decodeURIComponent(rawName ?? '');
      which = decodeURIComponent(rawWhich ?? '');
    } catch {
      throw new HttpError(400, 'the path is not valid percent-encoding');
    }
    const { user, app, instance } = await this.api.sshTarget(e, name, which);
    const params = parseSshQuery(e.query, e.headers[COMMAND_HEADER]);
    const relay = new Relay(randomUUID(), this);
    this.relays.add(relay);
    relay.listen(this.bus);
    const request: SshRequest = { droplet: app.id, instance: instance.instance, session: relay.id, ...params };
    let reply: SshReply;
    try {
      const answer = await this.bus.request(deaSshSubject(instance.dea), request, this.options.startTimeoutMs ?? 5000);
      const checked = validateSshReply(answer);
      if (!checked.ok) {
        this.rejections.reject(deaSshSubject(instance.dea), checked.error);
        throw new HttpError(502, 'the DEA gave an unreadable answer');
      }
      reply = checked.value;
    } catch (error) {
      relay.closed();
      if (error instanceof HttpError) throw error;
      throw new HttpError(502, `the DEA running instance ${which} did not answer: ${(error as Error).message}`);
    }
    if ('error' in reply) {
      relay.closed();
      throw new HttpError(REPLY_STATUS[reply.code] ?? 502, reply.error);
    }
    if (!e.upgrade({ relay }, context)) {
      relay.closed();
      return;
    }
    this.log.info('ssh session opened', { app: app.name, droplet: app.id, index: instance.index, instance: instance.instance, user: user.email, tty: params.tty, session: relay.id });
    // Who got a shell where, never what they ran: command lines carry secrets too.
    await recordEvents(this.store, this.log, app.id, user.email, [
      { type: 'ssh', description: `ssh session on instance ${instance.index}${instance.state === 'CRASHED' ? ' (crashed)' : ''}${params.tty ? ', with a terminal' : ''}` },
    ]);
  }

  publish(subject: string, data: Uint8Array | object): void {
    try {
      this.bus.publish(subject, data);
    } catch (err) {
      this.log.warn('ssh publish failed', { subject, error: err });
    }
  }

  forget(relay: Relay): void {
    this.relays.delete(relay);
  }

  stop(): void {
    for (const relay of [...this.relays]) relay.shutDown();
  }
}

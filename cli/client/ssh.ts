// `skiff ssh N [--instance I] [--] [COMMAND ...]`: a command (or a shell) in
// an instance, over the controller's WebSocket (control/API.md, "ssh").
// On a terminal: raw mode, a remote terminal of the same size, resizes
// forwarded. Otherwise stdin is piped and stdout/stderr kept apart. The exit
// code is the remote command's.

import type { IncomingMessage } from 'node:http';
import { WebSocket, type RawData } from 'ws';
import { decodeOutput, EOF_TEXT, parseServerText, resizeText, type ServerText } from '../../bus/ssh-frames';
import { SSH_CHANNEL } from '../../bus/platform';
import { SKIFF_VERSION } from '../../bus/version';
import { apiErrorFrom, readBody } from './api';
import { notFoundAs } from './apps';
import { checkAppName, UsageError } from './args';
import { appPath, CliError, groupQuery, type Context } from './context';
import { pickInstance } from './instances';
import type { CommandArgs } from './registry';
import { remoteCommand, wantTerminal } from './ssh-args';

const STDIN_HIGH_WATER = 1024 * 1024;
const KEEPALIVE_MS = 30_000;

export async function ssh(ctx: Context, { values, positionals }: CommandArgs): Promise<number> {
  if (positionals.length === 0) throw new UsageError('missing app name (usage: skiff ssh N [--instance I] [--] [COMMAND ...])');
  const name = checkAppName(positionals[0]);
  const command = remoteCommand(positionals.slice(1));
  const stdin = process.stdin;
  const stdout = ctx.out;
  const stderr = ctx.err;
  const tty = wantTerminal(values, stdin.isTTY === true, stdout.isTTY === true);
  const api = ctx.api();
  const query = groupQuery(values.group);
  const instance = await pickInstance(api, name, query, values.instance).catch(notFoundAs(name));

  const url = api.url(appPath(name, `/instances/${encodeURIComponent(instance)}/ssh`), {
    ...query,
    tty: tty ? 1 : undefined,
    cols: tty ? stdout.columns || 80 : undefined,
    rows: tty ? stdout.rows || 24 : undefined,
    term: tty && /^[A-Za-z0-9._+-]{1,64}$/.test(process.env.TERM ?? '') ? process.env.TERM : undefined,
  });
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url, {
    headers: {
      Authorization: `Bearer ${ctx.config.token ?? ''}`,
      'User-Agent': `skiff-cli/${SKIFF_VERSION}`,
      // Not in the query: that ends up in the router's access log, and command lines carry secrets.
      ...(command === '' ? {} : { 'X-Skiff-Command': encodeURIComponent(command) }),
    },
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024,
    handshakeTimeout: 30_000,
  });

  let ending: ServerText | undefined;
  const raw = tty && stdin.isTTY === true;
  const cleanups: Array<() => void> = [];

  const closed = new Promise<{ code: number; reason: string }>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      readBody(res, 1024 * 1024).then(
        (body) => reject(apiErrorFrom(res.statusCode ?? 0, body)),
        () => reject(new CliError(`the API answered HTTP ${res.statusCode}`)),
      );
    });
    ws.on('error', (error) => reject(api.unreachable(error)));
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') }));
  });

  ws.on('open', () => {
    if (raw) {
      stdin.setRawMode(true);
      cleanups.push(() => stdin.setRawMode(false));
      const onResize = () => ws.send(resizeText(stdout.columns || 80, stdout.rows || 24));
      stdout.on('resize', onResize);
      cleanups.push(() => stdout.off('resize', onResize));
    }
    stdin.on('data', (chunk: Buffer) => {
      ws.send(chunk, { binary: true }, () => {
        if (stdin.isPaused() && ws.bufferedAmount < STDIN_HIGH_WATER) stdin.resume();
      });
      // The remote side reads slower than we do: wait until the socket has sent what is queued.
      if (ws.bufferedAmount >= STDIN_HIGH_WATER) stdin.pause();
    });
    stdin.on('end', () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(EOF_TEXT);
    });
    stdin.on('error', () => {});
    stdin.resume();
    cleanups.push(() => stdin.pause());
    // A proxy (or the router) in between closes connections that stay silent.
    const keepalive = setInterval(() => ws.ping(), KEEPALIVE_MS);
    keepalive.unref();
    cleanups.push(() => clearInterval(keepalive));
  });

  ws.on('message', (data: RawData, isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!isBinary) {
      ending = parseServerText(bytes.toString('utf8')) ?? ending;
      return;
    }
    const frame = decodeOutput(bytes);
    if (frame === undefined) return;
    const out = frame.channel === SSH_CHANNEL.stderr ? stderr : stdout;
    if (!out.write(frame.data)) {
      // A slow reader of our output slows the remote command, not our memory.
      ws.pause();
      out.once('drain', () => ws.resume());
    }
  });

  let result: { code: number; reason: string };
  try {
    result = await closed;
  } finally {
    for (const cleanup of cleanups.reverse()) cleanup();
  }
  await flushed(stdout);
  await flushed(stderr);
  if (ending !== undefined && 'exit' in ending) {
    if (ending.error !== undefined) ctx.note(`skiff ssh: ${ending.error}`);
    return ending.exit;
  }
  if (ending !== undefined) throw new CliError(ending.error);
  throw new CliError(`the session ended without an exit status (connection closed${result.reason ? `: ${result.reason}` : ` with code ${result.code}`})`);
}

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

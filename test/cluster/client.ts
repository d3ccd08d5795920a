// The cluster test's client, run (compiled, from dist/) inside a namespace of
// the lab: the test process itself has no route to the lab's addresses. It
// reads JSON requests on stdin, one a line, and writes JSON lines on stdout:
//
// - {"id", "op":"get", "host", "port", "header"?, "path"?, "auth"?}: one GET
//   (Host: header, basic auth "user:password"), answered {"id","status","body"}
//   or {"id","error"}.
// - {"op":"poll", "targets":[{"name","host","port","header"}], "intervalMs"}:
//   from now on requests each target in turn, one line per request:
//   {"poll": name, "at", "status", "body"} or {"poll", "at", "error"}; each
//   request on a new connection, so that every one is routed afresh.
// - {"op":"stop"}: stops polling; stdin's end also ends the program.
//
// Every request is bounded in time; the program ends with its stdin.

import * as http from 'node:http';
import { createInterface } from 'node:readline';

interface GetRequest {
  id: number;
  op: 'get';
  host: string;
  port: number;
  header?: string;
  path?: string;
  auth?: string;
}

interface Target {
  name: string;
  host: string;
  port: number;
  header: string;
}

const REQUEST_TIMEOUT_MS = 5000;

function get(host: string, port: number, header: string | undefined, path = '/', auth?: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (header !== undefined) headers.host = header;
    if (auth !== undefined) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
    const req = http.get({ host, port, path, headers, agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (error) => resolve({ error: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (error) => resolve({ error: error.message }));
  });
}

function emit(line: object): void {
  process.stdout.write(JSON.stringify(line) + '\n');
}

let polling: { targets: Target[]; intervalMs: number } | undefined;
let pollLoop: Promise<void> | undefined;

async function poll(): Promise<void> {
  while (polling !== undefined) {
    const { targets, intervalMs } = polling;
    for (const target of targets) {
      const at = Date.now();
      const reply = await get(target.host, target.port, target.header);
      emit({ poll: target.name, at, ms: Date.now() - at, ...('error' in reply ? { error: reply.error } : { status: reply.status, body: reply.body.trim().slice(0, 200) }) });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let request: { op?: string } & Record<string, unknown>;
  try {
    request = JSON.parse(line) as typeof request;
  } catch {
    emit({ error: `not JSON: ${line.slice(0, 100)}` });
    return;
  }
  if (request.op === 'get') {
    const r = request as unknown as GetRequest;
    void get(r.host, r.port, r.header, r.path, r.auth).then((reply) => emit({ id: r.id, ...reply }));
  } else if (request.op === 'poll') {
    polling = { targets: request.targets as Target[], intervalMs: Number(request.intervalMs ?? 100) };
    pollLoop ??= poll().finally(() => (pollLoop = undefined));
  } else if (request.op === 'stop') {
    polling = undefined;
  }
});
lines.on('close', () => {
  polling = undefined;
  void (pollLoop ?? Promise.resolve()).then(() => process.exit(0));
});

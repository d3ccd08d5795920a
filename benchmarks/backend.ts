// Benchmark backend: a plain uWebSockets.js server, run as its own process.
//
//   node dist/benchmarks/backend.js --port P
//
// GET  /small   100 bytes
// GET  /64k     65536 bytes
// POST /upload  reads the whole body, replies with the byte count
// WS   /ws      WebSocket echo: every message goes back as it came (text or
//               binary); no compression, no idle timeout, no automatic pings
//               (the ws-idle case holds connections open without traffic)
//
// Prints "backend ready <port>" once listening. Binds 127.0.0.1 only. Exits on
// SIGTERM/SIGINT and when its stdin closes (the harness keeps a pipe open), so
// it cannot outlive the benchmark.

import uWS = require('uWebSockets.js');

const SMALL = Buffer.alloc(100, 'a');
const LARGE = Buffer.alloc(65536, 'b');

/** `--port P` once or more: the same app on each port (idle WebSocket runs need several, see ws-idle). */
function parsePorts(argv: string[]): number[] {
  const ports: number[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--port') continue;
    const raw = argv[i + 1];
    const port = Number(raw);
    if (!raw || !Number.isInteger(port) || port <= 0 || port > 65535) ports.length = 0;
    else ports.push(port);
  }
  if (ports.length === 0) {
    process.stderr.write('usage: node dist/benchmarks/backend.js --port P [--port P2 ...]\n');
    process.exit(2);
  }
  return ports;
}

const ports = parsePorts(process.argv.slice(2));

const app = uWS.App()
  .get('/small', (res) => {
    res.writeHeader('Content-Type', 'text/plain').end(SMALL);
  })
  .get('/64k', (res) => {
    res.writeHeader('Content-Type', 'application/octet-stream').end(LARGE);
  })
  .post('/upload', (res) => {
    let aborted = false;
    let received = 0;
    res.onAborted(() => {
      aborted = true;
    });
    res.onData((chunk, isLast) => {
      received += chunk.byteLength;
      if (isLast && !aborted) {
        res.cork(() => {
          res.writeHeader('Content-Type', 'text/plain').end(String(received));
        });
      }
    });
  })
  .ws('/ws', {
    compression: uWS.DISABLED,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    maxPayloadLength: 16 * 1024 * 1024,
    maxBackpressure: 1024 * 1024,
    message: (ws, message, isBinary) => {
      // `message` is neutered when this returns; send() copies it first.
      ws.send(message, isBinary);
    },
  })
  .any('/*', (res) => {
    res.writeStatus('404 Not Found').end('not found');
  });

const listenSockets: uWS.us_listen_socket[] = [];

for (const port of ports) {
  app.listen('127.0.0.1', port, (socket) => {
    if (!socket) {
      process.stderr.write(`backend: cannot listen on 127.0.0.1:${port}\n`);
      process.exit(1);
    }
    listenSockets.push(socket);
    if (listenSockets.length === ports.length) process.stdout.write(`backend ready ${ports.join(' ')}\n`);
  });
}

function stop(): void {
  for (const socket of listenSockets) uWS.us_listen_socket_close(socket);
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The harness holds our stdin open; when it goes away (even by SIGKILL), so do we.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

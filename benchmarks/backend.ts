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

function parsePort(argv: string[]): number {
  const i = argv.indexOf('--port');
  const raw = i >= 0 ? argv[i + 1] : undefined;
  const port = Number(raw);
  if (!raw || !Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write('usage: node dist/benchmarks/backend.js --port P\n');
    process.exit(2);
  }
  return port;
}

const port = parsePort(process.argv.slice(2));

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

let listenSocket: uWS.us_listen_socket | false = false;

app.listen('127.0.0.1', port, (socket) => {
  if (!socket) {
    process.stderr.write(`backend: cannot listen on 127.0.0.1:${port}\n`);
    process.exit(1);
  }
  listenSocket = socket;
  process.stdout.write(`backend ready ${port}\n`);
});

function stop(): void {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The harness holds our stdin open; when it goes away (even by SIGKILL), so do we.
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();

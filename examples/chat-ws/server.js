// A chat room over WebSockets with no dependencies: node:http serves the
// page, and the WebSocket side of RFC 6455 is written out below (handshake,
// framing, masking, fragmentation, ping/pong, close). Every text message is
// sent to every client connected to this instance; with several instances,
// each is its own room (the router keeps a WebSocket on the instance that
// accepted it).
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

const port = Number(process.env.PORT || process.env.VCAP_APP_PORT || 3000);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_MESSAGE = 64 * 1024;
const PING_INTERVAL_MS = 30_000;

function instanceIndex() {
  try {
    const app = JSON.parse(process.env.VCAP_APPLICATION || '{}');
    if (Number.isInteger(app.instance_index)) return app.instance_index;
  } catch {
    // not JSON: fall back below
  }
  return process.env.CF_INSTANCE_INDEX || '0';
}
const index = instanceIndex();

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Skiff chat</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: 0; min-height: 12rem; border: 1px solid #ccd; border-radius: 6px; padding: .5rem; }
  #log li.status { color: #778; font-style: italic; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  input { flex: 1; padding: .4rem; }
</style>
</head>
<body>
<h1>Skiff chat <small>(instance ${index})</small></h1>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" placeholder="Say something" maxlength="2000"><button>Send</button></form>
<script>
  const log = document.getElementById('log');
  const add = (text, cls) => {
    const li = document.createElement('li');
    li.textContent = text;
    if (cls) li.className = cls;
    log.appendChild(li);
  };
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const socket = new WebSocket(scheme + location.host + '/chat');
  socket.onopen = () => add('connected', 'status');
  socket.onclose = (e) => add('disconnected (' + e.code + ')', 'status');
  socket.onmessage = (e) => add(e.data);
  document.getElementById('form').onsubmit = (e) => {
    e.preventDefault();
    const input = document.getElementById('text');
    if (input.value && socket.readyState === WebSocket.OPEN) socket.send(input.value);
    input.value = '';
  };
</script>
</body>
</html>
`;

const clients = new Set();

/** One frame, unmasked (servers never mask), FIN set. */
function frame(opcode, payload) {
  const length = payload.length;
  let header;
  if (length < 126) {
    header = Buffer.from([0x80 | opcode, length]);
  } else if (length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Client {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.fragments = null; // [opcode, chunks, size] of a message in parts
    this.closing = false;
    this.alive = true;
    socket.on('data', (chunk) => this.receive(chunk));
    socket.on('close', () => clients.delete(this));
    socket.on('error', () => socket.destroy());
  }

  send(opcode, payload) {
    if (!this.closing && this.socket.writable) this.socket.write(frame(opcode, payload));
  }

  close(code, reason = '') {
    if (this.closing) return;
    const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
    payload.writeUInt16BE(code, 0);
    payload.write(reason, 2);
    this.socket.write(frame(0x8, payload));
    this.closing = true;
    clients.delete(this);
    this.socket.end();
    // A client that never answers the close loses the connection anyway.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  receive(chunk) {
    if (this.closing) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const parsed = this.parseFrame();
      if (!parsed) return;
      this.onFrame(parsed);
      if (this.closing) return;
    }
  }

  /** Takes one whole frame off the buffer; null until one has arrived. */
  parseFrame() {
    const b = this.buffer;
    if (b.length < 2) return null;
    const fin = (b[0] & 0x80) !== 0;
    const rsv = b[0] & 0x70;
    const opcode = b[0] & 0x0f;
    const masked = (b[1] & 0x80) !== 0;
    let length = b[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = b.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      const big = b.readBigUInt64BE(2);
      length = big > BigInt(MAX_MESSAGE) ? MAX_MESSAGE + 1 : Number(big);
      offset = 10;
    }
    if (rsv !== 0) return { error: [1002, 'no extensions were negotiated'] };
    if (!masked) return { error: [1002, 'client frames must be masked'] };
    if (length > MAX_MESSAGE) return { error: [1009, 'message too big'] };
    if (b.length < offset + 4 + length) return null;
    const mask = b.subarray(offset, offset + 4);
    const payload = Buffer.from(b.subarray(offset + 4, offset + 4 + length));
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    this.buffer = b.subarray(offset + 4 + length);
    return { fin, opcode, payload };
  }

  onFrame(parsed) {
    if (parsed.error) {
      this.close(...parsed.error);
      return;
    }
    const { fin, opcode, payload } = parsed;
    this.alive = true;
    if (opcode >= 0x8) {
      if (!fin || payload.length > 125) {
        this.close(1002, 'bad control frame');
        return;
      }
      if (opcode === 0x8) this.onClose(payload);
      else if (opcode === 0x9) this.send(0xa, payload); // pong with the ping's payload
      else if (opcode !== 0xa) this.close(1002, 'unknown opcode');
      return;
    }
    if (opcode === 0x0) {
      if (!this.fragments) {
        this.close(1002, 'continuation without a message');
        return;
      }
      this.fragments.chunks.push(payload);
      this.fragments.size += payload.length;
      if (this.fragments.size > MAX_MESSAGE) {
        this.close(1009, 'message too big');
        return;
      }
      if (fin) {
        const { type, chunks } = this.fragments;
        this.fragments = null;
        this.onMessage(type, Buffer.concat(chunks));
      }
      return;
    }
    if (opcode !== 0x1 && opcode !== 0x2) {
      this.close(1002, 'unknown opcode');
      return;
    }
    if (this.fragments) {
      this.close(1002, 'new message inside a fragmented one');
      return;
    }
    if (fin) this.onMessage(opcode, payload);
    else this.fragments = { type: opcode, chunks: [payload], size: payload.length };
  }

  onMessage(type, payload) {
    if (type === 0x2) {
      this.close(1003, 'text messages only');
      return;
    }
    let text;
    try {
      text = utf8.decode(payload);
    } catch {
      this.close(1007, 'invalid UTF-8');
      return;
    }
    const out = Buffer.from(text);
    for (const client of clients) client.send(0x1, out);
  }

  onClose(payload) {
    // Echo the code back, as RFC 6455 5.5.1 asks; 1005 (no code) is answered with 1000.
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1000;
    this.close(code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 ? code : 1000);
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  if (req.url === '/' || req.url === '/index.html') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(PAGE) });
    res.end(req.method === 'HEAD' ? undefined : PAGE);
    return;
  }
  if (req.url === '/chat') {
    res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' }).end('WebSocket only\n');
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
});

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  const refuse = (status, text) => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  };
  if (req.url !== '/chat') return refuse(404, 'Not Found');
  if (String(req.headers.upgrade).toLowerCase() !== 'websocket') return refuse(400, 'Bad Request');
  if (req.headers['sec-websocket-version'] !== '13') {
    socket.end('HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) return refuse(400, 'Bad Request');
  const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  socket.setNoDelay(true);
  const client = new Client(socket);
  clients.add(client);
  // Bytes the client sent right after its request belong to the first frame.
  if (head.length > 0) client.receive(head);
});

// Pings keep idle connections open through proxies and find dead clients.
setInterval(() => {
  for (const client of clients) {
    if (!client.alive) {
      client.socket.destroy();
      clients.delete(client);
      continue;
    }
    client.alive = false;
    client.send(0x9, Buffer.alloc(0));
  }
}, PING_INTERVAL_MS).unref();

server.listen(port, () => console.log(`chat-ws instance ${index} listening on ${port}`));

process.on('SIGTERM', () => {
  for (const client of clients) client.close(1001, 'server going away');
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
});

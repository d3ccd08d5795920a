// A chat room on express and socket.io, meant to run as several instances.
//
// socket.io keeps each session in the memory of the process that made it, and
// its long-polling transport sends every poll as a new HTTP request: with two
// instances, the router must send all of a client's requests to the same one.
// The app sets no session cookie of its own, so only the app's
// session_affinity (manifest.yml) does that: the router pins each client
// with its __VCAP_ID__ cookie.
//
// A message reaches every client connected to the same instance: instances
// share nothing (that would take a socket.io adapter over a shared store,
// such as Redis, which this example leaves out).
'use strict';

const http = require('node:http');
const express = require('express');
const { Server } = require('socket.io');

const port = Number(process.env.PORT || process.env.VCAP_APP_PORT || 3000);
const MAX_MESSAGE = 2000;

function instanceIndex() {
  try {
    const app = JSON.parse(process.env.VCAP_APPLICATION || '{}');
    if (Number.isInteger(app.instance_index)) return app.instance_index;
  } catch {
    // not JSON: fall back below
  }
  return Number(process.env.CF_INSTANCE_INDEX || 0);
}
const instance = instanceIndex();

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Skiff chat (socket.io)</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: 0; min-height: 12rem; border: 1px solid #ccd; border-radius: 6px; padding: .5rem; }
  #log li.status { color: #778; font-style: italic; }
  #log small { color: #778; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  input { flex: 1; padding: .4rem; }
</style>
</head>
<body>
<h1>Skiff chat <small>(socket.io, page from instance ${instance})</small></h1>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" placeholder="Say something" maxlength="${MAX_MESSAGE}"><button>Send</button></form>
<script src="/socket.io/socket.io.js"></script>
<script>
  const log = document.getElementById('log');
  const add = (text, cls, from) => {
    const li = document.createElement('li');
    li.textContent = text;
    if (from !== undefined) {
      const small = document.createElement('small');
      small.textContent = ' (instance ' + from + ')';
      li.appendChild(small);
    }
    if (cls) li.className = cls;
    log.appendChild(li);
  };
  const socket = io();
  socket.on('hello', (hello) => add('connected to instance ' + hello.instance + ' over ' + socket.io.engine.transport.name, 'status'));
  socket.on('disconnect', (reason) => add('disconnected (' + reason + ')', 'status'));
  socket.on('chat message', (message) => add(message.text, '', message.instance));
  document.getElementById('form').onsubmit = (e) => {
    e.preventDefault();
    const input = document.getElementById('text');
    if (input.value) socket.emit('chat message', input.value);
    input.value = '';
  };
</script>
</body>
</html>
`;

const app = express();
app.get('/', (_req, res) => res.type('html').send(PAGE));

const server = http.createServer(app);
const io = new Server(server, { maxHttpBufferSize: 64 * 1024 });

io.on('connection', (socket) => {
  socket.emit('hello', { instance });
  socket.on('chat message', (text) => {
    if (typeof text !== 'string' || text === '' || text.length > MAX_MESSAGE) return;
    io.emit('chat message', { text, instance });
  });
});

server.listen(port, () => console.log(`chat-socketio instance ${instance} listening on ${port}`));

// The DEA stops an instance with SIGTERM: close the sockets and go.
process.on('SIGTERM', () => {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});

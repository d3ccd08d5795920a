#!/usr/bin/env node
// Skiff's static file server. The stager copies this file into every static
// site's droplet (app/.skiff/static-server.js) and starts it with
// `node .skiff/static-server.js`. It serves the app directory (the parent of
// .skiff/) on $PORT. Self-contained on purpose: it runs inside the app's
// instance, with nothing of Skiff installed beside it.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml; charset=utf-8',
  '.wasm': 'application/wasm',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.pdf': 'application/pdf',
};

const root = fs.realpathSync(process.env.SKIFF_STATIC_ROOT || path.resolve(__dirname, '..'));
const port = Number(process.env.PORT || process.env.VCAP_APP_PORT);
if (!Number.isInteger(port) || port < 0 || port > 65535 || !(process.env.PORT || process.env.VCAP_APP_PORT)) {
  process.stderr.write('static-server: set PORT to the port to listen on\n');
  process.exit(2);
}

function contentType(file) {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream';
}

function send(req, res, status, body, headers) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The file a URL path names, or null when it names nothing we serve. */
function resolvePath(urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/').filter((s) => s !== '' && s !== '.');
  // `..` never climbs, and dotfiles (.env, .git, .skiff) are not part of the site.
  if (segments.some((s) => s === '..' || (s.startsWith('.') && s !== '.well-known'))) return null;
  return path.join(root, ...segments);
}

function realInside(file) {
  try {
    const real = fs.realpathSync(file);
    return real === root || real.startsWith(root + path.sep) ? real : null;
  } catch {
    return null;
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(req, res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    return;
  }
  const url = new URL(req.url || '/', 'http://localhost');
  const wanted = resolvePath(url.pathname);
  let file = wanted && realInside(wanted);
  let stat = file ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
  if (stat && stat.isDirectory()) {
    if (!url.pathname.endsWith('/')) {
      // Relative links in the directory's index.html need the trailing slash.
      send(req, res, 301, 'moved\n', { Location: url.pathname + '/' + url.search });
      return;
    }
    file = realInside(path.join(file, 'index.html'));
    stat = file ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
  }
  if (!file || !stat || !stat.isFile()) {
    send(req, res, 404, 'not found\n');
    return;
  }
  const lastModified = stat.mtime.toUTCString();
  const since = Date.parse(req.headers['if-modified-since'] || '');
  if (!Number.isNaN(since) && Math.floor(stat.mtimeMs / 1000) <= Math.floor(since / 1000)) {
    res.writeHead(304, { 'Last-Modified': lastModified });
    res.end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': contentType(file),
    'Content-Length': stat.size,
    'Last-Modified': lastModified,
    'X-Content-Type-Options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = fs.createReadStream(file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
});

server.listen(port, () => {
  process.stdout.write(`static-server: serving ${root} on port ${server.address().port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    // Downloads still running get a moment, not forever.
    setTimeout(() => process.exit(0), 5000).unref();
  });
}

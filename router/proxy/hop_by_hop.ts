// Headers that describe one connection, not the message (RFC 9110 7.6.1):
// never forwarded in either direction.

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** `name` must be lowercase. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/**
 * Extra header names a Connection header declares hop-by-hop
 * (`Connection: close, X-Trace` -> ['x-trace']); the usual tokens need no work.
 */
export function connectionListedHeaders(connectionValue: string): string[] {
  const out: string[] = [];
  for (const raw of connectionValue.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue;
    out.push(token);
  }
  return out;
}

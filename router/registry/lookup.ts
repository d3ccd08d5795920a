// Pure helpers for turning a request's Host and path into routing-table keys.

/**
 * The host part of a Host header as the routing table keys it: lowercased,
 * port stripped, trailing root dot dropped. IPv6 literals keep their brackets.
 */
export function normalizeHost(hostHeader: string): string {
  let end = hostHeader.length;
  if (hostHeader.charCodeAt(0) === 91 /* [ */) {
    const close = hostHeader.indexOf(']');
    end = close === -1 ? end : close + 1;
  } else {
    const colon = hostHeader.indexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && hostHeader.charCodeAt(end - 1) === 46 /* . */) end--;
  const host = end === hostHeader.length ? hostHeader : hostHeader.slice(0, end);
  return hasUpperCase(host) ? host.toLowerCase() : host;
}

function hasUpperCase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
    if (c > 127) return true; // let toLowerCase deal with non-ASCII
  }
  return false;
}

/**
 * The next wildcard key to try when `host` has no routes: `a.b.c` -> `*.b.c`,
 * `*.b.c` -> `*.c`, `*.c` -> undefined. Matches gorouter's fallback order.
 */
export function nextWildcard(host: string): string | undefined {
  const start = host.startsWith('*.') ? 2 : 0;
  const dot = host.indexOf('.', start);
  if (dot === -1 || dot === host.length - 1) return undefined;
  return '*' + host.slice(dot);
}

/**
 * Splits a registered uri (`shop.localhost/api/`, `Shop.Localhost:80`) into the
 * host key and the context path ('' for the root, otherwise `/seg[/seg...]`
 * without a trailing slash), both lowercased like gorouter's route keys.
 */
export function parseRouteUri(uri: string): { host: string; path: string } | undefined {
  let rest = uri.trim();
  const scheme = rest.indexOf('://');
  if (scheme !== -1) rest = rest.slice(scheme + 3);
  const slash = rest.indexOf('/');
  const hostPart = slash === -1 ? rest : rest.slice(0, slash);
  let path = slash === -1 ? '' : rest.slice(slash);
  const query = path.indexOf('?');
  if (query !== -1) path = path.slice(0, query);
  while (path.endsWith('/')) path = path.slice(0, -1);
  const host = normalizeHost(hostPart);
  if (host === '' || /[\s/\\]/.test(host)) return undefined;
  return { host, path: path.toLowerCase() };
}

/**
 * Whether a context path covers a request path on `/`-segment boundaries:
 * `/api` covers `/api`, `/api/`, `/api/v1`, not `/apix`. `requestPath` must be
 * lowercased by the caller when the route has context paths.
 */
export function contextPathCovers(contextPath: string, requestPath: string): boolean {
  if (contextPath === '') return true;
  if (!requestPath.startsWith(contextPath)) return false;
  if (requestPath.length === contextPath.length) return true;
  const next = requestPath.charCodeAt(contextPath.length);
  return next === 47 /* / */ || next === 63 /* ? */;
}

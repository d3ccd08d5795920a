// Where a pushed app is reached: its routes on the router, whose port the
// controller reports in /info `router_url` (8080 when it does not).

export const DEFAULT_ROUTER_PORT = 8080;

export function appUrls(uris: readonly string[], routerUrl: string | undefined): string[] {
  let scheme = 'http:';
  let port = String(DEFAULT_ROUTER_PORT);
  if (routerUrl !== undefined) {
    try {
      const parsed = new URL(routerUrl);
      if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
        scheme = parsed.protocol;
        port = parsed.port; // '' for the scheme's default port
      }
    } catch {
      // A malformed router_url is the server's problem; the default still helps the user.
    }
  }
  return uris.map((uri) => {
    const slash = uri.indexOf('/');
    const host = slash === -1 ? uri : uri.slice(0, slash);
    const path = slash === -1 ? '' : uri.slice(slash);
    return `${scheme}//${host}${port === '' ? '' : `:${port}`}${path}/`;
  });
}

/** The platform's app domain: /info `domain`, else the router_url's host name. */
export function platformDomain(info: { domain?: string; router_url?: string }): string | undefined {
  if (typeof info.domain === 'string' && info.domain !== '') return info.domain;
  if (typeof info.router_url !== 'string') return undefined;
  try {
    const host = new URL(info.router_url).hostname;
    return /^[\d.]+$|^\[/.test(host) ? undefined : host;
  } catch {
    return undefined;
  }
}

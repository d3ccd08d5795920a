// Sticky sessions, as gorouter does them: when an app sets a session cookie
// (JSESSIONID by default), the router adds __VCAP_ID__=<instance id>; a
// request carrying both cookies goes back to that instance while it is
// registered. A route with session affinity (end of this file) pins by
// __VCAP_ID__ alone.

export const VCAP_ID = '__VCAP_ID__';
export const DEFAULT_SESSION_COOKIES: readonly string[] = ['JSESSIONID'];

/** The name of a `name=value` pair, trimmed; '' when there is none. */
function pairName(pair: string): string {
  const eq = pair.indexOf('=');
  return (eq === -1 ? '' : pair.slice(0, eq)).trim();
}

/**
 * The instance a request is stuck to: the value of __VCAP_ID__ when the
 * Cookie header also carries one of the session cookies, else undefined.
 */
export function stickyInstance(cookieHeader: string, sessionCookies: readonly string[]): string | undefined {
  if (!cookieHeader.includes(VCAP_ID)) return undefined;
  let instance: string | undefined;
  let hasSession = false;
  for (const pair of cookieHeader.split(';')) {
    const name = pairName(pair);
    if (name === VCAP_ID) instance = pair.slice(pair.indexOf('=') + 1).trim();
    else if (sessionCookies.includes(name)) hasSession = true;
  }
  return hasSession && instance !== undefined && instance !== '' ? instance : undefined;
}

/**
 * The __VCAP_ID__ Set-Cookie value to add after the app's `setCookie`, or
 * undefined when that cookie is not a session cookie. Secure, SameSite,
 * Expires and Max-Age are copied (so a session the app ends, ends the
 * stickiness too); Path is the route's context path; always HttpOnly.
 */
export function vcapCookieFor(
  setCookie: string,
  sessionCookies: readonly string[],
  instanceId: string,
  contextPath: string,
): string | undefined {
  const parts = setCookie.split(';');
  if (!sessionCookies.includes(pairName(parts[0]))) return undefined;
  // The id comes from a registration: one that could end the pair or the header gets no cookie.
  if (!COOKIE_VALUE.test(instanceId)) return undefined;
  let cookie = `${VCAP_ID}=${instanceId}; Path=${contextPath === '' ? '/' : contextPath}; HttpOnly`;
  for (let i = 1; i < parts.length; i++) {
    const attribute = parts[i].trim();
    const name = (attribute.includes('=') ? attribute.slice(0, attribute.indexOf('=')) : attribute).trim().toLowerCase();
    if (name === 'secure' || name === 'samesite' || name === 'expires' || name === 'max-age') cookie += `; ${attribute}`;
  }
  return cookie;
}

/** `--sticky-session-cookies` value: comma-separated cookie names. */
export function parseCookieNames(value: string): string[] {
  return value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
}

// Session affinity (a route registered with options.session_affinity), as
// Heroku's http-session-affinity: every client is pinned by __VCAP_ID__
// alone, so apps that keep sessions in memory without a session cookie
// (socket.io's long-polling) work with several instances.

const VCAP_PAIR = VCAP_ID + '=';
/** Cookie values are an instance id the router sets: nothing that could end the pair or the header. */
const COOKIE_VALUE = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/;

function isCookieSpace(code: number): boolean {
  return code === 32 || code === 9;
}

/**
 * The endpoint a __VCAP_ID__ pair of the Cookie header names, or undefined.
 * Every such pair counts, the first registered one wins: below a context path
 * a browser also sends the root route's cookie (Path=/), after the longer
 * path's own, and that one names an instance of another pool. Allocates
 * nothing (it runs for each request of a route with affinity).
 */
export function affinityEndpoint<E extends { readonly instanceId: string }>(cookieHeader: string, endpoints: readonly E[]): E | undefined {
  for (let at = cookieHeader.indexOf(VCAP_ID); at !== -1; at = cookieHeader.indexOf(VCAP_ID, at + VCAP_ID.length)) {
    let before = at - 1;
    while (before >= 0 && isCookieSpace(cookieHeader.charCodeAt(before))) before--;
    if (before >= 0 && cookieHeader.charCodeAt(before) !== 59 /* ; */) continue;
    let start = at + VCAP_ID.length;
    while (start < cookieHeader.length && isCookieSpace(cookieHeader.charCodeAt(start))) start++;
    if (cookieHeader.charCodeAt(start) !== 61 /* = */) continue;
    start++;
    while (start < cookieHeader.length && isCookieSpace(cookieHeader.charCodeAt(start))) start++;
    let end = cookieHeader.indexOf(';', start);
    if (end === -1) end = cookieHeader.length;
    while (end > start && isCookieSpace(cookieHeader.charCodeAt(end - 1))) end--;
    const length = end - start;
    if (length === 0) continue;
    for (let i = 0; i < endpoints.length; i++) {
      const id = endpoints[i].instanceId;
      if (id.length === length && cookieHeader.startsWith(id, start)) return endpoints[i];
    }
  }
  return undefined;
}

/**
 * The __VCAP_ID__ Set-Cookie value that pins a client to `instanceId` on a
 * route with affinity: a browser-session cookie (the pin ends with the
 * browser, not at a time), Path the route's context path, never readable by
 * scripts, and sent on top-level navigation from other sites (Lax) so a link
 * into the app keeps its pin. Undefined when the app set __VCAP_ID__ itself
 * (`appHeaders`: its response headers, name then value), and when the id
 * cannot be a cookie value.
 */
export function affinityCookie(instanceId: string, contextPath: string, appHeaders: readonly string[]): string | undefined {
  if (!COOKIE_VALUE.test(instanceId)) return undefined;
  for (let i = 0; i < appHeaders.length; i += 2) {
    const name = appHeaders[i];
    if (name.length === 10 && name.toLowerCase() === 'set-cookie' && appHeaders[i + 1].startsWith(VCAP_PAIR)) return undefined;
  }
  return `${VCAP_ID}=${instanceId}; Path=${contextPath === '' ? '/' : contextPath}; HttpOnly; SameSite=Lax`;
}

// Sticky sessions, as gorouter does them: when an app sets a session cookie
// (JSESSIONID by default), the router adds __VCAP_ID__=<instance id>; a
// request carrying both cookies goes back to that instance while it is
// registered.

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

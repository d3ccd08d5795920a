// Tokens and password hashes. Tokens are self-contained (HMAC-SHA256 over
// {email, exp, gen}) so that any controller holding the shared secret from the
// KV store accepts them without a session table. `gen` is the user's token
// generation when the token was issued: a password change bumps the one in the
// user record, and a token whose `gen` differs is refused (tokens issued before
// `gen` existed count as generation 0).

import { createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export const TOKEN_TTL_SECONDS = 7 * 24 * 3600;

export interface TokenClaims {
  email: string;
  /** epoch seconds */
  exp: number;
  /** The user's token generation at issue; 0 for tokens without one. */
  generation: number;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: 'malformed' | 'bad signature' | 'expired' };

function mac(secret: Buffer, payload: string): Buffer {
  return createHmac('sha256', secret).update(payload).digest();
}

export function signToken(
  secret: Buffer,
  email: string,
  nowSeconds: number,
  ttlSeconds = TOKEN_TTL_SECONDS,
  generation = 0,
): { token: string; expiresAt: number } {
  const exp = Math.floor(nowSeconds) + ttlSeconds;
  const payload = Buffer.from(JSON.stringify({ email, exp, gen: generation })).toString('base64url');
  return { token: `${payload}.${mac(secret, payload).toString('base64url')}`, expiresAt: exp };
}

export function verifyToken(secret: Buffer, token: string, nowSeconds: number): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') return { ok: false, reason: 'malformed' };
  const [payload, signature] = parts as [string, string];
  const given = Buffer.from(signature, 'base64url');
  const expected = mac(secret, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad signature' };
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof claims !== 'object' || claims === null) return { ok: false, reason: 'malformed' };
  const { email, exp, gen } = claims as Record<string, unknown>;
  if (typeof email !== 'string' || typeof exp !== 'number') return { ok: false, reason: 'malformed' };
  let generation = 0;
  if (gen !== undefined) {
    if (!isGeneration(gen)) return { ok: false, reason: 'malformed' };
    generation = gen;
  }
  if (exp <= nowSeconds) return { ok: false, reason: 'expired' };
  return { ok: true, claims: { email, exp, generation } };
}

function isGeneration(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export interface PasswordHash {
  algorithm: 'scrypt';
  /** scrypt cost parameters, kept with the hash so they can be raised later without breaking old hashes. */
  N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

const SCRYPT = { N: 16384, r: 8, p: 1, keyLength: 64 };

function scryptAsync(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return { algorithm: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64'), hash: key.toString('base64') };
}

export async function checkPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, 'base64');
  const key = await scryptAsync(password, Buffer.from(stored.salt, 'base64'), expected.length, {
    N: stored.N,
    r: stored.r,
    p: stored.p,
    maxmem: 256 * stored.N * stored.r + 1024 * 1024,
  });
  return timingSafeEqual(key, expected);
}

/** Pulls the token out of `Authorization: Bearer <token>` (scheme case-insensitive). */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** The console's cookie: the same token the CLI gets, HttpOnly, SameSite=Strict, for the API host only. */
export const TOKEN_COOKIE = 'skiff_token';
/** Sent by the console with every change (see Api.authenticate). */
export const CONSOLE_HEADER = 'x-skiff-console';

/** The token in a Cookie header, if any. */
export function cookieToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === TOKEN_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

/** `Authorization: Basic` email and password, if that is what was sent. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The Set-Cookie value that stores `token` (or, with maxAge 0, removes it). No Domain: only the API host gets it. */
export function tokenCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  return `${TOKEN_COOKIE}=${token}; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

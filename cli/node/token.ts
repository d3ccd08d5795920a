// The join token a node is given (`skiff up --join TOKEN`): where the
// cluster's NATS is and the node supervisors' NATS user, nothing else. With
// it a new node asks the cluster for the credentials of the roles it runs
// (bus/platform.ts NODE_CREDENTIALS_SUBJECT). It is a secret of the
// cluster's own hosts: apps never see it, and `skiff up` hides it from its
// command line at once (prefer SKIFF_UP_JOIN in a 0600 environment file).

import { UsageError } from '../../bus/flags';

export interface JoinToken {
  servers: string[];
  user: string;
  pass: string;
}

const PREFIX = 'skiff1-';

export function encodeJoinToken(token: JoinToken): string {
  return PREFIX + Buffer.from(JSON.stringify({ s: token.servers, u: token.user, p: token.pass })).toString('base64url');
}

/** The token's content; a UsageError naming `origin` (never echoing the token) when it is not one. */
export function decodeJoinToken(text: string, origin = '--join'): JoinToken {
  const trimmed = text.trim();
  if (!trimmed.startsWith(PREFIX)) throw new UsageError(`${origin} is not a Skiff join token (it starts with ${PREFIX}: copy the join: line of the first node)`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(trimmed.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw new UsageError(`${origin} is damaged: copy the whole join: line again`);
  }
  const fields = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const servers = Array.isArray(fields.s) ? fields.s.filter((s): s is string => typeof s === 'string' && /^nats:\/\/[^\s@/]+$/.test(s)) : [];
  if (servers.length === 0 || typeof fields.u !== 'string' || typeof fields.p !== 'string' || fields.u === '' || fields.p === '') {
    throw new UsageError(`${origin} is damaged: copy the whole join: line again`);
  }
  return { servers, user: fields.u, pass: fields.p };
}

/**
 * A login judged against the users.yaml in force now, not the one it logged in under. A
 * gateway's operators keep their connections for hours; when the administrator removes one
 * (or revokes the key, token or password she logged in with, or changes her hosts, `as`,
 * channels or commands) and reloads (SIGHUP), her next OPEN must be judged by the new file:
 * the gateway asks this at every OPEN (server-connection.ts) and at every reload (a revoked
 * login's connection is closed, server.ts). The host side does the same for `actAs`
 * (server/on-behalf.ts). A daemon's direct logins keep the policy they logged in with
 * (docs/policy.md). A one-time web login (one-time-logins.ts) carries the method and
 * credential of the login that asked for it, so that original login is what is judged here.
 */
import type { Principal } from './principal.js';
import type { UsersConfig } from './users-config.js';

/**
 * The principal `login` is under `config`: that file's policy for the same user with the
 * login's method and credential; or why the login no longer stands (the user is gone, or
 * the credential it used is). The daemon's own token is not in users.yaml: it stands.
 */
export function loginInForce(login: Principal, config: UsersConfig): { principal: Principal } | { reason: string } {
  if (login.daemonToken) return { principal: login };
  const name = login.name;
  const entry = config.users.get(name);
  const gone = (why: string) => ({ reason: `${name} is no longer permitted here: ${why} (users.yaml was reloaded after this connection logged in); ask the administrator` });
  if (!entry) return gone(`users.yaml has no user "${name}"`);
  switch (login.method) {
    case 'publickey':
      if (!entry.keys.some((k) => k.fingerprint === login.credential)) return gone(`the key this login used (${login.credential}) is no longer in users.${name}.keys`);
      break;
    case 'token': {
      const tokenName = login.credential?.replace(/^token /, '');
      const token = entry.tokens.find((t) => t.name === tokenName);
      if (!token) return gone(`the token this login used ("${tokenName}") is no longer in users.${name}.tokens`);
      if (token.expires && token.expires.getTime() <= Date.now()) return gone(`the token "${tokenName}" expired at ${token.expires.toISOString()}`);
      break;
    }
    case 'password':
      if (!config.passwordLogin) return gone('password login was turned off (settings.passwordLogin)');
      if (entry.passwordHash === null || entry.passwordHash !== login.passwordHash) return gone(`the password of users.${name} was changed or removed`);
      break;
    default:
      break;
  }
  return { principal: { ...entry, method: login.method, credential: login.credential, ...(login.oneTimeLogin ? { oneTimeLogin: true } : {}) } };
}

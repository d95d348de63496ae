/**
 * Gateway op `web-login` (`shellwire web-login --via GW`): a one-time link to the web
 * console for the operator who asks, bound to her and to the login she used
 * (src/auth/one-time-logins.ts). The token is in the URL's fragment, which browsers never
 * send to a server (no HTTP log, no Referer); the console's page posts it to
 * /api/login/link and drops it from its history.
 */
import { ErrorCode } from '../errors.js';
import type { OneTimeLogins } from '../auth/one-time-logins.js';
import type { GatewayOp } from './gateway-kind.js';

/**
 * The op over `logins`; `consoleUrl()` is the console's `https://HOST:PORT/`, or null when
 * the gateway serves none (then the op is refused with what to do).
 */
export function webLoginOp(logins: OneTimeLogins | null, consoleUrl: () => string | null): GatewayOp {
  return (user, _params, host) => {
    const url = consoleUrl();
    if (!logins || url === null) {
      return { code: ErrorCode.BAD_REQUEST, message: 'This gateway serves no web console; start it with `shellwire gateway --web HOST:PORT`.' };
    }
    // A browser session may not mint itself new logins: its 12 h limit would mean nothing.
    if (user.oneTimeLogin || host.remote.startsWith('web:')) {
      return { code: ErrorCode.DENIED, message: 'A web console session cannot ask for a one-time login link; run `shellwire web-login --via GW` from a terminal.' };
    }
    const { token, expiresAt } = logins.issue(user);
    // Never the token: only that one was issued, to whom.
    host.log.info({ client: host.remote, user: user.name, expiresAt: expiresAt.toISOString() }, 'one-time web login issued');
    return Buffer.from(JSON.stringify({ url: `${url}#login=${token}`, expiresAt: expiresAt.toISOString() }) + '\n');
  };
}

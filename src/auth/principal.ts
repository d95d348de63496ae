/** Who a connection logged in as, and how (authenticator.ts decides it; login-in-force.ts judges it again). */
import type { AuthRequest } from '../protocol/messages.js';
import type { UserPolicy } from './users-config.js';

export interface Principal extends UserPolicy {
  /** How this connection authenticated. */
  method: AuthRequest['method'];
  /** Which credential: token name, key fingerprint. */
  credential: string | null;
  /** Logged in with the daemon's own token (the only principal the state dir is served to). */
  daemonToken?: boolean;
  /**
   * Logged in with a one-time web login token (one-time-logins.ts): `method` and `credential`
   * are those of the login that asked for the token, and login-in-force judges that one.
   */
  oneTimeLogin?: boolean;
}

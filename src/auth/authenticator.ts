/**
 * Decides who a HELLO's credentials belong to. Credentials, tried in the order the client
 * sent them: the daemon's own access token (acts as the daemon's account, unrestricted),
 * named user tokens (hashed in users.yaml, optional expiry), OpenSSH keys (Ed25519, ECDSA,
 * RSA with SHA-2; a signature over a TLS exporter value, so nothing can be replayed), and
 * passwords (scrypt, off unless `settings.passwordLogin`). Failures back off per source (see throttle.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AuthRequest } from '../protocol/messages.js';
import { tokensEqual } from './token.js';
import { parsePublicKey, signatureAlgorithmProblem, verifyAuth } from './ssh-key.js';
import { verifyPassword } from './password.js';
import { daemonAccount } from './os-account.js';
import { CHANNEL_PERMISSIONS, USER_NAME, type UsersConfig } from './users-config.js';
import { AuthThrottle } from './throttle.js';
import { loginInForce } from './login-in-force.js';
import type { OneTimeLogins } from './one-time-logins.js';
import type { Principal } from './principal.js';

export type { Principal } from './principal.js';

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: string; /** hold the refusal back this long (brute-force backoff) */ delayMs: number; lockedOut?: boolean };

export interface AuthContext {
  /** Source address (no port): the unit of backoff. */
  address: string;
  /** This TLS session's exporter value for publickey signatures. */
  exporter: () => Buffer;
  /** `'web'`: the web console's in-process connection (TransportPeer.origin), the only one a one-time login token is good for. */
  origin?: 'web' | 'web-link';
}

export interface Authenticator {
  authenticate(attempts: AuthRequest[], requestedUser: string | undefined, context: AuthContext): AuthResult | Promise<AuthResult>;
}

/**
 * The principal the daemon's own token acts as: the daemon's account, no restrictions. Its
 * commands are unrestricted, so its file roots are too (`/`) unless `serve --file-root` narrows them.
 */
export function daemonPrincipal(fileRoots?: string[]): Principal {
  const account = daemonAccount();
  return {
    name: account.name,
    keys: [],
    tokens: [],
    passwordHash: null,
    account,
    switchAccount: false,
    home: account.home,
    channels: new Set(CHANNEL_PERMISSIONS),
    allow: null,
    deny: [],
    fileRoots: fileRoots ?? ['/'],
    fileRootsFrom: 'serve --file-root DIR (repeatable; without it, the daemon token may use any path)',
    method: 'token',
    credential: 'daemon token',
    daemonToken: true,
  };
}

/** Only the daemon token (what `Server` uses when given no users config). */
export class TokenAuthenticator implements Authenticator {
  #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  authenticate(attempts: AuthRequest[], requestedUser: string | undefined): AuthResult {
    for (const attempt of attempts) {
      if (attempt.method !== 'token' || !tokensEqual(attempt.token, this.#token)) continue;
      const principal = daemonPrincipal();
      if (requestedUser !== undefined && requestedUser !== principal.name) return { ok: false, reason: `the daemon's token logs in as "${principal.name}", not "${requestedUser}"`, delayMs: 0 };
      return { ok: true, principal };
    }
    return { ok: false, reason: 'wrong token', delayMs: 0 };
  }
}

export class ConfigAuthenticator implements Authenticator {
  #daemonToken: string;
  #config: UsersConfig;
  readonly throttle: AuthThrottle;
  #adminFileRoots: string[] | undefined;
  /** One-time web login tokens (a gateway with --web); none: such tokens are never accepted. */
  oneTimeLogins: OneTimeLogins | null = null;

  constructor(daemonToken: string, config: UsersConfig, throttle: AuthThrottle = new AuthThrottle(), adminFileRoots?: string[]) {
    this.#daemonToken = daemonToken;
    this.#config = config;
    this.throttle = throttle;
    this.#adminFileRoots = adminFileRoots;
  }

  get config(): UsersConfig {
    return this.#config;
  }

  /** Swap in a reloaded config (SIGHUP); running connections keep the policy they logged in with. */
  set config(config: UsersConfig) {
    this.#config = config;
  }

  async authenticate(attempts: AuthRequest[], requestedUser: string | undefined, context: AuthContext): Promise<AuthResult> {
    const passwordAttempt = attempts.find((a) => a.method === 'password');
    const claimed = passwordAttempt ? passwordAttempt.user ?? requestedUser : undefined;
    // Per-user throttling only for names a user could have: a client picks the name (up to the
    // pre-auth frame size), and each distinct one would otherwise be a record of its own.
    const passwordUser = claimed !== undefined && USER_NAME.test(claimed) ? claimed : undefined;
    const reasons: string[] = [];
    let lockedMs = 0;
    let tried = 0;
    for (const attempt of attempts) {
      // A link exchange takes a one-time token and nothing else (see #tryLink).
      if (context.origin === 'web-link' && attempt.method !== 'token') {
        reasons.push(`${attempt.method} offered where only a one-time login link is taken`);
        continue;
      }
      // A lock stops only guessable credentials (passwords): a key or token is tried even
      // from a locked address, so others' failures never lock out its holder.
      if (attempt.method === 'password') {
        const locked = this.throttle.lockedFor(context.address, passwordUser);
        if (locked > 0) {
          lockedMs = locked;
          reasons.push(`password not tried: too many failed logins; locked out for ${Math.ceil(locked / 1000)} s`);
          continue;
        }
      }
      tried += 1;
      const result = await this.#try(attempt, requestedUser, context);
      if (typeof result !== 'string') {
        this.throttle.success(context.address, result.name, attempt.method);
        return { ok: true, principal: result };
      }
      reasons.push(result);
    }
    if (lockedMs > 0 && tried === 0) return { ok: false, reason: reasons.join('; '), delayMs: 0, lockedOut: true };
    const delayMs = this.throttle.failure(context.address, passwordUser);
    return { ok: false, reason: reasons.join('; '), delayMs, ...(lockedMs > 0 ? { lockedOut: true } : {}) };
  }

  /** A principal, or the reason this attempt failed (never containing the secret). */
  async #try(attempt: AuthRequest, requestedUser: string | undefined, context: AuthContext): Promise<Principal | string> {
    switch (attempt.method) {
      case 'token': {
        // A link exchange: a one-time token or nothing. The daemon's token and users.yaml
        // tokens are reusable secrets: they must never become a 12 h browser session.
        if (context.origin === 'web-link') {
          const login = this.oneTimeLogins?.take(attempt.token) ?? null;
          if (!login) return 'this is not a login link (links come from shellwire web-login), or it was used or expired';
          if (requestedUser !== undefined && requestedUser !== login.name) return `the one-time login belongs to "${login.name}", not "${requestedUser}"`;
          const inForce = loginInForce(login, this.#config);
          if ('reason' in inForce) return inForce.reason;
          return { ...inForce.principal, oneTimeLogin: true };
        }
        // Only on the web console's own connections: a one-time token is never good on the
        // TCP port (nor is it looked up there, so it is not used up by a try there).
        if (context.origin === 'web' && this.oneTimeLogins) {
          const login = this.oneTimeLogins.take(attempt.token);
          if (login) {
            if (requestedUser !== undefined && requestedUser !== login.name) return `the one-time login belongs to "${login.name}", not "${requestedUser}"`;
            const inForce = loginInForce(login, this.#config);
            if ('reason' in inForce) return inForce.reason;
            return { ...inForce.principal, oneTimeLogin: true };
          }
        }
        if (tokensEqual(attempt.token, this.#daemonToken)) {
          // Naming a user means logging in as that user: the daemon's token is the daemon's account.
          const principal = daemonPrincipal(this.#adminFileRoots);
          if (requestedUser !== undefined && requestedUser !== principal.name) return `the daemon's token logs in as "${principal.name}", not "${requestedUser}"`;
          return principal;
        }
        const offered = createHash('sha256').update(attempt.token, 'utf8').digest();
        for (const user of this.#config.users.values()) {
          for (const token of user.tokens) {
            if (!timingSafeEqual(offered, token.sha256)) continue;
            if (token.expires && token.expires.getTime() <= Date.now()) return `token "${token.name}" of user "${user.name}" expired at ${token.expires.toISOString()}`;
            if (requestedUser !== undefined && requestedUser !== user.name) return `token "${token.name}" belongs to "${user.name}", not "${requestedUser}"`;
            return { ...user, method: 'token', credential: `token ${token.name}` };
          }
        }
        return 'unknown or revoked token';
      }
      case 'publickey': {
        const name = attempt.user ?? requestedUser;
        if (name === undefined) return 'publickey login needs a user name';
        const user = this.#config.users.get(name);
        let key;
        try {
          key = parsePublicKey(attempt.publicKey, 'offered key');
        } catch (err) {
          return (err as Error).message;
        }
        // Checked before authorization, so the answer tells nothing about which keys are authorized.
        const algorithm = attempt.algorithm ?? key.type;
        const problem = signatureAlgorithmProblem(key.type, algorithm);
        if (problem) return `key ${key.fingerprint}: ${problem}`;
        const known = user?.keys.find((k) => k.blob.equals(key.blob));
        if (!user || !known) return `key ${key.fingerprint} is not authorized for user "${name}"`;
        if (!verifyAuth(known, name, context.exporter(), Buffer.from(attempt.signature, 'base64'), algorithm)) {
          return `bad signature for key ${key.fingerprint} (replayed or relayed login?)`;
        }
        return { ...user, method: 'publickey', credential: key.fingerprint };
      }
      case 'password': {
        if (!this.#config.passwordLogin) return 'password login is off (settings.passwordLogin)';
        const name = attempt.user ?? requestedUser;
        if (name === undefined) return 'password login needs a user name';
        const user = this.#config.users.get(name);
        // Hash even for unknown users, so timing does not tell which users exist.
        const stored = user?.passwordHash ?? 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
        const ok = await verifyPassword(attempt.password, stored);
        if (!user || !user.passwordHash || !ok) return `wrong user or password for "${name}"`;
        return { ...user, method: 'password', credential: null };
      }
      case 'none':
        return 'no credentials offered';
    }
  }
}

/**
 * Decides who a HELLO's credentials belong to. v1 knows one credential: the daemon's
 * access token, which acts as the daemon's own OS account. Keys, users and policy plug
 * in here (issue 3) without touching the handshake.
 */
import { userInfo, homedir } from 'node:os';
import type { AuthRequest } from '../protocol/messages.js';
import { tokensEqual } from './token.js';

export interface Principal {
  /** shellwire user name. */
  name: string;
  /** Home directory: default cwd for commands and sessions. */
  home: string;
}

export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: string };

export interface Authenticator {
  authenticate(auth: AuthRequest, requestedUser: string | undefined): AuthResult | Promise<AuthResult>;
}

export class TokenAuthenticator implements Authenticator {
  #token: string;
  #principal: Principal;

  constructor(token: string) {
    this.#token = token;
    this.#principal = { name: userInfo().username, home: homedir() };
  }

  authenticate(auth: AuthRequest): AuthResult {
    if (auth.method !== 'token') return { ok: false, reason: 'this daemon requires a token' };
    if (!tokensEqual(auth.token, this.#token)) return { ok: false, reason: 'wrong token' };
    return { ok: true, principal: this.#principal };
  }
}

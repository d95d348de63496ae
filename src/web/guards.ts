/**
 * What every /api request must show (docs/web.md): a live session cookie; for a
 * state-changing request (POST, PUT, PATCH, DELETE) and for a WebSocket upgrade, an Origin
 * that is this console's (`https://` + Host) or a `--web-origin`; for a state-changing
 * request, the session's CSRF token in `x-csrf-token`. A refusal is an HTTP answer (401
 * or 403) before the body is read or any route code runs, so a refused WebSocket upgrade
 * never becomes one and a refused upload is never stored.
 *
 * CSRF: a per-session random token (the synchronizer-token pattern), kept in the
 * server-side session and compared in constant time. @fastify/csrf-protection is not used:
 * it derives tokens from a secret it keeps in a cookie or @fastify/session, which we do not
 * have; a random token per server-side session is simpler and as strong.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../errors.js';
import type { WebDeps, WebSession } from './web-types.js';
import { WEB_CSRF_HEADER, WEB_SESSION_COOKIE } from './web-config.js';

/** The JSON error answer of every route: `{ error: { code, message } }`. */
export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether `request` changes state (needs Origin and CSRF). */
export function isStateChanging(request: FastifyRequest): boolean {
  return !SAFE_METHODS.has(request.method);
}

/** Whether `request` asks for a WebSocket. */
export function isUpgrade(request: FastifyRequest): boolean {
  return (request.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

/** Whether the request's Origin is this console's own or one allowed by `--web-origin`. A missing Origin fails. */
export function originAllowed(request: FastifyRequest, origins: readonly string[]): boolean {
  const origin = request.headers.origin;
  const host = request.headers.host;
  if (typeof origin !== 'string' || origin === '' || origin === 'null') return false;
  if (typeof host === 'string' && host !== '' && origin === `https://${host}`) return true;
  return origins.includes(origin);
}

/** Constant time, whatever the lengths (both sides hashed first). */
export function csrfTokenMatches(offered: unknown, expected: string): boolean {
  if (typeof offered !== 'string' || offered === '') return false;
  const a = createHash('sha256').update(offered, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The live session of the request's cookie (refreshing its idle timer), or null. */
export function sessionFromCookie(request: FastifyRequest, deps: Pick<WebDeps, 'sessions'>): WebSession | null {
  const id = request.cookies?.[WEB_SESSION_COOKIE];
  return deps.sessions.get(typeof id === 'string' ? id : undefined);
}

/** Refuse a cross-origin state-changing request or upgrade (403); true when it was refused. */
export function refuseForeignOrigin(request: FastifyRequest, reply: FastifyReply, deps: Pick<WebDeps, 'origins' | 'log'>): boolean {
  if (!isStateChanging(request) && !isUpgrade(request)) return false;
  if (originAllowed(request, deps.origins)) return false;
  deps.log.warn({ client: request.socket.remoteAddress, method: request.method, url: request.routeOptions.url, origin: request.headers.origin ?? null }, 'web request refused: foreign or missing Origin');
  sendError(reply, 403, ErrorCode.DENIED, 'This request did not come from the console\'s own page (its Origin header is missing or foreign); open the console at its own address, or start the gateway with --web-origin for this one.');
  return true;
}

/**
 * The onRequest hook of every /api route that needs a session (it runs before the body is
 * read): Origin (state-changing and upgrades), then the session (401), then CSRF
 * (state-changing); sets `request.webSession`.
 */
export function requireSession(deps: Pick<WebDeps, 'sessions' | 'origins' | 'log'>) {
  return async function requireSessionHook(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (refuseForeignOrigin(request, reply, deps)) return;
    const session = sessionFromCookie(request, deps);
    if (!session) {
      sendError(reply, 401, ErrorCode.NOT_AUTHENTICATED, 'Not logged in, or the session ended (logout, expiry, or the administrator revoked the login); log in again.');
      return;
    }
    if (isStateChanging(request) && !csrfTokenMatches(request.headers[WEB_CSRF_HEADER], session.csrfToken)) {
      deps.log.warn({ client: session.remote, user: session.user, method: request.method, url: request.routeOptions.url }, 'web request refused: missing or wrong CSRF token');
      sendError(reply, 403, ErrorCode.DENIED, `The ${WEB_CSRF_HEADER} header is missing or wrong; reload the console's page and try again.`);
      return;
    }
    request.webSession = session;
  };
}

/** The session `requireSession` found (for handlers behind it). */
export function sessionOf(request: FastifyRequest): WebSession {
  const session = request.webSession;
  if (!session) throw new Error(`${request.method} ${request.url}: route registered without requireSession`);
  return session;
}

/**
 * What every /api request must show (docs/web.md): a live session cookie; for a
 * state-changing request (POST, PUT, PATCH, DELETE) and for a WebSocket upgrade, an Origin
 * that is one of this console's (its address or a `--web-origin`, web-config.ts consoleOrigins); for a state-changing
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
import { sessionEndedMessage } from './sessions.js';
import { fdRefusal, nearFdLimit } from './admission.js';

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

/**
 * Whether the request's Origin is one of this console's (web-config.ts consoleOrigins: its
 * address, this machine's names for a wildcard listen, `--web-origin`). Never derived from
 * the Host header the client sent. A missing Origin fails.
 */
export function originAllowed(request: FastifyRequest, origins: readonly string[]): boolean {
  const origin = request.headers.origin;
  if (typeof origin !== 'string' || origin === '' || origin === 'null') return false;
  return origins.includes(origin.toLowerCase());
}

/**
 * The first onRequest hook of every request: a Host header that names none of the console's
 * origins is refused with 421 (DNS rebinding: a hostile name pointed at the console), before
 * any route, page or session code runs.
 */
export function requireKnownHost(deps: Pick<WebDeps, 'hosts' | 'origins' | 'log'>) {
  return async function requireKnownHostHook(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
    const host = request.headers.host;
    if (typeof host === 'string' && deps.hosts.has(host.toLowerCase())) return;
    deps.log.warn({ client: request.ip, host: host ?? null }, 'web request refused: unknown Host');
    // Returned: Fastify then runs no further hook (a later one could not change the answer).
    return sendError(reply, 421, ErrorCode.DENIED, `This console does not answer to the name ${JSON.stringify(host ?? '')}; open it at ${deps.origins[0] ?? 'its own address'}/ (or start the gateway with --web-origin https://NAME:PORT for the name you use).`);
  };
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

/** Why the request's cookie's session ended, if it ended lately. */
export function endedReason(request: FastifyRequest, deps: Pick<WebDeps, 'sessions'>): ReturnType<WebDeps['sessions']['endedReason']> {
  const id = request.cookies?.[WEB_SESSION_COOKIE];
  return deps.sessions.endedReason(typeof id === 'string' ? id : undefined);
}

/** Refuse a cross-origin state-changing request or upgrade (403); true when it was refused. */
export function refuseForeignOrigin(request: FastifyRequest, reply: FastifyReply, deps: Pick<WebDeps, 'origins' | 'log'>): boolean {
  if (!isStateChanging(request) && !isUpgrade(request)) return false;
  if (originAllowed(request, deps.origins)) return false;
  deps.log.warn({ client: request.ip, method: request.method, url: request.routeOptions.url, origin: request.headers.origin ?? null }, 'web request refused: foreign or missing Origin');
  sendError(reply, 403, ErrorCode.DENIED, 'This request did not come from the console\'s own page (its Origin header is missing or foreign); open the console at its own address, or start the gateway with --web-origin for this one.');
  return true;
}

/**
 * The onRequest hook of every /api route that needs a session (it runs before the body is
 * read): Origin (state-changing and upgrades), then the session (401), then CSRF
 * (state-changing); sets `request.webSession`.
 */
export function requireSession(deps: Pick<WebDeps, 'sessions' | 'origins' | 'log'>) {
  // Each refusal returns the reply: Fastify then runs no later hook of the chain.
  return async function requireSessionHook(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
    if (refuseForeignOrigin(request, reply, deps)) return reply;
    const session = sessionFromCookie(request, deps);
    if (!session) {
      return sendError(reply, 401, ErrorCode.NOT_AUTHENTICATED, sessionEndedMessage(endedReason(request, deps)));
    }
    if (isStateChanging(request) && !csrfTokenMatches(request.headers[WEB_CSRF_HEADER], session.csrfToken)) {
      deps.log.warn({ client: session.remote, user: session.user, method: request.method, url: request.routeOptions.url }, 'web request refused: missing or wrong CSRF token');
      return sendError(reply, 403, ErrorCode.DENIED, `The ${WEB_CSRF_HEADER} header is missing or wrong; reload the console's page and try again.`);
    }
    request.webSession = session;
  };
}

/**
 * The onRequest hook after `requireSession` in the /api scope: a WebSocket upgrade is
 * counted against its session's and user's limits (429 past one), and refused with 503 when
 * the process is near its descriptor limit. The count lasts until the request's socket
 * closes, or until a refusal (any later HTTP answer instead of the upgrade) is sent.
 */
export function admitUpgrade(deps: Pick<WebDeps, 'ledger' | 'opens' | 'limits' | 'log'>) {
  return async function admitUpgradeHook(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
    if (!isUpgrade(request)) return;
    const session = request.webSession;
    if (!session) return;
    if (nearFdLimit(deps.limits.fdReserve)) {
      deps.log.warn({ client: request.ip, user: session.user }, 'web upgrade refused: near the open-file limit');
      const r = fdRefusal();
      return sendError(reply, r.status, r.code, r.message);
    }
    const kind = request.routeOptions.url === '/api/terminal' ? 'terminal' : 'socket';
    const reserved = deps.ledger.reserve(session, kind);
    if (typeof reserved !== 'function') {
      deps.log.warn({ client: request.ip, user: session.user, kind }, 'web upgrade refused: too many WebSockets');
      return sendError(reply, reserved.status, reserved.code, reserved.message);
    }
    request.raw.socket.once('close', reserved);
    reply.raw.once('finish', reserved);
    request.webOpens = deps.opens;
  };
}

/** The session `requireSession` found (for handlers behind it). */
export function sessionOf(request: FastifyRequest): WebSession {
  const session = request.webSession;
  if (!session) throw new Error(`${request.method} ${request.url}: route registered without requireSession`);
  return session;
}

/**
 * Logging in and out of the web console (docs/web.md): `GET /api/session`,
 * `POST /api/login` (user + password), `POST /api/login/link` (a one-time token from
 * `shellwire web-login`), `POST /api/logout`. A login is the gateway's own: it opens the
 * session's in-process connection (in-process.ts), so the daemon's authenticator,
 * throttle and lock-out decide, keyed by the browser's address; the gateway logs and
 * audits it with the browser's `web:IP:PORT`. Each login gets a new session id (no fixation);
 * a session cookie the request already carried is ended.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ErrorCode, ShellwireError } from '../errors.js';
import type { WebDeps, WebSession } from './web-types.js';
import { sessionEndedMessage } from './sessions.js';
import { fdRefusal, nearFdLimit } from './admission.js';
import { endedReason, refuseForeignOrigin, requireSession, sendError, sessionFromCookie, sessionOf } from './guards.js';
import { browserPeer, openInProcessConnection, type BrowserCredentials } from './in-process.js';
import { WEB_JSON_BODY_LIMIT, WEB_SESSION_COOKIE } from './web-config.js';

const COOKIE_OPTIONS = { path: '/', httpOnly: true, secure: true, sameSite: 'strict' } as const;

const PasswordLogin = z.object({ user: z.string().min(1).max(256), password: z.string().min(1).max(4096) }).strict();
const LinkLogin = z.object({ token: z.string().min(1).max(256) }).strict();

/** What login answers and /api/session says. */
function sessionBody(session: WebSession) {
  return { user: session.user, csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() };
}

export function registerLoginRoutes(app: FastifyInstance, deps: WebDeps): void {
  const guard = requireSession(deps);

  app.get('/api/session', async (request, reply) => {
    const session = sessionFromCookie(request, deps);
    if (!session) {
      const ended = endedReason(request, deps);
      return sendError(reply, 401, ErrorCode.NOT_AUTHENTICATED, ended ? sessionEndedMessage(ended) : 'Not logged in; log in with your user name and password, or a link from `shellwire web-login`.');
    }
    return sessionBody(session);
  });

  app.post('/api/login', { bodyLimit: WEB_JSON_BODY_LIMIT }, async (request, reply) => {
    if (refuseForeignOrigin(request, reply, deps)) return reply;
    const body = PasswordLogin.safeParse(request.body);
    if (!body.success) return sendError(reply, 400, ErrorCode.BAD_REQUEST, 'Send JSON {"user": "...", "password": "..."} (both non-empty strings).');
    return login(request, reply, { user: body.data.user, password: body.data.password }, 'password');
  });

  app.post('/api/login/link', { bodyLimit: WEB_JSON_BODY_LIMIT }, async (request, reply) => {
    if (refuseForeignOrigin(request, reply, deps)) return reply;
    const body = LinkLogin.safeParse(request.body);
    if (!body.success) return sendError(reply, 400, ErrorCode.BAD_REQUEST, 'Send JSON {"token": "..."} with the token from the link\'s #login= part.');
    return login(request, reply, { token: body.data.token }, 'link');
  });

  app.post('/api/logout', {
    onRequest: guard,
    // A logout whose session already ended (expiry, revocation, another tab) still clears
    // the cookie: the guard's 401 carries the clearing Set-Cookie.
    onSend: async (_request, reply, payload) => {
      if (reply.statusCode === 401) reply.clearCookie(WEB_SESSION_COOKIE, COOKIE_OPTIONS);
      return payload;
    },
  }, async (request, reply) => {
    deps.sessions.end(sessionOf(request), 'logout');
    reply.clearCookie(WEB_SESSION_COOKIE, COOKIE_OPTIONS);
    return reply.code(204).send();
  });


  async function login(request: FastifyRequest, reply: FastifyReply, credentials: BrowserCredentials, method: 'password' | 'link'): Promise<FastifyReply | ReturnType<typeof sessionBody>> {
    // request.ip is the socket's address, or what a --web-trust-proxy proxy forwards (then
    // the browser's port is unknown: 0). The throttle keys on it.
    const proxied = request.ip !== request.socket.remoteAddress;
    const peer = browserPeer(request.ip, proxied ? 0 : request.socket.remotePort);
    // The last descriptors are the gateway's (its TCP port, its hosts): no new session then.
    if (nearFdLimit(deps.limits.fdReserve)) {
      deps.log.warn({ client: peer.remote, method }, 'web login refused: near the open-file limit');
      const r = fdRefusal();
      return sendError(reply, r.status, r.code, r.message);
    }
    let connection;
    try {
      connection = await openInProcessConnection(deps.gateway, peer, credentials);
    } catch (err) {
      return refused(reply, err, peer.remote, 'user' in credentials ? credentials.user : null, method);
    }
    // The cookie it came with (if any) is not reused: a new id at every login.
    const previous = sessionFromCookie(request, deps);
    if (previous) deps.sessions.end(previous, 'replaced');
    const session = deps.sessions.create(connection.server.user, connection, peer.remote, method);
    reply.setCookie(WEB_SESSION_COOKIE, session.id, COOKIE_OPTIONS);
    return sessionBody(session);
  }

  function refused(reply: FastifyReply, err: unknown, remote: string, user: string | null, method: string): FastifyReply {
    const code = err instanceof ShellwireError ? err.code : ErrorCode.INTERNAL;
    // The gateway logged and audited the refusal with its reason; this line ties it to the web.
    deps.log.warn({ client: remote, user, method, code }, 'web login refused');
    switch (code) {
      case ErrorCode.AUTH_FAILED:
      case ErrorCode.NO_CREDENTIALS:
        return sendError(reply, 401, ErrorCode.AUTH_FAILED, method === 'link'
          ? 'This is not a login link, or it was used or has expired (links come from `shellwire web-login --via GW` and work once, for a minute); ask for a new one.'
          : 'Wrong user name or password (or password login is off at this gateway); try again.');
      case ErrorCode.LOCKED_OUT:
        return sendError(reply, 429, ErrorCode.LOCKED_OUT, 'Too many failed logins from this address or for this user: locked out for a while. Wait, or ask the administrator to lift it (`shellwire locks`).');
      case ErrorCode.TOO_MANY_CONNECTIONS:
      case ErrorCode.SERVER_SHUTTING_DOWN:
        return sendError(reply, 503, code, 'The gateway cannot take another login now (full or stopping); try again later.');
      default:
        deps.log.error({ client: remote, user, code, err: (err as Error).message }, 'web login failed');
        return sendError(reply, 500, ErrorCode.INTERNAL, 'The login failed inside the gateway; the gateway\'s log says why.');
    }
  }
}

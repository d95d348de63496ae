/**
 * What the web console's API routes share (api-routes.ts): the browser's gateway connection
 * (`request.webSession.gateway`, set by the session guard, web-core's guards.ts), and errors
 * as the spec's JSON `{ error: { code, message } }` with an HTTP status by code. Details of an
 * unexpected error go to the log only; the browser gets a generic 500.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { WebSession } from './web-types.js';
import { sessionEndedMessage } from './sessions.js';
import { decodeOsBytes } from '../protocol/os-bytes.js';
import { ErrorCode, ShellwireError } from '../errors.js';

/** The name the routes give the gateway in target expressions' inventory (`via`): the browser's own connection. */
export const WEB_VIA = 'gateway';

/**
 * The session the guard attached (`requireSession`, a preHandler: route code runs in the
 * route's own preHandler or handler, after it). A request without one never reaches a route
 * (the guard answers 401 first); this throws if that ever fails, rather than act without a user.
 */
export function sessionOf(request: FastifyRequest): WebSession {
  const session = request.webSession;
  if (!session || session.ended) throw new ShellwireError(ErrorCode.NOT_AUTHENTICATED, 'Not logged in, or the session ended; log in again.');
  return session;
}

/** The session's WebSocket: closed (4401) when the session ends; each message counts as activity. */
export function trackSocket(session: WebSession, socket: WebSocket): void {
  const untrack = session.track(socket);
  socket.on('close', untrack);
  socket.on('message', () => session.touch());
}

/** The HTTP status for a shellwire error code (WEB-SPEC.md "HTTP contract"). */
export function statusOf(code: string): number {
  switch (code) {
    case ErrorCode.BAD_REQUEST:
    case ErrorCode.BAD_TARGET:
    case ErrorCode.NO_HOSTS_MATCHED:
      return 400;
    case ErrorCode.AUTH_FAILED:
    case ErrorCode.NOT_AUTHENTICATED:
    case ErrorCode.CONNECTION_CLOSED:
      return 401;
    case ErrorCode.DENIED:
      return 403;
    case ErrorCode.NO_RECORDING:
      return 404;
    case ErrorCode.LOCKED_OUT:
      return 429;
    case ErrorCode.CONNECT_FAILED:
      return 502;
    default:
      return 500;
  }
}

/** `{ code, message }` for the browser: a shellwire error's own, anything else generic (and logged). */
export function errorBody(err: unknown, request: FastifyRequest): { code: string; message: string } {
  if (err instanceof ShellwireError && statusOf(err.code) !== 500) {
    // The session's gateway connection closing means the session is over.
    if (err.code === ErrorCode.CONNECTION_CLOSED) return { code: ErrorCode.NOT_AUTHENTICATED, message: sessionEndedMessage(request.webSession?.endedBecause ?? { reason: 'connection-lost' }) };
    return { code: err.code, message: err.message };
  }
  if (err instanceof ShellwireError) {
    request.log.warn({ code: err.code, err: err.message }, 'web: request failed');
    return { code: err.code, message: err.message };
  }
  request.log.error({ err }, 'web: internal error');
  return { code: ErrorCode.INTERNAL, message: 'Internal error in the web console; the gateway log says more.' };
}

/** Answer `err` as the spec's JSON error (its status by code, unless `status` is given). */
export function sendError(reply: FastifyReply, request: FastifyRequest, err: unknown, status?: number): FastifyReply {
  const body = errorBody(err, request);
  return reply.code(status ?? statusOf(body.code)).type('application/json').send({ error: body });
}

/** A 400 for a bad parameter. */
export function badRequest(message: string): ShellwireError {
  return new ShellwireError(ErrorCode.BAD_REQUEST, message);
}

/** A query parameter as one string (the last of repeated ones), or undefined. */
export function queryText(request: FastifyRequest, name: string): string | undefined {
  const v = (request.query as Record<string, unknown> | undefined)?.[name];
  const one = Array.isArray(v) ? v[v.length - 1] : v;
  return typeof one === 'string' ? one : undefined;
}

/**
 * A yes/no query parameter: `1`/`true` yes, `0`/`false`/empty/absent no; anything else is a
 * 400 (a typo such as `failed=yes` must not quietly mean "no").
 */
export function queryFlag(request: FastifyRequest, name: string): boolean {
  const v = queryText(request, name);
  if (v === undefined || v === '' || v === '0' || v === 'false') return false;
  if (v === '1' || v === 'true') return true;
  throw badRequest(`${name} must be 1 or 0 (true or false), got ${JSON.stringify(v)}.`);
}

/**
 * A query parameter as the exact bytes its percent-escapes name (a remote path need not be
 * UTF-8: `%FF` is the byte 0xff), as an OS byte string (protocol/os-bytes.ts); the last of
 * repeated ones, or undefined. `+` is a space, as in forms.
 */
export function queryOsText(request: FastifyRequest, name: string): string | undefined {
  const url = request.raw.url ?? '';
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  let found: Buffer | undefined;
  for (const pair of url.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    const key = percentBytes(eq < 0 ? pair : pair.slice(0, eq));
    if (key.toString('latin1') !== name) continue;
    found = percentBytes(eq < 0 ? '' : pair.slice(eq + 1));
  }
  return found === undefined ? undefined : decodeOsBytes(found);
}

function percentBytes(text: string): Buffer {
  const out: number[] = [];
  const raw = Buffer.from(text.replace(/\+/g, ' '), 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    const hex = c === 0x25 && i + 2 < raw.length ? raw.subarray(i + 1, i + 3).toString('latin1') : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(c);
  }
  return Buffer.from(out);
}

/**
 * Talking to the console's server (WEB-SPEC.md "HTTP contract"): JSON fetches that send the
 * session's CSRF token on every state-changing request, WebSocket URLs, and one place that
 * notices a lost session (HTTP 401, WebSocket close 4401) and sends the user back to login.
 */
export interface SessionInfo {
  user: string;
  csrfToken: string;
  expiresAt: string;
}

/** An error answer of the API: `{ error: { code, message } }` with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let session: SessionInfo | null = null;
let onSessionLost: () => void = () => {};

export function currentSession(): SessionInfo | null {
  return session;
}
export function setSession(s: SessionInfo | null): void {
  session = s;
}
/** Called once at start: what to do when the server says the session is gone. */
export function whenSessionLost(handler: () => void): void {
  onSessionLost = handler;
}
export function sessionLost(): void {
  session = null;
  onSessionLost();
}

/** Headers for a request: the CSRF token on anything that changes state. */
export function requestHeaders(method: string, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { ...extra };
  if (method !== 'GET' && method !== 'HEAD' && session) headers['x-csrf-token'] = session.csrfToken;
  return headers;
}

/** Turn a non-2xx response into an ApiError (and a 401 into "back to login" unless `quiet401`). */
export async function errorFrom(res: Response, quiet401 = false): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401 && !quiet401) sessionLost();
  return new ApiError(res.status, code, message);
}

export interface FetchOptions {
  body?: unknown;
  /** A 401 is an answer (a failed login), not a lost session. */
  quiet401?: boolean;
}

/** A JSON request under /api. Resolves with the parsed body (undefined for 204). */
export async function api<T>(method: string, path: string, options: FetchOptions = {}): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: requestHeaders(method) };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `The console's server did not answer (${(err as Error).message}); check that the gateway is running.`);
  }
  if (!res.ok) throw await errorFrom(res, options.quiet401);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** `wss://this-host/api/...`: a WebSocket URL on this console's origin. */
export function wsUrl(path: string, query: Record<string, string | number> = {}): string {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, String(v));
  return url.toString();
}

/** WebSocket close code the server uses when the session ended (expiry, logout, revocation). */
export const WS_SESSION_ENDED = 4401;

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    q.set(k, v === true ? '1' : String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

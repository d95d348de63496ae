/**
 * Speaking to a gateway's web console by hand (issue 14): HTTPS requests with a cookie jar
 * (node:https, the gateway's own certificate as the only CA), JSON, and WebSockets (`ws`)
 * with a chosen Origin and cookie, reporting a refused upgrade's HTTP status.
 */
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';

export interface WebClient {
  /** `https://127.0.0.1:PORT` */
  origin: string;
  /** The certificate to trust (the gateway's, or --web-cert's). */
  ca: string;
  /** Cookie jar: name → value. */
  cookies: Map<string, string>;
  /** The CSRF token of the last login or /api/session answer. */
  csrf: string | null;
}

export interface WebAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Set-Cookie lines as sent. */
  setCookie: string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers of many shapes, checked by each test
  json(): any;
}

export interface WebRequestOptions {
  json?: unknown;
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** The Origin header: default the console's own; null for none. */
  origin?: string | null;
  /** The x-csrf-token header: default the client's token (if any); null for none. */
  csrf?: string | null;
  /** Send the jar's cookies (default true). */
  cookies?: boolean;
  /** The local address to connect from (e.g. 127.0.0.2: another browser, or a proxy). */
  localAddress?: string;
}

/** A client of the console at `https://127.0.0.1:port` trusting `ca`. */
export function webClient(port: number, ca: string, host = '127.0.0.1'): WebClient {
  return { origin: `https://${host}:${port}`, ca, cookies: new Map(), csrf: null };
}

function cookieHeader(client: WebClient): string {
  return [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
}

/** The certificate names the gateway's host name, not 127.0.0.1: trust it by its CA pin alone. */
const tlsOptions = (client: WebClient) => ({ ca: client.ca, checkServerIdentity: () => undefined });

export function webRequest(client: WebClient, method: string, path: string, options: WebRequestOptions = {}): Promise<WebAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  const origin = options.origin === undefined ? client.origin : options.origin;
  if (origin !== null) headers.origin = origin;
  const csrf = options.csrf === undefined ? client.csrf : options.csrf;
  if (csrf !== null) headers['x-csrf-token'] = csrf;
  if (options.cookies !== false && client.cookies.size > 0) headers.cookie = cookieHeader(client);
  let body: Buffer | undefined;
  if (options.json !== undefined) {
    body = Buffer.from(JSON.stringify(options.json));
    headers['content-type'] ??= 'application/json';
  } else if (options.body !== undefined) body = Buffer.from(options.body);
  if (body) headers['content-length'] = String(body.length);
  const url = new URL(path, client.origin);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ...tlsOptions(client), ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const setCookie = res.headers['set-cookie'] ?? [];
        for (const line of setCookie) {
          const [pair] = line.split(';');
          const eq = pair!.indexOf('=');
          const name = pair!.slice(0, eq).trim();
          const value = pair!.slice(eq + 1).trim();
          if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line) || /max-age=0/i.test(line)) client.cookies.delete(name);
          else client.cookies.set(name, value);
        }
        const answer: WebAnswer = { status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), setCookie, json: () => JSON.parse(Buffer.concat(chunks).toString('utf8')) };
        resolve(answer);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** POST /api/login; on success the jar holds the cookie and `client.csrf` the token. */
export async function webLogin(client: WebClient, user: string, password: string): Promise<WebAnswer> {
  const answer = await webRequest(client, 'POST', '/api/login', { json: { user, password } });
  if (answer.status === 200) client.csrf = answer.json().csrfToken as string;
  return answer;
}

export type WsOutcome = { ws: WebSocket } | { refused: number; body: string };

/**
 * Open a WebSocket to `path`: `{ ws }` once it is open (101), or `{ refused: STATUS }` when
 * the console answered the upgrade with plain HTTP.
 */
export function wsConnect(client: WebClient, path: string, options: { origin?: string | null; cookies?: boolean } = {}): Promise<WsOutcome> {
  const headers: Record<string, string> = {};
  if (options.cookies !== false && client.cookies.size > 0) headers.cookie = cookieHeader(client);
  const origin = options.origin === undefined ? client.origin : options.origin;
  const url = new URL(path, client.origin.replace(/^https:/, 'wss:'));
  const ws = new WebSocket(url, { headers, ...(origin !== null ? { origin } : {}), ...tlsOptions(client) });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ refused: res.statusCode!, body: Buffer.concat(chunks).toString() }));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** The close code and reason of `ws` (resolves when it closes). */
export function wsClosed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

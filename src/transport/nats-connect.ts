/**
 * Connecting to a NATS cluster (docs/nats.md): the `--nats nats://A,nats://B` server list,
 * the `--nats-creds` file, and reconnecting forever with exponential backoff and jitter across
 * every server. nats.js is imported here, lazily, and only here (and in modules that get a
 * connection from here), so commands that never touch NATS never load it.
 */
import { readFileSync } from 'node:fs';
import type { NatsConnection, ConnectionOptions } from '@nats-io/transport-node';
import { ConnectionError, ErrorCode, UsageError } from '../errors.js';

/** First reconnect delay; it doubles per failed attempt up to RECONNECT_MAX_MS, then ±50 % jitter. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_MAX_MS = 10_000;
/** How long the first connection may take before SW_ERR_NATS_UNAVAILABLE (a client; an agent keeps trying). */
export const NATS_CONNECT_TIMEOUT_MS = 5_000;
/** The largest creds file read. */
const MAX_CREDS_BYTES = 64 * 1024;

export interface NatsConnectOptions {
  /** `nats://A:4222,nats://B:4222` or a list; `nats://` may be left out (`A:4222`). */
  servers: string | readonly string[];
  /** A NATS credentials file (`nsc`'s `.creds`: user JWT + nkey seed) or a file holding an nkey seed (`SU…`). */
  credsFile?: string;
  /** Client name the NATS server shows (`connz`). */
  name?: string;
  /**
   * Agents: true to keep trying the first connection too (an agent started before its broker
   * still comes up). Clients: false (default), so a wrong URL fails in NATS_CONNECT_TIMEOUT_MS.
   */
  waitForever?: boolean;
  timeoutMs?: number;
  /**
   * With waitForever: told of each failed first-connection round (why, and when the next
   * comes), so an agent whose broker is down or unreachable says so instead of saying nothing.
   */
  onRetry?: (error: ConnectionError, nextAttemptMs: number) => void;
}

/**
 * `nats://A,nats://B` → `['nats://A:4222', 'nats://B:4222']`.
 * @throws {UsageError} SW_ERR_BAD_TARGET: empty, or a URL that is not nats:// / tls://.
 */
export function parseNatsServers(servers: string | readonly string[]): string[] {
  const items = (typeof servers === 'string' ? servers.split(',') : [...servers]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new UsageError(ErrorCode.BAD_TARGET, 'No NATS server given: name one or more as nats://HOST[:PORT],nats://HOST2[:PORT].');
  return items.map((item) => {
    const withScheme = /^[a-z]+:\/\//i.test(item) ? item : `nats://${item}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new UsageError(ErrorCode.BAD_TARGET, `Not a NATS server URL: ${JSON.stringify(item)} (expected nats://HOST[:PORT]).`);
    }
    if (!['nats:', 'tls:'].includes(url.protocol) || url.hostname === '' || (url.pathname !== '' && url.pathname !== '/')) {
      throw new UsageError(ErrorCode.BAD_TARGET, `Not a NATS server URL: ${JSON.stringify(item)} (expected nats://HOST[:PORT] or tls://HOST[:PORT]).`);
    }
    return `${url.protocol}//${url.username ? `${url.username}${url.password ? `:${url.password}` : ''}@` : ''}${url.host}${url.port ? '' : ':4222'}`;
  });
}

/** Whether a `--via` value names NATS rather than a gateway. */
export function isNatsUrl(value: string): boolean {
  return /^(nats|tls):\/\//i.test(value.trim());
}

/** Exponential backoff with jitter: attempt 0 → ~250 ms, then doubling to ~10 s. */
export function reconnectDelay(attempt: number, random = Math.random): number {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.5 + random()));
}

/** The nats.js authenticator for a creds or nkey seed file. */
async function authenticatorFor(credsFile: string): Promise<ConnectionOptions['authenticator']> {
  let text: Buffer;
  try {
    text = readFileSync(credsFile);
  } catch (err) {
    throw new UsageError(ErrorCode.BAD_CONFIG, `Cannot read the NATS credentials file ${credsFile}: ${(err as Error).message}.`, { cause: err });
  }
  if (text.length > MAX_CREDS_BYTES) throw new UsageError(ErrorCode.BAD_CONFIG, `The NATS credentials file ${credsFile} is larger than ${MAX_CREDS_BYTES} bytes: not a creds file.`);
  const nats = await import('@nats-io/transport-node');
  const body = text.toString('utf8');
  if (body.includes('BEGIN NATS USER JWT')) return nats.credsAuthenticator(new Uint8Array(text));
  const seed = body.match(/\bSU[A-Z2-7]{50,}\b/)?.[0];
  if (seed) return nats.nkeyAuthenticator(new TextEncoder().encode(seed));
  throw new UsageError(ErrorCode.BAD_CONFIG, `${credsFile} is neither a NATS .creds file (user JWT + seed, from nsc) nor an nkey seed (SU…).`);
}

/**
 * Connect to the cluster; reconnects forever across its servers (backoff + jitter) afterwards.
 * @throws {ConnectionError} SW_ERR_NATS_UNAVAILABLE: no server answered in time, or the server refused us.
 */
export async function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  const servers = parseNatsServers(options.servers);
  const authenticator = options.credsFile !== undefined ? await authenticatorFor(options.credsFile) : undefined;
  const nats = await import('@nats-io/transport-node');
  let attempt = 0;
  const once = () => nats.connect({
    servers,
    ...(options.name !== undefined ? { name: options.name } : {}),
    ...(authenticator ? { authenticator } : {}),
    reconnect: true,
    maxReconnectAttempts: -1,
    // The first connection's retries are ours (below): nats.js's own would be silent.
    waitOnFirstConnect: false,
    timeout: options.timeoutMs ?? NATS_CONNECT_TIMEOUT_MS,
    reconnectDelayHandler: () => reconnectDelay(attempt++),
  });
  let firstAttempt = 0;
  for (;;) {
    try {
      const nc = await once();
      void (async () => {
        for await (const status of nc.status()) if (status.type === 'reconnect') attempt = 0;
      })().catch(() => {});
      return nc;
    } catch (err) {
      const error = natsUnavailable(servers, err);
      // Refused credentials do not get better by waiting: said at once, as before.
      if (options.waitForever !== true || isAuthFailure(err)) throw error;
      const delay = reconnectDelay(firstAttempt++);
      options.onRetry?.(error, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** nats-server refused who we are (bad or unknown credentials): retrying will not help. */
function isAuthFailure(err: unknown): boolean {
  return /authorization violation|authentication|user authentication expired|account.*(expired|revoked)/i.test(String((err as Error)?.message ?? err));
}

/** A NATS permissions error (the server refused a publish or subscribe to this user), with what was refused. */
export function permissionViolation(err: unknown): string | null {
  const text = String((err as Error)?.message ?? err);
  return /permissions? violation/i.test(text) ? text : null;
}

/** SW_ERR_NATS_UNAVAILABLE for `servers`, naming why. */
export function natsUnavailable(servers: readonly string[], cause: unknown): ConnectionError {
  const why = (cause as Error)?.message ?? String(cause);
  const shown = servers.map((s) => s.replace(/\/\/[^@/]*@/, '//')).join(',');
  return new ConnectionError(ErrorCode.NATS_UNAVAILABLE, `Cannot connect to NATS at ${shown}: ${why}.`, {
    cause,
    hint: 'Check that nats-server runs there and that --nats-creds (if any) is accepted.',
  });
}

/**
 * The events of a connection's life, as `AuditSink.record` takes them (audit-sink.ts).
 * Who and where are left to `ConnectionAudit` unless the event is about someone else (a
 * failed login names the user it claimed) or a row never carried them (a disconnect's
 * `osUser`). Commands are in command-record.ts.
 */
import type { AuditEvent } from './audit-event.js';

/** A client connected (TLS is up). */
export function connectEvent(): AuditEvent {
  return { kind: 'connect' };
}

/**
 * A connection that ended before HELLO: its TLS handshake failed, timed out or was reset, or
 * it was dropped before TLS (too many unauthenticated connections) or refused after it
 * (connection limit). `source` is the address (the unit a sink bounds floods by), `remote`
 * `ADDRESS:PORT` as accepted; `stage` says where it ended.
 */
export function connectFailedEvent(source: string, remote: string, stage: string, reason: string): AuditEvent {
  return { kind: 'connect', address: remote, source, detail: { ok: false, stage, reason } };
}

/** The logged-in principal, as much of it as the auth-ok row keeps. */
export interface AuditLogin {
  readonly name: string;
  readonly account: { readonly name: string };
  readonly method: string;
  /** The key's `SHA256:…` fingerprint, the token's or password's label; never the secret. */
  readonly credential: string | null;
}

export function authOkEvent(user: AuditLogin): AuditEvent {
  return {
    kind: 'auth-ok',
    user: user.name,
    osUser: user.account.name,
    keyFingerprint: user.method === 'publickey' ? user.credential : null,
    detail: { method: user.method, credential: user.credential },
  };
}

/** A refused login; `user` is the name the client claimed (null if none). */
export function authFailEvent(user: string | null, reason: string): AuditEvent {
  return { kind: 'auth-fail', user, detail: { reason } };
}

/** A refused channel: its command text (null for none) and kind, and why. */
export function deniedEvent(command: string | null, channelKind: string, reason: string): AuditEvent {
  return { kind: 'denied', command, detail: { channelKind, reason } };
}

/**
 * A channel that could not be opened, not by policy: the host was unreachable or full, the
 * command could not start. `code` and `message` are the OPEN_FAIL's.
 */
export function failedEvent(command: string | null, channelKind: string, code: string, message: string): AuditEvent {
  return { kind: 'failed', command, detail: { channelKind, reason: message, outcome: { code, message } } };
}

/** A file operation (put, get, list, …) or a refused path. */
export function fileEvent(detail: Record<string, unknown>): AuditEvent {
  return { kind: 'file', detail };
}

/** The connection ended. The row names the user (if one logged in) and never the OS account. */
export function disconnectEvent(): AuditEvent {
  return { kind: 'disconnect', osUser: null };
}

/**
 * Onward identity on a daemon (docs/protocol.md "Gateway"): a gateway logs in with its own
 * key and opens each channel `onBehalfOf: { user, operator }`. The connection's principal
 * must list `user` in its `actAs` (users.yaml); the channel then runs with that user's whole
 * policy — account, channels, command rules, file roots, home — as if they had logged in,
 * and every audit row of the channel names them, with the gateway (`via`) and the operator
 * in its detail. One gateway connection carries many operators' channels, so anything one
 * channel can reach of another (a session's state) is checked against who opened it.
 */
import type { Logger } from 'pino';
import type { OnBehalfOf } from '../protocol/messages.js';
import type { FrameConnection } from '../transport/frame-connection.js';
import type { AuditEvent } from '../audit/audit-event.js';
import type { AuditRecorder } from '../audit/audit-sink.js';
import type { Containers } from '../process/containment.js';
import type { Spawner } from '../process/spawner.js';
import type { UsersConfig } from '../auth/users-config.js';
import type { AuthenticatedUser, ChannelHost } from './channel-host.js';
import type { ServerLimits } from './limits.js';
import type { SessionState } from './session-state.js';
import { userBaseEnv } from './command-env.js';

/**
 * Who a channel belongs to on its connection: null for the logged-in principal itself, else
 * the acted-as user and the operator together (two operators acting as the same user are
 * still two owners).
 */
export type ChannelOwner = string | null;

export function channelOwner(onBehalfOf: OnBehalfOf | undefined): ChannelOwner {
  return onBehalfOf === undefined ? null : JSON.stringify([onBehalfOf.user, onBehalfOf.operator]);
}

/**
 * The principal a channel opened `onBehalfOf` runs as: `user`'s policy, authenticated by
 * `principal`'s login. With `current` (the users.yaml in force), the grant and the policy are
 * that file's, not the login's: a gateway's pooled connection lives for days, and a reload
 * (SIGHUP) that revokes an `actAs` or tightens a rule must hold for its next channel. The
 * daemon's token acts as nobody, whatever a user of the same name may do. A refusal names
 * the rule (users.yaml field).
 */
export function actAs(principal: AuthenticatedUser, onBehalfOf: OnBehalfOf, current: UsersConfig | null): { principal: AuthenticatedUser } | { reason: string } {
  const grants = principal.daemonToken ? undefined : current ? current.users.get(principal.name)?.actAs : principal.actAs;
  const target = grants?.get(onBehalfOf.user);
  // The message reaches the operator through the gateway: it names the rule, never the list.
  if (!target) return { reason: `${principal.name} may not act as ${onBehalfOf.user} (users.yaml: users.${principal.name}.actAs)` };
  // The acted-as user never acts on: its own actAs is refused when the file is loaded.
  return { principal: { ...target, method: principal.method, credential: principal.credential } };
}

/** `detail.via` and `detail.operator` on every row of a channel opened on an operator's behalf. */
export class OnBehalfAudit implements AuditRecorder {
  readonly #inner: AuditRecorder;
  readonly #user: AuthenticatedUser;
  readonly #via: string;
  readonly #operator: string;

  constructor(inner: AuditRecorder, user: AuthenticatedUser, via: string, operator: string) {
    this.#inner = inner;
    this.#user = user;
    this.#via = via;
    this.#operator = operator;
  }

  record(event: AuditEvent): void {
    this.#inner.record({
      ...event,
      user: event.user === undefined ? this.#user.name : event.user,
      osUser: event.osUser === undefined ? this.#user.account.name : event.osUser,
      detail: { ...event.detail, via: this.#via, operator: this.#operator },
    });
  }
}

/** What the per-channel host takes from the connection it shares. */
export interface SharedConnection {
  readonly conn: FrameConnection;
  readonly log: Logger;
  readonly remote: string;
  readonly limits: ServerLimits;
  readonly containers?: Containers | undefined;
  readonly spawner?: Spawner | undefined;
  readonly audit: AuditRecorder;
  /** The session channel `id` if `owner` opened it. */
  sessionOf(id: number, owner: ChannelOwner): SessionState | undefined;
}

/**
 * The ChannelHost of one channel opened on an operator's behalf: the connection's transport,
 * limits and containment, the acted-as user's identity, environment and audit trail.
 */
export class OnBehalfHost implements ChannelHost {
  readonly user: AuthenticatedUser;
  readonly audit: AuditRecorder;
  readonly baseEnv: Record<string, string>;
  readonly owner: ChannelOwner;
  readonly onBehalf: { via: string; operator: string };
  readonly #shared: SharedConnection;

  constructor(shared: SharedConnection, user: AuthenticatedUser, daemonEnv: Record<string, string>, via: string, onBehalfOf: OnBehalfOf) {
    this.#shared = shared;
    this.user = user;
    this.owner = channelOwner(onBehalfOf);
    this.onBehalf = { via, operator: onBehalfOf.operator };
    this.audit = new OnBehalfAudit(shared.audit, user, via, onBehalfOf.operator);
    this.baseEnv = userBaseEnv(daemonEnv, user);
  }

  get conn(): FrameConnection {
    return this.#shared.conn;
  }

  get log(): Logger {
    return this.#shared.log;
  }

  get remote(): string {
    return this.#shared.remote;
  }

  get limits(): ServerLimits {
    return this.#shared.limits;
  }

  get containers(): Containers | undefined {
    return this.#shared.containers;
  }

  get spawner(): Spawner | undefined {
    return this.#shared.spawner;
  }

  session(id: number): SessionState | undefined {
    return this.#shared.sessionOf(id, this.owner);
  }
}

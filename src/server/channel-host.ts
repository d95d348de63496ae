/** What a channel kind needs from the connection that owns it, and what it gives the connection. */
import type { Logger } from 'pino';
import type { FrameConnection } from '../transport/frame-connection.js';
import { isOpenOf, type KnownKind, type OpenOf, type OpenRequest } from '../protocol/messages.js';
import type { Channel, ChannelHooks } from '../channel/channel-state.js';
import type { ServerLimits } from './limits.js';
import type { SessionState } from './session-state.js';

import type { Principal } from '../auth/authenticator.js';
import type { AuditRecorder } from '../audit/audit-sink.js';
import type { Containers } from '../process/containment.js';
import type { Spawner } from '../process/spawner.js';

/** Who is logged in on the connection, with their policy and OS account. */
export type AuthenticatedUser = Principal;

export interface ChannelHost {
  /** For congestion (`congested`, `whenDrained`) and the per-connection read-ahead budget. */
  readonly conn: FrameConnection;
  readonly log: Logger;
  /** `address:port` of the client, for logs. */
  readonly remote: string;
  readonly limits: ServerLimits;
  readonly user: AuthenticatedUser;
  readonly baseEnv: Record<string, string>;
  /** Where commands are contained (cgroups + supervisor); without it, process groups only. */
  readonly containers?: Containers | undefined;
  /** Forks commands on pipes (process/spawner.ts); without it the daemon forks them itself. */
  readonly spawner?: Spawner | undefined;
  /** The session channel with this id, if the client opened one. */
  session(id: number): SessionState | undefined;
  /**
   * The audit trail (audit/audit-sink.ts): commands, file operations and refused paths are
   * recorded here; who and where are filled in by the connection. A no-op without a sink.
   */
  readonly audit: AuditRecorder;
  /**
   * Set when a gateway opened the channel on an operator's behalf (server/on-behalf.ts): who
   * relayed it and for whom, for what outlives `audit` (a lost command's end row).
   */
  readonly onBehalf?: { via: string; operator: string } | undefined;
}

/** An OPEN_FAIL's code and message. */
export interface Refusal {
  code: string;
  message: string;
  extra?: Record<string, unknown>;
}

/**
 * One channel kind's side of a channel: the lifecycle, both windows and the close
 * handshake belong to the Channel (channel/channel-state.ts); the kind says what its
 * frames do (`hooks`: an absent hook means the kind does not take that frame) and what
 * runs behind it.
 */
export interface ServerChannel {
  readonly hooks: ChannelHooks;
  /**
   * Begin on `channel`: answer with `channel.openOk` (now or later) or `channel.openFail`
   * (later), or return a refusal for OPEN_FAIL now. Throwing ends the channel with
   * `protocol-error` (its hooks stop what was started) and fails the connection.
   */
  start(channel: Channel): Refusal | null;
  /** True while a command (or file operation) of this channel is running. */
  readonly busy: boolean;
  /** Kill what still runs, at once (daemon shutdown after its grace period). */
  kill(): void;
  /** A session channel's state, which exec channels opened with `session: <id>` use. */
  readonly session?: SessionState;
}

/** Builds a kind's handler for an OPEN; throws ProtocolError BAD_MESSAGE / UNKNOWN_CHANNEL for a malformed one. */
export type ChannelFactory = (id: number, host: ChannelHost, request: OpenRequest) => ServerChannel;

/**
 * The factory of one of v1's kinds, given the OPEN with that kind's typed parameters. The
 * registry calls a factory only for its own kind name, so a mismatch is a wiring mistake.
 */
export function factoryOf<K extends KnownKind>(kind: K, make: (id: number, host: ChannelHost, request: OpenOf<K>) => ServerChannel): ChannelFactory {
  return (id, host, request) => {
    if (!isOpenOf(request, kind)) throw new TypeError(`The ${kind} channel factory was registered for "${request.kind}" channels.`);
    return make(id, host, request);
  };
}

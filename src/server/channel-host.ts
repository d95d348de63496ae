/** What a channel handler needs from the connection that owns it. */
import type { Logger } from 'pino';
import type { FrameConnection } from '../transport/frame-connection.js';
import type { Frame } from '../protocol/frame.js';
import type { ServerLimits } from './limits.js';
import type { SessionState } from './session-state.js';

import type { Principal } from '../auth/authenticator.js';
import type { CommandEnd, CommandRecord } from '../audit/audit-sink.js';
import type { Containers } from '../process/containment.js';

/** Who is logged in on the connection, with their policy and OS account. */
export type AuthenticatedUser = Principal;

export interface ChannelHost {
  readonly conn: FrameConnection;
  readonly log: Logger;
  /** `address:port` of the client, for logs. */
  readonly remote: string;
  readonly limits: ServerLimits;
  readonly user: AuthenticatedUser;
  readonly baseEnv: Record<string, string>;
  /** Where commands are contained (cgroups + supervisor); without it, process groups only. */
  readonly containers?: Containers | undefined;
  /** The session channel with this id, if the client opened one. */
  session(id: number): SessionState | undefined;
  /** Audit trail of commands (no-ops without an audit sink). */
  auditCommandStarted(command: CommandRecord): void;
  auditCommandEnded(command: CommandEnd): void;
  /** Audit trail of file operations and refused paths. */
  auditFile(detail: Record<string, unknown>): void;
  /** Forget the channel: both sides have sent CLOSE. */
  release(channel: number): void;
}

export interface ServerChannel {
  onFrame(frame: Frame): void;
  /** The client sent CLOSE. */
  onClientClose(): void;
  /** The connection is gone (or the daemon is stopping): stop everything now. */
  onConnectionLost(): void;
  /** True while a command of this channel is running. */
  readonly busy: boolean;
  /** Kill what still runs, at once (daemon shutdown after its grace period). */
  kill(): void;
}

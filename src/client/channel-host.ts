/**
 * What the client's channel classes need from the connection they run on, as interfaces
 * (the mirror of server/channel-host.ts). `Connection` implements them; `RemoteProcess`,
 * `ShellSession`, `FileChannelClient` and the file transfers import these, never the
 * `Connection` facade, so the client's import graph has no cycle.
 */
import type { Frame } from '../protocol/frame.js';
import type { FrameConnection } from '../transport/frame-connection.js';
import type { ShellwireError } from '../errors.js';

/** One open channel as the connection sees it: the frames for its id, and the connection's end. */
export interface ClientChannel {
  onFrame(frame: Frame): void;
  onConnectionLost(error: ShellwireError): void;
}

/** The connection under a channel: where its frames go, and who frees its id. */
export interface ClientChannelHost {
  readonly conn: FrameConnection;
  /** `host:port` of the daemon, for messages. */
  readonly hostLabel: string;
  /** The channel's id is free again (the daemon confirmed CLOSE or refused the OPEN). */
  release(channel: number): void;
}

/** A connection that registers new channels on fresh ids (file transfers open theirs this way). */
export interface ChannelOpener extends ClientChannelHost {
  /** From WELCOME: the largest frame payload the daemon accepts. */
  readonly server: { readonly maxPayload: number };
  /** Register the channel that `make` builds on a fresh id; throws when the connection is closed or full. */
  openChannel<T extends ClientChannel>(make: (id: number) => T): T;
}

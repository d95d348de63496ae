/**
 * What the client's channel classes need from the connection they run on, as interfaces
 * (the mirror of server/channel-host.ts). `Connection` builds one private host and hands it
 * to `RemoteProcess`, `ShellSession`, `FileChannelClient` and the file operations
 * (client/files/): they import these, never the `Connection` facade, so the client's import
 * graph has no cycle and the transport stays private to the connection.
 */
import type { Channel, ChannelHooks, OpenMessage } from '../channel/channel-state.js';
import type { SenderTransport } from '../channel/file-stream.js';

/** The connection under a channel: its channel table, and the transport's backpressure. */
export interface ClientChannelHost {
  /**
   * The transport's backpressure: stdin writers wait for `whenDrained`, file senders pause
   * while it is `congested` and share its read-ahead budget.
   */
  readonly transport: SenderTransport;
  /** `host:port` of the daemon, for messages. */
  readonly hostLabel: string;
  /**
   * Open a channel on a fresh id (its OPEN goes out now); the id is free again once the
   * channel ended. Throws when the connection is closed or has the daemon's maxChannels.
   */
  openChannel(message: OpenMessage, hooks: ChannelHooks): Channel;
}

/** A connection file transfers open their channels on. */
export interface ChannelOpener extends ClientChannelHost {
  /** From WELCOME: the largest frame payload the daemon accepts. */
  readonly server: { readonly maxPayload: number };
}

/**
 * The `FrameConnection` under a client `Connection`, for tests that simulate faults (drop the
 * socket without a goodbye, read the keepalive interval, reach the TLS socket). It is private
 * to the connection; the documented internal symbol `transportOf` (src/client/connection.ts)
 * is the one way in, so no library user depends on it by accident.
 */
import { transportOf as transportSymbol, type Connection } from '../../src/client/connection.js';
import type { FrameConnection } from '../../src/transport/frame-connection.js';

export function transportOf(conn: Connection): FrameConnection {
  return conn[transportSymbol]();
}

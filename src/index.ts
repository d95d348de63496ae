/**
 * shellwire: run commands on remote hosts over TLS.
 *
 *   import { connect } from 'shellwire';
 *   const conn = await connect('web1:50007', { tokenFile: 'token' });
 *   const { stdout } = await conn.exec('uname -a');
 */
export { connect, type ConnectOptions } from './client/connect.js';
export {
  Connection, DEFAULT_CLIENT_KEEPALIVE_MS, DEFAULT_CLOSE_TIMEOUT_MS, type ConnectionOptions, type SpawnOptions, type ExecOptions,
} from './client/connection.js';
export { RemoteProcess, CHANNEL_CLOSE_GRACE_MS, type ExitInfo } from './client/remote-process.js';
export { ShellSession } from './client/shell-session.js';
export type { OsText } from './client/spawn-options.js';
/** OS byte strings (command text, argv, cwd, env, file names) ↔ exact bytes: docs/protocol.md §4.11. */
export { decodeOsBytes, encodeOsBytes, isOsString, OsBytesError } from './protocol/os-bytes.js';
export { DEFAULT_MAX_BUFFER } from './client/run-command.js';
export { parseTarget, formatTarget, type Target } from './client/target.js';
export { Server, type ServerOptions, DEFAULT_PORT, DEFAULT_HOST } from './server/server.js';
export { DEFAULT_LIMITS, type ServerLimits } from './server/limits.js';
export type { HostKeyPolicy } from './auth/known-hosts.js';
export {
  ShellwireError, ProtocolError, ConnectionError, HostVerificationError, AuthenticationError,
  RequestError, UsageError, LocalIoError, CommandError, ErrorCode, type CommandResult,
} from './errors.js';
export * from './fleet/index.js';
export { AuditLog, auditLogPath, type AuditEvent, type AuditRow, type AuditKind, type AuditQuery, type VerifyResult } from './audit/audit-log.js';
export { ClassicServer } from './server/classic-server.js';
export { putFile, getFile, listRemote, statRemote, putTree, getTree } from './client/file-api.js';
export {
  FileTransferError, type RemoteEntry, type TransferProgress, type TransferOptions, type PutOptions, type GetOptions, type TransferResult,
} from './client/files/common.js';
export type { TreeOptions, TreeResult } from './client/files/common.js';

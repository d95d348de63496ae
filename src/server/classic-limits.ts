/** Named limits of the classic (plaintext) port, each overridable (`ClassicServerOptions.limits`). */
import { DEFAULT_KILL_GRACE_MS, DEFAULT_OUTPUT_GRACE_MS } from '../process/command-process.js';

export interface ClassicLimits {
  /** Concurrent classic clients (authenticated or not); more get an error line and are closed. */
  maxClients: number;
  /** Longest command, newline excluded; a longer one is refused whole, never split. */
  maxLineBytes: number;
  /** Longest first line (the token) before it is refused. */
  maxTokenLineBytes: number;
  /** A newline-less client's bytes are one command once this long passes without more. */
  commandIdleMs: number;
  /** Largest reply (stdout + stderr); past it the command is stopped and refused. */
  maxOutputBytes: number;
  /** Commands waiting behind the running one, in bytes; past it the socket is not read. */
  maxQueuedBytes: number;
  /** Time from accept to the token line. */
  authTimeoutMs: number;
  /** After the client's EOF, how long its remaining commands may still run. */
  halfCloseTimeoutMs: number;
  /** SIGTERM → SIGKILL delay for the commands of departed clients. */
  killGraceMs: number;
  /** After a command exits by itself, how long what it left behind may hold its output open. */
  outputGraceMs: number;
  /** TCP keepalive idle time, to notice a vanished host. */
  keepaliveMs: number;
  /** After we close our side, how long a peer may take to close its side before it is cut off. */
  closeLingerMs: number;
}

export const DEFAULT_CLASSIC_LIMITS: ClassicLimits = {
  maxClients: 16,
  maxLineBytes: 64 * 1024,
  maxTokenLineBytes: 1024,
  commandIdleMs: 50,
  maxOutputBytes: 4 * 1024 * 1024,
  maxQueuedBytes: 256 * 1024,
  authTimeoutMs: 10_000,
  halfCloseTimeoutMs: 30_000,
  killGraceMs: DEFAULT_KILL_GRACE_MS,
  outputGraceMs: DEFAULT_OUTPUT_GRACE_MS,
  keepaliveMs: 15_000,
  closeLingerMs: 2_000,
};

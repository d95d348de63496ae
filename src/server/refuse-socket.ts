/**
 * Refuse a connection right after TLS: one GOODBYE, our FIN, and the socket destroyed soon
 * after whatever the peer does. `socket.end()` alone is not enough: a socket nobody reads
 * never sees the peer's FIN, so it would hold its file descriptor for good (issue 8: every
 * refused connection leaked one).
 */
import type { Socket } from 'node:net';
import { FrameType, encodeFrame } from '../protocol/frame.js';
import { encodeCodeMessage } from '../protocol/messages.js';
import type { ErrorCode } from '../errors.js';

/** How long a refused peer has to read the GOODBYE before the socket is destroyed. */
export const REFUSE_LINGER_MS = 1_000;

export function refuseSocket(socket: Socket, code: ErrorCode, message: string): void {
  socket.on('error', () => {});
  socket.end(encodeFrame(FrameType.GOODBYE, 0, encodeCodeMessage(code, message)));
  // Read and discard, so the peer's FIN (or reset) is noticed and the socket closes at once.
  socket.on('data', () => {});
  socket.resume();
  socket.once('end', () => socket.destroy());
  const timer = setTimeout(() => socket.destroy(), REFUSE_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

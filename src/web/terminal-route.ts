/**
 * WS /api/terminal?host=NAME&cols=C&rows=R: a terminal on NAME through the gateway, as
 * `shellwire tty --via GW NAME`: a login shell on a PTY on `session.gateway.relay(NAME)`.
 *
 * The PTY is asked for before the upgrade (the route's preHandler, after the session guard): a host the gateway
 * refuses (policy: 403, unreachable: 502) is an HTTP answer with the gateway's message, and
 * no WebSocket exists. Then: client→server binary frames are keystrokes (bytes, never
 * decoded), text frames `{"type":"resize","cols","rows"}`; server→client binary frames are
 * the terminal's output bytes, text `{"type":"open"}`, `{"type":"exit","code","signal"}` and
 * `{"type":"error","code","message"}`, then close 1000.
 *
 * Backpressure: while the browser's socket holds more than TERMINAL_HIGH_WATER bytes unsent,
 * the PTY's output stream is paused, so the gateway's window to the host closes and a fast
 * `yes` waits at the host instead of growing the gateway's (or this process's) memory.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type {} from '@fastify/websocket';
import type { RemoteProcess } from '../client/remote-process.js';
import type { Connection } from '../client/connection.js';
import { ErrorCode, ShellwireError } from '../errors.js';
import { badRequest, errorBody, queryText, sendError, sessionOf, trackSocket } from './route-kit.js';

/** Unsent bytes on the browser's socket above which the terminal's output is paused. */
export const TERMINAL_HIGH_WATER = 1024 * 1024;
/** A text (control) message from the browser larger than this is dropped with an `error` message; the terminal goes on. */
export const MAX_TERMINAL_CONTROL_BYTES = 4096;
/**
 * Keystrokes one binary message may carry (a paste); a larger one is dropped with an `error`
 * message naming the limit, and the terminal goes on (one oversized paste must not end the
 * shell and what runs in it). Above WEB_WS_MAX_PAYLOAD the WebSocket library itself closes (1009).
 */
export const MAX_TERMINAL_INPUT_BYTES = 1024 * 1024;

/** How long the host may take to open a terminal before the browser is answered 504. */
const OPEN_TIMEOUT_MS = 30_000;

/** How long a terminal opened for an upgrade waits for it to complete before it is closed. */
const UPGRADE_GRACE_MS = 10_000;

const started = new WeakMap<FastifyRequest, { proc: RemoteProcess; view: Connection }>();

function size(request: FastifyRequest, name: 'cols' | 'rows', fallback: number): number {
  const text = queryText(request, name);
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n < 1 || n > 65535) throw badRequest(`${name} must be a whole number from 1 to 65535, got ${JSON.stringify(text)}.`);
  return n;
}

export function registerTerminalRoute(app: FastifyInstance): void {
  app.get('/api/terminal', {
    websocket: true,
    // A preHandler: it runs after the session guard's (scope hooks come before route hooks).
    preHandler: async (request, reply) => {
      if (reply.sent) return;
      let release: (() => void) | null = null;
      try {
        const { gateway, user } = sessionOf(request);
        const host = queryText(request, 'host');
        if (host === undefined || host === '' || host.length > 255) throw badRequest('Name the host: /api/terminal?host=NAME&cols=C&rows=R.');
        const cols = size(request, 'cols', 80);
        const rows = size(request, 'rows', 24);
        // Opens in flight are bounded per user and across the console: a flood waits its turn
        // (and is answered 503 if the turn does not come), instead of stalling everyone.
        if (request.webOpens) {
          const slot = await request.webOpens.acquire(user);
          if (typeof slot !== 'function') return sendError(reply, request, new ShellwireError(slot.code, slot.message), slot.status);
          release = slot;
        }
        if (request.raw.socket.destroyed) return;
        const view = gateway.relay(host);
        const proc = view.spawn(null, { pty: { term: 'xterm-256color', cols, rows } });
        // A refusal rejects both; `started` is answered here, `exited` is the socket's to report.
        proc.exited.catch(() => {});
        started.set(request, { proc, view });
        // Always an answer: a host that never answers the open is a 504, not silence.
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), OPEN_TIMEOUT_MS)));
        const outcome = await Promise.race([proc.started.then(() => 'started' as const), late]).finally(() => clearTimeout(timer));
        if (outcome === 'late') {
          started.delete(request);
          proc.close();
          void view.close();
          return sendError(reply, request, new ShellwireError(ErrorCode.CONNECT_FAILED, `${host} did not open the terminal within ${Math.round(OPEN_TIMEOUT_MS / 1000)} s; try again.`), 504);
        }
        // The upgrade should follow at once; one that never completes must not keep a shell open.
        const unclaimed = setTimeout(() => {
          const left = started.get(request);
          if (!left) return;
          started.delete(request);
          left.proc.close();
          void left.view.close();
        }, UPGRADE_GRACE_MS);
        unclaimed.unref();
      } catch (err) {
        const failed = started.get(request);
        failed?.proc.close();
        void failed?.view.close();
        started.delete(request);
        return sendError(reply, request, err);
      } finally {
        release?.();
      }
    },
  }, (socket: WebSocket, request) => {
    const terminal = started.get(request);
    started.delete(request);
    if (!terminal) return void socket.close(1011, 'no terminal');
    trackSocket(sessionOf(request), socket);
    wireTerminal(socket, terminal.proc, terminal.view, request);
  });
}

function wireTerminal(socket: WebSocket, proc: RemoteProcess, view: Connection, request: FastifyRequest): void {
  let closed = false;
  const sendJson = (message: object) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
  };
  const finish = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    proc.close();
    // The relay view goes with its terminal (the session's connection stays).
    void proc.exited.catch(() => {}).finally(() => void view.close());
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason);
  };
  sendJson({ type: 'open' });

  // Output: binary frames; paused while the browser is behind.
  let paused = false;
  const output = (chunk: Buffer) => {
    if (socket.readyState !== socket.OPEN) return;
    socket.send(chunk, { binary: true }, () => {
      if (paused && socket.bufferedAmount < TERMINAL_HIGH_WATER / 2) {
        paused = false;
        proc.stdout.resume();
      }
    });
    if (!paused && socket.bufferedAmount >= TERMINAL_HIGH_WATER) {
      paused = true;
      proc.stdout.pause();
    }
  };
  proc.stdout.on('data', output);
  proc.stderr.on('data', output);

  socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (isBinary) {
      if (bytes.length > MAX_TERMINAL_INPUT_BYTES) {
        return sendJson({ type: 'error', code: ErrorCode.BAD_REQUEST, message: `Input of ${bytes.length} bytes in one message was dropped: a keystroke message is at most ${MAX_TERMINAL_INPUT_BYTES} bytes (1 MiB); paste in smaller pieces. The terminal goes on.` });
      }
      proc.stdin.write(bytes);
      return;
    }
    if (bytes.length > MAX_TERMINAL_CONTROL_BYTES) {
      return sendJson({ type: 'error', code: ErrorCode.BAD_REQUEST, message: `A text (control) message of ${bytes.length} bytes was dropped: it is at most ${MAX_TERMINAL_CONTROL_BYTES} bytes; keystrokes go as binary messages. The terminal goes on.` });
    }
    let message: { type?: unknown; cols?: unknown; rows?: unknown };
    try {
      message = JSON.parse(bytes.toString('utf8')) as typeof message;
    } catch {
      return sendJson({ type: 'error', code: ErrorCode.BAD_REQUEST, message: 'A text message must be JSON such as {"type":"resize","cols":100,"rows":30}; keystrokes go as binary messages.' });
    }
    if (message?.type === 'resize') {
      const { cols, rows } = message;
      if (typeof cols !== 'number' || typeof rows !== 'number' || !Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1 || cols > 65535 || rows > 65535) {
        return sendJson({ type: 'error', code: ErrorCode.BAD_REQUEST, message: 'resize takes whole numbers cols and rows from 1 to 65535.' });
      }
      proc.resize(cols, rows);
      return;
    }
    sendJson({ type: 'error', code: ErrorCode.BAD_REQUEST, message: `Unknown message type ${JSON.stringify(message?.type ?? null)}; the terminal takes "resize" (and keystrokes as binary messages).` });
  });
  socket.on('close', () => finish(1000, 'closed'));
  socket.on('error', () => finish(1011, 'socket error'));

  proc.exited.then(
    async (exit) => {
      // Every output byte goes before the exit message.
      await Promise.all([ended(proc.stdout), ended(proc.stderr)]);
      sendJson({ type: 'exit', code: exit.exitCode, signal: exit.signal });
      finish(1000, 'exited');
    },
    (err: unknown) => {
      const body = errorBody(err, request);
      sendJson({ type: 'error', code: body.code, message: body.message });
      finish(1000, 'error');
    },
  );
}

function ended(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
}

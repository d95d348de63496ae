/**
 * WS /api/run: one command on a host list through the gateway, as `shellwire run --via GW
 * TARGETS COMMAND`: the targets resolved over the user's hosts (a plain name she may not
 * reach is still sent, so the gateway refuses it by name and audits the refusal), then fleet
 * `runOn` whose pool hands out relay views on the session's gateway connection.
 *
 * client → server (text): `{"type":"run","targets":EXPR,"command":TEXT,"timeoutMs"?:N}` once,
 * later `{"type":"cancel"}`. server → client (text): `{"type":"hosts","hosts":[…]}`,
 * `{"type":"started","host"}`, `{"type":"result","host","status","exitCode","signal","stdout":
 * BASE64,"stderr":BASE64,"truncated","durationMs","error"?}` (status: the CLI's, fleet/results.ts),
 * `{"type":"done","summary":{ok,failed,total,durationMs}}` or `{"type":"error","code","message"}`.
 * One run per socket; the socket closes (1000) after `done`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type {} from '@fastify/websocket';
import { ErrorCode, ShellwireError } from '../errors.js';
import { gatewayTargetsInventory } from '../fleet/gateway-hosts.js';
import { resolveTargets } from '../fleet/targets.js';
import { ConnectionPool } from '../fleet/pool.js';
import { runOn, type FleetRun } from '../fleet/run-on.js';
import { WEB_VIA, errorBody, sessionOf, trackSocket } from './route-kit.js';
import { MAX_TARGET_EXPR } from './hosts-route.js';

/** The largest message the run socket takes (the command and targets). */
export const MAX_RUN_MESSAGE_BYTES = 256 * 1024;
/** Output kept per host and stream (the CLI's default is 1 MiB; a page of 200 hosts stays light). */
export const WEB_RUN_MAX_OUTPUT = 256 * 1024;
/** Hosts running at once for one browser run. */
export const WEB_RUN_FANOUT = 64;
/** Unsent bytes on the browser's socket above which results wait (the run's events queue pauses the hosts). */
const RUN_HIGH_WATER = 4 * 1024 * 1024;

export function registerRunRoute(app: FastifyInstance): void {
  app.get('/api/run', { websocket: true }, (socket: WebSocket, request) => {
    serveRun(socket, request);
  });
}

function serveRun(socket: WebSocket, request: FastifyRequest): void {
  trackSocket(sessionOf(request), socket);
  let run: FleetRun | null = null;
  let pool: ConnectionPool | null = null;
  let begun = false;
  const send = (message: object) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
  };
  const fail = (code: string, message: string) => {
    send({ type: 'error', code, message });
    if (!begun) socket.close(1000, 'error');
  };
  socket.on('close', () => {
    run?.cancel();
    void pool?.close();
  });
  socket.on('error', () => run?.cancel());
  socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (isBinary) return fail(ErrorCode.BAD_REQUEST, 'The run socket takes JSON text messages: {"type":"run","targets":"@web","command":"uptime"} or {"type":"cancel"}.');
    if (bytes.length > MAX_RUN_MESSAGE_BYTES) {
      send({ type: 'error', code: ErrorCode.BAD_REQUEST, message: `A run message is at most ${MAX_RUN_MESSAGE_BYTES} bytes (this one was ${bytes.length}).` });
      // A run under way goes on (the oversized message is dropped); before one, the socket is done.
      if (!begun) socket.close(1009, 'message too big');
      return;
    }
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      if (typeof message !== 'object' || message === null) throw new Error('not an object');
    } catch {
      return fail(ErrorCode.BAD_REQUEST, 'A run message must be a JSON object: {"type":"run","targets":"@web","command":"uptime"} or {"type":"cancel"}.');
    }
    if (message.type === 'cancel') {
      run?.cancel();
      return;
    }
    if (message.type !== 'run') return fail(ErrorCode.BAD_REQUEST, `Unknown message type ${JSON.stringify(message.type ?? null)}; the run socket takes "run" and "cancel".`);
    if (begun) return send({ type: 'error', code: ErrorCode.BAD_REQUEST, message: 'One run per socket: open another for the next command.' });
    const { targets, command, timeoutMs } = message;
    if (typeof targets !== 'string' || targets.trim() === '' || targets.length > MAX_TARGET_EXPR) return fail(ErrorCode.BAD_REQUEST, `"targets" must be a target expression such as "@web" or "web01,web02" (at most ${MAX_TARGET_EXPR} characters).`);
    if (typeof command !== 'string' || command === '') return fail(ErrorCode.BAD_REQUEST, '"command" must be the command text to run.');
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 0x7fffffff)) {
      return fail(ErrorCode.BAD_REQUEST, '"timeoutMs" must be a whole number of milliseconds of at least 1.');
    }
    begun = true;
    void start(targets, command, timeoutMs as number | undefined).catch((err: unknown) => {
      const body = errorBody(err, request);
      send({ type: 'error', code: body.code, message: body.message });
      socket.close(1000, 'error');
    });
  });

  async function start(targets: string, command: string, timeoutMs: number | undefined): Promise<void> {
    const { gateway } = sessionOf(request);
    const inventory = await gatewayTargetsInventory(gateway, WEB_VIA, targets);
    const hosts = resolveTargets(targets, inventory, { allowEmpty: true });
    if (hosts.length === 0) throw new ShellwireError(ErrorCode.NO_HOSTS_MATCHED, `No host you may reach matches ${JSON.stringify(targets)}.`);
    if (socket.readyState !== socket.OPEN) return;
    send({ type: 'hosts', hosts: hosts.map((h) => h.name) });
    pool = new ConnectionPool({ gateway });
    run = runOn(hosts, command, {
      pool, fanout: WEB_RUN_FANOUT, maxBuffer: WEB_RUN_MAX_OUTPUT, outputEvents: false,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    });
    for await (const event of run) {
      if (event.type === 'start') send({ type: 'started', host: event.host });
      else if (event.type === 'result') {
        const r = event.result;
        send({
          type: 'result', host: r.host, status: r.status, exitCode: r.exitCode, signal: r.signal,
          stdout: r.stdoutBytes.toString('base64'), stderr: r.stderrBytes.toString('base64'),
          truncated: r.truncated, durationMs: r.durationMs, ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
        });
        // A slow browser: wait here, so the run's queue fills and pauses the hosts.
        while (socket.readyState === socket.OPEN && socket.bufferedAmount > RUN_HIGH_WATER) await new Promise((r2) => setTimeout(r2, 20));
      } else if (event.type === 'summary') {
        const s = event.summary;
        send({ type: 'done', summary: { ok: s.ok, failed: s.total - s.ok, total: s.total, durationMs: s.durationMs } });
      }
    }
    socket.close(1000, 'done');
  }
}

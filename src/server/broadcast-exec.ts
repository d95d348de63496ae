/**
 * An agent's side of a broadcast (docs/nats.md, "Broadcast"): judge the request
 * (auth/broadcast-auth.ts), run the command exactly as an exec channel would — the same spec
 * (process/command-spec.ts: run-as, env after the privilege drop, no shell for users with
 * command rules), the same launcher (process/launch.ts: spawner, containment), the same
 * timeout and kill grace, the same audit rows — and answer once, signed by the host key.
 *
 * Not answered: malformed messages (dropped: an answer to garbage would make every agent an
 * amplifier), requests for other agents, and unproven ones (a key users.yaml does not have, or a
 * bad signature: their `replyTo` is unproven too, so an answer would be a reflector; audited at
 * most once a minute, with a count). Every other outcome is answered and audited.
 * Output is kept up to the request's `maxOutput` per stream (and what fits the broker's
 * max_payload); the rest is read and counted, so a chatty command never stalls on its pipe.
 */
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { ErrorCode } from '../errors.js';
import { BroadcastGate, NonceSet, hostSigner, signBroadcastResult, type BroadcastVerdict, type HostSigner } from '../auth/broadcast-auth.js';
import type { BroadcastRequest, BroadcastResult } from '../protocol/broadcast-codec.js';
import type { ExecParams } from '../protocol/messages.js';
import type { UsersConfig } from '../auth/users-config.js';
import type { Principal } from '../auth/principal.js';
import { hasCommandRules } from '../auth/policy.js';
import { buildCommandSpec, spawnLine } from '../process/command-spec.js';
import { argumentTooLong } from '../process/arg-limits.js';
import { startCommand, type LaunchedProcess } from '../process/launch.js';
import type { CommandExit } from '../process/command-process.js';
import type { Containers } from '../process/containment.js';
import type { Spawner } from '../process/spawner.js';
import { encodeOsBytes } from '../protocol/os-bytes.js';
import { ConnectionAudit, type AuditSink } from '../audit/audit-sink.js';
import { authFailEvent, deniedEvent } from '../audit/events.js';
import { commandEndEvent, commandStartEvent, endCommand, type CommandRecord } from '../audit/command-record.js';
import { commandBaseEnv, userBaseEnv } from './command-env.js';
import type { ServerLimits } from './limits.js';

/** Broadcast commands running at once on one agent; more are refused (SW_ERR_TOO_MANY_CHANNELS), never queued without bound. */
export const MAX_RUNNING_BROADCASTS = 256;
/**
 * Unproven requests (a key no users.yaml entry has, or a bad signature) are audited and logged at
 * most once per this interval, with the count of those in between: each costs its sender nothing
 * (no key), so one row per message would let anyone who can publish fill the agents' disks.
 */
export const UNPROVEN_REPORT_INTERVAL_MS = 60_000;
/** Room left in a NATS message for everything but the output (JSON, base64 padding, the signature). */
const RESULT_OVERHEAD_BYTES = 8 * 1024;

/** What the executor needs from the daemon (a `Server` has all of it: `broadcastHostOf`). */
export interface BroadcastHost {
  /** users.yaml in force now (read at each request, so a reload applies at once). */
  users(): UsersConfig;
  readonly audit: AuditSink | null;
  readonly containers?: Containers | undefined;
  readonly spawner?: Spawner | undefined;
  readonly limits: ServerLimits;
  readonly identity: { keyPem: string; certPem: string; fingerprint: string };
  readonly log: Logger;
}

/** A reply to publish: the request's signed `replyTo` and the signed result. */
export interface BroadcastReply {
  subject: string;
  payload: Buffer;
}

export interface BroadcastExecutorOptions {
  /** The agent's name (what `targets` list). */
  name: string;
  /** The broker's max_payload (nats `info.max_payload`): output is cut to fit. Default 1 MiB. */
  maxPayload?: () => number;
  /** Tests: the clock. */
  now?: () => number;
}

/** One agent's broadcast handler: `handle(message)` → the reply to publish, or null. */
export class BroadcastExecutor {
  readonly #host: BroadcastHost;
  readonly #name: string;
  readonly #gate: BroadcastGate;
  #signer: HostSigner;
  readonly #maxPayload: () => number;
  readonly #baseEnv = commandBaseEnv();
  readonly #running = new Set<LaunchedProcess>();
  readonly #now: () => number;
  /** When the last unproven request was reported, and how many came since without a report. */
  #unproven = { reportedAt: -Infinity, since: 0 };
  #closed = false;

  constructor(host: BroadcastHost, options: BroadcastExecutorOptions) {
    this.#host = host;
    this.#name = options.name;
    this.#gate = new BroadcastGate({ name: options.name, users: () => host.users(), nonces: new NonceSet(), ...(options.now ? { now: options.now } : {}) });
    this.#signer = hostSigner(host.identity);
    this.#maxPayload = options.maxPayload ?? (() => 1024 * 1024);
    this.#now = options.now ?? Date.now;
  }

  /** Commands running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Judge, run and answer one `P.bcast` message. Never rejects. */
  async handle(data: Uint8Array): Promise<BroadcastReply | null> {
    const verdict = this.#gate.judge(data);
    const log = this.#host.log;
    if (verdict.action === 'drop') {
      log.debug({ reason: verdict.reason }, 'malformed broadcast message dropped');
      return null;
    }
    if (verdict.action === 'ignore') return null;
    if (verdict.action === 'unproven') {
      this.#reportUnproven(verdict);
      return null;
    }
    const request = verdict.request;
    const audit = new ConnectionAudit(this.#host.audit, `nats:bcast:${request.id}`);
    if (verdict.action === 'refuse') {
      log.warn({ request: request.id, user: request.user, code: verdict.code, reason: verdict.message }, 'broadcast refused');
      if (verdict.principal) {
        audit.loggedIn(verdict.principal);
        audit.record(authOkRow(verdict.principal, request));
        audit.record({ ...deniedEvent(verdict.command, 'exec', verdict.message), detail: { channelKind: 'exec', reason: verdict.message, code: verdict.code, broadcast: request.id } });
      } else {
        audit.record({ ...authFailEvent(request.user, verdict.message), keyFingerprint: verdict.fingerprint, detail: { reason: verdict.message, code: verdict.code, method: 'broadcast', broadcast: request.id } });
      }
      return this.#reply(request, refusal(verdict.code, verdict.message));
    }
    audit.loggedIn(verdict.principal);
    audit.record(authOkRow(verdict.principal, request));
    const admitted = audit.admit();
    if (admitted) {
      audit.record(deniedEvent(verdict.command, 'exec', admitted.message));
      return this.#reply(request, refusal(admitted.code, admitted.message));
    }
    if (this.#closed) return this.#reply(request, refusal(ErrorCode.SERVER_SHUTTING_DOWN, `${this.#name} is shutting down; run the command again later.`));
    if (this.#running.size >= MAX_RUNNING_BROADCASTS) {
      return this.#reply(request, refusal(ErrorCode.TOO_MANY_CHANNELS, `${this.#name} already runs ${MAX_RUNNING_BROADCASTS} broadcast commands; run it again later or use --tunnel.`));
    }
    const outcome = await this.#run(request, verdict.principal, verdict.params, verdict.command, audit);
    return this.#reply(request, outcome);
  }

  /** One audit row and log line per UNPROVEN_REPORT_INTERVAL_MS at most, counting the others. */
  #reportUnproven(verdict: Extract<BroadcastVerdict, { action: 'unproven' }>): void {
    const now = this.#now();
    if (now - this.#unproven.reportedAt < UNPROVEN_REPORT_INTERVAL_MS) {
      this.#unproven.since++;
      return;
    }
    const before = this.#unproven.since;
    this.#unproven = { reportedAt: now, since: 0 };
    const { request, reason } = verdict;
    const more = before > 0 ? ` (${before} more since the last report, not recorded one by one)` : '';
    this.#host.log.warn({ request: request.id, claimedUser: request.user, reason, unprovenSinceLastReport: before },
      `unproven broadcast request not answered: ${reason}${more}`);
    new ConnectionAudit(this.#host.audit, `nats:bcast:${request.id}`).record({
      ...authFailEvent(request.user, `Unproven broadcast request, not answered: ${reason}.`), keyFingerprint: verdict.fingerprint,
      detail: { reason, code: ErrorCode.AUTH_FAILED, method: 'broadcast', broadcast: request.id, unproven: true, claimedUser: request.user, unprovenSinceLastReport: before },
    });
  }

  /** Stop what still runs (daemon shutdown): each command's reply says it was killed. */
  close(): void {
    this.#closed = true;
    for (const proc of this.#running) proc.terminate(this.#host.limits.killGraceMs);
  }

  async #run(request: BroadcastRequest, user: Principal, params: ExecParams, label: string, audit: ConnectionAudit): Promise<Outcome> {
    const limits = this.#host.limits;
    const cwd = params.cwd ?? user.home;
    try {
      // As bytes: the cwd may name a directory that is not UTF-8 (OS byte string).
      if (!statSync(encodeOsBytes(cwd)).isDirectory()) return refusal(ErrorCode.BAD_REQUEST, `Working directory ${cwd} is not a directory.`);
    } catch (err) {
      return refusal(ErrorCode.BAD_REQUEST, `Working directory ${cwd} is not usable: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
    }
    const built = buildCommandSpec(
      { command: params.command, argv: params.argv, env: params.env, cwd },
      {
        withoutShell: hasCommandRules(user),
        account: { uid: user.account.uid, gid: user.account.gid, shell: user.account.shell, switch: user.switchAccount },
        baseEnv: userBaseEnv(this.#baseEnv, user),
        killGraceMs: limits.killGraceMs,
        outputGraceMs: limits.outputGraceMs,
      },
    );
    if (!built.ok) return refusal(ErrorCode.BAD_REQUEST, built.reason);
    const tooLong = argumentTooLong(spawnLine(built.spec));
    if (tooLong) return refusal(ErrorCode.SPAWN_FAILED, `Cannot start the command: ${tooLong}. Pass long data in a file instead.`);
    // Both streams in base64 must fit one NATS message with the rest of the result.
    const cap = Math.max(0, Math.min(request.maxOutput, Math.floor(((this.#maxPayload() - RESULT_OVERHEAD_BYTES) * 3) / 4 / 2)));
    const stdout = new KeptBytes(cap);
    const stderr = new KeptBytes(cap);
    const startedMs = performance.now();
    let exitSeen: (exit: CommandExit) => void = () => {};
    const exited = new Promise<CommandExit>((resolve) => (exitSeen = resolve));
    const launched = await startCommand(built.spec, { containers: this.#host.containers, spawner: this.#host.spawner, onClose: (exit) => exitSeen(exit) });
    if (!launched.ok) {
      audit.record({ kind: 'failed', command: label, detail: { channelKind: 'exec', reason: launched.message, outcome: { code: launched.code, message: launched.message }, broadcast: request.id } });
      return refusal(launched.code, launched.message);
    }
    const proc = launched.process;
    this.#running.add(proc);
    proc.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    proc.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    proc.stdin.end();
    const record: CommandRecord = { channel: 0, command: label, ...(params.argv ? { argv: params.argv } : {}), cwd, startedAt: new Date() };
    audit.record({ ...commandStartEvent({ ...record, env: Object.keys(params.env ?? {}) }), detail: { ...commandStartEvent({ ...record, env: Object.keys(params.env ?? {}) }).detail, broadcast: request.id } });
    proc.containment?.note({ channel: 0, command: label, ...(params.argv ? { argv: params.argv } : {}), cwd, startedAt: record.startedAt.toISOString(), user: user.name, osUser: user.account.name, address: `nats:bcast:${request.id}` });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.terminate(limits.killGraceMs);
    }, request.timeoutMs);
    const exit = await exited;
    clearTimeout(timer);
    this.#running.delete(proc);
    proc.containment?.note(null);
    const end = endCommand(record, startedMs, { exitCode: exit.exitCode, signal: exit.signal, timedOut, bytesIn: 0, bytesOut: stdout.total + stderr.total });
    audit.record({ ...commandEndEvent(end), detail: { ...commandEndEvent(end).detail, broadcast: request.id } });
    this.#host.log.info({ request: request.id, user: user.name, command: label, exitCode: end.exitCode, signal: end.signal, timedOut, durationMs: end.durationMs }, 'broadcast command finished');
    const outcome: Outcome = {
      exitCode: exit.exitCode, signal: exit.signal, stdout: stdout.bytes(), stderr: stderr.bytes(), truncated: stdout.truncated || stderr.truncated, timedOut, durationMs: end.durationMs,
    };
    if (exit.spawnError) {
      outcome.exitCode = exit.spawnError.code === 'ENOENT' ? 127 : 126;
      outcome.error = { code: ErrorCode.SPAWN_FAILED, message: `Cannot run ${params.argv?.[0] ?? '/bin/sh'}: ${exit.spawnError.message}` };
    }
    if (exit.spawnerError) outcome.error = { code: exit.spawnerError.code, message: exit.spawnerError.message };
    return outcome;
  }

  #reply(request: BroadcastRequest, outcome: Outcome): BroadcastReply {
    // A rotated host key (rotate-host-key, SIGHUP) signs from the next answer on, as new TLS connections get it.
    if (this.#host.identity.fingerprint !== this.#signer.fingerprint) this.#signer = hostSigner(this.#host.identity);
    const result: Omit<BroadcastResult, 'fingerprint' | 'spki'> = {
      v: 1, id: request.id, name: this.#name, exitCode: outcome.exitCode, signal: outcome.signal,
      stdout: outcome.stdout.toString('base64'), stderr: outcome.stderr.toString('base64'),
      truncated: outcome.truncated, timedOut: outcome.timedOut, durationMs: outcome.durationMs,
      ...(outcome.error ? { error: { code: outcome.error.code, message: outcome.error.message.slice(0, 4096) } } : {}),
    };
    return { subject: request.replyTo, payload: signBroadcastResult(result, this.#signer) };
  }
}

interface Outcome {
  exitCode: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
  error?: { code: string; message: string };
}

function refusal(code: string, message: string): Outcome {
  return { exitCode: null, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), truncated: false, timedOut: false, durationMs: 0, error: { code, message } };
}

/** The auth-ok row of a broadcast: as a publickey login's, with method `broadcast` and the request id. */
function authOkRow(user: Principal, request: BroadcastRequest) {
  return {
    kind: 'auth-ok' as const,
    user: user.name,
    osUser: user.account.name,
    keyFingerprint: user.credential,
    detail: { method: 'broadcast', credential: user.credential, broadcast: request.id },
  };
}

/** Up to `cap` bytes of a stream; the rest counted. */
class KeptBytes {
  readonly #cap: number;
  #chunks: Buffer[] = [];
  #kept = 0;
  total = 0;

  constructor(cap: number) {
    this.#cap = cap;
  }

  get truncated(): boolean {
    return this.total > this.#kept;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.#cap - this.#kept;
    if (room <= 0) return;
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.#chunks.push(Buffer.from(part));
    this.#kept += part.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

/** The executor's view of a running daemon (`Server` from server.ts). */
export function broadcastHostOf(server: {
  readonly users: UsersConfig; readonly audit: AuditSink | null; readonly containers: Containers; readonly spawner: Spawner | undefined;
  readonly limits: ServerLimits; readonly identity: { keyPem: string; certPem: string; fingerprint: string };
}, log: Logger): BroadcastHost {
  return {
    users: () => server.users,
    get audit() { return server.audit; },
    get containers() { return server.containers; },
    get spawner() { return server.spawner; },
    limits: server.limits,
    get identity() { return server.identity; },
    log,
  };
}

/** The part of an agent (server/nats-agent.ts `NatsAgent`) broadcasts are served through. */
export interface BroadcastAgent {
  readonly name: string;
  readonly nc: { publish(subject: string, payload: Uint8Array): void; isClosed?(): boolean; info?: { max_payload: number } | undefined };
  onBroadcast(handler: (message: { data: Uint8Array }) => void | Promise<void>): void;
}

/**
 * Serve `P.bcast` on `agent` for `server` (`serve --nats` calls this once): each request is
 * judged and run by a `BroadcastExecutor`, and the signed result is published on the request's
 * signed `replyTo` (never on a NATS reply subject someone re-publishing it could have changed).
 */
export function serveBroadcasts(agent: BroadcastAgent, host: BroadcastHost): BroadcastExecutor {
  const executor = new BroadcastExecutor(host, { name: agent.name, maxPayload: () => agent.nc.info?.max_payload ?? 1024 * 1024 });
  agent.onBroadcast(async (message) => {
    const reply = await executor.handle(message.data);
    // Closed meanwhile (the agent stopping): nowhere to answer; the command's audit rows are written.
    if (reply && !agent.nc.isClosed?.()) agent.nc.publish(reply.subject, reply.payload);
  });
  return executor;
}

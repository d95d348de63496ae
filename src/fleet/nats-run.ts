/**
 * `runBroadcast(agents, command, options)`: one command on many NATS agents with ONE signed
 * request (docs/nats.md, "Broadcast"). The request is signed once by the operator's SSH key
 * (a key file or ssh-agent), published on `PREFIX.bcast.SHARD` (one message per shard of the
 * targets, the same signature in each) with the client's inbox as `replyTo`, and every target agent answers there with a result signed by its host key. Each
 * answer is checked (signature, request id, a name we asked, the fingerprint pinned in
 * known_hosts under `nats:NAME`) and becomes the same `HostResult` and `FleetEvent`s that
 * `runOn` gives, so `run` prints the same grouped output, `--json` and exit codes.
 *
 * Scale: one subscription, one timer for the whole run (the deadline: `timeoutMs` + grace),
 * and per agent only its pending entry and its result: no per-host timers, sockets or
 * handshakes. Agents that have not answered by the deadline are `unreachable`.
 *
 *   const summary = await runBroadcast(['web1', 'web2'], 'uptime', { connection: nc, signer, user: 'alice' }).result();
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, RequestError, UsageError } from '../errors.js';
import {
  CLOCK_SKEW_MS, decodeResult, DEFAULT_BROADCAST_MAX_OUTPUT, MAX_BROADCAST_OUTPUT, MAX_REQUEST_LIFETIME_MS, AGENT_NAME, type BroadcastRequest, type BroadcastResult,
} from '../protocol/broadcast-codec.js';
import { signBroadcastRequest, verifyBroadcastResult, type RequestSigner } from '../auth/broadcast-auth.js';
import { addKnownHosts, readKnownHostEntries, type HostKeyPolicy } from '../auth/known-hosts.js';
import { knownHostsPath } from '../auth/paths.js';
import { EventQueue, DEFAULT_QUEUE_HIGH_WATER_MARK } from './event-queue.js';
import { summarize, type FleetEvent, type FleetSummary, type HostResult, type HostStatus } from './results.js';
import { TIMEOUT_GRACE_MS } from './run-on.js';
import { DEFAULT_NATS_PREFIX, natsSubjects } from '../protocol/nats-subjects.js';
import { IterateOnce } from './iterate-once.js';

/** Default per-agent command timeout of a broadcast: results are awaited this long (+ grace), so it cannot be unbounded. */
export const DEFAULT_BROADCAST_TIMEOUT_MS = 60_000;
/** The subject prefix several fleets can share a cluster with (`--nats-prefix`). */
export { DEFAULT_NATS_PREFIX };

/** The little of a NATS connection a broadcast uses (a nats.js `NatsConnection` fits). */
export interface BroadcastConnection {
  publish(subject: string, payload: Uint8Array, options?: { reply?: string }): void;
  subscribe(subject: string, options: { callback: (err: Error | null, msg: { data: Uint8Array }) => void }): { unsubscribe(): void };
  flush(): Promise<void>;
  /** nats.js's connection events: a 'disconnect' during the run means answers published meanwhile were lost. */
  status?(): AsyncIterable<{ type: string }>;
}

export interface BroadcastOptions {
  connection: BroadcastConnection;
  /** Signs the request: a client `KeyCredential` (key file or ssh-agent) or `keySigner(key)`. */
  signer: RequestSigner;
  /** The user the agents' users.yaml must authorize `signer`'s key for. */
  user: string;
  prefix?: string;
  /** Per-agent command timeout (the agent kills the command's group). Default 60 s. */
  timeoutMs?: number;
  /** Output kept per agent and stream, at most 256 KiB (the rest counted: `truncated`). */
  maxBuffer?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Run this argv without a shell instead of the command line. */
  argv?: string[];
  /** Default `$SHELLWIRE_HOME/known_hosts`; agents are pinned as `nats:NAME`. */
  knownHostsFile?: string;
  /** `strict` (default): an agent not pinned is `host-key`; `accept-new`: pinned at its first answer. */
  hostKeyPolicy?: Exclude<HostKeyPolicy, 'ask'>;
  onHostKeyAdded?: (hostKey: string, fingerprint: string, file: string) => void;
  /** Emit `output` events (default true). */
  outputEvents?: boolean;
  /**
   * Told at once when the NATS connection drops during the run: answers published while it is
   * down are lost (agents that have not answered end `lost`, not `unreachable`).
   */
  onConnectionLost?: (message: string) => void;
  /** Told about answers that were dropped (bad signature, unknown id or name, duplicates). */
  debug?: (message: string) => void;
  signal?: AbortSignal;
  /** Tests: the clock the request's issue time is taken from. */
  now?: () => number;
}

const EMPTY = Buffer.alloc(0);

/** A broadcast in progress: iterate it (once) for events or await `result()`; the same shape as `FleetRun` (IterateOnce). */
export class BroadcastRun extends IterateOnce {
  readonly hosts: readonly { name: string }[];
  readonly command: string;
  /** Answers dropped because they failed a check (forged, another agent's, duplicate): for tests and `-v`. */
  dropped = 0;
  #options: BroadcastOptions;
  #queue: EventQueue<FleetEvent>;
  /** name → index in `hosts`, for agents that have not answered yet. */
  #pending = new Map<string, number>();
  /** Results by index (sparse until answered). */
  #results: Array<HostResult | undefined>;
  /** A signed answer for a name whose pin it does not match: kept only to explain a `host-key` result. */
  #mismatch = new Map<string, string>();
  #pins = new Map<string, string>();
  #newPins: Array<{ hostKey: string; fingerprint: string }> = [];
  #requestId = randomBytes(16).toString('base64url');
  #startedAt = 0;
  #started = false;
  #canceled = false;
  #finished = false;
  #timer: NodeJS.Timeout | null = null;
  /** When the request expires: no agent starts it later (within the agents' clock skew). */
  #expiresAtMs = 0;
  /** When the NATS connection dropped during the run (answers published then are lost), if it did. */
  #connectionLostAt: Date | null = null;
  #subscription: { unsubscribe(): void } | null = null;

  constructor(hosts: readonly string[], command: string, options: BroadcastOptions) {
    super('BroadcastRun', 'runBroadcast()');
    checkBroadcast(hosts, command, options);
    this.hosts = hosts.map((name) => ({ name }));
    this.command = command;
    this.#options = options;
    this.#results = new Array(hosts.length);
    hosts.forEach((name, index) => this.#pending.set(name, index));
    // Output is in the result already; the queue bounds only what a slow consumer holds.
    this.#queue = new EventQueue(DEFAULT_QUEUE_HIGH_WATER_MARK, () => {});
    if (options.signal?.aborted) this.cancel();
    else options.signal?.addEventListener('abort', () => this.cancel(), { once: true });
  }

  /** The request's id (its nonce): agents' audit rows carry it as `detail.broadcast`. */
  get id(): string {
    return this.#requestId;
  }

  /** The first iteration (or `result()`) sends the request (IterateOnce). */
  protected begin(): AsyncIterator<FleetEvent> {
    this.#start();
    return this.#queue.drain();
  }

  /** Agents not answered yet (all "running": a broadcast has no connecting phase). */
  running(): Array<{ host: string; phase: 'connecting' | 'running'; elapsedMs: number }> {
    const elapsedMs = this.#started ? performance.now() - this.#startedAt : 0;
    return [...this.#pending.keys()].map((host) => ({ host, phase: 'running' as const, elapsedMs }));
  }

  counts(): { total: number; ok: number; failed: number; running: number; queued: number } {
    let ok = 0;
    let failed = 0;
    for (const r of this.#results) {
      if (r?.status === 'ok') ok++;
      else if (r) failed++;
    }
    return { total: this.hosts.length, ok, failed, running: this.#started ? this.#pending.size : 0, queued: this.#started ? 0 : this.hosts.length };
  }

  /**
   * Stop waiting: agents that have not answered are `canceled`. A broadcast has no channel to
   * close, so their commands run on until their timeout kills them (say so: `--tunnel` runs
   * can be canceled).
   */
  cancel(): void {
    if (this.#canceled || this.#finished) return;
    this.#canceled = true;
    if (this.#started) this.#finish();
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = performance.now();
    if (this.#canceled) {
      this.#finish();
      return;
    }
    this.#main().catch((err: unknown) => {
      this.#fail(err);
    });
  }

  async #main(): Promise<void> {
    const o = this.#options;
    const file = o.knownHostsFile ?? knownHostsPath();
    // One read of known_hosts for the whole run: agents are looked up by name, not scanned per answer.
    for (const entry of readKnownHostEntries(file)) if (entry.host.startsWith('nats:')) this.#pins.set(entry.host.slice(5), entry.fingerprint);
    const now = (o.now ?? Date.now)();
    const timeoutMs = o.timeoutMs ?? DEFAULT_BROADCAST_TIMEOUT_MS;
    this.#expiresAtMs = now + Math.min(MAX_REQUEST_LIFETIME_MS, timeoutMs + TIMEOUT_GRACE_MS);
    const inbox = `_INBOX.${randomBytes(16).toString('base64url')}`;
    const request: BroadcastRequest = {
      v: 1, id: this.#requestId, user: o.user, publicKey: o.signer.publicKey.line, targets: this.hosts.map((h) => h.name),
      ...(o.argv ? { argv: o.argv } : { command: this.command }),
      ...(o.env && Object.keys(o.env).length > 0 ? { env: o.env } : {}), ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      timeoutMs, maxOutput: Math.min(o.maxBuffer ?? DEFAULT_BROADCAST_MAX_OUTPUT, MAX_BROADCAST_OUTPUT),
      // No agent may start it after the client stopped waiting (timeout + grace): one reported
      // unreachable must not run it later (an agent's clock may still be up to CLOCK_SKEW_MS behind).
      issuedAt: new Date(now).toISOString(), expiresAt: new Date(this.#expiresAtMs).toISOString(), replyTo: inbox,
    };
    const messages = await signBroadcastRequest(request, o.signer);
    if (this.#canceled) return this.#finish();
    // Subscribed (and the subscription flushed to the server) before publishing: no answer is missed.
    this.#subscription = o.connection.subscribe(inbox, { callback: (err, msg) => (err ? this.#fail(err) : this.#onAnswer(msg.data)) });
    this.#watchConnection();
    await o.connection.flush();
    for (const h of this.hosts) this.#queue.push({ type: 'start', host: h.name });
    // The inbox is also the NATS reply subject: a broker that lets agents publish only responses
    // (`allow_responses`, docs/nats.md "Permissions") then lets each agent's result through.
    const subjects = natsSubjects(o.prefix ?? DEFAULT_NATS_PREFIX);
    for (const m of messages) o.connection.publish(subjects.broadcast(m.shard), m.bytes, { reply: inbox });
    // The one timer of the run: whoever has not answered by then is unreachable.
    this.#timer = setTimeout(() => this.#finish(), timeoutMs + TIMEOUT_GRACE_MS);
    if (this.#pending.size === 0) this.#finish();
  }

  #onAnswer(data: Uint8Array): void {
    if (this.#finished) return;
    let body: BroadcastResult;
    try {
      const signed = decodeResult(data);
      body = signed.body;
      if (body.id !== this.#requestId) return this.#drop(`answer for another request (${body.id}) from "${body.name}"`);
      if (!this.#pending.has(body.name)) return this.#drop(`answer from "${body.name}", which was not asked or has answered already`);
      if (!verifyBroadcastResult(signed)) return this.#drop(`answer claiming to be "${body.name}" with a bad signature`);
    } catch (err) {
      return this.#drop(`malformed answer: ${(err as Error).message}`);
    }
    const pinned = this.#pins.get(body.name);
    if (pinned !== undefined && pinned !== body.fingerprint) {
      // Maybe another agent answering in its name: ignored, so the real agent's answer still counts.
      this.#mismatch.set(body.name, body.fingerprint);
      return this.#drop(`answer for "${body.name}" signed by ${body.fingerprint}, but known_hosts pins nats:${body.name} to ${pinned}`);
    }
    const index = this.#pending.get(body.name)!;
    this.#pending.delete(body.name);
    if (pinned === undefined) {
      if (this.#options.hostKeyPolicy !== 'accept-new') {
        this.#record(index, this.#failure(body.name, 'host-key', ErrorCode.HOST_KEY_UNKNOWN,
          `Agent nats:${body.name} is not in ${this.#options.knownHostsFile ?? knownHostsPath()} (fingerprint ${body.fingerprint}); its answer was not used.`));
        return;
      }
      this.#pins.set(body.name, body.fingerprint);
      this.#newPins.push({ hostKey: `nats:${body.name}`, fingerprint: body.fingerprint });
    }
    this.#record(index, this.#fromAnswer(body));
  }

  #drop(why: string): void {
    this.dropped++;
    this.#options.debug?.(`broadcast ${this.#requestId}: dropped ${why}`);
  }

  #fromAnswer(body: BroadcastResult): HostResult {
    const stdoutBytes = Buffer.from(body.stdout, 'base64');
    const stderrBytes = Buffer.from(body.stderr, 'base64');
    const result: HostResult = {
      host: body.name, address: `nats:${body.name}`, status: 'ok', exitCode: body.exitCode, signal: body.signal, durationMs: body.durationMs,
      stdout: stdoutBytes.toString('utf8'), stderr: stderrBytes.toString('utf8'), stdoutBytes, stderrBytes, truncated: body.truncated, error: null, batch: 0,
    };
    if (this.#options.outputEvents !== false) {
      if (stdoutBytes.length > 0) this.#queue.push({ type: 'output', host: body.name, stream: 'stdout', data: stdoutBytes }, stdoutBytes.length);
      if (stderrBytes.length > 0) this.#queue.push({ type: 'output', host: body.name, stream: 'stderr', data: stderrBytes }, stderrBytes.length);
    }
    if (body.error) {
      result.error = { code: body.error.code, message: body.error.message };
      result.status = body.error.code === ErrorCode.AUTH_FAILED ? 'auth' : body.exitCode !== null ? 'failed' : 'error';
    } else if (body.timedOut) {
      result.status = 'timed-out';
      result.error = { code: ErrorCode.COMMAND_TIMED_OUT, message: `timed out after ${(this.#options.timeoutMs ?? DEFAULT_BROADCAST_TIMEOUT_MS) / 1000} s; its processes were killed` };
    } else if (body.signal !== null || body.exitCode !== 0) {
      result.status = 'failed';
    }
    return result;
  }

  #failure(name: string, status: HostStatus, code: string, message: string): HostResult {
    return {
      host: name, address: `nats:${name}`, status, exitCode: null, signal: null, durationMs: Math.round(performance.now() - this.#startedAt),
      stdout: '', stderr: '', stdoutBytes: EMPTY, stderrBytes: EMPTY, truncated: false, error: { code, message }, batch: 0,
    };
  }

  #record(index: number, result: HostResult): void {
    this.#results[index] = result;
    this.#queue.push({ type: 'result', host: result.host, result });
    if (this.#pending.size === 0) this.#finish();
  }

  /** A drop of the client's own NATS connection is said at once; the run still waits (it may come back, and answers with it). */
  #watchConnection(): void {
    const status = this.#options.connection.status?.();
    if (!status) return;
    void (async () => {
      for await (const event of status) {
        if (this.#finished) return;
        if (event.type !== 'disconnect' || this.#connectionLostAt) continue;
        this.#connectionLostAt = new Date();
        this.#options.onConnectionLost?.(`the NATS connection dropped during broadcast ${this.#requestId}: answers published while it is down are lost, so agents not answered by then will be reported "lost" (their command may have run: check \`shellwire audit --grep ${this.#requestId}\` on them)`);
      }
    })().catch(() => {});
  }

  #fail(err: unknown): void {
    this.#options.debug?.(`broadcast ${this.#requestId}: ${(err as Error)?.message ?? err}`);
    this.#finish((err as Error)?.message ?? String(err));
  }

  /** Everyone not answered gets their result now; then the pins, the summary, the end. */
  #finish(failure?: string): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#subscription?.unsubscribe();
    const timeoutMs = this.#options.timeoutMs ?? DEFAULT_BROADCAST_TIMEOUT_MS;
    for (const [name, index] of this.#pending) {
      const other = this.#mismatch.get(name);
      let result: HostResult;
      if (this.#canceled) {
        result = this.#failure(name, 'canceled', ErrorCode.COMMAND_CANCELED, 'no longer waited for (canceled); a broadcast command cannot be stopped from the client and runs until it ends or its timeout (use --tunnel for commands to cancel)');
      } else if (other !== undefined) {
        const pinned = this.#pins.get(name);
        result = this.#failure(name, 'host-key', ErrorCode.HOST_KEY_CHANGED,
          `The only answer for nats:${name} was signed by ${other}, but known_hosts pins ${pinned}: the agent's key changed (reinstalled or rotated) or another agent answered in its name; its answer was not used.`);
      } else if (failure !== undefined) {
        result = this.#failure(name, 'unreachable', ErrorCode.CONNECTION_CLOSED, `no answer: the NATS connection failed (${failure})`);
      } else if (this.#connectionLostAt) {
        result = this.#failure(name, 'lost', ErrorCode.CONNECTION_CLOSED,
          `no answer: this client's NATS connection dropped at ${this.#connectionLostAt.toISOString()} during the run, and answers published then are lost; the command may have run (request ${this.#requestId}: \`shellwire audit --grep ${this.#requestId}\` on the agent). Do not re-run a command that must not run twice without checking.`);
      } else {
        result = this.#failure(name, 'unreachable', ErrorCode.CONNECT_FAILED,
          `no answer within ${(timeoutMs + TIMEOUT_GRACE_MS) / 1000} s (the agent is not connected to NATS, is not named so, did not accept your key (an agent does not answer a request signed by a key its users.yaml lacks), or could not run it in time); request ${this.#requestId} expires at ${new Date(this.#expiresAtMs).toISOString()}, so it cannot start later than that (plus the agents' clock skew, at most ${CLOCK_SKEW_MS / 1000} s)`);
      }
      this.#results[index] = result;
      this.#queue.push({ type: 'result', host: name, result });
    }
    this.#pending.clear();
    if (this.#newPins.length > 0) {
      const file = this.#options.knownHostsFile ?? knownHostsPath();
      try {
        for (const pin of addKnownHosts(file, this.#newPins)) this.#options.onHostKeyAdded?.(pin.hostKey, pin.fingerprint, file);
      } catch (err) {
        this.#options.debug?.(`could not pin the new agents in ${file}: ${(err as Error).message}`);
      }
    }
    const summary = this.#makeSummary();
    this.#queue.push({ type: 'summary', summary });
    this.#queue.end();
    this.settle(summary);
  }

  #makeSummary(): FleetSummary {
    const results = this.#results.filter((r): r is HostResult => r !== undefined);
    return summarize(this.command, this.hosts.length, results, performance.now() - this.#startedAt, this.#canceled ? 'canceled' : null);
  }
}

function checkBroadcast(hosts: readonly string[], command: string, options: BroadcastOptions): void {
  const bad = hosts.find((h) => !AGENT_NAME.test(h));
  if (bad !== undefined) throw new UsageError(ErrorCode.BAD_TARGET, `"${bad}" is not an agent name (letters, digits, "_" and "-", at most 64).`);
  if (new Set(hosts).size !== hosts.length) throw new UsageError(ErrorCode.BAD_TARGET, 'An agent is named twice in the targets.');
  if (command === '' && !options.argv) throw new RequestError(ErrorCode.BAD_REQUEST, 'Nothing to run: give a command.');
  const t = options.timeoutMs;
  if (t !== undefined && (!Number.isInteger(t) || t < 1 || t > 24 * 3600 * 1000)) throw new RequestError(ErrorCode.BAD_REQUEST, `timeoutMs must be a whole number of milliseconds from 1 to 86400000, not ${t}.`);
  const m = options.maxBuffer;
  if (m !== undefined && (!Number.isInteger(m) || m < 0)) throw new RequestError(ErrorCode.BAD_REQUEST, `maxBuffer must be a whole number of bytes ≥ 0, not ${m}.`);
}

/**
 * Run `command` on the named agents with one signed broadcast; see `BroadcastRun`.
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for a name that is not an agent name or is repeated.
 * @throws {RequestError} `SW_ERR_BAD_REQUEST` for a bad option or nothing to run (as `runOn()`). Per-agent failures never throw: they are results.
 */
export function runBroadcast(agents: readonly string[], command: string, options: BroadcastOptions): BroadcastRun {
  return new BroadcastRun(agents, command, options);
}

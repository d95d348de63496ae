/**
 * `runOn(targets, command, options)`: one command on many hosts. Connections are opened
 * with a concurrency limit (`fanout`) and spread over time, reused per host, and every host
 * ends in exactly one `result` event — ok, failed, timed out, unreachable, refused key,
 * lost mid-run, canceled or skipped — followed by one `summary`. Nothing a single host does
 * (hang, vanish, flood output) can stop the run from ending: commands carry a server-side
 * timeout and the client drops a host that stays silent past it, and output is paused, not
 * buffered, while the consumer is slow.
 *
 *   for await (const event of runOn('@web', 'uptime', { timeoutMs: 10_000 })) …
 *   const summary = await runOn(['db[01-03]'], 'true').result();
 */
import type { Readable } from 'node:stream';
import type { Connection } from '../client/connection.js';
import type { RemoteProcess } from '../client/remote-process.js';
import { ConnectionError, ErrorCode, ProtocolError, RequestError, ShellwireError } from '../errors.js';
import type { FleetHost, Inventory } from './inventory.js';
import { formatTarget } from '../client/target.js';
import { isNatsUrl } from '../transport/nats-connect.js';
import { loadInventory } from './inventory.js';
import { resolveTargets } from './targets.js';
import { ConnectionPool, DEFAULT_CONNECT_RATE, StartSpreader, checkPoolOptions, type PoolOptions } from './pool.js';
import { checkCwd, checkEnv, checkTimeout } from '../client/spawn-options.js';
import { checkAbortSignal, checkBoolean, checkInteger, checkMaxBuffer, checkOptionsObject } from '../client/option-checks.js';
import { EventQueue, DEFAULT_QUEUE_HIGH_WATER_MARK } from './event-queue.js';
import { IterateOnce } from './iterate-once.js';
import { planBatches } from './batches.js';
import { characterBoundary } from './line-splitter.js';
import {
  classifyConnectError, isFailure, keepOutput, resultFromExit, summarize, type FleetEvent, type FleetSummary, type HostResult, type HostStatus,
} from './results.js';

export type { FleetEvent, FleetSummary, HostResult, HostStatus } from './results.js';

/** Hosts connected and running at once unless `fanout` says otherwise (clush's default). */
export const DEFAULT_FANOUT = 64;
/** Output kept per host and stream for `result.stdout`/`stderr`; the rest is counted, not kept. */
export const DEFAULT_MAX_OUTPUT = 1024 * 1024;
/** How long past `timeoutMs` a host may stay silent (the daemon reports its kill) before we drop it. */
export const TIMEOUT_GRACE_MS = 5_000;
/** After `cancel()`, how long a daemon has to confirm before its connection is dropped. */
export const CANCEL_GRACE_MS = 3_000;

export interface RunOnOptions extends PoolOptions {
  /** Hosts connecting or running at once. Default 64. */
  fanout?: number;
  /** Per-host command timeout in milliseconds: the daemon kills the command's process group. */
  timeoutMs?: number;
  /** Connection starts per second (a token bucket with `fanout` burst). Default 2,000; 0 = no limit. */
  connectRate?: number;
  /** Stop starting hosts after the first failure (running hosts finish). */
  failFast?: boolean;
  /** Stop starting hosts once this many failed (running hosts finish). */
  maxFailures?: number;
  /** Rolling batches of this many hosts: a batch starts when the previous one has finished. */
  batchSize?: number;
  /** Run the first host alone first; if it fails, nothing else runs. */
  canary?: boolean;
  /**
   * Bytes of output kept per host and stream in the result (0: keep none; default 1 MiB,
   * `DEFAULT_MAX_OUTPUT`). Unlike `exec`'s `maxBuffer`, more is not an error: the rest is
   * counted, not kept (output events still carry every byte).
   */
  maxBuffer?: number;
  /** @deprecated Use `maxBuffer` (the same bytes; `maxBuffer` wins when both are given). */
  maxOutput?: number;
  /** Emit `output` events (default true). Without them, only results carry output. */
  outputEvents?: boolean;
  /** Reuse these connections (and leave them open); default: a pool for this run only. */
  pool?: ConnectionPool;
  /** Resolve string targets against this inventory (default: `$SHELLWIRE_HOME/inventory.yaml`). */
  inventory?: Inventory;
  /** String targets that match no host run nothing instead of throwing `NoHostsMatchedError`. */
  allowEmpty?: boolean;
  /** Remote environment additions and working directory. */
  env?: Record<string, string>;
  cwd?: string;
  /** Aborting cancels the run, as `cancel()`. */
  signal?: AbortSignal;
  /** Output bytes queued for a slow consumer before hosts are paused. Default 4 MiB. */
  queueHighWaterMark?: number;
}

/**
 * One host's work when a fan-out does something other than run a command (put and get to
 * many hosts): it gets the host's pooled connection and a signal that aborts on `timeoutMs`
 * and on cancel. A rejection is that host's failure (`lost` for a connection error, else
 * `error`); a resolved `error` is a failure the task itself counted (some files failed).
 */
export type HostTask = (conn: Connection, host: FleetHost, context: { signal: AbortSignal }) => Promise<HostTaskOutcome>;

export interface HostTaskOutcome {
  /** Why the host did not succeed although the task ran to its end; null or absent: ok. */
  error?: { code: string; message: string } | null;
  /** What was copied, for the result (`HostResult.transfer`). */
  transfer?: NonNullable<HostResult['transfer']>;
}

interface RunningHost {
  host: FleetHost;
  phase: 'connecting' | 'running';
  startedAt: number;
  abort: AbortController;
  proc: RemoteProcess | null;
}

/**
 * A command refused at OPEN is not a lost connection: through a gateway, one that cannot
 * reach the host answers SW_ERR_CONNECT_FAILED (unreachable), a policy SW_ERR_DENIED (error).
 */
function refusedStatus(err: unknown): HostStatus | null {
  if (!(err instanceof RequestError)) return null;
  return err.code === ErrorCode.CONNECT_FAILED ? 'unreachable' : 'error';
}

/** A run in progress: iterate it for events, or await `result()`; iterated once (IterateOnce) (neither rejects: each host's failure is in its `HostResult`). */
export class FleetRun extends IterateOnce {
  readonly hosts: readonly FleetHost[];
  readonly command: string;
  #options: RunOnOptions;
  #task: HostTask | null;
  #pool: ConnectionPool;
  #ownPool: boolean;
  #spreader: StartSpreader;
  #queue: EventQueue<FleetEvent>;
  #paused = new Set<Readable>();
  #running = new Map<string, RunningHost>();
  #results = new Map<string, HostResult>();
  #failures = 0;
  #stopReason: FleetSummary['stoppedBy'] = null;
  #canceled = false;
  #started = false;
  #startedAt = 0;

  /** @throws {RequestError} `SW_ERR_BAD_REQUEST` for an invalid option (`checkRunOnOptions`). */
  constructor(hosts: readonly FleetHost[], command: string, options: RunOnOptions = {}, task: HostTask | null = null) {
    super('FleetRun', 'runOn()');
    checkRunOnOptions(command, options);
    this.hosts = hosts;
    this.command = command;
    this.#task = task;
    this.#options = options;
    this.#ownPool = options.pool === undefined;
    this.#pool = options.pool ?? new ConnectionPool(options);
    const fanout = this.#fanout;
    this.#spreader = new StartSpreader(options.connectRate ?? DEFAULT_CONNECT_RATE, fanout);
    this.#queue = new EventQueue(options.queueHighWaterMark ?? DEFAULT_QUEUE_HIGH_WATER_MARK, () => this.#queueOnDrain());
    // An 'abort' that already happened is never dispatched again: a run whose signal was
    // aborted before it began is canceled now, so no host starts.
    if (options.signal?.aborted) this.cancel();
    else options.signal?.addEventListener('abort', () => this.cancel(), { once: true });
  }

  get #fanout(): number {
    return Math.max(1, Math.floor(this.#options.fanout ?? DEFAULT_FANOUT));
  }

  /** The first iteration (or `result()`) starts the run (IterateOnce). */
  protected begin(): AsyncIterator<FleetEvent> {
    this.#start();
    return this.#queue.drain();
  }

  /** Hosts connecting or running now, longest-running first. */
  running(): Array<{ host: string; phase: 'connecting' | 'running'; elapsedMs: number }> {
    const now = performance.now();
    return [...this.#running.values()]
      .map((r) => ({ host: r.host.name, phase: r.phase, elapsedMs: now - r.startedAt }))
      .sort((a, b) => b.elapsedMs - a.elapsedMs);
  }

  /** Progress for a status line. */
  counts(): { total: number; ok: number; failed: number; running: number; queued: number } {
    let ok = 0;
    let failed = 0;
    for (const r of this.#results.values()) {
      if (r.status === 'ok') ok++;
      else failed++;
    }
    const running = this.#running.size;
    return { total: this.hosts.length, ok, failed, running, queued: this.hosts.length - ok - failed - running };
  }

  /** Send a signal to every running command's process group (SIGINT is Ctrl-C). */
  signalAll(signal: NodeJS.Signals = 'SIGINT'): void {
    for (const r of this.#running.values()) r.proc?.kill(signal);
  }

  /**
   * Cancel: queued hosts do not start, connecting ones are aborted, running commands are
   * closed (the daemon kills their groups: SIGTERM, then SIGKILL). A daemon that does not
   * confirm within `graceMs` (default `CANCEL_GRACE_MS`) has its connection dropped.
   */
  cancel(graceMs = CANCEL_GRACE_MS): void {
    if (this.#canceled) return;
    this.#canceled = true;
    this.#stopReason ??= 'canceled';
    for (const r of this.#running.values()) {
      if (r.proc) r.proc.close();
      else r.abort.abort();
    }
    const timer = setTimeout(() => {
      for (const r of this.#running.values()) this.#pool.destroy(r.host);
    }, graceMs);
    timer.unref();
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = performance.now();
    this.#main().catch((err: unknown) => {
      // A bug here must still end the iteration rather than hang the caller.
      this.#queue.push({ type: 'summary', summary: this.#makeSummary() });
      this.#queue.end();
      this.settle(this.#makeSummary());
      process.emitWarning(`shellwire fleet: internal error: ${(err as Error).stack ?? err}`);
    });
  }

  async #main(): Promise<void> {
    const batches = planBatches(this.hosts, this.#options.batchSize, this.#options.canary);
    for (let b = 0; b < batches.length; b++) {
      const batch = batches[b]!;
      if (this.#stopReason === null && batches.length > 1) this.#queue.push({ type: 'batch', batch: b, hosts: batch.map((h) => h.name) });
      await this.#runBatch(batch, b);
      if (b === 0 && this.#options.canary && this.#failures > 0) this.#stopReason ??= 'canary';
    }
    if (this.#ownPool) await this.#pool.close();
    const summary = this.#makeSummary();
    this.#queue.push({ type: 'summary', summary });
    this.#queue.end();
    this.settle(summary);
  }

  async #runBatch(batch: readonly FleetHost[], b: number): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const host = batch[next++]!;
        if (this.#stopReason !== null) this.#record(this.#notRun(host, b));
        else await this.#runHost(host, b);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#fanout, batch.length) }, worker));
  }

  async #runHost(host: FleetHost, batch: number): Promise<void> {
    const state: RunningHost = { host, phase: 'connecting', startedAt: performance.now(), abort: new AbortController(), proc: null };
    this.#running.set(host.name, state);
    this.#queue.push({ type: 'start', host: host.name });
    let result: HostResult;
    try {
      if (!this.#pool.has(host)) await this.#spreader.wait();
      if (this.#canceled) throw canceledError(host);
      let conn: Connection | null = null;
      let connectError: unknown = null;
      try {
        conn = await this.#pool.get(host, state.abort.signal);
      } catch (err) {
        connectError = err;
      }
      if (this.#canceled) throw canceledError(host);
      if (conn === null) result = this.#base(host, batch, state, classifyConnectError(connectError), connectError);
      else {
        state.phase = 'running';
        result = this.#task ? await this.#runTask(this.#task, conn, host, batch, state) : await this.#runCommand(conn, host, batch, state);
      }
    } catch (err) {
      const status: HostStatus = this.#canceled ? 'canceled' : err instanceof ConnectionError || err instanceof ProtocolError ? 'lost' : 'error';
      result = this.#base(host, batch, state, status, err);
    } finally {
      this.#running.delete(host.name);
    }
    this.#record(result);
  }

  async #runCommand(conn: Connection, host: FleetHost, batch: number, state: RunningHost): Promise<HostResult> {
    const { timeoutMs, env, cwd } = this.#options;
    const proc = conn.spawn(this.command, {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(env ? { env } : {}),
      ...(cwd !== undefined ? { cwd } : {}),
    });
    state.proc = proc;
    proc.stdin.end();
    const maxOutput = this.#options.maxBuffer ?? this.#options.maxOutput ?? DEFAULT_MAX_OUTPUT;
    const stdout = new OutputBuffer(maxOutput);
    const stderr = new OutputBuffer(maxOutput);
    let guardFired = false;
    // The daemon enforces the timeout; this guard is for a daemon we can no longer hear.
    const guard = timeoutMs === undefined ? null : setTimeout(() => {
      guardFired = true;
      this.#pool.destroy(host);
    }, timeoutMs + TIMEOUT_GRACE_MS);
    try {
      const [exit] = await Promise.all([
        proc.exited,
        this.#consume(proc.stdout, host.name, 'stdout', stdout),
        this.#consume(proc.stderr, host.name, 'stderr', stderr),
      ]);
      const result = this.#base(host, batch, state, 'ok', null);
      return resultFromExit(result, exit, stdout, stderr, timeoutMs);
    } catch (err) {
      const result = this.#base(host, batch, state, this.#canceled ? 'canceled' : guardFired ? 'timed-out' : refusedStatus(err) ?? 'lost', err);
      if (guardFired && !this.#canceled) {
        result.error = {
          code: ErrorCode.COMMAND_TIMED_OUT,
          message: `${host.name} did not report within ${Math.round((timeoutMs! + TIMEOUT_GRACE_MS) / 1000)} s (timeout ${timeoutMs! / 1000} s); dropped its connection — is the host or network down?`,
        };
      }
      keepOutput(result, stdout, stderr);
      return result;
    } finally {
      if (guard) clearTimeout(guard);
    }
  }

  /** `#runCommand` for a `HostTask`: the same timeout (abort, then drop a silent host) and cancel. */
  async #runTask(task: HostTask, conn: Connection, host: FleetHost, batch: number, state: RunningHost): Promise<HostResult> {
    const { timeoutMs } = this.#options;
    let timedOut = false;
    let guard: NodeJS.Timeout | null = null;
    const timer = timeoutMs === undefined ? null : setTimeout(() => {
      timedOut = true;
      state.abort.abort();
      // The task's channels close on the abort; a host that cannot even confirm that is dropped.
      guard = setTimeout(() => this.#pool.destroy(host), TIMEOUT_GRACE_MS);
    }, timeoutMs);
    try {
      // A task that resolves finished its work (an abort makes it reject), even if the timer fired meanwhile.
      const outcome = await task(conn, host, { signal: state.abort.signal });
      const result = this.#base(host, batch, state, outcome.error ? 'error' : 'ok', null);
      if (outcome.error) result.error = outcome.error;
      if (outcome.transfer) result.transfer = outcome.transfer;
      return result;
    } catch (err) {
      const status: HostStatus = this.#canceled ? 'canceled' : timedOut ? 'timed-out' : err instanceof ConnectionError || err instanceof ProtocolError ? 'lost' : 'error';
      const result = this.#base(host, batch, state, status, err);
      if (status === 'timed-out') result.error = { code: ErrorCode.COMMAND_TIMED_OUT, message: `timed out after ${timeoutMs! / 1000} s; the transfer was stopped (partial files are kept for resume)` };
      return result;
    } finally {
      if (timer) clearTimeout(timer);
      if (guard) clearTimeout(guard);
    }
  }

  #consume(stream: Readable, host: string, name: 'stdout' | 'stderr', buffer: OutputBuffer): Promise<void> {
    const events = this.#options.outputEvents !== false;
    return new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        buffer.add(chunk);
        if (!events) return;
        this.#queue.push({ type: 'output', host, stream: name, data: chunk }, chunk.length);
        if (this.#queue.congested) {
          stream.pause();
          this.#paused.add(stream);
        }
      });
      stream.on('error', () => {}); // the reason arrives through `exited`
      stream.on('close', () => {
        this.#paused.delete(stream);
        resolve();
      });
    });
  }

  #queueOnDrain(): void {
    const paused = [...this.#paused];
    this.#paused.clear();
    for (const stream of paused) stream.resume();
  }

  #record(result: HostResult): void {
    this.#results.set(result.host, result);
    if (isFailure(result.status)) {
      this.#failures++;
      const max = this.#options.failFast ? 1 : this.#options.maxFailures;
      if (max !== undefined && this.#failures >= max && this.#stopReason === null) this.#stopReason = this.#options.failFast ? 'fail-fast' : 'max-failures';
    }
    this.#queue.push({ type: 'result', host: result.host, result });
  }

  #base(host: FleetHost, batch: number, state: RunningHost, status: HostStatus, err: unknown): HostResult {
    return {
      host: host.name,
      address: resultAddress(host),
      status,
      exitCode: null,
      signal: null,
      durationMs: Math.round(performance.now() - state.startedAt),
      stdout: '',
      stderr: '',
      stdoutBytes: EMPTY,
      stderrBytes: EMPTY,
      truncated: false,
      error: err === null || err === undefined ? null : errorInfo(err),
      batch,
    };
  }

  #notRun(host: FleetHost, batch: number): HostResult {
    const why: Record<NonNullable<FleetSummary['stoppedBy']>, string> = {
      canceled: 'not run: the run was canceled',
      'fail-fast': 'not run: the run stopped at the first failure (failFast)',
      'max-failures': `not run: ${this.#options.maxFailures} hosts had failed, the limit set by maxFailures`,
      canary: 'not run: the canary host failed',
    };
    const status: HostStatus = this.#canceled ? 'canceled' : 'skipped';
    return {
      host: host.name, address: resultAddress(host), status, exitCode: null, signal: null, durationMs: 0,
      stdout: '', stderr: '', stdoutBytes: EMPTY, stderrBytes: EMPTY, truncated: false, batch,
      error: { code: ErrorCode.COMMAND_CANCELED, message: why[this.#stopReason ?? 'canceled'] },
    };
  }

  #makeSummary(): FleetSummary {
    const results = this.hosts.map((h) => this.#results.get(h.name)).filter((r): r is HostResult => r !== undefined);
    return summarize(this.command, this.hosts.length, results, performance.now() - this.#startedAt, this.#stopReason);
  }
}

/**
 * Run `command` on every target; see `FleetRun`. String targets are target expressions.
 *
 * @throws {NoHostsMatchedError} (`SW_ERR_NO_HOSTS_MATCHED`, a `UsageError`) string targets that match no host, unless `allowEmpty`.
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for a malformed target expression; `InventoryError`
 *   when the inventory named by string targets cannot be read. Per-host failures (connect,
 *   host key, auth, command) never throw: they are each host's `HostResult`.
 */
export function runOn(targets: string | readonly string[] | readonly FleetHost[], command: string, options: RunOnOptions = {}): FleetRun {
  checkRunOnOptions(command, options);
  let hosts: readonly FleetHost[];
  if (typeof targets === 'string' || (targets.length > 0 && typeof targets[0] === 'string')) {
    const inventory = options.inventory ?? loadInventory(undefined, options.connect?.env ?? process.env);
    hosts = resolveTargets(targets as string | string[], inventory, { allowEmpty: options.allowEmpty === true });
  } else {
    hosts = targets as readonly FleetHost[];
  }
  return new FleetRun(hosts, command, options);
}

/**
 * Run `task` on every host with run's fan-out: `fanout`, `timeoutMs` (the task's signal
 * aborts), `connectRate`, batches, fail-fast, cancel, the same events and summary (`label`
 * stands where a command would, e.g. in the summary). Per-host failures never throw.
 *
 * @throws {RequestError} `SW_ERR_BAD_REQUEST` for an invalid option (`checkRunOnOptions`).
 */
export function fanOut(hosts: readonly FleetHost[], label: string, task: HostTask, options: RunOnOptions = {}): FleetRun {
  return new FleetRun(hosts, label, options, task);
}

const EMPTY = Buffer.alloc(0);

/**
 * `runOn`'s options, checked before any host is resolved or dialled: a `fanout` of "8" or a
 * `batchSize` of -1 would otherwise be read as something else in silence, and a bad connect
 * option would fail every host the same way. Throws `RequestError` `SW_ERR_BAD_REQUEST`.
 */
export function checkRunOnOptions(command: unknown, options: RunOnOptions): void {
  if (typeof command !== 'string') throw new RequestError(ErrorCode.BAD_REQUEST, `runOn() runs a command string (shell text), got ${command === null ? 'null' : typeof command}.`);
  checkOptionsObject(options, 'runOn()');
  // A connect() option at the top level would be ignored and every host would fail to log in.
  for (const name of ['token', 'tokenFile', 'identity', 'password', 'user', 'home', 'hostKeyPolicy', 'fingerprint', 'keepaliveMs', 'window', 'maxPacket'] as const) {
    if (name in options) throw new RequestError(ErrorCode.BAD_REQUEST, `The ${name} option of runOn() goes in its connect options: runOn(targets, command, { connect: { ${name}: … } }).`);
  }
  const whole = { min: 1, max: Number.MAX_SAFE_INTEGER };
  checkInteger(options.fanout, 'fanout', whole);
  checkInteger(options.batchSize, 'batchSize', whole);
  checkInteger(options.maxFailures, 'maxFailures', whole);
  checkInteger(options.queueHighWaterMark, 'queueHighWaterMark', { ...whole, unit: 'bytes' });
  checkTimeout(options.timeoutMs);
  const rate: unknown = options.connectRate;
  if (rate !== undefined && !(typeof rate === 'number' && rate >= 0 && !Number.isNaN(rate))) {
    throw new RequestError(ErrorCode.BAD_REQUEST, `The connectRate option must be connection starts per second, a number of at least 0 (0 or Infinity: no limit), got ${JSON.stringify(rate) ?? String(rate)}.`);
  }
  checkMaxBuffer(options.maxBuffer);
  checkMaxBuffer(options.maxOutput, 'maxOutput');
  for (const name of ['failFast', 'canary', 'outputEvents', 'allowEmpty'] as const) checkBoolean(options[name], name);
  checkEnv(options.env);
  checkCwd(options.cwd);
  checkAbortSignal(options.signal);
  if (options.pool !== undefined && !(options.pool instanceof ConnectionPool)) throw new RequestError(ErrorCode.BAD_REQUEST, 'The pool option must be a ConnectionPool (new ConnectionPool(options)).');
  checkPoolOptions(options);
}

/**
 * Keeps the first `max` bytes of a stream, notes that there were more. Where the cut falls
 * inside a UTF-8 character, the kept prefix ends before it, so UTF-8 output stays valid
 * (and `--json` keeps it as text) however it was truncated.
 */
export class OutputBuffer {
  #chunks: Buffer[] = [];
  #size = 0;
  #max: number;
  #full = false;
  truncated = false;

  constructor(max: number) {
    this.#max = max;
  }

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#full) {
      this.truncated = true;
      return;
    }
    const room = this.#max - this.#size;
    if (chunk.length <= room) {
      this.#chunks.push(chunk);
      this.#size += chunk.length;
      return;
    }
    // Once per stream: the kept bytes and a few past the cut, to see whether it splits a character.
    this.truncated = true;
    this.#full = true;
    const around = Buffer.concat([...this.#chunks, chunk.subarray(0, room + 3)]);
    const kept = around.subarray(0, characterBoundary(around, this.#max));
    this.#chunks = [kept];
    this.#size = kept.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.#chunks, this.#size);
  }
}

function canceledError(host: FleetHost): ShellwireError {
  return new ShellwireError(ErrorCode.COMMAND_CANCELED, `${host.name}: canceled before the command started.`, { host: host.name });
}

function errorInfo(err: unknown): { code: string; message: string } {
  if (err instanceof ShellwireError) return { code: err.code, message: err.message.split('\n').filter((l) => !l.startsWith('@@@') && !l.startsWith('@ ')).join(' ') };
  return { code: ErrorCode.INTERNAL, message: err instanceof Error ? err.message : String(err) };
}

/** A result's `address`: `HOST:PORT`, or `nats:NAME` for an agent through NATS (as a broadcast's results say). */
function resultAddress(host: FleetHost): string {
  return host.via !== undefined && isNatsUrl(host.via) ? `nats:${host.name}` : formatTarget({ host: host.address, port: host.port });
}

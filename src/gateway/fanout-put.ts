/**
 * Put one file to many hosts through the gateway (docs/gateway.md "Files to many hosts"): the
 * operator's file crosses their link once, and the gateway pushes it to every host.
 *
 *   operator: OPEN{kind:"file", op:"put", hosts:[NAME…], path, name?, size, mode, mtimeMs}
 *             → STDIN* → EOF{sha256, size}
 *   gateway:  OPEN_OK{window, path, offset: 0} → WINDOW* → STDOUT one JSON document
 *             {size, sha256, hosts:[{host, ok, bytes, path?, sha256? | error:{code, message}}]}
 *             → EXIT{exitCode 0 | 1, …}
 *
 * With `progress: true` in the OPEN (a client that reads them), the document is preceded by
 * live NDJSON records: `{type:"progress", host, bytes, total}` (at most one per host every
 * 100 ms, plus 0 at the start and `total` at a good end) and `{type:"result", host, ok, …}` as
 * soon as THAT host is done. They wait for the operator's credit like the document; a
 * progress record still waiting is replaced by the host's newer one, so what waits is bounded
 * by two records per host.
 *
 * Every host is checked against the operator's `hosts` policy first; a refused one is in the
 * answer with the single-host refusal (and a `denied` audit row), never dropped in silence;
 * none permitted refuses the OPEN. The bytes go to a spool file in the gateway's state dir
 * (0600, bounded by `maxSpoolBytes`, removed afterwards whatever happens), hashed as they
 * arrive and compared with the operator's SHA-256; then each permitted host gets a normal
 * put channel on its pooled connection, on the operator's behalf, at most `parallel` at once:
 * the host verifies the SHA-256 and renames into place exactly as for one host. One audit
 * row per host copy (operator, host, as, path, bytes, sha256, outcome).
 */
import { constants } from 'node:fs';
import { mkdir, open, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ChannelState, type Channel, type ChannelHooks, type CloseReason } from '../channel/channel-state.js';
import { FileSink, FILE_WINDOW } from '../channel/file-stream.js';
import { InlineHash } from '../channel/file-hash.js';
import { HOST_PROGRESS_INTERVAL_MS, decodePutEof, fileExitPayload, type HostCopy, type PutRequest } from '../protocol/file-messages.js';
import type { FileOpen, OpenRequest } from '../protocol/messages.js';
import { ErrorCode, errnoOf, ShellwireError } from '../errors.js';
import { rawChannel, transportOf, type Connection } from '../client/connection.js';
import type { ChannelOpener } from '../client/channel-host.js';
import { putAs } from '../client/files/put.js';
import type { ChannelHost, Refusal, ServerChannel } from '../server/channel-host.js';
import type { FleetHost, Inventory } from '../fleet/inventory.js';
import { checkHost } from './gateway-policy.js';
import type { HostPool } from './host-pool.js';

/** Largest file the gateway spools unless `--max-spool` says otherwise. */
export const DEFAULT_MAX_SPOOL_BYTES = 16 * 1024 * 1024 * 1024;
/** Hosts pushed to at once unless configured otherwise. */
export const DEFAULT_PUSH_PARALLEL = 16;

export interface FanoutPutContext {
  pool: HostPool;
  inventory(): Inventory;
  /** The gateway's state dir: spool files go to `<stateDir>/spool/`. */
  stateDir: string;
  maxSpoolBytes?: number;
  parallel?: number;
  onBehalfOf?: boolean;
}

/** Spool files of uploads in progress (a test checks they are gone). */
export function spoolDir(stateDir: string): string {
  return join(stateDir, 'spool');
}

export class FanoutPut implements ServerChannel {
  readonly hooks: ChannelHooks;
  #host: ChannelHost;
  #request: FileOpen;
  #put: PutRequest;
  #ctx: FanoutPutContext;
  #channel: Channel | null = null;
  #targets: { host: FleetHost; as: string }[] = [];
  #answer: HostCopy[] = [];
  #spool = '';
  #handle: FileHandle | null = null;
  #sink: FileSink | null = null;
  #hash = new InlineHash();
  #received = 0;
  /** The upload ended (answered, failed or abandoned): nothing more is taken. */
  #done = false;
  #pushing = false;
  #abort = new AbortController();
  /** The answer waiting for the operator's credit, then EXIT. */
  #pending: { bytes: Buffer; exit: Record<string, unknown> } | null = null;
  /** Live records (`progress: true`) waiting for the operator's credit, in order, before the answer. */
  #outbox: OutRecord[] = [];
  /** The part of a record the window did not take yet. */
  #partial: Buffer | null = null;

  constructor(host: ChannelHost, request: OpenRequest, ctx: FanoutPutContext) {
    this.#host = host;
    this.#request = request as FileOpen;
    this.#put = this.#request.params as PutRequest;
    this.#ctx = ctx;
    this.hooks = {
      onData: (_stream, bytes) => this.#onData(bytes),
      onEof: (payload) => this.#onEof(payload),
      onWindow: () => this.#flush(),
      onResize: () => {},
      onClose: (reason) => this.#onClose(reason),
    };
  }

  get busy(): boolean {
    return !this.#done || this.#pending !== null || this.#outbox.length > 0 || this.#partial !== null;
  }

  start(channel: Channel): Refusal | null {
    this.#channel = channel;
    const request = this.#request;
    if (request.kind !== 'file' || this.#put.op !== 'put') return { code: ErrorCode.BAD_REQUEST, message: `"hosts" goes with a file put only, not a ${request.kind} ${String((request.params as { op?: unknown }).op ?? '')} channel; name one host with "host".` };
    if (request.host !== undefined) return { code: ErrorCode.BAD_REQUEST, message: 'An OPEN names either "host" (one host) or "hosts" (a put to many), not both.' };
    const max = this.#ctx.maxSpoolBytes ?? DEFAULT_MAX_SPOOL_BYTES;
    if (this.#put.size > max) {
      return { code: ErrorCode.BAD_REQUEST, message: `The file is ${this.#put.size} bytes; this gateway spools at most ${max} bytes for a put to many hosts (shellwire gateway --max-spool). Put it to each host with its own copy, or ask the gateway's administrator.`, extra: { errno: 'EFBIG' } };
    }
    const user = this.#host.user;
    const inventory = this.#ctx.inventory();
    const denied: string[] = [];
    for (const name of request.hosts!) {
      const decision = checkHost(user, name, inventory);
      if (decision.allowed) {
        this.#targets.push({ host: decision.host, as: decision.as });
        this.#answer.push({ host: name, ok: false, bytes: 0 });
        continue;
      }
      const message = `Denied: ${decision.reason}.`;
      denied.push(message);
      this.#answer.push({ host: name, ok: false, bytes: 0, error: { code: ErrorCode.DENIED, message } });
      this.#host.log.warn({ client: this.#host.remote, user: user.name, host: name, kind: 'file' }, 'gateway: host not permitted');
      this.#host.audit.record({ kind: 'denied', command: null, detail: { channelKind: 'file', op: 'put', path: this.#put.path, reason: decision.reason, host: name, outcome: { code: ErrorCode.DENIED, message } } });
    }
    if (this.#targets.length === 0) {
      this.#done = true;
      return { code: ErrorCode.DENIED, message: denied.length === 1 ? denied[0]! : `No host of this put is permitted: ${denied.join(' ')}` };
    }
    this.#openSpool().then(
      () => {
        if (channel.state !== ChannelState.OPENING || this.#done) return void this.#cleanup();
        channel.openOk({ window: FILE_WINDOW, maxPacket: this.#host.limits.maxPayload, path: this.#put.path, offset: 0 } as never);
        // The refused hosts are done already: their results go first.
        for (const line of this.#answer) if (line.error) this.#record({ kind: 'result', host: line.host, copy: line });
        this.#flush();
        if (this.#put.size === 0) return; // EOF alone
      },
      (err: Error & { errno?: string }) => {
        void this.#cleanup();
        if (channel.state !== ChannelState.OPENING) return;
        this.#done = true;
        channel.openFail(ErrorCode.BAD_REQUEST, err.message, err.errno ? { errno: err.errno } : {});
      },
    );
    return null;
  }

  kill(): void {
    this.#done = true;
    this.#abort.abort();
    void this.#cleanup();
  }

  /** A new spool file of our own (0600, O_EXCL), if the file fits the spool's free space. */
  async #openSpool(): Promise<void> {
    const dir = spoolDir(this.#ctx.stateDir);
    await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw spoolError(`The gateway cannot create its spool directory ${dir}: ${(err as Error).message}`, err);
    });
    const space = await statfs(dir).catch(() => null);
    const available = space ? Number(space.bavail) * Number(space.bsize) : Infinity;
    if (this.#put.size > available) {
      throw Object.assign(new Error(`The gateway has ${available} bytes free in its spool (${dir}); the file is ${this.#put.size} bytes. Nothing was sent to any host; ask the gateway's administrator to free space.`), { errno: 'ENOSPC' });
    }
    this.#spool = join(dir, `put-${randomBytes(8).toString('hex')}`);
    this.#handle = await open(this.#spool, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600).catch((err: unknown) => {
      throw spoolError(`The gateway cannot create a spool file in ${dir}: ${(err as Error).message}`, err);
    });
    this.#sink = new FileSink(this.#handle.fd, 0, (bytes) => this.#channel?.consumed(bytes), (err) => this.#sinkOnError(err));
  }

  #onData(bytes: Buffer): void {
    if (this.#done || !this.#sink) return;
    this.#received += bytes.length;
    if (this.#received > this.#put.size) return void this.#fail(ErrorCode.BAD_REQUEST, `The client sent more than the ${this.#put.size} bytes it announced; nothing was sent to any host.`);
    this.#hash.update(bytes);
    this.#sink.write(bytes);
  }

  #onEof(payload: Buffer): void {
    const eof = decodePutEof(payload);
    if (this.#done || this.#pushing) return;
    this.#pushing = true;
    void this.#verifyAndPush(eof.sha256, eof.size);
  }

  #sinkOnError(err: Error): void {
    const errno = errnoOf(err);
    const full = errno === 'ENOSPC' || errno === 'EDQUOT';
    const message = full
      ? `The gateway's spool (${spoolDir(this.#ctx.stateDir)}) is full (${errno}); nothing was sent to any host. Ask the gateway's administrator to free space, or lower --max-spool.`
      : `The gateway cannot write its spool file ${this.#spool}: ${err.message}; nothing was sent to any host.`;
    void this.#fail(ErrorCode.LOCAL_IO, message, errno);
  }

  async #verifyAndPush(clientSha: string, clientSize: number): Promise<void> {
    await this.#sink!.flushed();
    if (this.#done) return;
    const size = this.#sink!.position;
    if (size !== this.#put.size || clientSize !== this.#put.size) {
      return this.#fail(ErrorCode.BAD_REQUEST, `The upload ended after ${size} of ${this.#put.size} bytes; nothing was sent to any host. Run it again.`);
    }
    const sha256 = await this.#hash.digest();
    if (sha256 !== clientSha) {
      return this.#fail(ErrorCode.INTEGRITY, `SHA-256 mismatch at the gateway: the client sent ${clientSha}, the gateway received ${sha256}. Nothing was sent to any host; run the transfer again.`, 'EINTEGRITY');
    }
    try {
      await this.#handle!.sync();
      await this.#handle!.close();
      this.#handle = null;
    } catch (err) {
      return this.#fail(ErrorCode.LOCAL_IO, `The gateway cannot write its spool file ${this.#spool}: ${(err as Error).message}; nothing was sent to any host.`, errnoOf(err));
    }
    await this.#pushAll(sha256);
    if (this.#done) return; // the operator went away meanwhile (its close removed the spool)
    this.#done = true;
    await this.#cleanup();
    const failed = this.#answer.filter((h) => !h.ok);
    const exit = failed.length === 0
      ? fileExitPayload({ ok: true, size, sha256 })
      : fileExitPayload({ ok: false, size, sha256, error: { code: failed[0]!.error?.code ?? ErrorCode.INTERNAL, message: `${failed.length} of ${this.#answer.length} hosts failed: ${failed.map((h) => h.host).join(', ')}.` } });
    this.#pending = { bytes: Buffer.from(JSON.stringify({ size, sha256, hosts: this.#answer }) + '\n'), exit: exit as unknown as Record<string, unknown> };
    this.#flush();
  }

  /** Every permitted host, at most `parallel` at once; each one's line in the answer and its audit row. */
  async #pushAll(sha256: string): Promise<void> {
    const queue = [...this.#targets];
    const parallel = Math.max(1, this.#ctx.parallel ?? DEFAULT_PUSH_PARALLEL);
    const worker = async () => {
      for (let t = queue.shift(); t && !this.#done; t = queue.shift()) {
        const line = this.#answer.find((h) => h.host === t!.host.name)!;
        this.#progress(line.host, 0, true);
        Object.assign(line, await this.#pushOne(t.host, t.as, sha256));
        if (line.ok) this.#progress(line.host, line.bytes, true);
        this.#record({ kind: 'result', host: line.host, copy: line });
        this.#flush();
        this.#host.audit.record({
          kind: 'file', osUser: t.as,
          detail: { op: 'put', fanout: true, host: t.host.name, as: t.as, path: line.path ?? this.#put.path, bytes: line.bytes, sha256: line.sha256 ?? null, outcome: line.ok ? 'ok' : line.error },
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, worker));
  }

  async #pushOne(host: FleetHost, as: string, sha256: string): Promise<Omit<HostCopy, 'host'>> {
    // This host's copy (reaching it included) stops with the whole put, or at the operator's
    // per-host timeout; the other hosts go on.
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timeoutMs = this.#put.timeoutMs;
    const timer = timeoutMs === undefined ? null : setTimeout(() => {
      timedOut = true;
      stop.abort();
    }, timeoutMs);
    const timedOutLine = () => ({ ok: false, bytes: 0, error: { code: ErrorCode.COMMAND_TIMED_OUT, message: `${host.name}: timed out after ${timeoutMs! / 1000} s; the copy was stopped (a partial file is kept)` } });
    try {
      let conn: Connection;
      try {
        conn = await Promise.race([
          this.#ctx.pool.get(host),
          new Promise<never>((_, reject) => stop.signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true })),
        ]);
      } catch (err) {
        if (timedOut) return timedOutLine();
        const code = (err as ShellwireError).code ?? 'error';
        return { ok: false, bytes: 0, error: { code: ErrorCode.CONNECT_FAILED, message: `The gateway cannot reach host ${host.name} (${code}); try again later, or ask the gateway's administrator.` } };
      }
      const behalf = this.#ctx.onBehalfOf === false ? {} : { onBehalfOf: { user: as, operator: this.#host.user.name } };
      // The host's own put channel, on the operator's behalf (as a relayed one would be).
      const opener: ChannelOpener = {
        transport: conn[transportOf](),
        hostLabel: host.name,
        server: conn.server,
        openChannel: (message, hooks) => conn[rawChannel]({ ...message, ...behalf }, hooks),
      };
      try {
        const put = this.#put;
        const result = await putAs(opener, this.#spool, put.path, { mode: put.mode, mtimeMs: put.mtimeMs, ...(put.name !== undefined ? { name: put.name } : {}) }, {
          signal: stop.signal,
          ...(this.#put.progress ? { onProgress: (p: { bytes: number }) => this.#progress(host.name, p.bytes, false) } : {}),
        });
        if (result.sha256 !== sha256) {
          return { ok: false, bytes: result.size, path: result.remote, error: { code: ErrorCode.INTEGRITY, message: `${host.name} reports SHA-256 ${result.sha256}, the upload was ${sha256}.` } };
        }
        return { ok: true, bytes: result.size, path: result.remote, sha256: result.sha256 };
      } catch (err) {
        if (timedOut) return timedOutLine();
        const e = err as ShellwireError;
        // The host's message names itself already ("web03: …"); a lost connection does not.
        const message = e.message.startsWith(`${host.name}`) ? e.message : `${host.name}: ${e.message}`;
        return { ok: false, bytes: 0, error: { code: e.code ?? ErrorCode.INTERNAL, message } };
      }
    } finally {
      if (timer) clearTimeout(timer);
      this.#abort.signal.removeEventListener('abort', onAbort);
    }
  }

  /** A live record for the operator, when it asked for them (`progress: true`). */
  #record(record: OutRecord): void {
    if (!this.#put.progress || this.#done) return;
    if (record.kind === 'progress') {
      // The host's older progress still waiting is replaced: the operator needs the latest.
      const waiting = this.#outbox.find((r): r is Extract<OutRecord, { kind: 'progress' }> => r.kind === 'progress' && r.host === record.host);
      if (waiting) return void (waiting.bytes = record.bytes);
    }
    this.#outbox.push(record);
  }

  #lastProgress = new Map<string, number>();

  /** `host` has been sent `bytes`: a record at most every HOST_PROGRESS_INTERVAL_MS per host, unless `force`. */
  #progress(host: string, bytes: number, force: boolean): void {
    if (!this.#put.progress) return;
    const now = performance.now();
    if (!force && now - (this.#lastProgress.get(host) ?? -Infinity) < HOST_PROGRESS_INTERVAL_MS) return;
    this.#lastProgress.set(host, now);
    this.#record({ kind: 'progress', host, bytes });
    this.#flush();
  }

  /** The live records, then the answer, within the operator's window; then EXIT. */
  #flush(): void {
    const channel = this.#channel;
    if (!channel || channel.state !== ChannelState.OPEN) return;
    for (;;) {
      if (!this.#partial) {
        const next = this.#outbox.shift();
        if (!next) break;
        this.#partial = Buffer.from(JSON.stringify(next.kind === 'progress'
          ? { type: 'progress', host: next.host, bytes: next.bytes, total: this.#put.size }
          : { type: 'result', ...next.copy }) + '\n');
      }
      const sent = channel.write('stdout', this.#partial);
      this.#partial = sent < this.#partial.length ? this.#partial.subarray(sent) : null;
      if (this.#partial) return;
    }
    const pending = this.#pending;
    if (!pending) return;
    const sent = channel.write('stdout', pending.bytes);
    pending.bytes = pending.bytes.subarray(sent);
    if (pending.bytes.length > 0) return;
    this.#pending = null;
    channel.exit(pending.exit as never);
  }

  /** The whole upload failed before any host got it: EXIT with the error (the OPEN was answered). */
  async #fail(code: string, message: string, errno?: string): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#abort.abort();
    // Records still waiting (refused hosts) go unsent: the put failed as a whole.
    this.#outbox = [];
    await this.#cleanup();
    this.#host.log.warn({ client: this.#host.remote, user: this.#host.user.name, path: this.#put.path, code, err: message }, 'gateway: put to many hosts failed');
    this.#host.audit.record({ kind: 'file', detail: { op: 'put', fanout: true, hosts: this.#targets.map((t) => t.host.name), path: this.#put.path, outcome: { code, message } } });
    const channel = this.#channel;
    if (channel?.state === ChannelState.OPEN) channel.exit(fileExitPayload({ ok: false, error: { code, message }, ...(errno ? { errno } : {}) }) as never);
  }

  #onClose(_reason: CloseReason): void {
    // The operator gave up or went away: stop pushing (the hosts keep their partial files).
    this.#pending = null;
    this.#outbox = [];
    this.#partial = null;
    if (!this.#done) {
      this.#done = true;
      this.#abort.abort();
    }
    void this.#cleanup();
  }

  /** The spool file goes, whatever happened. */
  async #cleanup(): Promise<void> {
    await this.#sink?.stop();
    this.#sink = null;
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close().catch(() => {});
    // Pushes open it by name: it stays while they run, unless the upload ended (done).
    if (this.#spool !== '' && (!this.#pushing || this.#done)) await unlink(this.#spool).catch(() => {});
  }
}

/** A live record waiting to be sent (rendered when it goes, so a progress is the latest). */
type OutRecord = { kind: 'progress'; host: string; bytes: number } | { kind: 'result'; host: string; copy: HostCopy };

function spoolError(message: string, err: unknown): Error & { errno?: string } {
  const errno = errnoOf(err);
  return Object.assign(new Error(message), errno ? { errno } : {});
}

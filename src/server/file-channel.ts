/**
 * Server side of a "file" channel: one file operation per channel, on the frames and
 * windows of exec channels (wire layout in src/protocol/file-messages.ts).
 *
 *   client: OPEN{kind:"file", op, path, …} → (STDIN* → EOF{sha256,size})? → WINDOW* → CLOSE
 *   server: OPEN_OK{path, …} | OPEN_FAIL{code, message, errno?}
 *           then (STDOUT | WINDOW)* → EXIT{exitCode, …result | error} → CLOSE
 *
 * Opening is asynchronous (paths are resolved, a partial file may be hashed), so `start()`
 * returns at once and OPEN_OK or OPEN_FAIL follows; until then the Channel (channel/
 * channel-state.ts) refuses every frame but CLOSE. Relative paths start at the user's
 * home; every path must resolve inside the user's `fileRoots` (policy; for the daemon
 * token `ServerOptions.fileRoots` / `serve --file-root`, default `/`). An escape is refused
 * with SW_ERR_BAD_REQUEST naming the roots and the setting that decides them, logged and audited.
 */
import type { FileOpen } from '../protocol/messages.js';
import { fileExitPayload, type FileExit, type FileRequest } from '../protocol/file-messages.js';
import { ErrorCode } from '../errors.js';
import { fileEvent } from '../audit/events.js';
import { ChannelState, CloseReason, type Channel, type ChannelHooks } from '../channel/channel-state.js';
import { factoryOf, type ChannelFactory, type ChannelHost, type Refusal, type ServerChannel } from './channel-host.js';
import { FileOpError } from './files/paths.js';
import { locateInRoots, type Location, type LocateOptions } from './files/beneath.js';
import type { ForbiddenDir } from './files/forbidden.js';
import { INTERNAL_FILE_ERROR, type FileOpContext, type FileOperation } from './files/operation.js';
import { PutOperation } from './files/put.js';
import { GetOperation } from './files/get.js';
import { ListOperation, MkdirOperation, StatOperation } from './files/meta.js';

/**
 * The factory for the daemon's channel kinds. Roots come from the user's policy
 * (`fileRoots` in users.yaml; for the daemon token, `ServerOptions.fileRoots` / `--file-root`,
 * default `/`) unless `roots` overrides them for every user. `forbidden` directories (the
 * state dir, the daemon's keys: forbidden.ts) are never opened for anyone but the daemon's token.
 */
export function fileChannelFactory(options: { roots?: readonly string[]; forbidden?: readonly ForbiddenDir[] } = {}): ChannelFactory {
  return factoryOf('file', (id, host, request) =>
    new FileChannel(id, host, request, options.roots ?? host.user.fileRoots ?? [host.user.home], host.user.daemonToken ? [] : options.forbidden ?? []));
}

export class FileChannel implements ServerChannel {
  readonly id: number;
  readonly hooks: ChannelHooks;
  #host: ChannelHost;
  #request: FileOpen;
  #file: FileRequest;
  #roots: readonly string[];
  #forbidden: readonly ForbiddenDir[];
  #op: FileOperation;
  #channel: Channel | null = null;
  /** EXIT was sent. */
  #finished = false;
  #startedAt = performance.now();

  constructor(id: number, host: ChannelHost, request: FileOpen, roots: readonly string[], forbidden: readonly ForbiddenDir[] = []) {
    this.id = id;
    this.#host = host;
    this.#request = request;
    this.#roots = roots;
    this.#forbidden = forbidden;
    this.#file = request.params;
    const ctx = this.#context();
    const file = this.#file;
    const op: FileOperation =
      file.op === 'put' ? new PutOperation(ctx, file)
      : file.op === 'get' ? new GetOperation(ctx, file)
      : file.op === 'mkdir' ? new MkdirOperation(ctx, file)
      : file.op === 'list' ? new ListOperation(ctx, file)
      : new StatOperation(ctx, file);
    this.#op = op;
    // What the operation takes: STDIN and EOF only where it has them (else SW_ERR_BAD_MESSAGE).
    this.hooks = {
      ...(op.onData ? { onData: (_stream: string, bytes: Buffer) => op.onData!(bytes) } : {}),
      ...(op.onEof ? { onEof: (payload: Buffer) => op.onEof!(payload) } : {}),
      onWindow: () => op.onWindow?.(),
      onResize: () => {}, // harmless, as on exec channels
      onClose: (reason) => this.#channelOnClose(reason),
    };
  }

  get busy(): boolean {
    const state = this.#channel?.state;
    return !this.#finished && (state === ChannelState.OPENING || state === ChannelState.OPEN);
  }

  start(channel: Channel): Refusal | null {
    this.#channel = channel;
    if (this.#host.user.switchAccount) {
      // The daemon would read and write as itself on behalf of another OS account:
      // refuse rather than let a user reach files their account could not.
      // TODO(risk: feature gap): run file operations in a helper with the account's uid/gid.
      return {
        code: ErrorCode.BAD_REQUEST,
        message: `File transfer is not available for ${this.#host.user.name}, who runs as the OS account ${this.#host.user.account.name}; use the daemon's own account.`,
      };
    }
    this.#op.open().then(
      (fields) => {
        // Closed while opening: the operation owned its file until now.
        if (channel.state !== ChannelState.OPENING) return this.#op.abort();
        channel.openOk({ window: this.#op.inWindow, maxPacket: this.#host.limits.maxPayload, ...fields });
        this.#op.run();
      },
      (err: unknown) => {
        if (channel.state !== ChannelState.OPENING) return;
        const message = err instanceof Error ? err.message : String(err);
        const errno = err instanceof FileOpError ? err.errno : undefined;
        if (!(err instanceof FileOpError)) this.#host.log.error({ client: this.#host.remote, channel: this.id, op: this.#file.op, err: message }, 'file operation failed to open');
        if (!(err instanceof FileOpError && err.escape)) this.#host.audit.record(fileEvent({ op: this.#file.op, path: this.#file.path, ok: false, errno, error: message }));
        // Our own fault (not a FileOpError) is not the request's: generic text, details logged above.
        if (err instanceof FileOpError) channel.openFail(ErrorCode.BAD_REQUEST, message, errno ? { errno } : {});
        else channel.openFail(ErrorCode.INTERNAL, INTERNAL_FILE_ERROR);
      },
    );
    return null;
  }

  kill(): void {
    if (this.busy) this.#op.abort();
  }

  #channelOnClose(reason: CloseReason): void {
    if (this.#finished || reason === CloseReason.OPEN_FAILED) return;
    // The client gave up (canceled, or its partial file did not match), or the connection
    // is gone: stop, keep any partial upload for a later resume.
    if (reason === CloseReason.NORMAL) this.#host.log.debug({ client: this.#host.remote, channel: this.id, op: this.#file.op }, 'client closed a file channel');
    this.#op.abort();
  }

  #context(): FileOpContext {
    return {
      id: this.id,
      host: this.#host,
      request: this.#request,
      channel: () => this.#channel!,
      locate: (text, options) => this.#locate(text, options),
      // The channel sends no WINDOW after its CLOSE (§6.3 rule 2).
      credit: (bytes) => this.#channel?.consumed(bytes),
      finish: (result) => this.#finish(result),
    };
  }

  async #locate(text: string, options: LocateOptions): Promise<Location> {
    try {
      return await locateInRoots(text, this.#host.user.home, this.#roots, { ...options, forbidden: this.#forbidden });
    } catch (err) {
      if (err instanceof FileOpError && err.forbidden) {
        const detail = { op: this.#file.op, path: text, refused: 'a directory never served (the daemon state dir or keys)' };
        this.#host.log.warn({ client: this.#host.remote, user: this.#host.user.name, channel: this.id, ...detail }, 'file access to the daemon state dir refused');
        this.#host.audit.record(fileEvent(detail));
        throw err;
      }
      if (err instanceof FileOpError && err.escape) {
        const detail = { op: this.#file.op, path: text, roots: this.#roots, refused: 'outside the allowed roots' };
        this.#host.log.warn({ client: this.#host.remote, user: this.#host.user.name, channel: this.id, ...detail }, 'file access outside the allowed roots refused');
        this.#host.audit.record(fileEvent(detail));
        // Say which setting to change: the refusal is the operator's first clue.
        const from = this.#host.user.fileRootsFrom;
        if (from !== undefined && this.#roots === this.#host.user.fileRoots) {
          throw new FileOpError(`${err.message} The roots are set by ${from}.`, { escape: true, cause: err, ...(err.errno === undefined ? {} : { errno: err.errno }) });
        }
      }
      throw err;
    }
  }

  #finish(result: FileExit): void {
    if (this.#channel?.state !== ChannelState.OPEN) return;
    this.#finished = true;
    const fields = {
      client: this.#host.remote,
      channel: this.id,
      op: this.#file.op,
      ...this.#op.summary(),
      ok: result.ok,
      durationMs: Math.round(performance.now() - this.#startedAt),
    };
    const { client: _client, channel: _channel, ...detail } = fields;
    if (result.ok) {
      const transfer = this.#file.op === 'put' || this.#file.op === 'get';
      this.#host.log[transfer ? 'info' : 'debug']({ ...fields, sha256: result.sha256 }, 'file operation finished');
      if (this.#file.op !== 'stat') this.#host.audit.record(fileEvent({ ...detail, sha256: result.sha256 }));
    } else {
      this.#host.log.warn({ ...fields, errno: result.errno, err: result.error?.message }, 'file operation failed');
      this.#host.audit.record(fileEvent({ ...detail, errno: result.errno, error: result.error?.message }));
    }
    const { ok, ...rest } = result;
    this.#channel.exit(fileExitPayload({ ok, ...rest }));
  }
}

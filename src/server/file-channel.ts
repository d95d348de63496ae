/**
 * Server side of a "file" channel: one file operation per channel, on the frames and
 * windows of exec channels (wire layout in src/protocol/file-messages.ts).
 *
 *   client: OPEN{kind:"file", op, path, …} → (STDIN* → EOF{sha256,size})? → WINDOW* → CLOSE
 *   server: OPEN_OK{path, …} | OPEN_FAIL{code, message, errno?}
 *           then (STDOUT | WINDOW)* → EXIT{exitCode, …result | error} → CLOSE
 *
 * Opening is asynchronous (paths are resolved, a partial file may be hashed), so `start()`
 * returns at once and OPEN_OK or OPEN_FAIL follows. Relative paths start at the user's
 * home; every path must resolve inside the user's `fileRoots` (policy; for the daemon
 * token `ServerOptions.fileRoots` / `serve --file-root`, default `/`). An escape is refused
 * with SW_ERR_BAD_REQUEST naming the roots and the setting that decides them, logged and audited.
 */
import { FrameType, frameTypeName, type Frame } from '../protocol/frame.js';
import { decodeWindow, encodeWindow, type OpenRequest } from '../protocol/messages.js';
import { decodeFileRequest, fileExitPayload, type FileExit, type FileRequest } from '../protocol/file-messages.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import { ReceiveWindow, SendWindow } from '../channel/window.js';
import type { ChannelHost, ServerChannel } from './channel-host.js';
import { FileOpError } from './files/paths.js';
import { locateInRoots, type Location, type LocateOptions } from './files/beneath.js';
import type { ForbiddenDir } from './files/forbidden.js';
import type { FileOpContext, FileOperation } from './files/operation.js';
import { PutOperation } from './files/put.js';
import { GetOperation } from './files/get.js';
import { ListOperation, MkdirOperation, StatOperation } from './files/meta.js';
import type { ChannelFactory } from './server-connection.js';

type Phase = 'opening' | 'open' | 'finished' | 'closed';

/**
 * The factory for the daemon's channel kinds. Roots come from the user's policy
 * (`fileRoots` in users.yaml; for the daemon token, `ServerOptions.fileRoots` / `--file-root`,
 * default `/`) unless `roots` overrides them for every user. `forbidden` directories (the
 * state dir, the daemon's keys: forbidden.ts) are never opened for anyone but the daemon's token.
 */
export function fileChannelFactory(options: { roots?: readonly string[]; forbidden?: readonly ForbiddenDir[] } = {}): ChannelFactory {
  return (id, host, request) =>
    new FileChannel(id, host, request, options.roots ?? host.user.fileRoots ?? [host.user.home], host.user.daemonToken ? [] : options.forbidden ?? []);
}

export class FileChannel implements ServerChannel {
  readonly id: number;
  #host: ChannelHost;
  #request: OpenRequest;
  #file: FileRequest;
  #roots: readonly string[];
  #forbidden: readonly ForbiddenDir[];
  #op: FileOperation;
  #phase: Phase = 'opening';
  #outWindow: SendWindow;
  #inWindow: ReceiveWindow;
  #startedAt = performance.now();

  constructor(id: number, host: ChannelHost, request: OpenRequest, roots: readonly string[], forbidden: readonly ForbiddenDir[] = []) {
    this.id = id;
    this.#host = host;
    this.#request = request;
    this.#roots = roots;
    this.#forbidden = forbidden;
    this.#file = decodeFileRequest(request.params ?? {});
    this.#outWindow = new SendWindow(request.window);
    const ctx = this.#context();
    const file = this.#file;
    this.#op =
      file.op === 'put' ? new PutOperation(ctx, file)
      : file.op === 'get' ? new GetOperation(ctx, file)
      : file.op === 'mkdir' ? new MkdirOperation(ctx, file)
      : file.op === 'list' ? new ListOperation(ctx, file)
      : new StatOperation(ctx, file);
    this.#inWindow = new ReceiveWindow(this.#op.inWindow);
  }

  get busy(): boolean {
    return this.#phase === 'opening' || this.#phase === 'open';
  }

  start(): { code: string; message: string } | null {
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
        if (this.#phase !== 'opening') return this.#op.abort();
        this.#phase = 'open';
        this.#host.conn.sendJson(FrameType.OPEN_OK, this.id, { window: this.#op.inWindow, maxPacket: this.#host.limits.maxPayload, ...fields });
        this.#op.run();
      },
      (err: unknown) => {
        if (this.#phase !== 'opening') return;
        this.#phase = 'closed';
        const message = err instanceof Error ? err.message : String(err);
        const errno = err instanceof FileOpError ? err.errno : undefined;
        if (!(err instanceof FileOpError)) this.#host.log.error({ client: this.#host.remote, channel: this.id, op: this.#file.op, err: message }, 'file operation failed to open');
        if (!(err instanceof FileOpError && err.escape)) this.#host.auditFile?.({ op: this.#file.op, path: this.#file.path, ok: false, errno, error: message });
        this.#host.conn.sendJson(FrameType.OPEN_FAIL, this.id, { code: ErrorCode.BAD_REQUEST, message, ...(errno ? { errno } : {}) });
        this.#host.release(this.id);
      },
    );
    return null;
  }

  onFrame(frame: Frame): void {
    if (frame.type === FrameType.STDIN) this.#inWindow.receive(frame.payload.length, this.id); // counted even when ignored (§6.3)
    if (this.#phase === 'finished' || this.#phase === 'closed') return;
    if (this.#phase === 'opening') {
      throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${frameTypeName(frame.type)} on file channel ${this.id} before OPEN_OK.`, { channel: this.id });
    }
    const op = this.#op;
    switch (frame.type) {
      case FrameType.STDIN:
        if (!op.onData) break;
        op.onData(frame.payload);
        return;
      case FrameType.EOF:
        if (!op.onEof) break;
        op.onEof(frame.payload);
        return;
      case FrameType.WINDOW:
        this.#outWindow.grant(decodeWindow(frame.payload), this.id);
        op.onWindow?.();
        return;
      case FrameType.RESIZE:
        return; // harmless, as on exec channels
    }
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${frameTypeName(frame.type)} is not valid on a "${this.#file.op}" file channel.`, { channel: this.id });
  }

  onClientClose(): void {
    if (this.#phase === 'opening' || this.#phase === 'open') {
      // The client gave up (canceled, or its partial file did not match): stop, keep any
      // partial upload for a later resume, answer CLOSE.
      this.#host.log.debug({ client: this.#host.remote, channel: this.id, op: this.#file.op }, 'client closed a file channel');
      this.#op.abort();
      this.#host.conn.send(FrameType.CLOSE, this.id);
    }
    this.#phase = 'closed';
    this.#host.release(this.id);
  }

  onConnectionLost(): void {
    if (this.#phase === 'opening' || this.#phase === 'open') this.#op.abort();
    this.#phase = 'closed';
  }

  kill(): void {
    if (this.#phase === 'opening' || this.#phase === 'open') this.#op.abort();
  }

  #context(): FileOpContext {
    return {
      id: this.id,
      host: this.#host,
      request: this.#request,
      outWindow: this.#outWindow,
      locate: (text, options) => this.#locate(text, options),
      credit: (bytes) => {
        if (this.#phase !== 'open') return; // never WINDOW after our CLOSE (§6.3 rule 2)
        const increment = this.#inWindow.consume(bytes);
        if (increment > 0) this.#host.conn.send(FrameType.WINDOW, this.id, encodeWindow(increment));
      },
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
        this.#host.auditFile?.(detail);
        throw err;
      }
      if (err instanceof FileOpError && err.escape) {
        const detail = { op: this.#file.op, path: text, roots: this.#roots, refused: 'outside the allowed roots' };
        this.#host.log.warn({ client: this.#host.remote, user: this.#host.user.name, channel: this.id, ...detail }, 'file access outside the allowed roots refused');
        this.#host.auditFile?.(detail);
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
    if (this.#phase !== 'open') return;
    this.#phase = 'finished';
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
      if (this.#file.op !== 'stat') this.#host.auditFile?.({ ...detail, sha256: result.sha256 });
    } else {
      this.#host.log.warn({ ...fields, errno: result.errno, err: result.error?.message }, 'file operation failed');
      this.#host.auditFile?.({ ...detail, errno: result.errno, error: result.error?.message });
    }
    const { ok, ...rest } = result;
    this.#host.conn.sendJson(FrameType.EXIT, this.id, fileExitPayload({ ok, ...rest }));
    this.#host.conn.send(FrameType.CLOSE, this.id);
  }
}

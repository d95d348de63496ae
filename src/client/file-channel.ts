/**
 * Client side of one "file" channel (wire layout in src/protocol/file-messages.ts): it
 * opens the channel, keeps both windows, hands STDOUT data to `onData`, and settles
 * `finished` with the EXIT result once the server closed the channel.
 *
 *   client: OPEN{kind:"file", op, …} → (STDIN* → EOF{sha256,size})? → WINDOW* → CLOSE
 *   server: OPEN_OK | OPEN_FAIL, then (STDOUT | WINDOW)* → EXIT → CLOSE
 *
 * CLOSE is never sent before OPEN_OK (it would cross an OPEN_FAIL, docs/protocol.md §9.1);
 * a close asked for earlier waits for OPEN_OK and is dropped on OPEN_FAIL.
 */
import { FrameType, type Frame } from '../protocol/frame.js';
import { decodeCodeMessage, decodeWindow, encodeJson, encodeWindow } from '../protocol/messages.js';
import {
  decodeFileExit, decodeFileOpenOk, parseJsonObject, FILE_CHANNEL_KIND, type FileExit, type FileOpenOk, type FileOp,
} from '../protocol/file-messages.js';
import { ErrorCode, ProtocolError, RequestError, type ShellwireError } from '../errors.js';
import { ReceiveWindow, SendWindow } from '../channel/window.js';
import { CHANNEL_CLOSE_GRACE_MS, abandonedChannelOnFrame } from './remote-process.js';
import type { ClientChannelHost } from './channel-host.js';

/** A file operation that failed: refused by the daemon, a local I/O error, or a hash mismatch. */
export class FileTransferError extends RequestError {
  override name = 'FileTransferError';
  /** The system error code (ENOENT, EACCES, ENOSPC, …), or EINTEGRITY for a SHA-256 mismatch. */
  errno?: string;
  /** The path the error is about (remote or local). */
  path?: string;

  constructor(code: ErrorCode, message: string, context: { host?: string; errno?: string | undefined; path?: string; cause?: unknown } = {}) {
    super(code, message, { ...(context.host ? { host: context.host } : {}), ...(context.cause !== undefined ? { cause: context.cause } : {}) });
    if (context.errno) this.errno = context.errno;
    if (context.path !== undefined) this.path = context.path;
  }
}

export interface FileChannelOptions {
  op: FileOp;
  path: string;
  /** STDOUT credit we grant (get, list); 1 when the server sends no data. */
  window: number;
  maxPacket: number;
  /** The op's other OPEN fields. */
  fields?: Record<string, unknown>;
}

export class FileChannelClient {
  readonly id: number;
  readonly op: FileOp;
  readonly path: string;
  /** Settles with OPEN_OK, or rejects (OPEN_FAIL, connection lost). */
  readonly opened: Promise<FileOpenOk>;
  /** Settles when the server closed the channel: its EXIT, or null when it ended without one (canceled). */
  readonly finished: Promise<FileExit | null>;
  /** Credit the server granted for STDIN (put), once open. */
  sendWindow: SendWindow | null = null;
  #onData: ((chunk: Buffer) => void) | null = null;
  /** Data that arrived before `onData` was set (bounded by our window). */
  #early: Buffer[] = [];
  /** STDIN credit arrived. */
  onWindow: (() => void) | null = null;
  #owner: ClientChannelHost;
  #recvWindow: ReceiveWindow;
  #exit: FileExit | null = null;
  #open = false;
  #weClosed = false;
  #closeWhenOpen = false;
  #done = false;
  /** Settled locally after CHANNEL_CLOSE_GRACE_MS; the id is released when the daemon's CLOSE comes. */
  #abandoned = false;
  #graceTimer: NodeJS.Timeout | null = null;
  #resolveOpened!: (ok: FileOpenOk) => void;
  #rejectOpened!: (error: ShellwireError) => void;
  #resolveFinished!: (exit: FileExit | null) => void;
  #rejectFinished!: (error: ShellwireError) => void;

  constructor(id: number, owner: ClientChannelHost, options: FileChannelOptions) {
    this.id = id;
    this.op = options.op;
    this.path = options.path;
    this.#owner = owner;
    this.#recvWindow = new ReceiveWindow(options.window);
    this.opened = new Promise((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    this.finished = new Promise((resolve, reject) => {
      this.#resolveFinished = resolve;
      this.#rejectFinished = reject;
    });
    this.opened.catch(() => {});
    this.finished.catch(() => {});
    owner.conn.sendJson(FrameType.OPEN, id, {
      kind: FILE_CHANNEL_KIND,
      window: options.window,
      maxPacket: options.maxPacket,
      op: options.op,
      path: options.path,
      ...options.fields,
    });
  }

  /** STDOUT data (get: file bytes; list: NDJSON). Data that came before it was set is handed over at once. */
  set onData(handler: ((chunk: Buffer) => void) | null) {
    this.#onData = handler;
    const early = this.#early;
    this.#early = [];
    if (handler) for (const chunk of early) handler(chunk);
  }

  get onData(): ((chunk: Buffer) => void) | null {
    return this.#onData;
  }

  get host(): string {
    return this.#owner.hostLabel;
  }

  /** The consumer took `bytes` of STDOUT: return credit (at half the window, as exec does). */
  credit(bytes: number): void {
    const increment = this.#recvWindow.consume(bytes);
    if (increment > 0 && this.#open && !this.#done && !this.#weClosed) this.#owner.conn.send(FrameType.WINDOW, this.id, encodeWindow(increment));
  }

  /** put: every byte was sent; `sha256` is the hash of the whole file. */
  sendEof(sha256: string, size: number): void {
    if (!this.#open || this.#done || this.#weClosed) return;
    this.#owner.conn.send(FrameType.EOF, this.id, encodeJson({ sha256, size }));
  }

  /**
   * Give up on the operation (the server stops; an upload's partial file is kept for resume).
   * `finished` settles when the server confirms, or after `CHANNEL_CLOSE_GRACE_MS` if it
   * does not (a frozen daemon): an abort never hangs.
   */
  close(): void {
    if (this.#done || this.#weClosed || this.#closeWhenOpen) return;
    this.#graceTimer = setTimeout(() => this.#abandon(), CHANNEL_CLOSE_GRACE_MS);
    this.#graceTimer.unref();
    if (!this.#open) {
      this.#closeWhenOpen = true;
      return;
    }
    this.#weClosed = true;
    this.#owner.conn.send(FrameType.CLOSE, this.id);
  }

  onFrame(frame: Frame): void {
    if (this.#abandoned) {
      abandonedChannelOnFrame(this.#owner, this.id, frame);
      return;
    }
    switch (frame.type) {
      case FrameType.OPEN_OK: {
        const ok = decodeFileOpenOk(frame.payload);
        this.#open = true;
        this.sendWindow = new SendWindow(ok.window);
        this.#resolveOpened(ok);
        if (this.#closeWhenOpen) {
          this.#weClosed = true;
          this.#owner.conn.send(FrameType.CLOSE, this.id);
        }
        return;
      }
      case FrameType.OPEN_FAIL: {
        const fail = decodeCodeMessage(FrameType.OPEN_FAIL, frame.payload);
        const errno = parseJsonObject(FrameType.OPEN_FAIL, frame.payload).errno;
        this.#finish(
          new FileTransferError(fail.code as ErrorCode, `${this.host}: ${fail.message}`, {
            host: this.host,
            path: this.path,
            errno: typeof errno === 'string' ? errno : undefined,
          }),
        );
        return;
      }
      case FrameType.STDOUT:
        this.#recvWindow.receive(frame.payload.length, this.id);
        if (this.#weClosed || this.#done) return;
        if (this.#onData) this.#onData(frame.payload);
        else this.#early.push(frame.payload);
        return;
      case FrameType.WINDOW:
        if (!this.sendWindow) throw new ProtocolError(ErrorCode.BAD_MESSAGE, `WINDOW before OPEN_OK on file channel ${this.id}.`, { channel: this.id });
        this.sendWindow.grant(decodeWindow(frame.payload), this.id);
        this.onWindow?.();
        return;
      case FrameType.EXIT:
        this.#exit = decodeFileExit(frame.payload);
        return;
      case FrameType.CLOSE:
        if (!this.#weClosed) this.#owner.conn.send(FrameType.CLOSE, this.id);
        this.#weClosed = true;
        this.#finish(null);
        return;
      default:
        throw new ProtocolError(ErrorCode.BAD_MESSAGE, `Unexpected frame type ${frame.type} on file channel ${this.id}.`, { channel: this.id });
    }
  }

  onConnectionLost(error: ShellwireError): void {
    this.#finish(error);
  }

  /** The daemon did not confirm our CLOSE in time: settle as canceled, keep the id until it does. */
  #abandon(): void {
    if (this.#done) return;
    this.#finish(null, { release: false });
    this.#abandoned = true;
  }


  #finish(error: ShellwireError | null, { release = true } = {}): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    if (release) this.#owner.release(this.id);
    if (error) {
      this.#rejectOpened(error);
      this.#rejectFinished(error);
      return;
    }
    // CLOSE before OPEN_OK (a server that gave up at once): nothing was opened.
    if (!this.#open) this.#rejectOpened(new FileTransferError(ErrorCode.COMMAND_CANCELED, `${this.host} closed the ${this.op} of ${this.path} before it started.`, { host: this.host, path: this.path }));
    this.#resolveFinished(this.#exit);
  }
}

/**
 * Client side of one "file" channel (wire layout in src/protocol/file-messages.ts): it
 * opens the channel, keeps both windows, hands STDOUT data to `onData`, and settles
 * `finished` with the EXIT result once the server closed the channel.
 *
 *   client: OPEN{kind:"file", op, …} → (STDIN* → EOF{sha256,size})? → WINDOW* → CLOSE
 *   server: OPEN_OK | OPEN_FAIL, then (STDOUT | WINDOW)* → EXIT → CLOSE
 *
 * The lifecycle (CLOSE never before OPEN_OK, docs/protocol.md §9.1; no WINDOW after our
 * CLOSE; …) is the core channel's (src/channel/channel-state.ts), the close grace
 * client-channel.ts's; this class keeps what is the file kind's own.
 */
import { FrameType } from '../protocol/frame.js';
import {
  decodeFileExit, decodeFileOpenOk, parseJsonObject, type FileExit, type FileOpenOk, type FileOp, type FileRequest,
} from '../protocol/file-messages.js';
import type { FileOpen } from '../protocol/messages.js';
import { ErrorCode, FileTransferError, ProtocolError, RequestError, type ShellwireError } from '../errors.js';
import { quoteForDisplay } from './display-text.js';
import { ClientChannel } from './client-channel.js';
import type { ClientChannelHost } from './channel-host.js';

/** Declared in errors.ts; re-exported here for the modules that always imported it from the file channel. */
export { FileTransferError };

export interface FileChannelOptions {
  /** The op, its path and its other OPEN fields. */
  request: FileRequest;
  /** STDOUT credit we grant (get, list); 1 when the server sends no data. */
  window: number;
  maxPacket: number;
  /** A put to many hosts through a gateway (client/files/put-hosts.ts): the OPEN names them. */
  hosts?: string[];
}

export class FileChannelClient {
  readonly id: number;
  readonly op: FileOp;
  readonly path: string;
  readonly host: string;
  /** Settles with OPEN_OK, or rejects (OPEN_FAIL, connection lost). */
  readonly opened: Promise<FileOpenOk>;
  /** Settles when the server closed the channel: its EXIT, or null when it ended without one (canceled). */
  readonly finished: Promise<FileExit | null>;
  #onData: ((chunk: Buffer) => void) | null = null;
  /** Data that arrived before `onData` was set (bounded by our window). */
  #early: Buffer[] = [];
  /** STDIN credit arrived. */
  onWindow: (() => void) | null = null;
  #link: ClientChannel;
  #exit: FileExit | null = null;
  #resolveOpened!: (ok: FileOpenOk) => void;
  #rejectOpened!: (error: ShellwireError) => void;
  #resolveFinished!: (exit: FileExit | null) => void;
  #rejectFinished!: (error: ShellwireError) => void;

  /** Sends the OPEN; throws when the connection is closed or has its maxChannels. */
  constructor(owner: ClientChannelHost, options: FileChannelOptions) {
    this.op = options.request.op;
    this.path = options.request.path;
    this.host = owner.hostLabel;
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
    const message: FileOpen = { kind: 'file', window: options.window, maxPacket: options.maxPacket, ...(options.hosts ? { hosts: options.hosts } : {}), params: options.request };
    this.#link = new ClientChannel(owner, message, {
      hooks: {
        onOpen: (payload) => this.#resolveOpened(decodeFileOpenOk(payload)),
        onData: (stream, chunk) => {
          if (stream !== 'stdout') throw new ProtocolError(ErrorCode.BAD_MESSAGE, `Unexpected ${stream.toUpperCase()} on file channel ${this.id}.`, { channel: this.id });
          if (this.#onData) this.#onData(chunk);
          else this.#early.push(chunk);
        },
        onWindow: () => this.onWindow?.(),
        onExit: (payload) => {
          this.#exit = decodeFileExit(payload);
        },
      },
      refused: (fail) => {
        // A refusal of the channel itself, not of a path: a policy (users.yaml channels, a
        // gateway's hosts) or a gateway that cannot reach the host. As exec's refusals, a
        // RequestError (the CLI exits 255), not a failed transfer.
        if (fail.code === ErrorCode.DENIED || fail.code === ErrorCode.CONNECT_FAILED) {
          return new RequestError(fail.code, `${this.host} refused the file operation (${this.op} ${quoteForDisplay(this.path)}): ${fail.message}`, { host: this.host });
        }
        const errno = parseJsonObject(FrameType.OPEN_FAIL, fail.payload).errno;
        return new FileTransferError(fail.code, `${this.host}: ${fail.message}`, { host: this.host, path: this.path, errno: typeof errno === 'string' ? errno : undefined });
      },
      ended: (error) => this.#ended(error),
    });
    this.id = this.#link.id;
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

  /** put: the daemon's STDIN credit, for FileSender; `send` consumes it. */
  get sendWindow(): { readonly available: number; consume(bytes: number): void } {
    const channel = this.#link.channel;
    return { get available() { return channel.sendCredit; }, consume() {} };
  }

  /** put: one STDIN frame, within `sendWindow` (dropped once the channel is closing). */
  send(piece: Buffer): void {
    this.#link.channel.write('stdin', piece);
  }

  /** The consumer took `bytes` of STDOUT: return credit (at half the window, as exec does). */
  credit(bytes: number): void {
    this.#link.channel.consumed(bytes);
  }

  /** put: every byte was sent; `sha256` is the hash of the whole file. */
  sendEof(sha256: string, size: number): void {
    this.#link.channel.eof({ sha256, size });
  }

  /**
   * Give up on the operation (the server stops; an upload's partial file is kept for resume).
   * `finished` settles when the server confirms, or after `CHANNEL_CLOSE_GRACE_MS` if it
   * does not (a frozen daemon): an abort never hangs.
   */
  close(): void {
    this.#link.close();
  }

  #ended(error: ShellwireError | null): void {
    if (error) {
      this.#rejectOpened(error);
      this.#rejectFinished(error);
      return;
    }
    // CLOSE before OPEN_OK (a server that gave up at once): nothing was opened. (No effect
    // on an `opened` that OPEN_OK settled.)
    this.#rejectOpened(new FileTransferError(ErrorCode.COMMAND_CANCELED, `${this.host} closed the ${this.op} of ${this.path} before it started.`, { host: this.host, path: this.path }));
    this.#resolveFinished(this.#exit);
  }
}

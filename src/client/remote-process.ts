/**
 * Client side of an exec channel: a running remote command with Node streams for its
 * stdin, stdout and stderr, and a promise of its exit status.
 *
 *   client: OPEN → STDIN* → EOF → (WINDOW | SIGNAL)* → CLOSE
 *   server: OPEN_OK | OPEN_FAIL, then (STDOUT | STDERR | WINDOW)* → EXIT → CLOSE
 */
import { FrameType, type Frame } from '../protocol/frame.js';
import {
  decodeCodeMessage, decodeExit, decodeOpenOk, decodeWindow, encodeWindow,
  type ExitStatus, type OpenRequest,
} from '../protocol/messages.js';
import { ErrorCode, ProtocolError, RequestError, type ShellwireError } from '../errors.js';
import { checkSignal, checkTerminalSize } from './spawn-options.js';
import { ReceiveWindow, SendWindow } from '../channel/window.js';
import { ChannelReadable, ChannelWritable } from './channel-streams.js';
import type { ClientChannelHost } from './channel-host.js';
import { encodeOsBytes, isOsString } from '../protocol/os-bytes.js';
import { quoteForDisplay } from './display-text.js';
import { asyncDispose } from '../dispose.js';

/** How a remote command ended. Output is in the streams (or the buffered `CommandResult`). */
export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The client closed the channel (abort signal, `close()`) before the command exited. */
  canceled: boolean;
  durationMs: number;
  /** Session commands: the working directory afterwards, as an OS byte string (`encodeOsBytes` gives its bytes). */
  cwd?: string;
}

/**
 * How long `close()` (or an abort) waits for the daemon's CLOSE before the command counts
 * as canceled anyway. A frozen or unreachable daemon never answers, and a caller that gave
 * up must not wait for keepalive (tens of seconds) to learn it. The channel id stays
 * reserved until the daemon's CLOSE does come, so its late frames are dropped, not errors.
 */
export const CHANNEL_CLOSE_GRACE_MS = 2_000;

/**
 * A frame for a channel the client stopped waiting for (its CLOSE went unconfirmed for
 * CHANNEL_CLOSE_GRACE_MS): only the protocol's bookkeeping is left. Its id stays taken
 * until the daemon's CLOSE or OPEN_FAIL frees it; late data, EXIT and WINDOW are dropped.
 */
export function abandonedChannelOnFrame(owner: ClientChannelHost, id: number, frame: Frame): void {
  switch (frame.type) {
    case FrameType.OPEN_OK:
      // Our CLOSE waited for this (a CLOSE may not cross an OPEN_FAIL).
      owner.conn.send(FrameType.CLOSE, id);
      return;
    case FrameType.OPEN_FAIL:
    case FrameType.CLOSE:
      owner.release(id);
      return;
    default:
      return;
  }
}


export class RemoteProcess implements AsyncDisposable {
  readonly id: number;
  readonly command: string;
  readonly host: string;
  readonly stdin: ChannelWritable;
  readonly stdout: ChannelReadable;
  readonly stderr: ChannelReadable;
  /** Remote pid (also the process group id), once the server started it. */
  pid: number | undefined;
  #owner: ClientChannelHost;
  #recvWindow: ReceiveWindow;
  #sendWindow: SendWindow | null = null;
  #maxPacket = 64 * 1024;
  #exit: ExitStatus | null = null;
  #weClosed = false;
  #pendingSignals: NodeJS.Signals[] = [];
  #done = false;
  /** Settled locally after CHANNEL_CLOSE_GRACE_MS; the id is released when the daemon's CLOSE comes. */
  #abandoned = false;
  #graceTimer: NodeJS.Timeout | null = null;
  #startedAt = performance.now();
  #resolve!: (info: ExitInfo) => void;
  #reject!: (error: ShellwireError) => void;
  #opened!: () => void;
  /** Settles when the command ends; rejects only when it could not run or the connection died. */
  readonly exited: Promise<ExitInfo>;
  /** Settles when the server accepted the channel (or rejects like `exited`). */
  readonly started: Promise<void>;

  constructor(id: number, owner: ClientChannelHost, request: OpenRequest, label: string) {
    this.id = id;
    this.command = label;
    this.host = owner.hostLabel;
    this.#owner = owner;
    this.#recvWindow = new ReceiveWindow(request.window);
    const conn = owner.conn;
    const consumed = (bytes: number) => {
      const increment = this.#recvWindow.consume(bytes);
      if (increment > 0 && !this.#done && !this.#weClosed) conn.send(FrameType.WINDOW, id, encodeWindow(increment));
    };
    this.stdout = new ChannelReadable(consumed);
    this.stderr = new ChannelReadable(consumed);
    this.stdin = new ChannelWritable(conn, id, () => this.#sendWindow, () => this.#maxPacket);
    let rejectStarted!: (error: ShellwireError) => void;
    this.started = new Promise<void>((resolve, reject) => {
      this.#opened = resolve;
      rejectStarted = reject;
    });
    this.exited = new Promise<ExitInfo>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = (error) => {
        rejectStarted(error);
        reject(error);
      };
    });
    // Callers that only await `exited` must not see an unhandled rejection of `started`.
    this.started.catch(() => {});
    conn.sendJson(FrameType.OPEN, id, request);
  }

  /** Send a signal to the remote process group (SIGINT is Ctrl-C). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    checkSignal(signal);
    if (this.#done || this.#weClosed) return;
    // Before OPEN_OK the OPEN may still fail, and a SIGNAL for a refused channel would be a
    // protocol error: hold it until the server accepts.
    if (!this.#sendWindow) {
      this.#pendingSignals.push(signal);
      return;
    }
    this.#owner.conn.sendJson(FrameType.SIGNAL, this.id, { signal });
  }

  /** Tell a terminal command its new window size (no effect without a terminal). */
  resize(cols: number, rows: number): void {
    checkTerminalSize(cols, rows);
    if (this.#done || this.#weClosed) return;
    this.#owner.conn.sendJson(FrameType.RESIZE, this.id, { cols, rows });
  }

  /**
   * Give up on the command: the server sends SIGTERM (then SIGKILL) to its group. `exited`
   * settles (canceled) when the server confirms, or after `CHANNEL_CLOSE_GRACE_MS` if it
   * does not (a frozen daemon), so a close never hangs.
   */
  close(): void {
    if (this.#done || this.#weClosed) return;
    this.#weClosed = true;
    this.stdin.discard();
    // As with kill(): CLOSE only once the server accepted the channel (else on OPEN_OK).
    if (this.#sendWindow) this.#owner.conn.send(FrameType.CLOSE, this.id);
    this.#graceTimer = setTimeout(() => this.#abandon(), CHANNEL_CLOSE_GRACE_MS);
    this.#graceTimer.unref();
  }

  /**
   * `await using proc = conn.spawn(…)`: a command still running when the block ends is
   * given up on (`close()`), and the block waits until it has ended.
   */
  async [asyncDispose](): Promise<void> {
    this.close();
    await this.exited.catch(() => {});
  }

  onFrame(frame: Frame): void {
    if (this.#abandoned) {
      abandonedChannelOnFrame(this.#owner, this.id, frame);
      return;
    }
    switch (frame.type) {
      case FrameType.OPEN_OK: {
        const ok = decodeOpenOk(frame.payload);
        this.pid = ok.pid;
        this.#maxPacket = ok.maxPacket;
        this.#sendWindow = new SendWindow(ok.window);
        this.#opened();
        if (this.#weClosed) {
          this.#owner.conn.send(FrameType.CLOSE, this.id);
          return;
        }
        for (const signal of this.#pendingSignals.splice(0)) this.#owner.conn.sendJson(FrameType.SIGNAL, this.id, { signal });
        this.stdin.resume();
        return;
      }
      case FrameType.OPEN_FAIL: {
        const fail = decodeCodeMessage(FrameType.OPEN_FAIL, frame.payload);
        this.#finish(new RequestError(fail.code as ErrorCode, `${this.host} refused to run ${quoteForDisplay(this.command)}: ${fail.message}`, { host: this.host, channel: this.id, command: this.command }));
        return;
      }
      case FrameType.STDOUT:
      case FrameType.STDERR:
        this.#recvWindow.receive(frame.payload.length, this.id);
        if (this.#weClosed) return; // we asked to stop; late output is dropped on purpose
        (frame.type === FrameType.STDOUT ? this.stdout : this.stderr).deliver(frame.payload);
        return;
      case FrameType.WINDOW:
        if (!this.#sendWindow) throw new ProtocolError(ErrorCode.BAD_MESSAGE, `WINDOW before OPEN_OK on channel ${this.id}.`, { channel: this.id });
        this.#sendWindow.grant(decodeWindow(frame.payload), this.id);
        this.stdin.resume();
        return;
      case FrameType.EXIT:
        this.#exit = decodeExit(frame.payload);
        this.stdin.discard();
        // A command that could not start: say why where its errors go (added locally, so it
        // costs no window credit).
        if (this.#exit.error && !this.#weClosed) {
          // The message may name the command's bytes (`Cannot run caf\xe9`): give them back as bytes.
          const text = `shellwire: ${this.#exit.error.message}\n`;
          this.stderr.push(isOsString(text) ? encodeOsBytes(text) : Buffer.from(text));
        }
        return;
      case FrameType.CLOSE:
        if (!this.#weClosed) this.#owner.conn.send(FrameType.CLOSE, this.id);
        this.#finish(null);
        return;
      default:
        throw new ProtocolError(ErrorCode.BAD_MESSAGE, `Unexpected frame type ${frame.type} on exec channel ${this.id}.`, { channel: this.id });
    }
  }

  /** The connection died under this channel. */
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
    this.stdin.discard();
    if (error) {
      // The error goes to `exited` (and exec()'s promise); streams just stop, so a caller
      // who never listens for stream errors does not get an uncaught exception.
      this.stdout.destroy();
      this.stderr.destroy();
      this.#reject(error);
      return;
    }
    this.stdout.push(null);
    this.stderr.push(null);
    const exit = this.#exit;
    const info: ExitInfo = {
      exitCode: exit?.exitCode ?? null,
      signal: exit?.signal ?? null,
      timedOut: exit?.timedOut ?? false,
      canceled: exit === null,
      durationMs: performance.now() - this.#startedAt,
    };
    if (exit?.cwd !== undefined) info.cwd = exit.cwd;
    this.#resolve(info);
  }
}

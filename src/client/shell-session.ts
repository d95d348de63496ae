/**
 * A shell session: a server-side cwd and environment that each command runs in and
 * updates, so `cd` and `export` persist across commands (see server/session-state.ts).
 *
 *   client: OPEN{kind:"session"} … CLOSE      server: OPEN_OK{cwd} | OPEN_FAIL … CLOSE
 */
import { FrameType, type Frame } from '../protocol/frame.js';
import { decodeCodeMessage, decodeOpenOk } from '../protocol/messages.js';
import { ErrorCode, ProtocolError, RequestError, type CommandResult, type ShellwireError } from '../errors.js';
import type { ClientChannelHost } from './channel-host.js';
import { CHANNEL_CLOSE_GRACE_MS, type RemoteProcess } from './remote-process.js';
import { runBuffered, type ExecOptions } from './run-command.js';
import type { OsText, SpawnOptions } from './spawn-options.js';
import { asyncDispose } from '../dispose.js';
import { decodeOsBytes, encodeOsBytes } from '../protocol/os-bytes.js';

/** What a session needs from its connection: send frames, and start commands inside the session. */
export interface SessionHost extends ClientChannelHost {
  readonly closed: boolean;
  spawn(command: OsText | OsText[], options: SpawnOptions & { session: number }): RemoteProcess;
}

export class ShellSession implements AsyncDisposable {
  readonly id: number;
  /** Working directory after the last command, as an OS byte string (see `cwdBytes`). */
  cwd = '';
  readonly opened: Promise<void>;
  #connection: SessionHost;
  #open!: () => void;
  #fail!: (error: ShellwireError) => void;
  #closed = false;
  #markReleased!: () => void;
  /** Settles when the channel is gone: the daemon confirmed CLOSE, refused it, or the connection ended. */
  readonly #released = new Promise<void>((resolve) => (this.#markReleased = resolve));

  constructor(id: number, connection: SessionHost, options: { cwd?: string; env?: Record<string, string> }) {
    this.id = id;
    this.#connection = connection;
    this.opened = new Promise((resolve, reject) => {
      this.#open = resolve;
      this.#fail = reject;
    });
    connection.conn.sendJson(FrameType.OPEN, id, { kind: 'session', window: 1, maxPacket: 1024, ...options });
  }

  /** The working directory's exact bytes (a directory name need not be UTF-8). */
  get cwdBytes(): Buffer {
    return encodeOsBytes(this.cwd);
  }

  get host(): string {
    return this.#connection.hostLabel;
  }

  /**
   * Start a command in the session, streaming (see `Connection.spawn`). A string is shell
   * text; an argv (`['grep', '-r', pattern, dir]`) arrives word for word whatever it
   * contains (as execa's `$` and execFile): the daemon quotes it for the session's shell,
   * which must run it to keep `cd` and `export` (server/exec-channel.ts).
   */
  spawn(command: OsText | OsText[], options: SpawnOptions = {}): RemoteProcess {
    if (this.#closed) throw new RequestError(ErrorCode.BAD_REQUEST, 'This shell session is closed.', { host: this.host, command: describeCommand(command) });
    const proc = this.#connection.spawn(command, { ...options, session: this.id });
    proc.exited.then((exit) => {
      if (exit.cwd !== undefined) this.cwd = exit.cwd;
    }, () => {});
    return proc;
  }

  /** Run a command in the session and buffer its output (see `Connection.exec`). */
  exec(command: OsText | OsText[], options: ExecOptions = {}): Promise<CommandResult> {
    return runBuffered(() => this.spawn(command, options), options);
  }

  close(): void {
    if (this.#closed || this.#connection.closed) return;
    this.#closed = true;
    this.#connection.conn.send(FrameType.CLOSE, this.id);
  }

  /** `await using session = await conn.shell()`: closed when the block ends. */
  async [asyncDispose](): Promise<void> {
    this.close();
    // Wait for the daemon's CLOSE, as RemoteProcess.close() does, but never on a frozen one.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#released, new Promise<void>((resolve) => (timer = setTimeout(resolve, CHANNEL_CLOSE_GRACE_MS)))]);
    clearTimeout(timer);
  }

  onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.OPEN_OK: {
        const ok = decodeOpenOk(frame.payload);
        this.cwd = ok.cwd ?? '';
        this.#open();
        return;
      }
      case FrameType.OPEN_FAIL: {
        const fail = decodeCodeMessage(FrameType.OPEN_FAIL, frame.payload);
        this.#closed = true;
        this.#connection.release(this.id);
        this.#markReleased();
        this.#fail(new RequestError(fail.code as ErrorCode, `${this.host} refused a shell session: ${fail.message}`, { host: this.host }));
        return;
      }
      case FrameType.CLOSE:
        if (!this.#closed) this.#connection.conn.send(FrameType.CLOSE, this.id);
        this.#closed = true;
        this.#connection.release(this.id);
        this.#markReleased();
        return;
      default:
        throw new ProtocolError(ErrorCode.BAD_MESSAGE, `Unexpected frame type ${frame.type} on session channel ${this.id}.`, { channel: this.id });
    }
  }

  onConnectionLost(error: ShellwireError): void {
    this.#closed = true;
    this.#markReleased();
    this.#fail(error);
  }
}

function describeCommand(command: OsText | OsText[]): string {
  const words = Array.isArray(command) ? command : [command];
  return words.map((w) => (typeof w === 'string' ? w : decodeOsBytes(w))).join(' ');
}

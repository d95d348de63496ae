/**
 * A shell session: a server-side cwd and environment that each command runs in and
 * updates, so `cd` and `export` persist across commands (see server/session-state.ts).
 *
 *   client: OPEN{kind:"session"} … CLOSE      server: OPEN_OK{cwd} | OPEN_FAIL … CLOSE
 */
import { decodeOpenOk } from '../protocol/messages.js';
import { ErrorCode, RequestError, type CommandResult, type ShellwireError } from '../errors.js';
import type { ClientChannelHost } from './channel-host.js';
import { ClientChannel } from './client-channel.js';
import type { RemoteProcess } from './remote-process.js';
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
  readonly host: string;
  #connection: SessionHost;
  #link: ClientChannel;
  #open!: () => void;
  #fail!: (error: ShellwireError) => void;
  #markReleased!: () => void;
  /** Settles when the channel is gone: the daemon confirmed CLOSE, refused it, or the connection ended. */
  readonly #released = new Promise<void>((resolve) => (this.#markReleased = resolve));

  /** Sends the OPEN; throws when the connection is closed or has its maxChannels. */
  constructor(connection: SessionHost, options: { cwd?: string; env?: Record<string, string> }) {
    this.#connection = connection;
    this.host = connection.hostLabel;
    this.opened = new Promise((resolve, reject) => {
      this.#open = resolve;
      this.#fail = reject;
    });
    // A session carries no data: only OPEN_OK and CLOSE (any other frame is a protocol error).
    this.#link = new ClientChannel(connection, { kind: 'session', window: 1, maxPacket: 1024, params: options }, {
      hooks: {
        onOpen: (payload) => {
          this.cwd = decodeOpenOk(payload).cwd ?? '';
          this.#open();
        },
      },
      refused: (fail) => new RequestError(fail.code, `${this.host} refused a shell session: ${fail.message}`, { host: this.host }),
      ended: (error) => {
        this.#markReleased();
        // No effect on an `opened` that OPEN_OK settled.
        this.#fail(error ?? new RequestError(ErrorCode.COMMAND_CANCELED, `${this.host} closed the shell session before it opened.`, { host: this.host }));
      },
    });
    this.id = this.#link.id;
  }

  /** The working directory's exact bytes (a directory name need not be UTF-8). */
  get cwdBytes(): Buffer {
    return encodeOsBytes(this.cwd);
  }

  /**
   * Start a command in the session, streaming (see `Connection.spawn`). A string is shell
   * text; an argv (`['grep', '-r', pattern, dir]`) arrives word for word whatever it
   * contains (as execa's `$` and execFile): the daemon quotes it for the session's shell,
   * which must run it to keep `cd` and `export` (server/exec-channel.ts).
   *
   * @throws {RequestError} `SW_ERR_BAD_REQUEST` when the session is closed or an option is invalid;
   *   otherwise as `Connection.spawn`.
   */
  spawn(command: OsText | OsText[], options: SpawnOptions = {}): RemoteProcess {
    if (this.#link.closing) throw new RequestError(ErrorCode.BAD_REQUEST, 'This shell session is closed.', { host: this.host, command: describeCommand(command) });
    const proc = this.#connection.spawn(command, { ...options, session: this.id });
    proc.exited.then((exit) => {
      if (exit.cwd !== undefined) this.cwd = exit.cwd;
    }, () => {});
    return proc;
  }

  /**
   * Run a command in the session and buffer its output (see `Connection.exec`).
   *
   * @throws {CommandError} (rejects) as `Connection.exec`: non-zero exit, signal, timeout, cancel, `maxBuffer`.
   * @throws {RequestError} (rejects) the session is closed, an option is invalid, or the daemon refused.
   */
  exec(command: OsText | OsText[], options: ExecOptions = {}): Promise<CommandResult> {
    return runBuffered(() => this.spawn(command, options), options);
  }

  close(): void {
    this.#link.close();
  }

  /** `await using session = await conn.shell()`: closed when the block ends. */
  async [asyncDispose](): Promise<void> {
    this.close();
    // Until the daemon's CLOSE, as RemoteProcess.close() waits, but never on a frozen one
    // (the close grace of client-channel.ts).
    await this.#released;
  }
}

function describeCommand(command: OsText | OsText[]): string {
  const words = Array.isArray(command) ? command : [command];
  return words.map((w) => (typeof w === 'string' ? w : decodeOsBytes(w))).join(' ');
}

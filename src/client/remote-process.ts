/**
 * Client side of an exec channel: a running remote command with Node streams for its
 * stdin, stdout and stderr, and a promise of its exit status.
 *
 *   client: OPEN → STDIN* → EOF → (WINDOW | SIGNAL)* → CLOSE
 *   server: OPEN_OK | OPEN_FAIL, then (STDOUT | STDERR | WINDOW)* → EXIT → CLOSE
 */
import { decodeExit, decodeOpenOk, type ExitStatus, type ExecOpen } from '../protocol/messages.js';
import { RequestError, type ShellwireError } from '../errors.js';
import { ChannelState } from '../channel/channel-state.js';
import { checkSignal, checkTerminalSize } from './spawn-options.js';
import { ChannelReadable, ChannelWritable } from './channel-streams.js';
import { ClientChannel } from './client-channel.js';
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
  /**
   * Set when the program could not be started (`SW_ERR_SPAWN_FAILED`: not found, exit 127;
   * not executable, exit 126), so that a missing program is not mistaken for one that exited
   * 127 itself. The same text is also written to `stderr` as `shellwire: …`.
   */
  error?: { code: string; message: string };
}

export { CHANNEL_CLOSE_GRACE_MS } from './client-channel.js';

export class RemoteProcess implements AsyncDisposable {
  readonly id: number;
  readonly command: string;
  readonly host: string;
  readonly stdin: ChannelWritable;
  readonly stdout: ChannelReadable;
  readonly stderr: ChannelReadable;
  /** Remote pid (also the process group id), once the server started it. */
  pid: number | undefined;
  #link: ClientChannel;
  #exit: ExitStatus | null = null;
  #startedAt = performance.now();
  #resolve!: (info: ExitInfo) => void;
  #reject!: (error: ShellwireError) => void;
  #opened!: () => void;
  /** Settles when the command ends; rejects only when it could not run or the connection died. */
  readonly exited: Promise<ExitInfo>;
  /** Settles when the server accepted the channel (or rejects like `exited`). */
  readonly started: Promise<void>;

  /** Sends the OPEN; throws when the connection is closed or has its maxChannels. */
  constructor(owner: ClientChannelHost, request: ExecOpen, label: string) {
    this.command = label;
    this.host = owner.hostLabel;
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
    this.#link = new ClientChannel(owner, request, {
      hooks: {
        onOpen: (payload) => {
          this.pid = decodeOpenOk(payload).pid;
          this.#opened();
        },
        onData: (stream, bytes) => (stream === 'stdout' ? this.stdout : this.stderr).deliver(bytes),
        onWindow: () => this.stdin.resume(),
        onExit: (payload) => this.#onExit(payload),
      },
      refused: (fail) => new RequestError(fail.code, `${this.host} refused to run ${quoteForDisplay(this.command)}: ${fail.message}`, { host: this.host, channel: this.id, command: this.command }),
      ended: (error) => this.#ended(error),
    });
    const channel = this.#link.channel;
    this.id = channel.id;
    const consumed = (bytes: number) => channel.consumed(bytes);
    this.stdout = new ChannelReadable(consumed);
    this.stderr = new ChannelReadable(consumed);
    this.stdin = new ChannelWritable(channel, (callback) => owner.transport.whenDrained(callback));
    // Refused or ended while the OPEN was being sent (an in-process transport answers at
    // once): finish now that the streams exist.
    if (this.#earlyEnd !== undefined) this.#ended(this.#earlyEnd);
  }

  /** Set when the channel ended inside the constructor, before the streams existed. */
  #earlyEnd: ShellwireError | null | undefined = undefined;

  /**
   * Send a signal to the remote process group (SIGINT is Ctrl-C).
   *
   * @throws {RequestError} `SW_ERR_BAD_REQUEST` for a signal the protocol does not carry.
   */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    checkSignal(signal);
    if (this.#link.closing) return;
    this.#link.channel.signal(signal); // held until the server accepts (an OPEN may still fail)
  }

  /**
   * Tell a terminal command its new window size (no effect without a terminal).
   *
   * @throws {RequestError} `SW_ERR_BAD_REQUEST` for a size out of range.
   */
  resize(cols: number, rows: number): void {
    checkTerminalSize(cols, rows);
    if (this.#link.closing) return;
    this.#link.channel.resize(cols, rows); // held until the server accepts, as kill()
  }

  /**
   * Give up on the command: the server sends SIGTERM (then SIGKILL) to its group. `exited`
   * settles (canceled) when the server confirms, or after `CHANNEL_CLOSE_GRACE_MS` if it
   * does not (a frozen daemon), so a close never hangs. Never throws.
   */
  close(): void {
    if (this.#link.closing) return;
    this.stdin.discard();
    this.#link.close();
  }

  /**
   * `await using proc = conn.spawn(…)`: a command still running when the block ends is
   * given up on (`close()`), and the block waits until it has ended.
   */
  async [asyncDispose](): Promise<void> {
    this.close();
    await this.exited.catch(() => {});
  }

  #onExit(payload: Buffer): void {
    this.#exit = decodeExit(payload);
    this.stdin?.discard();
    // A command that could not start: say why where its errors go (added locally, so it
    // costs no window credit). Not after our CLOSE: its output is dropped on purpose.
    if (this.#exit.error && this.#link.channel.state === ChannelState.OPEN) {
      // The message may name the command's bytes (`Cannot run caf\xe9`): give them back as bytes.
      const text = `shellwire: ${this.#exit.error.message}\n`;
      this.stderr.push(isOsString(text) ? encodeOsBytes(text) : Buffer.from(text));
    }
  }

  #ended(error: ShellwireError | null): void {
    if (this.stdin === undefined) {
      this.#earlyEnd = error;
      return;
    }
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
    if (exit?.error) info.error = { code: exit.error.code, message: exit.error.message };
    this.#resolve(info);
  }
}

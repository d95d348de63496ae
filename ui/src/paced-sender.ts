/**
 * Keystrokes and pastes to a terminal's WebSocket, in order, in pieces the console accepts.
 * The console closes a terminal whose browser sends one message over 1 MiB
 * (src/web/terminal-route.ts MAX_TERMINAL_INPUT_BYTES), and xterm.js hands a paste over as one
 * string: a big paste would end the session and its shell. So input goes out in chunks of
 * 64 KiB, and only while the socket has less than 1 MiB not yet sent, so the browser does not
 * hold a whole paste in its socket buffer either. A paste that would leave more than 16 MiB
 * waiting is refused whole (nothing of it is sent), with a message that gives the limit.
 * Pure of the DOM: unit-tested with a stand-in socket.
 */
export const INPUT_CHUNK_BYTES = 64 * 1024;
export const INPUT_MAX_PENDING_BYTES = 16 * 1024 * 1024;
/** Sent but not yet on the wire (WebSocket.bufferedAmount) before the next chunk waits. */
export const INPUT_HIGH_WATER_BYTES = 1024 * 1024;
const RETRY_MS = 20;

/** What the sender needs of a WebSocket. */
export interface InputSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
}

const OPEN = 1;

export class PacedSender {
  private readonly queue: Uint8Array[] = [];
  private pending = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  /** `socket()` is the terminal's socket now (null once it closed); `refused` gets the message for a paste that is too big. */
  constructor(private readonly socket: () => InputSocket | null, private readonly refused: (message: string) => void) {}

  /** Bytes not yet handed to the socket. */
  get waiting(): number {
    return this.pending;
  }

  send(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.pending + bytes.length > INPUT_MAX_PENDING_BYTES) {
      const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
      this.refused(`Paste of ${mib(bytes.length)} not sent: a terminal takes at most ${mib(INPUT_MAX_PENDING_BYTES)} at a time${this.pending ? ` (${mib(this.pending)} still being sent)` : ''}. Push large files with the Push page or \`shellwire put\` instead.`);
      return;
    }
    for (let at = 0; at < bytes.length; at += INPUT_CHUNK_BYTES) this.queue.push(bytes.subarray(at, at + INPUT_CHUNK_BYTES));
    this.pending += bytes.length;
    this.pump();
  }

  /** Drop what is waiting (the terminal ended). */
  clear(): void {
    this.queue.length = 0;
    this.pending = 0;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private pump(): void {
    const ws = this.socket();
    if (!ws || ws.readyState !== OPEN) {
      this.clear();
      return;
    }
    while (this.queue.length > 0 && ws.bufferedAmount < INPUT_HIGH_WATER_BYTES) {
      const chunk = this.queue.shift()!;
      this.pending -= chunk.length;
      ws.send(chunk);
    }
    // A WebSocket has no "drained" event: look again shortly.
    if (this.queue.length > 0 && this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, RETRY_MS);
    }
  }
}

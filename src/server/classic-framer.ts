/**
 * Splits what a classic client sends into whole messages (the token, then commands).
 * Pure: no sockets, no timers — the connection calls `idle()` when its idle timer fires.
 *
 *   line client:  "cmd\n" | "cmd\r\n"        → one message per line
 *   recv client:  "cmd" (no newline), then a pause of `commandIdleMs` → one message per recv
 *
 * The two rules are ambiguous for the first newline-less bytes of a slow line client (a
 * long line that arrives in pieces more than the idle delay apart would be cut). Running a
 * fragment of a command is the one thing we must never do, so as soon as a client ends a
 * command with a newline we latch `lineMode`, and from then on only a newline (or the
 * client's EOF) ends a command; the idle rule is only for clients that never send one.
 * A message longer than `maxLineBytes` is refused whole (one `onTooLong`), never split:
 * its bytes are skipped up to the next newline (or, for a recv client, the next pause).
 */

/** How a message ended: a newline, a pause in a newline-less stream, or the client's EOF. */
export type MessageEnd = 'newline' | 'idle' | 'eof';

export interface ClassicFramerSink {
  onMessage(message: Buffer, end: MessageEnd): void;
  /** A message longer than the limit was dropped; `bytes` is how much of it had arrived then. */
  onTooLong(bytes: number): void;
}

const LF = 0x0a;
const CR = 0x0d;

export class ClassicFramer {
  /** Longest message accepted, newline excluded. Settable: the token line has a smaller limit. */
  maxLineBytes: number;
  /** Set once the client has shown it ends commands with newlines; see the file comment. */
  lineMode = false;
  #sink: ClassicFramerSink;
  #parts: Buffer[] = [];
  #length = 0;
  #skipping = false;

  constructor(maxLineBytes: number, sink: ClassicFramerSink) {
    this.maxLineBytes = maxLineBytes;
    this.#sink = sink;
  }

  /** Bytes of an unfinished message held (at most `maxLineBytes`). */
  get pendingBytes(): number {
    return this.#length;
  }

  /** True while the tail of a refused message is being dropped. */
  get skipping(): boolean {
    return this.#skipping;
  }

  /** True when an idle pause would end something (an unfinished message or a skip). */
  get waitingForIdle(): boolean {
    return !this.lineMode && (this.#length > 0 || this.#skipping);
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(LF, start);
      if (this.#skipping) {
        if (nl < 0) return;
        this.#skipping = false;
        start = nl + 1;
        continue;
      }
      if (nl < 0) {
        this.#append(chunk.subarray(start));
        return;
      }
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      let length = this.#length + piece.length;
      // "cmd\r\n" (nc -C, telnet) is the same command as "cmd\n".
      const crlf = piece.length > 0 ? piece[piece.length - 1] === CR : this.#lastByte() === CR;
      if (crlf) length -= 1;
      if (length > this.maxLineBytes) {
        this.#reset();
        this.#sink.onTooLong(length);
        continue;
      }
      this.#parts.push(piece);
      const message = Buffer.concat(this.#parts).subarray(0, length);
      this.#reset();
      this.#sink.onMessage(message, 'newline');
    }
  }

  /** The client paused: for a newline-less client, what it sent is one message. */
  idle(): void {
    if (this.lineMode) return;
    if (this.#skipping) {
      this.#skipping = false;
      return;
    }
    if (this.#length > 0) this.#emitPending('idle');
  }

  /** The client will send no more: what is left is its last message, not a fragment. */
  end(): void {
    if (this.#skipping) {
      this.#skipping = false;
      return;
    }
    if (this.#length > 0) this.#emitPending('eof');
  }

  #append(piece: Buffer): void {
    if (this.#length + piece.length > this.maxLineBytes) {
      const seen = this.#length + piece.length;
      this.#reset();
      this.#skipping = true;
      this.#sink.onTooLong(seen);
      return;
    }
    this.#parts.push(piece);
    this.#length += piece.length;
  }

  #emitPending(end: MessageEnd): void {
    let message = Buffer.concat(this.#parts, this.#length);
    if (message[message.length - 1] === CR) message = message.subarray(0, -1);
    this.#reset();
    this.#sink.onMessage(message, end);
  }

  #lastByte(): number | undefined {
    const last = this.#parts[this.#parts.length - 1];
    return last?.[last.length - 1];
  }

  #reset(): void {
    this.#parts = [];
    this.#length = 0;
  }
}

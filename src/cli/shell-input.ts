/**
 * Where `shellwire shell` gets its lines: a person at a terminal (line editing, history,
 * Ctrl-C and Ctrl-D with shell semantics) or a pipe (one command per line, for scripts).
 *
 * On a terminal we put stdin in raw mode ourselves and hand readline the typed bytes
 * through a gate, one line at a time, only while a prompt is up. While a command runs:
 *   - Ctrl-C goes to the command (the caller's interrupt: SIGINT first, then close);
 *   - Ctrl-D is dropped: the command's stdin is already at EOF (shell commands read no
 *     input), and a queued EOF must not end the session once the command is done;
 *   - everything else is type-ahead, kept and shown at the next prompt, as bash does.
 * Without the gate readline would echo and take type-ahead lines in the middle of the
 * command's output, and a Ctrl-D typed during `sleep` would end the session after it.
 */
import { createInterface, type Interface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { OsLineDecoder } from './os-text.js';

export type ReadResult = { kind: 'line'; text: string } | { kind: 'eof' } | { kind: 'interrupt' };

/** How many lines readline keeps for the up arrow. */
export const SHELL_HISTORY_SIZE = 1000;
/** Type-ahead kept while a command runs; beyond this, keys are dropped (a paste into a busy shell). */
export const MAX_TYPE_AHEAD_BYTES = 64 * 1024;

const CTRL_C = 0x03;
const CTRL_D = 0x04;

export interface ShellInput {
  readonly interactive: boolean;
  /** The next line (or EOF, or Ctrl-C at the prompt); `prompt` is shown on a terminal. */
  read(prompt: string): Promise<ReadResult>;
  /** A command runs: interrupts (Ctrl-C, SIGINT) go to `onInterrupt` until `commandEnded()`. */
  commandStarted(onInterrupt: () => void): void;
  commandEnded(): void;
  /** The lines just read form one command: keep it as one history entry. */
  joinHistory(lines: number, command: string): void;
  close(): void;
}

/** Lines from a pipe or file: no prompt, no editing. SIGINT interrupts the running command. */
export class PipedInput implements ShellInput {
  readonly interactive = false;
  #rl: Interface;
  #lines: ReadResult[] = [];
  #waiter: ((result: ReadResult) => void) | null = null;
  #onInterrupt: (() => void) | null = null;
  #eof = false;

  constructor() {
    // Piped lines are OS byte strings (a Latin-1 `cd café` runs as sent); a terminal types UTF-8.
    this.#rl = createInterface({ input: process.stdin.pipe(new OsLineDecoder()), terminal: false });
    this.#rl.on('line', (text) => this.#push({ kind: 'line', text }));
    this.#rl.on('close', () => {
      this.#eof = true;
      this.#push({ kind: 'eof' });
    });
    process.on('SIGINT', () => {
      if (this.#onInterrupt) this.#onInterrupt();
      else process.exit(130);
    });
  }

  #push(result: ReadResult): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter) waiter(result);
    else this.#lines.push(result);
  }

  read(): Promise<ReadResult> {
    const next = this.#lines.shift() ?? (this.#eof ? { kind: 'eof' } : undefined);
    if (next) return Promise.resolve(next);
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  commandStarted(onInterrupt: () => void): void {
    this.#onInterrupt = onInterrupt;
  }

  commandEnded(): void {
    this.#onInterrupt = null;
  }

  joinHistory(): void {}

  close(): void {
    this.#rl.close();
  }
}

/** A person at a terminal. */
export class TerminalInput implements ShellInput {
  readonly interactive = true;
  #rl: Interface;
  #feed = new PassThrough();
  #typeAhead = Buffer.alloc(0);
  /** Open while a prompt waits for a line; closed once a whole line went to readline. */
  #gateOpen = false;
  #waiter: ((result: ReadResult) => void) | null = null;
  #eof = false;
  #onInterrupt: (() => void) | null = null;
  #restore = () => {
    if (process.stdin.isTTY && process.stdin.isRaw) process.stdin.setRawMode(false);
  };

  constructor() {
    this.#rl = createInterface({ input: this.#feed, output: process.stdout, terminal: true, historySize: SHELL_HISTORY_SIZE });
    this.#rl.on('line', (text) => this.#settle({ kind: 'line', text }));
    this.#rl.on('close', () => {
      this.#eof = true;
      this.#settle({ kind: 'eof' });
    });
    this.#rl.on('SIGINT', () => this.#promptOnInterrupt());
    // No job control here (Ctrl-Z would stop the client, not a command): use `shellwire tty`.
    this.#rl.on('SIGTSTP', () => {});
    process.on('exit', this.#restore);
    // `kill -INT` on the client acts as Ctrl-C (in raw mode the key itself is no signal).
    process.on('SIGINT', () => (this.#onInterrupt ? this.#onInterrupt() : this.#promptOnInterrupt()));
    process.stdin.setRawMode(true);
    process.stdin.on('data', (chunk: Buffer) => this.#stdinOnData(chunk));
    process.stdin.resume();
  }

  read(prompt: string): Promise<ReadResult> {
    if (this.#eof) return Promise.resolve({ kind: 'eof' });
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.#gateOpen = true;
      this.#rl.setPrompt(prompt);
      this.#rl.prompt();
      this.#release();
    });
  }

  commandStarted(onInterrupt: () => void): void {
    this.#onInterrupt = onInterrupt;
  }

  commandEnded(): void {
    this.#onInterrupt = null;
  }

  joinHistory(lines: number, command: string): void {
    // readline keeps its history newest first and added each line on its own.
    const history = (this.#rl as unknown as { history?: string[] }).history;
    if (!Array.isArray(history) || lines < 2) return;
    history.splice(0, lines, command);
  }

  close(): void {
    this.#rl.close();
    this.#restore();
    process.stdin.pause();
  }

  #settle(result: ReadResult): void {
    this.#gateOpen = false;
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.(result);
  }

  /** Ctrl-C at the prompt: show `^C` after the whole line, drop it, and report it (as bash). */
  #promptOnInterrupt(): void {
    if (!this.#waiter) return;
    const text = this.#rl.line;
    // To the end, then clear: readline redraws just the prompt, and we write the dropped
    // text back after it ourselves, so the `^C` line stays on screen and readline's idea
    // of the cursor (row 0, column after the prompt) is where the next prompt will go.
    this.#rl.write(null, { ctrl: true, name: 'e' });
    this.#rl.write(null, { ctrl: true, name: 'u' });
    process.stdout.write(`${text}^C\r\n`);
    this.#settle({ kind: 'interrupt' });
  }

  #stdinOnData(chunk: Buffer): void {
    if (this.#gateOpen) {
      this.#typeAhead = Buffer.concat([this.#typeAhead, chunk]);
      this.#release();
      return;
    }
    // A command runs (or is about to): Ctrl-C is for it, Ctrl-D means nothing, the rest waits.
    const kept: number[] = [];
    for (const byte of chunk) {
      if (byte === CTRL_C) this.#onInterrupt?.();
      else if (byte !== CTRL_D) kept.push(byte);
    }
    if (this.#typeAhead.length + kept.length <= MAX_TYPE_AHEAD_BYTES) this.#typeAhead = Buffer.concat([this.#typeAhead, Buffer.from(kept)]);
  }

  /** Give readline the type-ahead up to and including the first Enter (CR, CRLF or LF). */
  #release(): void {
    if (!this.#gateOpen || this.#typeAhead.length === 0) return;
    let end = this.#typeAhead.findIndex((b) => b === 0x0d || b === 0x0a);
    if (end === -1) end = this.#typeAhead.length;
    else {
      end += this.#typeAhead[end] === 0x0d && this.#typeAhead[end + 1] === 0x0a ? 2 : 1;
      this.#gateOpen = false;
    }
    const now = this.#typeAhead.subarray(0, end);
    this.#typeAhead = this.#typeAhead.subarray(end);
    this.#feed.write(now);
  }
}

/**
 * Bytes written to the terminal by a command, to see whether its output left the cursor
 * mid-line. Then, like zsh's PROMPT_SP, we mark the partial line with a reverse-video `%`
 * and start the prompt on a new line; else readline's redraw would erase the line.
 */
export class LineEndTracker {
  #last = 0x0a;

  /** A command's output chunk, or our own echo (`^C`), reached the terminal. */
  note(chunk: Buffer | string): void {
    if (chunk.length === 0) return;
    this.#last = typeof chunk === 'string' ? chunk.charCodeAt(chunk.length - 1) : chunk[chunk.length - 1]!;
  }

  /** What to write before the prompt: nothing after a newline, a newline after `\r` or our `^C`, else the marker. */
  finish(echoedLast: boolean): string {
    const last = this.#last;
    this.#last = 0x0a;
    if (last === 0x0a) return '';
    if (last === 0x0d || echoedLast) return '\n';
    return '\x1b[7m%\x1b[27m\n';
  }
}

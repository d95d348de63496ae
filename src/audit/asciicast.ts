/**
 * asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), the format asciinema
 * plays: one JSON header line, then one JSON array per event, `[seconds, code, data]` with
 * code "o" (output), "i" (input) or "r" (resize, data "COLSxROWS").
 *
 * Pure: lines in, lines out. The store (recording.ts) does the files.
 *
 * asciicast is text, terminal output is bytes: each stream (output, input) goes through its
 * own streaming UTF-8 decoder, so a character split across chunks stays whole and only bytes
 * that are not UTF-8 at all become U+FFFD — in the recording only; the operator's terminal
 * got the exact bytes.
 */

/** The header line's fields that shellwire writes (asciinema ignores ones it does not know). */
export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  /** Unix seconds when the recording started. */
  timestamp: number;
  /** Longest pause a player keeps, in seconds (asciinema's `idle_time_limit`). */
  idle_time_limit?: number;
  command?: string;
  title?: string;
  env?: Record<string, string>;
}

export type CastEventCode = 'o' | 'i' | 'r';
export type CastEvent = [seconds: number, code: CastEventCode, data: string];

/** The header as one line (with its newline). */
export function castHeaderLine(header: CastHeader): string {
  return `${JSON.stringify(header)}\n`;
}

/**
 * Seconds since the start as asciinema writes them: a float rounded to the microsecond.
 * Rounding is monotone, so non-decreasing clock readings stay non-decreasing.
 */
export function castSeconds(elapsedMs: number): number {
  return Math.round(Math.max(0, elapsedMs) * 1000) / 1e6;
}

/** One event as a line: `[1.234567, "o", "text"]\n`. */
export function castEventLine(seconds: number, code: CastEventCode, data: string): string {
  return `${JSON.stringify([seconds, code, data])}\n`;
}

/**
 * A streaming UTF-8 decoder for one stream of a recording: `push` returns the text of the
 * complete characters so far (a partial one waits for the next chunk), `end` flushes what
 * is left (a truncated character becomes U+FFFD). A leading BOM is kept: it is output.
 */
export class StreamText {
  #decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  push(chunk: Uint8Array): string {
    return this.#decoder.decode(chunk, { stream: true });
  }

  end(): string {
    return this.#decoder.decode();
  }
}

/** A parsed recording: the header and its events, in file order. */
export interface ParsedCast {
  header: CastHeader;
  events: CastEvent[];
}

/**
 * The header line. Throws `SyntaxError` when it is not an asciicast v2 header.
 */
export function parseCastHeader(line: string): CastHeader {
  let header: CastHeader;
  try {
    header = JSON.parse(line) as CastHeader;
  } catch {
    throw new SyntaxError('line 1: not an asciicast header (not JSON)');
  }
  if (typeof header !== 'object' || header === null || header.version !== 2) {
    throw new SyntaxError('line 1: not an asciicast v2 header ("version": 2 is missing)');
  }
  return header;
}

/**
 * One event line (`lineNumber` for the message). Returns null for codes this player does not
 * know ("m" markers of newer asciinema are skipped, as asciinema does) and for blank lines.
 * Throws `SyntaxError` naming the line for anything that is not `[number, string, string]`.
 */
export function parseCastEvent(line: string, lineNumber: number): CastEvent | null {
  if (line === '') return null;
  let event: unknown;
  try {
    event = JSON.parse(line);
  } catch {
    throw new SyntaxError(`line ${lineNumber}: not JSON`);
  }
  if (!Array.isArray(event) || event.length < 3 || typeof event[0] !== 'number' || !Number.isFinite(event[0]) ||
    typeof event[1] !== 'string' || typeof event[2] !== 'string') {
    throw new SyntaxError(`line ${lineNumber}: not an asciicast event [seconds, code, data]`);
  }
  return event[1] === 'o' || event[1] === 'i' || event[1] === 'r' ? [event[0], event[1], event[2]] : null;
}

/** Parse a whole .cast file (replay streams instead: parseCastHeader/parseCastEvent line by line). */
export function parseCast(text: string): ParsedCast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const header = parseCastHeader(lines[0] ?? '');
  const events: CastEvent[] = [];
  for (let i = 1; i < lines.length; i++) {
    const event = parseCastEvent(lines[i]!, i + 1);
    if (event !== null) events.push(event);
  }
  return { header, events };
}

export interface ScheduleOptions {
  /** Playback speed factor: 2 plays twice as fast. 0 or Infinity: no waiting. Default 1. */
  speed?: number;
  /** Longest pause kept between two events, in seconds (asciinema's `--idle-time-limit`). */
  idleLimit?: number;
}

/** One step of playback: wait `delayMs` after the previous step, then apply `event`. */
export interface PlaybackStep {
  delayMs: number;
  event: CastEvent;
}

/**
 * When each event is played, as asciinema does: the gap since the previous event (never
 * negative: a file edited out of order does not travel back in time), capped at `idleLimit`
 * (or the header's `idle_time_limit`), divided by `speed`. One event at a time, so a long
 * recording streams; pure, so it is tested as logic, not by the clock.
 */
export class PlaybackClock {
  #speed: number;
  #idleLimit: number;
  #previous = 0;

  constructor(header: CastHeader, options: ScheduleOptions = {}) {
    this.#speed = options.speed ?? 1;
    this.#idleLimit = options.idleLimit ?? header.idle_time_limit ?? Infinity;
  }

  /** Milliseconds to wait before the event at `seconds`. */
  delayBefore(seconds: number): number {
    const gap = Math.min(Math.max(0, seconds - this.#previous), this.#idleLimit);
    this.#previous = Math.max(this.#previous, seconds);
    return this.#speed === 0 || this.#speed === Infinity ? 0 : (gap * 1000) / this.#speed;
  }
}

/** The whole schedule of a parsed recording (see PlaybackClock). */
export function playbackSchedule(cast: ParsedCast, options: ScheduleOptions = {}): PlaybackStep[] {
  const clock = new PlaybackClock(cast.header, options);
  return cast.events.map((event) => ({ delayMs: clock.delayBefore(event[0]), event }));
}

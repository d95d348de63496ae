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
 * Parse a whole .cast file. Throws `SyntaxError` naming the line for anything that is not
 * asciicast v2 (a bad header, a line that is not `[number, "o"|"i"|"r", string]`).
 * Unknown event codes ("m" markers of newer asciinema) are skipped, as asciinema does.
 */
export function parseCast(text: string): ParsedCast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let header: CastHeader;
  try {
    header = JSON.parse(lines[0] ?? '') as CastHeader;
  } catch {
    throw new SyntaxError('line 1: not an asciicast header (not JSON)');
  }
  if (typeof header !== 'object' || header === null || header.version !== 2) {
    throw new SyntaxError('line 1: not an asciicast v2 header ("version": 2 is missing)');
  }
  const events: CastEvent[] = [];
  for (let i = 1; i < lines.length; i++) {
    let event: unknown;
    try {
      event = JSON.parse(lines[i]!);
    } catch {
      throw new SyntaxError(`line ${i + 1}: not JSON`);
    }
    if (!Array.isArray(event) || event.length < 3 || typeof event[0] !== 'number' || !Number.isFinite(event[0]) ||
      typeof event[1] !== 'string' || typeof event[2] !== 'string') {
      throw new SyntaxError(`line ${i + 1}: not an asciicast event [seconds, code, data]`);
    }
    if (event[1] === 'o' || event[1] === 'i' || event[1] === 'r') events.push([event[0], event[1], event[2]]);
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
 * (or the header's `idle_time_limit`), divided by `speed`. Pure, so it is tested as logic,
 * not by the clock.
 */
export function playbackSchedule(cast: ParsedCast, options: ScheduleOptions = {}): PlaybackStep[] {
  const speed = options.speed ?? 1;
  const idleLimit = options.idleLimit ?? cast.header.idle_time_limit ?? Infinity;
  const noWait = speed === 0 || speed === Infinity;
  let previous = 0;
  return cast.events.map((event) => {
    const gap = Math.min(Math.max(0, event[0] - previous), idleLimit);
    previous = Math.max(previous, event[0]);
    return { delayMs: noWait ? 0 : (gap * 1000) / speed, event };
  });
}

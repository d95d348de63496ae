/**
 * Splitting one output stream into lines, as bytes. Chunks arrive cut anywhere (a window's
 * worth, a pipe's worth): in the middle of a line, in the middle of a UTF-8 character. The
 * splitter carries the unfinished line across chunks as bytes — nothing is decoded here, so
 * nothing is lost or replaced — and hands out whole lines. At the end the unterminated tail
 * comes out marked as such. Memory is bounded: a line longer than `maxLine` bytes is handed
 * out in pieces marked `continued`, cut between characters where the bytes are UTF-8.
 *
 * The invariant (test/unit/fleet-lines.test.ts): for any bytes and any chunking,
 * concatenating every line's bytes, plus "\n" for each `end: 'newline'`, gives the input back.
 */

/**
 * Longest line handed out whole; a longer one comes in `continued` pieces of at most this
 * size. It bounds what a run holds for unfinished lines: a host's splitters are ended with
 * its result, so at most `fanout` × 2 streams × this (128 MiB at the default fanout of 64,
 * reached only if every running host is in the middle of a line of a mebibyte).
 */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * How a line ended: `newline` (a "\n", not included in `bytes`), `eof` (the stream ended
 * without one), `continued` (a piece of a line longer than `maxLine`; the line goes on in
 * the next line of this stream).
 */
export type LineEnd = 'newline' | 'eof' | 'continued';

export interface Line {
  bytes: Buffer;
  end: LineEnd;
}

const NEWLINE = 0x0a;

/** One stream's line splitter: `push()` every chunk, then `end()`. */
export class LineSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #maxLine: number;

  constructor(maxLine = MAX_LINE_BYTES) {
    if (!Number.isInteger(maxLine) || maxLine < 4) throw new RangeError(`maxLine must be an integer ≥ 4 (one UTF-8 character), got ${maxLine}`);
    this.#maxLine = maxLine;
  }

  /** Bytes held for an unfinished line (at most `maxLine`). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** The lines `chunk` completes (and the pieces of an over-long line). */
  push(chunk: Uint8Array): Line[] {
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const lines: Line[] = [];
    let start = 0;
    for (let nl = data.indexOf(NEWLINE, start); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
      this.#hold(data.subarray(start, nl), lines);
      lines.push({ bytes: this.#take(this.#pendingBytes), end: 'newline' });
      start = nl + 1;
    }
    this.#hold(data.subarray(start), lines);
    return lines;
  }

  /** The unterminated last line, if the stream did not end with "\n". The splitter is reset. */
  end(): Line[] {
    if (this.#pendingBytes === 0) return [];
    return [{ bytes: this.#take(this.#pendingBytes), end: 'eof' }];
  }

  /** Keep `part` of the current line; past `maxLine`, hand out `continued` pieces. */
  #hold(part: Buffer, lines: Line[]): void {
    if (part.length > 0) {
      // Copy: the caller's chunk may be a view of a buffer that is reused.
      this.#pending.push(Buffer.from(part));
      this.#pendingBytes += part.length;
    }
    while (this.#pendingBytes > this.#maxLine) {
      const head = this.#take(this.#pendingBytes);
      const cut = characterBoundary(head, this.#maxLine);
      lines.push({ bytes: head.subarray(0, cut), end: 'continued' });
      const rest = head.subarray(cut);
      this.#pending = rest.length > 0 ? [rest] : [];
      this.#pendingBytes = rest.length;
    }
  }

  /** The pending bytes as one buffer (they are all of the current line). */
  #take(bytes: number): Buffer {
    const out = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, bytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    return out;
  }
}

/**
 * Where to cut `bytes` at or before `at` so that a UTF-8 character is not split: if the
 * bytes from `at` back to a lead byte are continuation bytes that the lead byte claims, cut
 * before the lead byte. Only `bytes[0..at]` are looked at, so where a line is cut does not
 * depend on how much of it has arrived. Bytes that are not UTF-8 may be cut anywhere
 * (their record is base64 either way); the cut is never 0 when `at` > 3.
 */
export function characterBoundary(bytes: Uint8Array, at: number): number {
  if (at <= 0 || at >= bytes.length) return Math.max(0, Math.min(at, bytes.length));
  let lead = at;
  while (lead > 0 && at - lead < 3 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  if (lead === at) return at;
  return lead + sequenceLength(bytes[lead]!) > at ? lead : at;
}

/** How many bytes a UTF-8 sequence starting with `lead` has (1 for anything that is not a lead byte). */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 1;
}

/** A line of one host's stream. */
export interface HostLine {
  host: string;
  stream: 'stdout' | 'stderr';
  line: Line;
}

/** One `LineSplitter` per host and stream, made on first use and dropped at its end. */
export class HostLines {
  #splitters = new Map<string, { host: string; stream: 'stdout' | 'stderr'; splitter: LineSplitter }>();
  #maxLine: number;

  constructor(maxLine = MAX_LINE_BYTES) {
    this.#maxLine = maxLine;
  }

  push(host: string, stream: 'stdout' | 'stderr', data: Uint8Array): Line[] {
    const key = `${stream}\0${host}`;
    let entry = this.#splitters.get(key);
    if (!entry) this.#splitters.set(key, (entry = { host, stream, splitter: new LineSplitter(this.#maxLine) }));
    return entry.splitter.push(data);
  }

  /** The host's unterminated last lines, stdout first. */
  end(host: string): HostLine[] {
    const out: HostLine[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const key = `${stream}\0${host}`;
      const entry = this.#splitters.get(key);
      if (!entry) continue;
      this.#splitters.delete(key);
      for (const line of entry.splitter.end()) out.push({ host, stream, line });
    }
    return out;
  }

  /** Every host's unterminated last lines (output that arrived after its result, if any). */
  endAll(): HostLine[] {
    const hosts = new Set([...this.#splitters.values()].map((e) => e.host));
    return [...hosts].flatMap((host) => this.end(host));
  }
}

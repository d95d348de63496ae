/**
 * `run --json`: JSON Lines on stdout, byte-exact. Output is split per host and stream into
 * lines as bytes (line-splitter.ts), one record per line; a record's bytes go out as text
 * (`data`) when they are valid UTF-8 and as base64 (`dataBase64`) when not, so decoding the
 * records and concatenating them gives back exactly what the command wrote, wherever the
 * chunks were cut. Results carry `stdout`/`stderr` by the same rule. Schema: README "JSON
 * Lines" and test/integration/fleet-helpers.ts `JSON_LINE_SCHEMA`.
 */
import { isUtf8 } from 'node:buffer';
import { HostLines, MAX_LINE_BYTES, type Line } from './line-splitter.js';
import type { FleetEvent, HostResult } from './results.js';

/**
 * `{ [name]: text }` when `bytes` are valid UTF-8, else `{ [name + 'Base64']: base64 }`:
 * exactly one of the two keys, never text with U+FFFD in it.
 */
export function bytesField<N extends string>(name: N, bytes: Uint8Array): Record<N, string> | Record<`${N}Base64`, string> {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buf)) return { [name]: buf.toString('utf8') } as Record<N, string>;
  return { [`${name}Base64`]: buf.toString('base64') } as Record<`${N}Base64`, string>;
}

/** The bytes an output record or result field stands for (the inverse of `bytesField`). */
export function fieldBytes(record: Record<string, unknown>, name: string): Buffer | null {
  const text = record[name];
  if (typeof text === 'string') return Buffer.from(text, 'utf8');
  const b64 = record[`${name}Base64`];
  return typeof b64 === 'string' ? Buffer.from(b64, 'base64') : null;
}

/** The `result` record of a host: its result with the output by the JSON rule. */
export function resultRecord(result: HostResult): Record<string, unknown> {
  const { stdout: _stdout, stderr: _stderr, stdoutBytes, stderrBytes, ...rest } = result;
  const { truncated, error, batch, ...head } = rest;
  return { type: 'result', ...head, ...bytesField('stdout', stdoutBytes), ...bytesField('stderr', stderrBytes), truncated, error, batch };
}

/** Turns fleet events into JSON Lines; keep one per run (it holds each stream's unfinished line). */
export class JsonLines {
  #lines: HostLines;

  /** `maxLine`: a longer line comes in records marked `"partial": true` (default 1 MiB). */
  constructor(maxLine = MAX_LINE_BYTES) {
    this.#lines = new HostLines(maxLine);
  }

  /** The records `event` completes, each ending in "\n" ('' when none). */
  records(event: FleetEvent): string {
    switch (event.type) {
      case 'output':
        return this.#lines.push(event.host, event.stream, event.data).map((line) => outputRecord(event.host, event.stream, line)).join('');
      case 'result':
        return this.#ends(this.#lines.end(event.host)) + `${JSON.stringify(resultRecord(event.result))}\n`;
      case 'batch':
        return `${JSON.stringify(event)}\n`;
      case 'summary': {
        const { results: _results, ...counts } = event.summary;
        return this.#ends(this.#lines.endAll()) + `${JSON.stringify({ type: 'summary', ...counts })}\n`;
      }
      default:
        return '';
    }
  }

  #ends(lines: ReturnType<HostLines['end']>): string {
    return lines.map((l) => outputRecord(l.host, l.stream, l.line)).join('');
  }
}

function outputRecord(host: string, stream: 'stdout' | 'stderr', line: Line): string {
  const bytes = line.end === 'newline' ? Buffer.concat([line.bytes, NEWLINE]) : line.bytes;
  const record = { type: 'output', host, stream, ...bytesField('data', bytes), ...(line.end === 'continued' ? { partial: true } : {}) };
  return `${JSON.stringify(record)}\n`;
}

const NEWLINE = Buffer.of(0x0a);

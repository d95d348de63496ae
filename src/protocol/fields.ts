/**
 * Field readers shared by the decoders of messages.ts and file-messages.ts: each checks one
 * field of a JSON control payload and throws the decoder's own BAD_MESSAGE error (`bad`), so
 * the two message families word their errors their way but validate the same way.
 */
import { ErrorCode, ProtocolError } from '../errors.js';
import { frameTypeName, type FrameType } from './frame.js';

export type Json = Record<string, unknown>;
export type BadMessage = (type: FrameType, why: string) => ProtocolError;

export interface FieldReaders {
  str(type: FrameType, o: Json, key: string, optional: true): string | undefined;
  str(type: FrameType, o: Json, key: string, optional?: false): string;
  int(type: FrameType, o: Json, key: string, min: number, max: number, optional: true): number | undefined;
  int(type: FrameType, o: Json, key: string, min: number, max: number, optional?: false): number;
}

export function fieldReaders(bad: BadMessage): FieldReaders {
  function str(type: FrameType, o: Json, key: string, optional: true): string | undefined;
  function str(type: FrameType, o: Json, key: string, optional?: false): string;
  function str(type: FrameType, o: Json, key: string, optional = false): string | undefined {
    const v = o[key];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string') throw bad(type, `"${key}" must be a string`);
    return v;
  }
  function int(type: FrameType, o: Json, key: string, min: number, max: number, optional: true): number | undefined;
  function int(type: FrameType, o: Json, key: string, min: number, max: number, optional?: false): number;
  function int(type: FrameType, o: Json, key: string, min: number, max: number, optional = false): number | undefined {
    const v = o[key];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(type, `"${key}" must be an integer from ${min} to ${max}`);
    return v;
  }
  return { str, int };
}

/** The BAD_MESSAGE error of the control messages (messages.ts): "Malformed OPEN message: …". */
export function malformed(type: FrameType, why: string): ProtocolError {
  return new ProtocolError(ErrorCode.BAD_MESSAGE, `Malformed ${frameTypeName(type)} message: ${why}.`);
}

/** A control payload as a JSON object, or a BAD_MESSAGE ProtocolError naming the frame. */
export function parseJsonObject(type: FrameType, payload: Buffer): Json {
  const value = parseWireJson(payload, (why) => malformed(type, why));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(type, 'payload is not a JSON object');
  return value as Json;
}

// Fatal: a byte sequence that is not UTF-8 (a stray 0xE9, an overlong C0 AF, a lone surrogate
// encoded as ED A0 80) is refused, never turned into U+FFFD. A BOM is kept, so JSON.parse refuses it.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * JSON from the wire, as docs/protocol.md §4 defines it: UTF-8, one value, and no object
 * with the same key twice. Every decoder of the peer's JSON (both sides) ends here. Duplicate
 * keys are refused because parsers disagree on them (JSON.parse keeps the last, others the
 * first): a filtering proxy could then see one command while the daemon runs another.
 * `bad(why)` builds the caller's error.
 */
export function parseWireJson(payload: Uint8Array | string, bad: (why: string) => Error): unknown {
  let text: string;
  if (typeof payload === 'string') text = payload;
  else {
    try {
      text = UTF8.decode(payload);
    } catch {
      throw bad('payload is not valid UTF-8');
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('payload is not JSON');
  }
  const duplicate = duplicateKey(text);
  if (duplicate !== null) throw bad(`key ${JSON.stringify(duplicate)} appears twice in one object`);
  return value;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The first key that appears twice in one object of `text`, else null. `text` must be valid
 * JSON (JSON.parse accepted it), so a scan of brackets, commas and strings is enough: one pass,
 * linear in the text (each key is decoded once, with its escapes: "a" and "\u0061" are one key).
 */
export function duplicateKey(text: string): string | null {
  // One entry per open container: the keys of an object, or null for an array.
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (escaped) escaped = false;
        else if (d === BACKSLASH) escaped = true;
        else if (d === QUOTE) break;
      }
      const keys = stack.length > 0 ? stack[stack.length - 1] : null;
      if (expectKey && keys) {
        const raw = text.slice(start + 1, i);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(start, i + 1)) as string) : raw;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
    } else if (c === 0x7b) { // {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) { // [
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d || c === 0x5d) { // } ]
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) { // ,
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return null;
}

/** A control message's UTF-8 JSON payload. Every encoder of messages.ts and file-messages.ts ends here. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

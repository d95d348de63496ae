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
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw malformed(type, 'payload is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(type, 'payload is not a JSON object');
  return value as Json;
}

/** A control message's UTF-8 JSON payload. Every encoder of messages.ts and file-messages.ts ends here. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

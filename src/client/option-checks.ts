/**
 * Checks of a library caller's numeric, boolean and enum options, made before anything is
 * sent or dialled: JavaScript callers get no type check, and a wrong type that reached
 * `Buffer.subarray`, `setTimeout` or a frame encoder would surface as an uncaught
 * RangeError, a promise that never settles, or an OPEN the daemon must refuse. Each failure
 * is a `RequestError` `SW_ERR_BAD_REQUEST` naming the option (as `checkTimeout` does).
 */
import { ErrorCode, RequestError } from '../errors.js';

/** The largest delay `setTimeout` takes (ms); a larger one fires at once. */
export const MAX_DELAY_MS = 2 ** 31 - 1;

function bad(message: string): RequestError {
  return new RequestError(ErrorCode.BAD_REQUEST, message);
}

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return typeof value === 'object' && value !== null ? (Array.isArray(value) ? 'an array' : 'an object') : String(value);
}

export interface IntegerRule {
  min: number;
  max: number;
  /** `Infinity` is accepted (no limit), as Node's `maxBuffer`. */
  infinity?: boolean;
  /** What the unit is, for the message: "bytes", "milliseconds". */
  unit?: string;
  /** A note on special values, for the message: "0 for none". */
  note?: string;
}

/** An integer option in `[min, max]` (or undefined); anything else throws naming `option`. */
export function checkInteger(value: unknown, option: string, rule: IntegerRule): number | undefined {
  if (value === undefined) return undefined;
  if (rule.infinity && value === Infinity) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || value > rule.max) {
    const unit = rule.unit ? ` of ${rule.unit}` : '';
    const range = `${rule.min} to ${rule.max}${rule.infinity ? ' (or Infinity)' : ''}`;
    throw bad(`The ${option} option must be an integer${unit} from ${range}${rule.note ? `, ${rule.note}` : ''}, got ${shown(value)}.`);
  }
  return value;
}

/** A finite number option in `[min, max]` (or undefined). */
export function checkNumber(value: unknown, option: string, rule: { min: number; max?: number; unit?: string; note?: string }): number | undefined {
  if (value === undefined) return undefined;
  const max = rule.max ?? Number.MAX_VALUE;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || value > max) {
    const unit = rule.unit ? ` of ${rule.unit}` : '';
    const range = rule.max === undefined ? `at least ${rule.min}` : `from ${rule.min} to ${rule.max}`;
    throw bad(`The ${option} option must be a number${unit} ${range}${rule.note ? `, ${rule.note}` : ''}, got ${shown(value)}.`);
  }
  return value;
}

/** A boolean option (or undefined): `'false'` is a string, not false. */
export function checkBoolean(value: unknown, option: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw bad(`The ${option} option must be true or false, got ${shown(value)}.`);
}

/** A callback option (or undefined). */
export function checkFunction(value: unknown, option: string): void {
  if (value !== undefined && typeof value !== 'function') throw bad(`The ${option} option must be a function, got ${shown(value)}.`);
}

/** A string option (or undefined). */
export function checkString(value: unknown, option: string): void {
  if (value !== undefined && typeof value !== 'string') throw bad(`The ${option} option must be a string, got ${shown(value)}.`);
}

/** One of `choices` (or undefined). */
export function checkChoice<T extends string>(value: unknown, option: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw bad(`The ${option} option must be ${choices.slice(0, -1).map((c) => `'${c}'`).join(', ')} or '${choices[choices.length - 1]}', got ${shown(value)}.`);
}

/** An `AbortSignal` (or undefined): anything else would be ignored, and the caller could not cancel. */
export function checkAbortSignal(value: unknown, option = 'signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (value instanceof AbortSignal) return value;
  throw bad(`The ${option} option must be an AbortSignal (new AbortController().signal), got ${shown(value)}.`);
}

/** The options argument itself: an object (or undefined). */
export function checkOptionsObject(value: unknown, what: string): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`The options of ${what} must be an object, got ${shown(value)}.`);
}

/**
 * `maxBuffer`: bytes of output kept per stream, 0 to `Number.MAX_SAFE_INTEGER` or Infinity
 * (no limit). 0 keeps none: for `exec` any output is then an overflow (as Node's
 * `child_process` maxBuffer), for `runOn` output is counted, not kept. It is not "none" as
 * `timeoutMs: 0` is: a cap of 0 bytes is a cap.
 */
export function checkMaxBuffer(value: unknown, option = 'maxBuffer'): number | undefined {
  return checkInteger(value, option, { min: 0, max: Number.MAX_SAFE_INTEGER, infinity: true, unit: 'bytes', note: '0 keeps none' });
}

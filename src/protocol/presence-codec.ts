/**
 * An agent's signed presence record on the wire (docs/nats.md, "Discovery and presence"): what it
 * answers to discovery (`P.discover`) and announces (`P.presence.NAME`). Pure: no I/O, no clock,
 * no keys (signing and checking: auth/presence-auth.ts).
 *
 *   message: body "\n" algorithm " " signature      (signature: standard base64, padded)
 *   body:    compact JSON, keys in this order: {"v":1,"name","labels","fingerprint","spki",
 *            "version","startedAt","issuedAt"[,"gone":true]}; labels' keys in code-unit order
 *   signed:  "shellwire-presence-v1\0" | u32 BE body length | body     (broadcast-codec `signedBytes`)
 *
 * As with broadcast envelopes, the signature covers the body's exact bytes and the body must be
 * the canonical encoding of what it says (`encode(decode(body))` is the same bytes): one meaning
 * has one byte string, and a changed byte is garbage or an unsigned meaning. The context string
 * differs from the broadcast ones, so no presence signature is a valid broadcast result
 * signature or the other way round, although the same host key makes both. The body holds no
 * raw newline (JSON escapes it), so the first "\n" ends it.
 */
import { RESULT_ALGORITHM, signedBytes, type Signature, type Signed } from './broadcast-codec.js';
import { isAgentName, type PresenceRecord } from './nats-subjects.js';

export const PRESENCE_CONTEXT = Buffer.from('shellwire-presence-v1\0', 'latin1');
/** The host-key signature algorithm (the one broadcast results use): ECDSA P-256, SHA-256, r|s fixed width. */
export const PRESENCE_ALGORITHM = RESULT_ALGORITHM;
/** A presence message larger than this is not decoded (a record is about 400 bytes). */
export const MAX_PRESENCE_BYTES = 16 * 1024;

/** What `--labels` accepts (cli/serve-config.ts `parseLabels`); `__proto__` is no label. */
const LABEL_KEY = /^[A-Za-z0-9_./-]{1,63}$/;
const MAX_LABEL_VALUE = 253;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_SPKI = 2048;
const MAX_VERSION = 64;
const KEYS = ['v', 'name', 'labels', 'fingerprint', 'spki', 'version', 'startedAt', 'issuedAt', 'gone'];

/** Why bytes are not a presence message. Never answered: the receiver drops it. */
export class PresenceDecodeError extends Error {
  override name = 'PresenceDecodeError';
}

/** Why `record` cannot be encoded (and would not be accepted), or null. */
export function presenceProblem(record: PresenceRecord): string | null {
  if (typeof record.name !== 'string' || !isAgentName(record.name)) return 'name is not an agent name (1 to 64 of A-Z a-z 0-9 _ -)';
  if (typeof record.labels !== 'object' || record.labels === null || Array.isArray(record.labels)) return 'labels is not an object';
  for (const [key, value] of Object.entries(record.labels)) {
    if (!LABEL_KEY.test(key) || key === '__proto__') return `label key ${JSON.stringify(key.slice(0, 80))} is not 1 to 63 of A-Z a-z 0-9 _ . / -`;
    if (typeof value !== 'string' || value.length > MAX_LABEL_VALUE || /[\0,]/.test(value)) return `label ${key}'s value is not a string of at most ${MAX_LABEL_VALUE} characters without NUL or ","`;
  }
  if (typeof record.fingerprint !== 'string' || !FINGERPRINT.test(record.fingerprint)) return 'fingerprint is not SHA256:…';
  if (typeof record.spki !== 'string' || record.spki.length > MAX_SPKI || !BASE64.test(record.spki)) return 'spki is not base64';
  if (typeof record.version !== 'string' || record.version.length > MAX_VERSION) return `version is not a string of at most ${MAX_VERSION} characters`;
  if (typeof record.startedAt !== 'string' || !ISO.test(record.startedAt)) return 'startedAt is not an ISO 8601 time';
  if (typeof record.issuedAt !== 'string' || !ISO.test(record.issuedAt)) return 'issuedAt is not an ISO 8601 time';
  if (record.gone !== undefined && record.gone !== true) return 'gone is not true';
  return null;
}

/**
 * The canonical body of `record`.
 * @throws {RangeError} the record is not one a receiver would accept (`presenceProblem`).
 */
export function encodePresenceBody(record: PresenceRecord): Buffer {
  const problem = presenceProblem(record);
  if (problem) throw new RangeError(`presence record: ${problem}`);
  // Written out by hand: a JS object puts integer-like keys ("10") first whatever the order of insertion.
  const labels = Object.keys(record.labels).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(record.labels[k])}`).join(',');
  const s = JSON.stringify;
  return Buffer.from(
    `{"v":1,"name":${s(record.name)},"labels":{${labels}},"fingerprint":${s(record.fingerprint)},"spki":${s(record.spki)},` +
      `"version":${s(record.version)},"startedAt":${s(record.startedAt)},"issuedAt":${s(record.issuedAt)}${record.gone ? ',"gone":true' : ''}}`,
    'utf8',
  );
}

/** The bytes a signature covers. */
export function presenceSignedBytes(body: Buffer): Buffer {
  return signedBytes(PRESENCE_CONTEXT, body);
}

/** The message: the body as signed, then its signature. */
export function encodePresence(body: Buffer, signature: Signature): Buffer {
  if (!/^[a-z0-9-]{1,64}$/.test(signature.algorithm)) throw new RangeError('bad algorithm name');
  return Buffer.concat([body, Buffer.from(`\n${signature.algorithm} ${signature.signature.toString('base64')}`, 'latin1')]);
}

/** @throws {PresenceDecodeError} for anything that is not a well-formed, canonical presence message. */
export function decodePresence(bytes: Uint8Array): Signed<PresenceRecord> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length > MAX_PRESENCE_BYTES) throw new PresenceDecodeError(`presence message of ${buf.length} bytes exceeds ${MAX_PRESENCE_BYTES}`);
  const newline = buf.indexOf(0x0a);
  if (newline < 0) throw new PresenceDecodeError('no signature line (an unsigned record?)');
  const body = buf.subarray(0, newline);
  const trailer = /^([a-z0-9-]{1,64}) ([A-Za-z0-9+/]+={0,2})$/.exec(buf.subarray(newline + 1).toString('latin1'));
  if (!trailer) throw new PresenceDecodeError('the signature line is not "ALGORITHM BASE64"');
  const signature = Buffer.from(trailer[2]!, 'base64');
  if (signature.toString('base64') !== trailer[2]) throw new PresenceDecodeError('the signature is not canonical base64');
  let json: unknown;
  try {
    // fatal: not UTF-8 is not ours (the encoder writes lone surrogates as \u escapes).
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (err) {
    throw new PresenceDecodeError(`the record is not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PresenceDecodeError('the record is not a JSON object');
  const o = json as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => !KEYS.includes(k));
  if (unknown !== undefined) throw new PresenceDecodeError(`unknown field ${JSON.stringify(unknown.slice(0, 40))}`);
  if (o.v !== 1) throw new PresenceDecodeError('not version 1');
  const labels = o.labels;
  const record: PresenceRecord = {
    name: o.name as string,
    labels: typeof labels === 'object' && labels !== null && !Array.isArray(labels) ? Object.fromEntries(Object.entries(labels)) as Record<string, string> : (labels as Record<string, string>),
    fingerprint: o.fingerprint as string,
    spki: o.spki as string,
    version: o.version as string,
    startedAt: o.startedAt as string,
    issuedAt: o.issuedAt as string,
    ...(o.gone !== undefined ? { gone: o.gone as boolean } : {}),
  };
  const problem = presenceProblem(record);
  if (problem) throw new PresenceDecodeError(`the record does not fit: ${problem}`);
  if (!encodePresenceBody(record).equals(body)) throw new PresenceDecodeError('the record is not in canonical form');
  return { body: record, bodyBytes: Buffer.from(body), signature: { algorithm: trailer[1]!, signature } };
}

/**
 * Broadcast requests and results (docs/nats.md, "Broadcast"): what `run --via nats://` publishes
 * and what each agent answers. Pure: no I/O, no clock, no keys.
 *
 * Both travel in one envelope, and the signature covers the body's exact bytes, so nothing is
 * re-serialised between signing and verifying (no canonical-JSON ambiguity). The body must also
 * be the canonical encoding of what it says (`encode(decode(body))` gives the same bytes), so one
 * meaning has one byte string and a changed byte is either garbage or a different, unsigned meaning.
 *
 *   envelope: "SWB1" | u8 kind (1 request, 2 result) | u32 BE body length | body (compact JSON,
 *             keys in the fixed order below) | u16 BE algorithm length | algorithm (ASCII) |
 *             u16 BE signature length | signature
 *             [requests only: | u32 BE names length | names]
 *   signed:   context ("shellwire-broadcast-v1\0" or "shellwire-broadcast-result-v1\0") | u32 BE body length | body
 *   request body: u32 BE JSON length | JSON (every field but `targets`) | manifest
 *   manifest: "\n" (SHARD " " DIGEST "\n")+   one line per shard with targets, SHARD ascending
 *   names:    "\n" NAME ("\n" NAME)* "\n"      the targets of ONE shard, in the client's order
 *
 * Sharding: the targets are split into BROADCAST_SHARDS shards by `shardOf(name)` (the first
 * byte of SHA-256(name), two hex digits), and one message per shard with targets is published on
 * `PREFIX.bcast.SHARD`, where only that shard's agents listen. Every message carries the same
 * signed body, whose manifest holds the SHA-256 (base64url) of each shard's names; the names of
 * its own shard ride unsigned after the signature, and an agent accepts them only if their digest
 * is its shard's line of the manifest. So the operator signs once (one ssh-agent or token
 * operation, one nonce), and an agent receives its shard's names (about 40 of 10,000) and a
 * 12 KB manifest instead of every name: a 10,000-agent run moved about 800 MB through the
 * broker with all names in one message (measured), about 130 MB sharded.
 *
 * Strings are OS byte strings (protocol/os-bytes.ts): a non-UTF-8 byte is a lone surrogate, which
 * JSON carries as a `\udcXX` escape, so commands, env and cwd keep their bytes.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const BROADCAST_VERSION = 1;
const MAGIC = Buffer.from('SWB1', 'latin1');
export const REQUEST_CONTEXT = Buffer.from('shellwire-broadcast-v1\0', 'latin1');
export const RESULT_CONTEXT = Buffer.from('shellwire-broadcast-result-v1\0', 'latin1');
/** A request is good for at most this long after it was issued. */
export const MAX_REQUEST_LIFETIME_MS = 60_000;
/** Clock difference tolerated between the operator's machine and an agent. */
export const CLOCK_SKEW_MS = 30_000;
/** Output kept per stream by default (`maxOutput`); more is counted and `truncated` is set. */
export const DEFAULT_BROADCAST_MAX_OUTPUT = 256 * 1024;
/** The most a request may ask for per stream: two such streams in base64 stay under NATS's default 1 MiB payload. */
export const MAX_BROADCAST_OUTPUT = 256 * 1024;
/** An envelope larger than this is not decoded (NATS's default max_payload). */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;
/** Bytes of randomness in a request id (the nonce). */
export const NONCE_BYTES = 16;
/** The host-key signature algorithm of results: ECDSA P-256 with SHA-256, r|s fixed width (IEEE P1363). */
export const RESULT_ALGORITHM = 'ecdsa-p256-sha256';

/** Shards of a broadcast: agent NAME listens on `PREFIX.bcast.` + `shardOf(NAME)`. */
export const BROADCAST_SHARDS = 256;

/** The shard of an agent name: the first byte of SHA-256(name) as two lowercase hex digits ("00"…"ff"). */
export function shardOf(name: string): string {
  return createHash('sha256').update(name, 'latin1').digest('hex').slice(0, 2);
}

const KIND_REQUEST = 1;
const KIND_RESULT = 2;

/** An agent name as NATS subjects take it (NATS-SPEC: `[A-Za-z0-9_-]`, at most 64). */
export const AGENT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const NONCE = /^[A-Za-z0-9_-]{22}$/;
const isoTime = z.string().regex(ISO);
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);

export interface BroadcastRequest {
  v: 1;
  /** 16 random bytes, base64url (22 characters): the nonce. */
  id: string;
  user: string;
  /** The operator's key, as an authorized_keys line (`TYPE AAAA… [comment]`). */
  publicKey: string;
  targets: string[];
  /** Run by the user's shell as exec does (`/bin/sh -c`); exactly one of `command` and `argv`. */
  command?: string;
  argv?: string[];
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs: number;
  maxOutput: number;
  issuedAt: string;
  expiresAt: string;
  /** Where results go (the client's inbox): covered by the signature, so it cannot be redirected. */
  replyTo: string;
}

export interface BroadcastResult {
  v: 1;
  /** The request's id. */
  id: string;
  /** The agent's name. */
  name: string;
  /** `SHA256:…` of `spki`: what the client's known_hosts pins under `nats:NAME`. */
  fingerprint: string;
  /** The agent's public key (DER SubjectPublicKeyInfo, base64) the signature is checked with. */
  spki: string;
  exitCode: number | null;
  signal: string | null;
  /** Output kept, base64 (at most the request's `maxOutput` bytes per stream). */
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
  /** The agent refused or could not run the command: why (a stable code and the message the operator sees). */
  error?: { code: string; message: string };
}

export interface Signature {
  /** SSH algorithm name for requests (`ssh-ed25519`, `rsa-sha2-512`, …); `RESULT_ALGORITHM` for results. */
  algorithm: string;
  signature: Buffer;
}

export interface Signed<T> {
  body: T;
  /** The body's bytes exactly as signed. */
  bodyBytes: Buffer;
  signature: Signature;
}

const osString = z.string();
const requestSchema = z.strictObject({
  v: z.literal(1),
  id: z.string().regex(NONCE),
  user: z.string().min(1).max(256),
  publicKey: z.string().min(1).max(16 * 1024),
  command: osString.optional(),
  argv: z.array(osString).min(1).optional(),
  env: z.record(z.string(), osString).optional(),
  cwd: osString.optional(),
  timeoutMs: z.number().int().min(1).max(24 * 3600 * 1000),
  maxOutput: z.number().int().min(0).max(MAX_BROADCAST_OUTPUT),
  issuedAt: isoTime,
  expiresAt: isoTime,
  replyTo: z.string().min(1).max(512).regex(/^[!-~]+$/),
}).refine((r) => (r.command === undefined) !== (r.argv === undefined), { message: 'exactly one of command and argv' });

const resultSchema = z.strictObject({
  v: z.literal(1),
  id: z.string().regex(NONCE),
  name: z.string().regex(AGENT_NAME),
  fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/),
  spki: base64.min(1).max(4096),
  exitCode: z.number().int().min(0).max(255).nullable(),
  signal: z.string().max(32).nullable(),
  stdout: base64,
  stderr: base64,
  truncated: z.boolean(),
  timedOut: z.boolean(),
  durationMs: z.number().int().min(0),
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(4096) }).optional(),
});

// The fixed key orders of the canonical bodies.
const REQUEST_KEYS = ['v', 'id', 'user', 'publicKey', 'command', 'argv', 'env', 'cwd', 'timeoutMs', 'maxOutput', 'issuedAt', 'expiresAt', 'replyTo'] as const;
const RESULT_KEYS = ['v', 'id', 'name', 'fingerprint', 'spki', 'exitCode', 'signal', 'stdout', 'stderr', 'truncated', 'timedOut', 'durationMs', 'error'] as const;

function canonicalJson(value: object, keys: readonly string[]): Buffer {
  const record = value as Record<string, unknown>;
  const ordered: Record<string, unknown> = {};
  for (const key of keys) if (record[key] !== undefined) ordered[key] = key === 'env' ? sortedRecord(record[key] as Record<string, string>) : record[key];
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(record).sort()) out[key] = record[key]!;
  return out;
}

/** The targets by shard, each as its names section ("\n" NAME … "\n"), shards ascending. */
export function shardTargets(targets: readonly string[]): Map<string, Buffer> {
  if (targets.length === 0) throw new RangeError('no targets');
  const byShard = new Map<string, string[]>();
  for (const name of targets) {
    if (!AGENT_NAME.test(name)) throw new RangeError(`not an agent name: ${JSON.stringify(name)}`);
    const shard = shardOf(name);
    const list = byShard.get(shard);
    if (list) list.push(name);
    else byShard.set(shard, [name]);
  }
  const out = new Map<string, Buffer>();
  for (const shard of [...byShard.keys()].sort()) out.set(shard, Buffer.from(`\n${byShard.get(shard)!.join('\n')}\n`, 'latin1'));
  return out;
}

const namesDigest = (names: Buffer) => createHash('sha256').update(names).digest('base64url');

/** The canonical body bytes of a request (what is signed, with the context): its JSON and the manifest of its shards. */
export function encodeRequestBody(request: BroadcastRequest): Buffer {
  const json = canonicalJson({ ...request, targets: undefined }, REQUEST_KEYS);
  let manifest = '\n';
  for (const [shard, names] of shardTargets(request.targets)) manifest += `${shard} ${namesDigest(names)}\n`;
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(json.length, 0);
  return Buffer.concat([length, json, Buffer.from(manifest, 'latin1')]);
}

const MANIFEST_LINE = /^[0-9a-f]{2} [A-Za-z0-9_-]{43}$/;

/** The manifest section as shard → digest; null unless it is canonical (lines well-formed, shards strictly ascending). */
function parseManifest(section: Buffer): Map<string, string> | null {
  const text = section.toString('latin1');
  if (text.length < 2 || !text.startsWith('\n') || !text.endsWith('\n')) return null;
  const out = new Map<string, string>();
  let previous = '';
  for (const line of text.slice(1, -1).split('\n')) {
    if (!MANIFEST_LINE.test(line)) return null;
    const shard = line.slice(0, 2);
    if (shard <= previous) return null;
    previous = shard;
    out.set(shard, line.slice(3));
  }
  return out;
}

const NEWLINE = 0x0a;

/** Whether `section` is "\n" NAME ("\n" NAME)* "\n" with every NAME an agent name. */
function wellFormedTargets(section: Buffer): boolean {
  if (section.length < 3 || section[0] !== NEWLINE || section[section.length - 1] !== NEWLINE) return false;
  let run = 0;
  for (let i = 1; i < section.length; i++) {
    const c = section[i]!;
    if (c === NEWLINE) {
      if (run === 0) return false;
      run = 0;
    } else if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x2d) {
      if (++run > 64) return false;
    } else return false;
  }
  return true;
}

/** The canonical body bytes of a result. */
export function encodeResultBody(result: BroadcastResult): Buffer {
  return canonicalJson({ ...result, ...(result.error ? { error: { code: result.error.code, message: result.error.message } } : {}) }, RESULT_KEYS);
}

/** What a signature covers: context | u32 BE length | body. */
export function signedBytes(context: Buffer, body: Buffer): Buffer {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([context, length, body]);
}

/** Why an envelope could not be decoded. Never answered on the wire: an agent drops it silently. */
export class BroadcastDecodeError extends Error {
  override name = 'BroadcastDecodeError';
}

function encodeEnvelope(kind: number, body: Buffer, signature: Signature, names?: Buffer): Buffer {
  const algorithm = Buffer.from(signature.algorithm, 'latin1');
  if (algorithm.length > 0xffff || signature.signature.length > 0xffff) throw new RangeError('signature too large');
  const header = Buffer.allocUnsafe(MAGIC.length + 1 + 4);
  MAGIC.copy(header, 0);
  header[MAGIC.length] = kind;
  header.writeUInt32BE(body.length, MAGIC.length + 1);
  const algLength = Buffer.allocUnsafe(2);
  algLength.writeUInt16BE(algorithm.length, 0);
  const sigLength = Buffer.allocUnsafe(2);
  sigLength.writeUInt16BE(signature.signature.length, 0);
  const parts = [header, body, algLength, algorithm, sigLength, signature.signature];
  if (names) {
    const namesLength = Buffer.allocUnsafe(4);
    namesLength.writeUInt32BE(names.length, 0);
    parts.push(namesLength, names);
  }
  return Buffer.concat(parts);
}

/** An envelope's parts; `signed` is everything up to the end of the signature (what a cache may key on). */
function decodeEnvelope(bytes: Uint8Array, kind: number, withNames = kind === KIND_REQUEST): { body: Buffer; signature: Signature; signed: Buffer; names: Buffer | null } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length > MAX_ENVELOPE_BYTES) throw new BroadcastDecodeError(`envelope of ${buf.length} bytes exceeds ${MAX_ENVELOPE_BYTES}`);
  const headerLength = MAGIC.length + 1 + 4;
  if (buf.length < headerLength || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new BroadcastDecodeError('not a shellwire broadcast envelope');
  if (buf[MAGIC.length] !== kind) throw new BroadcastDecodeError(`envelope kind ${buf[MAGIC.length]}, expected ${kind}`);
  const bodyLength = buf.readUInt32BE(MAGIC.length + 1);
  let offset = headerLength;
  const take = (length: number) => {
    if (offset + length > buf.length) throw new BroadcastDecodeError('truncated envelope');
    const part = buf.subarray(offset, offset + length);
    offset += length;
    return part;
  };
  const body = take(bodyLength);
  const algorithm = take(take(2).readUInt16BE(0)).toString('latin1');
  const signature = take(take(2).readUInt16BE(0));
  const signedEnd = offset;
  const names = withNames ? take(take(4).readUInt32BE(0)) : null;
  if (offset !== buf.length) throw new BroadcastDecodeError(withNames ? 'trailing bytes after the target names' : 'trailing bytes after the signature');
  if (!/^[a-z0-9-]{1,64}$/.test(algorithm)) throw new BroadcastDecodeError('bad algorithm name');
  return { body, signature: { algorithm, signature }, signed: buf.subarray(0, signedEnd), names };
}

function parseBody<T>(body: Buffer, schema: z.ZodType<T>, encode: (value: T) => Buffer, what: string): T {
  let json: unknown;
  try {
    // fatal: a body that is not UTF-8 is not ours (our encoder writes lone surrogates as escapes).
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (err) {
    throw new BroadcastDecodeError(`${what} body is not JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new BroadcastDecodeError(`${what} body does not fit: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
  if (!encode(parsed.data).equals(body)) throw new BroadcastDecodeError(`${what} body is not in canonical form`);
  return parsed.data;
}

/** One message of a request: for the agents of `shard`, published on `PREFIX.bcast.SHARD`. */
export interface RequestMessage {
  shard: string;
  bytes: Buffer;
}

/** A signed request on the wire: one message per shard with targets, each with the same signed body. */
export function encodeRequest(body: BroadcastRequest, bodyBytes: Buffer, signature: Signature): RequestMessage[] {
  if (!encodeRequestBody(body).equals(bodyBytes)) throw new RangeError('bodyBytes are not the canonical encoding of body');
  return [...shardTargets(body.targets)].map(([shard, names]) => ({ shard, bytes: encodeEnvelope(KIND_REQUEST, bodyBytes, signature, names) }));
}

/**
 * A decoded request. Its targets are this message's shard's names, looked up in place
 * (`isTarget`) and split into `body.targets` only when read.
 */
export interface DecodedRequest extends Signed<BroadcastRequest> {
  /** Whether `name` is a target: its shard's manifest digest matches this message's names, and they include it. */
  isTarget(name: string): boolean;
}

/** The signed part of a request, decoded and checked: the same for every shard's message of one request. */
export interface SignedRequestPart {
  fields: Omit<BroadcastRequest, 'targets'>;
  bodyBytes: Buffer;
  signature: Signature;
  /** shard → base64url SHA-256 of its names section. */
  manifest: Map<string, string>;
}

/**
 * A request message split into its signed part (`signed`: the bytes up to the end of the
 * signature, identical in every shard's message) and its unsigned names.
 *
 * @throws {BroadcastDecodeError} when the envelope is not a request's.
 */
export function splitRequest(bytes: Uint8Array): { signed: Buffer; names: Buffer } {
  const { signed, names } = decodeEnvelope(bytes, KIND_REQUEST);
  return { signed, names: names! };
}

/** @throws {BroadcastDecodeError} when the signed part is not a well-formed, canonical request. */
export function decodeSignedRequest(signed: Buffer): SignedRequestPart {
  const { body, signature } = decodeEnvelope(signed, KIND_REQUEST, false);
  if (body.length < 4 || body.readUInt32BE(0) > body.length - 4) throw new BroadcastDecodeError('truncated request body');
  const jsonEnd = 4 + body.readUInt32BE(0);
  const manifest = parseManifest(body.subarray(jsonEnd));
  if (!manifest) throw new BroadcastDecodeError('request manifest is not "\\n" followed by "SHARD DIGEST\\n" lines in ascending shard order');
  const fields = parseBody(body.subarray(4, jsonEnd), requestSchema as unknown as z.ZodType<Omit<BroadcastRequest, 'targets'>>,
    (value) => canonicalJson(value, REQUEST_KEYS), 'request');
  return { fields, bodyBytes: body, signature, manifest };
}

/**
 * The request of one message: its signed part (decoded once, maybe cached by the caller) and
 * its names, which count only if their digest is in the manifest.
 *
 * @throws {BroadcastDecodeError} when the names are not newline-separated agent names.
 */
export function requestWithNames(part: SignedRequestPart, names: Buffer): DecodedRequest {
  if (!wellFormedTargets(names)) throw new BroadcastDecodeError('request targets are not newline-separated agent names');
  let digest: string | null = null;
  let split: string[] | null = null;
  const request = { ...part.fields } as BroadcastRequest;
  Object.defineProperty(request, 'targets', { enumerable: true, get: () => (split ??= names.toString('latin1').slice(1, -1).split('\n')) });
  return {
    body: request, bodyBytes: part.bodyBytes, signature: part.signature,
    isTarget: (name) => AGENT_NAME.test(name) && part.manifest.get(shardOf(name)) === (digest ??= namesDigest(names)) && names.indexOf(`\n${name}\n`, 0, 'latin1') >= 0,
  };
}

/** @throws {BroadcastDecodeError} for anything that is not a well-formed, canonical request message. */
export function decodeRequest(bytes: Uint8Array): DecodedRequest {
  const { signed, names } = splitRequest(bytes);
  return requestWithNames(decodeSignedRequest(signed), names);
}

export function encodeResult(body: BroadcastResult, signature: Signature): Buffer {
  return encodeEnvelope(KIND_RESULT, encodeResultBody(body), signature);
}

/** @throws {BroadcastDecodeError} for anything that is not a well-formed, canonical result. */
export function decodeResult(bytes: Uint8Array): Signed<BroadcastResult> {
  const { body, signature } = decodeEnvelope(bytes, KIND_RESULT);
  return { body: parseBody(body, resultSchema as z.ZodType<BroadcastResult>, encodeResultBody, 'result'), bodyBytes: body, signature };
}

/**
 * The trust decisions of a broadcast (docs/nats.md, "Broadcast"), pure apart from crypto and the
 * nonce set: the operator signs a request with her SSH key (`signBroadcastRequest`, or ssh-agent
 * through a client `KeyCredential`); each agent judges it (`BroadcastGate.judge`) against its own
 * users.yaml, in this order:
 *
 *   1. malformed (not a canonical, well-formed envelope)        → drop: never answer garbage
 *   2. this agent is not in `targets`                            → ignore
 *   3. the key is in no users.yaml entry, or the signature is bad → unproven: no answer either
 *      (its `replyTo` is not proven, so an answer could be aimed anywhere: a reflector)
 *   4. the key is authorized, but for another user               → refuse SW_ERR_AUTH_FAILED
 *   5. expired, too far in the future, living > 60 s, or issued
 *      before this agent started (its nonces died with it)      → refuse SW_ERR_REQUEST_EXPIRED
 *   6. its id (nonce) was seen before, or the user holds her
 *      share of remembered ids already                           → refuse SW_ERR_REPLAYED
 *   7. the user's policy (channels, commands, env, cwd) as exec   → refuse SW_ERR_DENIED
 *
 * Only proven requests (step 3 passed: signed by a key users.yaml knows) are answered, and only
 * they are remembered. Each user may hold at most MAX_NONCES_PER_USER live ids, so one key, even
 * one whose policy allows nothing, cannot fill the set for every other operator.
 * Results are signed by the agent's host key (the TLS identity, ECDSA P-256) and checked by the
 * client against the fingerprint pinned for `nats:NAME` (`verifyBroadcastResult`).
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import {
  CLOCK_SKEW_MS, MAX_REQUEST_LIFETIME_MS, REQUEST_CONTEXT, RESULT_ALGORITHM, RESULT_CONTEXT, BroadcastDecodeError, decodeSignedRequest, encodeRequest, encodeRequestBody,
  encodeResult, encodeResultBody, requestWithNames, signedBytes, splitRequest, type BroadcastRequest, type BroadcastResult, type DecodedRequest,
  type RequestMessage, type Signed, type SignedRequestPart,
} from '../protocol/broadcast-codec.js';
import { ErrorCode } from '../errors.js';
import { KEY_TYPES, signData, signatureAlgorithmProblem, verifyData, type KeyType, type SshPrivateKey, type SshPublicKey } from './ssh-key.js';
import { checkOpen, commandText } from './policy.js';
import { spkiOfCertificate } from '../transport/tls.js';
import type { UsersConfig } from './users-config.js';
import type { Principal } from './principal.js';
import type { ExecParams, OpenRequest } from '../protocol/messages.js';

/** Requests remembered at most (about 1,100 a second for the longest lifetime): past this, new ones are refused, never an old nonce forgotten early. */
export const MAX_REMEMBERED_NONCES = 100_000;
/** Live request ids one user may hold (about 110 requests a second for the longest lifetime): a tenth of the set. */
export const MAX_NONCES_PER_USER = 10_000;

/**
 * The signed parts of the last requests decoded and checked in this process, by the SHA-256 of
 * their exact bytes (body, algorithm and signature: the same in every shard's message): a
 * process that runs many agents (the fleet bench: hundreds per process, each with its own NATS
 * connection) decodes a request and checks its signature once, not once per agent. Only the
 * very same bytes hit; each agent still applies its own targets, clock, nonce set, users.yaml
 * and policy.
 */
const recentRequests = new Map<string, { part: SignedRequestPart; verified: Map<string, boolean> }>();
const RECENT_REQUESTS = 8;

function remember(digest: string, entry: { part: SignedRequestPart; verified: Map<string, boolean> }): void {
  recentRequests.set(digest, entry);
  if (recentRequests.size > RECENT_REQUESTS) recentRequests.delete(recentRequests.keys().next().value!);
}

/** What signs a request: a key file in memory or ssh-agent (client/credentials.ts `KeyCredential` fits). */
export interface RequestSigner {
  publicKey: SshPublicKey;
  sign(data: Buffer): Promise<{ algorithm: string; signature: Buffer }>;
}

/** A signer from a private key held in memory. */
export function keySigner(key: SshPrivateKey): RequestSigner {
  return { publicKey: key.publicKey, sign: async (data) => ({ algorithm: key.publicKey.type === 'ssh-rsa' ? 'rsa-sha2-512' : key.publicKey.type, signature: signData(key, data) }) };
}

/**
 * The request on the wire, signed once by `signer` (its key must be the request's `publicKey`):
 * one message per shard with targets, to publish on `PREFIX.bcast.SHARD`.
 */
export async function signBroadcastRequest(request: BroadcastRequest, signer: RequestSigner): Promise<RequestMessage[]> {
  const body = encodeRequestBody(request);
  const signature = await signer.sign(signedBytes(REQUEST_CONTEXT, body));
  return encodeRequest(request, body, signature);
}

/** Ids of requests already accepted, each until its expiry: bounded in all and per user, expired ones pruned as new ones come. */
export class NonceSet {
  // Insertion order ≈ expiry order (lifetimes are ≤ 60 s + skew), so pruning looks at the front;
  // an entry out of order is held a little longer, never dropped early.
  #expiries = new Map<string, { until: number; user: string }>();
  #perUser = new Map<string, number>();
  readonly #max: number;
  readonly #maxPerUser: number;

  constructor(max = MAX_REMEMBERED_NONCES, maxPerUser = Math.min(max, MAX_NONCES_PER_USER)) {
    this.#max = max;
    this.#maxPerUser = maxPerUser;
  }

  get size(): number {
    return this.#expiries.size;
  }

  has(id: string, nowMs: number): boolean {
    const entry = this.#expiries.get(id);
    return entry !== undefined && entry.until > nowMs;
  }

  /**
   * Remember `id` for `user` until `untilMs`: 'ok', or why not — 'full' (the set holds its
   * maximum of live ids) or 'user-full' (this user holds her share): refuse the request.
   */
  add(id: string, untilMs: number, nowMs: number, user = ''): 'ok' | 'full' | 'user-full' {
    for (const [key, entry] of this.#expiries) {
      if (entry.until > nowMs) break;
      this.#expiries.delete(key);
      const left = (this.#perUser.get(entry.user) ?? 1) - 1;
      if (left <= 0) this.#perUser.delete(entry.user);
      else this.#perUser.set(entry.user, left);
    }
    if (this.#expiries.size >= this.#max) return 'full';
    const held = this.#perUser.get(user) ?? 0;
    if (held >= this.#maxPerUser) return 'user-full';
    this.#expiries.set(id, { until: untilMs, user });
    this.#perUser.set(user, held + 1);
    return 'ok';
  }
}

export type BroadcastVerdict =
  /** Not a well-formed request: nothing is answered (a reply to garbage would be an amplifier). */
  | { action: 'drop'; reason: string }
  /** Well-formed but not for this agent. */
  | { action: 'ignore' }
  /**
   * For this agent, but not proven: its key is in no users.yaml entry, or its signature is bad.
   * Not answered (its `replyTo` is as unproven as the rest: an answer could be aimed anywhere);
   * `user` and `fingerprint` are only what the message claims.
   */
  | { action: 'unproven'; request: BroadcastRequest; reason: string; fingerprint: string | null; command: string }
  /** Refused with a code the operator sees in her result; `principal` once the signature was good. */
  | { action: 'refuse'; request: BroadcastRequest; code: string; message: string; fingerprint: string | null; principal: Principal | null; command: string }
  /** Run `params` (policy applied: a restricted user's command rewritten to an argv) as `principal`. */
  | { action: 'run'; request: BroadcastRequest; principal: Principal; params: ExecParams; command: string };

export interface BroadcastGateOptions {
  /** This agent's name. */
  name: string;
  /** The users.yaml in force (read at every request, so a SIGHUP reload applies at once). */
  users: () => UsersConfig;
  nonces?: NonceSet;
  now?: () => number;
  /**
   * Requests issued before this time are refused (default: when the gate was made). The nonce
   * set lives in memory: after a restart, a request seen before it would otherwise run again.
   */
  notBefore?: number;
}

/** One agent's judge of broadcast requests. */
export class BroadcastGate {
  readonly #name: string;
  readonly #users: () => UsersConfig;
  readonly #nonces: NonceSet;
  readonly #now: () => number;
  readonly #notBefore: number;

  constructor(options: BroadcastGateOptions) {
    this.#name = options.name;
    this.#users = options.users;
    this.#nonces = options.nonces ?? new NonceSet();
    this.#now = options.now ?? Date.now;
    this.#notBefore = options.notBefore ?? this.#now();
  }

  judge(bytes: Uint8Array): BroadcastVerdict {
    let signed: DecodedRequest;
    let digest: string;
    try {
      const { signed: signedPart, names } = splitRequest(bytes);
      digest = createHash('sha256').update(signedPart).digest('base64');
      let part = recentRequests.get(digest)?.part;
      if (!part) {
        part = decodeSignedRequest(signedPart);
        remember(digest, { part, verified: new Map() });
      }
      signed = requestWithNames(part, names);
    } catch (err) {
      if (err instanceof BroadcastDecodeError) return { action: 'drop', reason: err.message };
      throw err;
    }
    const request = signed.body;
    if (!signed.isTarget(this.#name)) return { action: 'ignore' };
    const command = request.command ?? commandText({ kind: 'exec', window: 0, maxPacket: 0, params: { argv: request.argv! } })!;
    const refuse = (code: string, message: string, fingerprint: string | null = null, principal: Principal | null = null): BroadcastVerdict =>
      ({ action: 'refuse', request, code, message, fingerprint, principal, command });

    // The key and the signature first: until they are proven, nothing in the message (its
    // replyTo included) is, so nothing is answered. The offered key is matched against
    // users.yaml's (parsed when the file was loaded) by its blob, and checked with that parsed
    // key: parsing it here (ssh2) would cost 0.7 ms per agent.
    const offered = offeredKey(request.publicKey);
    if (typeof offered === 'string') return { action: 'unproven', request, reason: offered, fingerprint: null, command };
    const unproven = (reason: string): BroadcastVerdict => ({ action: 'unproven', request, reason, fingerprint: offered.fingerprint, command });
    const algorithmProblem = signatureAlgorithmProblem(offered.type, signed.signature.algorithm);
    if (algorithmProblem) return unproven(`key ${offered.fingerprint}: ${algorithmProblem}`);
    const users = this.#users();
    const user = users.users.get(request.user);
    let key = user?.keys.find((k) => k.blob.equals(offered.blob));
    // The key of another user proves its holder (answered: AUTH_FAILED); a key nobody has is not answered.
    let owner = key ? user : undefined;
    if (!key) {
      for (const other of users.users.values()) {
        key = other.keys.find((k) => k.blob.equals(offered.blob));
        if (key) {
          owner = other;
          break;
        }
      }
    }
    if (!key || !owner) return unproven(`key ${offered.fingerprint} is in no users.yaml entry`);
    const verdicts = recentRequests.get(digest)?.verified;
    const blob = key.blob.toString('base64');
    let good = verdicts?.get(blob);
    if (good === undefined) {
      good = verifyRequestSignature(key, signedBytes(REQUEST_CONTEXT, signed.bodyBytes), signed.signature.signature, signed.signature.algorithm);
      verdicts?.set(blob, good);
    }
    if (!good) return unproven(`bad signature for key ${key.fingerprint}`);
    if (owner !== user) {
      // One message for "no such user" and "not her key", as a login answers: nothing about who
      // exists here. Nor the agent's name: the same refusal on many agents groups in `run`'s output.
      return refuse(ErrorCode.AUTH_FAILED, `Refused: key ${offered.fingerprint} is not authorized for user "${request.user}" (users.yaml: users.${request.user}.keys).`, key.fingerprint);
    }
    const principal: Principal = { ...user!, method: 'publickey', credential: key.fingerprint };

    const now = this.#now();
    const issued = Date.parse(request.issuedAt);
    const expires = Date.parse(request.expiresAt);
    const late = (message: string) => refuse(ErrorCode.REQUEST_EXPIRED, message, key.fingerprint, principal);
    if (!(expires > issued) || expires - issued > MAX_REQUEST_LIFETIME_MS) {
      return late(`Refused: the request's lifetime (${request.issuedAt} to ${request.expiresAt}) is not between 0 and ${MAX_REQUEST_LIFETIME_MS / 1000} s.`);
    }
    if (issued > now + CLOCK_SKEW_MS) {
      return late(`Refused: the request was issued at ${request.issuedAt}, ${Math.round((issued - now) / 1000)} s ahead of ${this.#name}'s clock (${new Date(now).toISOString()}); more than ${CLOCK_SKEW_MS / 1000} s of skew is not accepted. Check both clocks (NTP).`);
    }
    if (expires + CLOCK_SKEW_MS <= now) {
      return late(`Refused: the request expired at ${request.expiresAt} (${this.#name}'s clock: ${new Date(now).toISOString()}, ${CLOCK_SKEW_MS / 1000} s of skew allowed). Run it again; if this repeats, check both clocks (NTP).`);
    }
    if (issued < this.#notBefore) {
      return late(`Refused: the request was issued at ${request.issuedAt}, before ${this.#name} (re)started at ${new Date(this.#notBefore).toISOString()}; it cannot tell whether it ran it already. Run it again.`);
    }
    if (this.#nonces.has(request.id, now)) {
      return refuse(ErrorCode.REPLAYED, `Refused: request ${request.id} was already received by ${this.#name}: a replayed (re-published) request is never run twice. Run the command again to send a new one.`, key.fingerprint, principal);
    }
    // Remembered only now: without a key users.yaml knows nobody can fill the set, and each user only her share.
    const added = this.#nonces.add(request.id, expires + CLOCK_SKEW_MS, now, user!.name);
    if (added === 'full') {
      return refuse(ErrorCode.REPLAYED, `Refused: ${this.#name} holds ${MAX_REMEMBERED_NONCES} live request ids already (more than it can check for replays); try again in a minute.`, key.fingerprint, principal);
    }
    if (added === 'user-full') {
      return refuse(ErrorCode.REPLAYED, `Refused: ${this.#name} holds ${MAX_NONCES_PER_USER} live request ids of user "${user!.name}" already (her share of its replay check); send fewer requests a minute, or try again in a minute.`, key.fingerprint, principal);
    }

    const params: ExecParams = {
      ...(request.command !== undefined ? { command: request.command } : {}),
      ...(request.argv !== undefined ? { argv: request.argv } : {}),
      ...(request.env !== undefined ? { env: request.env } : {}),
      ...(request.cwd !== undefined ? { cwd: request.cwd } : {}),
      timeoutMs: request.timeoutMs,
    };
    // Exactly the exec channel's check (server-connection.ts): channels, env, cwd, command rules.
    const open: OpenRequest = { kind: 'exec', window: 0, maxPacket: 0, params };
    const decision = checkOpen(principal, open);
    if (!decision.allowed) return refuse(ErrorCode.DENIED, `Denied: ${decision.reason}.`, key.fingerprint, principal);
    const allowed = decision.request?.kind === 'exec' ? (decision.request.params as ExecParams) : params;
    return { action: 'run', request, principal, params: allowed, command };
  }
}

/** The blob and fingerprint of an authorized_keys line, without parsing the key itself; or why it is not one. */
function offeredKey(line: string): { type: KeyType; blob: Buffer; fingerprint: string } | string {
  const [type, data] = line.trim().split(/\s+/);
  if (!type || !data || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) return 'the request\'s publicKey is not an authorized_keys line ("TYPE AAAA… [comment]")';
  if (!(KEY_TYPES as readonly string[]).includes(type)) return `the request's key type "${type.slice(0, 40)}" is not supported (${KEY_TYPES.join(', ')})`;
  const blob = Buffer.from(data, 'base64');
  // The blob names its own type first (string type | …): a line must not claim another.
  if (blob.length < 4 || blob.readUInt32BE(0) !== type.length || blob.subarray(4, 4 + type.length).toString('latin1') !== type) return `the request's key data is not a ${type} key`;
  return { type: type as KeyType, blob, fingerprint: 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '') };
}

// Ed25519 keys as Node KeyObjects, made once per users.yaml key: ssh2's verify builds one per
// call (about 0.4 ms), which 10,000 agents judging one request would each pay.
const ed25519Keys = new WeakMap<SshPublicKey, KeyObject>();

function verifyRequestSignature(key: SshPublicKey, data: Buffer, signature: Buffer, algorithm: string): boolean {
  if (key.type !== 'ssh-ed25519' || algorithm !== 'ssh-ed25519') return verifyData(key, data, signature, algorithm);
  try {
    let object = ed25519Keys.get(key);
    if (!object) {
      object = createPublicKey(key.key.getPublicPEM());
      ed25519Keys.set(key, object);
    }
    return cryptoVerify(null, data, object, signature);
  } catch {
    return false;
  }
}

/** An agent's host key, for signing results. */
export interface HostSigner {
  fingerprint: string;
  /** DER SubjectPublicKeyInfo, base64. */
  spki: string;
  key: KeyObject;
}

/** The signer of an agent's host identity (`HostIdentity` of auth/identity.ts). */
export function hostSigner(identity: { keyPem: string; certPem: string; fingerprint: string }): HostSigner {
  const spki = spkiOfCertificate(new X509Certificate(identity.certPem).raw);
  return { fingerprint: identity.fingerprint, spki: spki.toString('base64'), key: createPrivateKey(identity.keyPem) };
}

/** A result on the wire, signed by the agent's host key. `fingerprint` and `spki` are filled in from `signer`. */
export function signBroadcastResult(result: Omit<BroadcastResult, 'fingerprint' | 'spki'>, signer: HostSigner): Buffer {
  const body: BroadcastResult = { ...result, fingerprint: signer.fingerprint, spki: signer.spki } as BroadcastResult;
  return encodeResult(body, { algorithm: RESULT_ALGORITHM, signature: signWithHostKey(signer, signedBytes(RESULT_CONTEXT, encodeResultBody(body))) });
}

/** The host key's signature over `data` (RESULT_ALGORITHM: ECDSA P-256, SHA-256, r|s fixed width); results and presence records use it. */
export function signWithHostKey(signer: HostSigner, data: Buffer): Buffer {
  return cryptoSign('sha256', data, { key: signer.key, dsaEncoding: 'ieee-p1363' });
}

/**
 * Whether `signature` over `data` was made by the P-256 key `spki` (DER SubjectPublicKeyInfo,
 * base64) and `fingerprint` is that key's. Never throws: anything malformed is false.
 */
export function verifyHostSignature(spki: string, fingerprint: string, data: Buffer, signature: Buffer): boolean {
  try {
    const der = Buffer.from(spki, 'base64');
    if (`SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}` !== fingerprint) return false;
    const key = p256Key(der);
    if (key === null) return false;
    return cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

// SubjectPublicKeyInfo of an uncompressed P-256 point: SEQUENCE { SEQUENCE { id-ecPublicKey,
// prime256v1 }, BIT STRING { 0x04 | x | y } }. Imported as a JWK: OpenSSL's DER decoder costs
// about twice as much per key (0.3 ms), which a client checking 10,000 answers feels.
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');

/** The P-256 public key of a DER SubjectPublicKeyInfo, or null. */
function p256Key(der: Buffer): KeyObject | null {
  if (der.length !== P256_SPKI_PREFIX.length + 64 || !der.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX)) return null;
  const x = der.subarray(P256_SPKI_PREFIX.length, P256_SPKI_PREFIX.length + 32).toString('base64url');
  const y = der.subarray(P256_SPKI_PREFIX.length + 32).toString('base64url');
  // Throws for a point that is not on the curve (caught by the caller: not verified).
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
}

/**
 * Whether `signed` is a result really made by the agent whose key has `spki`: the fingerprint
 * it claims is that key's, and the signature over its exact bytes checks. The caller compares
 * the fingerprint with its pin (known_hosts `nats:NAME`) and the id and name with what it asked.
 */
export function verifyBroadcastResult(signed: Signed<BroadcastResult>): boolean {
  if (signed.signature.algorithm !== RESULT_ALGORITHM) return false;
  return verifyHostSignature(signed.body.spki, signed.body.fingerprint, signedBytes(RESULT_CONTEXT, signed.bodyBytes), signed.signature.signature);
}

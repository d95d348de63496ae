/**
 * Signed presence records (docs/nats.md, "Discovery and presence"): an agent signs what it answers
 * to discovery and announces with its host key (the TLS identity, ECDSA P-256: the key broadcast
 * results are signed with, auth/broadcast-auth.ts `hostSigner`), over the record's exact bytes
 * with its own context string (protocol/presence-codec.ts). `checkPresence` is what any receiver
 * can decide alone: the record is well formed, its fingerprint is the SHA-256 of its `spki`, the
 * signature checks with that key, and it was signed recently. Whether that key is the one
 * known_hosts pins for `nats:NAME` is the caller's decision (fleet/nats-discovery.ts): a
 * self-consistent record proves only that its signer holds the key it names.
 *
 * Freshness: a record is believed from CLOCK_SKEW_MS before its `issuedAt` until
 * PRESENCE_RECORD_MAX_AGE_MS + CLOCK_SKEW_MS after it (90 s + 30 s). Agents sign a new record
 * for every announcement (every PRESENCE_INTERVAL_MS, 30 s) and answer discovery with one at
 * most that old, so a live agent's records are always fresh, and a captured record (with the
 * labels of that moment) can be replayed for two minutes at most.
 */
import { CLOCK_SKEW_MS } from '../protocol/broadcast-codec.js';
import { PRESENCE_TTL_MS, type PresenceRecord } from '../protocol/nats-subjects.js';
import { PRESENCE_ALGORITHM, PresenceDecodeError, decodePresence, encodePresence, encodePresenceBody, presenceSignedBytes } from '../protocol/presence-codec.js';
import { signWithHostKey, verifyHostSignature, type HostSigner } from './broadcast-auth.js';

/** How long after its signing a record is believed (plus PRESENCE_CLOCK_SKEW_MS): the presence TTL, three announcements. */
export const PRESENCE_RECORD_MAX_AGE_MS = PRESENCE_TTL_MS;
/** Clock difference tolerated between an agent and whoever reads its records (as for broadcasts). */
export const PRESENCE_CLOCK_SKEW_MS = CLOCK_SKEW_MS;

/** `record` with the signer's fingerprint and key and `issuedAt` = `nowMs`, signed: the message to publish. */
export function signPresence(record: Omit<PresenceRecord, 'fingerprint' | 'spki' | 'issuedAt'>, signer: HostSigner, nowMs: number): Buffer {
  const full: PresenceRecord = { ...record, fingerprint: signer.fingerprint, spki: signer.spki, issuedAt: new Date(nowMs).toISOString() };
  const body = encodePresenceBody(full);
  return encodePresence(body, { algorithm: PRESENCE_ALGORITHM, signature: signWithHostKey(signer, presenceSignedBytes(body)) });
}

export type PresenceVerdict =
  | { ok: true; record: PresenceRecord }
  /** Not a presence message at all (or an unsigned one). */
  | { ok: false; reason: 'malformed'; detail: string }
  /** Its fingerprint is not its key's, or the signature does not check: forged or altered. */
  | { ok: false; reason: 'signature'; record: PresenceRecord }
  /** Signed too long ago (a replay, or the agent's clock is behind) or too far ahead (its clock is ahead). */
  | { ok: false; reason: 'stale' | 'future'; record: PresenceRecord };

/** What a receiver can check alone (see the module comment); the pin is the caller's to check. */
export function checkPresence(bytes: Uint8Array, nowMs: number = Date.now()): PresenceVerdict {
  let signed;
  try {
    signed = decodePresence(bytes);
  } catch (err) {
    if (err instanceof PresenceDecodeError) return { ok: false, reason: 'malformed', detail: err.message };
    throw err;
  }
  const record = signed.body;
  if (signed.signature.algorithm !== PRESENCE_ALGORITHM || !verifyHostSignature(record.spki, record.fingerprint, presenceSignedBytes(signed.bodyBytes), signed.signature.signature)) return { ok: false, reason: 'signature', record };
  const issued = Date.parse(record.issuedAt);
  if (!(issued <= nowMs + PRESENCE_CLOCK_SKEW_MS)) return { ok: false, reason: 'future', record };
  if (nowMs - issued > PRESENCE_RECORD_MAX_AGE_MS + PRESENCE_CLOCK_SKEW_MS) return { ok: false, reason: 'stale', record };
  return { ok: true, record };
}

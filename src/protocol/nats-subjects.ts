/**
 * The NATS subjects shellwire uses and the records on them (docs/nats.md, "Subjects"). Pure:
 * shared by the agent (src/server/nats-agent.ts), the client (src/client/nats-via.ts), discovery
 * and the broadcast path. `P` is the prefix (`shellwire`, `--nats-prefix`), so several fleets
 * can share one cluster.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, UsageError } from '../errors.js';

export const DEFAULT_NATS_PREFIX = 'shellwire';
/**
 * An agent announces itself this often (±10 %, and at start and after each reconnect). Not
 * faster: 10,000 agents at 5 s were 2,000 messages a second, which cost about half a core of
 * this 2-core machine (agents and broker, measured idle). Liveness for `hosts --via` comes from
 * discovery (a live request), not from these announcements.
 */
export const PRESENCE_INTERVAL_MS = 30_000;
/** An agent not heard from for this long (three announcements) is dropped from a watcher's list. */
export const PRESENCE_TTL_MS = 90_000;
/** Longest agent name. */
export const MAX_AGENT_NAME = 64;

const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const PREFIX_PATTERN = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const TUNNEL_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** What an agent says about itself (discovery answers, presence). */
export interface PresenceRecord {
  name: string;
  labels: Record<string, string>;
  /** `SHA256:…` of its TLS certificate (what known_hosts pins under `nats:NAME`). */
  fingerprint: string;
  /** Its public key, base64 DER SubjectPublicKeyInfo (broadcast replies are signed with it). */
  spki: string;
  version: string;
  startedAt: string;
  /**
   * When the agent signed this record (ISO 8601, ms): a record is believed for
   * PRESENCE_RECORD_MAX_AGE_MS (+ clock skew) only, so a captured one cannot be replayed for
   * ever (protocol/presence-codec.ts, auth/presence-auth.ts).
   */
  issuedAt: string;
  /** Present (true) on the last presence message of an agent that stops cleanly. */
  gone?: boolean;
}

/** The open request a client sends to `P.agent.NAME.open`. */
export interface TunnelOpenRequest {
  tunnel: string;
  window: number;
}
export type TunnelOpenReply = { ok: true } | { ok: false; code: string; message: string };

export function isAgentName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** @throws {UsageError} SW_ERR_BAD_CONFIG: not a NATS-token-safe name. */
export function checkAgentName(name: string): string {
  if (!isAgentName(name)) {
    throw new UsageError(ErrorCode.BAD_CONFIG, `Agent name ${JSON.stringify(name)} cannot be used on NATS: 1 to ${MAX_AGENT_NAME} of A-Z a-z 0-9 _ - (no dots). Choose one with --name.`);
  }
  return name;
}

/** @throws {UsageError} SW_ERR_BAD_CONFIG: not dot-separated tokens of A-Z a-z 0-9 _ -. */
export function checkNatsPrefix(prefix: string): string {
  if (!PREFIX_PATTERN.test(prefix) || prefix.length > 64) {
    throw new UsageError(ErrorCode.BAD_CONFIG, `NATS subject prefix ${JSON.stringify(prefix)} is not usable: dot-separated words of A-Z a-z 0-9 _ - (e.g. shellwire or shellwire.prod).`);
  }
  return prefix;
}

export function isTunnelId(id: string): boolean {
  return TUNNEL_ID_PATTERN.test(id);
}

/** 22 characters of base64url randomness (132 bits): a tunnel's id, made by the client. */
export function newTunnelId(): string {
  return randomBytes(17).toString('base64url').slice(0, 22);
}

/** The subjects under one prefix. */
export function natsSubjects(prefix = DEFAULT_NATS_PREFIX) {
  return {
    discover: `${prefix}.discover`,
    presence: (name: string) => `${prefix}.presence.${name}`,
    presenceAll: `${prefix}.presence.*`,
    open: (name: string) => `${prefix}.agent.${name}.open`,
    /**
     * Towards agent NAME. The agent's name is in its tunnels' subjects so NATS permissions can
     * give an agent only its own tunnels (`P.t.NAME.*.a`), not every tunnel's ciphertext.
     */
    toAgent: (name: string, id: string) => `${prefix}.t.${name}.${id}.a`,
    /** From agent NAME towards the client. */
    toClient: (name: string, id: string) => `${prefix}.t.${name}.${id}.c`,
    tunnels: `${prefix}.t.>`,
    /** Broadcast requests for the agents of one shard (`shardOf(NAME)` in protocol/broadcast-codec.ts). */
    broadcast: (shard: string) => `${prefix}.bcast.${shard}`,
    /** Every shard's broadcast requests (for permissions and watchers). */
    broadcastAll: `${prefix}.bcast.*`,
  };
}
export type NatsSubjects = ReturnType<typeof natsSubjects>;

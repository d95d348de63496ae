/**
 * Agent mode (`shellwire serve --nats …`, docs/nats.md): the daemon connects out to NATS and
 * serves connections that arrive as tunnels, with no listening port needed. It answers
 * discovery (`P.discover`), announces itself (`P.presence.NAME` every PRESENCE_INTERVAL_MS),
 * accepts tunnel opens (`P.agent.NAME.open`) and hands each tunnel to
 * `Server.handleConnection`: the same TLS 1.3, host key, login, policy, limits and audit as a
 * TCP connection. Broadcast requests (`P.bcast.SHARD`) go to the handler `onBroadcast` installs
 * (src/server/broadcast-exec.ts).
 */
import type { Logger } from 'pino';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Server } from './server.js';
import { NatsTunnel, TUNNEL_WINDOW } from '../transport/nats-tunnel.js';
import {
  DEFAULT_NATS_PREFIX, PRESENCE_INTERVAL_MS, checkAgentName, checkNatsPrefix, isTunnelId, natsSubjects,
  type NatsSubjects, type PresenceRecord, type TunnelOpenReply, type TunnelOpenRequest,
} from '../protocol/nats-subjects.js';
import { TokenBucket } from '../token-bucket.js';
import { shardOf } from '../protocol/broadcast-codec.js';
import { hostSigner, type HostSigner } from '../auth/broadcast-auth.js';
import { signPresence } from '../auth/presence-auth.js';
import { presenceProblem } from '../protocol/presence-codec.js';
import { ErrorCode, UsageError } from '../errors.js';

/** Open and discover requests larger than this are ignored (they are a few dozen bytes). */
const MAX_REQUEST_BYTES = 4096;
/**
 * Discovery answers per second, at most (a token bucket of this many, refilled continuously);
 * requests beyond it are dropped silently. A discovery request costs its sender a few bytes and
 * brings one ~470-byte signed answer from every agent: unlimited, 20,000 requests brought 80,000
 * answers from 4 agents. A person or script asks once per `hosts`/`run` and a PresenceWatcher
 * once at its start, so 20 a second serves 20 operators starting at the same moment, while a
 * flood gets at most 20 answers (about 10 KB) a second out of each agent. The price: during a
 * flood, discovery may miss agents (tunnels and broadcasts to named agents are not affected).
 */
export const DISCOVERY_ANSWERS_PER_SECOND = 20;
/**
 * A signed record is reused for discovery answers while younger than this: signing costs
 * ~0.1 ms, which a process hosting many agents (bench/nats-agents.mjs) would pay per agent and
 * request. Each announcement signs a new one, and readers accept a record for
 * PRESENCE_RECORD_MAX_AGE_MS (auth/presence-auth.ts), far longer.
 */
const RECORD_REUSE_MS = PRESENCE_INTERVAL_MS;

/**
 * One signer per host identity object (the agents of one process share one Server in
 * bench/nats-agents.mjs): parsing the key and certificate costs ~0.5 ms. A rotated identity is a
 * new object, so a new signer.
 */
const signers = new WeakMap<object, HostSigner>();
function signerOf(identity: { keyPem: string; certPem: string; fingerprint: string }): HostSigner {
  let signer = signers.get(identity);
  // (Checked too, should an identity ever be changed in place.)
  if (!signer || signer.fingerprint !== identity.fingerprint) {
    signer = hostSigner(identity);
    signers.set(identity, signer);
  }
  return signer;
}
/** Windows a client may ask for. */
const MIN_WINDOW = 16 * 1024;
const MAX_WINDOW = 16 * 1024 * 1024;

export interface NatsAgentOptions {
  server: Server;
  nc: NatsConnection;
  name: string;
  labels?: Record<string, string>;
  prefix?: string;
  log: Logger;
  version: string;
}

/** A broadcast request as it arrived, and how to answer it (the reply goes to the request's inbox). */
export interface BroadcastMessage {
  data: Uint8Array;
  subject: string;
  reply: (payload: Uint8Array) => void;
}

export class NatsAgent {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly subjects: NatsSubjects;
  readonly startedAt = new Date().toISOString();
  #options: NatsAgentOptions;
  #subs: Subscription[] = [];
  #presenceTimer: NodeJS.Timeout | null = null;
  #tunnels = new Map<string, NatsTunnel>();
  #closed = false;
  /** The record last signed (discovery answers reuse it for RECORD_REUSE_MS). */
  #signed: { bytes: Buffer; atMs: number; fingerprint: string } | null = null;
  /** Discovery answers: DISCOVERY_ANSWERS_PER_SECOND a second, as many at once. */
  #discoveryAnswers = new TokenBucket(DISCOVERY_ANSWERS_PER_SECOND, DISCOVERY_ANSWERS_PER_SECOND);

  constructor(options: NatsAgentOptions) {
    this.#options = options;
    this.name = checkAgentName(options.name);
    this.labels = { ...(options.labels ?? {}) };
    const problem = presenceProblem({ ...this.record(), fingerprint: `SHA256:${'A'.repeat(43)}`, spki: '', issuedAt: this.startedAt });
    if (problem) throw new UsageError(ErrorCode.BAD_CONFIG, `Agent ${this.name} cannot announce itself: ${problem}. Fix --labels (k=v,k2=v2).`);
    this.subjects = natsSubjects(checkNatsPrefix(options.prefix ?? DEFAULT_NATS_PREFIX));
    const { nc } = options;
    this.#subs.push(nc.subscribe(this.subjects.open(this.name), { callback: (err, msg) => { if (!err) this.#openOnRequest(msg); } }));
    this.#subs.push(nc.subscribe(this.subjects.discover, { callback: (err, msg) => { if (!err) this.#discoverOnRequest(msg); } }));
    this.#announce();
    this.#scheduleAnnounce();
    // Back after a reconnect (maybe to another server): say so at once, not in up to 5 s.
    void (async () => {
      for await (const status of nc.status()) if (status.type === 'reconnect') this.#announce();
    })().catch(() => {});
  }

  get nc(): NatsConnection {
    return this.#options.nc;
  }

  /** Tunnels open now. */
  get tunnelCount(): number {
    return this.#tunnels.size;
  }

  /** What discovery answers and presence announces, before signing (`signedRecord` adds the key, time and signature). */
  record(): Omit<PresenceRecord, 'fingerprint' | 'spki' | 'issuedAt'> {
    return { name: this.name, labels: this.labels, version: this.#options.version, startedAt: this.startedAt };
  }

  /**
   * The record signed with the host key (auth/presence-auth.ts): a new signature when `fresh`,
   * when the last is older than RECORD_REUSE_MS, or when the host key changed (rotate-host-key).
   */
  signedRecord(options: { fresh?: boolean; gone?: boolean } = {}): Buffer {
    const now = Date.now();
    const identity = this.#options.server.identity;
    const last = this.#signed;
    if (!options.fresh && !options.gone && last && last.fingerprint === identity.fingerprint && now - last.atMs < RECORD_REUSE_MS && now >= last.atMs) return last.bytes;
    const bytes = signPresence({ ...this.record(), ...(options.gone ? { gone: true } : {}) }, signerOf(identity), now);
    if (!options.gone) this.#signed = { bytes, atMs: now, fingerprint: identity.fingerprint };
    return bytes;
  }

  /**
   * Serve broadcast requests (`P.bcast.SHARD`, this agent's shard): `handler` gets each message and a reply function.
   * Installed once (by the broadcast module); a handler that throws is logged, never fatal.
   */
  onBroadcast(handler: (message: BroadcastMessage) => void | Promise<void>): void {
    const sub = this.nc.subscribe(this.subjects.broadcast(shardOf(this.name)), {
      callback: (err, msg) => {
        if (err || this.#closed) return;
        const reply = (payload: Uint8Array): void => {
          if (msg.reply) this.nc.publish(msg.reply, payload);
        };
        Promise.resolve()
          .then(() => handler({ data: msg.data, subject: msg.subject, reply }))
          .catch((e: unknown) => this.#options.log.warn({ err: (e as Error).message }, 'nats: broadcast handler failed'));
      },
    });
    this.#subs.push(sub);
  }

  /** The next announcement in PRESENCE_INTERVAL_MS ±10 %: agents started together drift apart instead of announcing in one burst. */
  #scheduleAnnounce(): void {
    if (this.#closed) return;
    this.#presenceTimer = setTimeout(() => {
      this.#announce();
      this.#scheduleAnnounce();
    }, PRESENCE_INTERVAL_MS * (0.9 + Math.random() * 0.2));
    this.#presenceTimer.unref();
  }

  #announce(): void {
    if (this.#closed || this.nc.isClosed()) return;
    try {
      this.nc.publish(this.subjects.presence(this.name), this.signedRecord({ fresh: true }));
    } catch (err) {
      this.#options.log.debug({ err: (err as Error).message }, 'nats: presence not published');
    }
  }

  #discoverOnRequest(msg: Msg): void {
    // Cheap checks first: over budget, a flood's request costs no parsing; a request this
    // agent does not answer (another label) costs no budget.
    if (!msg.reply || msg.data.length > MAX_REQUEST_BYTES || !this.#discoveryAnswers.has()) return;
    let wanted: Record<string, unknown> = {};
    if (msg.data.length > 0) {
      try {
        const parsed = JSON.parse(Buffer.from(msg.data).toString('utf8')) as { labels?: unknown };
        if (parsed && typeof parsed === 'object' && parsed.labels && typeof parsed.labels === 'object') wanted = parsed.labels as Record<string, unknown>;
      } catch {
        return;
      }
    }
    for (const [k, v] of Object.entries(wanted)) if (!Object.hasOwn(this.labels, k) || this.labels[k] !== v) return;
    this.#discoveryAnswers.take();
    this.nc.publish(msg.reply, this.signedRecord());
  }

  #openOnRequest(msg: Msg): void {
    const answer = (reply: TunnelOpenReply): void => {
      if (msg.reply) this.nc.publish(msg.reply, JSON.stringify(reply));
    };
    if (this.#closed) return answer({ ok: false, code: 'SW_ERR_SERVER_SHUTTING_DOWN', message: `agent ${this.name} is stopping` });
    let request: TunnelOpenRequest;
    try {
      if (msg.data.length > MAX_REQUEST_BYTES) throw new Error('too large');
      request = JSON.parse(Buffer.from(msg.data).toString('utf8')) as TunnelOpenRequest;
      if (typeof request !== 'object' || request === null || typeof request.tunnel !== 'string' || !isTunnelId(request.tunnel)) throw new Error('bad tunnel id');
      const window = request.window ?? TUNNEL_WINDOW;
      if (!Number.isInteger(window) || window < MIN_WINDOW || window > MAX_WINDOW) throw new Error(`window out of range (${MIN_WINDOW} to ${MAX_WINDOW})`);
      request = { tunnel: request.tunnel, window };
    } catch (err) {
      return answer({ ok: false, code: 'SW_ERR_BAD_REQUEST', message: `bad tunnel open request: ${(err as Error).message}` });
    }
    if (this.#tunnels.has(request.tunnel)) return answer({ ok: false, code: 'SW_ERR_BAD_REQUEST', message: 'tunnel id in use' });
    const id = request.tunnel;
    const tunnel = new NatsTunnel({
      nc: this.nc,
      sendSubject: this.subjects.toClient(this.name, id),
      receiveSubject: this.subjects.toAgent(this.name, id),
      label: `NATS tunnel ${id} from a client`,
      window: request.window,
    });
    this.#tunnels.set(id, tunnel);
    tunnel.once('close', () => this.#tunnels.delete(id));
    // The subscription above is sent before this reply on the same connection, so the
    // client's first bytes cannot overtake it.
    answer({ ok: true });
    this.#options.server.handleConnection(tunnel, { address: 'nats', remote: `nats:${id}` });
  }

  /** Stop: say `gone`, stop answering, drop the tunnels (their connections end). Leaves the NATS connection open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#presenceTimer) clearTimeout(this.#presenceTimer);
    for (const sub of this.#subs) sub.unsubscribe();
    if (!this.nc.isClosed()) {
      try {
        this.nc.publish(this.subjects.presence(this.name), this.signedRecord({ gone: true }));
        await this.nc.flush();
      } catch {
        // The broker is gone: watchers drop us after PRESENCE_TTL_MS anyway.
      }
    }
    for (const tunnel of this.#tunnels.values()) tunnel.destroy();
  }
}

/**
 * Discovery over UDP — the other half of the socket API (sendto/recvfrom). A daemon started
 * with `--announce` answers a probe on the UDP port with the same number as its TCP port,
 * saying its name, TCP port and certificate fingerprint. Nothing secret, never a command
 * channel: the responder understands exactly one fixed-format probe and ignores everything
 * else.
 *
 *   probe  (≥ 512 bytes): "SWDISCOVER1\n" | nonce (16 hex) | "\n" | zero padding
 *   answer (≤ probe):     {"shellwire":1,"nonce":…,"name":…,"port":…,"fingerprint":…,"version":…}
 *
 * Abuse limits: the answer is never larger than the probe (no amplification for spoofed
 * sources), and answers are rate-limited globally and per source address.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { once } from 'node:events';
import type { Logger } from 'pino';
import { silentLogger } from '../silent-logger.js';
import { asyncDispose } from '../dispose.js';
import { ErrorCode, UsageError } from '../errors.js';
import { TokenBucket } from '../token-bucket.js';

export const PROBE_MAGIC = 'SWDISCOVER1\n';
/** Probes are padded to this size so an answer never amplifies a spoofed request. */
export const PROBE_SIZE = 512;
/** Answers per second the responder sends in total (burst the same). */
export const DEFAULT_ANNOUNCE_RATE = 20;
/** Answers per second to one source address (burst twice that). */
export const DEFAULT_ANNOUNCE_RATE_PER_SOURCE = 2;
/** Source addresses remembered for per-source limits; the oldest is forgotten beyond this. */
export const MAX_TRACKED_SOURCES = 4096;
export const DISCOVERY_VERSION = '0.1.0';
export { TokenBucket };

export interface AnnouncerOptions {
  /** Address to bind (the daemon's listen address). */
  host: string;
  /** UDP port to answer on (the daemon's TCP port number). */
  port: number;
  /** TCP port announced (default: `port`). */
  tcpPort?: number;
  fingerprint: string;
  /** Name announced (default: the machine's host name). */
  name?: string;
  ratePerSecond?: number;
  ratePerSourcePerSecond?: number;
  logger?: Logger;
}

/** The UDP responder of `shellwire serve --announce`. */
export class Announcer implements AsyncDisposable {
  readonly stats = { answered: 0, rateLimited: 0, ignored: 0 };
  #socket: UdpSocket;
  #global: TokenBucket;
  #perSource = new Map<string, TokenBucket>();
  #perSourceRate: number;
  #answer: (nonce: string) => Buffer;
  #log: Logger;

  private constructor(socket: UdpSocket, options: AnnouncerOptions) {
    this.#socket = socket;
    const rate = options.ratePerSecond ?? DEFAULT_ANNOUNCE_RATE;
    this.#global = new TokenBucket(rate, rate);
    this.#perSourceRate = options.ratePerSourcePerSecond ?? DEFAULT_ANNOUNCE_RATE_PER_SOURCE;
    this.#log = options.logger ?? silentLogger();
    const name = sanitizeName(options.name ?? hostname());
    const port = options.tcpPort ?? options.port;
    this.#answer = (nonce) =>
      Buffer.from(JSON.stringify({ shellwire: 1, nonce, name, port, fingerprint: options.fingerprint, version: DISCOVERY_VERSION }));
    socket.on('message', (msg, rinfo) => this.#socketOnMessage(msg, rinfo.address, rinfo.port));
    socket.on('error', (err) => this.#log.warn({ err: err.message }, 'discovery socket error'));
  }

  /** Bind the UDP socket and start answering. */
  static async start(options: AnnouncerOptions): Promise<Announcer> {
    const socket = createSocket({ type: isIP(options.host) === 6 ? 'udp6' : 'udp4' });
    const announcer = new Announcer(socket, options);
    socket.bind(options.port, options.host);
    await Promise.race([
      once(socket, 'listening'),
      once(socket, 'error').then(([err]) => {
        throw err;
      }),
    ]);
    announcer.#log.info({ address: options.host, port: options.port }, 'answering discovery probes');
    return announcer;
  }

  get address(): { address: string; port: number } {
    return this.#socket.address();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  /** `await using announcer = await startAnnouncer(…)`: stops answering when the block ends. */
  [asyncDispose](): Promise<void> {
    return this.close();
  }

  #socketOnMessage(msg: Buffer, address: string, port: number): void {
    const nonce = parseProbe(msg);
    if (nonce === null) {
      this.stats.ignored++;
      return;
    }
    let bucket = this.#perSource.get(address);
    if (!bucket) {
      if (this.#perSource.size >= MAX_TRACKED_SOURCES) this.#perSource.delete(this.#perSource.keys().next().value!);
      bucket = new TokenBucket(this.#perSourceRate, this.#perSourceRate * 2);
      this.#perSource.set(address, bucket);
    }
    // Per source first, so one noisy source cannot spend the global budget.
    if (!bucket.take() || !this.#global.take()) {
      this.stats.rateLimited++;
      return;
    }
    const answer = this.#answer(nonce);
    if (answer.length > msg.length) {
      this.stats.ignored++;
      return;
    }
    this.stats.answered++;
    this.#socket.send(answer, port, address);
  }
}

/** Start the responder for a listening daemon (`shellwire serve --announce`). */
export function startAnnouncer(options: AnnouncerOptions): Promise<Announcer> {
  return Announcer.start(options);
}

/** The nonce of a well-formed probe, else null. */
export function parseProbe(msg: Buffer): string | null {
  if (msg.length < PROBE_SIZE || msg.length > 2 * PROBE_SIZE) return null;
  if (msg.toString('latin1', 0, PROBE_MAGIC.length) !== PROBE_MAGIC) return null;
  const nonce = msg.toString('latin1', PROBE_MAGIC.length, PROBE_MAGIC.length + 16);
  if (!/^[0-9a-f]{16}$/.test(nonce) || msg[PROBE_MAGIC.length + 16] !== 10) return null;
  return nonce;
}

export function encodeProbe(nonce: string): Buffer {
  const probe = Buffer.alloc(PROBE_SIZE);
  probe.write(`${PROBE_MAGIC}${nonce}\n`, 'latin1');
  return probe;
}

export interface DiscoveredHost {
  /** The address that answered. */
  address: string;
  /** The daemon's TCP port. */
  port: number;
  name: string;
  fingerprint: string;
  version: string;
  rttMs: number;
}

export interface DiscoverOptions {
  addresses: readonly string[];
  /** UDP port to probe (the daemons' TCP port number). Default 50007. */
  port?: number;
  /** How long to wait for answers after the last probe. Default 1 s. */
  timeoutMs?: number;
  /** Probes sent per second (spread, so we do not trip rate limits or flood a subnet). */
  probesPerSecond?: number;
}

/**
 * Probe each address and collect the answers (one per address, the first to arrive).
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for an invalid or too large subnet; the UDP socket's
 *   own error (an `Error` with `code`) when it cannot be opened.
 */
export async function discover(options: DiscoverOptions): Promise<DiscoveredHost[]> {
  const port = options.port ?? 50007;
  const nonce = randomBytes(8).toString('hex');
  const probe = encodeProbe(nonce);
  const found = new Map<string, DiscoveredHost>();
  const sentAt = new Map<string, number>();
  const sockets = new Map<'udp4' | 'udp6', UdpSocket>();
  const socketFor = (type: 'udp4' | 'udp6') => {
    let socket = sockets.get(type);
    if (!socket) {
      socket = createSocket(type);
      socket.on('error', () => {}); // ICMP unreachable etc.: the host simply does not answer
      socket.on('message', (msg, rinfo) => {
        const answer = parseAnswer(msg, nonce);
        const started = sentAt.get(rinfo.address);
        if (!answer || started === undefined || found.has(rinfo.address)) return;
        found.set(rinfo.address, { address: rinfo.address, ...answer, rttMs: performance.now() - started });
      });
      sockets.set(type, socket);
    }
    return socket;
  };
  const gapMs = 1000 / (options.probesPerSecond ?? 1000);
  for (const address of options.addresses) {
    const type = isIP(address) === 6 ? 'udp6' : 'udp4';
    sentAt.set(address, performance.now());
    socketFor(type).send(probe, port, address);
    if (options.addresses.length > 1) await new Promise((r) => setTimeout(r, gapMs));
  }
  await new Promise((r) => setTimeout(r, options.timeoutMs ?? 1_000));
  for (const socket of sockets.values()) socket.close();
  const order = new Map(options.addresses.map((a, i) => [a, i] as const));
  return [...found.values()].sort((a, b) => (order.get(a.address) ?? 0) - (order.get(b.address) ?? 0));
}

function parseAnswer(msg: Buffer, nonce: string): Omit<DiscoveredHost, 'address' | 'rttMs'> | null {
  if (msg.length > 2 * PROBE_SIZE) return null;
  let value: unknown;
  try {
    value = JSON.parse(msg.toString('utf8'));
  } catch {
    return null;
  }
  const a = value as Record<string, unknown>;
  if (a === null || typeof a !== 'object' || a.shellwire !== 1 || a.nonce !== nonce) return null;
  if (typeof a.port !== 'number' || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) return null;
  if (typeof a.fingerprint !== 'string' || !/^SHA256:[A-Za-z0-9+/=]{20,64}$/.test(a.fingerprint)) return null;
  if (typeof a.name !== 'string') return null;
  return { port: a.port, name: sanitizeName(a.name), fingerprint: a.fingerprint, version: typeof a.version === 'string' ? a.version.slice(0, 32) : '?' };
}

/** Host names from the network are printed and written to files: letters, digits, ".", "_", "-" only. */
function sanitizeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63) || 'unnamed';
}

/** `127.0.0.0/28` → its host addresses (IPv4; at most a /16). */
export function expandSubnet(cidr: string): string[] {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new UsageError(ErrorCode.BAD_TARGET, `"${cidr}" is not an IPv4 subnet like 192.168.1.0/24.`);
  const bits = Number(m[5]);
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255) || bits > 32) throw new UsageError(ErrorCode.BAD_TARGET, `"${cidr}" is not a valid subnet.`);
  if (bits < 16) throw new UsageError(ErrorCode.BAD_TARGET, `"${cidr}" is too large to probe (at most a /16).`);
  const base = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const size = 2 ** (32 - bits);
  const network = (base & ~(size - 1)) >>> 0;
  const first = size > 2 ? 1 : 0;
  const last = size > 2 ? size - 2 : size - 1;
  const out: string[] = [];
  for (let i = first; i <= last; i++) {
    const n = (network + i) >>> 0;
    out.push(`${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`);
  }
  return out;
}

/**
 * The `gateway` channel kind (served only by a gateway): OPEN `{ op: ... }` answers OPEN_OK,
 * the op's document as STDOUT data within the operator's window, then EXIT 0. `hosts` lists
 * exactly the hosts the operator may reach, by name, labels and groups (never an address).
 * `recordings` and `recording` (recordings-op.ts) are added when the gateway records: the
 * latter streams a file, so an op may answer with a stream read only as the window allows.
 */
import type { Readable } from 'node:stream';
import { ChannelState, type Channel, type ChannelHooks } from '../channel/channel-state.js';
import { ErrorCode, ShellwireError } from '../errors.js';
import type { OpenRequest } from '../protocol/messages.js';
import type { AuthenticatedUser, ChannelFactory, ChannelHost, Refusal, ServerChannel } from '../server/channel-host.js';
import type { FleetHost, Inventory } from '../fleet/inventory.js';
import type { RecordingStore } from '../audit/recording.js';
import { permittedHosts } from './gateway-policy.js';
import { gatewayPolicyOf } from './gateway-config.js';
import { recordingsOp } from './recordings-op.js';

/** A streamed answer: `body` is read only as the operator's window allows, and destroyed if the channel ends first. */
export interface GatewayStream {
  body: Readable;
}

export type GatewayAnswer = Buffer | GatewayStream | Refusal;

/**
 * One `gateway` op: the document (bytes or a stream) it answers with, or a refusal; or a
 * promise of one (an op that waits, such as `hosts` with `probe`: OPEN_OK or OPEN_FAIL is sent
 * when it settles). `host` is the operator's connection (its audit, log).
 */
export type GatewayOp = (user: AuthenticatedUser, params: Record<string, unknown>, host: ChannelHost) => GatewayAnswer | Promise<GatewayAnswer>;

/** Each host of a probe gets this long to answer (connect, or a live pooled connection). */
export const HOST_PROBE_TIMEOUT_MS = 3_000;
/** Hosts probed at once. */
export const HOST_PROBE_PARALLEL = 32;

/** How the gateway reaches a host for a probe (its HostPool's `get`). */
export type HostProbe = (host: FleetHost) => Promise<unknown>;

/**
 * The ops of a gateway: `hosts` here, plus `extra` (the recorder's, `recordingOps()`). With
 * `probe`, `{ op: 'hosts', probe: true }` also tries each permitted host through the gateway's
 * own pool (HOST_PROBE_TIMEOUT_MS each, HOST_PROBE_PARALLEL at once) and adds `reachable`,
 * `latencyMs` and, for one it cannot reach, `error` (a code and a short reason: never the
 * host's address, which the operator is not told).
 */
export function gatewayOps(inventory: () => Inventory, extra: Iterable<[string, GatewayOp]> = [], probe?: HostProbe): Map<string, GatewayOp> {
  const hostsOp: GatewayOp = (user, params) => {
    const hosts = permittedHosts(user, inventory());
    const listed = hosts.map((h) => ({ name: h.name, labels: h.labels, groups: h.groups }));
    if (params.probe !== true || !probe) return Buffer.from(JSON.stringify(listed) + '\n');
    return probeHosts(hosts, probe).then((states) => Buffer.from(JSON.stringify(listed.map((h, i) => ({ ...h, ...states[i] }))) + '\n'));
  };
  return new Map<string, GatewayOp>([['hosts', hostsOp], ...extra]);
}

type ProbeState = { reachable: boolean; latencyMs: number; error?: string };

/** Every host tried, at most HOST_PROBE_PARALLEL at once; never rejects. */
async function probeHosts(hosts: readonly FleetHost[], probe: HostProbe): Promise<ProbeState[]> {
  const states: ProbeState[] = new Array<ProbeState>(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          probe(hosts[i]!),
          new Promise((_, reject) => (timer = setTimeout(() => reject(new ShellwireError(ErrorCode.CONNECT_FAILED, `no answer within ${HOST_PROBE_TIMEOUT_MS / 1000} s`)), HOST_PROBE_TIMEOUT_MS))),
        ]);
        states[i] = { reachable: true, latencyMs: Math.round(performance.now() - started) };
      } catch (err) {
        const code = err instanceof ShellwireError ? err.code : ErrorCode.CONNECT_FAILED;
        // The code and the gist only: the dial's own words may name the host's address.
        const why = err instanceof ShellwireError && err.code === ErrorCode.CONNECT_FAILED && /no answer within/.test(err.message) ? err.message : 'the gateway cannot reach it';
        states[i] = { reachable: false, latencyMs: Math.round(performance.now() - started), error: `${code}: ${why}` };
      } finally {
        clearTimeout(timer);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(HOST_PROBE_PARALLEL, hosts.length) }, worker));
  return states;
}

/**
 * `recordings` and `recording` over `store`: an operator sees her own, one with
 * `recordings: all` in the gateway's users.yaml everyone's. A refusal keeps its code.
 * Fetching a recording (to replay it) is audited, and so is a refused fetch: who looked at
 * whose session is part of the record. (`replayed`, not `recording`: `audit verify` checks
 * the rows that made a recording, not those that read one.)
 */
export function recordingOps(store: RecordingStore): [string, GatewayOp][] {
  const op: GatewayOp = (user, params, host) => {
    const fetch = params.op === 'recording';
    try {
      const { body, bytes, info } = recordingsOp(store, user.name, params, gatewayPolicyOf(user).recordings === 'all');
      if (fetch && info) {
        host.audit.record({ kind: 'file', detail: { channelKind: 'gateway', op: 'recording', replayed: { id: info.id, operator: info.operator, host: info.host }, bytes } });
      }
      return { body };
    } catch (err) {
      if (!(err instanceof ShellwireError)) throw err;
      if (fetch) host.audit.record({ kind: 'denied', detail: { channelKind: 'gateway', op: 'recording', id: String(params.id), reason: err.message, outcome: { code: err.code, message: err.message } } });
      return { code: err.code, message: err.message };
    }
  };
  return [['recordings', op], ['recording', op]];
}

class GatewayChannel implements ServerChannel {
  readonly hooks: ChannelHooks;
  busy = false;
  #host: ChannelHost;
  #params: Record<string, unknown>;
  #ops: ReadonlyMap<string, GatewayOp>;
  #channel: Channel | null = null;
  /** Bytes read but not yet within the operator's window (at most one read of the stream). */
  #pending: Buffer | null = null;
  #body: Readable | null = null;
  #bodyEnded = false;
  #waitingForDrain = false;

  constructor(host: ChannelHost, request: OpenRequest, ops: ReadonlyMap<string, GatewayOp>) {
    this.#host = host;
    this.#params = request.params as Record<string, unknown>;
    this.#ops = ops;
    this.hooks = { onWindow: () => this.#flush(), onClose: () => this.#release() };
  }

  start(channel: Channel): Refusal | null {
    const name = this.#params.op;
    const op = typeof name === 'string' ? this.#ops.get(name) : undefined;
    if (!op) return { code: ErrorCode.BAD_REQUEST, message: `The gateway channel takes op ${[...this.#ops.keys()].join(', ')}, not ${JSON.stringify(name)}.` };
    const answer = op(this.#host.user, this.#params, this.#host);
    if (answer instanceof Promise) {
      this.busy = true;
      answer.then(
        (settled) => {
          this.busy = false;
          if (channel.state !== ChannelState.OPENING) return void (!Buffer.isBuffer(settled) && 'body' in settled ? settled.body.destroy() : undefined);
          const refusal = this.#answer(channel, settled);
          if (refusal) channel.openFail(refusal.code, refusal.message, refusal.extra ?? {});
        },
        (err: unknown) => {
          this.busy = false;
          this.#host.log.error({ user: this.#host.user.name, op: name, err: (err as Error).message }, 'gateway: op failed');
          if (channel.state === ChannelState.OPENING) channel.openFail(ErrorCode.INTERNAL, 'The gateway could not answer; its log says why.', {});
        },
      );
      return null;
    }
    return this.#answer(channel, answer);
  }

  /** OPEN_OK and the answer, or the op's refusal (returned: the caller sends OPEN_FAIL). */
  #answer(channel: Channel, answer: GatewayAnswer): Refusal | null {
    if (!Buffer.isBuffer(answer) && !('body' in answer)) return answer;
    this.#channel = channel;
    this.busy = true;
    channel.openOk({ window: 0, maxPacket: this.#host.limits.maxPayload });
    if (Buffer.isBuffer(answer)) {
      this.#pending = answer;
      this.#bodyEnded = true;
    } else {
      const body = answer.body;
      this.#body = body;
      // Paused mode: read() only when the window has room, so at most one chunk waits here.
      body.on('readable', () => this.#flush());
      body.once('end', () => {
        this.#bodyEnded = true;
        this.#flush();
      });
      body.once('error', (err) => this.#failed(err));
    }
    this.#flush();
    return null;
  }

  /**
   * The answer within the operator's window and while her socket is not congested (a 4 GiB
   * window must not pull a whole recording into the socket's buffer), then EXIT 0.
   */
  #flush(): void {
    const channel = this.#channel;
    if (!channel || channel.ended || !this.busy) return;
    for (;;) {
      if (this.#host.conn.congested) return this.#waitForDrain();
      if (this.#pending !== null) {
        const sent = channel.write('stdout', this.#pending);
        this.#pending = sent === this.#pending.length ? null : this.#pending.subarray(sent);
        if (this.#pending !== null) return; // onWindow goes on
      }
      const next = this.#body?.read() as Buffer | null | undefined;
      if (next === null || next === undefined) break;
      this.#pending = next;
    }
    if (!this.#bodyEnded) return; // 'readable' or 'end' goes on
    this.busy = false;
    this.#release();
    channel.exit({ exitCode: 0, signal: null, timedOut: false });
  }

  #waitForDrain(): void {
    if (this.#waitingForDrain) return;
    this.#waitingForDrain = true;
    this.#host.conn.whenDrained(() => {
      this.#waitingForDrain = false;
      this.#flush();
    });
  }

  /** The file could not be read to its end: say so in the EXIT (the bytes sent are a prefix). */
  #failed(err: Error): void {
    const channel = this.#channel;
    this.#release();
    if (!channel || channel.ended || !this.busy) return;
    this.busy = false;
    this.#pending = null;
    channel.exit({ exitCode: null, signal: null, timedOut: false, error: { code: ErrorCode.INTERNAL, message: `The gateway could not read the answer to the end: ${err.message}` } });
  }

  /** The file's descriptor is closed however the channel ends. */
  #release(): void {
    const body = this.#body;
    this.#body = null;
    if (body && !body.destroyed) body.destroy();
  }

  kill(): void {
    this.#release();
    this.#channel?.close();
  }
}

export function gatewayChannelFactory(ops: ReadonlyMap<string, GatewayOp>): ChannelFactory {
  return (_id, host, request) => new GatewayChannel(host, request, ops);
}

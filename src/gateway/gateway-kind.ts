/**
 * The `gateway` channel kind (served only by a gateway): OPEN `{ op: 'hosts' }` answers
 * OPEN_OK, one JSON document as STDOUT data, then EXIT 0. `hosts` lists exactly the hosts the
 * operator may reach, by name, labels and groups (never an address). The ops `recordings` and
 * `recording` belong to the recorder (docs/gateway.md): a gateway given `ops` serves them too.
 */
import type { Channel, ChannelHooks } from '../channel/channel-state.js';
import { ErrorCode } from '../errors.js';
import type { OpenRequest } from '../protocol/messages.js';
import type { AuthenticatedUser, ChannelFactory, ChannelHost, Refusal, ServerChannel } from '../server/channel-host.js';
import type { Inventory } from '../fleet/inventory.js';
import { permittedHosts } from './gateway-policy.js';

/** One `gateway` op: the document (bytes) it answers with, or a refusal. */
export type GatewayOp = (user: AuthenticatedUser, params: Record<string, unknown>) => Buffer | Refusal;

/** The ops of a gateway: `hosts` here; the recorder adds `recordings` and `recording`. */
export function gatewayOps(inventory: () => Inventory, extra: Iterable<[string, GatewayOp]> = []): Map<string, GatewayOp> {
  return new Map<string, GatewayOp>([
    ['hosts', (user) => Buffer.from(JSON.stringify(permittedHosts(user, inventory()).map((h) => ({ name: h.name, labels: h.labels, groups: h.groups }))) + '\n')],
    ...extra,
  ]);
}

class GatewayChannel implements ServerChannel {
  readonly hooks: ChannelHooks;
  busy = false;
  #host: ChannelHost;
  #params: Record<string, unknown>;
  #ops: ReadonlyMap<string, GatewayOp>;
  #pending: Buffer | null = null;

  constructor(host: ChannelHost, request: OpenRequest, ops: ReadonlyMap<string, GatewayOp>) {
    this.#host = host;
    this.#params = request.params as Record<string, unknown>;
    this.#ops = ops;
    this.hooks = { onWindow: () => this.#flush(), onClose: () => {} };
  }

  start(channel: Channel): Refusal | null {
    const name = this.#params.op;
    const op = typeof name === 'string' ? this.#ops.get(name) : undefined;
    if (!op) return { code: ErrorCode.BAD_REQUEST, message: `The gateway channel takes op ${[...this.#ops.keys()].join(', ')}, not ${JSON.stringify(name)}.` };
    const answer = op(this.#host.user, this.#params);
    if (!Buffer.isBuffer(answer)) return answer;
    this.#channel = channel;
    this.busy = true;
    channel.openOk({ window: 0, maxPacket: this.#host.limits.maxPayload });
    this.#pending = answer;
    this.#flush();
    return null;
  }

  #channel: Channel | null = null;

  /** The document within the operator's window, then EXIT 0. */
  #flush(): void {
    const channel = this.#channel;
    if (!channel || this.#pending === null) return;
    const sent = channel.write('stdout', this.#pending);
    this.#pending = this.#pending.subarray(sent);
    if (this.#pending.length > 0) return;
    this.#pending = null;
    this.busy = false;
    channel.exit({ exitCode: 0, signal: null, timedOut: false });
  }

  kill(): void {}
}

export function gatewayChannelFactory(ops: ReadonlyMap<string, GatewayOp>): ChannelFactory {
  return (_id, host, request) => new GatewayChannel(host, request, ops);
}

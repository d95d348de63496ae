/**
 * A stand-in for `shellwire gateway` while the real one (src/gateway/, another branch) is
 * built: a real daemon (startDaemonWithRoot) whose exec, session and file kinds record the
 * OPEN's `host` field and then run the request locally, as the daemon would, plus a
 * `gateway` kind that answers `{ op: 'hosts' }` with a fixed list. It proves what the client
 * sends and that everything works through a `host`-stamping connection byte for byte; the
 * relaying itself is the gateway's. End-to-end tests against the real gateway are added
 * at merge (docs/gateway.md).
 */
import { channelKinds } from '../../src/server/channel-kinds.js';
import type { ChannelFactory, ServerChannel } from '../../src/server/channel-host.js';
import type { Channel } from '../../src/channel/channel-state.js';
import { ErrorCode } from '../../src/errors.js';
import type { ServerOptions } from '../../src/server/server.js';
import { startDaemonWithRoot, type TestDaemon } from './daemon.js';

export interface SeenOpen {
  kind: string;
  host: string | undefined;
  /** The file op (`put`, `get`, `list`, `stat`, `mkdir`…), the exec command, or the gateway op. */
  what: string | undefined;
}

export interface GatewayStandIn extends TestDaemon {
  /** Every OPEN the stand-in was sent, in order. */
  seen: SeenOpen[];
}

/** What `{ op: 'hosts' }` answers. */
export const STANDIN_HOSTS = [
  { name: 'web01', labels: { role: 'web' }, groups: ['web'] },
  { name: 'db01', labels: { role: 'db', tier: 'x\u00e9' }, groups: ['db', 'prod'] },
  { name: 'app01', labels: {}, groups: [] },
  // Listed, but the stand-in refuses their OPENs (a host the gateway cannot reach; a kind or command it denies).
  { name: 'down01', labels: {}, groups: ['broken'] },
  { name: 'secret01', labels: {}, groups: ['broken'] },
];

/** Hosts the stand-in "cannot reach" (OPEN_FAIL SW_ERR_CONNECT_FAILED) or "does not permit" (SW_ERR_DENIED). */
export const UNREACHABLE_HOST = 'down01';
export const FORBIDDEN_HOST = 'secret01';

function refuseFor(host: string | undefined): { code: string; message: string } | null {
  if (host === UNREACHABLE_HOST) return { code: ErrorCode.CONNECT_FAILED, message: `cannot reach host ${host}: connection refused` };
  if (host === FORBIDDEN_HOST) return { code: ErrorCode.DENIED, message: `host ${host} is not one alice may reach through this gateway (not in its inventory, or not in users.alice.hosts ["@web"] of its users.yaml); list the hosts alice may reach with: shellwire hosts --via GATEWAY` };
  return null;
}

/** A server channel that refuses at start. */
function refusing(refusal: { code: string; message: string }): ServerChannel {
  return { hooks: { onClose: () => {} }, busy: false, kill() {}, start: () => refusal };
}

/** The `gateway` kind: one JSON document on STDOUT, then EXIT 0 (as the spec says the gateway answers). */
function gatewayKind(seen: SeenOpen[]): ChannelFactory {
  return (_id, _host, request) => {
    const op = (request.params as { op?: unknown }).op;
    seen.push({ kind: request.kind, host: request.host, what: typeof op === 'string' ? op : undefined });
    if (op !== 'hosts') return refusing({ code: ErrorCode.BAD_REQUEST, message: `unknown gateway op ${JSON.stringify(op)}` });
    const body = Buffer.from(JSON.stringify(STANDIN_HOSTS));
    let sent = 0;
    let channel: Channel;
    const pump = () => {
      sent += channel.write('stdout', body.subarray(sent));
      if (sent === body.length) channel.exit({ exitCode: 0, signal: null, timedOut: false });
    };
    return {
      hooks: { onWindow: pump, onClose: () => {} },
      busy: false,
      kill() {},
      start(c) {
        channel = c;
        c.openOk({ window: 1, maxPacket: 1024 });
        pump();
        return null;
      },
    };
  };
}

export async function startGatewayStandIn(root: string, home: string, options: ServerOptions = {}): Promise<GatewayStandIn> {
  const seen: SeenOpen[] = [];
  const standard = channelKinds();
  const recording = (kind: 'exec' | 'session' | 'file'): ChannelFactory => {
    const inner = standard.get(kind)!;
    return (id, host, request) => {
      const params = request.params as { op?: string; command?: string; argv?: string[] };
      seen.push({ kind, host: request.host, what: kind === 'file' ? params.op : params.command ?? params.argv?.join(' ') });
      const refusal = refuseFor(request.host);
      return refusal ? refusing(refusal) : inner(id, host, request);
    };
  };
  const daemon = await startDaemonWithRoot(root, home, {
    ...options,
    // A gateway's connection takes `host` (a daemon refuses it) and refuses `onBehalfOf`.
    gateway: true,
    channelKinds: [['exec', recording('exec')], ['session', recording('session')], ['file', recording('file')], ['gateway', gatewayKind(seen)]],
  });
  return Object.assign(daemon, { seen });
}

/**
 * Starting agent mode for `shellwire serve --nats` (and tests): connect out (keep trying until
 * a server answers, then reconnect forever), then serve through a `NatsAgent`. Kept apart from
 * nats-agent.ts so the CLI loads nats.js only when `--nats` is given.
 */
import type { Logger } from 'pino';
import type { Server } from './server.js';
import { connectNats, permissionViolation } from '../transport/nats-connect.js';
import { NatsAgent } from './nats-agent.js';
import { broadcastHostOf, serveBroadcasts } from './broadcast-exec.js';

export interface StartNatsAgentOptions {
  server: Server;
  servers: string | readonly string[];
  credsFile?: string | undefined;
  prefix?: string | undefined;
  name: string;
  labels?: Record<string, string>;
  log: Logger;
  /** shellwire's version, announced in the presence record. */
  version: string;
  /** A line for whoever started the agent (serve prints it on stderr): connection trouble, said at once. */
  say?: (line: string) => void;
}

export async function startNatsAgent(options: StartNatsAgentOptions): Promise<NatsAgent> {
  const say = options.say ?? (() => {});
  const nc = await connectNats({
    servers: options.servers,
    ...(options.credsFile !== undefined ? { credsFile: options.credsFile } : {}),
    name: `shellwire agent ${options.name}`,
    waitForever: true,
    // Not reachable yet: said at every round (the rounds back off to 10 s), so an agent that
    // is not serving is never silent about it.
    onRetry: (error, nextMs) => {
      const line = `agent ${options.name} is not connected: ${error.message} Retrying in ${(nextMs / 1000).toFixed(1)} s (and for ever); check that nats-server runs there, the address and port, and firewalls. It serves nobody until connected.`;
      options.log.warn({ err: error.message, retryMs: nextMs }, `nats: ${line}`);
      say(line);
    },
  });
  // A permissions error is said once per kind on the terminal (nats.js reports it again at each
  // presence announcement): the agent is connected but cannot serve what it may not use.
  const permissionsSaid = new Set<string>();
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        options.log.warn({ server: status.server }, 'nats: disconnected; reconnecting');
        say(`agent ${options.name} lost its connection to ${status.server}; reconnecting (it serves nobody until then).`);
      } else if (status.type === 'reconnect') {
        options.log.info({ server: status.server }, 'nats: reconnected');
        say(`agent ${options.name} reconnected to nats://${status.server}.`);
      } else if (status.type === 'error') {
        const denied = permissionViolation(status.error);
        if (denied !== null) {
          const hint = 'the NATS user of --nats-creds may not use this agent\'s subjects: the credentials are for another agent, or --nats-prefix / --name differ from its permissions (docs/nats.md, "NATS permissions"). Clients cannot reach this agent until that is fixed.';
          options.log.error({ err: denied }, `nats: ${denied}: ${hint}`);
          if (!permissionsSaid.has(denied)) {
            permissionsSaid.add(denied);
            say(`agent ${options.name}: ${denied}: ${hint}`);
          }
        } else options.log.warn({ err: String(status.error) }, 'nats: server error');
      }
    }
  })().catch(() => {});
  try {
    const agent = new NatsAgent({
      server: options.server,
      nc,
      name: options.name,
      labels: options.labels ?? {},
      ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
      log: options.log,
      version: options.version,
    });
    // `run --via nats://` broadcasts (docs/nats.md, "Broadcast"): judged and run here, answered signed.
    serveBroadcasts(agent, broadcastHostOf(options.server, options.log));
    return agent;
  } catch (err) {
    await nc.close();
    throw err;
  }
}

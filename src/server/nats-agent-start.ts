/**
 * Starting agent mode for `shellwire serve --nats` (and tests): connect out (keep trying until
 * a server answers, then reconnect forever), then serve through a `NatsAgent`. Kept apart from
 * nats-agent.ts so the CLI loads nats.js only when `--nats` is given.
 */
import type { Logger } from 'pino';
import type { Server } from './server.js';
import { connectNats } from '../transport/nats-connect.js';
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
}

export async function startNatsAgent(options: StartNatsAgentOptions): Promise<NatsAgent> {
  const nc = await connectNats({
    servers: options.servers,
    ...(options.credsFile !== undefined ? { credsFile: options.credsFile } : {}),
    name: `shellwire agent ${options.name}`,
    waitForever: true,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') options.log.warn({ server: status.server }, 'nats: disconnected; reconnecting');
      else if (status.type === 'reconnect') options.log.info({ server: status.server }, 'nats: reconnected');
      else if (status.type === 'error') options.log.warn({ err: String(status.error) }, 'nats: server error');
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

// Hosts COUNT shellwire NATS agents in this process, for bench/measures/nats-fleet.ts: agent i
// is named `a%05d`, has its OWN NATS connection (`connectNats`, as `serve --nats` makes it),
// its own `NatsAgent` (discovery, presence, tunnel opens) and its own broadcast executor
// (`serveBroadcasts`: decode, nonce set, key + policy check, run, signed reply) — the real
// agent path of `startNatsAgent`, minus the CLI. What the agents of one process share is one
// `Server` (one state dir: identity, users.yaml, the spawner helper that forks commands), as
// bench/fleet-daemons.mjs shares one state dir: a real host has one of each, and 10,000
// Server instances (each with its own spawner process) would measure this machine's memory,
// not shellwire. Plain JavaScript on purpose, as fleet-daemons.mjs.
//   node bench/nats-agents.mjs STATE_DIR NATS_URL FIRST COUNT
// Prints `READY` when every agent is connected and subscribed (flushed), then waits for SIGTERM.
import pino from 'pino';
import { Server } from '../dist/server/index.js';
import { connectNats } from '../dist/transport/nats-connect.js';
import { NatsAgent } from '../dist/server/nats-agent.js';
import { broadcastHostOf, serveBroadcasts } from '../dist/server/broadcast-exec.js';

const [stateDir, url, first, count] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const log = pino({ level: 'warn' }, pino.destination(2));
// audit: false: the agents share one state dir; a real host has its own log (one writer).
const server = await Server.create({ port: 0, stateDir, audit: false, limits: { killGraceMs: 500, shutdownGraceMs: 500 } });
const host = broadcastHostOf(server, log);
const agents = [];
// Connect in small batches: 10,000 agents at once would be a reconnect storm, not a fleet.
const BATCH = 50;
for (let i = first; i < first + count; i += BATCH) {
  const batch = [];
  for (let j = i; j < Math.min(first + count, i + BATCH); j++) {
    batch.push((async () => {
      const name = `a${String(j).padStart(5, '0')}`;
      const nc = await connectNats({ servers: url, name: `shellwire agent ${name}`, waitForever: true });
      const agent = new NatsAgent({ server, nc, name, labels: { bench: 'nats-fleet' }, log, version: 'bench' });
      serveBroadcasts(agent, host);
      await nc.flush();
      agents.push(agent);
    })());
  }
  await Promise.all(batch);
}
process.stdout.write('READY\n');
process.on('SIGTERM', () => {
  void Promise.all(agents.map(async (a) => {
    await a.close();
    await a.nc.close();
  })).then(() => server.close(0)).finally(() => process.exit(0));
});

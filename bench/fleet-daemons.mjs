// Hosts COUNT shellwire daemons in this process, for bench/fleet.ts: target i listens on its
// own loopback address 127.0.x.y, same port. Plain JavaScript on purpose: a daemon process
// should be as lean as a real one (no TypeScript loader thread), because fork() gets slower
// as the forking process grows, and that is what a command costs the daemon.
//   node bench/fleet-daemons.mjs STATE_DIR FIRST COUNT PORT
import { Server } from '../dist/server/index.js';

const [stateDir, first, count, port] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const addressOf = (i) => `127.0.${Math.floor((i + 2) / 254)}.${((i + 2) % 254) + 1}`;
const servers = [];
for (let i = first; i < first + count; i++) {
  // audit: false — these daemons share one state dir; a real host has its own log (one writer).
  const server = await Server.create({ host: addressOf(i), port, stateDir, audit: false, limits: { killGraceMs: 500, shutdownGraceMs: 500 } });
  await server.listen();
  servers.push(server);
}
process.stdout.write('READY\n');
process.on('SIGTERM', () => void Promise.all(servers.map((s) => s.close(0))).then(() => process.exit(0)));

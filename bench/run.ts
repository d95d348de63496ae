/**
 * `npm run bench`: shellwire against its references, measured in the same run.
 *
 * The daemon is the real one (`node bin/shellwire(.js/.cjs) serve`, its own process); the client
 * side is either this process (library) or the real CLI in a fresh process. Every floor (local
 * spawn, Node TLS) is taken in a lean `node` process (no tsx); OpenSSH is the private sshd of
 * ../shared/peers. Each figure is the median of several runs, interleaved with its reference.
 * Prints a markdown table and writes it to bench/results.md.
 *
 *   BENCH_QUICK=1        short smoke run (fewer runs, 128 MiB files, 5 s slow reader; 1 round)
 *   BENCH_ROUNDS=N       measure the whole table N times; cells are medians (min–max) over rounds
 *                        (default 3 for the full bench, 1 with BENCH_QUICK=1)
 *   BENCH_ONLY=a,b       only these measures (ids below, or a word of their name)
 *   BENCH_SKIP_BUILD=1   do not run `npm run build` first (dist/ must exist)
 *   SHELLWIRE_PEERS_DIR  where lib.sh lives (default ../shared/peers from the repo)
 *
 * The harness (options, build, sshd and daemon lifecycle, rounds, the table) is lib/harness.ts;
 * each measure is a file in measures/ (its id is the file name). The rows come out in this
 * order, shared-daemon measures first, then those that start their own daemons.
 */
import { runBench } from './lib/harness.js';
import { roundTrip } from './measures/round-trip.js';
import { auditOverhead } from './measures/audit-overhead.js';
import { concurrent } from './measures/concurrent.js';
import { stream } from './measures/stream.js';
import { libraryStream } from './measures/library-stream.js';
import { cold } from './measures/cold.js';
import { idleRss } from './measures/idle-rss.js';
import { slowReaderRss } from './measures/slow-reader-rss.js';
import { spawnLatency } from './measures/spawn-latency.js';
import { spawnUnderLoad } from './measures/spawn-under-load.js';
import { files } from './measures/files.js';
import { gatewayPut, gatewayRoundTrip, gatewayStream } from './measures/gateway.js';
import { webConsole } from './measures/web-console.js';
import { natsFleet } from './measures/nats-fleet.js';

runBench([
  roundTrip,
  auditOverhead,
  concurrent,
  stream,
  libraryStream,
  cold,
  idleRss,
  slowReaderRss,
  spawnLatency,
  spawnUnderLoad,
  files,
  gatewayRoundTrip,
  gatewayStream,
  gatewayPut,
  webConsole,
  natsFleet,
]);

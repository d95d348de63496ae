/**
 * The long protocol fuzz (issue 8): ≥ 10^6 frames of hostile sessions against the real daemon
 * in a child process, then: 0 crashes, the daemon still serves `echo ok`, and its fds, RSS
 * and child processes are back to baseline. Exits non-zero on any failure.
 *
 *   npm run build && npm run fuzz
 *
 *   FUZZ_FRAMES=1000000     frames to send (the run stops at this count)
 *   FUZZ_SEED=n             seed (default: random, printed); the same seed replays the run
 *   FUZZ_CONCURRENCY=8      sessions at once
 *   FUZZ_SESSION_FRAMES=20000  longest valid session, in frames
 *   FUZZ_SESSION=i[,j…]     run only these sessions (a replay); FUZZ_PRINT=1 prints their steps
 *   FUZZ_MODE=stalled       only sessions of this mode (prelogin, valid, chaos, stalled)
 *   FUZZ_MODES=valid,chaos  only sessions of these modes, in their usual proportions
 *   FUZZ_RSS_TOLERANCE_MIB=64  RSS growth allowed after the settle period
 *   FUZZ_AUDIT=0            run the daemon without its audit log
 *   FUZZ_SETTLE_S=30        how long fds, RSS and processes get to come back to baseline
 *
 * Session-level shrinking: when the daemon dies, each session that was in flight is replayed
 * alone against a fresh daemon, and the culprit's steps are cut down to a minimal reproducer
 * that is printed (with the daemon's token replaced by $TOKEN).
 */
import { checkHealth, describeCrash, explainLeftovers, runFuzz, runSession, type FuzzTotals } from '../test/helpers/fuzz-runner.js';
import { startFuzzDaemon, settle, type FuzzDaemon } from '../test/helpers/fuzz-daemon.js';
import { DEFAULT_MODE_WEIGHTS, describeSession, generateSession, type FuzzSession, type SessionMode } from '../test/helpers/fuzz-frames.js';
import { readFileSync } from 'node:fs';

const FRAMES = Number(process.env.FUZZ_FRAMES ?? 1_000_000);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 32);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 8);
const SESSION_FRAMES = Number(process.env.FUZZ_SESSION_FRAMES ?? 20_000);
const ONLY = process.env.FUZZ_SESSION ? process.env.FUZZ_SESSION.split(',').map(Number) : undefined;
const MODE = process.env.FUZZ_MODE as SessionMode | undefined;
const MODES = process.env.FUZZ_MODES ? (process.env.FUZZ_MODES.split(',') as SessionMode[]) : undefined;
const RSS_TOLERANCE_KIB = Number(process.env.FUZZ_RSS_TOLERANCE_MIB ?? 64) * 1024;
const AUDIT = process.env.FUZZ_AUDIT !== '0';
const SETTLE_MS = Number(process.env.FUZZ_SETTLE_S ?? 30) * 1000;
const generate = {
  maxFrames: SESSION_FRAMES,
  ...(MODE ? { mode: MODE } : {}),
  ...(MODES ? { modeWeights: DEFAULT_MODE_WEIGHTS.filter(([, mode]) => MODES.includes(mode)) } : {}),
};

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

async function main(): Promise<number> {
  console.log(`fuzz: seed ${SEED}, ${FRAMES} frames, concurrency ${CONCURRENCY}, sessions up to ${SESSION_FRAMES} frames${ONLY ? `, only sessions ${ONLY.join(',')}` : ''}`);
  const daemon = await startFuzzDaemon({ audit: AUDIT });
  const live = new Set<FuzzDaemon>([daemon]);
  const cleanup = () => {
    for (const d of live) if (d.exit === null) d.child.kill('SIGKILL');
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    if (ONLY && process.env.FUZZ_PRINT === '1') {
      for (const i of ONLY) console.log(describeSession(generateSession(SEED, i, daemon, generate), daemon.token));
    }
    // Warm up (TLS, audit log, first spawn) before the baseline.
    await daemon.echoOk();
    const baseline = {
      fds: await settle(() => daemon.fdCount(), () => true, 0),
      rssKiB: daemon.rssKiB(),
    };
    const started = performance.now();
    let lastReport = started;
    const totals = await runFuzz(daemon, {
      seed: SEED,
      sessions: ONLY ? ONLY.length : Number.MAX_SAFE_INTEGER,
      frames: FRAMES,
      concurrency: CONCURRENCY,
      generate,
      ...(ONLY ? { only: ONLY } : {}),
      sessionDeadlineMs: 30_000,
      onSession: (_session, _result, t) => {
        const now = performance.now();
        if (now - lastReport > 10_000) {
          lastReport = now;
          console.log(`  ${((now - started) / 1000).toFixed(0)} s: ${t.sessions} sessions, ${t.frames} frames, daemon fds ${safe(() => daemon.fdCount())}, RSS ${safe(() => mib(daemon.rssKiB()))}`);
        }
      },
    });
    const seconds = (performance.now() - started) / 1000;
    const peakRss = safe(() => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))?.[1] ?? 0));
    const health = await checkHealth(daemon, baseline, { settleMs: SETTLE_MS, fdTolerance: 4, rssToleranceKiB: RSS_TOLERANCE_KIB });
    printSummary(totals, seconds, baseline, health, peakRss);
    const failures: string[] = [...health.problems];
    if (totals.crash) failures.unshift(describeCrash(totals));
    if (totals.decodeErrors.length > 0) failures.push(`daemon sent undecodable frames: ${totals.decodeErrors.slice(0, 5).join('; ')}`);
    failures.push(...explainLeftovers(health, totals, SEED));
    if (daemon.errorLines.length > 0) console.log(`daemon logged ${daemon.errorLines.length} error line(s), first:\n${daemon.errorLines.slice(0, 5).join('\n')}`);
    if (!ONLY && !totals.crash && totals.frames < FRAMES) failures.push(`only ${totals.frames} of ${FRAMES} frames were sent`);
    if (totals.crash) await shrinkCrash(totals, live);
    if (failures.length > 0) {
      console.log(`\nFAIL (seed ${SEED}):\n${failures.join('\n')}`);
      return 1;
    }
    console.log(`\nPASS (seed ${SEED})`);
    return 0;
  } finally {
    for (const d of live) await d.stop();
  }
}


function safe<T>(f: () => T): T | string {
  try {
    return f();
  } catch {
    return '?';
  }
}

function printSummary(totals: FuzzTotals, seconds: number, baseline: { fds: number; rssKiB: number }, health: Awaited<ReturnType<typeof checkHealth>>, peakRss: number | string): void {
  const goodbyes = Object.entries(totals.goodbyes).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
  console.log(`
summary
  frames       ${totals.frames} (${(totals.frames / seconds).toFixed(0)}/s), ${(totals.bytesSent / 2 ** 20).toFixed(1)} MiB sent, ${(totals.bytesReceived / 2 ** 20).toFixed(1)} MiB received
  sessions     ${totals.sessions} (${Object.entries(totals.byMode).map(([m, n]) => `${m} ${n}`).join(', ')}), ${totals.timeouts} hit the deadline, ${totals.connectErrors} connect errors
  duration     ${seconds.toFixed(1)} s
  crashes      ${totals.crash ? `1 (${totals.crash.exit})` : 0}
  fds          ${baseline.fds} before, ${health.fdsAfter} after
  RSS          ${mib(baseline.rssKiB)} before, ${health.rssAfterKiB >= 0 ? mib(health.rssAfterKiB) : '?'} after, peak ${typeof peakRss === 'number' ? mib(peakRss) : peakRss}
  leftovers    ${health.leftovers.length}
  goodbyes     ${goodbyes || 'none'}`);
}

/**
 * Replay each suspect alone on a fresh daemon; cut the culprit's steps down (ddmin over step
 * indexes). A session regenerated from its seed against another daemon has the same steps,
 * with that daemon's token and paths, so the indexes carry over.
 */
async function shrinkCrash(totals: FuzzTotals, live: Set<FuzzDaemon>): Promise<void> {
  const crashes = async (suspect: FuzzSession, keep: number[]): Promise<boolean> => {
    const daemon = await startFuzzDaemon({ audit: AUDIT });
    live.add(daemon);
    try {
      const fresh = generateSession(SEED, suspect.index, daemon, generate);
      await runSession(daemon.port, { ...fresh, steps: keep.map((i) => fresh.steps[i]!) }, 30_000);
      await settle(() => daemon.exit, (e) => e !== null, 3_000);
      return daemon.exit !== null;
    } finally {
      await daemon.stop();
      live.delete(daemon);
    }
  };
  for (const suspect of totals.crash!.inFlight) {
    console.log(`\nreplaying session ${suspect.index} alone (FUZZ_SEED=${SEED} FUZZ_SESSION=${suspect.index})…`);
    let keep = suspect.steps.map((_, i) => i);
    if (!(await crashes(suspect, keep))) {
      console.log(`  session ${suspect.index} alone does not crash the daemon`);
      continue;
    }
    for (let chunk = Math.ceil(keep.length / 2); chunk >= 1; chunk = Math.floor(chunk / 2)) {
      for (let i = 0; i < keep.length; ) {
        const candidate = [...keep.slice(0, i), ...keep.slice(i + chunk)];
        if (candidate.length > 0 && (await crashes(suspect, candidate))) keep = candidate;
        else i += chunk;
      }
    }
    console.log(`minimal reproducer (steps ${keep.join(',')} of session ${suspect.index}):`);
    console.log(describeSession({ ...suspect, steps: keep.map((i) => suspect.steps[i]!) }, totals.token));
    return;
  }
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(err);
  return 2;
});

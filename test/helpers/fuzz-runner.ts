/**
 * Plays fuzz sessions (test/helpers/fuzz-frames.ts) against a daemon over TLS, several at
 * once, and checks afterwards that the daemon survived and let go of everything.
 *
 * Every socket is bounded in time: a session that is not over by its deadline is destroyed.
 * The runner reads everything the daemon sends (except while a session plays a stalled
 * reader) and decodes it, so an undecodable answer from the daemon is caught too.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { FrameDecoder, FrameType, PROTOCOL_MAX_PAYLOAD, STREAM_FRAME_TYPES } from '../../src/protocol/frame.js';
import { ALPN_PROTOCOL } from '../../src/transport/tls.js';
import { describeSession, frameCount, generateSession, type FuzzSession, type GenerateOptions, type SessionMode } from './fuzz-frames.js';
import { settle, type FuzzDaemon } from './fuzz-daemon.js';

export interface SessionResult {
  framesSent: number;
  bytesSent: number;
  bytesReceived: number;
  /** GOODBYE code the daemon sent, if any. */
  goodbye: string | null;
  connectError: string | null;
  /** The daemon sent bytes our decoder rejects: a daemon bug. */
  decodeError: string | null;
  timedOut: boolean;
  /** Process ids from the daemon's OPEN_OKs: a leftover process names its session. */
  pids: number[];
}

/** Run one session; never rejects, never outlives `deadlineMs`. */
export function runSession(port: number, session: FuzzSession, deadlineMs: number): Promise<SessionResult> {
  const result: SessionResult = { framesSent: 0, bytesSent: 0, bytesReceived: 0, goodbye: null, connectError: null, decodeError: null, timedOut: false, pids: [] };
  return new Promise((resolve) => {
    let closed = false;
    let settled = false;
    const wakers = new Set<() => void>();
    const wake = () => {
      for (const w of [...wakers]) w();
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket?.destroy();
      resolve(result);
    };
    const deadline = setTimeout(() => {
      result.timedOut = true;
      finish();
    }, deadlineMs);
    const seen: Array<{ type: number; channel: number }> = [];
    const decoder = new FrameDecoder(
      (frame) => {
        if (frame.type === FrameType.GOODBYE) {
          try {
            result.goodbye = (JSON.parse(frame.payload.toString('utf8')) as { code: string }).code;
          } catch {
            result.goodbye = 'malformed';
          }
        }
        if (frame.type === FrameType.OPEN_OK) {
          try {
            const pid = (JSON.parse(frame.payload.toString('utf8')) as { pid?: number }).pid;
            if (typeof pid === 'number') result.pids.push(pid);
          } catch {
            // not ours to judge here
          }
        }
        if (!STREAM_FRAME_TYPES.has(frame.type)) {
          if (seen.length > 1000) seen.splice(0, 500);
          seen.push({ type: frame.type, channel: frame.channel });
        }
      },
      { maxPayload: PROTOCOL_MAX_PAYLOAD, streamTypes: STREAM_FRAME_TYPES },
    );
    /** Resolves when `check` holds, the socket closed, or `ms` passed. */
    const waitUntil = (check: () => boolean, ms: number) =>
      new Promise<void>((done) => {
        if (check() || closed) return done();
        const timer = setTimeout(stop, ms);
        function stop() {
          clearTimeout(timer);
          wakers.delete(waker);
          done();
        }
        const waker = () => {
          if (check() || closed) stop();
        };
        wakers.add(waker);
      });
    const sleep = (ms: number) => waitUntil(() => false, ms);

    const play = async () => {
      for (const step of session.steps) {
        if (closed || settled) return;
        switch (step.op) {
          case 'send': {
            result.framesSent += step.frames;
            result.bytesSent += step.bytes.length;
            if (!socket.write(step.bytes)) {
              // The daemon reads on; if it stops, the deadline ends us.
              await waitUntil(() => !socket.writableNeedDrain, deadlineMs);
            }
            break;
          }
          case 'await': {
            const from = seen.length;
            await waitUntil(() => seen.slice(Math.max(0, from - 50)).some((f) => f.type === step.type && (step.channel === undefined || f.channel === step.channel)) || result.goodbye !== null, step.timeoutMs);
            break;
          }
          case 'sleep':
            await sleep(step.ms);
            break;
          case 'pause':
            socket.pause();
            break;
          case 'resume':
            socket.resume();
            break;
          case 'end':
            socket.end();
            break;
          case 'destroy':
            socket.destroy();
            return;
        }
      }
      // Let the daemon answer (and close) before we drop the connection.
      await waitUntil(() => false, socket.isPaused() ? 200 : 2_000);
    };

    // TCP first, from the session's own loopback address, then TLS over it.
    const tcp = netConnect({ host: '127.0.0.1', port, localAddress: session.source });
    const socket: TLSSocket = tlsConnect({ socket: tcp, rejectUnauthorized: false, ALPNProtocols: [ALPN_PROTOCOL] });
    tcp.on('error', () => socket.destroy());
    socket.on('drain', wake);
    socket.on('data', (chunk: Buffer) => {
      result.bytesReceived += chunk.length;
      if (result.decodeError) return;
      try {
        decoder.push(chunk);
      } catch (err) {
        result.decodeError = (err as Error).message;
      }
      wake();
    });
    let connected = false;
    socket.on('error', (err) => {
      if (!connected) result.connectError ??= err.message;
    });
    socket.on('close', () => {
      closed = true;
      wake();
      finish();
    });
    socket.once('secureConnect', () => {
      connected = true;
      play().then(finish, finish);
    });
  });
}

export interface FuzzRunOptions {
  seed: number;
  /** Sessions to run, or stop when `frames` frames were sent, whichever comes first. */
  sessions: number;
  frames?: number;
  concurrency: number;
  generate: GenerateOptions;
  /** Only these session indexes (a replay). */
  only?: number[];
  /** Index of the first session (a later round on the same daemon continues where the last stopped). */
  firstSession?: number;
  sessionDeadlineMs?: number;
  /** Called after every session, e.g. for progress. */
  onSession?(session: FuzzSession, result: SessionResult, totals: FuzzTotals): void;
}

export interface FuzzTotals {
  /** The daemon's token, to blank it out of reproducers. */
  token: string;
  sessions: number;
  frames: number;
  bytesSent: number;
  bytesReceived: number;
  byMode: Record<SessionMode, number>;
  goodbyes: Record<string, number>;
  connectErrors: number;
  timeouts: number;
  decodeErrors: string[];
  /** Which session opened the command with this pid (from OPEN_OK). */
  pidOwner: Map<number, number>;
  /** Sessions running when the daemon was seen dead, then the ones that ended just before: the suspects. */
  crash: { exit: string; inFlight: FuzzSession[] } | null;
}

/** Run sessions against `daemon` until done or the daemon died. */
export async function runFuzz(daemon: FuzzDaemon, options: FuzzRunOptions): Promise<FuzzTotals> {
  const totals: FuzzTotals = {
    token: daemon.token, sessions: 0, frames: 0, bytesSent: 0, bytesReceived: 0, byMode: { prelogin: 0, valid: 0, chaos: 0, stalled: 0 },
    goodbyes: {}, connectErrors: 0, timeouts: 0, decodeErrors: [], crash: null, pidOwner: new Map(),
  };
  const env = { token: daemon.token, root: daemon.root, file: daemon.file };
  const queue = options.only ? [...options.only] : null;
  let next = options.firstSession ?? 0;
  const inFlight = new Set<FuzzSession>();
  // A crash can come a moment after the session that caused it ended (a timer, a kill grace).
  const recent: FuzzSession[] = [];
  const take = (): FuzzSession | null => {
    if (totals.crash) return null;
    if (queue) {
      const index = queue.shift();
      return index === undefined ? null : generateSession(options.seed, index, env, options.generate);
    }
    if (next - (options.firstSession ?? 0) >= options.sessions || (options.frames !== undefined && totals.frames >= options.frames)) return null;
    return generateSession(options.seed, next++, env, options.generate);
  };
  const onExit = () => {
    totals.crash ??= { exit: `code ${daemon.exit?.code} signal ${daemon.exit?.signal}`, inFlight: [...inFlight, ...[...recent].reverse()] };
  };
  daemon.child.once('exit', onExit);
  const worker = async () => {
    for (let session = take(); session; session = take()) {
      inFlight.add(session);
      const result = await runSession(daemon.port, session, options.sessionDeadlineMs ?? 15_000);
      inFlight.delete(session);
      recent.push(session);
      if (recent.length > 2 * options.concurrency) recent.shift();
      totals.sessions += 1;
      totals.frames += result.framesSent;
      totals.bytesSent += result.bytesSent;
      totals.bytesReceived += result.bytesReceived;
      totals.byMode[session.mode] += 1;
      if (result.goodbye) totals.goodbyes[result.goodbye] = (totals.goodbyes[result.goodbye] ?? 0) + 1;
      for (const pid of result.pids) totals.pidOwner.set(pid, session.index);
      if (result.connectError) totals.connectErrors += 1;
      if (result.timedOut) totals.timeouts += 1;
      if (result.decodeError) totals.decodeErrors.push(`session ${session.index}: ${result.decodeError}`);
      options.onSession?.(session, result, totals);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  // Give a delayed crash (kill grace, GOODBYE destroy timer) the time to show.
  await settle(() => daemon.exit, (exit) => exit !== null, 3_000);
  daemon.child.removeListener('exit', onExit);
  if (daemon.exit) onExit();
  return totals;
}

export interface HealthReport {
  ok: boolean;
  problems: string[];
  fdsBefore: number;
  fdsAfter: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  leftovers: Array<{ pid: number; cmd: string }>;
}

/**
 * After a run: the daemon is alive, serves `echo ok`, and its fds (and, if asked, RSS) and
 * the processes it started are back to baseline within `settleMs`.
 */
export async function checkHealth(
  daemon: FuzzDaemon,
  baseline: { fds: number; rssKiB: number },
  options: { settleMs: number; fdTolerance: number; rssToleranceKiB?: number },
): Promise<HealthReport> {
  const problems: string[] = [];
  const report: HealthReport = { ok: false, problems, fdsBefore: baseline.fds, fdsAfter: -1, rssBeforeKiB: baseline.rssKiB, rssAfterKiB: -1, leftovers: [] };
  if (daemon.exit) {
    problems.push(`daemon exited (code ${daemon.exit.code}, signal ${daemon.exit.signal}); stderr tail:\n${daemon.stderrTail().slice(-4000)}`);
    return report;
  }
  try {
    await checkResources(daemon, baseline, options, report);
  } catch (err) {
    // /proc/PID is gone: the daemon died while we looked.
    problems.push(`daemon vanished during the health check: ${(err as Error).message}`);
  }
  const died = daemon.exit as FuzzDaemon['exit'];
  if (died) {
    problems.push(`daemon exited (code ${died.code}, signal ${died.signal}); stderr tail:\n${daemon.stderrTail().slice(-4000)}`);
    return report;
  }
  try {
    const out = await daemon.echoOk();
    if (out !== 'ok\n') problems.push(`echo ok printed ${JSON.stringify(out)}`);
  } catch (err) {
    problems.push(`echo ok failed: ${(err as Error).message}`);
  }
  const exit = daemon.exit as FuzzDaemon['exit'];
  if (exit) problems.push(`daemon exited during the health check (code ${exit.code}, signal ${exit.signal})`);
  report.ok = problems.length === 0;
  return report;
}

async function checkResources(
  daemon: FuzzDaemon,
  baseline: { fds: number; rssKiB: number },
  options: { settleMs: number; fdTolerance: number; rssToleranceKiB?: number },
  report: HealthReport,
): Promise<void> {
  const problems = report.problems;
  report.leftovers = await settle(() => daemon.leftovers(), (l) => l.length === 0, options.settleMs);
  if (report.leftovers.length > 0) problems.push(`processes left behind: ${report.leftovers.map((l) => `${l.pid} ${l.cmd}`).join('; ')}`);
  report.fdsAfter = await settle(() => daemon.fdCount(), (n) => n <= baseline.fds + options.fdTolerance, options.settleMs);
  if (report.fdsAfter > baseline.fds + options.fdTolerance) {
    problems.push(`fds: ${baseline.fds} before, ${report.fdsAfter} after (tolerance ${options.fdTolerance}): ${summarizeFds(daemon.fdTargets())}`);
  }
  if (options.rssToleranceKiB !== undefined) {
    report.rssAfterKiB = await settle(() => daemon.rssKiB(), (kib) => kib <= baseline.rssKiB + options.rssToleranceKiB!, options.settleMs, 1_000);
    if (report.rssAfterKiB > baseline.rssKiB + options.rssToleranceKiB) {
      problems.push(`RSS: ${baseline.rssKiB} KiB before, ${report.rssAfterKiB} KiB after (tolerance ${options.rssToleranceKiB} KiB)`);
    }
  } else {
    report.rssAfterKiB = daemon.rssKiB();
  }
}

/** For each leftover process, the session that started it (by its pid or its group's). */
export function explainLeftovers(health: HealthReport, totals: FuzzTotals, seed: number): string[] {
  return health.leftovers.map(({ pid, cmd }) => {
    const owner = totals.pidOwner.get(pid) ?? totals.pidOwner.get(pgidOf(pid));
    return `leftover ${pid} (${cmd}) was started by ${owner === undefined ? 'an unknown session' : `session ${owner}: FUZZ_SEED=${seed} FUZZ_SESSION=${owner}`}`;
  });
}

function pgidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return -1;
  }
}

function summarizeFds(targets: string[]): string {
  const kinds = new Map<string, number>();
  for (const t of targets) {
    const kind = t.replace(/:\[\d+\]$/, '').replace(/^\/.*/, 'path');
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...kinds].map(([k, n]) => `${k} ${n}`).join(', ');
}

/** The suspects of a crash, described for a reproducer. */
export function describeCrash(totals: FuzzTotals): string {
  if (!totals.crash) return '';
  const lines = [`daemon died (${totals.crash.exit}) while ${totals.crash.inFlight.length} session(s) ran:`];
  for (const s of totals.crash.inFlight) lines.push(describeSession(s, totals.token));
  return lines.join('\n');
}

export { frameCount };

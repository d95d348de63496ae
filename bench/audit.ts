/**
 * The raw cost of the audit log: N `AuditLog.record()` calls on a real file (WAL,
 * synchronous=NORMAL, hash chain), timed one by one. The daemon records two rows per
 * command (start and end), so twice the median is what a command pays.
 *
 *   node --import tsx bench/audit.ts            N = 20,000
 *   AUDIT_BENCH_N=100000 node --import tsx bench/audit.ts
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, auditLogPath, type AuditEvent } from '../src/audit/audit-log.js';
import { fmt, median } from './lib/util.js';

const N = Number(process.env.AUDIT_BENCH_N ?? 20_000);
const WARM_UP = 1_000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Alternating command-start / command-end rows shaped like the daemon's, with varying text. */
function event(i: number): AuditEvent {
  const common = {
    user: `user${i % 17}`, osUser: 'deploy', address: `10.0.${i % 250}.${i % 200}:${40_000 + (i % 20_000)}`,
    keyFingerprint: 'SHA256:Yk0vVwd8u3JmE4x3m1c0n2bQ8q9f7ZpP1hX2s3d4e5f', cwd: '/srv/app/releases/current',
    command: `systemctl status app-${i} --no-pager && tail -n 100 /var/log/app/${i}.log | grep -c ERROR`,
  };
  const started = new Date(1_750_000_000_000 + i * 1_000);
  return i % 2 === 0
    ? { kind: 'command-start', ...common, startedAt: started }
    : { kind: 'command-end', ...common, startedAt: started, endedAt: new Date(started.getTime() + 1_234), exitCode: i % 7 === 0 ? 1 : 0, bytesIn: 0, bytesOut: 4_096 + i, durationMs: 1_234 };
}

const dir = mkdtempSync(join(tmpdir(), 'shellwire-audit-bench-'));
try {
  const path = auditLogPath(dir);
  const log = AuditLog.open(path);
  for (let i = 0; i < WARM_UP; i++) log.record(event(i));

  const micros: number[] = new Array(N);
  const startAll = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const e = event(WARM_UP + i); // built outside the timed region
    const t0 = process.hrtime.bigint();
    log.record(e);
    micros[i] = Number(process.hrtime.bigint() - t0) / 1_000;
  }
  const totalS = Number(process.hrtime.bigint() - startAll) / 1e9;
  const sorted = [...micros].sort((a, b) => a - b);

  const verifyStart = process.hrtime.bigint();
  const verdict = log.verify();
  const verifyS = Number(process.hrtime.bigint() - verifyStart) / 1e9;
  log.close();
  const bytes = statSync(path).size;

  const med = median(micros);
  process.stdout.write(
    [
      `audit log: ${fmt(N, 0)} record() calls after ${fmt(WARM_UP, 0)} warm-up (node ${process.version}, WAL, synchronous=NORMAL, ${tmpdir()})`,
      `  per row:     median ${fmt(med, 1)} µs, p90 ${fmt(percentile(sorted, 90), 1)} µs, p99 ${fmt(percentile(sorted, 99), 1)} µs, max ${fmt(sorted.at(-1)!, 0)} µs`,
      `  throughput:  ${fmt(N / totalS, 0)} rows/s (${fmt(totalS, 2)} s in total, including event construction)`,
      `  per command: ~${fmt(2 * med, 1)} µs (command-start + command-end rows)`,
      `  verify():    ${fmt(N + WARM_UP, 0)} rows in ${fmt(verifyS * 1000, 0)} ms (${verdict.ok ? 'intact' : `NOT intact: ${verdict.message}`})`,
      `  file size:   ${fmt(bytes / 1024 / 1024, 1)} MiB after checkpoint (${fmt(bytes / (N + WARM_UP), 0)} B/row incl. indexes)`,
      '',
    ].join('\n'),
  );
  if (!verdict.ok) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

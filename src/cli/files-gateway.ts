/**
 * `shellwire put LOCAL... TARGETS:REMOTE --via GW` (or hosts whose inventory `via:` is one
 * gateway): each local file crosses the operator's link once and the gateway pushes it to
 * every host (client/files/put-hosts.ts, src/gateway/fanout-put.ts), instead of once per host.
 * The hosts' outcomes come back as a fan-out run's results, each as soon as the gateway has it
 * (files-fanout.ts prints them as for a direct fan-out: status line, grouped summary, --json,
 * exit status).
 *
 * With `--via`, TARGETS are resolved over the gateway's list of hosts the operator may reach
 * (as `run --via`); a plain name that is not in it is still sent, so the gateway refuses it
 * by name ("not permitted") and the summary reports it, rather than a local "no such host".
 */
import { basename, posix } from 'node:path';
import type { HostCopyResult } from '../client/files/put-hosts.js';
import type { FleetHost } from '../fleet/inventory.js';
export { gatewayTargetsInventory } from '../fleet/gateway-hosts.js';
import type { ConnectionPool } from '../fleet/pool.js';
import type { HostTask, HostTaskOutcome } from '../fleet/run-on.js';
import { ErrorCode, ShellwireError } from '../errors.js';

/** True when every host goes through the same gateway: its `via`, else null. */
export function commonGateway(hosts: readonly FleetHost[]): string | null {
  const via = hosts[0]?.via;
  if (via === undefined || hosts.some((h) => h.via !== via)) return null;
  return via;
}

/** A part of one host's outcome: its copy of one source file, or why that file went nowhere. */
type Part = HostCopyResult | { error: { code: string; message: string } };

/** What `gatewayPutTask` gives the fan-out, and the live per-host progress for a status line. */
export interface GatewayPutTask {
  task: HostTask;
  /** `web03 45%` for a host whose copy of the current file is under way, else undefined. */
  progress(host: string): string | undefined;
}

/**
 * A fan-out task for each host that waits for its part of the one upload per source file
 * (started by the first host's task). Each host's outcome arrives as soon as the gateway has it
 * (its live records, docs/protocol.md §10), so a host is done in the run — status line, --json
 * — while slower ones still copy. A host's timeout or cancel ends its wait; when every host
 * has given up, the uploads stop.
 */
export function gatewayPutTask(pool: ConnectionPool, probe: FleetHost, hosts: readonly FleetHost[], sources: readonly string[], remote: string, options: { rateLimit?: number; hostTimeoutMs?: number }): GatewayPutTask {
  const names = hosts.map((h) => h.name);
  const abort = new AbortController();
  let waiting = hosts.length;
  let uploads: Promise<void> | null = null;
  // Each host's parts, one per source file, in order; its waiter runs when it has them all.
  const parts = new Map<string, Part[]>(names.map((n) => [n, []]));
  const waiters = new Map<string, () => void>();
  const sent = new Map<string, { bytes: number; total: number }>();
  const deliver = (host: string, part: Part) => {
    const mine = parts.get(host);
    if (!mine || mine.length === sources.length) return;
    mine.push(part);
    sent.delete(host);
    if (mine.length === sources.length) waiters.get(host)?.();
  };
  const start = async () => {
    const conn = await pool.gateway(probe, abort.signal);
    for (const [i, source] of sources.entries()) {
      // Several sources go into REMOTE as a directory (as cp and scp): it must exist on each host.
      const target = sources.length > 1 ? posix.join(remote, basename(source)) : remote;
      try {
        await conn.putToHosts(source, names, target, {
          ...options, signal: abort.signal, ...(sources.length > 1 ? { intoDirectory: false } : {}),
          onHostProgress: ({ host, bytes, total }) => sent.set(host, { bytes, total }),
          onHostResult: (copy) => deliver(copy.host, copy),
        });
      } catch (err) {
        // The whole upload failed (the local file, the gateway's spool, no host permitted): every host's copy of this file.
        if (!(err instanceof ShellwireError) || err.code === ErrorCode.CONNECTION_CLOSED) throw err;
        for (const name of names) if (parts.get(name)!.length === i) deliver(name, { error: { code: err.code, message: err.message } });
      }
      // A host the gateway did not answer for (it reports every host: a safety net).
      for (const name of names) if (parts.get(name)!.length === i) deliver(name, { error: { code: ErrorCode.INTERNAL, message: `the gateway did not report on ${name}` } });
    }
  };
  const task: HostTask = async (_conn, host, context): Promise<HostTaskOutcome> => {
    uploads ??= start();
    const gaveUp = new Promise<never>((_, reject) => {
      const onAbort = () => {
        waiting -= 1;
        if (waiting === 0) abort.abort();
        reject(new ShellwireError(ErrorCode.COMMAND_CANCELED, `${host.name}: the copy was stopped.`, { host: host.name }));
      };
      if (context.signal.aborted) onAbort();
      else context.signal.addEventListener('abort', onAbort, { once: true });
    });
    gaveUp.catch(() => {});
    const mine = parts.get(host.name)!;
    const complete = mine.length === sources.length ? Promise.resolve() : new Promise<void>((resolve) => waiters.set(host.name, resolve));
    // The uploads' end settles every host (or fails them all: the gateway connection was lost).
    await Promise.race([complete, uploads.then(() => complete), gaveUp]);
    let files = 0;
    let bytes = 0;
    const failures: Array<{ code: string; message: string }> = [];
    for (const r of mine) {
      if ('host' in r && r.ok) {
        files += 1;
        bytes += r.bytes;
      } else failures.push(r.error ?? { code: ErrorCode.INTERNAL, message: `the gateway did not report on ${host.name}` });
    }
    const transfer = { files, directories: 0, bytes, failures: failures.length };
    if (failures.length === 0) return { transfer };
    const more = failures.length > 1 ? ` (and ${failures.length - 1} more of ${sources.length} files)` : '';
    return { transfer, error: { code: failures[0]!.code, message: `${failures[0]!.message}${more}` } };
  };
  return {
    task,
    progress: (host) => {
      const p = sent.get(host);
      if (!p) return undefined;
      const percent = p.total === 0 ? 100 : Math.floor((p.bytes / p.total) * 100);
      return `${percent}%${sources.length > 1 ? ` of file ${parts.get(host)!.length + 1}/${sources.length}` : ''}`;
    },
  };
}

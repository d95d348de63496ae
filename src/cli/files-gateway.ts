/**
 * `shellwire put LOCAL... TARGETS:REMOTE --via GW` (or hosts whose inventory `via:` is one
 * gateway): each local file crosses the operator's link once and the gateway pushes it to
 * every host (client/files/put-hosts.ts, src/gateway/fanout-put.ts), instead of once per host.
 * The hosts' outcomes come back as a fan-out run's results (files-fanout.ts prints them as for
 * a direct fan-out: grouped summary, --json, exit status).
 *
 * With `--via`, TARGETS are resolved over the gateway's list of hosts the operator may reach
 * (as `run --via`); a plain name that is not in it is still sent, so the gateway refuses it
 * by name ("not permitted") and the summary reports it, rather than a local "no such host".
 */
import { basename, posix } from 'node:path';
import type { PutHostsResult } from '../client/files/put-hosts.js';
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

/**
 * A fan-out task for each host that waits for the one upload per source file (started by the
 * first host's task) and reports that host's part of it. A host's timeout or cancel ends its
 * wait; when every host has given up, the uploads stop.
 */
export function gatewayPutTask(pool: ConnectionPool, probe: FleetHost, hosts: readonly FleetHost[], sources: readonly string[], remote: string, options: { rateLimit?: number; hostTimeoutMs?: number }): HostTask {
  const names = hosts.map((h) => h.name);
  const abort = new AbortController();
  let waiting = hosts.length;
  let uploads: Promise<Array<PutHostsResult | { error: { code: string; message: string } }>> | null = null;
  const start = async () => {
    const conn = await pool.gateway(probe, abort.signal);
    const results: Array<PutHostsResult | { error: { code: string; message: string } }> = [];
    for (const source of sources) {
      // Several sources go into REMOTE as a directory (as cp and scp): it must exist on each host.
      const target = sources.length > 1 ? posix.join(remote, basename(source)) : remote;
      try {
        results.push(await conn.putToHosts(source, names, target, { ...options, signal: abort.signal, ...(sources.length > 1 ? { intoDirectory: false } : {}) }));
      } catch (err) {
        // The whole upload failed (the local file, the gateway's spool, no host permitted): every host's copy of this file.
        if (err instanceof ShellwireError && err.code !== ErrorCode.CONNECTION_CLOSED) results.push({ error: { code: err.code, message: err.message } });
        else throw err;
      }
    }
    return results;
  };
  return async (_conn, host, context): Promise<HostTaskOutcome> => {
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
    const results = await Promise.race([uploads, gaveUp]);
    let files = 0;
    let bytes = 0;
    const failures: Array<{ code: string; message: string }> = [];
    for (const r of results) {
      if ('error' in r) {
        failures.push(r.error);
        continue;
      }
      const mine = r.hosts.find((h) => h.host === host.name);
      if (mine?.ok) {
        files += 1;
        bytes += mine.bytes;
      } else failures.push(mine?.error ?? { code: ErrorCode.INTERNAL, message: `the gateway did not report on ${host.name}` });
    }
    const transfer = { files, directories: 0, bytes, failures: failures.length };
    if (failures.length === 0) return { transfer };
    const more = failures.length > 1 ? ` (and ${failures.length - 1} more of ${sources.length} files)` : '';
    return { transfer, error: { code: failures[0]!.code, message: `${failures[0]!.message}${more}` } };
  };
}

/**
 * Audit end rows for commands a dead daemon could not record. Its supervisor killed them and
 * left `<state-dir>/lost-commands.<pid>.jsonl` (src/process/supervisor.ts); the next daemon
 * start on that state dir appends one `command-end` row per command — signal SIGKILL,
 * `detail.ended: "daemon lost"`, ended at the moment the supervisor killed it — and removes
 * the file.
 */
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LOST_COMMANDS_PREFIX } from '../process/supervisor.js';
import type { AuditEvent, AuditLog } from '../audit/audit-log.js';

/** What ExecChannel hands the supervisor for each running command (see `Containment.note`). */
interface LostCommand {
  channel?: number;
  command?: string;
  /** The exact argv of a command run without a shell. */
  argv?: string[];
  cwd?: string;
  startedAt?: string;
  user?: string;
  osUser?: string;
  address?: string;
  lostAt?: string;
  /** A channel a gateway opened on an operator's behalf (server/on-behalf.ts). */
  via?: string;
  operator?: string;
}

/** Record and remove every lost-commands file in `stateDir`; returns the rows written. */
export function recoverLostCommands(stateDir: string, log: AuditLog, logger: Logger): number {
  let files: string[];
  try {
    files = readdirSync(stateDir).filter((name) => name.startsWith(LOST_COMMANDS_PREFIX) && name.endsWith('.jsonl'));
  } catch {
    return 0;
  }
  let rows = 0;
  for (const name of files) {
    const path = join(stateDir, name);
    const events: AuditEvent[] = [];
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue;
      let lost: LostCommand;
      try {
        lost = JSON.parse(line) as LostCommand;
      } catch {
        continue; // a torn line cannot be trusted; the rest still counts
      }
      const startedAt = lost.startedAt ? new Date(lost.startedAt) : null;
      const endedAt = lost.lostAt ? new Date(lost.lostAt) : null;
      events.push({
        kind: 'command-end',
        user: lost.user ?? null,
        osUser: lost.osUser ?? null,
        address: lost.address ?? null,
        cwd: lost.cwd ?? null,
        command: lost.command ?? null,
        startedAt,
        endedAt,
        exitCode: null,
        signal: 'SIGKILL',
        durationMs: startedAt && endedAt ? endedAt.getTime() - startedAt.getTime() : null,
        detail: {
          channel: lost.channel ?? null, ...(Array.isArray(lost.argv) ? { argv: lost.argv } : {}), timedOut: false, ended: 'daemon lost', file: name,
          ...(typeof lost.via === 'string' && typeof lost.operator === 'string' ? { via: lost.via, operator: lost.operator } : {}),
        },
      });
    }
    // Recorded first, removed after: a crash in between repeats rows rather than losing them.
    if (events.length > 0) log.recordMany(events);
    unlinkSync(path);
    rows += events.length;
    logger.warn({ commands: events.length, file: name }, 'recorded commands killed when an earlier daemon died');
  }
  return rows;
}

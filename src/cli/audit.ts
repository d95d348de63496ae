/**
 * `shellwire audit`: read the daemon's audit log as a table or JSON Lines, and
 * `shellwire audit verify`: check its hash chain (exit 0 intact, 1 not, 2 usage).
 * Both open the log read-only and never create it.
 */
import type { Command } from 'commander';
import { AUDIT_KINDS, AuditLog, auditLogPath, type AuditKind, type AuditQuery, type AuditRow, type VerifyResult } from '../audit/audit-log.js';
import { defaultServerStateDir } from '../auth/paths.js';
import { ShellwireError } from '../errors.js';
import { fail } from './common.js';
import { formatTable, parseTimeArg, printable } from '../audit/audit-text.js';
import { ISO_FORMS } from '../iso-time.js';
import { parseDuration, durationForms } from './units.js';
import { recordingsDir } from '../audit/recording.js';
import { verifyRecordings, type RecordingsVerifyResult } from '../audit/recording-verify.js';

interface QueryFlags {
  stateDir?: string;
  user?: string;
  since?: string;
  until?: string;
  grep?: string;
  failed?: boolean;
  exitCode?: string;
  kind?: string;
  limit?: string;
  all?: boolean;
  json?: boolean;
}

/** Rows `shellwire audit` shows without --limit or --all: a screenful of the latest, not the whole history. */
export const DEFAULT_AUDIT_LIMIT = 50;

export function registerAudit(program: Command): void {
  const audit = program
    .command('audit')
    .description('show the audit log, newest first (every connection, authentication, command and denial), or verify it')
    .option('--state-dir <dir>', 'the daemon\'s state dir (default $SHELLWIRE_HOME/server)')
    .option('--user <name>', 'only events of this shellwire user')
    .option('--since <time>', 'only events at or after TIME: ISO date/time (2025-01-31, 2025-01-31T12:00Z) or an age (90s, 30m, 1h, 2d, 1w)')
    .option('--until <time>', 'only events at or before TIME (same forms as --since)')
    .option('--grep <text>', 'only events whose command, cwd, user, address or detail contains TEXT (ignoring ASCII case)')
    .option('--failed', 'only failures: non-zero exit, signal, authentication failure, denial')
    .option('--exit-code <n>', 'only commands that exited with N')
    .option('--kind <kind>', `only events of this kind: ${AUDIT_KINDS.join(', ')}`)
    .option('--limit <n>', `the most recent N matching events (default ${DEFAULT_AUDIT_LIMIT})`)
    .option('--all', 'every matching event (no limit)')
    .option('--json', 'print JSON Lines (one object per event, the same events, newest first) instead of a table')
    .action((flags: QueryFlags) => runQuery(flags));

  audit
    .command('verify')
    .description('check the audit log\'s hash chain and the SHA-256 of every recording its rows reference; exit 0 if intact, 1 naming the first edited, deleted, inserted or reordered row and each edited or missing recording')
    .option('--state-dir <dir>', 'the daemon\'s state dir (default $SHELLWIRE_HOME/server)')
    .action((flags: { stateDir?: string }) => runVerify(flags.stateDir ?? audit.opts<QueryFlags>().stateDir));
}

function openLog(stateDir: string | undefined): AuditLog {
  try {
    return AuditLog.open(auditLogPath(stateDir ?? defaultServerStateDir()), { readonly: true });
  } catch (err) {
    fail(err instanceof ShellwireError ? err.message : String(err), 1);
  }
}

function runVerify(stateDir: string | undefined): void {
  const log = openLog(stateDir);
  let result;
  let recordings;
  try {
    result = log.verify();
    // A gateway's rows reference its recordings by SHA-256: recompute each (recording-verify.ts).
    recordings = verifyRecordings(recordingsDir(stateDir ?? defaultServerStateDir()), log.query({ grep: 'recording' }));
  } finally {
    log.close();
  }
  printChain(result);
  if (!reportRecordings(recordings)) process.exitCode = 1;
}

function printChain(result: VerifyResult): void {
  if (result.ok) {
    const gaps = result.gaps ?? [];
    if (gaps.length === 0) {
      process.stdout.write(`audit log intact: ${result.rows} rows\n`);
      return;
    }
    // Not tampering (each gap row is chained like any other), but a hole in the record: say so.
    const lost = gaps.reduce((sum, gap) => sum + gap.lost, 0);
    process.stdout.write(`audit log intact: ${result.rows} rows, with ${gaps.length} recorded gap${gaps.length === 1 ? '' : 's'} (${lost} rows lost in all):\n`);
    for (const gap of gaps) {
      const kinds = Object.entries(gap.lostByKind).map(([kind, n]) => `${n} ${kind}`).join(', ');
      process.stdout.write(
        `  row ${gap.rowId}: ${gap.lost} rows lost${kinds ? ` (${kinds})` : ''} between ${gap.from ?? '?'} and ${gap.to ?? '?'}` +
        `${gap.reason ? `: ${printable(gap.reason)}` : ''}\n`,
      );
    }
    return;
  }
  process.stdout.write(`audit log NOT intact: row ${result.rowId} ${result.problem}: ${result.message} (${result.rows} rows verified before it)\n`);
  process.exitCode = 1;
}

/** Print what the recordings check found; false when a recording was edited or is missing. */
function reportRecordings(result: RecordingsVerifyResult): boolean {
  for (const problem of result.problems) process.stdout.write(`recording NOT intact: ${printable(problem.message)}\n`);
  if (result.pruned.length > 0) {
    process.stdout.write(`${result.pruned.length} recording${result.pruned.length === 1 ? '' : 's'} removed by retention (not checked): ${result.pruned.map((p) => `${p.id} (row ${p.rowId}, ${p.prunedAt})`).join(', ')}\n`);
  }
  if (result.checked > 0) process.stdout.write(`recordings intact: ${result.checked}\n`);
  return result.problems.length === 0;
}

function runQuery(flags: QueryFlags): void {
  const now = new Date();
  const filter: AuditQuery = {};
  if (flags.user !== undefined) filter.user = flags.user;
  if (flags.since !== undefined) filter.since = parseTimeFlag(flags.since, '--since', now);
  if (flags.until !== undefined) filter.until = parseTimeFlag(flags.until, '--until', now);
  if (flags.grep !== undefined) filter.grep = flags.grep;
  if (flags.failed) filter.failed = true;
  if (flags.exitCode !== undefined) filter.exitCode = integerFlag(flags.exitCode, '--exit-code', -Infinity);
  if (flags.limit !== undefined && flags.all) fail('--limit and --all do not go together: pick one.', 2);
  const limit = flags.all ? undefined : flags.limit !== undefined ? integerFlag(flags.limit, '--limit', 1) : DEFAULT_AUDIT_LIMIT;
  if (flags.kind !== undefined) {
    if (!(AUDIT_KINDS as readonly string[]).includes(flags.kind)) fail(`--kind takes one of ${AUDIT_KINDS.join(', ')}, got "${flags.kind}".`, 2);
    filter.kind = flags.kind as AuditKind;
  }
  const log = openLog(flags.stateDir);
  let rows: AuditRow[];
  let older = 0;
  try {
    rows = log.query({ ...filter, order: 'newest-first', ...(limit === undefined ? {} : { limit }) });
    if (limit !== undefined && rows.length === limit) older = log.count(filter) - rows.length;
  } finally {
    log.close();
  }
  // `shellwire audit | head` closes the pipe early; that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  if (flags.json) {
    process.stdout.write(rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
  } else if (rows.length === 0) {
    process.stderr.write('no matching audit events\n');
  } else {
    process.stdout.write(formatTable(rows));
  }
  // On stderr, so `--json | jq` and `| wc -l` see only the rows.
  if (older > 0) process.stderr.write(`… ${older} older row${older === 1 ? '' : 's'}; use --limit N or --all\n`);
}

function parseTimeFlag(text: string, flag: string, now: Date): Date {
  // An age in the units every duration flag takes (units.ts: 90s, 30m, 1h30m, 2d), else a date.
  // A bare number is refused: `--since 2024` could be a year or 2024 seconds ago.
  if (/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(text)) fail(`${flag} needs a unit or a full date: 90s, 30m, 2d, or ${ISO_FORMS}; got "${text}".`, 2);
  let date: Date | undefined;
  try {
    date = new Date(now.getTime() - parseDuration(text));
  } catch {
    date = parseTimeArg(text, now);
  }
  if (date === undefined) fail(`${flag} takes an ISO date/time (2025-01-31, 2025-01-31T12:00Z) or an age (${durationForms().replace(/1\.5 \(seconds\), /, '')}), got "${text}".`, 2);
  return date;
}

function integerFlag(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(n) || n < min) {
    fail(`${flag} takes ${min === 1 ? 'a positive whole number' : 'a whole number'}, got "${text}".`, 2);
  }
  return n;
}

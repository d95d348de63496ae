/**
 * A restricted user whose commands run as the daemon's own account can read the daemon's
 * state dir with any command it is allowed (`cat …`, `less`, `git show --no-index`): the
 * token there runs anything. Command rules cannot close that (docs/policy.md, "Run restricted
 * users as their own account"); only an OS account of their own does. This names the risk
 * where it is made (`user add`) and where it is loaded (the daemon's start and reload).
 */
import { statSync } from 'node:fs';
import { CHANNEL_PERMISSIONS, type UserPolicy } from './users-config.js';

const COMMAND_CHANNELS = ['exec', 'session', 'pty'] as const;

/** The warning for `user`, or null when its restrictions are not undone by the state dir. */
export function stateDirExposure(user: UserPolicy, stateDir: string): string | null {
  const runsCommands = COMMAND_CHANNELS.some((c) => user.channels.has(c));
  if (!runsCommands) return null; // file-only: the file service never serves the state dir
  const restricted = user.allow !== null || user.deny.length > 0 || user.channels.size < CHANNEL_PERMISSIONS.length;
  if (!restricted) return null; // may run anything anyway: the token adds nothing
  let owner: number | null = null;
  try {
    owner = statSync(stateDir).uid;
  } catch {
    // no state dir yet: judge by the account alone
  }
  const account = user.account;
  const reads = !user.switchAccount || account.uid === 0 || (owner !== null && account.uid === owner);
  if (!reads) return null;
  return (
    `user "${user.name}" is restricted (command rules or channels) but its commands run as the OS account ${account.name}, ` +
    `which can read the daemon's state dir ${stateDir}: any allowed command that reads files (cat, less, …) can read the daemon's token there, ` +
    `and the token runs anything. Give the user an OS account of its own: --run-as ACCOUNT (users.${user.name}.runAs; the daemon must run as root). See docs/policy.md.`
  );
}

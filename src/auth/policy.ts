/**
 * Per-user policy decisions: which channel kinds a user may open and which commands may
 * run. A denial names the rule that denied it, so the operator knows what to change.
 */
import type { OpenRequest } from '../protocol/messages.js';
import type { ChannelPermission, UserPolicy } from './users-config.js';

export type PolicyDecision = { allowed: true } | { allowed: false; reason: string };

/** The permission an OPEN needs: a terminal is `pty`, session commands need `session`. */
export function permissionFor(request: OpenRequest): ChannelPermission | null {
  if (request.kind === 'exec') return request.pty ? 'pty' : request.session !== undefined ? 'session' : 'exec';
  if (request.kind === 'session') return 'session';
  if (request.kind === 'file') return 'file';
  return null;
}

/** The command text rules are matched against (argv joined by spaces). */
export function commandText(request: OpenRequest): string | null {
  if (request.command !== undefined) return request.command;
  if (request.argv !== undefined) return request.argv.join(' ');
  return null;
}

export function checkOpen(user: UserPolicy, request: OpenRequest): PolicyDecision {
  const permission = permissionFor(request);
  if (permission && !user.channels.has(permission)) {
    return { allowed: false, reason: `user "${user.name}" may not open ${permission} channels (users.${user.name}.channels is [${[...user.channels].join(', ')}])` };
  }
  if (request.kind !== 'exec') return { allowed: true };
  const command = commandText(request);
  if (command === null) {
    // A login shell on a terminal would bypass any command rule.
    if (user.allow !== null || user.deny.length > 0) {
      return { allowed: false, reason: `user "${user.name}" has command rules, so an interactive login shell is not allowed; name a command` };
    }
    return { allowed: true };
  }
  return checkCommand(user, command);
}

export function checkCommand(user: UserPolicy, command: string): PolicyDecision {
  const text = command.trim();
  for (const rule of user.deny) {
    if (rule.regex.test(text)) return { allowed: false, reason: `command denied by ${rule.where} ("${rule.pattern}")` };
  }
  if (user.allow !== null && !user.allow.some((rule) => rule.regex.test(text))) {
    return { allowed: false, reason: `command matches no rule in users.${user.name}.commands.allow (${user.allow.map((r) => `"${r.pattern}"`).join(', ') || 'empty'})` };
  }
  return { allowed: true };
}

/**
 * An agent as a target through NATS (docs/nats.md): `[USER@]NAME`, and the name its key is
 * pinned under in known_hosts (`nats:NAME`). Apart from nats-via.ts so the CLI can check a
 * target before anything NATS is loaded.
 */
import { ErrorCode, UsageError } from '../errors.js';
import { isAgentName } from '../protocol/nats-subjects.js';
import type { Target } from './target.js';

/** The known_hosts key of agent `name`. */
export function natsHostKey(name: string): string {
  return `nats:${name}`;
}

/**
 * `[USER@]NAME` → the agent name and the login.
 * @throws {UsageError} SW_ERR_BAD_TARGET: not an agent name (a port, an address, dots).
 */
export function parseAgentTarget(target: string | Target, via: string): { name: string; user?: string } {
  const text = typeof target === 'string' ? target : target.host;
  const at = text.lastIndexOf('@');
  const user = typeof target === 'string' ? (at >= 0 ? text.slice(0, at) : undefined) : target.user;
  const name = at >= 0 && typeof target === 'string' ? text.slice(at + 1) : text;
  if (!isAgentName(name)) {
    throw new UsageError(ErrorCode.BAD_TARGET, `Bad agent "${name}" for ${via}: through NATS a host is an agent's name (its --name: A-Z a-z 0-9 _ -, no port or address). List them with: shellwire hosts --via ${via}`);
  }
  return user !== undefined && user !== '' ? { name, user } : { name };
}


/**
 * Through a gateway (docs/gateway.md "Client side"): the gateway's address as `--via` and
 * `connect(host, { via })` take it (`[USER@]GW[:PORT]`, ssh's `-J` spelling, default port
 * 50008), and the name of the host behind it. Through a gateway a host is an inventory
 * name of the gateway's: never an address (the gateway connects only to its inventory) and
 * never a login (the gateway's users.yaml `as:` picks the account on the host).
 */
import { ErrorCode, UsageError } from '../errors.js';
import { parseTarget, type Target } from './target.js';

/** `shellwire gateway`'s port unless `--listen` says otherwise; `--via GW` dials it. */
export const DEFAULT_GATEWAY_PORT = 50008;
/** The longest host name an OPEN's `host` carries (protocol/messages.ts MAX_HOST_NAME_BYTES). */
const MAX_HOST_NAME_BYTES = 255;

/**
 * `[USER@]GW[:PORT]` or `[IPv6]:PORT` (or a parsed target) as the gateway to dial: USER names
 * the operator, as for any connect.
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for a malformed gateway address.
 */
export function parseVia(via: string | Target): Target {
  if (typeof via !== 'string') return via;
  try {
    return parseTarget(via, DEFAULT_GATEWAY_PORT);
  } catch (err) {
    // parseTarget's message is about a host; this is the gateway.
    throw new UsageError(ErrorCode.BAD_TARGET, `Bad gateway "${via}" (--via/-J): ${(err as Error).message.replace(/^Bad target "[^"]*": /, '').replace(/ Write HOST.*$/, '')}. Write [USER@]GATEWAY[:PORT] (default port ${DEFAULT_GATEWAY_PORT}) or [USER@][IPv6]:PORT.`, { cause: err });
  }
}

/**
 * The host a relayed channel goes to: an inventory name of the gateway's, sent as it is.
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` for a USER@ (the gateway chooses the account), a
 *   port or address (the gateway's inventory knows where the host is), an empty name, NUL, or
 *   more than 255 bytes.
 */
export function relayHostName(host: string | Target, gateway: string): string {
  const name = typeof host === 'string' ? host : host.host;
  const user = typeof host === 'string' ? (name.includes('@') ? name.slice(0, name.lastIndexOf('@')) : undefined) : host.user;
  if (user !== undefined) {
    throw new UsageError(ErrorCode.BAD_TARGET, `Through a gateway the account on the host is the gateway's choice (its users.yaml "as:"), so "${typeof host === 'string' ? host : `${user}@${name}`}" cannot name one. Name yourself on the gateway instead: --via ${user}@${gateway}.`);
  }
  if (name === '' || name.includes('\0') || Buffer.byteLength(name) > MAX_HOST_NAME_BYTES) {
    throw new UsageError(ErrorCode.BAD_TARGET, `Bad host ${JSON.stringify(name)} for the gateway ${gateway}: a host behind a gateway is a name from its inventory (1 to ${MAX_HOST_NAME_BYTES} bytes, no NUL).`);
  }
  if (name.includes(':') || name.startsWith('[')) {
    throw new UsageError(ErrorCode.BAD_TARGET, `Bad host "${name}" for the gateway ${gateway}: through a gateway a host is named by its inventory name, never an address or port (the gateway knows where it is). List the names with: shellwire hosts --via ${gateway}`);
  }
  return name;
}

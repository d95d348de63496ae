/**
 * What an operator is told when the gateway cannot serve her channel on a host. The host is
 * named by its inventory name only: its address and port are the gateway's business (they
 * go to the gateway's log). A transient failure says to try again later; a failure that is
 * the gateway's configuration (its key not trusted, a host key that changed) says so and
 * what the gateway's administrator must do, since trying again changes nothing.
 */
import { ErrorCode } from '../errors.js';

/** The gateway's limit on one operator's channels to one host, at once (across her connections). */
export const DEFAULT_MAX_CHANNELS_PER_OPERATOR_HOST = 256;

/**
 * The most a relay asks a host to send ahead of what the operator's socket has taken, and
 * the most stdin credit it gives an operator, per channel: the gateway holds at most about
 * this much per channel and direction, whatever window the operator asks.
 */
export const RELAY_MAX_WINDOW = 2 * 1024 * 1024;

/** The gateway could not get a connection to `host`; `code` is the dial's error code. */
export function hostUnreachableMessage(host: string, code: string): string {
  switch (code) {
    case ErrorCode.AUTH_FAILED:
    case ErrorCode.NO_CREDENTIALS:
      return (
        `The host ${host} refused the gateway's login (${code}): this is the gateway's configuration, not yours. ` +
        `Ask the gateway's administrator: the host's users.yaml must list the gateway's key (shellwire gateway --print-key) ` +
        'with actAs naming the user you act as, and the inventory\'s user: for the host must be that entry.'
      );
    case ErrorCode.HOST_KEY_CHANGED:
      return (
        `The gateway refuses host ${host}: its key is not the one the gateway pinned (${code}). ` +
        "Ask the gateway's administrator to check the host's key; if it changed legitimately, they run " +
        "`shellwire known-hosts remove HOST:PORT -f <gateway state dir>/known_hosts` (HOST:PORT as in the gateway's inventory) and the next connection pins the new one."
      );
    case ErrorCode.HOST_KEY_UNKNOWN:
      return (
        `The gateway refuses host ${host}: it has no pinned key for it (${code}). ` +
        "Ask the gateway's administrator to pin the host's key in <gateway state dir>/known_hosts " +
        '(shellwire known-hosts add HOST:PORT -f <gateway state dir>/known_hosts, HOST:PORT as in the gateway\'s inventory).'
      );
    default:
      return `The gateway cannot reach host ${host} (${code}); try again later, or ask the gateway's administrator if it persists.`;
  }
}

/** The pooled connection to `host` died under a running channel. */
export function hostLostMessage(host: string, code: string): string {
  return `The gateway lost its connection to host ${host} (${code}); try again later.`;
}

/** `operator` holds `cap` channels to `host` already. */
export function operatorCapMessage(operator: string, host: string, cap: number): string {
  return (
    `${operator} already has ${cap} channels open to host ${host} (the gateway's limit per operator and host, ` +
    '--max-channels-per-host); wait for some to finish or close them, then try again.'
  );
}

/** Every pooled connection to `host` is full (the host's --max-channels times the pool's size). */
export function hostFullMessage(host: string): string {
  return `The gateway's connections to host ${host} are full (the host's --max-channels); try again later.`;
}

/**
 * Addresses as both ends write them: parsing `[USER@]HOST[:PORT]` the way ssh users do
 * (`web1`, `web1:2222`, `10.0.0.5:50007`, `[::1]:50007`, bare `::1`, `alice@web1`),
 * `host:port` for messages and known_hosts, and whether a host is this machine. Below
 * client and server, which both need them (the classic server refuses non-loopback binds).
 */
import { isIP } from 'node:net';
import { ErrorCode, UsageError } from '../errors.js';

/** The daemon's port when none is given, on both ends. */
export const DEFAULT_PORT = 50007;

export interface Target {
  user?: string;
  host: string;
  port: number;
}

/**
 * `[USER@]HOST[:PORT]` or `[IPv6]:PORT` as `{ host, port }`. `allowPortZero`: for listen
 * addresses, where port 0 means "any free port".
 *
 * @throws {UsageError} `SW_ERR_BAD_TARGET` when `text` is not such a target (the message says why).
 */
export function parseTarget(text: string, defaultPort: number = DEFAULT_PORT, options: { allowPortZero?: boolean } = {}): Target {
  const min = options.allowPortZero ? 0 : 1;
  let rest = text.trim();
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === '') throw badTarget(text, 'the user before "@" is empty');
  }
  let host: string;
  let port = defaultPort;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw badTarget(text, 'missing "]" after an IPv6 address');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw badTarget(text, `unexpected "${after}" after "]"`);
      port = parsePort(text, after.slice(1), min);
    }
    if (isIP(host) !== 6) throw badTarget(text, `"${host}" is not an IPv6 address`);
  } else if (isIP(rest) === 6) {
    host = rest; // bare IPv6, no port
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      host = rest.slice(0, colon);
      port = parsePort(text, rest.slice(colon + 1), min);
    } else {
      host = rest;
    }
  }
  if (host === '') throw badTarget(text, 'the host is empty');
  if (!/^[A-Za-z0-9._:%-]+$/.test(host)) throw badTarget(text, `"${host}" is not a valid host name or address`);
  return user === undefined ? { host, port } : { user, host, port };
}

/** `host:port` as known_hosts and messages show it, IPv6 in brackets. */
export function formatTarget(target: { host: string; port: number }): string {
  return isIP(target.host) === 6 ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}

/** Whether `host` names this machine's loopback interface (by name or 127.0.0.0/8, ::1). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || host === 'ip6-localhost';
}

function parsePort(text: string, value: string, min: number): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < min || port > 65535) throw badTarget(text, `port "${value}" must be a number from ${min} to 65535`);
  return port;
}

function badTarget(text: string, why: string): UsageError {
  return new UsageError(ErrorCode.BAD_TARGET, `Bad target "${text}": ${why}. Write HOST, HOST:PORT or [IPv6]:PORT.`);
}

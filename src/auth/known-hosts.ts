/**
 * Client-side host pinning, as ssh's known_hosts: one line per host,
 * `HOST:PORT SHA256:<base64>`, in `$SHELLWIRE_HOME/known_hosts`.
 * An unknown host is asked about (TTY), accepted only when allowed, or refused; a changed
 * fingerprint is always refused, loudly, because that is what an attack looks like.
 */
import { readFileSync, appendFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, HostVerificationError } from '../errors.js';

export type HostKeyPolicy =
  /** Unknown hosts are refused. */
  | 'strict'
  /** Unknown hosts are accepted and remembered; changed ones are still refused. */
  | 'accept-new'
  /** Ask the `confirm` callback about unknown hosts. */
  | 'ask';

export interface HostCheck {
  knownHostsFile: string;
  /** `host:port` as the user named it, IPv6 in brackets. */
  hostKey: string;
  fingerprint: string;
  policy: HostKeyPolicy;
  /** With policy 'ask': return true to trust and remember the host. */
  confirm?: (hostKey: string, fingerprint: string) => Promise<boolean>;
}

// Parsed files by path, reused while size and mtime are unchanged: a fan-out to 1,000
// hosts would otherwise parse the whole file once per connection.
const cache = new Map<string, { mtimeMs: number; size: number; known: Map<string, string> }>();

export function readKnownHosts(file: string): Map<string, string> {
  let stat;
  try {
    stat = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const cached = cache.get(file);
  if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.known;
  const known = parseKnownHosts(readFileSync(file, 'utf8'));
  cache.set(file, { mtimeMs: stat.mtimeMs, size: stat.size, known });
  return known;
}

function parseKnownHosts(text: string): Map<string, string> {
  const known = new Map<string, string>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [host, fingerprint] = trimmed.split(/\s+/);
    if (host && fingerprint) known.set(host, fingerprint);
  }
  return known;
}

export function addKnownHost(file: string, hostKey: string, fingerprint: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, `${hostKey} ${fingerprint}\n`, { mode: 0o600 });
  cache.delete(file);
}

/** Throws `HostVerificationError` unless the host is trusted (possibly after asking). */
export async function verifyHostKey(check: HostCheck): Promise<void> {
  const known = readKnownHosts(check.knownHostsFile).get(check.hostKey);
  if (known === check.fingerprint) return;
  if (known !== undefined) {
    const error = new HostVerificationError(
      ErrorCode.HOST_KEY_CHANGED,
      [
        '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
        '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
        '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
        `The server at ${check.hostKey} presented ${check.fingerprint},`,
        `but ${check.knownHostsFile} pins ${known}.`,
        'Someone could be intercepting this connection, or the daemon was reinstalled.',
        `If you know the host's identity changed, delete its line from ${check.knownHostsFile} and connect again.`,
      ].join('\n'),
      { host: check.hostKey },
    );
    error.fingerprint = check.fingerprint;
    throw error;
  }
  let trusted = check.policy === 'accept-new';
  if (check.policy === 'ask' && check.confirm) trusted = await check.confirm(check.hostKey, check.fingerprint);
  if (!trusted) {
    const error = new HostVerificationError(
      ErrorCode.HOST_KEY_UNKNOWN,
      `Host ${check.hostKey} is not in ${check.knownHostsFile} (fingerprint ${check.fingerprint}). ` +
        'Check the fingerprint the daemon printed at start-up, then connect again with --accept-new-host.',
      { host: check.hostKey },
    );
    error.fingerprint = check.fingerprint;
    throw error;
  }
  addKnownHost(check.knownHostsFile, check.hostKey, check.fingerprint);
}

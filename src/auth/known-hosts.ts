/**
 * Client-side host pinning, as ssh's known_hosts: one line per host,
 * `HOST:PORT SHA256:<base64>`, in `$SHELLWIRE_HOME/known_hosts`.
 * An unknown host is asked about (TTY), accepted only when allowed, or refused; a changed
 * fingerprint is always refused, loudly, because that is what an attack looks like.
 *
 * Every write (append, remove) holds `known_hosts.lock`, so processes adding and removing
 * hosts at the same time never lose each other's lines (ssh-keygen -R rewrites the file;
 * an append landing between its read and its rename would vanish).
 */
import {
  appendFileSync, mkdirSync, statSync, openSync, closeSync, writeSync, unlinkSync, renameSync, writeFileSync, fsyncSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { CONFIG_FILE_LIMIT, readBoundedText } from './bounded-file.js';
import { ErrorCode, HostVerificationError, RequestError, UsageError } from '../errors.js';

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
  /** Called after a new host was written to known_hosts (ssh's "Permanently added"). */
  onAdded?: (hostKey: string, fingerprint: string, knownHostsFile: string) => void;
}

/** One pin: the host key (`host:port`), its fingerprint, and its 1-based line in the file. */
export interface KnownHostEntry {
  host: string;
  fingerprint: string;
  line: number;
}

/** How a presented fingerprint compares with the file: pinned, not there, or different. */
export type HostKeyState = 'known' | 'new' | 'changed';

/** How long a writer waits for the lock before giving up, and when a lock counts as abandoned. */
const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 10_000;

// Parsed files by path, reused while size and mtime are unchanged: a fan-out to 1,000
// hosts would otherwise parse the whole file once per connection.
const cache = new Map<string, { mtimeMs: number; size: number; parsed: KnownHostsFile }>();

/** A line that is neither a pin, a comment nor blank: ignored for matching, shown by `known-hosts list`. */
export interface MalformedKnownHostLine {
  line: number;
  text: string;
}

export interface KnownHostsFile {
  entries: KnownHostEntry[];
  malformed: MalformedKnownHostLine[];
}

/** Every pin in `file` in file order (an absent file has none). */
export function readKnownHostEntries(file: string): KnownHostEntry[] {
  return readKnownHostsFile(file).entries;
}

/** The pins of `file` and its malformed lines, in file order. */
export function readKnownHostsFile(file: string): KnownHostsFile {
  let stat;
  try {
    stat = statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], malformed: [] };
    throw err;
  }
  const cached = cache.get(file);
  if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.parsed;
  const parsed = parseKnownHosts(readBoundedText(file, 'known_hosts', CONFIG_FILE_LIMIT));
  cache.set(file, { mtimeMs: stat.mtimeMs, size: stat.size, parsed });
  return parsed;
}

function parseKnownHosts(text: string): KnownHostsFile {
  const entries: KnownHostEntry[] = [];
  const malformed: MalformedKnownHostLine[] = [];
  text.split('\n').forEach((raw, index) => {
    const entry = parseKnownHostLine(raw, index + 1);
    if (entry === 'malformed') malformed.push({ line: index + 1, text: raw });
    else if (entry) entries.push(entry);
  });
  return { entries, malformed };
}

/** `SHA256:` and 43 base64 characters, as `fingerprintOfCertificate` writes it. */
export const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;
// A host key holds no control character: such a line is someone's attempt at the terminal.
const PIN_HOST_RE = /^[^\p{Cc}\s]+$/u;

/**
 * One known_hosts line: a pin `HOST FINGERPRINT`, optionally followed by a `# comment`
 * (ssh allows comments after the key); null for a blank or comment line; 'malformed' otherwise.
 */
export function parseKnownHostLine(raw: string, line: number): KnownHostEntry | null | 'malformed' {
  const trimmed = raw.replace(/\r$/, '').trim();
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const [host, fingerprint, ...rest] = trimmed.split(/[ \t]+/);
  if (!host || !fingerprint || !PIN_HOST_RE.test(host) || !FINGERPRINT_RE.test(fingerprint)) return 'malformed';
  if (rest.length > 0 && !rest[0]!.startsWith('#')) return 'malformed';
  return { host, fingerprint, line };
}

function parseLine(raw: string, line: number): KnownHostEntry | null {
  const entry = parseKnownHostLine(raw, line);
  return entry === 'malformed' ? null : entry;
}

/** Whether `fingerprint` is pinned for `hostKey`, absent, or contradicted by a pin. */
export function hostKeyState(entries: KnownHostEntry[], hostKey: string, fingerprint: string): HostKeyState {
  const pins = entries.filter((e) => e.host === hostKey);
  if (pins.length === 0) return 'new';
  return pins.some((e) => e.fingerprint === fingerprint) ? 'known' : 'changed';
}

/**
 * Does the pin `entryHost` (`host:port`, `[v6]:port`) belong to `query`? A query with a
 * port (`web1:50007`, `[::1]:50007`) names that one pin; a bare host (`web1`, `::1`) names
 * its pins on every port.
 */
export function knownHostMatches(entryHost: string, query: string): boolean {
  if (entryHost === query) return true;
  const colon = entryHost.lastIndexOf(':');
  if (colon < 0) return false;
  const host = entryHost.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return host === query.replace(/^\[(.*)\]$/, '$1');
}

/** Append a pin, unless the same line is already there (two processes accepting one host). */
export function addKnownHost(file: string, hostKey: string, fingerprint: string): boolean {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  return withFileLock(file, () => {
    cache.delete(file);
    if (readKnownHostEntries(file).some((e) => e.host === hostKey && e.fingerprint === fingerprint)) return false;
    appendFileSync(file, `${hostKey} ${fingerprint}\n`, { mode: 0o600 });
    cache.delete(file);
    return true;
  });
}

/**
 * Append many pins under one lock (a broadcast accepting thousands of new agents at once:
 * one read of the file, not one per host); pins already there are skipped. Returns those added.
 */
export function addKnownHosts(file: string, pins: ReadonlyArray<{ hostKey: string; fingerprint: string }>): Array<{ hostKey: string; fingerprint: string }> {
  if (pins.length === 0) return [];
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  return withFileLock(file, () => {
    cache.delete(file);
    const have = new Set(readKnownHostEntries(file).map((e) => `${e.host} ${e.fingerprint}`));
    const added = pins.filter((p) => !have.has(`${p.hostKey} ${p.fingerprint}`) && (have.add(`${p.hostKey} ${p.fingerprint}`), true));
    if (added.length > 0) appendFileSync(file, added.map((p) => `${p.hostKey} ${p.fingerprint}\n`).join(''), { mode: 0o600 });
    cache.delete(file);
    return added;
  });
}

export interface RemoveResult {
  removed: KnownHostEntry[];
  /** `FILE.old`, the contents before the removal (as ssh-keygen -R keeps), or null when nothing changed. */
  backup: string | null;
}

/**
 * ssh-keygen -R: remove every pin matching `query` (see `knownHostMatches`), keeping the
 * previous contents in `FILE.old`. Comments and other lines are kept byte for byte.
 */
export function removeKnownHost(file: string, query: string): RemoveResult {
  return withFileLock(file, () => {
    let text: string;
    try {
      text = readBoundedText(file, 'known_hosts', CONFIG_FILE_LIMIT);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { removed: [], backup: null };
      throw err;
    }
    const removed: KnownHostEntry[] = [];
    const kept = text.split('\n').filter((raw, index) => {
      const entry = parseLine(raw, index + 1);
      if (entry && knownHostMatches(entry.host, query)) {
        removed.push(entry);
        return false;
      }
      return true;
    });
    if (removed.length === 0) return { removed, backup: null };
    const mode = statSync(file).mode & 0o777;
    const backup = `${file}.old`;
    writeFileSync(backup, text, { mode: 0o600 });
    // A new file renamed into place: a crash leaves the old file or the new one, never half.
    const temp = `${file}.${process.pid}.tmp`;
    const fd = openSync(temp, 'w', mode);
    try {
      writeSync(fd, kept.join('\n'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
    cache.delete(file);
    return { removed, backup };
  });
}

/**
 * Run `fn` holding `FILE.lock` (created exclusively; holds the owner's pid). The critical
 * sections are a read and a write of a small file, so waiting is short; a lock whose owner
 * died (same pid namespace) or that is older than LOCK_STALE_MS is taken over.
 */
function withFileLock<T>(file: string, fn: () => T): T {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const lock = `${file}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (lockIsStale(lock)) {
        try {
          unlinkSync(lock);
        } catch {
          // another waiter took it over first
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new UsageError(ErrorCode.STATE_DIR, `${lock} has been held for ${LOCK_WAIT_MS / 1000} s by another process; if none is running, delete it.`);
      }
      Atomics.wait(nap, 0, 0, 5 + Math.random() * 10);
      continue;
    }
    try {
      writeSync(fd, String(process.pid));
    } finally {
      closeSync(fd);
    }
    try {
      return fn();
    } finally {
      try {
        unlinkSync(lock);
      } catch {
        // already gone
      }
    }
  }
}

function lockIsStale(lock: string): boolean {
  try {
    const age = Date.now() - statSync(lock).mtimeMs;
    if (age > LOCK_STALE_MS) return true;
    const pid = Number(readBoundedText(lock, 'known_hosts lock', 64));
    if (!Number.isInteger(pid) || pid <= 0) return false; // being written right now
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    return false; // vanished: the next attempt will create it
  }
}

/**
 * Throws `HostVerificationError` unless the host is trusted (possibly after asking). The
 * messages name library options; the CLI adds its own flags and commands (cli/common.ts).
 */
export async function verifyHostKey(check: HostCheck): Promise<void> {
  const entries = readKnownHostEntries(check.knownHostsFile);
  const state = hostKeyState(entries, check.hostKey, check.fingerprint);
  if (state === 'known') return;
  if (state === 'changed') {
    const offending = entries.find((e) => e.host === check.hostKey)!;
    // One paragraph: what happened, what to do. The ssh-style WARNING banner is the CLI's
    // (cli/common.ts), built from the fields below; a library caller gets them as data.
    const error = new HostVerificationError(
      ErrorCode.HOST_KEY_CHANGED,
      `The daemon at ${check.hostKey} presented ${check.fingerprint}, but ${check.knownHostsFile} line ${offending.line} pins ${offending.fingerprint}: the host key changed (the daemon was reinstalled or its key rotated, or someone is intercepting the connection), so the connection was refused before any credentials were sent.`,
      { host: check.hostKey, hint: `If you know the daemon's key changed, remove line ${offending.line} of ${check.knownHostsFile} and connect again.` },
    );
    error.fingerprint = check.fingerprint;
    error.pinned = offending.fingerprint;
    error.knownHostsFile = check.knownHostsFile;
    error.line = offending.line;
    throw error;
  }
  if (check.policy === 'ask' && !check.confirm) {
    throw new RequestError(ErrorCode.BAD_REQUEST, "hostKeyPolicy 'ask' needs a confirmHost callback to ask with.", { host: check.hostKey });
  }
  let trusted = check.policy === 'accept-new';
  const asked = check.policy === 'ask' && check.confirm !== undefined;
  if (asked) trusted = await check.confirm!(check.hostKey, check.fingerprint);
  if (!trusted) {
    // Declined at the prompt: ssh's one line; the one who answered needs no advice.
    const error = asked
      ? new HostVerificationError(ErrorCode.HOST_KEY_UNKNOWN, 'Host key verification failed.', { host: check.hostKey })
      : new HostVerificationError(
        ErrorCode.HOST_KEY_UNKNOWN,
        `Host ${check.hostKey} is not in ${check.knownHostsFile} (fingerprint ${check.fingerprint}).`,
        {
          host: check.hostKey,
          hint: "Check the fingerprint against the one the daemon printed at start-up, then trust it (hostKeyPolicy: 'accept-new', or add it to known_hosts).",
        },
      );
    if (asked) error.declined = true;
    error.fingerprint = check.fingerprint;
    error.knownHostsFile = check.knownHostsFile;
    throw error;
  }
  if (addKnownHost(check.knownHostsFile, check.hostKey, check.fingerprint)) check.onAdded?.(check.hostKey, check.fingerprint, check.knownHostsFile);
}

/**
 * Put one file to many hosts through a gateway (docs/gateway.md "Files to many hosts";
 * wire: docs/protocol.md "Gateway"): one file channel whose OPEN names `hosts`; the file
 * crosses the operator's link once, with the put protocol of one host (the gateway's window,
 * SHA-256 in the EOF), and the gateway pushes it to every host, each copy verified by
 * SHA-256 and renamed into place by the host. The answer is one JSON document: per host
 * `{ host, ok, bytes, path?, sha256? | error: { code, message } }`. With `onHostProgress` or
 * `onHostResult` the OPEN asks for live records too (`progress: true`): each host's bytes as
 * the gateway pushes them, and its outcome as soon as that host is done, before the others.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { openHashingReader, type HashingReader } from '../../channel/file-hash.js';
import { MAX_GATEWAY_HOSTS } from '../../protocol/messages.js';
import type { HostCopy, PutRequest } from '../../protocol/file-messages.js';
import { checkFunction } from '../option-checks.js';
import { ErrorCode, ProtocolError, RequestError } from '../../errors.js';
import type { ChannelOpener } from '../channel-host.js';
import { FileChannelClient } from '../file-channel.js';
import { checkInteger } from '../option-checks.js';
import { FileTransferError, exitError, localError, localPath, onAbort, remotePathTooLong, startTransfer, type PutOptions } from './common.js';
import { sendFile } from './put.js';

/** Credit for the gateway's answer (re-granted as it is read). */
const ANSWER_WINDOW = 1024 * 1024;
/** The most one line of the answer may hold (the document: ~10,000 hosts with long error messages). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** One host's copy, as the gateway reports it. */
export type HostCopyResult = HostCopy;

export interface PutHostsResult {
  local: string;
  size: number;
  /** SHA-256 of the file as sent. */
  sha256: string;
  /** In the order the hosts were named. */
  hosts: HostCopyResult[];
  durationMs: number;
}

/**
 * Upload `local` once to the gateway `conn` is connected to, for `hosts` (inventory names
 * there), to `remote` on each (an existing directory: into it under the local name, unless
 * `intoDirectory` is false). Resolves with every host's outcome, failed ones included.
 *
 * @throws {RequestError} (rejects) the gateway refused the whole put (no host permitted:
 *   `SW_ERR_DENIED`; a daemon, not a gateway: `SW_ERR_BAD_REQUEST`).
 * @throws {FileTransferError} (rejects) the local file cannot be read, or the upload to the
 *   gateway failed before any host got it (its spool full or too small, SHA-256 mismatch).
 * @throws {ConnectionError} (rejects) the connection to the gateway was lost.
 */
export interface PutHostsOptions extends PutOptions {
  /** Stop each host's copy after this many ms (the gateway does; the others go on). */
  hostTimeoutMs?: number;
  /**
   * The gateway's push to one host moved: `bytes` (of `total`, the file's size, both in bytes)
   * have been sent to `host`. Called with 0 when that host's copy starts, then at most every
   * ~100 ms per host, and with `total` when it ended well; never after that host's result.
   * (`onProgress` is the one upload to the gateway.) A gateway from before these records
   * calls neither: its hosts' results come at the end.
   */
  onHostProgress?: (progress: HostProgress) => void;
  /**
   * One host is done: its outcome, as soon as the gateway has it (so a fast host is reported
   * while a slow one still copies), exactly once per named host; what the result's `hosts`
   * says of it too (an ok host whose SHA-256 is not the upload's is reported failed,
   * `SW_ERR_INTEGRITY`). Hosts the gateway refused come first, right after it accepted the put.
   */
  onHostResult?: (result: HostCopyResult) => void;
}

/** `onHostProgress`'s argument: bytes sent to `host` so far, of `total` (the file's size). */
export interface HostProgress {
  host: string;
  bytes: number;
  total: number;
}

export async function putToHosts(conn: ChannelOpener, local: string, hosts: readonly string[], remote: string, options: PutHostsOptions = {}): Promise<PutHostsResult> {
  const { hostTimeoutMs, ...transfer } = options;
  startTransfer(conn, transfer, 'upload', local);
  checkPutHosts(hosts, remote, hostTimeoutMs);
  const handle = await open(localPath(local), constants.O_RDONLY | constants.O_NONBLOCK).catch((err: unknown) => {
    throw localError('read', local, err);
  });
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw new FileTransferError(ErrorCode.BAD_REQUEST, `${local} is a directory; a put to many hosts through a gateway copies files.`, { errno: 'EISDIR', path: local });
    if (!info.isFile()) throw new FileTransferError(ErrorCode.BAD_REQUEST, `${local} is not a regular file.`, { path: local });
    const reader = openHashingReader(handle.fd);
    try {
      const source: PutSource = {
        label: local, size: info.size, mode: info.mode & 0o7777, mtimeMs: info.mtimeMs, reader,
        ...(options.intoDirectory === false ? {} : { name: basename(local) }),
        unchanged: async () => {
          const after = await handle.stat();
          return after.size === info.size && after.mtimeMs === info.mtimeMs;
        },
      };
      return await putSourceToHosts(conn, source, hosts, remote, options);
    } finally {
      reader.dispose();
    }
  } finally {
    await handle.close().catch(() => {});
  }
}

/** What a put to many hosts sends: a local file's, or a stream's bytes (the web console's upload). */
export interface PutSource {
  /** For messages and progress (`local`): a file name, or what the bytes are. */
  label: string;
  size: number;
  mode: number;
  mtimeMs: number;
  /** Into a directory REMOTE under this name. */
  name?: string;
  /** Reads the bytes in order and hashes them (`openHashingReader`, `streamHashingReader`). */
  reader: HashingReader;
  /** False when the source changed while it was read (a file's size or mtime): nothing is copied. */
  unchanged?: () => Promise<boolean>;
}

/** `hosts`, `remote` and `hostTimeoutMs` of a put to many hosts, checked. */
export function checkPutHosts(hosts: readonly string[], remote: string, hostTimeoutMs: number | undefined, options: PutHostsOptions = {}): void {
  checkFunction(options.onHostProgress, 'onHostProgress');
  checkFunction(options.onHostResult, 'onHostResult');
  checkInteger(hostTimeoutMs, 'hostTimeoutMs', { min: 1, max: 0x7fffffff, unit: 'milliseconds' });
  if (hosts.length === 0 || hosts.length > MAX_GATEWAY_HOSTS) throw new RequestError(ErrorCode.BAD_REQUEST, `A put to many hosts names 1 to ${MAX_GATEWAY_HOSTS} hosts, got ${hosts.length}.`);
  if (remotePathTooLong(remote)) throw new FileTransferError(ErrorCode.BAD_REQUEST, `The remote path ${remote} is too long.`, { path: remote, errno: 'ENAMETOOLONG' });
}

/**
 * `putToHosts` for any source: one upload to the gateway, every host's outcome. `onOpened` is
 * called once the gateway accepted the put (at least one host permitted), before any byte goes.
 *
 * @throws as `putToHosts`.
 */
export async function putSourceToHosts(
  conn: ChannelOpener, source: PutSource, hosts: readonly string[], remote: string, options: PutHostsOptions & { onOpened?: () => void } = {},
): Promise<PutHostsResult> {
  const { hostTimeoutMs, onHostProgress, onHostResult } = options;
  checkPutHosts(hosts, remote, hostTimeoutMs, options);
  const live = onHostProgress !== undefined || onHostResult !== undefined;
  const started = performance.now();
  const local = source.label;
  const request: PutRequest = {
    op: 'put', path: remote, size: source.size, mode: source.mode, mtimeMs: source.mtimeMs, resume: false,
    ...(source.name !== undefined ? { name: source.name } : {}),
    ...(hostTimeoutMs !== undefined ? { timeoutMs: hostTimeoutMs } : {}),
    ...(live ? { progress: true } : {}),
  };
  const reader = source.reader;
  const channel = new FileChannelClient(conn, { request, window: ANSWER_WINDOW, maxPacket: Math.min(conn.server.maxPayload, 256 * 1024), hosts: [...hosts] });
  // NDJSON: live records (only when asked for), then the document as the last line.
  const lines = new LineReader(MAX_ANSWER_BYTES);
  let document: unknown = null;
  let sha256 = '';
  const reported = new Set<string>();
  const named = new Set(hosts);
  const report = (copy: HostCopyResult) => {
    if (reported.has(copy.host)) return;
    reported.add(copy.host);
    onHostResult?.(copy);
  };
  const onLine = (line: Buffer) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line.toString('utf8'));
    } catch {
      throw badAnswer(conn.hostLabel, 'not JSON');
    }
    if (document !== null) throw badAnswer(conn.hostLabel, 'more after the document');
    const record = liveRecord(parsed, conn.hostLabel);
    if (record === null) {
      document = parsed;
      return;
    }
    if (!named.has(record.host)) throw badAnswer(conn.hostLabel, `a record for ${JSON.stringify(record.host)}, a host this put did not name`);
    // Nothing of a host after its result (a late progress is dropped, a second result refused).
    if (record.type === 'progress') {
      if (!reported.has(record.host)) onHostProgress?.({ host: record.host, bytes: record.bytes, total: record.total });
    } else if (reported.has(record.host)) throw badAnswer(conn.hostLabel, `a second result for ${JSON.stringify(record.host)}`);
    else report(checkCopy(record.copy, sha256));
  };
  let failure: Error | null = null;
  // Records that come with OPEN_OK wait until the caller heard of it (`onOpened`).
  let early: Buffer[] | null = [];
  channel.onData = (chunk) => {
    if (early) {
      early.push(chunk);
      return;
    }
    try {
      if (!lines.push(chunk, onLine)) throw badAnswer(conn.hostLabel, `a line over ${MAX_ANSWER_BYTES} bytes`);
    } catch (err) {
      failure ??= err as Error;
      return channel.close();
    }
    channel.credit(chunk.length);
  };
  const ok = await channel.opened;
  options.onOpened?.();
  const held = early;
  early = null;
  for (const chunk of held) channel.onData(chunk);
  const unsubscribe = onAbort(options.signal, channel);
  try {
    const progress = (bytes: number) => options.onProgress?.({ direction: 'put', local, remote, bytes, size: source.size, resumedFrom: 0 });
    progress(0);
    const sent = await sendFile(conn, channel, ok, local, 0, source.size, reader, options.rateLimit, progress);
    if (sent) {
      sha256 = await reader.digest();
      if (source.unchanged && !(await source.unchanged())) {
        channel.close();
        await channel.finished.catch(() => {});
        throw new FileTransferError(ErrorCode.LOCAL_IO, `${local} changed while it was being sent; nothing was copied. Run the transfer again.`, { path: local });
      }
      channel.sendEof(sha256, source.size);
    }
    const exit = await channel.finished.catch((err: unknown) => {
      throw failure ?? err;
    });
    if (failure) throw failure;
    // A last line without its newline is still a line.
    lines.end(onLine);
    if (document === null) throw exitError(conn, exit, `upload of ${local} through the gateway`);
    const hostsOut = parseAnswer(document, conn.hostLabel, hosts).map((h) => checkCopy(h, sha256));
    // A gateway before live records (or a host it did not report live): its outcome now.
    for (const h of hostsOut) report(h);
    return { local, size: source.size, sha256, hosts: hostsOut, durationMs: performance.now() - started };
  } finally {
    unsubscribe();
  }
}

function badAnswer(gateway: string, why: string): ProtocolError {
  return new ProtocolError(ErrorCode.BAD_MESSAGE, `${gateway} answered a put to many hosts with something else: ${why}.`, { host: gateway });
}

/** Each copy is the bytes we sent: a host that reports another hash did not get them. */
function checkCopy(h: HostCopyResult, sha256: string): HostCopyResult {
  if (h.ok && h.sha256 !== sha256) {
    h.ok = false;
    h.error = { code: ErrorCode.INTEGRITY, message: `${h.host} reports SHA-256 ${h.sha256 ?? 'none'}, the upload was ${sha256}.` };
  }
  return h;
}

/** Splits the answer into lines as it comes, holding at most `max` bytes of one line. */
class LineReader {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  /** Calls `onLine` for each whole line (without its newline); false when a line grows over the limit. */
  push(chunk: Buffer, onLine: (line: Buffer) => void): boolean {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      const part = chunk.subarray(start, nl);
      const line = this.#heldBytes === 0 ? part : Buffer.concat([...this.#held, part]);
      this.#held = [];
      this.#heldBytes = 0;
      start = nl + 1;
      if (line.length > 0) onLine(line);
    }
    if (start < chunk.length) {
      this.#held.push(chunk.subarray(start));
      this.#heldBytes += chunk.length - start;
    }
    return this.#heldBytes <= this.#max;
  }

  /** The bytes after the last newline, as a line. */
  end(onLine: (line: Buffer) => void): void {
    if (this.#heldBytes > 0) onLine(Buffer.concat(this.#held));
    this.#held = [];
    this.#heldBytes = 0;
  }
}

type LiveRecord = { type: 'progress'; host: string; bytes: number; total: number } | { type: 'result'; host: string; copy: HostCopyResult };

/** A live record (`type` progress or result), checked; null for the document (no `type`). */
function liveRecord(parsed: unknown, gateway: string): LiveRecord | null {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badAnswer(gateway, 'a line that is not a JSON object');
  const o = parsed as Record<string, unknown>;
  if (o.type === undefined) return null;
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof o.host !== 'string') throw badAnswer(gateway, 'a record without "host"');
  if (o.type === 'progress') {
    if (!count(o.bytes) || !count(o.total)) throw badAnswer(gateway, 'a progress record without "bytes" and "total"');
    return { type: 'progress', host: o.host, bytes: o.bytes as number, total: o.total as number };
  }
  if (o.type === 'result') return { type: 'result', host: o.host, copy: hostCopy(o, badAnswer.bind(null, gateway)) };
  throw badAnswer(gateway, `a record of unknown type ${JSON.stringify(o.type)}`);
}

/** One host's line (in the document or a result record), checked. */
function hostCopy(item: unknown, bad: (why: string) => Error): HostCopyResult {
  const o = item as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || typeof o.host !== 'string' || typeof o.ok !== 'boolean') throw bad('a host line without "host" and "ok"');
  const error = o.error as { code?: unknown; message?: unknown } | undefined;
  return {
    host: o.host, ok: o.ok, bytes: typeof o.bytes === 'number' ? o.bytes : 0,
    ...(typeof o.path === 'string' ? { path: o.path } : {}),
    ...(typeof o.sha256 === 'string' ? { sha256: o.sha256 } : {}),
    ...(error ? { error: { code: String(error.code ?? ErrorCode.INTERNAL), message: String(error.message ?? 'failed') } } : {}),
  };
}

/** The gateway's document, checked: one line per host we named, in our order. */
function parseAnswer(doc: unknown, gateway: string, hosts: readonly string[]): HostCopyResult[] {
  const bad = (why: string) => badAnswer(gateway, why);
  const list = (doc as { hosts?: unknown } | null)?.hosts;
  if (!Array.isArray(list)) throw bad('no "hosts" list');
  const byName = new Map<string, HostCopyResult>();
  for (const item of list as unknown[]) {
    const copy = hostCopy(item, bad);
    byName.set(copy.host, copy);
  }
  return hosts.map((name) => byName.get(name) ?? { host: name, ok: false, bytes: 0, error: { code: ErrorCode.BAD_MESSAGE, message: `${gateway} did not report on ${name}.` } });
}

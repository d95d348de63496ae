/**
 * Put one file to many hosts through a gateway (docs/gateway.md "Files to many hosts";
 * wire: docs/protocol.md "Gateway"): one file channel whose OPEN names `hosts`; the file
 * crosses the operator's link once, with the put protocol of one host (the gateway's window,
 * SHA-256 in the EOF), and the gateway pushes it to every host, each copy verified by
 * SHA-256 and renamed into place by the host. The answer is one JSON document: per host
 * `{ host, ok, bytes, path?, sha256? | error: { code, message } }`.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { openHashingReader, type HashingReader } from '../../channel/file-hash.js';
import { MAX_GATEWAY_HOSTS } from '../../protocol/messages.js';
import type { HostCopy, PutRequest } from '../../protocol/file-messages.js';
import { ErrorCode, ProtocolError, RequestError } from '../../errors.js';
import type { ChannelOpener } from '../channel-host.js';
import { FileChannelClient } from '../file-channel.js';
import { checkInteger } from '../option-checks.js';
import { FileTransferError, exitError, localError, localPath, onAbort, remotePathTooLong, startTransfer, type PutOptions } from './common.js';
import { sendFile } from './put.js';

/** Credit for the gateway's answer (re-granted as it is read). */
const ANSWER_WINDOW = 1024 * 1024;
/** The most the answer may hold: ~10,000 hosts with long error messages. */
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
export function checkPutHosts(hosts: readonly string[], remote: string, hostTimeoutMs: number | undefined): void {
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
  const { hostTimeoutMs } = options;
  checkPutHosts(hosts, remote, hostTimeoutMs);
  const started = performance.now();
  const local = source.label;
  const request: PutRequest = {
    op: 'put', path: remote, size: source.size, mode: source.mode, mtimeMs: source.mtimeMs, resume: false,
    ...(source.name !== undefined ? { name: source.name } : {}),
    ...(hostTimeoutMs !== undefined ? { timeoutMs: hostTimeoutMs } : {}),
  };
  const reader = source.reader;
  const channel = new FileChannelClient(conn, { request, window: ANSWER_WINDOW, maxPacket: Math.min(conn.server.maxPayload, 256 * 1024), hosts: [...hosts] });
  const answer: Buffer[] = [];
  let answered = 0;
  channel.onData = (chunk) => {
    answered += chunk.length;
    if (answered > MAX_ANSWER_BYTES) return channel.close();
    answer.push(chunk);
    channel.credit(chunk.length);
  };
  const ok = await channel.opened;
  options.onOpened?.();
  const unsubscribe = onAbort(options.signal, channel);
  try {
    const progress = (bytes: number) => options.onProgress?.({ direction: 'put', local, remote, bytes, size: source.size, resumedFrom: 0 });
    progress(0);
    const sent = await sendFile(conn, channel, ok, local, 0, source.size, reader, options.rateLimit, progress);
    let sha256 = '';
    if (sent) {
      sha256 = await reader.digest();
      if (source.unchanged && !(await source.unchanged())) {
        channel.close();
        await channel.finished.catch(() => {});
        throw new FileTransferError(ErrorCode.LOCAL_IO, `${local} changed while it was being sent; nothing was copied. Run the transfer again.`, { path: local });
      }
      channel.sendEof(sha256, source.size);
    }
    const exit = await channel.finished;
    if (answer.length === 0) throw exitError(conn, exit, `upload of ${local} through the gateway`);
    const hostsOut = parseAnswer(Buffer.concat(answer), conn.hostLabel, hosts);
    // Each copy is the bytes we sent: a host that reports another hash did not get them.
    for (const h of hostsOut) {
      if (h.ok && h.sha256 !== sha256) {
        h.ok = false;
        h.error = { code: ErrorCode.INTEGRITY, message: `${h.host} reports SHA-256 ${h.sha256 ?? 'none'}, the upload was ${sha256}.` };
      }
    }
    return { local, size: source.size, sha256, hosts: hostsOut, durationMs: performance.now() - started };
  } finally {
    unsubscribe();
  }
}

/** The gateway's document, checked: one line per host we named, in our order. */
function parseAnswer(bytes: Buffer, gateway: string, hosts: readonly string[]): HostCopyResult[] {
  const bad = (why: string) => new ProtocolError(ErrorCode.BAD_MESSAGE, `${gateway} answered a put to many hosts with something else: ${why}.`, { host: gateway });
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  const list = (doc as { hosts?: unknown } | null)?.hosts;
  if (!Array.isArray(list)) throw bad('no "hosts" list');
  const byName = new Map<string, HostCopyResult>();
  for (const item of list as unknown[]) {
    const o = item as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || typeof o.host !== 'string' || typeof o.ok !== 'boolean') throw bad('a host line without "host" and "ok"');
    const error = o.error as { code?: unknown; message?: unknown } | undefined;
    byName.set(o.host, {
      host: o.host, ok: o.ok, bytes: typeof o.bytes === 'number' ? o.bytes : 0,
      ...(typeof o.path === 'string' ? { path: o.path } : {}),
      ...(typeof o.sha256 === 'string' ? { sha256: o.sha256 } : {}),
      ...(error ? { error: { code: String(error.code ?? ErrorCode.INTERNAL), message: String(error.message ?? 'failed') } } : {}),
    });
  }
  return hosts.map((name) => byName.get(name) ?? { host: name, ok: false, bytes: 0, error: { code: ErrorCode.BAD_MESSAGE, message: `${gateway} did not report on ${name}.` } });
}

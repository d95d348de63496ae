/**
 * `stat`, `list` and `mkdir` over "file" channels (src/protocol/file-messages.ts; the
 * daemon's side is server/files/meta.ts): one request, one answer, no file data (a list's
 * entries come as NDJSON on STDOUT, credited as they are parsed).
 */
import { decodeFileEntry } from '../../protocol/file-messages.js';
import { ErrorCode, ProtocolError } from '../../errors.js';
import { encodeOsBytes } from '../../protocol/os-bytes.js';
import type { ChannelOpener } from '../channel-host.js';
import { exitError, onAbort, openFile, startTransfer, type RemoteEntry } from './common.js';

const LIST_WINDOW = 256 * 1024;

/** A remote path's entry (symlinks followed); rejects with errno ENOENT when it does not exist. */
export async function statRemote(conn: ChannelOpener, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry & { path: string }> {
  startTransfer(conn, options, 'stat', remote);
  const channel = openFile(conn, { op: 'stat', path: remote });
  const unsubscribe = onAbort(options.signal, channel);
  try {
    const ok = await channel.opened;
    await channel.finished;
    return { ...ok.entry!, path: ok.path };
  } finally {
    unsubscribe();
  }
}

/** Longest directory entry line accepted from the daemon (names are at most a few KiB). */
const MAX_ENTRY_LINE = 64 * 1024;

/** The entries of a remote directory, sorted by name (a file lists as itself). Names are OS byte strings. */
export async function listRemote(conn: ChannelOpener, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry[]> {
  startTransfer(conn, options, 'listing', remote);
  const channel = openFile(conn, { op: 'list', path: remote }, LIST_WINDOW);
  const unsubscribe = onAbort(options.signal, channel);
  const entries: RemoteEntry[] = [];
  let rest: Buffer = Buffer.alloc(0);
  channel.onData = (chunk) => {
    let data = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10)) {
      entries.push(decodeFileEntry(data.subarray(0, nl)));
      data = data.subarray(nl + 1);
    }
    // Credit goes back as bytes are consumed, so a line that never ends would grow `rest`
    // without bound: an entry line is small (a name and a few fields).
    if (data.length > MAX_ENTRY_LINE) {
      throw new ProtocolError(ErrorCode.BAD_MESSAGE, `${conn.hostLabel} sent a directory entry longer than ${MAX_ENTRY_LINE} bytes while listing ${remote}.`, { host: conn.hostLabel });
    }
    rest = Buffer.from(data);
    channel.credit(chunk.length);
  };
  try {
    await channel.opened;
    const exit = await channel.finished;
    if (!exit?.ok) throw exitError(conn, exit, `listing of ${remote}`);
  } finally {
    unsubscribe();
  }
  // Byte order of the names (as `LC_ALL=C ls`), not UTF-16 order of their strings.
  return entries
    .map((entry) => ({ entry, bytes: encodeOsBytes(entry.name) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map(({ entry }) => entry);
}

/** Create `remote` and its parents; sets `mode`/`mtimeMs` on it when given. Resolves with its absolute path. */
export async function mkdirRemote(conn: ChannelOpener, remote: string, options: { mode?: number; mtimeMs?: number; signal?: AbortSignal } = {}): Promise<string> {
  startTransfer(conn, options, 'mkdir', remote);
  const { signal, ...fields } = options;
  const channel = openFile(conn, { op: 'mkdir', path: remote, ...fields });
  const unsubscribe = onAbort(signal, channel);
  try {
    const ok = await channel.opened;
    const exit = await channel.finished;
    if (!exit?.ok) throw exitError(conn, exit, `mkdir of ${remote}`);
    return ok.path;
  } finally {
    unsubscribe();
  }
}

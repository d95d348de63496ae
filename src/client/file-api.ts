/**
 * The file functions of the public API, over a `Connection` (the same as its `put`, `get`,
 * `stat`, `list`, `putRecursive` and `getRecursive` methods). The transfers themselves take
 * the narrower `ChannelOpener` (client/channel-host.ts) so that connection.ts can use them
 * without an import cycle; this module keeps `Connection` in the public signatures.
 */
import type { Connection } from './connection.js';
import * as transfer from './file-transfer.js';
import * as tree from './file-tree.js';
import type { GetOptions, PutOptions, RemoteEntry, TransferResult } from './file-transfer.js';
import type { TreeOptions, TreeResult } from './file-tree.js';

/** Upload `local` to `remote` (relative: the remote user's home; a directory: into it). */
export function putFile(conn: Connection, local: string, remote: string, options: PutOptions = {}): Promise<TransferResult> {
  return transfer.putFile(conn, local, remote, options);
}

/** Download `remote` to `local` (an existing local directory: into it, under the remote name). */
export function getFile(conn: Connection, remote: string, local: string, options: GetOptions = {}): Promise<TransferResult> {
  return transfer.getFile(conn, remote, local, options);
}

/** A remote path's entry (symlinks followed); rejects with errno ENOENT when it does not exist. */
export function statRemote(conn: Connection, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry & { path: string }> {
  return transfer.statRemote(conn, remote, options);
}

/** The entries of a remote directory, sorted by name (a file lists as itself). Names are OS byte strings. */
export function listRemote(conn: Connection, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry[]> {
  return transfer.listRemote(conn, remote, options);
}

/** Upload `sources` (files, and directories with `recursive`) to `remote`. */
export function putTree(conn: Connection, sources: string[], remote: string, options: TreeOptions = {}): Promise<TreeResult> {
  return tree.putTree(conn, sources, remote, options);
}

/** Download `remotes` (files, and directories with `recursive`) to `local`. */
export function getTree(conn: Connection, remotes: string[], local: string, options: TreeOptions = {}): Promise<TreeResult> {
  return tree.getTree(conn, remotes, local, options);
}

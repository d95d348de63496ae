/**
 * The file functions of the public API, over a `Connection`: the same as its `put`, `get`,
 * `stat`, `list`, `putRecursive` and `getRecursive` methods (the operations themselves are
 * in client/files/ and take the connection's channel host, which stays private to it).
 */
import type { Connection } from './connection.js';
import type { GetOptions, PutOptions, RemoteEntry, TransferResult, TreeOptions, TreeResult } from './files/common.js';

/** Upload `local` to `remote` (relative: the remote user's home; a directory: into it). */
export function putFile(conn: Connection, local: string, remote: string, options: PutOptions = {}): Promise<TransferResult> {
  return conn.put(local, remote, options);
}

/** Download `remote` to `local` (an existing local directory: into it, under the remote name). */
export function getFile(conn: Connection, remote: string, local: string, options: GetOptions = {}): Promise<TransferResult> {
  return conn.get(remote, local, options);
}

/** A remote path's entry (symlinks followed); rejects with errno ENOENT when it does not exist. */
export function statRemote(conn: Connection, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry & { path: string }> {
  return conn.stat(remote, options);
}

/** The entries of a remote directory, sorted by name (a file lists as itself). Names are OS byte strings. */
export function listRemote(conn: Connection, remote: string, options: { signal?: AbortSignal } = {}): Promise<RemoteEntry[]> {
  return conn.list(remote, options);
}

/** Upload `sources` (files, and directories with `recursive`) to `remote`. */
export function putTree(conn: Connection, sources: string[], remote: string, options: TreeOptions = {}): Promise<TreeResult> {
  return conn.putRecursive(sources, remote, options);
}

/** Download `remotes` (files, and directories with `recursive`) to `local`. */
export function getTree(conn: Connection, remotes: string[], local: string, options: TreeOptions = {}): Promise<TreeResult> {
  return conn.getRecursive(remotes, local, options);
}

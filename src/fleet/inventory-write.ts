/**
 * Adding hosts to an inventory file (`shellwire discover --write-inventory`) without
 * disturbing what the operator wrote: the YAML document is edited in place, so comments,
 * order and ranges survive. The result is parsed again before it is written, and written
 * through a temporary file and a rename, so a crash never leaves half an inventory.
 */
import { CONFIG_FILE_LIMIT, readBoundedText } from '../auth/bounded-file.js';
import { renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Document, isMap, isSeq, parseDocument } from 'yaml';
import { InventoryError, parseInventory, type FleetHost } from './inventory.js';
import { LocalIoError, ShellwireError, errnoOf } from '../errors.js';

export interface NewHost {
  name: string;
  address: string;
  port: number;
  labels?: Record<string, string>;
}

/**
 * Add `hosts` whose address:port is not in the file yet; returns the names added.
 *
 * @throws {InventoryError} the existing file is not a valid inventory.
 * @throws {LocalIoError} (`SW_ERR_LOCAL_IO`) the file cannot be read or written.
 */
export function addHostsToInventory(file: string, hosts: readonly NewHost[]): { added: string[]; skipped: string[] } {
  let text = '';
  try {
    text = readBoundedText(file, 'The inventory', CONFIG_FILE_LIMIT);
  } catch (err) {
    if (err instanceof ShellwireError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new LocalIoError(`Cannot read the inventory ${file}: ${(err as Error).message}`, { errno: errnoOf(err), path: file, cause: err });
  }
  const existing = text.trim() === '' ? [] : parseInventory(text, file).hosts;
  const doc = text.trim() === '' ? new Document({ hosts: {} }) : parseDocument(text);
  let node = doc.get('hosts');
  if (node === undefined || node === null) {
    doc.set('hosts', doc.createNode({}));
    node = doc.get('hosts');
  }
  const taken = new Set(existing.map((h: FleetHost) => h.name));
  const endpoints = new Set(existing.map((h: FleetHost) => `${h.address}:${h.port}`));
  const added: string[] = [];
  const skipped: string[] = [];
  for (const host of hosts) {
    if (endpoints.has(`${host.address}:${host.port}`)) {
      skipped.push(host.name);
      continue;
    }
    let name = host.name;
    if (taken.has(name)) name = `${host.name}-${host.address}-${host.port}`.replace(/[^A-Za-z0-9_.-]/g, '-');
    if (taken.has(name)) {
      skipped.push(host.name);
      continue;
    }
    const entry: Record<string, unknown> = { address: host.address, port: host.port };
    if (host.labels && Object.keys(host.labels).length > 0) entry.labels = host.labels;
    if (isMap(node)) node.set(doc.createNode(name), doc.createNode(entry));
    else if (isSeq(node)) node.add(doc.createNode({ name, ...entry }));
    else throw new InventoryError(file, null, '"hosts" is neither a mapping nor a list; not changing it.');
    taken.add(name);
    endpoints.add(`${host.address}:${host.port}`);
    added.push(name);
  }
  const out = doc.toString();
  parseInventory(out, file); // never write an inventory we could not read back
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, out, { mode: 0o600 });
  renameSync(temp, file);
  return { added, skipped };
}

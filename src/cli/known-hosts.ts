/**
 * `shellwire known-hosts`: what ssh-keygen -F/-R and ssh-keyscan do for ssh.
 *
 *   list [HOST]        the pins, with their line numbers
 *   remove HOST…       every pin of HOST (HOST:PORT: only that port), FILE.old kept
 *   scan TARGETS…      fetch each daemon's fingerprint over TLS and print known_hosts lines
 *   add TARGETS…       fetch and pin them (new ones only; a changed key is never replaced)
 *   add --from FILE    pin lines from a file (`scan` output checked out of band), no network
 *
 * TARGETS are what `run` takes (names, @groups, label=value, HOST:PORT), so the 50 hosts of
 * an inventory are collected with one command instead of 50 prompts.
 */
import { BoundedFileError, CONFIG_FILE_LIMIT, readBoundedStdin, readBoundedText } from '../auth/bounded-file.js';
import type { Command } from 'commander';
import {
  addKnownHost, hostKeyState, knownHostMatches, readKnownHostEntries, readKnownHostsFile, parseKnownHostLine, removeKnownHost,
} from '../auth/known-hosts.js';
import { knownHostsPath } from '../auth/paths.js';
import { scanHostKey } from '../client/open-tls.js';
import { formatTarget, parseTarget } from '../client/target.js';
import { loadInventory, type FleetHost } from '../fleet/inventory.js';
import { resolveTargets } from '../fleet/targets.js';
import { parseVia } from '../client/via.js';
import { ShellwireError } from '../errors.js';
import { fail, parseSeconds, warn } from './common.js';
import { exitWhenFlushed } from './stdio.js';
import { escapeControls, quoteForDisplay } from '../client/display-text.js';

/** Fingerprint fetches in flight at once: enough for a fleet, few enough for one file table. */
const SCAN_PARALLEL = 32;

interface FileFlags {
  file?: string;
}
interface ScanFlags extends FileFlags {
  inventory?: string;
  connectTimeout: string;
}

export function registerKnownHosts(program: Command): void {
  const group = program
    .command('known-hosts')
    .description('list, remove, scan and add the daemon fingerprints this client trusts (as ssh-keygen -F/-R and ssh-keyscan)');
  const fileOption = ['-f, --file <known_hosts>', 'the known_hosts file (default $SHELLWIRE_HOME/known_hosts)'] as const;
  group
    .command('list [host]')
    .description('print the pinned hosts with their line numbers (only HOST\'s pins if given)')
    .option(...fileOption)
    .option('--json', 'one JSON object per pin')
    .action(async (host: string | undefined, flags: FileFlags & { json?: boolean }) => list(host, flags));
  group
    .command('remove <hosts...>')
    .alias('rm')
    .description('remove every pin of each HOST (HOST:PORT: only that port), keeping the old file as known_hosts.old (ssh-keygen -R)')
    .option(...fileOption)
    .option('--inventory <file>', 'inventory whose host names are resolved to their address:port too')
    .action(async (hosts: string[], flags: FileFlags & { inventory?: string }) => remove(hosts, flags));
  group
    .command('scan <targets...>')
    .description('fetch each daemon\'s fingerprint over TLS (no login) and print it as a known_hosts line (ssh-keyscan)')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--connect-timeout <duration>', 'give up on a host after this long (seconds, or 500ms, 1m)', '5')
    .action(async (targets: string[], flags: ScanFlags) => scan(targets, flags, false));
  group
    .command('add [targets...]')
    .description('fetch each daemon\'s fingerprint over TLS and pin it, printing each one to compare; changed keys are never replaced')
    .option(...fileOption)
    .option('--from <file>', 'pin the known_hosts lines in FILE (- for stdin) instead of fetching, e.g. checked output of `scan`')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--connect-timeout <duration>', 'give up on a host after this long (seconds, or 500ms, 1m)', '5')
    .action(async (targets: string[], flags: ScanFlags & { from?: string }) => {
      if (flags.from !== undefined) {
        if (targets.length > 0) fail('give either TARGETS to fetch or --from FILE, not both.', 2);
        await addFromFile(flags.from, flags);
      } else {
        if (targets.length === 0) fail('usage: shellwire known-hosts add TARGETS... (or --from FILE)', 2);
        await scan(targets, flags, true);
      }
    });
}

async function list(host: string | undefined, flags: FileFlags & { json?: boolean }): Promise<void> {
  const file = flags.file ?? knownHostsPath();
  const query = host === undefined ? undefined : normalizeQuery(host);
  const parsed = readKnownHostsFile(file);
  const entries = parsed.entries.filter((e) => query === undefined || knownHostMatches(e.host, query));
  if (flags.json) process.stdout.write(entries.map((e) => `${JSON.stringify({ ...e, file })}\n`).join(''));
  else process.stdout.write(entries.map((e) => `${escapeControls(file)}:${e.line}: ${e.host} ${e.fingerprint}\n`).join(''));
  // As ssh, a line that is no pin is ignored when connecting; here it is named, never echoed raw.
  for (const m of query === undefined ? parsed.malformed : []) {
    warn(`${file}:${m.line}: malformed, ignored (not "HOST:PORT SHA256:…"): ${quoteForDisplay(m.text)}`);
  }
  await exitWhenFlushed(host !== undefined && entries.length === 0 ? 1 : 0);
}

async function remove(hosts: string[], flags: FileFlags & { inventory?: string }): Promise<void> {
  const file = flags.file ?? knownHostsPath();
  let total = 0;
  for (const host of hosts) {
    for (const query of queriesFor(host, flags.inventory)) {
      const { removed, backup } = removeKnownHost(file, query);
      total += removed.length;
      for (const e of removed) process.stdout.write(`# Host ${e.host} found: line ${e.line}\n`);
      if (removed.length > 0) {
        process.stderr.write(`${file} updated: removed ${removed.length} line(s) for ${query}.\nOriginal contents retained as ${backup}\n`);
      }
    }
  }
  // ssh-keygen -R exits 0 when the host was not there; so do we, but says so.
  if (total === 0) process.stderr.write(`Host ${hosts.join(', ')} not found in ${file}; nothing removed.\n`);
  await exitWhenFlushed(0);
}

/**
 * What a HOST argument names in known_hosts: `HOST:PORT` as the CLI writes it (brackets for
 * IPv6), or a bare host (every port); an inventory name also stands for its address:port.
 */
function queriesFor(text: string, inventoryFile: string | undefined): string[] {
  const queries = [normalizeQuery(text)];
  try {
    const named = loadInventory(inventoryFile).hosts.find((h) => h.name === text);
    if (named) queries.push(formatTarget({ host: named.address, port: named.port }));
  } catch (err) {
    if (inventoryFile !== undefined) fail(err instanceof Error ? err.message : String(err), 2);
  }
  return [...new Set(queries)];
}

function normalizeQuery(text: string): string {
  const hasPort = /^\[[^\]]*\]:\d+$/.test(text) || /^[^:[\]]+:\d+$/.test(text);
  try {
    const target = parseTarget(text);
    return hasPort ? formatTarget(target) : target.host;
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err), 2);
  }
}

async function scan(targets: string[], flags: ScanFlags & FileFlags, pin: boolean): Promise<void> {
  let hosts: FleetHost[];
  try {
    hosts = resolveTargets(targets, loadInventory(flags.inventory));
  } catch (err) {
    fail(err instanceof ShellwireError ? err.message : String(err), 2);
  }
  if (hosts.length === 0) fail(`"${targets.join(' ')}" matches no hosts.`, 2);
  // A host behind a gateway (inventory via:) is never dialled: the key the client checks is
  // the gateway's (the gateway pins the hosts' keys itself), so that is the one scanned.
  hosts = hosts.map((h) => {
    if (h.via === undefined) return h;
    const gateway = parseVia(h.via);
    return { ...h, name: h.via, address: gateway.host, port: gateway.port };
  });
  // Aliases of one address:port (an inventory name and its address, two names) are one key.
  const seen = new Set<string>();
  hosts = hosts.filter((h) => {
    const key = formatTarget({ host: h.address, port: h.port });
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const timeoutMs = parseSeconds(flags.connectTimeout, '--connect-timeout') * 1000;
  const file = flags.file ?? knownHostsPath();
  const results = new Array<{ host: string; fingerprint: string } | Error>(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      const h = hosts[i]!;
      try {
        results[i] = await scanHostKey({ host: h.address, port: h.port }, { timeoutMs });
      } catch (err) {
        results[i] = err as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_PARALLEL, hosts.length) }, worker));

  let failed = 0;
  const counts = { added: 0, known: 0 };
  results.forEach((result, i) => {
    const h = hosts[i]!;
    const label = formatTarget({ host: h.address, port: h.port });
    if (result instanceof Error) {
      failed++;
      // Messages name the address:port already; an inventory name is added in front.
      const named = h.name !== label && h.name !== h.address ? `${h.name}: ` : '';
      warn(`${named}${result.message}`);
      return;
    }
    if (!pin) {
      process.stdout.write(`${result.host} ${result.fingerprint}\n`);
      return;
    }
    const outcome = pinOne(file, result.host, result.fingerprint);
    if (outcome === 'changed') failed++;
    else counts[outcome]++;
  });
  if (pin) {
    process.stderr.write(`${file}: ${counts.added} added, ${counts.known} already known${failed ? `, ${failed} failed or changed` : ''}.\n`);
  }
  await exitWhenFlushed(failed > 0 ? 1 : 0);
}

/** Pin one fingerprint, printing it so the operator can compare; a different pin is kept. */
function pinOne(file: string, host: string, fingerprint: string): 'added' | 'known' | 'changed' {
  const state = hostKeyState(readKnownHostEntries(file), host, fingerprint);
  if (state === 'changed') {
    const old = readKnownHostEntries(file).find((e) => e.host === host)!;
    process.stderr.write(
      `shellwire: WARNING: ${host} presents ${fingerprint}, but ${file}:${old.line} pins ${old.fingerprint}; not changed.\n` +
        `If you know the daemon's key changed: shellwire known-hosts remove ${host}, then add it again.\n`,
    );
    return 'changed';
  }
  if (state === 'known') {
    process.stdout.write(`${host} ${fingerprint} already known\n`);
    return 'known';
  }
  addKnownHost(file, host, fingerprint);
  process.stdout.write(`${host} ${fingerprint} added\n`);
  return 'added';
}

async function addFromFile(from: string, flags: FileFlags): Promise<void> {
  const file = flags.file ?? knownHostsPath();
  let text: string;
  try {
    text = from === '-' ? readBoundedStdin('The known_hosts input', CONFIG_FILE_LIMIT).toString('utf8') : readBoundedText(from, 'File', CONFIG_FILE_LIMIT);
  } catch (err) {
    if (err instanceof BoundedFileError) fail(err.message, 2);
    fail(`Cannot read ${from}: ${(err as NodeJS.ErrnoException).code ?? err}.`, 2);
  }
  const counts = { added: 0, known: 0 };
  let failed = 0;
  text.split('\n').forEach((raw, index) => {
    const parsed = parseKnownHostLine(raw, index + 1);
    if (parsed === null) return;
    if (parsed === 'malformed') {
      failed++;
      warn(`${from}:${index + 1}: not a known_hosts line "HOST:PORT SHA256:… [# comment]": ${quoteForDisplay(raw.trim())}`);
      return;
    }
    const { host, fingerprint } = parsed;
    let key: string;
    try {
      key = formatTarget(parseTarget(host));
    } catch (err) {
      failed++;
      warn(`${from}:${index + 1}: ${(err as Error).message}`);
      return;
    }
    const outcome = pinOne(file, key, fingerprint);
    if (outcome === 'changed') failed++;
    else counts[outcome]++;
  });
  process.stderr.write(`${file}: ${counts.added} added, ${counts.known} already known${failed ? `, ${failed} failed or changed` : ''}.\n`);
  await exitWhenFlushed(failed > 0 ? 1 : 0);
}

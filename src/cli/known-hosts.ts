/**
 * `shellwire known-hosts`: what ssh-keygen -F/-R and ssh-keyscan do for ssh.
 *
 *   list [HOST]        the pins, with their line numbers
 *   remove HOST…       every pin of HOST (HOST:PORT: only that port), FILE.old kept
 *   scan TARGETS…      fetch each daemon's fingerprint over TLS and print known_hosts lines
 *   add TARGETS…       fetch and pin them (new ones only; a changed key is never replaced)
 *   add --from FILE    pin lines from a file (`scan` output checked out of band), no network
 *   scan/add --via nats://… NAME…   the same for agents reached through NATS (pinned as `nats:NAME`)
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
import { natsHostKey } from '../client/nats-agent-target.js';
import { isAgentName } from '../protocol/nats-subjects.js';
import { isNatsUrl } from '../transport/nats-connect.js';
import { openTls } from '../client/open-tls.js';
import { fingerprintOfCertificate } from '../transport/tls.js';

/** How known_hosts names an agent: `nats:NAME` (src/client/nats-agent-target.ts). */
const NATS_PIN_PREFIX = 'nats:';

/** Fingerprint fetches in flight at once: enough for a fleet, few enough for one file table. */
const SCAN_PARALLEL = 32;

interface FileFlags {
  file?: string;
}
interface ScanFlags extends FileFlags {
  inventory?: string;
  connectTimeout: string;
  via?: string;
  natsCreds?: string;
  natsPrefix?: string;
}

/** `--via nats://…` and its companions on scan/add: agents are fetched over a NATS tunnel. */
function natsOptions(command: Command): Command {
  return command
    .option('-J, --via <nats://…>', 'fetch agents\' keys through NATS (TARGETS are agent names, or nats:NAME)')
    .option('--nats-creds <file>', 'with --via nats://…: NATS credentials (a .creds file, or an nkey seed file)')
    .option('--nats-prefix <prefix>', 'with --via nats://…: the agents\' subject prefix (default shellwire)');
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
  natsOptions(group
    .command('scan <targets...>')
    .description('fetch each daemon\'s fingerprint over TLS (no login) and print it as a known_hosts line (ssh-keyscan)')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--connect-timeout <duration>', 'give up on a host after this long (seconds, or 500ms, 1m)', '5'))
    .action(async (targets: string[], flags: ScanFlags) => scan(targets, flags, false));
  natsOptions(group
    .command('add [targets...]')
    .description('fetch each daemon\'s fingerprint over TLS and pin it, printing each one to compare; changed keys are never replaced')
    .option(...fileOption)
    .option('--from <file>', 'pin the known_hosts lines in FILE (- for stdin) instead of fetching, e.g. checked output of `scan`')
    .option('--inventory <file>', 'inventory file (default $SHELLWIRE_HOME/inventory.yaml)')
    .option('--connect-timeout <duration>', 'give up on a host after this long (seconds, or 500ms, 1m)', '5'))
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
  // An agent's pin (`nats:NAME`) is named as it is written.
  const agent = agentPinKey(text);
  if (agent !== null) return agent;
  const hasPort = /^\[[^\]]*\]:\d+$/.test(text) || /^[^:[\]]+:\d+$/.test(text);
  try {
    const target = parseTarget(text);
    return hasPort ? formatTarget(target) : target.host;
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err), 2);
  }
}

/**
 * `nats:NAME` (what known_hosts and the CLI's messages write for an agent) → that key; null
 * for anything else. A bad name after `nats:` is a usage error, not "port must be a number".
 */
function agentPinKey(text: string): string | null {
  if (!text.startsWith(NATS_PIN_PREFIX)) return null;
  const name = text.slice(NATS_PIN_PREFIX.length);
  if (!isAgentName(name)) fail(`Bad agent pin "${text}": after nats: comes an agent's name (its --name: A-Z a-z 0-9 _ -).`, 2);
  return natsHostKey(name);
}

async function scan(targets: string[], flags: ScanFlags & FileFlags, pin: boolean): Promise<void> {
  const viaNats = flags.via !== undefined && isNatsUrl(flags.via) ? flags.via : undefined;
  if (flags.via !== undefined && viaNats === undefined) {
    fail(`--via on known-hosts takes NATS servers (nats://…), not a gateway: "${flags.via}". A gateway's own key is scanned as HOST:PORT.`, 2);
  }
  if (viaNats === undefined && (flags.natsCreds !== undefined || flags.natsPrefix !== undefined)) fail('--nats-creds and --nats-prefix go with --via nats://….', 2);
  const agentTargets = targets.filter((t) => t.startsWith(NATS_PIN_PREFIX));
  if (viaNats === undefined && agentTargets.length > 0) {
    fail(
      `${agentTargets[0]} is an agent reached through NATS: add --via nats://SERVER (the servers you reach it through), e.g. ` +
        `shellwire known-hosts ${pin ? 'add' : 'scan'} --via nats://127.0.0.1:4222 ${agentTargets[0]}; or pin a checked line "nats:NAME SHA256:…" with --from FILE.`,
      2,
    );
  }
  if (viaNats !== undefined) return scanAgents(targets, viaNats, flags, pin);
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

  await report(results, hosts.map((h) => {
    const label = formatTarget({ host: h.address, port: h.port });
    // Messages name the address:port already; an inventory name is added in front.
    return h.name !== label && h.name !== h.address ? `${h.name}: ` : '';
  }), file, pin);
}

/** Print (scan) or pin (add) what was fetched; a failure is warned, prefixed by `prefixes[i]`. */
async function report(results: Array<{ host: string; fingerprint: string } | Error>, prefixes: string[], file: string, pin: boolean): Promise<void> {
  let failed = 0;
  const counts = { added: 0, known: 0 };
  results.forEach((result, i) => {
    if (result instanceof Error) {
      failed++;
      warn(`${prefixes[i] ?? ''}${result.message}`);
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

/**
 * `scan/add --via nats://… NAME…`: each agent's key as its TLS handshake presents it over a
 * NATS tunnel (what `exec --via` checks), as `scan` does over TCP; nothing is logged in to.
 * TARGETS are agent names (`nats:NAME` too); patterns need the live agents: `hosts --via`.
 */
async function scanAgents(targets: string[], via: string, flags: ScanFlags & FileFlags, pin: boolean): Promise<void> {
  const names = targets.flatMap((t) => t.split(',')).filter((t) => t !== '').map((t) => {
    const name = t.startsWith(NATS_PIN_PREFIX) ? t.slice(NATS_PIN_PREFIX.length) : t;
    if (!isAgentName(name)) {
      fail(`Bad agent "${t}": through NATS known-hosts takes agents' names (or nats:NAME); list them with: shellwire hosts --via ${via}`, 2);
    }
    return name;
  });
  const unique = [...new Set(names)];
  const timeoutMs = parseSeconds(flags.connectTimeout, '--connect-timeout') * 1000;
  const { connectNats } = await import('../transport/nats-connect.js');
  const { openNatsTunnel } = await import('../client/nats-via.js');
  const nc = await connectNats({ servers: via, ...(flags.natsCreds !== undefined ? { credsFile: flags.natsCreds } : {}), name: 'shellwire known-hosts' })
    .catch((err: unknown) => fail((err as Error).message, 1));
  const results = new Array<{ host: string; fingerprint: string } | Error>(unique.length);
  let next = 0;
  const worker = async () => {
    while (next < unique.length) {
      const i = next++;
      const name = unique[i]!;
      const label = natsHostKey(name);
      try {
        const tunnel = await openNatsTunnel(nc, name, { ...(flags.natsPrefix !== undefined ? { prefix: flags.natsPrefix } : {}), via, timeoutMs: Math.min(timeoutMs, 5_000) });
        const socket = await openTls({ host: name, port: 0 }, label, timeoutMs, undefined, tunnel).catch((err: unknown) => {
          tunnel.destroy();
          throw err;
        });
        try {
          const cert = socket.getPeerX509Certificate();
          if (!cert) throw new Error(`${label} presented no certificate.`);
          results[i] = { host: label, fingerprint: fingerprintOfCertificate(cert.raw) };
        } finally {
          socket.destroy();
          tunnel.destroy();
        }
      } catch (err) {
        results[i] = err as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_PARALLEL, unique.length) }, worker));
  await nc.close().catch(() => {});
  await report(results, [], flags.file ?? knownHostsPath(), pin);
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
      // An agent's line (`nats:NAME SHA256:…`, as `hosts --via … --json` gives) is pinned as written.
      if (host.startsWith(NATS_PIN_PREFIX)) {
        if (!isAgentName(host.slice(NATS_PIN_PREFIX.length))) throw new Error(`Bad agent pin "${host}": after nats: comes an agent's name (A-Z a-z 0-9 _ -)`);
        key = host;
      } else key = formatTarget(parseTarget(host));
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

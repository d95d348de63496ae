/**
 * Agents through NATS, end to end with real parts (docs/nats.md): a real nats-server, agents
 * as real `shellwire serve --no-listen --nats …` processes (no TCP port at all), and the real
 * CLI as a child process. exec (byte-exact, exit codes, stdin), put/get (SHA-256), discovery,
 * host key pinning (`nats:NAME`), ciphertext only on the broker, a lost message, and a flood of
 * bogus requests.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { hasTmux, TmuxPane } from '../helpers/tmux.js';
import { keyFile, type KeyFile } from '../helpers/gateway.js';
import { CLI, waitFor } from '../helpers/daemon.js';
import { cleanEnv, scratch, sha256, startCli, type CliChild } from '../helpers/fixtures.js';
import { connectNats } from '../../src/transport/nats-connect.js';
import { encodeTunnelMessage, TunnelMessageType } from '../../src/protocol/tunnel-codec.js';
import { natsSubjects } from '../../src/protocol/nats-subjects.js';

const files = scratch('sw-nats-');
let nats: NatsServer;
let observer: NatsConnection;
const subjects = natsSubjects();

interface Agent {
  name: string;
  cli: CliChild;
  home: string;
  fingerprint: string;
  token: string;
}
const agents: Agent[] = [];
let clientHome: string;

/** An operator key every agent authorizes (users.yaml user `ops`). */
let ops: KeyFile;

async function startAgent(name: string, labels: string, extra: string[] = []): Promise<Agent> {
  const home = files.home();
  mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'server', 'users.yaml'), `users:\n  ops:\n    allowRoot: true\n    keys: ["${ops.line}"]\n`);
  const cli = startCli(['serve', '--no-listen', '--nats', nats.url, '--name', name, '--labels', labels, '--no-audit', ...extra], {
    env: cleanEnv({ SHELLWIRE_HOME: home }),
    closeStdin: true,
    timeoutMs: 120_000,
  });
  files.children.push(cli);
  const [, fingerprint] = await cli.waitForStdout(new RegExp(`nats: agent ${name} connected to nats://127\\.0\\.0\\.1:\\d+ \\(fingerprint (SHA256:\\S+)\\)`), 15_000);
  return { name, cli, home, fingerprint: fingerprint!, token: readFileSync(join(home, 'server', 'token'), 'utf8').trim() };
}

/** Run the CLI to the end; stdout as bytes. */
function run(args: string[], options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? cleanEnv({ SHELLWIRE_HOME: clientHome }), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

const via = () => ['--via', nats.url];
const tokenOf = (agent: Agent) => ['--token-file', join(agent.home, 'server', 'token')];

before(async () => {
  nats = await startNatsServer();
  observer = await connectNats({ servers: nats.url });
  ops = keyFile(files.home(), 'ops');
  agents.push(await startAgent('web1', 'role=web,group=web,dc=ams'));
  agents.push(await startAgent('db1', 'role=db,dc=fra'));
  clientHome = files.home();
  writeFileSync(join(clientHome, 'known_hosts'), agents.map((a) => `nats:${a.name} ${a.fingerprint}\n`).join(''));
});
after(async () => {
  await observer?.close();
  for (const a of agents) a.cli.kill();
  await Promise.all(agents.map((a) => a.cli.exited));
  await nats?.stop();
});

test('exec through NATS to an agent with no TCP port: byte-exact output, stdin, exit codes', async () => {
  const [web1] = agents;
  const all = Buffer.alloc(256 * 1024 + 17);
  for (let i = 0; i < all.length; i++) all[i] = (i * 7 + (i >> 8)) & 0xff;
  const echoed = await run(['exec', ...via(), ...tokenOf(web1!), 'web1', '--', 'cat'], { input: all });
  assert.equal(echoed.code, 0, echoed.stderr);
  assert.equal(sha256(echoed.stdout), sha256(all), 'stdin → cat → stdout, every byte value, 256 KiB + 17');

  const bytes = await run(['exec', ...via(), ...tokenOf(web1!), 'web1', '--', "printf '\\377\\376caf\\303\\251\\000end'"]);
  assert.deepEqual(bytes.stdout, Buffer.from([0xff, 0xfe, ...Buffer.from('café'), 0, ...Buffer.from('end')]), 'non-UTF-8 output unchanged');

  const failed = await run(['exec', ...via(), ...tokenOf(web1!), 'web1', '--', 'echo out; echo err >&2; exit 7']);
  assert.equal(failed.code, 7);
  assert.equal(failed.stdout.toString(), 'out\n');
  assert.match(failed.stderr, /^err$/m);
});

test('put and get through NATS: SHA-256 verified, byte-exact', async () => {
  const [, db1] = agents;
  const dir = files.home();
  const local = join(dir, 'blob.bin');
  const data = randomBytes(3 * 1024 * 1024 + 5);
  writeFileSync(local, data);
  const remote = join(db1!.home, 'upload.bin');
  const put = await run(['put', '--quiet', ...via(), ...tokenOf(db1!), local, `db1:${remote}`]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(sha256(readFileSync(remote)), sha256(data));
  mkdirSync(join(dir, 'back'));
  const get = await run(['get', '--quiet', ...via(), ...tokenOf(db1!), `db1:${remote}`, join(dir, 'back')]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(sha256(readFileSync(join(dir, 'back', 'upload.bin'))), sha256(data));
});

test('hosts --via nats:// lists the live agents with labels; targets select over them; a killed agent drops out', async () => {
  const listed = await run(['hosts', ...via(), '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const records = listed.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { name: string; labels: Record<string, string>; fingerprint: string });
  assert.deepEqual(records.map((r) => r.name).filter((n) => n === 'web1' || n === 'db1'), ['db1', 'web1']);
  assert.deepEqual(records.find((r) => r.name === 'web1')!.labels, { role: 'web', group: 'web', dc: 'ams' });
  assert.equal(records.find((r) => r.name === 'db1')!.fingerprint, agents[1]!.fingerprint);
  const selected = await run(['hosts', ...via(), 'dc=ams']);
  // Labels come back in the signed record's canonical (sorted) order; the client pinned web1: verified.
  assert.match(selected.stdout.toString(), /^web1\s+SHA256:\S+\s+verified\s+@web\s+dc=ams,group=web,role=web$/m);
  assert.doesNotMatch(selected.stdout.toString(), /db1/);
  assert.match((await run(['hosts', ...via(), '--fold', '@web'])).stdout.toString(), /^web1$/m);

  // An agent that dies (SIGKILL: no "gone" message) no longer answers: the next listing lacks it.
  const doomed = await startAgent('tmp1', 'role=tmp');
  assert.match((await run(['hosts', ...via(), '--fold'])).stdout.toString(), /tmp1/);
  doomed.cli.child.kill('SIGKILL');
  await doomed.cli.exited;
  const started = Date.now();
  const after = await run(['hosts', ...via(), '--fold']);
  assert.doesNotMatch(after.stdout.toString(), /tmp1/);
  assert.ok(Date.now() - started < 4_000, 'dropped from the very next listing (discovery waits at most 3 s)');
});

test('run --via nats:// --tunnel: targets over the live agents, each through its own tunnel, a key login', async () => {
  const r = await run(['run', ...via(), '--tunnel', '-l', 'ops', '-i', ops.file, 'role=web,role=db', '--', 'echo', 'tunnel-run-ok']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /db1,web1|web1,db1|db1 web1/);
  assert.match(r.stdout.toString(), /tunnel-run-ok/);
  const failing = await run(['run', ...via(), '--tunnel', '-l', 'ops', '-i', ops.file, 'dc=fra', '--', 'exit 4']);
  assert.notEqual(failing.code, 0);
  assert.match(failing.stdout.toString() + failing.stderr, /db1/);
});

test('an inventory host with via: nats://… (and nats: …) goes through NATS by its name', async () => {
  const inventory = join(files.home(), 'inventory.yaml');
  writeFileSync(inventory, `hosts:\n  web1: { via: "${nats.url}", user: ops }\n  db1: { nats: "${nats.url}", user: ops }\n`);
  for (const name of ['web1', 'db1']) {
    const r = await run(['exec', '--inventory', inventory, '-i', ops.file, name, '--', 'echo', `inv-${name}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), `inv-${name}\n`);
  }
});

test('a wrong agent fingerprint in known_hosts is refused before any credential is sent', async () => {
  const home = files.home();
  writeFileSync(join(home, 'known_hosts'), `nats:web1 SHA256:${Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '')}\n`);
  const r = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', 'echo', 'should-not-run'], { env: cleanEnv({ SHELLWIRE_HOME: home }) });
  assert.equal(r.code, 255);
  assert.match(r.stderr, /nats:web1/);
  assert.match(r.stderr, /HOST IDENTIFICATION HAS CHANGED|changed|does not match/i);
  assert.doesNotMatch(r.stdout.toString(), /should-not-run/);
  const unknown = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', 'true'], { env: cleanEnv({ SHELLWIRE_HOME: files.home() }) });
  assert.equal(unknown.code, 255);
  assert.match(unknown.stderr, /nats:web1/);
});

test('the broker sees ciphertext only: a secret in the command and its output never crosses NATS in the clear', async () => {
  const marker = `SECRET-${randomBytes(8).toString('hex')}`;
  const seen: Buffer[] = [];
  let subjectsSeen = 0;
  const sub = observer.subscribe(`${subjects.tunnels}`, { callback: (_e, msg) => { seen.push(Buffer.from(msg.data)); subjectsSeen++; } });
  await observer.flush();
  const r = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', `echo ${marker}; echo ${marker} >&2`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), new RegExp(marker));
  await observer.flush();
  sub.unsubscribe();
  assert.ok(subjectsSeen > 5, `the observer saw the tunnel (${subjectsSeen} messages)`);
  const all = Buffer.concat(seen);
  assert.equal(all.indexOf(marker), -1, 'marker in plaintext on the broker');
  assert.equal(all.indexOf(Buffer.from(marker, 'utf16le')), -1);
  assert.equal(all.indexOf(agents[0]!.token), -1, 'the access token in plaintext on the broker');
});

test('a lost message (a forged DATA with a skipped seq) fails that connection with SW_ERR_TUNNEL_BROKEN; the agent keeps serving', async () => {
  let forged = false;
  const sub = observer.subscribe(`${subjects.tunnels}`, {
    callback: (_e, msg) => {
      // A new tunnel starts with the client's DATA 0 (its TLS ClientHello) on P.t.web1.ID.a:
      // forge a gap towards that client once the command runs.
      if (forged || !msg.subject.endsWith('.a') || msg.data[0] !== TunnelMessageType.DATA) return;
      if (Buffer.from(msg.data).readUInt32BE(1) !== 0) return;
      forged = true;
      const toClient = msg.subject.replace(/\.a$/, '.c');
      setTimeout(() => observer.publish(toClient, encodeTunnelMessage({ type: TunnelMessageType.DATA, seq: 100_000, data: Buffer.from('forged') })), 800);
    },
  });
  await observer.flush();
  const started = Date.now();
  const r = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', 'echo started; sleep 20; echo finished']);
  sub.unsubscribe();
  assert.ok(forged);
  assert.equal(r.code, 255, r.stderr);
  assert.match(r.stderr, /NATS tunnel to web1: message \d+ expected, 100000 arrived: a message was lost or reordered/);
  assert.match(r.stderr, /SW_ERR_TUNNEL_BROKEN|reconnect/);
  assert.doesNotMatch(r.stdout.toString(), /forged|finished/);
  assert.ok(Date.now() - started < 10_000, 'fails at once, not after the command');
  const again = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', 'echo', 'still-serving']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.toString(), 'still-serving\n');
});

test('a flood of bogus opens and discovers does not break the agent', async () => {
  for (let i = 0; i < 300; i++) {
    observer.publish(subjects.open('web1'), randomBytes(i % 50));
    observer.publish(subjects.open('web1'), JSON.stringify({ tunnel: '../../etc', window: 1 }));
    observer.publish(subjects.discover, randomBytes(i % 100));
    observer.publish(subjects.discover, 'x'.repeat(100_000));
  }
  // Well-formed opens whose client never speaks: each is a connection in its startup (handshake deadline, MaxStartups).
  const replies = await Promise.all(
    Array.from({ length: 60 }, (_, i) => observer.request(subjects.open('web1'), JSON.stringify({ tunnel: `A${String(i).padStart(21, '0')}`, window: 262144 }), { timeout: 3000 }).then((m) => JSON.parse(Buffer.from(m.data).toString()) as { ok: boolean }, () => ({ ok: false }))),
  );
  assert.ok(replies.filter((r) => r.ok).length > 0);
  const bad = await observer.request(subjects.open('web1'), JSON.stringify({ tunnel: 'short' }), { timeout: 3000 });
  assert.match(Buffer.from(bad.data).toString(), /"ok":false,"code":"SW_ERR_BAD_REQUEST"/);
  await observer.flush();
  const r = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', 'echo', 'alive-after-flood']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'alive-after-flood\n');
  assert.ok(await waitFor(() => agents[0]!.cli.child.exitCode === null, 100));
});

test('SW_ERR_NATS_UNAVAILABLE: no NATS server at the URL (exit 255, a clear message); no such agent: SW_ERR_CONNECT_FAILED', async () => {
  const r = await run(['exec', '--via', 'nats://127.0.0.1:1', ...tokenOf(agents[0]!), 'web1', '--', 'true']);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
  const none = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'nosuch', '--', 'true']);
  assert.equal(none.code, 255);
  assert.match(none.stderr, /No agent nosuch on NATS/);
  const badName = await run(['exec', ...via(), 'web1:2222', '--', 'true']);
  assert.equal(badName.code, 2);
});

test('tty through NATS: a real terminal, resize reaches the agent, the exit code comes back', { skip: !hasTmux && 'tmux not installed' }, async () => {
  const pane = new TmuxPane(
    `env SHELLWIRE_HOME=${clientHome} TERM=xterm-256color ${process.execPath} ${CLI} tty --via ${nats.url} --token-file ${join(agents[0]!.home, 'server', 'token')} web1 -- /bin/sh; echo "CLIENT-EXIT=$?"; sleep 60`,
    100,
    30,
  );
  try {
    assert.ok(await pane.shows(/[#$] ?$/m), pane.screen());
    pane.line('echo size=$(tput cols)x$(tput lines)');
    assert.ok(await pane.shows(/size=100x30/), pane.screen());
    execFileSync('tmux', ['resize-window', '-t', pane.name, '-x', '120', '-y', '40']);
    await new Promise((r) => setTimeout(r, 300));
    pane.line('clear; echo size=$(tput cols)x$(tput lines)');
    assert.ok(await pane.shows(/size=120x40/), `resize reaches the agent's terminal:\n${pane.screen()}`);
    pane.line('exit 5');
    assert.ok(await pane.shows(/CLIENT-EXIT=5/), pane.screen());
  } finally {
    pane.close();
  }
});

test('nats.js is loaded only when NATS is used: exec to a TCP daemon never loads it', async () => {
  const { startDaemon } = await import('../helpers/daemon.js');
  const daemon = await startDaemon();
  const dir = files.home();
  const probe = join(dir, 'probe.cjs');
  const loaded = join(dir, 'loaded.txt');
  // Records every module request naming @nats-io (the bundles keep nats.js external: a require).
  writeFileSync(probe, `const M = require('module'); const fs = require('fs'); const load = M._load;
M._load = function (request, ...rest) { if (String(request).includes('@nats-io')) fs.appendFileSync(${JSON.stringify(loaded)}, request + '\\n'); return load.call(this, request, ...rest); };\n`);
  try {
    const env = { ...daemon.env, NODE_OPTIONS: `--require ${probe}` };
    const tcp = await run(['exec', daemon.address, '--', 'echo', 'tcp-ok'], { env });
    assert.equal(tcp.code, 0, tcp.stderr);
    assert.equal(tcp.stdout.toString(), 'tcp-ok\n');
    assert.throws(() => readFileSync(loaded), /ENOENT/, 'exec over TCP loaded nats.js');
    const viaNats = await run(['exec', ...via(), ...tokenOf(agents[0]!), 'web1', '--', 'echo', 'nats-ok'], { env: { ...cleanEnv({ SHELLWIRE_HOME: clientHome }), NODE_OPTIONS: `--require ${probe}` } });
    assert.equal(viaNats.stdout.toString(), 'nats-ok\n', viaNats.stderr);
    assert.match(readFileSync(loaded, 'utf8'), /@nats-io\/transport-node/, 'the probe sees nats.js when it is used');
  } finally {
    await daemon.stop();
  }
});

test('presence: agents announce themselves; a clean stop says gone (dropped at once), silence drops an agent after 90 s; a new watcher hears every agent at once', async () => {
  const { PresenceWatcher } = await import('../../src/fleet/nats-discovery.js');
  const { PRESENCE_TTL_MS } = await import('../../src/protocol/nats-subjects.js');
  const watcher = new PresenceWatcher(observer);
  try {
    await observer.flush();
    const temp = await startAgent('tmp2', 'role=tmp');
    assert.ok(await waitFor(() => watcher.agents().some((a) => a.name === 'tmp2'), 3_000), 'announced at start');
    // The long-running agents announced long before the watcher: it asked them at its start.
    assert.ok(await waitFor(() => ['web1', 'db1'].every((n) => watcher.agents().some((a) => a.name === n)), 3_000), 'a new watcher asks every agent once');
    assert.equal(watcher.agents().find((a) => a.name === 'web1')!.fingerprint, agents[0]!.fingerprint);
    // Nothing heard for the TTL: dropped (the clock is moved rather than waited for).
    assert.deepEqual(watcher.agents(Date.now() + PRESENCE_TTL_MS + 1), []);
    temp.cli.child.kill('SIGTERM');
    await temp.cli.exited;
    assert.ok(await waitFor(() => !watcher.agents().some((a) => a.name === 'tmp2'), 2_000), 'gone at a clean stop');
  } finally {
    watcher.close();
  }
});

test('serve: --no-listen needs --nats; agent flags need --nats; bad names and labels are usage errors; serve.yaml takes the same keys', async () => {
  const home = files.home();
  const env = cleanEnv({ SHELLWIRE_HOME: home });
  const noListen = await run(['serve', '--no-listen'], { env });
  assert.equal(noListen.code, 2);
  assert.match(noListen.stderr, /--no-listen leaves nothing to serve: give --nats URLS too/);
  const nameOnly = await run(['serve', '--name', 'web1'], { env });
  assert.equal(nameOnly.code, 2);
  assert.match(nameOnly.stderr, /--name is for agent mode: it needs --nats URLS/);
  const badName = await run(['serve', '--nats', nats.url, '--name', 'web.1'], { env });
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /--name takes 1 to 64 of A-Z a-z 0-9 _ -/);
  const badLabels = await run(['serve', '--nats', nats.url, '--labels', 'role'], { env });
  assert.equal(badLabels.code, 2);
  assert.match(badLabels.stderr, /--labels takes k=v,k2=v2/);
  const badUrl = await run(['serve', '--nats', 'http://x'], { env });
  assert.equal(badUrl.code, 2);
  // serve.yaml: listen: none + nats + labels as a list.
  const config = join(home, 'serve.yaml');
  writeFileSync(config, `listen: none\nnats: ["${nats.url}"]\nname: yaml1\nlabels: [role=cfg]\naudit: false\n`);
  const agent = startCli(['serve', '--config', config], { env, closeStdin: true, timeoutMs: 60_000 });
  files.children.push(agent);
  await agent.waitForStdout(/nats: agent yaml1 connected/, 15_000);
  assert.match(agent.stdout().toString(), /no TCP port/);
  // Not pinned: a label selects it only with --accept-new-host (listed as unverified).
  const unpinned = await run(['hosts', ...via(), '--allow-empty', 'role=cfg']);
  assert.doesNotMatch(unpinned.stdout.toString(), /yaml1/);
  assert.match(unpinned.stderr, /left out, not pinned in known_hosts .*yaml1/);
  const listed = await run(['hosts', ...via(), '--accept-new-host', 'role=cfg']);
  assert.match(listed.stdout.toString(), /^yaml1\s+SHA256:\S+\s+unverified\s/m);
  agent.child.kill('SIGTERM');
  assert.equal((await agent.exited).code, 0);
});

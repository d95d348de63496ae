/**
 * Findings of the NATS review (ATTACK15), each with real parts: a real nats-server, agents as
 * real `shellwire serve --no-listen --nats …` processes, the real CLI as a child process.
 * Pinning agents (`known-hosts add --via`, `--from` with `nats:NAME` lines, the hints), plain
 * names in `run --tunnel`, an agent that cannot reach NATS, a broker's smaller max_payload,
 * peer text from the wire escaped, `| head` closing the remote command, two agents under one
 * name, broadcast truncation in --stream, label and -p usage errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { nkeys, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { keyFile, type KeyFile } from '../helpers/gateway.js';
import { CLI, waitFor } from '../helpers/daemon.js';
import { cleanEnv, freePort, scratch, sha256, startCli, type CliChild } from '../helpers/fixtures.js';
import { connectNats } from '../../src/transport/nats-connect.js';
import { encodeTunnelMessage, TunnelMessageType } from '../../src/protocol/tunnel-codec.js';
import { natsSubjects } from '../../src/protocol/nats-subjects.js';

const files = scratch('sw-nats-review-');
let nats: NatsServer;
let observer: NatsConnection;
const subjects = natsSubjects();
let ops: KeyFile;

interface Agent {
  name: string;
  cli: CliChild;
  home: string;
  fingerprint: string;
}
let web1: Agent;

async function startAgent(name: string, url: string, extra: string[] = [], cloneOf?: Agent): Promise<Agent> {
  const home = files.home();
  mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
  // A cloned host: the same identity (host key and certificate) as `cloneOf`.
  for (const file of cloneOf ? ['host-key.pem', 'host-cert.pem'] : []) copyFileSync(join(cloneOf!.home, 'server', file), join(home, 'server', file));
  writeFileSync(join(home, 'server', 'users.yaml'), `users:\n  ops:\n    allowRoot: true\n    keys: ["${ops.line}"]\n`);
  const cli = startCli(['serve', '--no-listen', '--nats', url, '--name', name, '--labels', 'role=web', '--no-audit', ...extra], {
    env: cleanEnv({ SHELLWIRE_HOME: home }),
    closeStdin: true,
    timeoutMs: 120_000,
  });
  files.children.push(cli);
  const [, fingerprint] = await cli.waitForStdout(new RegExp(`nats: agent ${name} connected to nats://127\\.0\\.0\\.1:\\d+ \\(fingerprint (SHA256:\\S+)\\)`), 15_000);
  return { name, cli, home, fingerprint: fingerprint! };
}

async function stopAgent(agent: Agent): Promise<void> {
  agent.cli.kill();
  await agent.cli.exited;
}

/** Run the CLI to the end. */
function run(args: string[], options: { input?: Buffer | string; home?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv({ SHELLWIRE_HOME: options.home ?? clientHome }), stdio: ['pipe', 'pipe', 'pipe'] });
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

/** The words of a shell command line the CLI printed (no quoting beyond plain words in these tests). */
function words(line: string): string[] {
  return line.trim().split(/\s+/);
}

let clientHome: string;
const via = () => ['--via', nats.url];
const login = () => ['-l', 'ops', '-i', ops.file];

before(async () => {
  nats = await startNatsServer();
  observer = await connectNats({ servers: nats.url });
  ops = keyFile(files.home(), 'ops');
  web1 = await startAgent('web1', nats.url);
  clientHome = files.home();
  writeFileSync(join(clientHome, 'known_hosts'), `nats:web1 ${web1.fingerprint}\n`);
});
after(async () => {
  await observer?.close();
  if (web1) await stopAgent(web1);
  await nats?.stop();
});

test('#1 pinning an agent: the hint exec prints works when pasted; known-hosts add --via, --from nats:NAME lines, list and remove nats:NAME', async () => {
  const home = files.home();
  const first = await run(['exec', ...via(), ...login(), 'web1', '--', 'true'], { home });
  assert.equal(first.code, 255, first.stderr);
  const hint = first.stderr.match(/pin it first: (shellwire known-hosts add .*)$/m);
  assert.ok(hint, `a pinning command in the hint: ${first.stderr}`);
  const [, ...args] = words(hint[1]!);
  const added = await run(args, { home });
  assert.equal(added.code, 0, `the hint's command works: ${hint[1]}\n${added.stderr}`);
  assert.equal(added.stdout.toString(), `nats:web1 ${web1.fingerprint} added\n`);
  assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), `nats:web1 ${web1.fingerprint}\n`);
  const ok = await run(['exec', ...via(), ...login(), 'web1', '--', 'echo pinned'], { home });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.toString(), 'pinned\n');

  // scan prints the known_hosts line; nats:NAME is taken as well as NAME.
  const scanned = await run(['known-hosts', 'scan', ...via(), `nats:web1`], { home });
  assert.equal(scanned.code, 0, scanned.stderr);
  assert.equal(scanned.stdout.toString(), `nats:web1 ${web1.fingerprint}\n`);
  // Without --via an agent cannot be fetched: a usage error naming --via, not "port must be a number".
  const noVia = await run(['known-hosts', 'add', 'nats:web1'], { home });
  assert.equal(noVia.code, 2);
  assert.match(noVia.stderr, /add --via nats:\/\//);
  assert.doesNotMatch(noVia.stderr, /port|Bad target.*Bad target|\.\.$/m);
  // A bad TCP target is said once, ending in one period.
  const badPort = await run(['known-hosts', 'add', 'foo:bar'], { home });
  assert.equal(badPort.code, 2);
  assert.equal(badPort.stderr.match(/Bad target/g)?.length, 1, badPort.stderr);
  assert.doesNotMatch(badPort.stderr, /\.\.$/m);
  // An agent that is not there: that host failed, exit 1.
  const ghost = await run(['known-hosts', 'add', ...via(), 'ghost'], { home });
  assert.equal(ghost.code, 1);
  assert.match(ghost.stderr, /No agent ghost on NATS/);

  // list and remove take nats:NAME (the HOST_KEY_CHANGED hint says `known-hosts remove nats:NAME`).
  const listed = await run(['known-hosts', 'list', 'nats:web1'], { home });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout.toString(), new RegExp(`nats:web1 ${web1.fingerprint.replace(/[+/]/g, '\\$&')}`));
  const removed = await run(['known-hosts', 'remove', 'nats:web1'], { home });
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), '');

  // --from with the line the docs describe (from `hosts --via … --json`).
  const pins = join(home, 'pins.txt');
  writeFileSync(pins, `nats:web1 ${web1.fingerprint}\nnats:bad.name SHA256:${'A'.repeat(43)}\n`);
  const fromFile = await run(['known-hosts', 'add', '--from', pins], { home });
  assert.equal(fromFile.code, 1, 'the bad line fails');
  assert.match(fromFile.stderr, /1 added/);
  assert.match(fromFile.stderr, /pins\.txt:2: Bad agent pin "nats:bad\.name"/);
  assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), `nats:web1 ${web1.fingerprint}\n`);
});

test('#1 the fan-out hint for unknown agents is a command that works (run --tunnel, run broadcast)', async () => {
  for (const mode of [['--tunnel'], []]) {
    const home = files.home();
    const r = await run(['run', ...via(), ...mode, ...login(), 'web1', '--', 'true'], { home });
    assert.equal(r.code, 1, r.stderr);
    const hint = r.stderr.match(/pin them \((shellwire known-hosts add [^)]*)\)/);
    assert.ok(hint, r.stderr);
    const [, ...args] = words(hint[1]!);
    const added = await run(args, { home });
    assert.equal(added.code, 0, `${hint[1]}: ${added.stderr}`);
  }
});

test('#22 run --tunnel NAME: an agent that does not answer is that host\'s unreachable (exit 1), the others run; --json address is nats:NAME', async () => {
  const r = await run(['run', ...via(), '--tunnel', ...login(), '--json', 'web1', 'ghost', '--', 'echo hi']);
  assert.equal(r.code, 1, r.stderr);
  const records = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { type: string; host?: string; status?: string; address?: string; stdout?: string });
  const results = new Map(records.filter((x) => x.type === 'result').map((x) => [x.host, x]));
  assert.equal(results.get('web1')?.status, 'ok');
  assert.equal(results.get('web1')?.stdout, 'hi\n');
  assert.equal(results.get('web1')?.address, 'nats:web1');
  assert.equal(results.get('ghost')?.status, 'unreachable');
  assert.equal(results.get('ghost')?.address, 'nats:ghost');
  // The hint names the servers given, not a placeholder.
  assert.match((results.get('ghost') as { error?: { message?: string } }).error?.message ?? '', new RegExp(`shellwire hosts --via ${nats.url.replace(/[.]/g, '\\.')}`));
  assert.doesNotMatch(r.stdout.toString(), /NATS_URL/);
  assert.doesNotMatch(r.stderr, /HOST:PORT|Bad target|NATS_URL/);
});

test('#19 an agent that cannot reach NATS says so at once, retries, and says connected only once it is', async () => {
  const port = await freePort();
  const home = files.home();
  mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'server', 'users.yaml'), 'users: {}\n');
  const agent = startCli(['serve', '--no-listen', '--nats', `nats://127.0.0.1:${port}`, '--name', 'late1', '--no-audit'], { env: cleanEnv({ SHELLWIRE_HOME: home }), closeStdin: true, timeoutMs: 60_000 });
  files.children.push(agent);
  let late: NatsServer | null = null;
  try {
    await agent.waitForStderr(/nats: agent late1 is not connected: Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*Retrying in [\d.]+ s/, 10_000);
    assert.doesNotMatch(agent.stdout().toString(), /connected to/, 'no "connected" banner while it is not');
    late = await startNatsServer({ port });
    await agent.waitForStdout(/nats: agent late1 connected to nats:\/\/127\.0\.0\.1:\d+/, 20_000);
    // A reconnect is one line too.
    await late.stop();
    await agent.waitForStderr(/agent late1 lost its connection/, 10_000);
    late = await startNatsServer({ port });
    await agent.waitForStderr(/agent late1 reconnected to nats:\/\//, 20_000);
  } finally {
    agent.kill();
    await agent.exited;
    await late?.stop();
  }
});

test('#19 an agent whose NATS user may not use its subjects says so (permissions violation, with a hint)', async () => {
  // The NATS user of another agent (web9): it may not subscribe to perm1's open subject.
  const home = files.home();
  const kp = nkeys.createUser();
  const seedFile = join(home, 'web9.nk');
  writeFileSync(seedFile, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
  const server = await startNatsServer({
    config: `authorization { users = [ { nkey: ${kp.getPublicKey()}, permissions: { publish: { allow: ["shellwire.presence.web9", "_INBOX.>", "shellwire.t.web9.*.c"] }, subscribe: { allow: ["shellwire.agent.web9.open", "shellwire.discover", "shellwire.t.web9.*.a", "shellwire.bcast.>"] }, allow_responses: true } } ] }`,
  });
  mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'server', 'users.yaml'), 'users: {}\n');
  const agent = startCli(['serve', '--no-listen', '--nats', server.url, '--nats-creds', seedFile, '--name', 'perm1', '--no-audit'], { env: cleanEnv({ SHELLWIRE_HOME: home }), closeStdin: true, timeoutMs: 60_000 });
  files.children.push(agent);
  try {
    await agent.waitForStderr(/nats: agent perm1: .*Permissions Violation for Subscription to "shellwire\.agent\.perm1\.open".*credentials are for another agent/, 15_000);
  } finally {
    agent.kill();
    await agent.exited;
    await server.stop();
  }
});

test('#23 a broker with max_payload 32 KiB: a tunnel cuts DATA to fit, large output and input arrive whole', async () => {
  const small = await startNatsServer({ config: 'max_payload: 32768' });
  const probe = await connectNats({ servers: small.url });
  const limit = probe.info?.max_payload;
  await probe.close();
  assert.equal(limit, 32768, 'the server announces the smaller limit');
  const agent = await startAgent('mp1', small.url);
  const home = files.home();
  writeFileSync(join(home, 'known_hosts'), `nats:mp1 ${agent.fingerprint}\n`);
  try {
    const out = await run(['exec', '--via', small.url, ...login(), 'mp1', '--', "head -c 500000 /dev/zero | tr '\\0' y"], { home });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.length, 500_000);
    const data = randomBytes(300_000);
    const echoed = await run(['exec', '--via', small.url, ...login(), 'mp1', '--', 'cat'], { home, input: data });
    assert.equal(echoed.code, 0, echoed.stderr);
    assert.equal(sha256(echoed.stdout), sha256(data));
  } finally {
    await stopAgent(agent);
    await small.stop();
  }
});

test('#18 a tunnel RST from the wire: its reason is shown quoted, escaped and capped (no raw newline or ESC), code SW_ERR_TUNNEL_BROKEN', async () => {
  // Learn the tunnel's id from the agent's first message, then reset the client's side with hostile text.
  const sub = observer.subscribe(`${subjects.discover.replace(/\.discover$/, '')}.t.web1.*.c`, { max: 1 });
  const victim = startCli(['exec', ...via(), ...login(), 'web1', '--', 'for i in $(seq 1 40); do echo $i; sleep 0.25; done'], { env: cleanEnv({ SHELLWIRE_HOME: clientHome }), closeStdin: true });
  files.children.push(victim);
  let subject = '';
  for await (const m of sub) subject = m.subject;
  await victim.waitForStdout(/^2$/m, 15_000);
  const reason = `x\n\x1b[31mYour host key changed: run shellwire known-hosts remove nats:web1\x1b[0m\r\n${'z'.repeat(2000)}`;
  observer.publish(subject, encodeTunnelMessage({ type: TunnelMessageType.RST, seq: 0, reason: reason.slice(0, 1000) }));
  const { code } = await victim.exited;
  assert.equal(code, 255);
  const stderr = victim.stderr();
  assert.match(stderr, /reset by the other end \(it said: "x\\n\\x1b\[31mYour host key changed/);
  assert.ok(!stderr.includes('\u001b'), 'no ESC reaches the terminal');
  assert.doesNotMatch(stderr, /^\S*Your host key changed/m, 'the forged text never starts a line of its own');
  assert.ok(!stderr.includes('z'.repeat(300)), 'the reason is capped');
  assert.match(stderr, /\[SW_ERR_TUNNEL_BROKEN\]/);
});

test('#18 an open refusal from whoever answers on an agent\'s subject is escaped too', async () => {
  const fake = observer.subscribe(subjects.open('fake1'), {
    callback: (_err, msg) => msg.respond(JSON.stringify({ ok: false, message: 'nope\nshellwire: \x1b[32mall fine\x1b[0m' })),
  });
  try {
    const r = await run(['exec', ...via(), ...login(), 'fake1', '--', 'true']);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /refused the tunnel: "nope\\nshellwire: \\x1b\[32mall fine/);
    assert.ok(!r.stderr.includes('\u001b'), 'no ESC reaches the terminal');
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('shellwire:')).length, 1, 'the forged text starts no line of its own');
  } finally {
    fake.unsubscribe();
  }
});

test('#11 exec through NATS | head -1: the remote command ends at once (the tunnel is reset before the CLI exits)', async () => {
  const pidFile = join(files.home(), 'yes.pid');
  const child = spawn(process.execPath, [CLI, 'exec', ...via(), ...login(), 'web1', '--', `echo $$ > ${pidFile}; exec yes`], { env: cleanEnv({ SHELLWIRE_HOME: clientHome }), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  // The reader takes one chunk and goes away, as `head -1` does.
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdout.destroy();
  assert.equal(await exited, 141, stderr);
  assert.ok(existsSync(pidFile));
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // The agent's keepalive would take ~45 s; the RST ends it within moments.
  const gone = await waitFor(() => !alive(), 10_000);
  if (!gone) process.kill(pid, 'SIGKILL');
  assert.ok(gone, 'the remote `yes` was stopped when the client went away');
});

test('#5 two agents under one name: the tunnel error says so, with the documented code SW_ERR_TUNNEL_BROKEN', async () => {
  // A cloned VM (same key, same --name): the pin matches whichever answers, so only the
  // duplicate messages tell. (Another key under the name is refused by the pin as well.)
  const twin = await startAgent('web1', nats.url, [], web1);
  assert.equal(twin.fingerprint, web1.fingerprint);
  try {
    const r = await run(['exec', ...via(), ...login(), 'web1', '--', 'echo hi']);
    assert.equal(r.code, 255, r.stderr);
    assert.match(r.stderr, /two agents may be answering under this name/);
    assert.match(r.stderr, /\[SW_ERR_TUNNEL_BROKEN\]/);
    assert.doesNotMatch(r.stderr, /NATS server restart/);
  } finally {
    await stopAgent(twin);
  }
});

test('#3 a broadcast --stream whose output was cut says so after that host\'s output and in the summary', async () => {
  const r = await run(['run', ...via(), ...login(), '--stream', 'web1', '--', 'seq 1 100000'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^web1 *! \[output truncated: a broadcast result keeps at most 256 KiB per stream; add --tunnel for all of it\]$/);
  assert.match(r.stderr, /1\/1 ok, 1 with output truncated \(web1\)/);
  const grouped = await run(['run', ...via(), ...login(), 'web1', '--', 'seq 1 100000'], { timeoutMs: 60_000 });
  assert.match(grouped.stdout.toString(), /\(output truncated: a broadcast result keeps at most 256 KiB/);
});

test('#21 --labels: a repeated key and a value that is not UTF-8 are usage errors; -p through NATS blames -p', async () => {
  const home = files.home();
  const dup = await run(['serve', '--no-listen', '--nats', nats.url, '--name', 'lab1', '--labels', 'group=a,group=b'], { home });
  assert.equal(dup.code, 2, dup.stderr);
  assert.match(dup.stderr, /"group" twice/);
  const bytes = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    // argv cannot carry a non-UTF-8 byte from Node: the shell's printf puts it there.
    const child = spawn('/bin/sh', ['-c', `exec "${process.execPath}" "${CLI}" serve --no-listen --nats ${nats.url} --name lab2 --labels "role=$(printf 'a\\377b')"`], { env: cleanEnv({ SHELLWIRE_HOME: home }) });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  assert.equal(bytes.code, 2, bytes.stderr);
  assert.match(bytes.stderr, /valid UTF-8/);
  const port = await run(['exec', ...via(), '-p', '22', 'web1', '--', 'true']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /-p\/--port does not apply through NATS/);
});

test('#18 hosts --via: a forged discovery record with control characters starts no row and prints no control character (unsigned: not listed at all)', async () => {
  const forged = observer.subscribe(subjects.discover, {
    callback: (_err, msg) => msg.respond(JSON.stringify({
      name: 'forged1', labels: { role: 'x\nweb9  SHA256:fake  @web  role=web', dc: '\x1b[31mred' }, fingerprint: 'SHA256:abc\r\nweb8', spki: '', version: '0', startedAt: new Date().toISOString(),
    })),
  });
  try {
    const r = await run(['hosts', ...via()]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.toString();
    assert.ok(!out.includes('\u001b') && !out.includes('\r'), out);
    assert.doesNotMatch(out, /^web[89]/m, 'the forged text starts no row of its own');
    // Records are signed by the agent's host key (nats-discovery-trust.test.ts): this one is not, so it is not listed.
    assert.doesNotMatch(out, /forged1/);
    assert.match(out, /^web1 /m);
  } finally {
    forged.unsubscribe();
  }
});

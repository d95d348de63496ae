/**
 * The least-privilege NATS permissions of docs/nats.md, tested as written there: a real
 * nats-server with nkey users (an agent, a second agent, an operator), the agent and the CLI
 * logging in with `--nats-creds` (an nkey seed file). The agent and the operator can do their
 * jobs; an agent cannot read another agent's tunnels or speak for it; an operator cannot
 * announce agents; no credentials, no connection (SW_ERR_NATS_UNAVAILABLE).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { nkeys, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { CLI } from '../helpers/daemon.js';
import { cleanEnv, scratch, startCli, type CliChild } from '../helpers/fixtures.js';
import { connectNats } from '../../src/transport/nats-connect.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';

const alice = generateKeyPair('alice');

const files = scratch('sw-natsperm-');
let nats: NatsServer;
let agent: CliChild;
let agentHome: string;
let clientHome: string;
const creds: Record<string, string> = {};

/** The permissions docs/nats.md gives an agent named NAME (prefix shellwire). */
function agentPermissions(name: string): string {
  return `{
      publish: { allow: ["shellwire.presence.${name}", "shellwire.t.${name}.*.c"] }
      subscribe: { allow: ["shellwire.agent.${name}.open", "shellwire.discover", "shellwire.bcast.*", "shellwire.t.${name}.*.a"] }
      allow_responses: true
    }`;
}
/** …and an operator. */
const OPERATOR_PERMISSIONS = `{
      publish: { allow: ["shellwire.discover", "shellwire.agent.*.open", "shellwire.t.*.*.a", "shellwire.bcast.*"] }
      subscribe: { allow: ["_INBOX.>", "shellwire.t.*.*.c"] }
    }`;

function user(role: string, dir: string): string {
  const kp = nkeys.createUser();
  const file = join(dir, `${role}.nk`);
  writeFileSync(file, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
  creds[role] = file;
  return kp.getPublicKey();
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv({ SHELLWIRE_HOME: clientHome }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The server errors a NATS connection is told about (permission violations arrive asynchronously). */
function serverErrors(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') seen.push(String(s.error));
  })();
  return seen;
}

before(async () => {
  const dir = files.home();
  const web1 = user('web1', dir);
  const db1 = user('db1', dir);
  const operator = user('operator', dir);
  nats = await startNatsServer({
    config: `authorization {
  users = [
    { nkey: ${web1}, permissions: ${agentPermissions('web1')} }
    { nkey: ${db1}, permissions: ${agentPermissions('db1')} }
    { nkey: ${operator}, permissions: ${OPERATOR_PERMISSIONS} }
  ]
}`,
  });
  agentHome = files.home();
  // alice may broadcast to web1 with her key (the token below is for exec over a tunnel).
  mkdirSync(join(agentHome, 'server'), { recursive: true, mode: 0o700 });
  writeFileSync(join(agentHome, 'server', 'users.yaml'), `users:\n  alice:\n    allowRoot: true\n    keys: ["${alice.publicLine}"]\n`, { mode: 0o600 });
  agent = startCli(['serve', '--no-listen', '--nats', nats.url, '--nats-creds', creds.web1!, '--name', 'web1', '--labels', 'role=web', '--no-audit'], {
    env: cleanEnv({ SHELLWIRE_HOME: agentHome }),
    closeStdin: true,
    timeoutMs: 120_000,
  });
  files.children.push(agent);
  const [, fingerprint] = await agent.waitForStdout(/nats: agent web1 connected to \S+ \(fingerprint (SHA256:\S+)\)/, 15_000);
  clientHome = files.home();
  writeFileSync(join(clientHome, 'known_hosts'), `nats:web1 ${fingerprint}\n`);
  writeFileSync(join(clientHome, 'alice'), alice.privateText, { mode: 0o600 });
});
after(async () => {
  agent?.kill();
  await agent?.exited;
  await nats?.stop();
});

test('with the documented permissions, the operator reaches the agent: hosts, exec', async () => {
  const hosts = await run(['hosts', '--via', nats.url, '--nats-creds', creds.operator!, '--fold']);
  assert.equal(hosts.code, 0, hosts.stderr);
  assert.equal(hosts.stdout, 'web1\n');
  const token = join(agentHome, 'server', 'token');
  const exec = await run(['exec', '--via', nats.url, '--nats-creds', creds.operator!, '--token-file', token, 'web1', '--', 'echo', 'least-privilege-ok']);
  assert.equal(exec.code, 0, exec.stderr);
  assert.equal(exec.stdout, 'least-privilege-ok\n');
  assert.match(readFileSync(token, 'utf8'), /\S/);
});

test('with the documented permissions, a broadcast (run --via) gets the agent\'s result: allow_responses covers it', async () => {
  // The agent may publish only to the NATS reply subject of a request it received (no
  // "_INBOX.>" in its publish allow-list): the client must publish with its inbox as reply.
  const r = await run(['run', '--via', nats.url, '--nats-creds', creds.operator!, '-i', join(clientHome, 'alice'), '-l', 'alice', '--timeout', '5', 'web1', '--', 'echo', 'broadcast-ok']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /broadcast-ok/);
});

test('another agent cannot read web1\'s tunnels or speak for it; the operator cannot announce agents', async () => {
  const rogue = await connectNats({ servers: nats.url, credsFile: creds.db1! });
  const rogueErrors = serverErrors(rogue);
  const operator = await connectNats({ servers: nats.url, credsFile: creds.operator! });
  const operatorErrors = serverErrors(operator);
  try {
    const sub = rogue.subscribe('shellwire.t.web1.>');
    rogue.publish('shellwire.presence.web1', '{"name":"web1"}');
    rogue.publish('shellwire.t.web1.x.a', 'x');
    operator.publish('shellwire.presence.web1', '{"name":"web1"}');
    await Promise.all([rogue.flush(), operator.flush()]);
    await new Promise((r) => setTimeout(r, 200));
    const closed = await Promise.race([sub.closed.then(() => 'closed', (e: unknown) => String(e)), new Promise((r) => setTimeout(() => r('open'), 500))]);
    assert.match(String(closed), /Permissions Violation for Subscription to "shellwire\.t\.web1\.>"|closed/i, `the rogue subscription: ${String(closed)} ${rogueErrors.join('; ')}`);
    assert.ok(rogueErrors.some((e) => /Permissions Violation for Publish to "shellwire\.presence\.web1"/.test(e)), rogueErrors.join('; '));
    assert.ok(rogueErrors.some((e) => /Permissions Violation for Publish to "shellwire\.t\.web1\.x\.a"/.test(e)), rogueErrors.join('; '));
    assert.ok(operatorErrors.some((e) => /Permissions Violation for Publish to "shellwire\.presence\.web1"/.test(e)), operatorErrors.join('; '));
  } finally {
    await rogue.close();
    await operator.close();
  }
});

test('ATTACK15 #7: with the documented permissions, db1\'s NATS user answers discovery (allow_responses) as web1 with role=db: ignored, role=db reaches no host', async () => {
  const { createIdentity } = await import('../../src/auth/identity.js');
  const { hostSigner } = await import('../../src/auth/broadcast-auth.js');
  const { signPresence } = await import('../../src/auth/presence-auth.js');
  const rogue = await connectNats({ servers: nats.url, credsFile: creds.db1! });
  try {
    // web1's real answer (seen by an operator connection: an agent's user may not ask), relabelled
    // (labels in canonical order: only the signature can tell)…
    const operator = await connectNats({ servers: nats.url, credsFile: creds.operator! });
    const real = (await collect(operator).finally(() => operator.close())).find((m) => m.toString('utf8').startsWith('{"v":1,"name":"web1"'));
    assert.ok(real, 'web1 answered the rogue\'s discovery');
    const relabelled = Buffer.from(real.toString('utf8').replace(/"labels":\{[^}]*\}/, '"labels":{"group":"db","role":"db"}'));
    // …and a record in web1's name signed by the rogue's own host key (a compromised db1).
    const own = signPresence({ name: 'web1', labels: { group: 'db', role: 'db' }, version: 'x', startedAt: new Date().toISOString() }, hostSigner(await createIdentity('db1')), Date.now());
    // allow_responses lets one answer per request through: one forgery per run.
    let answer = relabelled;
    const sub = rogue.subscribe('shellwire.discover', {
      callback: (err, msg) => {
        if (!err && msg.reply) rogue.publish(msg.reply, answer);
      },
    });
    await rogue.flush();
    for (const [forgery, warning] of [[relabelled, /an answer claiming to be web1 .* carries a bad signature/], [own, /an agent answered discovery as web1 with key SHA256:\S+, but known_hosts pins nats:web1/]] as const) {
      answer = forgery;
      const r = await run(['run', '--via', nats.url, '--nats-creds', creds.operator!, '-i', join(clientHome, 'alice'), '-l', 'alice', '--timeout', '5', 'role=db', '--', 'echo', 'db-only']);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /db-only/);
      assert.match(r.stderr, warning);
      const hosts = await run(['hosts', '--via', nats.url, '--nats-creds', creds.operator!]);
      assert.match(hosts.stdout, /^web1\s+SHA256:\S+\s+verified\s+role=web$/m);
      assert.match(hosts.stderr, warning);
    }
    sub.unsubscribe();
  } finally {
    await rogue.close();
  }
});

/** Every discovery answer within 2 s. */
async function collect(nc: NatsConnection): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const m of await nc.requestMany('shellwire.discover', '{}', { strategy: 'stall', stall: 300, maxWait: 2000 })) out.push(Buffer.from(m.data));
  return out;
}

test('no credentials: the broker refuses the connection (SW_ERR_NATS_UNAVAILABLE, exit 255)', async () => {
  const r = await run(['exec', '--via', nats.url, 'web1', '--', 'true']);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*Authorization Violation/i);
  const wrong = await run(['hosts', '--via', nats.url, '--nats-creds', join(agentHome, 'server', 'token')]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /neither a NATS \.creds file .* nor an nkey seed/);
});

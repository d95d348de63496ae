/**
 * Broadcast over NATS (docs/nats.md, "Broadcast") with a real nats-server on a free loopback port
 * and real daemons as agents (in-process, each with its own NATS connection): one signed request,
 * each agent judges it against its own users.yaml and answers signed by its host key, and the
 * client checks every answer against known_hosts. Each attack is refused or ignored as designed
 * and the agent's audit log shows it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { generateKeyPair, parsePrivateKey } from '../../src/auth/ssh-key.js';
import { keySigner, signBroadcastRequest, signBroadcastResult, hostSigner, type RequestSigner } from '../../src/auth/broadcast-auth.js';
import { createIdentity } from '../../src/auth/identity.js';
import { decodeRequest, decodeResult, shardOf } from '../../src/protocol/broadcast-codec.js';
import { BroadcastExecutor, broadcastHostOf } from '../../src/server/broadcast-exec.js';
import { runBroadcast, type BroadcastOptions } from '../../src/fleet/nats-run.js';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import type { AuditRow } from '../../src/audit/audit-event.js';
import { ErrorCode } from '../../src/errors.js';
import { formatGrouped } from '../../src/fleet/format.js';
import { runOn } from '../../src/fleet/run-on.js';

interface Agent {
  name: string;
  daemon: TestDaemon;
  nc: NatsConnection;
  executor: BroadcastExecutor;
  /** Messages the agent received on shellwire.bcast and answered (not dropped or ignored). */
  answered: number;
  received: number;
  rows(id: string): AuditRow[];
  stop(): Promise<void>;
}

async function startAgent(name: string, url: string, usersYaml: string): Promise<Agent> {
  const daemon = await startDaemon();
  writeFileSync(join(daemon.server.stateDir, 'users.yaml'), usersYaml);
  assert.ok(daemon.server.reloadUsers().ok);
  const nc = await natsConnect({ servers: url, name: `agent-${name}` });
  const executor = new BroadcastExecutor(broadcastHostOf(daemon.server, pino({ level: 'silent' })), { name, maxPayload: () => nc.info?.max_payload ?? 1024 * 1024 });
  const agent: Agent = {
    name, daemon, nc, executor, answered: 0, received: 0,
    rows(id) {
      const log = AuditLog.open(auditLogPath(daemon.server.stateDir), { readonly: true });
      try {
        return log.query({}).filter((r) => r.detail?.broadcast === id);
      } finally {
        log.close();
      }
    },
    async stop() {
      executor.close();
      await nc.close();
      await daemon.stop();
    },
  };
  // What E's agent does with onBroadcast: judge, run, answer on the signed reply subject.
  nc.subscribe('shellwire.bcast.*', {
    callback: (_err, msg) => {
      agent.received++;
      void executor.handle(msg.data).then((reply) => {
        if (!reply) return;
        agent.answered++;
        nc.publish(reply.subject, reply.payload);
      });
    },
  });
  await nc.flush();
  return agent;
}

const alice = generateKeyPair('alice');
const bob = generateKeyPair('bob');
const carol = generateKeyPair('carol');
const eve = generateKeyPair('eve');
const aliceKey = parsePrivateKey(alice.privateText);
const USERS = [
  'users:',
  '  alice:', '    allowRoot: true', `    keys: ["${alice.publicLine}"]`,
  '  bob:', '    allowRoot: true', '    commands: { allow: ["true", "echo ..."] }', `    keys: ["${bob.publicLine}"]`,
  '  carol:', '    allowRoot: true', '    channels: [file]', `    keys: ["${carol.publicLine}"]`,
].join('\n') + '\n';

describe('run over NATS by broadcast', { timeout: 120_000 }, () => {
  let nats: NatsServer;
  let agents: Agent[] = [];
  let client: NatsConnection;
  let spy: NatsConnection;
  let home: string;
  let knownHosts: string;

  before(async () => {
    nats = await startNatsServer();
    agents = await Promise.all(['a1', 'a2', 'a3'].map((n) => startAgent(n, nats.url, USERS)));
    client = await natsConnect({ servers: nats.url, name: 'operator' });
    spy = await natsConnect({ servers: nats.url, name: 'third-party' });
    home = mkdtempSync(join(tmpdir(), 'sw-bcast-home-'));
    mkdirSync(home, { recursive: true });
    knownHosts = join(home, 'known_hosts');
    writeFileSync(knownHosts, agents.map((a) => `nats:${a.name} ${a.daemon.fingerprint}\n`).join(''));
  });

  after(async () => {
    await client?.close();
    await spy?.close();
    for (const a of agents) await a.stop();
    await nats?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  const options = (over: Partial<BroadcastOptions> = {}): BroadcastOptions =>
    ({ connection: client, signer: keySigner(aliceKey), user: 'alice', knownHostsFile: knownHosts, timeoutMs: 10_000, ...over });

  it('runs one command on three agents: the same results and grouped output as a direct run', async () => {
    const command = 'echo "out $(hostname -s >/dev/null; echo x)"; echo err >&2; exit 3';
    const run = runBroadcast(['a1', 'a2', 'a3'], command, options());
    const summary = await run.result();
    assert.deepEqual(summary.results.map((r) => [r.host, r.status, r.exitCode, r.stdout, r.stderr]), [
      ['a1', 'failed', 3, 'out x\n', 'err\n'], ['a2', 'failed', 3, 'out x\n', 'err\n'], ['a3', 'failed', 3, 'out x\n', 'err\n'],
    ]);
    assert.equal(summary.success, false);
    // The same command run directly over TCP (runOn), hosts named alike: identical grouped text.
    writeFileSync(join(home, 'alice'), alice.privateText, { mode: 0o600 });
    const direct = await runOn(agents.map((a) => ({ name: a.name, address: '127.0.0.1', port: a.daemon.port, user: 'alice', identity: join(home, 'alice'), labels: {}, groups: [] })), command, {
      connect: { hostKeyPolicy: 'accept-new', home },
    }).result();
    assert.equal(direct.results.length, 3);
    const style = { color: false };
    assert.equal(formatGrouped(summary, style).toString(), formatGrouped(direct, style).toString());
    assert.deepEqual({ ...summary, durationMs: 0, results: [] }, { ...direct, durationMs: 0, results: [] });
    // Each agent audited it as an exec channel would: login by key (method broadcast), start, end.
    const rows = agents[0]!.rows(run.id);
    assert.deepEqual(rows.map((r) => [r.kind, r.user, r.keyFingerprint]), [
      ['auth-ok', 'alice', aliceKey.publicKey.fingerprint], ['command-start', 'alice', null], ['command-end', 'alice', null],
    ]);
    assert.equal(rows[0]!.detail?.method, 'broadcast');
    assert.equal(rows[2]!.exitCode, 3);
  });

  it('another user\'s key is refused SW_ERR_AUTH_FAILED and audited; a forged signature or a key in no users.yaml is not answered at all (no reflector), audited once', async () => {
    const bobAsAlice = runBroadcast(['a1'], 'echo should-not-run', options({ signer: keySigner(parsePrivateKey(bob.privateText)) }));
    const r = (await bobAsAlice.result()).results[0]!;
    assert.equal(r.status, 'auth');
    assert.equal(r.error?.code, ErrorCode.AUTH_FAILED);
    assert.deepEqual(agents[0]!.rows(bobAsAlice.id).map((x) => [x.kind, x.detail?.code]), [['auth-fail', ErrorCode.AUTH_FAILED]]);

    // Unproven: a signature by eve over alice's request, and eve's own key (in no users.yaml).
    // Their replyTo is unproven too, so an answer could be aimed anywhere: nothing is answered.
    const eveKey = parsePrivateKey(eve.privateText);
    const forged: RequestSigner = { publicKey: aliceKey.publicKey, sign: keySigner(eveKey).sign };
    const runs = [runBroadcast(['a1'], 'echo should-not-run', options({ signer: forged, timeoutMs: 300 })), runBroadcast(['a1'], 'echo should-not-run', options({ signer: keySigner(eveKey), user: 'eve', timeoutMs: 300 }))];
    const summaries = await Promise.all(runs.map((run) => run.result()));
    for (const summary of summaries) {
      assert.equal(summary.results[0]!.status, 'unreachable');
      assert.match(summary.results[0]!.error!.message, /did not accept your key/);
    }
    // One audit row for the first; the second, within a minute, only counted (anyone can send these for free).
    const rows = runs.map((run) => agents[0]!.rows(run.id));
    assert.equal(rows.flat().length, 1, JSON.stringify(rows));
    const row = rows.flat()[0]!;
    assert.equal(row.kind, 'auth-fail');
    assert.equal(row.detail?.unproven, true);
  });

  it('a forged request aimed at another subject gets no answer there (no reflection), and a flood of them writes no audit row per message', async () => {
    const eveKey = parsePrivateKey(eve.privateText);
    const messages = await signBroadcastRequest({
      v: 1, id: randomBytes(16).toString('base64url'), user: 'alice', publicKey: eveKey.publicKey.line, targets: ['a1', 'a2', 'a3'], command: 'true',
      timeoutMs: 1000, maxOutput: 0, issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 30_000).toISOString(), replyTo: 'victim.subject',
    }, keySigner(eveKey));
    const heard: string[] = [];
    const victim = spy.subscribe('victim.>', { callback: (_e, msg) => heard.push(msg.subject) });
    await spy.flush();
    const before = agents.map((a) => a.received);
    for (let i = 0; i < 200; i++) for (const m of messages) spy.publish(`shellwire.bcast.${m.shard}`, m.bytes, { reply: 'victim.reply' });
    await spy.flush();
    assert.ok(await waitFor(() => agents.every((a, i) => a.received >= before[i]! + 200), 10_000));
    await new Promise((r) => setTimeout(r, 300));
    victim.unsubscribe();
    assert.deepEqual(heard, []);
    // The agents keep serving.
    const summary = await runBroadcast(['a1', 'a2', 'a3'], 'true', options()).result();
    assert.equal(summary.ok, 3);
  });

  it('a replayed request (the captured bytes re-published by a third client) is refused SW_ERR_REPLAYED', async () => {
    // Every shard's message of the request (a1 and a2 may be in one shard or two).
    const captured: Array<{ subject: string; data: Uint8Array }> = [];
    const sub = spy.subscribe('shellwire.bcast.*', { callback: (_e, msg) => captured.push({ subject: msg.subject, data: msg.data }) });
    await spy.flush();
    const run = runBroadcast(['a1', 'a2'], 'echo once', options());
    const summary = await run.result();
    sub.unsubscribe();
    await spy.flush();
    assert.deepEqual(summary.results.map((r) => r.status), ['ok', 'ok']);
    assert.equal(captured.length, new Set([shardOf('a1'), shardOf('a2')]).size);
    const { body } = decodeRequest(captured[0]!.data);
    const answers: Array<ReturnType<typeof decodeResult>['body']> = [];
    const inbox = spy.subscribe(body.replyTo, { callback: (_e, msg) => answers.push(decodeResult(msg.data).body) });
    await spy.flush();
    for (const m of captured) spy.publish(m.subject, m.data);
    assert.ok(await waitFor(() => answers.length === 2, 5000));
    inbox.unsubscribe();
    assert.deepEqual(answers.map((a) => a.error?.code), [ErrorCode.REPLAYED, ErrorCode.REPLAYED]);
    const rows = agents[0]!.rows(run.id);
    assert.deepEqual(rows.map((r) => r.kind), ['auth-ok', 'command-start', 'command-end', 'auth-ok', 'denied'], 'ran once, the replay refused');
    assert.equal(rows[4]!.detail?.code, ErrorCode.REPLAYED);
  });

  it('a request expires when the client stops waiting (--timeout + 5 s, at most 60 s): an agent reported unreachable cannot start it later', async () => {
    const seen: Uint8Array[] = [];
    const sub = spy.subscribe('shellwire.bcast.*', { callback: (_e, msg) => seen.push(msg.data) });
    await spy.flush();
    await runBroadcast(['a1'], 'true', options({ timeoutMs: 1000 })).result();
    await runBroadcast(['a1'], 'true', options({ timeoutMs: 600_000 })).result();
    sub.unsubscribe();
    const lifetimes = seen.map((m) => decodeRequest(m).body).map((b) => Date.parse(b.expiresAt) - Date.parse(b.issuedAt));
    assert.deepEqual(lifetimes, [6_000, 60_000]);
  });

  it('an expired request is refused SW_ERR_REQUEST_EXPIRED', async () => {
    const run = runBroadcast(['a2'], 'echo late', options({ now: () => Date.now() - 120_000 }));
    const r = (await run.result()).results[0]!;
    assert.equal(r.status, 'error');
    assert.equal(r.error?.code, ErrorCode.REQUEST_EXPIRED);
    assert.match(r.error!.message, /expired/);
    // The key was proven first (an unproven request is never answered), so the refusal is the key holder's.
    assert.deepEqual(agents[1]!.rows(run.id).map((x) => [x.kind, x.detail?.code]), [['auth-ok', undefined], ['denied', ErrorCode.REQUEST_EXPIRED]]);
  });

  it('a command outside the user\'s policy is refused SW_ERR_DENIED; what the policy allows runs', async () => {
    const bobSigner = keySigner(parsePrivateKey(bob.privateText));
    const denied = runBroadcast(['a1'], 'id', options({ signer: bobSigner, user: 'bob' }));
    const r = (await denied.result()).results[0]!;
    assert.equal(r.status, 'error');
    assert.equal(r.error?.code, ErrorCode.DENIED);
    assert.match(r.error!.message, /commands\.allow/);
    assert.deepEqual(agents[0]!.rows(denied.id).map((x) => x.kind), ['auth-ok', 'denied']);
    // carol may open file channels only: no exec, so no broadcast either.
    const carolRun = runBroadcast(['a1'], 'true', options({ signer: keySigner(parsePrivateKey(carol.privateText)), user: 'carol' }));
    assert.equal((await carolRun.result()).results[0]!.error?.code, ErrorCode.DENIED);
    // The exec channel's other rules apply as well: environment names, a restricted user's cwd.
    const preload = runBroadcast(['a1'], 'true', options({ env: { LD_PRELOAD: '/tmp/x.so' } }));
    assert.match((await preload.result()).results[0]!.error?.message ?? '', /LD_PRELOAD may not be set/);
    const outside = runBroadcast(['a1'], 'echo hi', options({ signer: bobSigner, user: 'bob', cwd: '/proc' }));
    assert.match((await outside.result()).results[0]!.error?.message ?? '', /outside user "bob"'s home/);
    const allowed = runBroadcast(['a1'], 'echo hello there', options({ signer: bobSigner, user: 'bob' }));
    const ok = (await allowed.result()).results[0]!;
    assert.equal(ok.status, 'ok');
    assert.equal(ok.stdout, 'hello there\n');
    // Run without a shell, as the resolved argv: the row keeps it.
    const start = agents[0]!.rows(allowed.id).find((x) => x.kind === 'command-start')!;
    assert.match(String((start.detail?.argv as string[])[0]), /\/echo$/);
  });

  it('an agent not in targets ignores the request: no answer, no audit row', async () => {
    const before = agents[2]!.answered;
    const run = runBroadcast(['a1'], 'true', options());
    assert.equal((await run.result()).results[0]!.status, 'ok');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(agents[2]!.answered, before);
    assert.deepEqual(agents[2]!.rows(run.id), []);
  });

  it('a result forged by another agent (wrong host key) is not used', async () => {
    const impostor = hostSigner(await createIdentity('impostor'));
    // A third party answers every request in a1's and in ghost's name with its own host key.
    const sub = spy.subscribe('shellwire.bcast.*', {
      callback: (_e, msg) => {
        const { body } = decodeRequest(msg.data);
        for (const name of ['a1', 'ghost']) {
          spy.publish(body.replyTo, signBroadcastResult({ v: 1, id: body.id, name, exitCode: 0, signal: null, stdout: Buffer.from('forged\n').toString('base64'), stderr: '', truncated: false, timedOut: false, durationMs: 1 }, impostor));
        }
      },
    });
    await spy.flush();
    writeFileSync(knownHosts, readFileSync(knownHosts, 'utf8') + `nats:ghost ${agents[2]!.daemon.fingerprint}\n`);
    const run = runBroadcast(['a1', 'ghost'], 'echo genuine', options({ timeoutMs: 1000 }));
    const summary = await run.result();
    sub.unsubscribe();
    await spy.flush();
    assert.deepEqual(summary.results.map((r) => [r.host, r.status, r.stdout, r.error?.code ?? null]), [
      ['a1', 'ok', 'genuine\n', null],
      ['ghost', 'host-key', '', ErrorCode.HOST_KEY_CHANGED],
    ]);
    assert.ok(run.dropped >= 2);
  });

  it('an agent not pinned is host-key (strict) or pinned at its first answer (accept-new)', async () => {
    const file = join(home, 'fresh_known_hosts');
    const strict = await runBroadcast(['a1'], 'true', options({ knownHostsFile: file })).result();
    assert.equal(strict.results[0]!.status, 'host-key');
    assert.equal(strict.results[0]!.error?.code, ErrorCode.HOST_KEY_UNKNOWN);
    const added: string[] = [];
    const accept = await runBroadcast(['a1', 'a2'], 'true', options({ knownHostsFile: file, hostKeyPolicy: 'accept-new', onHostKeyAdded: (h) => added.push(h) })).result();
    assert.deepEqual(accept.results.map((r) => r.status), ['ok', 'ok']);
    assert.deepEqual(added.sort(), ['nats:a1', 'nats:a2']);
    // Pinned in the order the answers came: compare as a set.
    assert.deepEqual(readFileSync(file, 'utf8').split('\n').filter(Boolean).sort(), [`nats:a1 ${agents[0]!.daemon.fingerprint}`, `nats:a2 ${agents[1]!.daemon.fingerprint}`]);
  });

  it('a malformed message gets no answer and the agent keeps serving; a silent target is unreachable', async () => {
    const received = agents[0]!.received;
    const answered = agents[0]!.answered;
    const heard: Uint8Array[] = [];
    const sub = spy.subscribe('_INBOX.>', { callback: (_e, msg) => heard.push(msg.data) });
    await spy.flush();
    for (const junk of [Buffer.from('{}'), Buffer.from('SWB1\x01\x00\x00\x00\x02{}'), Buffer.alloc(0), Buffer.from('SWB1\x01\xff\xff\xff\xff')]) spy.publish(`shellwire.bcast.${shardOf('a1')}`, junk);
    await spy.flush();
    assert.ok(await waitFor(() => agents[0]!.received >= received + 4, 3000));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(agents[0]!.answered, answered);
    assert.equal(heard.length, 0);
    sub.unsubscribe();
    await spy.flush();
    const summary = await runBroadcast(['a1', 'nobody'], 'echo still here', options({ timeoutMs: 200 })).result();
    assert.deepEqual(summary.results.map((r) => [r.host, r.status]), [['a1', 'ok'], ['nobody', 'unreachable']]);
  });

  it('keeps at most maxBuffer bytes per stream and says so', async () => {
    const summary = await runBroadcast(['a3'], 'head -c 5000 /dev/zero; head -c 10 /dev/zero >&2', options({ maxBuffer: 1000 })).result();
    const r = summary.results[0]!;
    assert.equal(r.status, 'ok');
    assert.equal(r.stdoutBytes.length, 1000);
    assert.equal(r.stderrBytes.length, 10);
    assert.equal(r.truncated, true);
  });

  it('a command past its timeout is killed and reported timed-out', async () => {
    const summary = await runBroadcast(['a3'], 'sleep 30', options({ timeoutMs: 300 })).result();
    assert.equal(summary.results[0]!.status, 'timed-out');
    assert.equal(summary.results[0]!.error?.code, ErrorCode.COMMAND_TIMED_OUT);
  });

  // Last: it restarts the broker under everyone.
  it('the client\'s NATS connection dropping mid-run is said at once, and agents not answered are lost (maybe ran), never unreachable', async () => {
    const lost: string[] = [];
    const received = agents[0]!.received;
    const run = runBroadcast(['a1', 'a2'], 'sleep 1; echo done', options({ timeoutMs: 3000, onConnectionLost: (m) => lost.push(m) }));
    const result = run.result();
    assert.ok(await waitFor(() => agents[0]!.received > received, 5000));
    const port = nats.port;
    await nats.kill();
    nats = await startNatsServer({ port });
    const summary = await result;
    assert.equal(lost.length, 1, 'told once, at once');
    assert.match(lost[0]!, new RegExp(`dropped during broadcast ${run.id}: answers published while it is down are lost`));
    for (const r of summary.results) {
      assert.ok(r.status === 'ok' || r.status === 'lost', `${r.host}: ${r.status}`);
      if (r.status === 'lost') assert.match(r.error!.message, new RegExp(`the command may have run \\(request ${run.id}`));
    }
  });
});

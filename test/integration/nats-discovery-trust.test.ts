/**
 * Discovery answers are signed by each agent's host key and judged against known_hosts
 * (docs/nats.md, "Discovery and presence"; ATTACK15 #4, #7, #13), with real parts: a real
 * nats-server, real `shellwire serve --no-listen --nats …` agents, the real CLI, and a rogue
 * that is a plain nats.js connection. A second agent under a pinned name, a record relabelled
 * in someone else's name, a record signed by another agent's key, a forged signature and a
 * stale record steer no `role=`/`@group` run and hide no real agent; an unpinned agent is
 * listed `unverified` and selected by patterns only with --accept-new-host; two unpinned keys
 * under one name are a conflict; and a discovery flood gets at most
 * DISCOVERY_ANSWERS_PER_SECOND answers a second while tunnels and broadcasts keep working.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { cleanEnv, scratch, startCli, type CliChild } from '../helpers/fixtures.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import { connectNats } from '../../src/transport/nats-connect.js';
import { natsSubjects } from '../../src/protocol/nats-subjects.js';

const s = scratch('sw-nats-trust-');
const alice = generateKeyPair('alice');
const subjects = natsSubjects();

interface Agent {
  name: string;
  home: string;
  fingerprint: string;
  cli: CliChild;
}

interface Result {
  type: string;
  host?: string;
  status?: string;
}

describe('NATS discovery: signed records judged against known_hosts', { timeout: 180_000 }, () => {
  let nats: NatsServer;
  let rogue: NatsConnection;
  const agents = new Map<string, Agent>();
  let home: string;
  let env: NodeJS.ProcessEnv;

  async function startAgent(name: string, labels: string): Promise<Agent> {
    const agentHome = s.home();
    mkdirSync(join(agentHome, 'server'), { recursive: true, mode: 0o700 });
    writeFileSync(join(agentHome, 'server', 'users.yaml'), `users:\n  alice:\n    allowRoot: true\n    keys: ["${alice.publicLine}"]\n`, { mode: 0o600 });
    const cli = startCli(['serve', '--no-listen', '--no-audit', '--nats', nats.url, '--name', name, '--labels', labels], {
      env: cleanEnv({ SHELLWIRE_HOME: agentHome }), closeStdin: true, timeoutMs: 170_000,
    });
    s.children.push(cli);
    const [, fingerprint] = await cli.waitForStdout(new RegExp(`nats: agent ${name} connected to .*\\(fingerprint (SHA256:\\S+)\\)`), 20_000);
    return { name, home: agentHome, fingerprint: fingerprint!, cli };
  }

  async function stop(agent: Agent): Promise<void> {
    agent.cli.child.kill('SIGTERM');
    await agent.cli.exited;
  }

  const via = () => ['--via', nats.url];
  const results = (stdout: Buffer): Result[] => stdout.toString().trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Result);
  const ranOn = (stdout: Buffer) => results(stdout).filter((r) => r.type === 'result').map((r) => r.host).sort();

  /** Every raw discovery answer now on the wire. */
  async function rawAnswers(): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for await (const m of await rogue.requestMany(subjects.discover, '{}', { strategy: 'stall', stall: 300, maxWait: 3000 })) out.push(m.data);
    return out;
  }
  /** The record's JSON (the first line: the signed body; an unsigned record is all JSON). */
  const bodyOf = (data: Uint8Array) => JSON.parse(Buffer.from(data).toString('utf8').split('\n')[0]!) as { name: string; labels: Record<string, string> };

  /** A rogue that answers every discovery request with `answers()`; stopped by unsubscribing. */
  function answerDiscovery(answers: () => Uint8Array[]): Subscription {
    return rogue.subscribe(subjects.discover, {
      callback: (err, msg) => {
        if (err || !msg.reply) return;
        for (const a of answers()) rogue.publish(msg.reply, a);
      },
    });
  }

  before(async () => {
    nats = await startNatsServer();
    rogue = await connectNats({ servers: nats.url, name: 'rogue' });
    for (const [name, labels] of [['web1', 'role=web,group=web'], ['web2', 'role=web,group=web'], ['db1', 'role=db,group=db']] as const) agents.set(name, await startAgent(name, labels));
    home = s.home();
    writeFileSync(join(home, 'id_ed25519'), alice.privateText, { mode: 0o600 });
    writeFileSync(join(home, 'known_hosts'), [...agents.values()].map((a) => `nats:${a.name} ${a.fingerprint}\n`).join(''));
    env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' });
  });

  after(async () => {
    await rogue?.close();
    for (const a of agents.values()) await stop(a);
    await nats?.stop();
  });

  it('#4: a second agent under the pinned name web2 with role=db: hosts lists the real web2 and warns with both keys; role=db and @db never run on web2', async () => {
    const impostor = await startAgent('web2', 'role=db,group=db,dc=evil');
    try {
      for (let i = 0; i < 3; i++) {
        const listed = await runCli(['hosts', ...via()], { env });
        assert.equal(listed.code, 0, listed.stderr);
        const web2 = listed.stdout.toString().split('\n').filter((l) => /^web2\s/.test(l));
        assert.equal(web2.length, 1, listed.stdout.toString());
        assert.match(web2[0]!, new RegExp(`^web2\\s+${agents.get('web2')!.fingerprint.replace(/[+/]/g, '\\$&')}\\s+verified\\s+@web\\s+group=web,role=web$`));
        assert.ok(listed.stderr.includes(impostor.fingerprint) && listed.stderr.includes(agents.get('web2')!.fingerprint), listed.stderr);
        assert.match(listed.stderr, /WARNING: an agent answered discovery as web2 with key .* but known_hosts pins nats:web2/);
      }
      for (const target of ['role=db', '@db', 'group=d*']) {
        const r = await runCli(['run', ...via(), '-l', 'alice', '--json', target, '--', 'echo ran'], { env });
        assert.deepEqual(ranOn(r.stdout), ['db1'], `${target}: ${r.stdout.toString()} ${r.stderr}`);
      }
      // --tunnel resolves over the same discovery.
      const tunnel = await runCli(['run', ...via(), '--tunnel', '-l', 'alice', '--json', 'role=db', '--', 'echo ran'], { env });
      assert.deepEqual(ranOn(tunnel.stdout), ['db1'], tunnel.stderr);

      // Nothing pinned for web2: both keys listed as a conflict; no pattern selects either, not even with --accept-new-host.
      const other = s.home();
      writeFileSync(join(other, 'id_ed25519'), alice.privateText, { mode: 0o600 });
      writeFileSync(join(other, 'known_hosts'), ['web1', 'db1'].map((n) => `nats:${n} ${agents.get(n)!.fingerprint}\n`).join(''));
      const otherEnv = cleanEnv({ SHELLWIRE_HOME: other, HOME: other, SSH_AUTH_SOCK: '' });
      const json = await runCli(['hosts', ...via(), '--json'], { env: otherEnv });
      const web2s = results(json.stdout).filter((r) => (r as unknown as { name: string }).name === 'web2') as unknown as Array<{ fingerprint: string; trust: string }>;
      assert.deepEqual(web2s.map((r) => r.trust), ['conflict', 'conflict'], json.stdout.toString());
      assert.deepEqual(web2s.map((r) => r.fingerprint).sort(), [agents.get('web2')!.fingerprint, impostor.fingerprint].sort());
      assert.match(json.stderr, /2 agents with different keys answered as web2/);
      const table = await runCli(['hosts', ...via()], { env: otherEnv });
      assert.equal(table.stdout.toString().split('\n').filter((l) => /^web2\s+SHA256:\S+\s+CONFLICT\b/.test(l)).length, 2, table.stdout.toString());
      const accepted = await runCli(['run', ...via(), '-l', 'alice', '--json', '--accept-new-host', 'role=db', '--', 'echo ran'], { env: otherEnv });
      assert.deepEqual(ranOn(accepted.stdout), ['db1'], accepted.stderr);
      assert.match(accepted.stderr, /2 agents with different keys answered as web2 .* no label, group or glob selects it/);
      assert.doesNotMatch(readFileSync(join(other, 'known_hosts'), 'utf8'), /nats:web2/);
    } finally {
      await stop(impostor);
    }
  });

  it('#7: a rogue answering discovery with web2\'s real record relabelled role=db (and an unsigned record) steers nothing', async () => {
    const real = (await rawAnswers()).find((a) => bodyOf(a).name === 'web2');
    assert.ok(real, 'web2 answered');
    const relabel = (data: Uint8Array, labels: Record<string, string>): Uint8Array => {
      const text = Buffer.from(data).toString('utf8');
      const nl = text.indexOf('\n');
      const o = JSON.parse(nl < 0 ? text : text.slice(0, nl)) as { labels: Record<string, string> };
      o.labels = labels;
      return Buffer.from(JSON.stringify(o) + (nl < 0 ? '' : text.slice(nl)));
    };
    // Labels in the canonical (sorted) order: the record decodes, and only the signature tells.
    const forged = relabel(real, { group: 'db', role: 'db' });
    const unsigned = Buffer.from(JSON.stringify({ ...bodyOf(real), labels: { role: 'db', group: 'db' } }));
    const sub = answerDiscovery(() => [forged, unsigned]);
    try {
      await rogue.flush();
      for (let i = 0; i < 3; i++) {
        const r = await runCli(['run', ...via(), '-l', 'alice', '--json', 'role=db', '--', 'echo ran'], { env });
        assert.deepEqual(ranOn(r.stdout), ['db1'], `${r.stdout.toString()} ${r.stderr}`);
      }
      const listed = await runCli(['hosts', ...via(), '-v', '--json', 'web2'], { env });
      assert.deepEqual((results(listed.stdout)[0] as unknown as { labels: unknown }).labels, { role: 'web', group: 'web' });
      assert.match(listed.stderr, /an answer claiming to be web2 .* carries a bad signature/);
      assert.match(listed.stderr, /debug1: an answer that is not a signed shellwire presence record was ignored: no signature line/);
    } finally {
      sub.unsubscribe();
    }
  });

  it('records signed by another agent\'s key, with a bad signature, or stale are ignored; the watcher refuses them too', async () => {
    const { signPresence } = await import('../../src/auth/presence-auth.js');
    const { hostSigner } = await import('../../src/auth/broadcast-auth.js');
    const { readIdentity } = await import('../../src/auth/identity.js');
    const { PresenceWatcher } = await import('../../src/fleet/nats-discovery.js');
    const keyOf = (name: string) => hostSigner(readIdentity(join(agents.get(name)!.home, 'server'))!);
    const record = { name: 'web2', labels: { role: 'db', group: 'db' }, version: 'x', startedAt: new Date().toISOString() };
    // web1 compromised: a good signature by web1's host key, in web2's name.
    const byWeb1 = signPresence(record, keyOf('web1'), Date.now());
    // web2's own key, but signed ten minutes ago (a captured record replayed), and one from the future.
    const stale = signPresence(record, keyOf('web2'), Date.now() - 10 * 60_000);
    const future = signPresence(record, keyOf('web2'), Date.now() + 10 * 60_000);
    // web2's own key, a fresh record, one signature byte changed.
    const flipped = Buffer.from(signPresence(record, keyOf('web2'), Date.now()));
    const sigStart = flipped.indexOf(' ', flipped.indexOf(0x0a)) + 1;
    flipped[sigStart + 3] = flipped[sigStart + 3] === 0x41 ? 0x42 : 0x41;
    const watcher = new PresenceWatcher(rogue);
    const sub = answerDiscovery(() => [byWeb1, stale, future, flipped]);
    try {
      await rogue.flush();
      const r = await runCli(['run', ...via(), '-l', 'alice', '--json', 'role=db', '--', 'echo ran'], { env });
      assert.deepEqual(ranOn(r.stdout), ['db1'], `${r.stdout.toString()} ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`answered discovery as web2 with key ${agents.get('web1')!.fingerprint.replace(/[+/]/g, '\\$&')}`));
      assert.match(r.stderr, /web2 .* was signed at .* too long ago/);
      assert.match(r.stderr, /ahead of this clock/);
      assert.match(r.stderr, /carries a bad signature/);
      // Presence: the same records published on web2's own subject (no permissions here: anyone may).
      for (const m of [byWeb1, stale, future, flipped]) rogue.publish(subjects.presence('web2'), m);
      // web1's genuine announcement under web2's subject: a good record, the wrong subject.
      rogue.publish(subjects.presence('web2'), signPresence({ ...record, name: 'web1' }, keyOf('web1'), Date.now()));
      await rogue.flush();
      assert.ok(await waitFor(() => watcher.agents().filter((a) => a.name === 'web2').length >= 1 && watcher.rejected >= 4, 3_000), `rejected ${watcher.rejected}`);
      const web2 = watcher.agents().filter((a) => a.name === 'web2');
      // byWeb1 is self-consistent: the watcher keeps it apart (web1's fingerprint) for callers to check against their pin.
      assert.deepEqual(web2.map((a) => [a.fingerprint, a.labels.role]).sort(), [[agents.get('web1')!.fingerprint, 'db'], [agents.get('web2')!.fingerprint, 'web']].sort());
      assert.ok(watcher.rejected >= 4, `rejected ${watcher.rejected}`);
    } finally {
      sub.unsubscribe();
      watcher.close();
    }
  });

  it('an unpinned agent: listed unverified, left out of role=/globs with a warning, selected and pinned with --accept-new-host, reached by its plain name', async () => {
    const web3 = await startAgent('web3', 'role=db,group=db');
    try {
      const listed = await runCli(['hosts', ...via()], { env });
      assert.match(listed.stdout.toString(), /^web3\s+SHA256:\S+\s+unverified\s+@db\s+group=db,role=db$/m);
      assert.match(listed.stderr, /\(1 unverified\)/);
      const json = await runCli(['hosts', ...via(), '--json', 'web3'], { env });
      assert.equal((results(json.stdout)[0] as unknown as { trust: string }).trust, 'unverified');
      const skipped = await runCli(['hosts', ...via(), '--fold', 'role=db'], { env });
      assert.equal(skipped.stdout.toString(), 'db1\n');
      for (const target of ['role=db', 'web*', '@db', 'all']) {
        const r = await runCli(['run', ...via(), '-l', 'alice', '--json', target, '--', 'echo ran'], { env });
        assert.ok(!ranOn(r.stdout).includes('web3'), `${target}: ${r.stdout.toString()}`);
        assert.match(r.stderr, /1 agent matching the targets left out, not pinned in known_hosts .*web3 \(SHA256:.*--accept-new-host/, target);
      }
      const accepted = await runCli(['run', ...via(), '-l', 'alice', '--json', '--accept-new-host', 'role=db', '--', 'echo ran'], { env });
      assert.deepEqual(ranOn(accepted.stdout), ['db1', 'web3'], accepted.stderr);
      assert.match(readFileSync(join(home, 'known_hosts'), 'utf8'), new RegExp(`^nats:web3 ${web3.fingerprint.replace(/[+/]/g, '\\$&')}$`, 'm'));
      const pinned = await runCli(['hosts', ...via(), 'web3'], { env });
      assert.match(pinned.stdout.toString(), /^web3\s+SHA256:\S+\s+verified\s/m);
    } finally {
      await stop(web3);
    }
  });

  it('#13: a discovery flood gets at most DISCOVERY_ANSWERS_PER_SECOND answers a second from an agent, which keeps serving; an oversized request is not answered', async () => {
    const { DISCOVERY_ANSWERS_PER_SECOND } = await import('../../src/server/nats-agent.js');
    // Let the buckets fill after the earlier tests.
    await new Promise((r) => setTimeout(r, 1_100));
    const inbox = '_INBOX.flood-test';
    const big = `{"labels":{},"pad":"${'x'.repeat(5000)}"}`;
    let bigAnswers = 0;
    const bigSub = rogue.subscribe(`${inbox}.big`, { callback: () => bigAnswers++ });
    rogue.publish(subjects.discover, big, { reply: `${inbox}.big` });
    await rogue.flush();
    const counts = new Map<string, number>();
    const sub = rogue.subscribe(inbox, {
      callback: (err, msg) => {
        if (err) return;
        const name = bodyOf(msg.data).name;
        counts.set(name, (counts.get(name) ?? 0) + 1);
      },
    });
    const started = Date.now();
    let sent = 0;
    try {
      // During the flood: a tunnel exec and a broadcast (named agents: no discovery) still work.
      const execDuring = runCli(['exec', ...via(), '-l', 'alice', 'web1', '--', 'sleep 1; echo tunnel-ok'], { env });
      const bcastDuring = runCli(['run', ...via(), '-l', 'alice', '--json', 'web1,db1', '--', 'sleep 1; echo ran'], { env });
      while (Date.now() - started < 2_500) {
        for (let i = 0; i < 500; i++) rogue.publish(subjects.discover, '{}', { reply: inbox });
        sent += 500;
        await rogue.flush();
      }
      const exec = await execDuring;
      assert.equal(exec.stdout.toString(), 'tunnel-ok\n', exec.stderr);
      const bcast = await bcastDuring;
      assert.deepEqual(ranOn(bcast.stdout), ['db1', 'web1'], bcast.stderr);
      await rogue.flush();
      const elapsed = (Date.now() - started) / 1000;
      const bound = DISCOVERY_ANSWERS_PER_SECOND * (elapsed + 1);
      for (const name of ['web1', 'web2', 'db1']) {
        const n = counts.get(name) ?? 0;
        assert.ok(n > 0, `${name} answered some`);
        assert.ok(n <= bound, `${name}: ${n} answers to ${sent} requests in ${elapsed.toFixed(1)} s (at most ${bound})`);
      }
      assert.equal(bigAnswers, 0, 'a discovery request over 4096 bytes is not answered');
      for (const a of agents.values()) assert.equal(a.cli.child.exitCode, null);
    } finally {
      sub.unsubscribe();
      bigSub.unsubscribe();
    }
  });
});

/**
 * `shellwire run --via nats://…` through the real CLI against real `shellwire serve --nats`
 * agents (child processes, no TCP port needed for the broadcast) and a real nats-server: the
 * broadcast prints the same grouped output, `--json` results and exit status as the same run
 * over direct TCP and as `--tunnel`; patterns resolve over discovery; a key the agents do not
 * know is refused per host.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { cleanEnv, freePort, scratch, startCli, type CliChild } from '../helpers/fixtures.js';
import { runCli } from '../helpers/daemon.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';

const s = scratch('sw-bcast-cli-');
const alice = generateKeyPair('alice');
const stranger = generateKeyPair('stranger');

interface ServeAgent {
  name: string;
  port: number;
  fingerprint: string;
  cli: CliChild;
}

describe('shellwire run --via nats:// (broadcast) with real agents', { timeout: 120_000 }, () => {
  let nats: NatsServer;
  const agents: ServeAgent[] = [];
  let home: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    nats = await startNatsServer();
    for (const [i, name] of ['db1', 'web1', 'web2'].entries()) {
      const agentHome = s.home();
      mkdirSync(join(agentHome, 'server'), { recursive: true, mode: 0o700 });
      writeFileSync(join(agentHome, 'server', 'users.yaml'), `users:\n  alice:\n    allowRoot: true\n    keys: ["${alice.publicLine}"]\n`, { mode: 0o600 });
      const port = await freePort();
      const cli = startCli(['serve', '--listen', `127.0.0.1:${port}`, '--nats', nats.url, '--name', name, '--labels', `role=${i === 0 ? 'db' : 'web'}`], {
        env: cleanEnv({ SHELLWIRE_HOME: agentHome }), closeStdin: true, timeoutMs: 110_000,
      });
      s.children.push(cli);
      const [, fingerprint] = await cli.waitForStdout(new RegExp(`nats: agent ${name} connected to .*\\(fingerprint (SHA256:\\S+)\\)`), 20_000);
      agents.push({ name, port, fingerprint: fingerprint!, cli });
    }
    home = s.home();
    writeFileSync(join(home, 'id_ed25519'), alice.privateText, { mode: 0o600 });
    writeFileSync(join(home, 'known_hosts'), agents.map((a) => `nats:${a.name} ${a.fingerprint}\n127.0.0.1:${a.port} ${a.fingerprint}\n`).join(''));
    writeFileSync(join(home, 'inventory.yaml'), `hosts:\n${agents.map((a) => `  ${a.name}: { address: 127.0.0.1, port: ${a.port}, user: alice }\n`).join('')}`);
    env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' });
  });

  after(async () => {
    for (const a of agents) {
      a.cli.child.kill('SIGTERM');
      await a.cli.exited;
    }
    await nats?.stop();
  });

  const command = ['--', 'echo "same on all"; echo warn >&2; exit 2'];

  it('prints the same grouped output and exit status as a direct run and as --tunnel', async () => {
    const direct = await runCli(['run', 'db1,web1,web2', ...command], { env });
    const broadcast = await runCli(['run', '--via', nats.url, '-l', 'alice', 'db1,web1,web2', ...command], { env });
    const tunnel = await runCli(['run', '--via', nats.url, '--tunnel', '-l', 'alice', 'db1,web1,web2', ...command], { env });
    assert.equal(direct.code, 1, direct.stderr);
    assert.match(direct.stdout.toString(), /same on all/);
    for (const [what, r] of [['broadcast', broadcast], ['tunnel', tunnel]] as const) {
      assert.equal(r.code, direct.code, `${what}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), direct.stdout.toString(), what);
      // The summary line, minus the time it took.
      assert.equal(r.stderr.replace(/\d+(\.\d+)? ?m?s\b/g, 'T'), direct.stderr.replace(/\d+(\.\d+)? ?m?s\b/g, 'T'), what);
    }
  });

  it('--json gives one result per agent, and labels resolve over discovery', async () => {
    const r = await runCli(['run', '--json', '--via', nats.url, '-l', 'alice', 'role=web', '--', 'echo', 'hi'], { env });
    assert.equal(r.code, 0, r.stderr);
    const records = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { type: string; host?: string; status?: string; stdout?: string });
    const results = records.filter((x) => x.type === 'result');
    assert.deepEqual(results.map((x) => [x.host, x.status, x.stdout]).sort(), [['web1', 'ok', 'hi\n'], ['web2', 'ok', 'hi\n']]);
    assert.equal(records.at(-1)!.type, 'summary');
  });

  it('pacing flags cannot apply to one message: refused, pointing at --tunnel', async () => {
    const r = await runCli(['run', '--via', nats.url, '--batch', '1', '--canary', 'db1', '--', 'true'], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--batch, --canary cannot apply to a broadcast.*--tunnel/);
    const t = await runCli(['run', '--tunnel', 'db1', '--', 'true'], { env });
    assert.equal(t.code, 2);
    assert.match(t.stderr, /--tunnel goes with --via nats:\/\//);
  });

  it('a key the agents do not know: no agent answers it (unreachable, saying the key may be why), exit 1', async () => {
    const otherHome = s.home();
    writeFileSync(join(otherHome, 'id_ed25519'), stranger.privateText, { mode: 0o600 });
    writeFileSync(join(otherHome, 'known_hosts'), agents.map((a) => `nats:${a.name} ${a.fingerprint}\n`).join(''));
    const r = await runCli(['run', '--via', nats.url, '-l', 'alice', '--timeout', '1', 'web1,db1', '--', 'true'], { env: cleanEnv({ SHELLWIRE_HOME: otherHome, HOME: otherHome, SSH_AUTH_SOCK: '' }) });
    assert.equal(r.code, 1);
    assert.match(r.stdout.toString(), /^web1: unreachable: no answer within 6 s \(.*did not accept your key/m);
    assert.match(r.stdout.toString(), /^db1: unreachable: .*request \S+ expires at /m);
    assert.match(r.stderr, /2 unreachable/);
  });
});

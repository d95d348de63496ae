/**
 * Failover on a real three-server nats-server cluster (issue 15, item 5; docs/nats.md
 * "Failover"): agents are real `shellwire serve --no-listen --nats A,B,C` processes, clients
 * the real CLI. The server an agent is connected to is SIGKILLed while commands run through
 * it: each tunnel's command fails with a clear error (or completes), a broadcast completes or
 * reports the agent unreachable, nothing hangs (every wait is bounded), the agent reconnects
 * to another server and serves again within RECONNECT_BOUND_MS, a tunnel between a client and
 * an agent on surviving servers is untouched, discovery lists the agent again, and the killed
 * server, restarted, rejoins without breaking anything.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '../helpers/nats.js';
import { keyFile, type KeyFile } from '../helpers/gateway.js';
import { CLI, waitFor } from '../helpers/daemon.js';
import { cleanEnv, freePort, scratch, startCli, type CliChild } from '../helpers/fixtures.js';

/** docs/nats.md states this bound: an agent whose server died serves again within 5 s. */
const RECONNECT_BOUND_MS = 5_000;
/** A tunnel whose agent's server died ends (error or completion) within this: under the client keepalive's 15 s (3 × 5 s), so the RST must have come. */
const FAIL_BOUND_MS = 10_000;

const files = scratch('sw-nats-cluster-');

interface Agent { name: string; cli: CliChild; fingerprint: string; server: string }

function run(args: string[], home: string, timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv({ SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' }), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

describe('a three-server NATS cluster: the agent\'s server is killed mid-command', { timeout: 60_000 }, () => {
  let cluster: NatsCluster;
  let restarted: NatsServer | null = null;
  let ops: KeyFile;
  let home: string;
  const agents: Agent[] = [];

  async function startAgent(name: string, servers: string): Promise<Agent> {
    const agentHome = files.home();
    mkdirSync(join(agentHome, 'server'), { recursive: true, mode: 0o700 });
    writeFileSync(join(agentHome, 'server', 'users.yaml'), `users:\n  ops:\n    allowRoot: true\n    keys: ["${ops.line}"]\n`, { mode: 0o600 });
    const cli = startCli(['serve', '--no-listen', '--nats', servers, '--name', name, '--no-audit'], { env: cleanEnv({ SHELLWIRE_HOME: agentHome }), closeStdin: true, timeoutMs: 58_000 });
    files.children.push(cli);
    const [, server, fingerprint] = await cli.waitForStdout(new RegExp(`nats: agent ${name} connected to (nats://127\\.0\\.0\\.1:\\d+) \\(fingerprint (SHA256:\\S+)\\)`), 15_000);
    return { name, cli, fingerprint: fingerprint!, server: server! };
  }

  before(async () => {
    cluster = await startNatsCluster(3);
    ops = keyFile(files.home(), 'ops');
    // c1 may pick any of the three; c2 is held to another one, so it survives c1's server.
    const c1 = await startAgent('c1', cluster.urls);
    const other = cluster.servers.find((s) => s.url !== c1.server)!;
    const c2 = await startAgent('c2', other.url);
    agents.push(c1, c2);
    home = files.home();
    writeFileSync(join(home, 'known_hosts'), agents.map((a) => `nats:${a.name} ${a.fingerprint}\n`).join(''));
  });

  after(async () => {
    for (const a of agents) {
      a.cli.child.kill('SIGTERM');
      const t = setTimeout(() => a.cli.kill(), 5_000);
      await a.cli.exited;
      clearTimeout(t);
    }
    await restarted?.stop();
    await cluster?.stop();
  });

  it('fails or completes the commands in flight, reconnects the agent to another server within the bound, keeps other tunnels, and survives the restart', async () => {
    const [c1, c2] = agents as [Agent, Agent];
    const doomed = cluster.servers.find((s) => s.url === c1.server)!;
    const survivor = cluster.servers.find((s) => s.url === c2.server)!;
    const third = cluster.servers.find((s) => s !== doomed && s !== survivor)!;
    assert.notEqual(doomed, survivor);
    const login = ['-i', ops.file, '-l', 'ops'];
    const lines = 'for i in $(seq 1 40); do echo line$i; sleep 0.1; done';
    const marker = join(files.home(), 'broadcast-started');

    // In flight when the server dies: a tunnel through the doomed server itself, a tunnel to c1 via
    // a surviving server, a broadcast to c1 via a surviving server, and a tunnel to c2 (whose server survives).
    const sameServer = startCli(['exec', '--via', doomed.url, ...login, 'c1', '--', lines], { env: cleanEnv({ SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' }), closeStdin: true, timeoutMs: 30_000 });
    const otherServer = startCli(['exec', '--via', third.url, ...login, 'c1', '--', lines], { env: cleanEnv({ SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' }), closeStdin: true, timeoutMs: 30_000 });
    const untouched = startCli(['exec', '--via', survivor.url, ...login, 'c2', '--', lines], { env: cleanEnv({ SHELLWIRE_HOME: home, HOME: home, SSH_AUTH_SOCK: '' }), closeStdin: true, timeoutMs: 30_000 });
    const broadcast = run(['run', '--via', third.url, ...login, '--timeout', '8', 'c1', '--', `touch ${marker}; sleep 1; echo broadcast-done`], home, 30_000);
    files.children.push(sameServer, otherServer, untouched);
    await sameServer.waitForStdout(/line2\n/, 10_000);
    await otherServer.waitForStdout(/line2\n/, 10_000);
    await untouched.waitForStdout(/line2\n/, 10_000);
    assert.ok(await waitFor(() => existsSync(marker), 10_000), 'the broadcast command started on c1');

    const killedAt = Date.now();
    await doomed.kill();

    // The two tunnels to c1: a clear error (or, at most, the whole output), never a hang.
    for (const [what, cli] of [['through the killed server', sameServer], ['through a surviving server', otherServer]] as const) {
      const { code, signal } = await Promise.race([cli.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`exec to c1 ${what} still running ${FAIL_BOUND_MS} ms after the kill; stdout ${cli.stdout().toString().slice(-40)} stderr ${cli.stderr()}; agent: ${c1.cli.stdout().toString().slice(-1500)} ${c1.cli.stderr().slice(-1500)}`)), FAIL_BOUND_MS))]);
      assert.equal(signal, null, `exec ${what} ended by itself`);
      const out = cli.stdout().toString();
      if (code === 0) assert.match(out, /line40\n$/, `exec ${what}: exit 0 only with all the output`);
      else {
        assert.match(cli.stderr(), /SW_ERR_TUNNEL_BROKEN|NATS tunnel .*(dropped|reconnected|closed)/, `exec ${what}: a clear error (exit ${code}):\n${cli.stderr()}`);
        assert.doesNotMatch(out, /line40/, `exec ${what} failed, so it cannot have all the output`);
        assert.match(out, /^(line\d+\n)*$/, `exec ${what}: what arrived is whole lines in order, never corrupted`);
      }
    }

    // The broadcast: the result (published after the agent reconnected) or `unreachable`, within its timeout + 5 s.
    const b = await broadcast;
    assert.equal(b.signal, null, `run --via ended by itself:\n${b.stderr}`);
    if (b.code === 0) assert.match(b.stdout, /broadcast-done/);
    else assert.match(b.stdout + b.stderr, /unreachable/, `run: exit ${b.code}, stdout ${b.stdout}, stderr ${b.stderr}`);

    // c1 serves again, through any surviving server, within the bound.
    let back: Awaited<ReturnType<typeof run>> | null = null;
    while (Date.now() - killedAt < RECONNECT_BOUND_MS + 10_000) {
      back = await run(['exec', '--via', survivor.url, ...login, 'c1', '--', 'echo back'], home, 10_000);
      if (back.code === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const servedAgainMs = Date.now() - killedAt;
    assert.equal(back?.code, 0, back?.stderr);
    assert.equal(back!.stdout, 'back\n');
    await c1.cli.waitForStderr(/nats: reconnected/, 1_000);
    process.stdout.write(`# c1 served again ${servedAgainMs} ms after its server was killed (bound ${RECONNECT_BOUND_MS} ms)\n`);
    assert.ok(servedAgainMs <= RECONNECT_BOUND_MS, `c1 served again after ${servedAgainMs} ms (bound ${RECONNECT_BOUND_MS} ms)`);

    // The tunnel between surviving servers never noticed.
    const u = await untouched.exited;
    assert.equal(u.code, 0, untouched.stderr());
    assert.equal(untouched.stdout().toString(), Array.from({ length: 40 }, (_, i) => `line${i + 1}\n`).join(''));

    // Discovery lists c1 again (through either surviving server).
    for (const s of [survivor, third]) {
      const listed = await run(['hosts', '--via', s.url, '--json'], home);
      assert.equal(listed.code, 0, listed.stderr);
      const names = listed.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { name: string }).name);
      assert.deepEqual(names.sort(), ['c1', 'c2'], `hosts --via ${s.url}`);
    }

    // The killed server comes back on its ports and rejoins; everything works through it too.
    await doomed.stop();
    const routes = cluster.servers.filter((s) => s !== doomed).map((s) => `nats-route://127.0.0.1:${s.clusterPort}`);
    restarted = await startNatsServer({ port: doomed.port, cluster: { port: doomed.clusterPort!, routes } });
    assert.ok(await waitFor(() => (restarted!.log().match(/Route connection created/g) ?? []).length >= 2, 10_000), restarted.log());
    for (const a of [c1, c2]) {
      let r: Awaited<ReturnType<typeof run>> | null = null;
      // Route interest propagates asynchronously: a few tries, bounded.
      for (let i = 0; i < 20 && r?.code !== 0; i++) {
        r = await run(['exec', '--via', restarted.url, ...login, a.name, '--', 'echo via-restarted'], home, 10_000);
        if (r.code !== 0) await new Promise((res) => setTimeout(res, 200));
      }
      assert.equal(r?.code, 0, `exec to ${a.name} through the restarted server: ${r?.stderr}`);
      assert.equal(r!.stdout, 'via-restarted\n');
    }
    const again = await run(['run', '--via', restarted.url, ...login, 'c1,c2', '--', 'echo ok'], home);
    assert.equal(again.code, 0, again.stderr);
    const still = await run(['exec', '--via', survivor.url, ...login, 'c1', '--', 'echo still'], home);
    assert.equal(still.code, 0, still.stderr);
    assert.equal(c1.cli.child.exitCode, null, 'the agent kept running throughout');
  });
});

describe('a leaf node (a site behind NAT connects out to the hub)', { timeout: 60_000 }, () => {
  it('reaches an agent on the leaf through the hub: discovery, exec and a broadcast', async () => {
    const leafPort = await freePort();
    // docs/nats.md "Leaf nodes": the hub listens for leaf nodes; the site's server dials out to it.
    const hub = await startNatsServer({ config: `leafnodes { listen: "127.0.0.1:${leafPort}" }` });
    const site = await startNatsServer({ config: `leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${leafPort}" } ] }` }).catch(async (err: unknown) => {
      await hub.stop();
      throw err;
    });
    let agent: CliChild | null = null;
    try {
      assert.ok(await waitFor(() => /Leafnode connection created/.test(site.log()), 10_000), site.log());
      const ops = keyFile(files.home(), 'ops');
      const agentHome = files.home();
      mkdirSync(join(agentHome, 'server'), { recursive: true, mode: 0o700 });
      writeFileSync(join(agentHome, 'server', 'users.yaml'), `users:\n  ops:\n    allowRoot: true\n    keys: ["${ops.line}"]\n`, { mode: 0o600 });
      agent = startCli(['serve', '--no-listen', '--nats', site.url, '--name', 'site1', '--no-audit'], { env: cleanEnv({ SHELLWIRE_HOME: agentHome }), closeStdin: true, timeoutMs: 58_000 });
      files.children.push(agent);
      const [, fingerprint] = await agent.waitForStdout(/nats: agent site1 connected to .* \(fingerprint (SHA256:\S+)\)/, 15_000);
      const home = files.home();
      writeFileSync(join(home, 'known_hosts'), `nats:site1 ${fingerprint}\n`);
      let listed: Awaited<ReturnType<typeof run>> | null = null;
      // Interest crosses the leaf connection asynchronously: a few tries, bounded.
      for (let i = 0; i < 20 && !/^site1\b/m.test(listed?.stdout ?? ''); i++) listed = await run(['hosts', '--via', hub.url], home);
      assert.match(listed!.stdout, /^site1\s+SHA256:/m, listed!.stderr);
      const exec = await run(['exec', '--via', hub.url, '-i', ops.file, '-l', 'ops', 'site1', '--', 'echo through-the-leaf'], home);
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(exec.stdout, 'through-the-leaf\n');
      const bcast = await run(['run', '--via', hub.url, '-i', ops.file, '-l', 'ops', 'site1', '--', 'echo broadcast'], home);
      assert.equal(bcast.code, 0, bcast.stderr);
      assert.match(bcast.stdout, /broadcast/);
    } finally {
      if (agent) {
        agent.child.kill('SIGTERM');
        const t = setTimeout(() => agent!.kill(), 5_000);
        await agent.exited;
        clearTimeout(t);
      }
      await site.stop();
      await hub.stop();
    }
  });
});

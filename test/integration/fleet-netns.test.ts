/**
 * A host that becomes unreachable mid-run (its link is brought down, so no RST, no FIN —
 * just silence) is reported as lost, and the run still ends. The daemon runs in its own
 * network namespace behind a veth pair with link-local 169.254.x.x addresses; the test
 * skips (with the reason) where `ip netns` is not permitted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../helpers/daemon.js';
import { runOn } from '../../src/fleet/run-on.js';
import type { FleetHost } from '../../src/fleet/inventory.js';
import { startFleet } from './fleet-helpers.js';

const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });

test('a host whose link drops mid-run is reported lost; the run ends', async (t) => {
  const id = process.pid % 10_000;
  const ns = `swfleet${id}`;
  const outer = `swo${id}`;
  const inner = `swi${id}`;
  const subnet = `169.254.${100 + (process.pid % 100)}`;
  const probe = ip('netns', 'add', ns);
  if (probe.status !== 0) {
    t.skip(`ip netns is not permitted here: ${(probe.stderr || probe.error?.message || '').trim()}`);
    return;
  }
  const fleet = await startFleet([{ name: 'local', role: 'l' }], 40);
  let daemon: ReturnType<typeof spawn> | null = null;
  try {
    for (const args of [
      ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner],
      ['link', 'set', inner, 'netns', ns],
      ['addr', 'add', `${subnet}.1/30`, 'dev', outer],
      ['link', 'set', outer, 'up'],
      ['-n', ns, 'addr', 'add', `${subnet}.2/30`, 'dev', inner],
      ['-n', ns, 'link', 'set', inner, 'up'],
      ['-n', ns, 'link', 'set', 'lo', 'up'],
    ]) {
      const r = ip(...args);
      assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
    }
    const port = 50_123;
    daemon = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, 'serve', '--listen', `${subnet}.2:${port}`, '--state-dir', join(fleet.root, 'server'), '--log-level', 'warn'], {
      env: { ...fleet.env, ROLE: 'far' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`namespaced daemon did not start: ${out}`)), 15_000);
      daemon!.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('fingerprint')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    appendFileSync(join(fleet.home, 'known_hosts'), `${subnet}.2:${port} ${fleet.fingerprint}\n`);
    const local = fleet.daemons[0]!;
    const hosts: FleetHost[] = [
      { name: 'far', address: `${subnet}.2`, port, labels: {}, groups: [] },
      { name: 'local', address: local.host, port: local.port, labels: {}, groups: [] },
    ];
    const started = performance.now();
    // No --timeout: only keepalive (300 ms interval, 3 misses) can notice the silence.
    const run = runOn(hosts, 'if [ "$ROLE" = far ]; then echo started; sleep 30; echo never; else echo done; fi', { connect: { token: fleet.token, home: fleet.home, keepaliveMs: 300 } });
    let cut = false;
    for await (const event of run) {
      if (event.type === 'output' && event.host === 'far' && !cut) {
        cut = true;
        assert.equal(ip('link', 'set', outer, 'down').status, 0);
      }
    }
    const summary = await run.result();
    const elapsed = performance.now() - started;
    const far = summary.results.find((r) => r.host === 'far')!;
    assert.equal(far.status, 'lost', JSON.stringify(far));
    assert.match(far.error!.message, /No answer from .* the peer or the network is gone/);
    assert.equal(far.stdout, 'started\n');
    assert.ok(elapsed < 5_000, `ended after ${elapsed} ms, long before the 30 s command would have`);
    assert.equal(summary.unreachable, 1);
    assert.equal(summary.results.find((r) => r.host === 'local')!.stdout, 'done\n');
  } finally {
    daemon?.kill('SIGKILL');
    ip('link', 'del', outer);
    ip('netns', 'del', ns);
    await fleet.stop();
  }
});

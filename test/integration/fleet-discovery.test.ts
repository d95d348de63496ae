/**
 * UDP discovery on loopback: `serve --announce` answers, `discover` lists, trusts (only when
 * told) and writes the inventory; probes are rate-limited per source and anything that is
 * not a probe is ignored.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { runCli } from '../helpers/daemon.js';
import { Announcer, discover, encodeProbe } from '../../src/fleet/discovery.js';
import { startFleet, freePortOn, type TestFleet } from './fleet-helpers.js';

let fleet: TestFleet;

before(async () => {
  fleet = await startFleet([{ name: 'a', role: 'x', announce: true }, { name: 'b', role: 'y', announce: true }], 20);
});

after(async () => {
  await fleet?.stop();
});

test('discover finds announcing daemons; trusts them only with --accept-new-host; writes the inventory; run works', async () => {
  const home = join(fleet.root, 'fresh-home');
  mkdirSync(home, { recursive: true });
  const env = { ...fleet.env, SHELLWIRE_HOME: home };
  const inventory = join(home, 'inventory.yaml');
  writeFileSync(inventory, '# my hosts\nhosts:\n  existing: { address: 127.0.0.99 }\n');
  const [a, b] = fleet.daemons;
  const args = ['discover', '--address', a!.host, '--address', b!.host, '--address', '127.0.0.29', '--port', String(a!.port), '--timeout', '0.5'];
  // b listens on another port: probe each port separately (discovery answers on the daemon's own port number).
  const first = await runCli(args, { env });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout.toString(), new RegExp(`${a!.host.replace(/\./g, '\\.')}:${a!.port}  ${fleet.fingerprint.replace(/[+/]/g, '\\$&')}  new`));
  assert.match(first.stderr, /1 daemon\(s\) answered out of 3/);
  assert.match(first.stderr, /not trusted; rerun with --accept-new-host/);
  assert.throws(() => readFileSync(join(home, 'known_hosts'), 'utf8'), /ENOENT/, 'nothing trusted without consent');

  const second = await runCli([...args, '--accept-new-host', '--write-inventory', '--json'], { env });
  assert.equal(second.code, 0, second.stderr);
  const found = JSON.parse(second.stdout.toString().trim());
  assert.equal(found.port, a!.port);
  assert.equal(found.fingerprint, fleet.fingerprint);
  assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), `${a!.host}:${a!.port} ${fleet.fingerprint}\n`);
  const written = readFileSync(inventory, 'utf8');
  assert.match(written, /^# my hosts\n/, 'comments survive');
  assert.match(written, new RegExp(`address: ${a!.host.replace(/\./g, '\\.')}\\n\\s+port: ${a!.port}`));

  const run = await runCli(['run', 'discovered=true', '--', 'echo $ROLE'], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout.toString(), /\(1\): x\n$/);
});

test('the responder rate-limits per source, ignores non-probes, and never answers more bytes than it got', async () => {
  const host = '127.0.0.30';
  const port = await freePortOn(host);
  const announcer = await Announcer.start({ host, port, fingerprint: fleet.fingerprint, name: 'box', ratePerSourcePerSecond: 5, ratePerSecond: 100 });
  try {
    const found = await discover({ addresses: [host], port, timeoutMs: 200 });
    assert.equal(found.length, 1);
    assert.equal(found[0]!.name, 'box');

    const socket = createSocket('udp4');
    let answers = 0;
    let largest = 0;
    socket.on('message', (msg) => {
      answers++;
      largest = Math.max(largest, msg.length);
    });
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const probe = encodeProbe('00112233aabbccdd');
    for (let i = 0; i < 50; i++) socket.send(probe, port, host);
    socket.send(Buffer.from('sh -c "id"'), port, host);
    socket.send(Buffer.alloc(4096), port, host);
    await new Promise((r) => setTimeout(r, 300));
    socket.close();
    assert.ok(answers >= 5 && answers <= 12, `answers=${answers}: burst of 10 (2× rate), plus what 300 ms refills`);
    assert.ok(announcer.stats.rateLimited >= 38, JSON.stringify(announcer.stats));
    assert.equal(announcer.stats.ignored, 2);
    assert.ok(largest <= probe.length, 'no amplification');
  } finally {
    await announcer.close();
  }
});

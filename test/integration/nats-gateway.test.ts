/**
 * The gateway reaches an inventory host through NATS (`via: nats://…` in its inventory): its
 * HostPool opens a tunnel to the agent instead of dialling TCP, pins the agent's key under
 * `nats:NAME` in its own known_hosts, and logs in with its key as for any host. The agent has
 * no TCP port.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { connect } from '../../src/client/connect.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { Server } from '../../src/server/server.js';
import { startNatsAgent } from '../../src/server/nats-agent-start.js';
import type { NatsAgent } from '../../src/server/nats-agent.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { hostUsersText, keyFile, type KeyFile } from '../helpers/gateway.js';

let dir: string;
let nats: NatsServer;
let host: Server;
let agent: NatsAgent;
let gateway: Gateway;
let gwPort: number;
let alice: KeyFile;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shellwire-natsgw-'));
  nats = await startNatsServer();
  alice = keyFile(dir, 'alice');
  const gwDir = join(dir, 'gateway');
  const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
  // The agent: a daemon that never listens on TCP, only through NATS.
  host = await Server.create({ stateDir: join(dir, 'host'), audit: false });
  writeFileSync(join(host.stateDir, 'users.yaml'), hostUsersText([gwKey], ['alice']));
  assert.ok(host.reloadUsers().ok);
  agent = await startNatsAgent({ server: host, servers: nats.url, name: 'edge1', labels: { site: 'ams' }, log: pino({ level: 'silent' }), version: 'test' });
  const inventory = join(dir, 'inventory.yaml');
  writeFileSync(inventory, `hosts:\n  edge1: { via: "${nats.url}", groups: [edge] }\n`);
  writeFileSync(join(gwDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, '    hosts: ["@edge"]'].join('\n') + '\n');
  gateway = await Gateway.create({ stateDir: gwDir, host: '127.0.0.1', port: 0, inventory, hostConnectTimeoutMs: 5_000 });
  gwPort = (await gateway.listen()).port;
});
after(async () => {
  await gateway?.close(500);
  await agent?.close();
  await agent?.nc.close();
  await host?.close(500);
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('gateway → NATS → agent: exec byte-exact, the agent key pinned under nats:NAME in the gateway\'s known_hosts', async () => {
  const conn = await connect('edge1', { via: { user: 'alice', host: '127.0.0.1', port: gwPort }, identity: alice.file, fingerprint: gateway.server.identity.fingerprint, env: {} });
  try {
    const r = await conn.exec(['/bin/sh', '-c', "printf 'a\\377\\000b'; exit 3"], { reject: false });
    assert.deepEqual(r.stdoutBytes, Buffer.from([0x61, 0xff, 0x00, 0x62]));
    assert.equal(r.exitCode, 3);
    const input = Buffer.from(Array.from({ length: 600_000 }, (_, i) => (i * 13) % 256));
    const cat = await conn.exec('cat', { stdin: input });
    assert.ok(cat.stdoutBytes.equals(input), 'stdin came back byte for byte through gateway and NATS');
  } finally {
    await conn.close();
  }
  const pinned = readFileSync(join(dir, 'gateway', 'known_hosts'), 'utf8');
  assert.match(pinned, new RegExp(`^nats:edge1 ${host.identity.fingerprint.replace(/[+/]/g, (c) => `\\${c}`)}$`, 'm'));
  assert.ok(agent.tunnelCount >= 1, 'the gateway holds its pooled tunnel');
});

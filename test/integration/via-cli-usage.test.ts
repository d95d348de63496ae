/**
 * `--via` usage errors and advice in the real CLI (issue 13, attack finding 8): a host behind
 * a gateway is an inventory name, so USER@HOST, HOST:PORT and [IPv6]:PORT are usage errors
 * (exit 2) found before anything is dialled — the gateway here is a closed port, which would
 * give 255 if it were dialled — whether --via is typed or comes from the inventory. A gateway
 * that does not answer is named as one (`shellwire gateway`, port 50008), and the advice for a
 * group keeps --via.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/daemon.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';

describe('--via: usage errors before connecting, and advice that names the gateway', { timeout: 60_000 }, () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let closedPort: number;
  let inventory: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shellwire-via-usage-'));
    const home = join(dir, 'home');
    mkdirSync(home, { mode: 0o700 });
    // A port that was just free: connecting to it is refused (it would exit 255).
    const probe: Server = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, [`via: alice@127.0.0.1:${closedPort}`, 'hosts:', '  web01: { address: 127.0.0.2, groups: [web] }'].join('\n') + '\n');
    const { SHELLWIRE_TOKEN: _t, ...rest } = process.env;
    env = { ...rest, SHELLWIRE_HOME: home };
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const target of ['web01:52007', 'deploy@web01', '[::1]:52007', '127.0.0.1:52007']) {
    it(`exec --via GW ${target} exits 2 before connecting`, async () => {
      const r = await runCli(['exec', '--via', `alice@127.0.0.1:${closedPort}`, target, '--', 'true'], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /gateway/);
      assert.doesNotMatch(r.stderr, /refused|running there/);
    });
  }

  it('the inventory\'s via: refuses USER@HOST and HOST:PORT the same way (exec, ls)', async () => {
    for (const args of [['exec', 'deploy@web01', '--', 'true'], ['exec', 'web01:50007', '--', 'true'], ['ls', 'deploy@web01:/tmp']]) {
      const r = await runCli([args[0]!, '--inventory', inventory, ...args.slice(1)], { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
  });

  it('a gateway that does not answer is named as a gateway (shellwire gateway, 50008)', async () => {
    const key = join(dir, 'id_ed25519');
    writeFileSync(key, generateKeyPair('alice@test').privateText, { mode: 0o600 });
    const r = await runCli(['exec', '-i', key, '--via', `alice@127.0.0.1:${closedPort}`, 'web01', '--', 'true'], { env });
    assert.equal(r.code, 255, r.stderr);
    assert.match(r.stderr, /Connection refused/);
    assert.match(r.stderr, /shellwire gateway/);
    assert.match(r.stderr, /50008/);
    assert.doesNotMatch(r.stderr, /shellwire serve|50007/);
  });

  it('exec --via GW @web suggests run with the same --via', async () => {
    const r = await runCli(['exec', '--via', 'alice@bastion', '@web', '--', 'uptime'], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /shellwire run --via alice@bastion '?@web'? -- uptime/);
  });
});

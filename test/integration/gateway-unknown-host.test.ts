/**
 * A host name the gateway does not know (issue 14 review, finding 8). The gateway gives one
 * refusal for "not in the inventory" and "not permitted" (an operator cannot probe which hosts
 * exist), so it must read true in both cases: for a user whose `hosts` is ["*"] the old
 * "not permitted … hosts is ["*"]" contradicted itself. Checked on a relay, the fan-out put and
 * the real CLI (`run --via`), with a real daemon behind a real gateway.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import type { Connection } from '../../src/client/connection.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { runCli, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { hostUsersText, keyFile, setHostUsers, type KeyFile } from '../helpers/gateway.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';

const REFUSAL = 'Denied: host "nosuch" is not one alice may reach through this gateway (not in its inventory, or not in users.alice.hosts ["*"] of its users.yaml); list the hosts alice may reach with: shellwire hosts --via GATEWAY.';

describe('gateway: an unknown host name', { timeout: 60_000 }, () => {
  let dir: string;
  let daemon: TestDaemon;
  let gateway: Gateway;
  let gwPort: number;
  let alice: KeyFile;

  before(async () => {
    dir = tempDir('shellwire-gwunknown-');
    alice = keyFile(dir, 'alice');
    const gwDir = join(dir, 'gw');
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    daemon = await startDaemon();
    setHostUsers(daemon, hostUsersText([gwKey], ['alice']));
    const inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, `hosts:\n  web01: { address: 127.0.0.1, port: ${daemon.port} }\n`);
    writeFileSync(join(gwDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, '    hosts: ["*"]', ''].join('\n'));
    gateway = await Gateway.create({ stateDir: gwDir, host: '127.0.0.1', port: 0, inventory, audit: { record: () => {} } });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    await daemon?.stop();
    removeDir(dir);
  });

  const login = (): Promise<Connection> =>
    connect({ user: 'alice', host: '127.0.0.1', port: gwPort }, { identity: alice.file, fingerprint: gateway.server.identity.fingerprint, env: {} });

  it('a relay and a fan-out put say it is not one she may reach, without contradicting hosts ["*"]', async () => {
    const local = join(dir, 'f.txt');
    writeFileSync(local, 'x');
    const conn = await login();
    try {
      await assert.rejects(conn.relay('nosuch').exec('true'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SW_ERR_DENIED');
        assert.ok(err.message.endsWith(REFUSAL), err.message);
        return true;
      });
      const result = await conn.putToHosts(local, ['web01', 'nosuch'], '/tmp/');
      assert.equal(result.hosts[1]!.error?.message, REFUSAL);
    } finally {
      await conn.close();
    }
  });

  it('the CLI: run --via says the same, and how to list her hosts', async () => {
    const home = join(dir, 'operator');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    writeFileSync(join(home, 'known_hosts'), `127.0.0.1:${gwPort} ${gateway.server.identity.fingerprint}\n`);
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, NO_COLOR: '1' });
    const r = await runCli(['run', '-i', alice.file, '--via', `alice@127.0.0.1:${gwPort}`, 'nosuch', 'true'], { env });
    assert.notEqual(r.code, 0);
    const out = `${r.stdout.toString()}${r.stderr}`;
    // The CLI resolves the name against the hosts the gateway lists for her: the same wording,
    // and never "write HOST:PORT" (an address names no host through a gateway).
    const via = `alice@127.0.0.1:${gwPort}`;
    assert.ok(out.includes(`host "nosuch" is not one you may reach through the gateway ${via} (it is not in the gateway's inventory, or your users.yaml hosts there do not include it); list them with: shellwire hosts --via ${via}`), out);
    assert.doesNotMatch(out, /HOST:PORT|is not permitted for alice/);
  });
});

/** `run` logs in with the inventory's per-host user and key (no token anywhere). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli } from '../helpers/daemon.js';
import { cleanEnv, tempDir } from '../helpers/fixtures.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';

test('inventory user + identity: run logs in with the host\'s key', async () => {
  const d = await startDaemon();
  try {
    const dir = tempDir();
    const pair = generateKeyPair('fleet');
    writeFileSync(join(dir, 'fleet_key'), pair.privateText, { mode: 0o600 });
    writeFileSync(join(d.server.stateDir, 'users.yaml'), `users:\n  deployer:\n    allowRoot: true\n    keys: ["${pair.publicLine}"]\n`);
    assert.ok(d.server.reloadUsers().ok);
    writeFileSync(join(dir, 'inventory.yaml'), `hosts:\n  box1: { address: 127.0.0.1, port: ${d.port}, user: deployer, identity: fleet_key }\n`);
    writeFileSync(join(dir, 'known_hosts'), `127.0.0.1:${d.port} ${d.fingerprint}\n`);
    const env = cleanEnv({ SHELLWIRE_HOME: dir, HOME: dir });
    const r = await runCli(['run', '--inventory', join(dir, 'inventory.yaml'), '--json', 'box1', '--', 'echo', 'hi from $USER'], { env });
    assert.equal(r.code, 0, r.stderr);
    const result = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l)).find((o) => o.type === 'result' || o.exitCode !== undefined);
    assert.ok(result, r.stdout.toString());
    assert.equal(result.exitCode, 0);
    assert.match(JSON.stringify(result), /hi from/);
    const wrong = generateKeyPair('other');
    writeFileSync(join(dir, 'fleet_key'), wrong.privateText, { mode: 0o600 });
    const refused = await runCli(['run', '--inventory', join(dir, 'inventory.yaml'), 'box1', '--', 'true'], { env });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout.toString() + refused.stderr, /not authorized for user "deployer"/);
  } finally {
    await d.stop();
  }
});

/**
 * The gateway's additions to shared formats: users.yaml's gateway-only fields (`hosts`, `as`,
 * `record`), refused by a daemon with a message that says where they belong; and OPEN's
 * `host` / `onBehalfOf` (docs/protocol.md "Gateway"), checked by the decoder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseUsersConfig } from '../../src/auth/users-config.js';
import { parseInventory } from '../../src/fleet/inventory.js';
import { checkHost, permittedHosts } from '../../src/gateway/gateway-policy.js';

const GATEWAY_USER = 'users:\n  alice:\n    allowRoot: true\n    hosts: ["@web", "!web02"]\n    as: deploy\n    record: { input: true }\n';

test("a daemon's users.yaml refuses the gateway fields, naming each and where it belongs", () => {
  assert.throws(() => parseUsersConfig(GATEWAY_USER, '/srv/users.yaml'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'SW_ERR_BAD_CONFIG');
    for (const field of ['hosts', 'as', 'record']) {
      assert.match(err.message, new RegExp(`users\\.alice\\.${field}: "${field}" belongs in a gateway's users\\.yaml`));
    }
    return true;
  });
});

test("a gateway's users.yaml takes them, with deny-by-default hosts and recording off", () => {
  const config = parseUsersConfig(GATEWAY_USER + '  bob:\n    allowRoot: true\n', 'g.yaml', { gateway: true });
  assert.deepEqual(config.users.get('alice')!.gateway, { hosts: ['@web', '!web02'], as: 'deploy', record: { input: true, output: false }, recordings: 'own', audit: 'own' });
  assert.deepEqual(config.users.get('bob')!.gateway, { hosts: [], as: 'bob', record: { input: false, output: false }, recordings: 'own', audit: 'own' });
  assert.throws(
    () => parseUsersConfig('users:\n  a:\n    allowRoot: true\n    hosts: "@web"\n    as: "x y"\n    record: { input: 1, video: true }\n    recordings: everyone\n', 'g.yaml', { gateway: true }),
    (err: Error) => {
      assert.match(err.message, /users\.a\.hosts: must be a list of target expressions/);
      assert.match(err.message, /users\.a\.as: must be a user name/);
      assert.match(err.message, /users\.a\.record\.input: must be true or false/);
      assert.match(err.message, /users\.a\.record\.video: unknown field/);
      assert.match(err.message, /users\.a\.recordings: must be "own" .* or "all"/);
      return true;
    },
  );
});

test('users.yaml `audit: own|all` (whose audit rows the web console shows) is a gateway-only field', () => {
  const config = parseUsersConfig('users:\n  a:\n    allowRoot: true\n    audit: all\n', 'g.yaml', { gateway: true });
  assert.equal(config.users.get('a')!.gateway?.audit, 'all');
  assert.throws(() => parseUsersConfig('users:\n  a:\n    allowRoot: true\n    audit: everyone\n', 'g.yaml', { gateway: true }), /users\.a\.audit: must be "own" .* or "all"/);
  assert.throws(() => parseUsersConfig('users:\n  a:\n    allowRoot: true\n    audit: all\n', 'd.yaml'), /"audit" belongs in a gateway's users\.yaml/);
});

test('hosts resolve over the inventory only, and every refusal reads the same', () => {
  const inventory = parseInventory('hosts:\n  web01: { address: 10.0.0.1, groups: [web] }\n  web02: { address: 10.0.0.2, groups: [web] }\n  db01: { address: 10.0.0.3 }\n', 'inv.yaml');
  const alice = parseUsersConfig(GATEWAY_USER.replace('"!web02"', '"!web02", "10.9.9.9:50007"'), 'g.yaml', { gateway: true }).users.get('alice')!;
  assert.deepEqual(permittedHosts(alice, inventory).map((h) => h.name), ['web01']);
  assert.deepEqual(checkHost(alice, 'web01', inventory), { allowed: true, host: inventory.byName.get('web01'), as: 'deploy' });
  const reasons = ['web02', 'db01', 'nope', '10.9.9.9:50007'].map((name) => {
    const d = checkHost(alice, name, inventory);
    assert.equal(d.allowed, false);
    return (d as { reason: string }).reason.replace(name, 'X');
  });
  assert.equal(new Set(reasons).size, 1, reasons.join('\n'));
});


test("a gateway's operator needs no runAs or allowRoot: nothing of hers runs on the gateway", () => {
  // On a daemon run as root the same entry is refused (commands would run as root).
  const entry = 'users:\n  alice:\n    channels: [exec, pty]\n    hosts: ["@web"]\n';
  const config = parseUsersConfig(entry, 'g.yaml', { gateway: true });
  assert.deepEqual(config.users.get('alice')!.gateway?.hosts, ['@web']);
  if (process.getuid?.() === 0) assert.throws(() => parseUsersConfig(entry.replace('    hosts: ["@web"]\n', ''), 'd.yaml'), /commands would run as root/);
});

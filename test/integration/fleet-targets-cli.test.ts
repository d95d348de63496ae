/**
 * Target expressions through the real CLI: the README's `@web&dc=east` and its siblings,
 * and a selection that matches nothing — an error (exit 2, saying what matched what)
 * for `hosts`, `run` and the library's runOn, unless --allow-empty / allowEmpty.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/daemon.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';
import { runOn } from '../../src/fleet/run-on.js';
import { parseInventory } from '../../src/fleet/inventory.js';
import { NoHostsMatchedError } from '../../src/fleet/targets.js';
import { startFleet, type TestFleet } from './fleet-helpers.js';

/** The README's inventory, with closed loopback addresses: these tests never connect. */
const README_INVENTORY = `defaults: { port: 50007 }
hosts:
  web[01-12]:
    address: 127.0.77.[11-22]
    labels: { role: web, dc: east }
    groups: [web, prod]
  web13: { address: 127.0.77.23, labels: { role: web, dc: west }, groups: [web] }
  db03: { address: 127.0.77.30, port: 50010, labels: { role: db, dc: east } }
groups:
  prod: [db03, "@web"]
`;

let dir: string;
let inventory: string;
let env: NodeJS.ProcessEnv;

before(() => {
  dir = tempDir('shellwire-targets-');
  inventory = join(dir, 'inventory.yaml');
  writeFileSync(inventory, README_INVENTORY);
  env = cleanEnv({ SHELLWIRE_HOME: dir, HOME: dir });
});

after(() => removeDir(dir));

const hosts = (...args: string[]) => runCli(['hosts', '--fold', ...args], { env });

test('hosts: the README\'s @web&dc=east, and role=web&dc=east, dc=east&@web, with !, in any order', async () => {
  const cases: Array<[string[], string]> = [
    [['@web&dc=east'], 'web[01-12]'],
    [['role=web&dc=east'], 'web[01-12]'],
    [['dc=east&@web'], 'web[01-12]'],
    [['dc=east&role=web&!web[02-12]'], 'web01'],
    [['@prod&dc=east,web13'], 'web[01-13],db03'],
    [['@web&dc=east', 'db03'], 'web[01-12],db03'],
    [['@web,&dc=west'], 'web13'],
    [['@web,!web[01-11]'], 'web[12-13]'],
  ];
  for (const [args, expected] of cases) {
    const r = await hosts(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout.toString(), `${expected}\n`, args.join(' '));
  }
});

test('hosts and run: targets that match nothing are an error (exit 2) naming what matched, unless --allow-empty', async () => {
  for (const expr of ['role=web&dc=nowhere', 'dc=west&role=db', '@web&!@web', 'web13&dc=east']) {
    const h = await hosts(expr);
    assert.equal(h.code, 2, `hosts ${expr}: ${h.stderr}`);
    assert.match(h.stderr, /match no host: .*(→ 0|none is left after & and !)/);
    assert.match(h.stderr, new RegExp(`The inventory ${inventory.replace(/[.]/g, '\\.')} has 14 hosts`));
    assert.match(h.stderr, /--allow-empty/);
    assert.equal(h.stdout.length, 0);
    const allowed = await hosts('--allow-empty', expr);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, /^0 hosts$/m);

    const r = await runCli(['run', expr, '--', 'true'], { env });
    assert.equal(r.code, 2, `run ${expr}: ${r.stderr}`);
    assert.match(r.stderr, /match no host: .*(→ 0|none is left after & and !)/);
  }
  assert.match((await hosts('dc=west&role=db')).stderr, /dc=west → 1, role=db → 1, but none is left after & and !/);
  const labelHint = await hosts('role=web&dc=nowhere');
  assert.match(labelHint.stderr, /role=web → 13, dc=nowhere → 0 \(dc is east, west\)/);

  const empty = await runCli(['run', '--allow-empty', 'role=web&dc=nowhere', '--', 'true'], { env });
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stderr, /matches no host; nothing was run/);
  const json = await runCli(['run', '--json', '--allow-empty', 'role=web&dc=nowhere', '--', 'true'], { env });
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout.toString()), {
    type: 'summary', command: 'true', total: 0, ok: 0, failed: 0, unreachable: 0, canceled: 0, skipped: 0, durationMs: 0, success: true, stoppedBy: null,
  });

  // No inventory at all: the message says where it looked.
  const bare = tempDir('shellwire-noinv-');
  try {
    const none = await runCli(['hosts', '!all'], { env: cleanEnv({ SHELLWIRE_HOME: bare, HOME: bare }) });
    assert.equal(none.code, 2);
    assert.match(none.stderr, new RegExp(`There is no inventory \\(looked for ${bare.replace(/[.]/g, '\\.')}/inventory\\.yaml\\)`));
  } finally {
    removeDir(bare);
  }
});

test('runOn: string targets that match nothing throw NoHostsMatchedError, or run nothing with allowEmpty', async () => {
  const inv = parseInventory(README_INVENTORY, inventory);
  assert.throws(() => runOn('role=web&dc=nowhere', 'true', { inventory: inv }), (err: unknown) => err instanceof NoHostsMatchedError && err.code === 'SW_ERR_NO_HOSTS_MATCHED');
  const summary = await runOn('role=web&dc=nowhere', 'true', { inventory: inv, allowEmpty: true }).result();
  assert.equal(summary.total, 0);
  assert.equal(summary.success, true);
});

let fleet: TestFleet;

test('run on real daemons: an intersection inside one item runs exactly the hosts in both', async (t) => {
  fleet = await startFleet([
    { name: 'app01', role: 'a' },
    { name: 'app02', role: 'b' },
  ], 40);
  t.after(() => fleet.stop());
  for (const expr of ['@all-a&role=a', 'role=a&@all-a', 'app0*&!role=b']) {
    const r = await runCli(['run', '--inventory', fleet.inventory, '--stream', expr, 'echo', 'ran'], { env: fleet.env });
    assert.equal(r.code, 0, `${expr}: ${r.stderr}`);
    assert.equal(r.stdout.toString(), 'app01 | ran\n', expr);
  }
});

test('discover: nothing answering is a failure (exit 1) that says what usually causes it', async () => {
  const r = await runCli(['discover', '--address', '127.0.0.31', '--port', '9', '--timeout', '0.3'], { env });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /0 daemon\(s\) answered out of 1 address/);
  assert.match(r.stderr, /no daemon answered on UDP port 9: .*serve --announce/);
  assert.equal(r.stdout.length, 0);
});

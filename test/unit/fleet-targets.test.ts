/** Ranges, folding, inventory schema errors (with lines), and target expressions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expandRange, foldNames } from '../../src/fleet/ranges.js';
import { parseInventory, InventoryError } from '../../src/fleet/inventory.js';
import { resolveTargets, splitTerms, NoHostsMatchedError } from '../../src/fleet/targets.js';
import { planBatches } from '../../src/fleet/batches.js';

test('ranges: padding, lists, letters, several brackets, Ansible colons', () => {
  assert.deepEqual(expandRange('web[01-03].example'), ['web01.example', 'web02.example', 'web03.example']);
  assert.deepEqual(expandRange('10.0.0.[1-3,7]'), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.7']);
  assert.deepEqual(expandRange('db[8-11]'), ['db8', 'db9', 'db10', 'db11']);
  assert.deepEqual(expandRange('r[a-b]n[1:2]'), ['ran1', 'ran2', 'rbn1', 'rbn2']);
  assert.deepEqual(expandRange('[::1]:5000'), ['[::1]:5000'], 'an IPv6 literal is not a range');
  assert.deepEqual(expandRange('plain'), ['plain']);
  assert.throws(() => expandRange('web[5-1]'), /goes backwards/);
  assert.throws(() => expandRange('web[1-999999]'), /too large|limit/);
  assert.throws(() => expandRange('web[1-3'), /no matching/);
});

test('fold: clush-style node sets, padding kept apart, order of first appearance', () => {
  assert.equal(foldNames(['web01', 'web02', 'web03', 'web05', 'db03']), 'web[01-03,05],db03');
  assert.equal(foldNames(['web08', 'web09', 'web10', 'web11', 'web12']), 'web[08-12]');
  assert.equal(foldNames(['127.0.0.9', '127.0.0.10', '127.0.0.11']), '127.0.0.[9-11]');
  assert.equal(foldNames(['a', 'b', 'a']), 'a,b');
  assert.equal(foldNames(['n1.x', 'n2.x', 'n2.y']), 'n[1-2].x,n2.y');
});

test('fold ∘ expand is the identity on sets of padded names', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 40 }), (numbers) => {
      const names = numbers.map((n) => `web${String(n).padStart(3, '0')}`);
      const folded = foldNames(names);
      const back = splitTerms(folded).flatMap(expandRange);
      assert.deepEqual(new Set(back), new Set(names));
    }),
  );
});

const INVENTORY = `# test inventory
defaults:
  port: 6000
hosts:
  web[01-04]:
    address: 127.0.1.[1-4]
    labels: { role: web, dc: east }
    groups: [web]
  web05: { address: 127.0.1.5, labels: { role: web, dc: west }, groups: [web] }
  db[01-02]:
    address: 127.0.2.[1-2]
    port: 6001
    token-file: tokens/db
    labels: { role: db, dc: east }
groups:
  prod: ["@web", db01]
  everything: ["@prod", db02]
`;

test('inventory: ranges zip names with addresses, defaults apply, token files resolve', () => {
  const inv = parseInventory(INVENTORY, '/etc/sw/inventory.yaml');
  assert.deepEqual(inv.hosts.map((h) => h.name), ['web01', 'web02', 'web03', 'web04', 'web05', 'db01', 'db02']);
  const web03 = inv.byName.get('web03')!;
  assert.equal(web03.address, '127.0.1.3');
  assert.equal(web03.port, 6000);
  assert.deepEqual(web03.labels, { role: 'web', dc: 'east' });
  assert.equal(inv.byName.get('db02')!.port, 6001);
  assert.equal(inv.byName.get('db02')!.tokenFile, '/etc/sw/tokens/db');
  assert.equal(web03.source, '/etc/sw/inventory.yaml:5');
});

test('inventory: schema errors name the file and line', () => {
  const cases: Array<[string, number, RegExp]> = [
    ['hosts:\n  a: { address: x }\n  b:\n    port: 70000\n', 4, /port/],
    ['hosts:\n  a:\n    adress: x\n', 3, /unknown key "adress"/],
    ['hosts:\n  w[1-3]:\n    address: 10.0.0.[1-2]\n', 3, /3 hosts but address/],
    ['hosts:\n  a: {}\n  b: {}\nwat: 1\n', 4, /unknown top-level key/],
    ['hosts:\n  a: {}\n  a[1-2]: {}\n  a1: {}\n', 4, /defined twice \(first at f.yaml:3\)/],
    ['hosts:\n  a:\n    labels: [x]\n', 3, /labels/],
    ['hosts:\n  a: { address: "1.2.3.4:50" }\n', 2, /includes a port/],
    ['hosts:\n  a: [\n', 3, /not valid YAML/],
  ];
  for (const [text, line, message] of cases) {
    assert.throws(
      () => parseInventory(text, 'f.yaml'),
      (err: unknown) => {
        assert.ok(err instanceof InventoryError, String(err));
        assert.equal(err.code, 'SW_ERR_BAD_INVENTORY');
        assert.match(err.message, message);
        assert.equal(err.line, line, `${err.message} (for ${JSON.stringify(text)})`);
        assert.ok(err.message.startsWith(`f.yaml:${line}:`));
        return true;
      },
    );
  }
});

test('targets: groups, labels, names, ranges, exclusions, intersections, ad-hoc', () => {
  const inv = parseInventory(INVENTORY, '/etc/sw/inventory.yaml');
  const names = (expr: string | string[]) => resolveTargets(expr, inv).map((h) => h.name);
  assert.deepEqual(names('@web'), ['web01', 'web02', 'web03', 'web04', 'web05']);
  assert.deepEqual(names('@web,!web02'), ['web01', 'web03', 'web04', 'web05']);
  assert.deepEqual(names('!web02,@web'), ['web01', 'web03', 'web04', 'web05'], 'order of terms does not matter');
  assert.deepEqual(names('@web,!web[01-03]'), ['web04', 'web05']);
  assert.deepEqual(names('role=db'), ['db01', 'db02']);
  assert.deepEqual(names('dc=east,&role=web'), ['web01', 'web02', 'web03', 'web04']);
  assert.deepEqual(names('@prod'), ['web01', 'web02', 'web03', 'web04', 'web05', 'db01']);
  assert.deepEqual(names('@everything,!dc=east'), ['web05']);
  assert.deepEqual(names('!@web'), ['db01', 'db02'], 'only exclusions: from every host');
  assert.deepEqual(names(['db02', 'web01']), ['web01', 'db02'], 'inventory order');
  assert.deepEqual(names('web0*'), ['web01', 'web02', 'web03', 'web04', 'web05']);
  assert.deepEqual(names('127.0.1.2'), ['web02'], 'an address names its host');
  assert.deepEqual(names('127.0.2.1:6001'), ['db01']);
  assert.deepEqual(names('all'), inv.hosts.map((h) => h.name));
  const adHoc = resolveTargets('web01,127.0.9.[1-2]:7000,!127.0.9.1:7000', inv);
  assert.deepEqual(adHoc.map((h) => `${h.name}=${h.address}:${h.port}`), ['web01=127.0.1.1:6000', '127.0.9.2:7000=127.0.9.2:7000']);
  assert.throws(() => names('web99'), /no host "web99"/);
  assert.throws(() => names('@web,!web99'), /no host "web99"/, 'a typo in an exclusion is an error, not a no-op');
  assert.throws(() => names('@nope'), /no group "nope".*groups: .*web/);
  assert.throws(() => names('colour=red'), /no host has a label "colour"/);
  assert.throws(() => names(''), /No targets/);
});

test('targets: & inside an item is intersection, in any order and with any kind of selection', () => {
  const inv = parseInventory(INVENTORY, '/etc/sw/inventory.yaml');
  const names = (expr: string | string[]) => resolveTargets(expr, inv).map((h) => h.name);
  const eastWeb = ['web01', 'web02', 'web03', 'web04'];
  assert.deepEqual(names('@web&dc=east'), eastWeb, 'the README\'s own example');
  assert.deepEqual(names('role=web&dc=east'), eastWeb);
  assert.deepEqual(names('dc=east&@web'), eastWeb);
  assert.deepEqual(names('dc=east&role=web'), eastWeb);
  assert.deepEqual(names('web0*&dc=east'), eastWeb);
  assert.deepEqual(names('@web&dc=east&!web02'), ['web01', 'web03', 'web04'], '&! removes inside the item');
  assert.deepEqual(names('@web&dc=east,db01'), [...eastWeb, 'db01'], ', binds loosest: (@web&dc=east) ∪ db01');
  assert.deepEqual(names('@prod&role=db'), ['db01']);
  assert.deepEqual(names('web[01-05]&dc=west'), ['web05'], '& outside brackets only');
  assert.deepEqual(names('@web,!@web&dc=east'), ['web05'], 'a whole ! item is a conjunction too');
  assert.deepEqual(names('@web,&dc=east&role=web'), eastWeb, 'old spelling: & item intersects the whole');
  assert.deepEqual(names(['@web&dc=east', 'role=db&dc=east']), [...eastWeb, 'db01', 'db02'], 'several arguments: union');
  assert.deepEqual(names('alice@web01'), ['alice@web01']);
  assert.equal(resolveTargets('alice@web01:7000', inv)[0]!.user, 'alice');
  assert.equal(resolveTargets('alice@web01:7000', inv)[0]!.port, 7000);
  assert.equal(resolveTargets('alice@web01:7000', inv)[0]!.address, '127.0.1.1', 'an inventory name with another user/port keeps its address');
  assert.deepEqual(names('web01:7000&dc=east'), ['web01:7000'], 'with another port it is still the inventory host for & and !');
  assert.deepEqual(names('@web&dc=east,!web01:7000'), ['web02', 'web03', 'web04']);
  assert.throws(() => names('@web&'), /empty/);
  assert.throws(() => names('@web&&dc=east'), /empty/);
  assert.throws(() => names('@web&dc=nowhere&@nope'), /no group "nope"/, 'a typo anywhere is still an error');
});

test('targets: a selection that matches nothing is an error that says what matched what, unless allowed', () => {
  const inv = parseInventory(INVENTORY, '/etc/sw/inventory.yaml');
  const empties = ['role=web&dc=nowhere', 'dc=west&role=db', '@web&!@web', '@web,!@web', '@prod&role=web&dc=west&!web05', 'role=d*&dc=west', '!all'];
  for (const expr of empties) {
    assert.throws(
      () => resolveTargets(expr, inv),
      (err: unknown) => {
        assert.ok(err instanceof NoHostsMatchedError, `${expr}: ${String(err)}`);
        assert.equal(err.code, 'SW_ERR_NO_HOSTS_MATCHED');
        assert.match(err.message, new RegExp(`Targets "${expr.replace(/[*&!@,]/g, '\\$&')}" match no host`));
        assert.match(err.message, /\/etc\/sw\/inventory\.yaml has 7 hosts/);
        return true;
      },
    );
    assert.deepEqual(resolveTargets(expr, inv, { allowEmpty: true }), []);
  }
  assert.throws(() => resolveTargets('role=web&dc=nowhere', inv), /role=web → 5, dc=nowhere → 0 \(dc is east, west\)/);
  const none = parseInventory('hosts:\n  a: { labels: { x: "1" } }\n', 'f.yaml');
  assert.throws(() => resolveTargets('x=2', none), /x=2 → 0 \(x is 1\)\. The inventory f\.yaml has 1 host\./);
});

test('targets: a group that contains itself is reported', () => {
  const inv = parseInventory('hosts:\n  a: {}\ngroups:\n  x: ["@y"]\n  y: ["@x"]\n', 'f.yaml');
  assert.throws(() => resolveTargets('@x', inv), /contains itself \(x → y → x\)/);
});

test('batches: canary alone first, then rolling batches', () => {
  const hosts = ['a', 'b', 'c', 'd', 'e'];
  assert.deepEqual(planBatches(hosts), [hosts]);
  assert.deepEqual(planBatches(hosts, 2), [['a', 'b'], ['c', 'd'], ['e']]);
  assert.deepEqual(planBatches(hosts, 2, true), [['a'], ['b', 'c'], ['d', 'e']]);
  assert.deepEqual(planBatches(hosts, undefined, true), [['a'], ['b', 'c', 'd', 'e']]);
});

/**
 * The gateway's client side, parsed (docs/gateway.md "Client side"): `--via [USER@]GW[:PORT]`
 * (IPv6 too, default port 50008), the host name a relayed OPEN carries, the OPEN `host`
 * field on the wire, and the inventory's `via:` (top-level, defaults, per host, `none`) with
 * `--via`/`--via none` above it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_GATEWAY_PORT, parseVia, relayHostName } from '../../src/client/via.js';
import { decodeOpen, encodeOpen, type OpenRequest } from '../../src/protocol/messages.js';
import { parseInventory, type InventoryError } from '../../src/fleet/inventory.js';
import { connectArgs, resolveHost, withOverrides } from '../../src/fleet/resolve-host.js';
import { ErrorCode } from '../../src/errors.js';

test('--via takes [USER@]GW[:PORT], [IPv6]:PORT and bare IPv6; the gateway port defaults to 50008', () => {
  assert.equal(DEFAULT_GATEWAY_PORT, 50008);
  assert.deepEqual(parseVia('bastion'), { host: 'bastion', port: 50008 });
  assert.deepEqual(parseVia('alice@bastion:2222'), { user: 'alice', host: 'bastion', port: 2222 });
  assert.deepEqual(parseVia('[::1]:50100'), { host: '::1', port: 50100 });
  assert.deepEqual(parseVia('ops@[::1]:7'), { user: 'ops', host: '::1', port: 7 });
  assert.deepEqual(parseVia('::1'), { host: '::1', port: 50008 });
  assert.deepEqual(parseVia('10.0.0.1'), { host: '10.0.0.1', port: 50008 });
  for (const bad of ['', '@gw', 'gw:0', 'gw:65536', 'gw:x', '[::1', '[gw]:1', 'a b']) {
    assert.throws(() => parseVia(bad), (err: unknown) => (err as { code?: string }).code === ErrorCode.BAD_TARGET && /Bad gateway/.test((err as Error).message), bad);
  }
});

test('a host behind a gateway is an inventory name: no USER@, no port or address, 1-255 bytes, no NUL', () => {
  assert.equal(relayHostName('web01', 'gw:50008'), 'web01');
  assert.equal(relayHostName({ host: 'web01', port: 50007 }, 'gw:50008'), 'web01');
  assert.equal(relayHostName('x'.repeat(255), 'gw'), 'x'.repeat(255));
  assert.throws(() => relayHostName('root@web01', 'gw:50008'), /the gateway's choice.*--via root@gw:50008/);
  assert.throws(() => relayHostName({ user: 'root', host: 'web01', port: 1 }, 'gw'), /the gateway's choice/);
  for (const bad of ['web01:22', '[::1]:5', '::1', '', 'a\0b', 'x'.repeat(256)]) {
    assert.throws(() => relayHostName(bad, 'gw'), (err: unknown) => (err as { code?: string }).code === ErrorCode.BAD_TARGET, JSON.stringify(bad));
  }
});

test('OPEN host: encoded in the header, decoded for every kind, a string of at most 255 bytes without NUL', () => {
  const kinds: OpenRequest[] = [
    { kind: 'exec', window: 10, maxPacket: 10, host: 'web01', params: { command: 'true' } },
    { kind: 'session', window: 1, maxPacket: 10, host: 'web01', params: {} },
    { kind: 'file', window: 1, maxPacket: 10, host: 'web01', params: { op: 'stat', path: '/' } },
    { kind: 'gateway', window: 1, maxPacket: 10, params: { op: 'hosts' } },
  ];
  for (const open of kinds) {
    const wire = JSON.parse(encodeOpen(open).toString()) as Record<string, unknown>;
    assert.equal(wire.host, open.host, open.kind);
    if (open.host === undefined) assert.equal('host' in wire, false, 'no host key when none is set');
    const decoded = decodeOpen(encodeOpen(open));
    assert.equal(decoded.host, open.host, open.kind);
    // The host is a header field, never a parameter of the kind.
    assert.equal('host' in (decoded.params as object), false, open.kind);
  }
  // A parameter named host cannot replace the header's.
  const sneaky = { kind: 'gateway', window: 1, maxPacket: 10, host: 'web01', params: { op: 'hosts', host: 'db01' } } as OpenRequest;
  assert.equal(JSON.parse(encodeOpen(sneaky).toString()).host, 'web01');
  const raw = (host: unknown) => Buffer.from(JSON.stringify({ kind: 'exec', window: 1, maxPacket: 1, command: 'true', host }));
  assert.equal(decodeOpen(raw('é'.repeat(127))).host, 'é'.repeat(127));
  assert.equal(decodeOpen(raw('h'.repeat(255))).host?.length, 255);
  for (const [bad, why] of [['h'.repeat(256), /at most 255 bytes/], ['é'.repeat(128), /at most 255 bytes/], ['a\0b', /NUL/], [7, /"host" must be a (non-empty )?string/], [null, /"host" must be a (non-empty )?string/], ['', /"host" must be a non-empty string/]] as const) {
    assert.throws(() => decodeOpen(raw(bad)), (err: unknown) => (err as { code?: string }).code === ErrorCode.BAD_MESSAGE && why.test((err as Error).message), String(bad));
  }
});

test('inventory via: top-level default, defaults and a host\'s own win in that order; "none" is directly', () => {
  const inv = parseInventory([
    'via: alice@gw1',
    'hosts:',
    '  a: {}',
    '  b: { via: "bob@[::1]:9" }',
    '  c: { via: none, address: 10.0.0.3 }',
    '',
  ].join('\n'), '/x/inventory.yaml');
  assert.equal(inv.byName.get('a')!.via, 'alice@gw1');
  assert.equal(inv.byName.get('b')!.via, 'bob@[::1]:9');
  assert.equal(inv.byName.get('c')!.via, undefined);
  const withDefaults = parseInventory('via: top\ndefaults: { via: fromdefaults }\nhosts:\n  a: {}\n  b: { via: own }\n', '/x/i.yaml');
  assert.equal(withDefaults.byName.get('a')!.via, 'fromdefaults');
  assert.equal(withDefaults.byName.get('b')!.via, 'own');
  for (const [text, line, why] of [
    ['via: "gw:0"\nhosts: {}\n', 1, /Bad gateway "gw:0"/],
    ['hosts:\n  a: { via: 7 }\n', 2, /"via" must be a gateway/],
    ['hosts:\n  a: { via: "" }\n', 2, /"via" must be a gateway/],
  ] as const) {
    assert.throws(() => parseInventory(text, '/x/bad.yaml'), (err: unknown) => (err as InventoryError).line === line && why.test((err as Error).message), text);
  }
});

test('--via over the inventory: a gateway replaces it, --via none removes it; connectArgs sends the name to the gateway', () => {
  const inv = parseInventory('via: gw1\nhosts:\n  a: { address: 10.0.0.1, user: deploy, identity: /k/id }\n', '/x/i.yaml');
  const a = resolveHost('a', inv).host;
  assert.equal(withOverrides(a, { via: 'gw2' }).via, 'gw2');
  assert.equal(withOverrides(a, { via: null }).via, undefined);
  assert.equal(a.via, 'gw1', 'the inventory entry itself is not changed');
  const through = connectArgs(a, { token: 't' });
  assert.equal(through.target, 'a');
  assert.equal(through.options.via, 'gw1');
  assert.equal(through.options.identity, '/k/id', 'the key logs in to the gateway');
  const direct = connectArgs(withOverrides(a, { via: null }));
  assert.deepEqual(direct.target, { user: 'deploy', host: '10.0.0.1', port: 50007 });
  assert.equal(direct.options.via, undefined);
});

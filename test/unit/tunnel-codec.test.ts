/**
 * The NATS tunnel's messages (src/protocol/tunnel-codec.ts, docs/nats.md): layout as hex
 * fixtures, limits, and fast-check properties (decode(encode(m)) == m; any bytes decode to a
 * message or a typed error, never a crash), plus the subject helpers' name rules.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeTunnelMessage, encodeTunnelMessage, TunnelMessageType, TUNNEL_MAX_DATA, type TunnelMessage } from '../../src/protocol/tunnel-codec.js';
import { checkAgentName, checkNatsPrefix, isTunnelId, natsSubjects, newTunnelId } from '../../src/protocol/nats-subjects.js';
import { parseNatsServers, reconnectDelay, RECONNECT_MAX_MS } from '../../src/transport/nats-connect.js';
import { ErrorCode, ProtocolError, UsageError } from '../../src/errors.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function plain(m: TunnelMessage): unknown {
  return m.type === TunnelMessageType.DATA ? { ...m, data: hex(m.data) } : { ...m };
}

const message: fc.Arbitrary<TunnelMessage> = fc.oneof(
  fc.record({ type: fc.constant(TunnelMessageType.DATA), seq: fc.nat({ max: 0xffffffff }), data: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant(TunnelMessageType.ACK), seq: fc.nat({ max: 0xffffffff }), bytes: fc.nat({ max: 0xffffffff }) }),
  fc.record({ type: fc.constant(TunnelMessageType.FIN), seq: fc.nat({ max: 0xffffffff }) }),
  fc.record({ type: fc.constant(TunnelMessageType.RST), seq: fc.nat({ max: 0xffffffff }), reason: fc.string({ maxLength: 100 }) }),
) as fc.Arbitrary<TunnelMessage>;

describe('tunnel codec', () => {
  test('layout: u8 type | u32 BE seq | body', () => {
    assert.equal(hex(encodeTunnelMessage({ type: TunnelMessageType.DATA, seq: 0x01020304, data: Buffer.from('hi') })), '01010203046869');
    assert.equal(hex(encodeTunnelMessage({ type: TunnelMessageType.ACK, seq: 0, bytes: 65536 })), '020000000000010000');
    assert.equal(hex(encodeTunnelMessage({ type: TunnelMessageType.FIN, seq: 17 })), '0300000011');
    assert.equal(hex(encodeTunnelMessage({ type: TunnelMessageType.RST, seq: 1, reason: 'x' })), '040000000178');
  });

  test('round trip for any message', () => {
    fc.assert(
      fc.property(message, (m) => {
        const expected = m.type === TunnelMessageType.RST ? { ...m, reason: Buffer.from(Buffer.from(m.reason, 'utf8').toString('utf8')).toString('utf8') } : m;
        assert.deepEqual(plain(decodeTunnelMessage(encodeTunnelMessage(m))), plain(expected));
      }),
      { numRuns: 500 },
    );
  });

  test('any bytes: a message or SW_ERR_BAD_MESSAGE, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        try {
          const m = decodeTunnelMessage(bytes);
          assert.deepEqual(hex(encodeTunnelMessage(m)).slice(0, 10), hex(bytes).slice(0, 10));
        } catch (err) {
          assert.ok(err instanceof ProtocolError);
          assert.equal(err.code, ErrorCode.BAD_MESSAGE);
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('refused: short, unknown type, wrong ACK/FIN body, DATA over 64 KiB', () => {
    for (const bad of ['', '01000000', '0500000000', '02000000000001', '030000000000', `01${'00'.repeat(4)}${'ab'.repeat(TUNNEL_MAX_DATA + 1)}`]) {
      assert.throws(() => decodeTunnelMessage(Buffer.from(bad, 'hex')), (e: unknown) => e instanceof ProtocolError && e.code === ErrorCode.BAD_MESSAGE, bad.slice(0, 20));
    }
    assert.throws(() => encodeTunnelMessage({ type: TunnelMessageType.DATA, seq: 0, data: Buffer.alloc(TUNNEL_MAX_DATA + 1) }), RangeError);
    assert.throws(() => encodeTunnelMessage({ type: TunnelMessageType.FIN, seq: 2 ** 32 }), RangeError);
  });

  test('DATA is a view of the payload (no copy in the codec)', () => {
    const payload = encodeTunnelMessage({ type: TunnelMessageType.DATA, seq: 3, data: Buffer.from('abc') });
    const m = decodeTunnelMessage(payload);
    assert.equal(m.type, TunnelMessageType.DATA);
    if (m.type === TunnelMessageType.DATA) assert.equal(m.data.buffer, payload.buffer);
  });
});

describe('NATS names', () => {
  test('subjects under a prefix', () => {
    const s = natsSubjects('fleet.prod');
    assert.equal(s.open('web1'), 'fleet.prod.agent.web1.open');
    assert.equal(s.toAgent('web1', 'A'.repeat(22)), `fleet.prod.t.web1.${'A'.repeat(22)}.a`);
    assert.equal(s.toClient('web1', 'x'), 'fleet.prod.t.web1.x.c');
    assert.equal(s.broadcast('0f'), 'fleet.prod.bcast.0f');
    assert.equal(s.broadcastAll, 'fleet.prod.bcast.*');
    assert.equal(s.presence('web1'), 'fleet.prod.presence.web1');
  });

  test('agent names and prefixes are NATS tokens', () => {
    assert.equal(checkAgentName('web-1_a'), 'web-1_a');
    for (const bad of ['', 'a.b', 'a b', 'a*', 'a>', 'x'.repeat(65), 'é']) {
      assert.throws(() => checkAgentName(bad), (e: unknown) => e instanceof UsageError && e.code === ErrorCode.BAD_CONFIG, bad);
    }
    assert.throws(() => checkNatsPrefix('a..b'), UsageError);
    assert.throws(() => checkNatsPrefix('a.*'), UsageError);
    assert.equal(checkNatsPrefix('a.b'), 'a.b');
  });

  test('tunnel ids: 22 base64url characters, fresh each time', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newTunnelId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.ok(isTunnelId(id), id);
    assert.ok(!isTunnelId('short'));
    assert.ok(!isTunnelId('A'.repeat(21) + '.'));
  });

  test('server lists: nats://A,nats://B; the scheme and port may be left out', () => {
    assert.deepEqual(parseNatsServers('nats://a,nats://b:4333'), ['nats://a:4222', 'nats://b:4333']);
    assert.deepEqual(parseNatsServers(' 127.0.0.1:5 , tls://h '), ['nats://127.0.0.1:5', 'tls://h:4222']);
    for (const bad of ['', ',', 'http://a', 'nats://a/path', 'nats://']) {
      assert.throws(() => parseNatsServers(bad), (e: unknown) => e instanceof UsageError && e.code === ErrorCode.BAD_TARGET, bad);
    }
  });

  test('reconnect delays grow to a cap, with jitter', () => {
    assert.equal(reconnectDelay(0, () => 0.5), 250);
    assert.equal(reconnectDelay(2, () => 0.5), 1000);
    assert.equal(reconnectDelay(50, () => 0.5), RECONNECT_MAX_MS);
    assert.equal(reconnectDelay(50, () => 0), RECONNECT_MAX_MS / 2);
    assert.ok(reconnectDelay(50, () => 0.999) < RECONNECT_MAX_MS * 1.5);
  });
});

/**
 * The NATS tunnel Duplex (src/transport/nats-tunnel.ts) over a real nats-server: random writes
 * and reader stalls arrive byte-exact; backpressure holds (never more than the window in
 * flight, a slow reader stops the writer); a lost message, an overrun or the NATS connection
 * closing fail the tunnel with SW_ERR_TUNNEL_BROKEN and a clear message.
 */
import { test, describe, before, after } from 'node:test';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { connectNats } from '../../src/transport/nats-connect.js';
import { NatsTunnel, TUNNEL_WINDOW } from '../../src/transport/nats-tunnel.js';
import { encodeTunnelMessage, TunnelMessageType, TUNNEL_MAX_DATA } from '../../src/protocol/tunnel-codec.js';
import { natsSubjects, newTunnelId } from '../../src/protocol/nats-subjects.js';
import { ConnectionError, ErrorCode } from '../../src/errors.js';

let nats: NatsServer;
let a: NatsConnection;
let b: NatsConnection;
const subjects = natsSubjects('swtest');

before(async () => {
  nats = await startNatsServer();
  a = await connectNats({ servers: nats.url });
  b = await connectNats({ servers: nats.url });
});
after(async () => {
  await a?.close();
  await b?.close();
  await nats?.stop();
});

/** Two ends on two NATS connections; both subscriptions are known to the server before it returns (the open request does that in real use). */
async function pair(window = TUNNEL_WINDOW, ncA = a, ncB = b): Promise<{ client: NatsTunnel; agent: NatsTunnel; id: string }> {
  const id = newTunnelId();
  const client = new NatsTunnel({ nc: ncA, sendSubject: subjects.toAgent('test', id), receiveSubject: subjects.toClient('test', id), label: 'NATS tunnel to test', window });
  const agent = new NatsTunnel({ nc: ncB, sendSubject: subjects.toClient('test', id), receiveSubject: subjects.toAgent('test', id), label: 'NATS tunnel from test', window });
  await Promise.all([ncA.flush(), ncB.flush()]);
  return { client, agent, id };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Write `sizes` (random bytes) honouring backpressure, then end; returns what was written and the most the sender ever buffered. */
async function writeAll(w: NatsTunnel, sizes: number[]): Promise<{ sent: Buffer; maxBuffered: number }> {
  const parts: Buffer[] = [];
  let maxBuffered = 0;
  for (const size of sizes) {
    const chunk = Buffer.alloc(size, parts.length % 251);
    for (let i = 0; i < size; i += 997) chunk[i] = (i * 31 + size) & 0xff;
    parts.push(chunk);
    const ok = w.write(chunk);
    maxBuffered = Math.max(maxBuffered, w.inFlight + w.writableLength);
    if (!ok) await new Promise((r) => w.once('drain', r));
  }
  w.end();
  return { sent: Buffer.concat(parts), maxBuffered };
}

/** Read with stalls: after each chunk, maybe pause for `stalls[i]` ms; checks the receiver never holds more than a window. */
async function readAll(r: NatsTunnel, stalls: number[]): Promise<{ got: Buffer; maxHeld: number }> {
  const parts: Buffer[] = [];
  let maxHeld = 0;
  let i = 0;
  // Not destroyed at its end: the writable side may still be writing (half close).
  for await (const chunk of r.iterator({ destroyOnReturn: false })) {
    parts.push(chunk as Buffer);
    maxHeld = Math.max(maxHeld, r.readableLength + (chunk as Buffer).length);
    const stall = stalls[i++ % Math.max(1, stalls.length)] ?? 0;
    if (stall > 0) await sleep(stall);
  }
  return { got: Buffer.concat(parts), maxHeld };
}

describe('NATS tunnel stream', () => {
  test('random writes and reader stalls: byte-exact both ways, bounded by the window', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 150_000 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 40_000 }), { maxLength: 6 }),
        fc.array(fc.constantFrom(0, 0, 0, 1, 5, 30), { maxLength: 8 }),
        fc.constantFrom(16 * 1024, 64 * 1024, TUNNEL_WINDOW),
        async (upSizes, downSizes, stalls, window) => {
          const { client, agent } = await pair(window);
          const [up, upRead, down, downRead] = await Promise.all([writeAll(client, upSizes), readAll(agent, stalls), writeAll(agent, downSizes), readAll(client, [])]);
          assert.equal(sha(upRead.got), sha(up.sent));
          assert.equal(upRead.got.length, up.sent.length);
          assert.equal(sha(downRead.got), sha(down.sent));
          assert.ok(client.maxInFlight <= window, `in flight ${client.maxInFlight} > window ${window}`);
          // The sender's own buffer: the window in flight, plus what a writer that honours
          // write() === false can queue (under the high-water mark, then one more write).
          const bound = window + client.writableHighWaterMark + Math.max(...upSizes);
          assert.ok(up.maxBuffered <= bound, `sender buffered ${up.maxBuffered} > ${bound}`);
          assert.ok(upRead.maxHeld <= window + TUNNEL_MAX_DATA, `receiver held ${upRead.maxHeld}`);
          await Promise.all([new Promise((r) => (client.closed ? r(null) : client.once('close', r))), new Promise((r) => (agent.closed ? r(null) : agent.once('close', r)))]);
        },
      ),
      { numRuns: 15, examples: [[[16385], [], [], 16384], [[74217, 7704, 4211, 62303], [], [], 16384]] },
    );
  });

  test('a reader that stops reading stops the writer at the window', async () => {
    const { client, agent } = await pair();
    agent.pause();
    let written = 0;
    while (client.write(Buffer.alloc(32 * 1024, 7))) written += 32 * 1024;
    await sleep(300);
    // Nothing more goes out while the reader sleeps: in flight is exactly the window.
    assert.equal(client.inFlight, TUNNEL_WINDOW);
    assert.ok(agent.readableLength <= TUNNEL_WINDOW);
    assert.ok(client.writableLength <= 64 * 1024, `writer queue ${client.writableLength}`);
    const drained = new Promise((r) => client.once('drain', r));
    agent.resume();
    await drained;
    client.destroy();
    agent.destroy();
    assert.ok(written > 0);
  });

  test('a lost message (a DATA with a skipped seq) → SW_ERR_TUNNEL_BROKEN on both ends, never corrupted bytes', async () => {
    const { client, agent, id } = await pair();
    client.write('first');
    const got: Buffer[] = [];
    agent.on('data', (c: Buffer) => got.push(c));
    await sleep(100);
    // A third client forges DATA seq 5 where 1 is next.
    b.publish(subjects.toAgent('test', id), encodeTunnelMessage({ type: TunnelMessageType.DATA, seq: 5, data: Buffer.from('evil') }));
    const [agentErr, clientErr] = await Promise.all([
      new Promise<Error>((r) => agent.once('error', r)),
      new Promise<Error>((r) => client.once('error', r)),
    ]);
    assert.ok(agentErr instanceof ConnectionError);
    assert.equal((agentErr as ConnectionError).code, ErrorCode.TUNNEL_BROKEN);
    assert.match(agentErr.message, /message 1 expected, 5 arrived: a message was lost or reordered/);
    assert.equal((clientErr as ConnectionError).code, ErrorCode.TUNNEL_BROKEN);
    // The reason comes quoted, as the peer's words (it is wire text: escaped, capped).
    assert.match(clientErr.message, /reset by the other end \(it said: "message 1 expected, 5 arrived/);
    assert.equal(Buffer.concat(got).toString(), 'first');
  });

  test('a reordered end (FIN before the last DATA) and a window overrun are refused', async () => {
    const { client, agent, id } = await pair();
    client.on('error', () => {});
    agent.on('data', () => {});
    b.publish(subjects.toAgent('test', id), encodeTunnelMessage({ type: TunnelMessageType.FIN, seq: 2 }));
    const err = await new Promise<ConnectionError>((r) => agent.once('error', r));
    assert.equal(err.code, ErrorCode.TUNNEL_BROKEN);
    assert.match(err.message, /message 0 expected, the end of the stream \(after 2\) arrived/);
    client.destroy();

    const second = await pair(16 * 1024);
    second.client.on('error', () => {});
    second.agent.pause();
    for (let seq = 0; seq < 2; seq++) b.publish(subjects.toAgent('test', second.id), encodeTunnelMessage({ type: TunnelMessageType.DATA, seq, data: Buffer.alloc(10_000) }));
    const overrun = await new Promise<ConnectionError>((r) => second.agent.once('error', r));
    assert.match(overrun.message, /more than the 16384-byte window/);
    second.client.destroy();
  });

  test('a lost ACK (an ACK with a skipped seq) is noticed too: credit never leaks silently', async () => {
    const { client, agent, id } = await pair();
    agent.on('error', () => {});
    client.write(Buffer.alloc(1000));
    agent.on('data', () => {});
    // The reader's first ACK is 0 (it gives the 1000 bytes back); a forged ACK 3 after it means ACKs were lost.
    for (let i = 0; i < 100 && client.inFlight > 0; i++) await sleep(20);
    assert.equal(client.inFlight, 0);
    b.publish(subjects.toClient('test', id), encodeTunnelMessage({ type: TunnelMessageType.ACK, seq: 3, bytes: 1 }));
    const err = await new Promise<ConnectionError>((r) => client.once('error', r));
    assert.equal(err.code, ErrorCode.TUNNEL_BROKEN);
    assert.match(err.message, /ACK 1 expected, 3 arrived: a message was lost or reordered/);
  });

  test('the NATS connection closing fails its tunnels at once', async () => {
    const nc = await connectNats({ servers: nats.url });
    const { client, agent } = await pair(TUNNEL_WINDOW, nc, b);
    agent.on('error', () => {});
    const failed = new Promise<ConnectionError>((r) => client.once('error', r));
    await nc.close();
    const err = await failed;
    assert.equal(err.code, ErrorCode.TUNNEL_BROKEN);
    assert.match(err.message, /NATS tunnel to test: the NATS connection closed/);
    agent.destroy();
  });

  test('a NATS server restart fails the tunnels on it at once; the connections come back and new tunnels work', async () => {
    const own = await startNatsServer();
    const ncA = await connectNats({ servers: own.url });
    const ncB = await connectNats({ servers: own.url });
    try {
      const { client, agent } = await pair(TUNNEL_WINDOW, ncA, ncB);
      const errors = [once(client, 'error'), once(agent, 'error')];
      client.write('before');
      const started = Date.now();
      await own.kill();
      const [[clientErr], [agentErr]] = (await Promise.all(errors)) as [[ConnectionError], [ConnectionError]];
      assert.equal(clientErr.code, ErrorCode.TUNNEL_BROKEN);
      assert.match(clientErr.message, /NATS tunnel to test: the NATS connection to .* dropped: messages in flight may be lost; reconnect\./);
      assert.equal(agentErr.code, ErrorCode.TUNNEL_BROKEN);
      assert.ok(Date.now() - started < 2_000, `failed in ${Date.now() - started} ms`);
      // The same port again: both connections reconnect (backoff + jitter) and a new tunnel carries bytes.
      const again = await startNatsServer({ port: own.port });
      try {
        const flushed = (nc: NatsConnection) => nc.flush().then(() => true, () => false);
        for (let i = 0; i < 150 && !((await flushed(ncA)) && (await flushed(ncB))); i++) await sleep(100);
        const second = await pair(TUNNEL_WINDOW, ncA, ncB);
        // Closing the connections below fails whatever is left of this pair: expected.
        second.client.on('error', () => {});
        second.agent.on('error', () => {});
        second.client.end('after');
        const got: Buffer[] = [];
        for await (const c of second.agent.iterator({ destroyOnReturn: false })) got.push(c as Buffer);
        assert.equal(Buffer.concat(got).toString(), 'after');
        second.agent.end();
      } finally {
        await ncA.close();
        await ncB.close();
        await again.stop();
      }
    } finally {
      await own.stop();
    }
  });

  test('SW_ERR_NATS_UNAVAILABLE: no server at the URL', async () => {
    await assert.rejects(connectNats({ servers: 'nats://127.0.0.1:1', timeoutMs: 1000 }), (err: ConnectionError) => {
      assert.equal(err.code, ErrorCode.NATS_UNAVAILABLE);
      assert.match(err.message, /Cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
      return true;
    });
  });
});

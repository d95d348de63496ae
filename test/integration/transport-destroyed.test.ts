// server.handleConnection() over transports built the way embedders build them (Duplex.from
// over two PassThroughs): the daemon destroying one (handshake timeout) must not crash the
// process (review 11 #6); a transport destroyed with an error at any point of the handshake
// must leave no connection behind and let close() finish (#7); connections that fail TLS or
// time out get the same `connect` rows with detail.ok:false as TCP ones (#14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { connect } from '../../src/client/connect.js';
import type { AuditEvent } from '../../src/audit/index.js';

function pair(): [Duplex, Duplex] {
  const a2b = new PassThrough();
  const b2a = new PassThrough();
  return [Duplex.from({ readable: b2a, writable: a2b }), Duplex.from({ readable: a2b, writable: b2a })];
}

const failedConnects = (events: AuditEvent[], address: string) =>
  events.filter((e) => e.kind === 'connect' && e.address === address && (e.detail as { ok?: boolean } | undefined)?.ok === false);

test('a silent peer on a Duplex.from() transport: timed out without crashing, with a failed connect row', async () => {
  const events: AuditEvent[] = [];
  const d = await startDaemon({ audit: { record: (e) => void events.push(e) }, limits: { handshakeTimeoutMs: 300 } });
  try {
    const [client, server] = pair();
    client.on('error', () => {});
    d.server.handleConnection(server, { address: 'mem-silent' });
    assert.ok(await waitFor(() => server.destroyed, 3_000), 'the daemon drops the silent transport');
    assert.ok(await waitFor(() => failedConnects(events, 'mem-silent').length === 1, 2_000), 'one connect row with ok:false');
    assert.equal(d.server.connectionCount, 0);
  } finally {
    await d.stop();
  }
});

test('a peer that ends a Duplex.from() transport mid-TLS gets a failed connect row', async () => {
  const events: AuditEvent[] = [];
  const d = await startDaemon({ audit: { record: (e) => void events.push(e) } });
  try {
    const [client, server] = pair();
    client.on('error', () => {});
    d.server.handleConnection(server, { address: 'mem-garbage' });
    client.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x50, 1, 2, 3]));
    client.end();
    assert.ok(await waitFor(() => failedConnects(events, 'mem-garbage').length === 1, 3_000), 'one connect row with ok:false');
    assert.equal(d.server.connectionCount, 0);
  } finally {
    await d.stop();
  }
});

test('a transport destroyed with an error at any point of the handshake leaves no connection, and close() finishes', async () => {
  const d = await startDaemon({ limits: { handshakeTimeoutMs: 2_000 } });
  let stopped = false;
  try {
    for (const afterMs of [0, 1, 5, 15, 40, 100]) {
      const [client, server] = pair();
      d.server.handleConnection(server, { address: `mem-${afterMs}` });
      const connecting = connect('memhost', { token: d.token, fingerprint: d.fingerprint, transport: client, connectTimeoutMs: 3_000 }).then(
        async (conn) => {
          await conn.close();
          return 'connected';
        },
        () => 'failed',
      );
      setTimeout(() => server.destroy(new Error('relay lost')), afterMs);
      await connecting;
      assert.ok(await waitFor(() => d.server.connectionCount === 0, 3_000), `connectionCount back to 0 (destroyed after ${afterMs} ms)`);
    }
    let closed = false;
    const closing = d.server.close(500).then(() => { closed = true; });
    assert.ok(await waitFor(() => closed, 4_000), 'close() resolves');
    await closing;
    stopped = true;
  } finally {
    if (!stopped) await d.server.close(0);
    await d.stop();
  }
});

/**
 * The transport interface (src/transport/transport.ts): a real client and a real daemon run
 * TLS + HELLO + frames over an in-memory duplex pair, no TCP; and the client's frame reader
 * is the connection's from before HELLO, so a frame in the same chunk as WELCOME is kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startDaemon } from '../helpers/daemon.js';
import { duplexPair } from '../helpers/duplex-pair.js';
import { connect } from '../../src/client/connect.js';
import { loadOrCreateIdentity } from '../../src/auth/identity.js';
import { FrameDecoder, FrameType, encodeFrame } from '../../src/protocol/frame.js';
import { encodeJson, PROTOCOL_MAGIC } from '../../src/protocol/messages.js';
import { ALPN_PROTOCOL, TLS_MIN_VERSION } from '../../src/transport/tls.js';

test('a client and a daemon over an in-memory duplex: exact bytes, a slow reader, close', async () => {
  const d = await startDaemon();
  const [clientEnd, serverEnd] = duplexPair();
  try {
    d.server.handleConnection(serverEnd, { address: 'test-relay', remote: 'test-relay:1' });
    const conn = await connect('relayed.example', { transport: clientEnd, token: d.token, fingerprint: d.fingerprint });
    // Exact bytes, not UTF-8 ones.
    const bytes = Buffer.from([0xff, 0x00, 0xe9, 0x0a, 0x80]);
    const result = await conn.exec(['printf', '\\377\\000\\351\\n\\200']);
    assert.deepEqual(result.stdoutBytes, bytes);
    // A slow reader: 6 MiB while we hold stdout; the daemon stops at the window, then all arrives intact.
    const size = 6 * 1024 * 1024;
    const proc = conn.spawn(`head -c ${size} /dev/zero | tr '\\0' 'x'`, {});
    proc.stdout.pause();
    let before = serverEnd.received;
    // Wait until the transfer stalls (no bytes cross the duplex for a while).
    for (;;) {
      await new Promise((r) => setTimeout(r, 200));
      if (clientEnd.received === before) break;
      before = clientEnd.received;
    }
    assert.ok(clientEnd.received < size, `only the window crossed while the reader was paused (${clientEnd.received} bytes)`);
    const hash = createHash('sha256');
    let got = 0;
    proc.stdout.on('data', (c: Buffer) => {
      hash.update(c);
      got += c.length;
    });
    proc.stdout.resume();
    const status = await proc.exited;
    assert.equal(status.exitCode, 0);
    await new Promise((r) => setImmediate(r));
    assert.equal(got, size);
    assert.equal(hash.digest('hex'), createHash('sha256').update(Buffer.alloc(size, 'x')).digest('hex'));
    assert.equal(d.server.connectionCount, 1);
    // Close: the daemon lets go of the connection and both ends of the duplex close.
    await conn.close();
    for (let i = 0; i < 100 && d.server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(d.server.connectionCount, 0);
    for (let i = 0; i < 100 && !(clientEnd.destroyed && serverEnd.destroyed); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(clientEnd.destroyed && serverEnd.destroyed);
  } finally {
    clientEnd.destroy();
    await d.stop();
  }
});

test('a transport that drops mid-command rejects the command with a connection error', async () => {
  const d = await startDaemon();
  const [clientEnd, serverEnd] = duplexPair();
  try {
    d.server.handleConnection(serverEnd);
    const conn = await connect('relayed.example', { transport: clientEnd, token: d.token, fingerprint: d.fingerprint });
    const proc = conn.spawn('sleep 30', {});
    await new Promise((r) => setTimeout(r, 100));
    serverEnd.destroy();
    await assert.rejects(proc.exited, { code: 'SW_ERR_CONNECTION_CLOSED' });
  } finally {
    clientEnd.destroy();
    await d.stop();
  }
});

test('a frame in the same chunk as WELCOME reaches the connection', async () => {
  const root = mkdtempSync(join(tmpdir(), 'shellwire-welcome-'));
  const identity = await loadOrCreateIdentity(root);
  const server = createTlsServer({ key: identity.keyPem, cert: identity.certPem, minVersion: TLS_MIN_VERSION, ALPNProtocols: [ALPN_PROTOCOL] });
  const sockets: TLSSocket[] = [];
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder((frame) => {
      if (frame.type !== FrameType.HELLO) return;
      const welcome = encodeFrame(FrameType.WELCOME, 0, encodeJson({
        magic: PROTOCOL_MAGIC, version: 1, server: 'raw/1', hostname: 'raw', user: 'u', maxPayload: 65536, maxChannels: 8, keepaliveMs: 0, features: [],
      }));
      // GOODBYE right behind WELCOME, in ONE write: the connection must hear it.
      const goodbye = encodeFrame(FrameType.GOODBYE, 0, encodeJson({ code: 'SW_ERR_SERVER_SHUTTING_DOWN', message: 'going away now' }));
      socket.write(Buffer.concat([welcome, goodbye]));
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  try {
    const conn = await connect({ host: '127.0.0.1', port }, { token: 't', fingerprint: identity.fingerprint, keepaliveMs: 0 });
    const closed = once(conn, 'close');
    const spawnedError = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('still open'), 3_000)),
    ]);
    assert.equal(spawnedError, 'closed');
    // The GOODBYE's reason is the connection's: not a bare "connection closed".
    assert.throws(() => conn.spawn('true', {}), /going away now|SW_ERR_SERVER_SHUTTING_DOWN|closed/);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a Duplex.from() transport that errors when destroyed does not crash the client process (wrong host key)', () => {
  // In a child process: an uncaught exception there is its exit status, not a lost test run.
  const root = mkdtempSync(join(tmpdir(), 'shellwire-duplex-from-'));
  try {
    const fixture = join(import.meta.dirname, '../fixtures/duplex-from-client.ts');
    const child = spawnSync(process.execPath, ['--import', 'tsx', fixture, root], { cwd: join(import.meta.dirname, '../..'), encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.stdout, 'rejected SW_ERR_HOST_KEY_CHANGED\nalive\n', child.stderr);
    assert.equal(child.status, 0, child.stderr);
    assert.doesNotMatch(child.stderr, /AbortError|Unhandled/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * The client's channel kinds on the core table, without a socket: the shared close grace
 * (src/client/client-channel.ts) and the frames RemoteProcess may send before OPEN_OK.
 * The daemon's side is played by hand: frames are dispatched to a real opener table and
 * what the client sends is recorded.
 */
import { test, mock, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, frameTypeName } from '../../src/protocol/frame.js';
import { encodeJson } from '../../src/protocol/messages.js';
import { ChannelTable } from '../../src/channel/channel-table.js';
import { ChannelRole } from '../../src/channel/channel-state.js';
import { ConnectionError, ErrorCode, RequestError, type ShellwireError } from '../../src/errors.js';
import { CHANNEL_CLOSE_GRACE_MS, ClientChannel } from '../../src/client/client-channel.js';
import { RemoteProcess } from '../../src/client/remote-process.js';
import type { ClientChannelHost } from '../../src/client/channel-host.js';
import type { FrameConnection } from '../../src/transport/frame-connection.js';

afterEach(() => mock.timers.reset());

function host() {
  const sent: string[] = [];
  const table = new ChannelTable({
    role: ChannelRole.OPENER,
    sink: { send: (type, channel) => void sent.push(`${frameTypeName(type)} ${channel}`) },
    maxChannels: 8,
    peer: 'web1:50007',
  });
  const owner: ClientChannelHost = {
    // Only stdin writers wait on the transport; these tests write none.
    transport: null as unknown as FrameConnection,
    hostLabel: 'web1:50007',
    openChannel: (message, hooks) => table.open(message, hooks),
  };
  const daemon = (type: FrameType, channel: number, message?: object) =>
    table.dispatch({ type, channel, payload: message ? encodeJson(message) : Buffer.alloc(0) });
  return { sent, table, owner, daemon };
}

function kind(ends: (ShellwireError | null)[]) {
  return {
    hooks: { onData: () => {}, onWindow: () => {}, onExit: () => {} },
    refused: (fail: { code: ErrorCode; message: string }) => new RequestError(fail.code, fail.message),
    ended: (error: ShellwireError | null) => void ends.push(error),
  };
}

test('a close the daemon never confirms ends the kind after the grace, once; the id stays taken until its CLOSE', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  const h = host();
  const ends: (ShellwireError | null)[] = [];
  const link = new ClientChannel(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: {} }, kind(ends));
  h.daemon(FrameType.OPEN_OK, link.id, { window: 64, maxPacket: 64 });
  link.close();
  link.close();
  assert.deepEqual(h.sent, ['OPEN 1', 'CLOSE 1']);
  mock.timers.tick(CHANNEL_CLOSE_GRACE_MS - 1);
  assert.deepEqual(ends, []);
  mock.timers.tick(1);
  assert.deepEqual(ends, [null], 'canceled after the grace');
  assert.equal(h.table.size, 1, 'the id is still reserved');
  // Late frames of the abandoned channel are dropped, not errors, and end nothing twice.
  h.daemon(FrameType.STDOUT, link.id, { late: true });
  h.daemon(FrameType.EXIT, link.id, { exitCode: 0 });
  h.daemon(FrameType.CLOSE, link.id);
  assert.deepEqual(ends, [null]);
  assert.equal(h.table.size, 0, 'the daemon\'s CLOSE freed the id');
  assert.deepEqual(h.sent, ['OPEN 1', 'CLOSE 1'], 'no WINDOW and no second CLOSE after ours');
});

test('a close asked before OPEN_OK waits for it, and is dropped on OPEN_FAIL: the refusal ends the kind', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  const h = host();
  const ends: (ShellwireError | null)[] = [];
  const a = new ClientChannel(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: {} }, kind(ends));
  const b = new ClientChannel(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: {} }, kind(ends));
  a.close();
  b.close();
  assert.deepEqual(h.sent, ['OPEN 1', 'OPEN 2'], 'no CLOSE before OPEN_OK');
  h.daemon(FrameType.OPEN_FAIL, a.id, { code: ErrorCode.BAD_REQUEST, message: 'no such directory' });
  h.daemon(FrameType.OPEN_OK, b.id, { window: 64, maxPacket: 64 });
  assert.deepEqual(h.sent, ['OPEN 1', 'OPEN 2', 'CLOSE 2']);
  assert.equal(ends.length, 1);
  assert.equal(ends[0]?.code, ErrorCode.BAD_REQUEST);
  h.daemon(FrameType.CLOSE, b.id);
  assert.deepEqual(ends.slice(1), [null]);
  mock.timers.tick(CHANNEL_CLOSE_GRACE_MS);
  assert.equal(ends.length, 2, 'the grace timer of an ended channel does nothing');
});

test('connection lost: each kind ends once with the connection\'s error, also one that was closing', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  const h = host();
  const ends: (ShellwireError | null)[] = [];
  const a = new ClientChannel(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: {} }, kind(ends));
  new ClientChannel(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: {} }, kind(ends));
  a.close();
  const lost = new ConnectionError(ErrorCode.CONNECTION_CLOSED, 'gone');
  h.table.connectionLost(lost);
  mock.timers.tick(CHANNEL_CLOSE_GRACE_MS);
  assert.deepEqual(ends, [lost, lost]);
});

test('RemoteProcess: resize, kill and stdin end before OPEN_OK are held; none crosses an OPEN_FAIL', async () => {
  const h = host();
  const refused = new RemoteProcess(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: { command: 'cat', pty: { term: 'xterm', cols: 80, rows: 24 } } }, 'cat');
  refused.resize(100, 30);
  refused.kill('SIGINT');
  refused.stdin.end();
  await new Promise((r) => setImmediate(r));
  h.daemon(FrameType.OPEN_FAIL, refused.id, { code: ErrorCode.BAD_REQUEST, message: 'no such directory' });
  await assert.rejects(refused.exited, (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  assert.deepEqual(h.sent, ['OPEN 1'], 'nothing for the refused channel but its OPEN');

  const accepted = new RemoteProcess(h.owner, { kind: 'exec', window: 64, maxPacket: 64, params: { command: 'cat', pty: { term: 'xterm', cols: 80, rows: 24 } } }, 'cat');
  accepted.resize(90, 20);
  accepted.resize(100, 30);
  accepted.kill('SIGINT');
  accepted.stdin.end();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.sent, ['OPEN 1', 'OPEN 2']);
  h.daemon(FrameType.OPEN_OK, accepted.id, { window: 64, maxPacket: 64, pid: 42 });
  assert.deepEqual(h.sent, ['OPEN 1', 'OPEN 2', 'RESIZE 2', 'SIGNAL 2', 'EOF 2'], 'held in order, only the last size');
  assert.equal(accepted.pid, 42);
  h.daemon(FrameType.EXIT, accepted.id, { exitCode: 0, signal: null, timedOut: false });
  h.daemon(FrameType.CLOSE, accepted.id);
  assert.equal((await accepted.exited).exitCode, 0);
});

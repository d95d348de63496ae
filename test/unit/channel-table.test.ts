/**
 * The channel table (src/channel/channel-table.ts): id allocation, dispatch, the
 * table-level errors and connection loss, with two tables back to back over the in-memory
 * link (real frame bytes).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType } from '../../src/protocol/frame.js';
import { encodeJson } from '../../src/protocol/messages.js';
import { ChannelTable, type AcceptResult, type IncomingOpen } from '../../src/channel/channel-table.js';
import { ChannelRole, CloseReason, type Channel, type ChannelHooks } from '../../src/channel/channel-state.js';
import { ErrorCode, ProtocolError, RequestError, ConnectionError } from '../../src/errors.js';
import { LinkDirection } from '../helpers/channel-link.js';

function hooks(log: string[], name: string): ChannelHooks {
  return {
    onOpen: () => log.push(`${name} open`),
    onData: () => {},
    onWindow: () => {},
    onExit: () => log.push(`${name} exit`),
    onClose: (reason) => log.push(`${name} ${reason}`),
  };
}

function pair(options: { maxChannels?: number; accept?: (o: IncomingOpen) => AcceptResult } = {}) {
  const up = new LinkDirection();
  const down = new LinkDirection();
  const log: string[] = [];
  const server = new ChannelTable({
    role: ChannelRole.ACCEPTOR,
    sink: down,
    maxChannels: options.maxChannels ?? 4,
    accept:
      options.accept ??
      ((o) => {
        const ch = o.accept({ window: 16, maxPacket: 16 }, hooks(log, `s${o.id}`));
        ch.openOk({ window: 16, maxPacket: 16 });
        return ch;
      }),
  });
  const client = new ChannelTable({ role: ChannelRole.OPENER, sink: up, maxChannels: options.maxChannels ?? 4, peer: 'web1:50007' });
  up.connect(server);
  down.connect(client);
  const flush = () => {
    while (up.queued || down.queued) {
      up.deliver();
      down.deliver();
    }
  };
  const open = (name: string) => client.open({ kind: 'exec', window: 16, maxPacket: 16, params: { command: 'true' } }, hooks(log, name));
  return { up, down, server, client, log, flush, open };
}

describe('ids', () => {
  test('the opener counts up from 1 and an id is free only after both CLOSEs', () => {
    const p = pair();
    const a = p.open('a');
    const b = p.open('b');
    assert.deepEqual([a.id, b.id], [1, 2]);
    p.flush();
    a.close();
    p.up.deliver();
    // The server answered, we have not heard it yet: id 1 is still taken on both sides.
    assert.equal(p.client.get(1), a);
    assert.equal(p.server.get(1), undefined, 'the server forgets once it sent and received CLOSE');
    p.flush();
    assert.equal(p.client.get(1), undefined);
    assert.equal(p.open('c').id, 3, 'counting goes on');
  });

  test('ids wrap at 2^32-1 to 1, never 0', () => {
    const p = pair();
    const low = p.open('low');
    assert.equal(low.id, 1);
    const client = new ChannelTable({ role: ChannelRole.OPENER, sink: p.up, maxChannels: 8, firstId: 0xfffffffe });
    const ids = [0, 1, 2, 3].map((i) => client.open({ kind: 'exec', window: 1, maxPacket: 1, params: {} }, hooks([], `w${i}`)).id);
    assert.deepEqual(ids, [0xfffffffe, 0xffffffff, 1, 2], 'never 0, the connection');
  });

  test('after an OPEN_FAIL the id is free at once on both sides', () => {
    const p = pair({ accept: () => ({ refuse: { code: ErrorCode.DENIED, message: 'no' } }) });
    const a = p.open('a');
    p.flush();
    assert.equal(p.client.get(a.id), undefined);
    assert.deepEqual(p.log, ['a open-failed']);
    assert.equal(p.down.sent[0]!.type, FrameType.OPEN_FAIL);
  });
});

describe('table errors', () => {
  test('a frame for an id not open is SW_ERR_UNKNOWN_CHANNEL, channel 0 included', () => {
    const p = pair();
    for (const frame of [{ type: FrameType.STDIN, channel: 9 }, { type: FrameType.WINDOW, channel: 0 }, { type: FrameType.HELLO, channel: 0 }]) {
      assert.throws(
        () => p.server.dispatch({ ...frame, payload: Buffer.alloc(4, 1) }),
        (err: ProtocolError) => err.code === ErrorCode.UNKNOWN_CHANNEL,
      );
    }
    assert.throws(() => p.client.dispatch({ type: FrameType.STDOUT, channel: 5, payload: Buffer.from('x') }), (err: ProtocolError) => err.code === ErrorCode.UNKNOWN_CHANNEL && /web1:50007/.test(err.message));
  });

  test('OPEN for an id in use is SW_ERR_CHANNEL_IN_USE', () => {
    const p = pair();
    p.open('a');
    p.flush();
    assert.throws(
      () => p.server.dispatch({ type: FrameType.OPEN, channel: 1, payload: encodeJson({ kind: 'exec', window: 1, maxPacket: 1, params: {} }) }),
      (err: ProtocolError) => err.code === ErrorCode.CHANNEL_IN_USE,
    );
  });

  test('max channels: the opener refuses locally, the acceptor answers OPEN_FAIL', () => {
    const p = pair({ maxChannels: 2 });
    p.open('a');
    p.open('b');
    assert.throws(() => p.open('c'), (err: RequestError) => err instanceof RequestError && err.code === ErrorCode.TOO_MANY_CHANNELS);
    p.flush();
    // A peer that ignores WELCOME.maxChannels is refused by the acceptor.
    p.server.dispatch({ type: FrameType.OPEN, channel: 9, payload: encodeJson({ kind: 'exec', window: 1, maxPacket: 1, params: {} }) });
    const fail = p.down.sent.at(-1)!;
    assert.equal(fail.type, FrameType.OPEN_FAIL);
    assert.equal(JSON.parse(fail.payload.toString()).code, ErrorCode.TOO_MANY_CHANNELS);
  });

  test('a channel whose frame breaks the protocol ends with protocol-error, the rest with connection-lost', () => {
    const p = pair();
    p.open('a');
    p.open('b');
    p.flush();
    const error = (() => {
      try {
        p.client.dispatch({ type: FrameType.STDIN, channel: 1, payload: Buffer.from('x') });
      } catch (err) {
        return err as ProtocolError;
      }
      return null;
    })();
    assert.equal(error?.code, ErrorCode.BAD_MESSAGE);
    p.client.connectionLost(error);
    assert.deepEqual(p.log.filter((l) => !l.endsWith('open')), ['a protocol-error', 'b connection-lost']);
  });

  test('an accept() that throws fails the connection; a channel it built hears it once', () => {
    let built: Channel | null = null;
    const p = pair({
      accept: (o) => {
        built = o.accept({ window: 1, maxPacket: 1 }, hooks([], 'x'));
        throw new ProtocolError(ErrorCode.BAD_MESSAGE, 'bad');
      },
    });
    p.open('a');
    assert.throws(() => p.flush(), (err: ProtocolError) => err.code === ErrorCode.BAD_MESSAGE);
    assert.equal((built as Channel | null)?.ended, true);
    assert.equal(p.server.size, 0);
  });
});

describe('connection lost', () => {
  test('every channel is told once; open() then throws the connection error', () => {
    const p = pair({
      accept: (o) => {
        const ch = o.accept({ window: 16, maxPacket: 16 }, hooks(p.log, `s${o.id}`));
        if (o.id !== 3) ch.openOk({ window: 16, maxPacket: 16 });
        return ch;
      },
    });
    p.open('a');
    p.open('b');
    p.open('c'); // the server leaves this one opening
    p.flush();
    p.client.get(2)!.close();
    p.up.deliver();
    const lost = new ConnectionError(ErrorCode.CONNECTION_CLOSED, 'gone');
    p.client.connectionLost(lost);
    p.client.connectionLost(lost);
    p.server.connectionLost(null);
    const ends = p.log.filter((l) => !l.endsWith('open')).sort();
    assert.deepEqual(ends, ['a connection-lost', 'b connection-lost', 'c connection-lost', 's1 connection-lost', 's2 normal', 's3 connection-lost']);
    assert.throws(() => p.open('d'), (err) => err === lost);
    assert.equal(p.client.size, 0);
    p.client.dispatch({ type: FrameType.STDOUT, channel: 1, payload: Buffer.from('x') }); // ignored after loss
    assert.equal(CloseReason.CONNECTION_LOST, 'connection-lost');
  });
});

/**
 * The channel state machine (src/channel/channel-state.ts), one example per ordering rule
 * R1–R14 of its header comment, without sockets: frames go to a recording sink and come
 * in through receive().
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, frameTypeName, type Frame } from '../../src/protocol/frame.js';
import { encodeJson, encodeWindow } from '../../src/protocol/messages.js';
import { Channel, ChannelRole, ChannelState, CloseReason, type ChannelHooks, type CloseDetail, type DataStream } from '../../src/channel/channel-state.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';

interface Recorder {
  sent: { type: string; payload: Buffer }[];
  closes: { reason: CloseReason; detail: CloseDetail }[];
  data: { stream: DataStream; bytes: string }[];
  events: string[];
}

function make(role: ChannelRole, open = { window: 8, maxPacket: 4 }, extraHooks: Partial<ChannelHooks> = {}): { ch: Channel; r: Recorder } {
  const r: Recorder = { sent: [], closes: [], data: [], events: [] };
  const hooks: ChannelHooks = {
    onOpen: () => r.events.push('open'),
    onData: (stream, bytes) => r.data.push({ stream, bytes: bytes.toString() }),
    onWindow: () => r.events.push('window'),
    onEof: () => r.events.push('eof'),
    onSignal: (p) => r.events.push(`signal ${p.toString()}`),
    onResize: () => r.events.push('resize'),
    onExit: (p) => r.events.push(`exit ${p.toString()}`),
    onClose: (reason, detail) => r.closes.push({ reason, detail }),
    ...extraHooks,
  };
  const ch = new Channel({
    id: 7,
    role,
    hooks,
    open,
    sink: { send: (type, _channel, payload) => r.sent.push({ type: frameTypeName(type), payload: Buffer.from(payload ?? []) }) },
  });
  return { ch, r };
}

const f = (type: FrameType, payload: Buffer = Buffer.alloc(0)): Frame => ({ type, channel: 7, payload });
const openOk = (window = 8, maxPacket = 4) => f(FrameType.OPEN_OK, encodeJson({ window, maxPacket }));
const openFail = () => f(FrameType.OPEN_FAIL, encodeJson({ code: 'SW_ERR_BAD_REQUEST', message: 'no such dir' }));
const types = (r: Recorder) => r.sent.map((s) => s.type);

function isCode(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.channel, 7);
    return true;
  };
}

describe('R1: nothing but OPEN before OPEN_OK', () => {
  test('close, signal, resize and EOF asked for while opening wait for OPEN_OK', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    assert.equal(ch.signal('SIGINT'), true);
    ch.resize(80, 24);
    ch.resize(100, 30);
    ch.eof();
    assert.deepEqual(types(r), []);
    ch.receive(openOk());
    assert.deepEqual(types(r), ['SIGNAL', 'RESIZE', 'EOF'], 'held frames in order, only the last size');
    assert.equal(r.sent[1]!.payload.toString(), '{"cols":100,"rows":30}');
  });

  test('a close while opening goes out right after OPEN_OK, alone', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.signal('SIGINT');
    ch.close();
    assert.equal(ch.signal('SIGTERM'), false, 'nothing more after a close was asked for');
    assert.equal(ch.state, ChannelState.OPENING);
    assert.deepEqual(types(r), []);
    ch.receive(openOk());
    assert.deepEqual(types(r), ['CLOSE']);
    assert.equal(ch.state, ChannelState.CLOSING);
    ch.receive(f(FrameType.CLOSE));
    assert.deepEqual(types(r), ['CLOSE'], 'crossing CLOSE not answered');
    assert.deepEqual(r.closes.map((c) => c.reason), [CloseReason.NORMAL]);
  });

  test('no data before OPEN_OK: no credit yet', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    assert.equal(ch.sendCredit, 0);
    assert.equal(ch.write('stdin', Buffer.from('abc')), 0);
    ch.consumed(100);
    assert.deepEqual(types(r), []);
  });
});

describe('R2: OPEN_FAIL ends the channel at once, no CLOSE', () => {
  test('held frames and a held close are dropped', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.signal('SIGINT');
    ch.close();
    ch.receive(openFail());
    assert.deepEqual(types(r), []);
    assert.equal(ch.state, ChannelState.OPEN_FAILED);
    assert.equal(r.closes.length, 1);
    assert.equal(r.closes[0]!.reason, CloseReason.OPEN_FAILED);
    assert.equal(r.closes[0]!.detail.openFail?.code, 'SW_ERR_BAD_REQUEST');
  });

  test('acceptor: openFail sends OPEN_FAIL with extra fields and ends', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    assert.equal(ch.openFail('SW_ERR_BAD_REQUEST', 'nope', { errno: 'ENOENT' }), true);
    assert.deepEqual(types(r), ['OPEN_FAIL']);
    assert.equal(r.sent[0]!.payload.toString(), '{"code":"SW_ERR_BAD_REQUEST","message":"nope","errno":"ENOENT"}');
    assert.equal(ch.openOk({ window: 1, maxPacket: 1 }), false, 'answered once');
    assert.equal(r.closes[0]!.reason, CloseReason.OPEN_FAILED);
  });

  test('acceptor: a close while opening is deferred until its OPEN_OK, dropped by its OPEN_FAIL', () => {
    const a = make(ChannelRole.ACCEPTOR);
    a.ch.close();
    a.ch.openOk({ window: 4, maxPacket: 4 });
    assert.deepEqual(types(a.r), ['OPEN_OK', 'CLOSE']);
    const b = make(ChannelRole.ACCEPTOR);
    b.ch.close();
    b.ch.openFail('SW_ERR_DENIED', 'no');
    assert.deepEqual(types(b.r), ['OPEN_FAIL']);
  });
});

describe('R3: frames before OPEN_OK', () => {
  for (const type of [FrameType.WINDOW, FrameType.STDOUT, FrameType.EXIT]) {
    test(`opener: ${frameTypeName(type)} before OPEN_OK is SW_ERR_BAD_MESSAGE`, () => {
      const { ch } = make(ChannelRole.OPENER);
      assert.throws(() => ch.receive(f(type, type === FrameType.WINDOW ? encodeWindow(1) : Buffer.from('{}'))), isCode(ErrorCode.BAD_MESSAGE));
    });
  }
  test('acceptor: STDIN before its OPEN_OK is SW_ERR_BAD_MESSAGE', () => {
    const { ch } = make(ChannelRole.ACCEPTOR);
    assert.throws(() => ch.receive(f(FrameType.STDIN, Buffer.from('x'))), isCode(ErrorCode.BAD_MESSAGE));
  });
  test('a CLOSE before OPEN_OK is answered and ends the channel (a peer that gave up at once)', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.receive(f(FrameType.CLOSE));
    assert.deepEqual(types(r), ['CLOSE']);
    assert.equal(r.closes[0]!.reason, CloseReason.NORMAL);
  });
});

describe('R4: data within the peer credit and maxPacket', () => {
  test('write sends at most the credit, in frames of at most maxPacket; WINDOW lets it go on', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.receive(openOk(10, 4));
    assert.equal(ch.write('stdin', Buffer.from('abcdefghijklmn')), 10);
    assert.deepEqual(r.sent.map((s) => s.payload.toString()), ['abcd', 'efgh', 'ij']);
    assert.equal(ch.sendCredit, 0);
    assert.equal(ch.write('stdin', Buffer.from('k')), 0);
    ch.receive(f(FrameType.WINDOW, encodeWindow(3)));
    assert.ok(r.events.includes('window'));
    assert.equal(ch.write('stdin', Buffer.from('klmn')), 3);
  });

  test('the acceptor sends stdout and stderr from one shared window', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR, { window: 5, maxPacket: 100 });
    ch.openOk({ window: 0, maxPacket: 100 });
    assert.equal(ch.write('stdout', Buffer.from('abc')), 3);
    assert.equal(ch.write('stderr', Buffer.from('def')), 2);
    assert.deepEqual(types(r), ['OPEN_OK', 'STDOUT', 'STDERR']);
    assert.throws(() => ch.write('stdin', Buffer.from('x')), TypeError);
  });
});

describe('R5: overrun', () => {
  test('data beyond our credit is SW_ERR_WINDOW_OVERRUN', () => {
    const { ch } = make(ChannelRole.OPENER, { window: 4, maxPacket: 4 });
    ch.receive(openOk());
    ch.receive(f(FrameType.STDOUT, Buffer.from('abc')));
    assert.throws(() => ch.receive(f(FrameType.STDERR, Buffer.from('de'))), isCode(ErrorCode.WINDOW_OVERRUN));
  });

  test('still counted after our CLOSE: the late output is dropped, an overrun still fatal', () => {
    const { ch, r } = make(ChannelRole.OPENER, { window: 4, maxPacket: 4 });
    ch.receive(openOk());
    ch.close();
    ch.receive(f(FrameType.STDOUT, Buffer.from('abcd')));
    assert.deepEqual(r.data, []);
    assert.throws(() => ch.receive(f(FrameType.STDOUT, Buffer.from('e'))), isCode(ErrorCode.WINDOW_OVERRUN));
  });

  test('credit above 2^32-1 is SW_ERR_WINDOW_OVERRUN', () => {
    const { ch } = make(ChannelRole.OPENER);
    ch.receive(openOk(0xffffffff, 4));
    assert.throws(() => ch.receive(f(FrameType.WINDOW, encodeWindow(1))), isCode(ErrorCode.WINDOW_OVERRUN));
  });
});

describe('R6: credit returns at half the window, never after our CLOSE or the peer EXIT', () => {
  test('one WINDOW at half the window', () => {
    const { ch, r } = make(ChannelRole.OPENER, { window: 8, maxPacket: 8 });
    ch.receive(openOk());
    ch.receive(f(FrameType.STDOUT, Buffer.from('abcdef')));
    ch.consumed(3);
    assert.deepEqual(types(r), []);
    ch.consumed(1);
    assert.deepEqual(types(r), ['WINDOW']);
    assert.equal(r.sent[0]!.payload.readUInt32BE(0), 4);
  });

  test('no WINDOW after our CLOSE', () => {
    const { ch, r } = make(ChannelRole.OPENER, { window: 8, maxPacket: 8 });
    ch.receive(openOk());
    ch.receive(f(FrameType.STDOUT, Buffer.from('abcdefgh')));
    ch.close();
    ch.consumed(8);
    assert.deepEqual(types(r), ['CLOSE']);
  });

  test('no WINDOW once the peer said EXIT', () => {
    const { ch, r } = make(ChannelRole.OPENER, { window: 8, maxPacket: 8 });
    ch.receive(openOk());
    ch.receive(f(FrameType.STDOUT, Buffer.from('abcdefgh')));
    ch.receive(f(FrameType.EXIT, encodeJson({ exitCode: 0, signal: null, timedOut: false })));
    ch.consumed(8);
    assert.deepEqual(types(r), []);
  });

  test('acceptor: no WINDOW for STDIN after its EXIT+CLOSE', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    ch.openOk({ window: 4, maxPacket: 4 });
    ch.receive(f(FrameType.STDIN, Buffer.from('abcd')));
    ch.exit({ exitCode: 0, signal: null, timedOut: false });
    ch.consumed(4);
    assert.deepEqual(types(r), ['OPEN_OK', 'EXIT', 'CLOSE']);
  });
});

describe('R7/R8: EOF', () => {
  test('no data after our EOF, and EOF only once', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.receive(openOk());
    assert.equal(ch.eof(), true);
    assert.equal(ch.eof(), false);
    assert.equal(ch.sendCredit, 0);
    assert.equal(ch.write('stdin', Buffer.from('late')), 0);
    assert.deepEqual(types(r), ['EOF']);
  });

  test('EOF carries a payload when the kind has one (file put)', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.receive(openOk());
    ch.eof({ sha256: 'ab', size: 2 });
    assert.equal(r.sent[0]!.payload.toString(), '{"sha256":"ab","size":2}');
  });

  test('STDIN after the peer EOF is discarded and its credit returned', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    ch.openOk({ window: 4, maxPacket: 4 });
    ch.receive(f(FrameType.EOF));
    ch.receive(f(FrameType.EOF));
    assert.deepEqual(r.events, ['eof'], 'a second EOF is not delivered');
    ch.receive(f(FrameType.STDIN, Buffer.from('ab')));
    assert.deepEqual(r.data, []);
    assert.deepEqual(types(r), ['OPEN_OK', 'WINDOW']);
  });
});

describe('R9/R10: EXIT', () => {
  test('EXIT and CLOSE go together; nothing after', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    assert.equal(ch.exit({ exitCode: 0 }), false, 'no EXIT before OPEN_OK');
    ch.openOk({ window: 4, maxPacket: 4 });
    assert.equal(ch.exit({ exitCode: 0 }), true);
    assert.equal(ch.exit({ exitCode: 1 }), false);
    assert.equal(ch.write('stdout', Buffer.from('x')), 0);
    assert.deepEqual(types(r), ['OPEN_OK', 'EXIT', 'CLOSE']);
    assert.equal(ch.state, ChannelState.CLOSING);
  });

  test('no EXIT after a CLOSE', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    ch.openOk({ window: 4, maxPacket: 4 });
    ch.close();
    assert.equal(ch.exit({ exitCode: 0 }), false);
    assert.deepEqual(types(r), ['OPEN_OK', 'CLOSE']);
  });

  test('data or a second EXIT after EXIT is SW_ERR_BAD_MESSAGE', () => {
    const { ch } = make(ChannelRole.OPENER);
    ch.receive(openOk());
    ch.receive(f(FrameType.EXIT, Buffer.from('{}')));
    assert.throws(() => ch.receive(f(FrameType.STDOUT, Buffer.from('x'))), isCode(ErrorCode.BAD_MESSAGE));
    const b = make(ChannelRole.OPENER);
    b.ch.receive(openOk());
    b.ch.receive(f(FrameType.EXIT, Buffer.from('{}')));
    assert.throws(() => b.ch.receive(f(FrameType.EXIT, Buffer.from('{}'))), isCode(ErrorCode.BAD_MESSAGE));
  });
});

describe('R11/R12: the close handshake', () => {
  test('crossing: our CLOSE crosses EXIT+CLOSE; EXIT still reported, no second CLOSE', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.receive(openOk());
    ch.close();
    ch.receive(f(FrameType.EXIT, Buffer.from('{"exitCode":0}')));
    ch.receive(f(FrameType.CLOSE));
    assert.deepEqual(types(r), ['CLOSE']);
    assert.deepEqual(r.events, ['open', 'window', 'exit {"exitCode":0}']);
    assert.equal(r.closes.length, 1);
    assert.equal(r.closes[0]!.detail.exited, true);
  });

  test('after our CLOSE, WINDOW, SIGNAL, EOF and RESIZE are ignored and never answered', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    ch.openOk({ window: 4, maxPacket: 4 });
    ch.close();
    ch.receive(f(FrameType.WINDOW, encodeWindow(5)));
    ch.receive(f(FrameType.SIGNAL, encodeJson({ signal: 'SIGINT' })));
    ch.receive(f(FrameType.EOF));
    ch.receive(f(FrameType.RESIZE, encodeJson({ cols: 1, rows: 1 })));
    ch.receive(f(FrameType.STDIN, Buffer.from('ab')));
    assert.deepEqual(r.events, []);
    assert.deepEqual(types(r), ['OPEN_OK', 'CLOSE']);
  });

  test('a CLOSE received is answered once; the channel ends normally', () => {
    const { ch, r } = make(ChannelRole.ACCEPTOR);
    ch.openOk({ window: 4, maxPacket: 4 });
    ch.receive(f(FrameType.CLOSE));
    assert.deepEqual(types(r), ['OPEN_OK', 'CLOSE']);
    assert.equal(ch.state, ChannelState.CLOSED);
    ch.close();
    assert.equal(ch.exit({}), false);
    assert.deepEqual(types(r), ['OPEN_OK', 'CLOSE']);
    assert.deepEqual(r.closes.map((c) => c.reason), [CloseReason.NORMAL]);
  });
});

describe('R13: frames a role or a kind does not take', () => {
  test('STDIN to the opener, STDOUT/EXIT/OPEN_OK to the acceptor: SW_ERR_BAD_MESSAGE', () => {
    const a = make(ChannelRole.OPENER);
    a.ch.receive(openOk());
    assert.throws(() => a.ch.receive(f(FrameType.STDIN, Buffer.from('x'))), isCode(ErrorCode.BAD_MESSAGE));
    assert.throws(() => a.ch.receive(openOk()), isCode(ErrorCode.BAD_MESSAGE), 'a second OPEN_OK');
    const b = make(ChannelRole.ACCEPTOR);
    b.ch.openOk({ window: 4, maxPacket: 4 });
    for (const type of [FrameType.STDOUT, FrameType.EXIT, FrameType.OPEN_OK, FrameType.OPEN]) {
      assert.throws(() => b.ch.receive(f(type, Buffer.from('{}'))), isCode(ErrorCode.BAD_MESSAGE));
    }
  });

  test('a kind without a hook (a session takes no data, no signal) refuses the frame', () => {
    const { ch } = make(ChannelRole.ACCEPTOR, { window: 1, maxPacket: 1 }, { onData: undefined, onSignal: undefined, onWindow: undefined });
    ch.openOk({ window: 0, maxPacket: 1024 });
    assert.throws(() => ch.receive(f(FrameType.SIGNAL, encodeJson({ signal: 'SIGINT' }))), isCode(ErrorCode.BAD_MESSAGE));
    assert.throws(() => ch.receive(f(FrameType.WINDOW, encodeWindow(1))), isCode(ErrorCode.BAD_MESSAGE));
  });

  test('a malformed WINDOW is SW_ERR_BAD_MESSAGE', () => {
    const { ch } = make(ChannelRole.OPENER);
    ch.receive(openOk());
    assert.throws(() => ch.receive(f(FrameType.WINDOW, Buffer.from([0, 0, 0, 0]))), (err: ProtocolError) => err.code === ErrorCode.BAD_MESSAGE);
  });
});

describe('R14: ends exactly once', () => {
  test('connection lost after a CLOSE handshake, or twice, tells nothing more', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    ch.receive(openOk());
    ch.connectionLost(new Error('gone'));
    ch.connectionLost(new Error('again'));
    ch.protocolError(new Error('late'));
    assert.deepEqual(r.closes.map((c) => c.reason), [CloseReason.CONNECTION_LOST]);
    assert.equal(ch.signal('SIGINT'), false);
    assert.equal(ch.write('stdin', Buffer.from('x')), 0);
    ch.close();
    assert.deepEqual(types(r), []);
  });

  test('role misuse is a TypeError, not a frame', () => {
    const { ch, r } = make(ChannelRole.OPENER);
    assert.throws(() => ch.openOk({ window: 1, maxPacket: 1 }), TypeError);
    assert.throws(() => ch.exit({}), TypeError);
    const b = make(ChannelRole.ACCEPTOR);
    assert.throws(() => b.ch.signal('SIGINT'), TypeError);
    assert.throws(() => b.ch.eof(), TypeError);
    assert.deepEqual(types(r), []);
  });
});

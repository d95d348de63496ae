/**
 * Property tests of the channel layer without sockets: a client table (opener) and a
 * daemon table (acceptor) back to back over the in-memory link (real frame bytes, real
 * decoder, data frames split anywhere), driven by random scripts of application actions
 * (open with any answer, write, slow reads, signal, resize, EOF, EXIT, close from either
 * side, connection loss) and random deliveries interleaving the two directions.
 *
 * Checked: credit is conserved (no sender ever exceeds the credit it was given, nor the
 * peer's maxPacket, so no overrun is ever produced), no frame before OPEN_OK or after
 * CLOSE / OPEN_FAIL, nothing after the connection died, every channel ends exactly once on
 * each side, data arrives intact and in order, and nothing deadlocks: when the
 * applications keep reading, every channel ends and both tables are empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameType, frameTypeName, type Frame } from '../../src/protocol/frame.js';
import { decodeExit, decodeOpenOk, decodeResize, decodeSignal, decodeWindow, parseJsonObject } from '../../src/protocol/messages.js';
import { ChannelTable, type AcceptResult, type IncomingOpen } from '../../src/channel/channel-table.js';
import { ChannelRole, CloseReason, type Channel, type DataStream } from '../../src/channel/channel-state.js';
import { ConnectionError, ErrorCode } from '../../src/errors.js';
import { LinkDirection, type SentFrame } from '../helpers/channel-link.js';

type OpenMode = 'ok' | 'fail' | 'refuse' | 'async';

interface ClientApp {
  ch: Channel;
  mode: OpenMode;
  serverWindow: number;
  serverMaxPacket: number;
  pending: Buffer;
  accepted: Buffer[];
  received: Record<'stdout' | 'stderr', Buffer[]>;
  unconsumed: number;
  eofWanted: boolean;
  closeAsked: boolean;
  exits: number;
  closes: CloseReason[];
}

interface ServerApp {
  ch: Channel;
  partner: ClientApp;
  pending: { stream: DataStream; bytes: Buffer }[];
  accepted: Record<'stdout' | 'stderr', Buffer[]>;
  stdin: Buffer[];
  unconsumed: number;
  exitWanted: boolean;
  eofs: number;
  closes: CloseReason[];
}

const action = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('open' as const), window: fc.integer({ min: 1, max: 40 }), maxPacket: fc.integer({ min: 1, max: 16 }), mode: fc.constantFrom<OpenMode>('ok', 'ok', 'fail', 'refuse', 'async'), sWindow: fc.integer({ min: 0, max: 40 }), sMaxPacket: fc.integer({ min: 1, max: 16 }) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('cwrite' as const), i: fc.nat(), bytes: fc.uint8Array({ maxLength: 30 }) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('swrite' as const), i: fc.nat(), stderr: fc.boolean(), bytes: fc.uint8Array({ maxLength: 30 }) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('cread' as const), i: fc.nat(), n: fc.integer({ min: 1, max: 20 }) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('sread' as const), i: fc.nat(), n: fc.integer({ min: 1, max: 20 }) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constantFrom('signal' as const, 'resize' as const, 'eof' as const, 'exit' as const, 'cclose' as const, 'sclose' as const), i: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('async' as const), i: fc.nat(), ok: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ k: fc.constant('deliver' as const), up: fc.boolean(), n: fc.integer({ min: 1, max: 80 }) }), weight: 8 },
  { arbitrary: fc.record({ k: fc.constant('lose' as const) }), weight: 1 },
);
type Action = typeof action extends fc.Arbitrary<infer A> ? A : never;

/** What each side may send, checked against what it has been told (independent of the code under test). */
class Monitor {
  #c = new Map<number, { ok: boolean; fail: boolean; closeSent: boolean; closeGot: boolean; exitGot: boolean; window: number; maxPacket: number; sent: number }>();
  #s = new Map<number, { answered: boolean; ok: boolean; fail: boolean; closeSent: boolean; closeGot: boolean; exitSent: boolean; window: number; maxPacket: number; sent: number }>();

  clientSent(f: SentFrame): void {
    const name = `client ${frameTypeName(f.type)} on ${f.channel}`;
    if (f.type === FrameType.OPEN) {
      const prev = this.#c.get(f.channel);
      assert.ok(!prev || prev.fail || (prev.closeSent && prev.closeGot), `${name}: id still in use`);
      const o = parseJsonObject(FrameType.OPEN, f.payload);
      this.#c.set(f.channel, { ok: false, fail: false, closeSent: false, closeGot: false, exitGot: false, window: 0, maxPacket: 0, sent: 0 });
      this.#s.set(f.channel, { answered: false, ok: false, fail: false, closeSent: false, closeGot: false, exitSent: false, window: o.window as number, maxPacket: o.maxPacket as number, sent: 0 });
      return;
    }
    const c = this.#c.get(f.channel);
    assert.ok(c, `${name}: never opened`);
    assert.ok(c.ok, `${name}: before OPEN_OK`);
    assert.ok(!c.closeSent, `${name}: after our CLOSE`);
    if (f.type === FrameType.CLOSE) c.closeSent = true;
    if (f.type === FrameType.STDIN) {
      assert.ok(f.payload.length <= c.maxPacket, `${name}: ${f.payload.length} bytes > maxPacket ${c.maxPacket}`);
      c.sent += f.payload.length;
      assert.ok(c.sent <= c.window, `${name}: ${c.sent} bytes sent with ${c.window} granted`);
    }
  }

  clientGot(f: Frame): void {
    const c = this.#c.get(f.channel)!;
    switch (f.type) {
      case FrameType.OPEN_OK: {
        const ok = decodeOpenOk(f.payload);
        c.ok = true;
        c.window = ok.window;
        c.maxPacket = ok.maxPacket;
        return;
      }
      case FrameType.OPEN_FAIL:
        c.fail = true;
        return;
      case FrameType.WINDOW:
        c.window += decodeWindow(f.payload);
        return;
      case FrameType.EXIT:
        c.exitGot = true;
        return;
      case FrameType.CLOSE:
        c.closeGot = true;
        return;
    }
  }

  serverSent(f: SentFrame): void {
    const s = this.#s.get(f.channel);
    const name = `server ${frameTypeName(f.type)} on ${f.channel}`;
    assert.ok(s, `${name}: never opened`);
    if (f.type === FrameType.OPEN_OK || f.type === FrameType.OPEN_FAIL) {
      assert.ok(!s.answered, `${name}: second answer`);
      s.answered = true;
      s.ok = f.type === FrameType.OPEN_OK;
      s.fail = !s.ok;
      return;
    }
    assert.ok(s.ok, `${name}: before OPEN_OK or after OPEN_FAIL`);
    assert.ok(!s.closeSent, `${name}: after our CLOSE`);
    if (f.type === FrameType.CLOSE) s.closeSent = true;
    if (f.type === FrameType.EXIT) s.exitSent = true;
    if (f.type === FrameType.STDOUT || f.type === FrameType.STDERR) {
      assert.ok(!s.exitSent, `${name}: after EXIT`);
      assert.ok(f.payload.length <= s.maxPacket, `${name}: ${f.payload.length} bytes > maxPacket ${s.maxPacket}`);
      s.sent += f.payload.length;
      assert.ok(s.sent <= s.window, `${name}: ${s.sent} bytes sent with ${s.window} granted`);
    }
  }

  serverGot(f: Frame): void {
    const s = this.#s.get(f.channel);
    if (!s) return;
    if (f.type === FrameType.WINDOW) s.window += decodeWindow(f.payload);
    if (f.type === FrameType.CLOSE) s.closeGot = true;
  }
}

function run(actions: Action[]): void {
  const up = new LinkDirection();
  const down = new LinkDirection();
  const monitor = new Monitor();
  up.onSend = (f) => monitor.clientSent(f);
  down.onSend = (f) => monitor.serverSent(f);
  up.onDeliver = (f) => monitor.serverGot(f);
  down.onDeliver = (f) => monitor.clientGot(f);
  const dead = (f: SentFrame) => assert.fail(`${frameTypeName(f.type)} on ${f.channel} sent after the connection died`);
  up.onSendAfterDeath = dead;
  down.onSendAfterDeath = dead;

  const clients: ClientApp[] = [];
  const servers: ServerApp[] = [];
  const byChannel = new Map<Channel, ClientApp>();
  let lost = false;

  const cFlush = (c: ClientApp) => {
    if (c.pending.length > 0) {
      const n = c.ch.write('stdin', c.pending);
      if (n > 0) c.accepted.push(c.pending.subarray(0, n));
      c.pending = c.pending.subarray(n);
    }
    if (c.pending.length === 0 && c.eofWanted && !c.ch.eofSent) c.ch.eof();
  };
  const sFlush = (s: ServerApp) => {
    while (s.pending.length > 0) {
      const head = s.pending[0]!;
      const n = s.ch.write(head.stream, head.bytes);
      if (n > 0) s.accepted[head.stream as 'stdout' | 'stderr'].push(head.bytes.subarray(0, n));
      if (n < head.bytes.length) {
        head.bytes = head.bytes.subarray(n);
        break;
      }
      s.pending.shift();
    }
    if (s.pending.length === 0 && s.exitWanted) s.ch.exit({ exitCode: 0, signal: null, timedOut: false });
  };

  const accept = (o: IncomingOpen): AcceptResult => {
    const partner = byChannel.get(client.get(o.id)!)!;
    if (partner.mode === 'refuse') return { refuse: { code: ErrorCode.DENIED, message: 'refused' } };
    const open = parseJsonObject(FrameType.OPEN, o.payload);
    const s: ServerApp = {
      ch: null!, partner, pending: [], accepted: { stdout: [], stderr: [] }, stdin: [], unconsumed: 0, exitWanted: false, eofs: 0, closes: [],
    };
    s.ch = o.accept({ window: open.window as number, maxPacket: open.maxPacket as number }, {
      onData: (stream, bytes) => {
        assert.equal(stream, 'stdin');
        s.stdin.push(Buffer.from(bytes));
        s.unconsumed += bytes.length;
      },
      onWindow: () => sFlush(s),
      onEof: () => s.eofs++,
      onSignal: (p) => void decodeSignal(p),
      onResize: (p) => void decodeResize(p),
      onClose: (reason) => {
        assert.equal(s.closes.length, 0, `server channel ${o.id} ended twice`);
        s.closes.push(reason);
      },
    });
    servers.push(s);
    if (partner.mode === 'ok') s.ch.openOk({ window: partner.serverWindow, maxPacket: partner.serverMaxPacket });
    if (partner.mode === 'fail') s.ch.openFail(ErrorCode.BAD_REQUEST, 'no such directory');
    return s.ch;
  };
  const server = new ChannelTable({ role: ChannelRole.ACCEPTOR, sink: down, maxChannels: 64, accept });
  const client = new ChannelTable({ role: ChannelRole.OPENER, sink: up, maxChannels: 64 });
  up.connect(server);
  down.connect(client);

  const pick = <T>(list: T[], i: number): T | undefined => (list.length ? list[i % list.length] : undefined);

  for (const a of actions) {
    switch (a.k) {
      case 'open': {
        if (lost || client.size >= 64) break;
        const c: ClientApp = {
          ch: null!, mode: a.mode, serverWindow: a.sWindow, serverMaxPacket: a.sMaxPacket, pending: Buffer.alloc(0), accepted: [],
          received: { stdout: [], stderr: [] }, unconsumed: 0, eofWanted: false, closeAsked: false, exits: 0, closes: [],
        };
        c.ch = client.open({ kind: 'exec', window: a.window, maxPacket: a.maxPacket, params: { command: 'cat' } }, {
          onOpen: (p) => void decodeOpenOk(p),
          onData: (stream, bytes) => {
            assert.notEqual(stream, 'stdin');
            c.received[stream as 'stdout' | 'stderr'].push(Buffer.from(bytes));
            c.unconsumed += bytes.length;
          },
          onWindow: () => cFlush(c),
          onExit: (p) => {
            decodeExit(p);
            c.exits++;
          },
          onClose: (reason) => {
            assert.equal(c.closes.length, 0, `client channel ${c.ch.id} ended twice`);
            c.closes.push(reason);
          },
        });
        byChannel.set(c.ch, c);
        clients.push(c);
        break;
      }
      case 'cwrite': {
        const c = pick(clients, a.i);
        if (!c || c.eofWanted || c.closeAsked) break;
        c.pending = Buffer.concat([c.pending, a.bytes]);
        cFlush(c);
        break;
      }
      case 'swrite': {
        const s = pick(servers, a.i);
        if (!s || s.exitWanted) break;
        s.pending.push({ stream: a.stderr ? 'stderr' : 'stdout', bytes: Buffer.from(a.bytes) });
        sFlush(s);
        break;
      }
      case 'cread': {
        const c = pick(clients, a.i);
        if (!c) break;
        const n = Math.min(a.n, c.unconsumed);
        c.unconsumed -= n;
        c.ch.consumed(n);
        break;
      }
      case 'sread': {
        const s = pick(servers, a.i);
        if (!s) break;
        const n = Math.min(a.n, s.unconsumed);
        s.unconsumed -= n;
        s.ch.consumed(n);
        break;
      }
      case 'signal':
        pick(clients, a.i)?.ch.signal('SIGINT');
        break;
      case 'resize':
        pick(clients, a.i)?.ch.resize(80, 24);
        break;
      case 'eof': {
        const c = pick(clients, a.i);
        if (!c) break;
        c.eofWanted = true;
        cFlush(c);
        break;
      }
      case 'exit': {
        const s = pick(servers, a.i);
        if (!s) break;
        s.exitWanted = true;
        sFlush(s);
        break;
      }
      case 'cclose': {
        const c = pick(clients, a.i);
        if (!c) break;
        c.closeAsked = true;
        c.ch.close();
        break;
      }
      case 'sclose':
        pick(servers, a.i)?.ch.close();
        break;
      case 'async': {
        const s = pick(servers, a.i);
        if (!s) break;
        if (a.ok) s.ch.openOk({ window: s.partner.serverWindow, maxPacket: s.partner.serverMaxPacket });
        else s.ch.openFail(ErrorCode.BAD_REQUEST, 'late refusal');
        break;
      }
      case 'deliver':
        (a.up ? up : down).deliver(a.n);
        break;
      case 'lose':
        if (lost) break;
        lost = true;
        up.drop();
        down.drop();
        client.connectionLost(new ConnectionError(ErrorCode.CONNECTION_CLOSED, 'link lost'));
        server.connectionLost(null);
        break;
    }
  }

  // The applications keep reading and the daemon finishes every command: all must end.
  if (!lost) {
    for (let round = 0; round < 10_000; round++) {
      for (const s of servers) {
        if (s.ch.state === 'opening') s.ch.openOk({ window: s.partner.serverWindow, maxPacket: s.partner.serverMaxPacket });
        s.ch.consumed(s.unconsumed);
        s.unconsumed = 0;
        s.exitWanted = true;
        sFlush(s);
      }
      for (const c of clients) {
        c.ch.consumed(c.unconsumed);
        c.unconsumed = 0;
        cFlush(c);
      }
      if (up.queued === 0 && down.queued === 0) break;
      up.deliver();
      down.deliver();
    }
    assert.equal(up.queued + down.queued, 0, 'the link went quiet');
    assert.equal(client.size, 0, `client channels left: ${[...client.channels()].map((c) => `${c.id}:${c.state}`).join(' ')}`);
    assert.equal(server.size, 0, `server channels left: ${[...server.channels()].map((c) => `${c.id}:${c.state}`).join(' ')}`);
  }

  // Every channel ended exactly once, on each side.
  for (const c of clients) assert.equal(c.closes.length, 1, `client channel ${c.ch.id} ended ${c.closes.length} times`);
  for (const s of servers) assert.equal(s.closes.length, 1, `server channel ${s.ch.id} ended ${s.closes.length} times`);

  const cat = (list: Buffer[]) => Buffer.concat(list);
  const isPrefix = (part: Buffer, whole: Buffer) => part.length <= whole.length && whole.subarray(0, part.length).equals(part);
  for (const c of clients) {
    const reason = c.closes[0];
    if (!lost) assert.ok(reason === CloseReason.NORMAL || reason === CloseReason.OPEN_FAILED, `client ${c.ch.id}: ${reason}`);
    if (reason === CloseReason.OPEN_FAILED) {
      assert.ok(c.mode !== 'ok');
      assert.equal(cat(c.received.stdout).length + cat(c.received.stderr).length, 0);
    }
  }
  for (const s of servers) {
    const c = s.partner;
    if (!lost) assert.ok(s.closes[0] === CloseReason.NORMAL || s.closes[0] === CloseReason.OPEN_FAILED, `server ${s.ch.id}: ${s.closes[0]}`);
    if (s.closes[0] === CloseReason.OPEN_FAILED) assert.equal(c.closes[0] === CloseReason.OPEN_FAILED || lost, true);
    // Intact and in order; whole when nothing cut it short.
    for (const stream of ['stdout', 'stderr'] as const) {
      const got = cat(c.received[stream]);
      const sent = cat(s.accepted[stream]);
      assert.ok(isPrefix(got, sent), `${stream} of channel ${s.ch.id} is not a prefix of what was sent`);
      if (c.exits === 1 && !c.closeAsked) assert.ok(got.equals(sent), `${stream} of channel ${s.ch.id}: ${got.length} of ${sent.length} bytes before EXIT`);
    }
    const stdin = cat(s.stdin);
    const written = cat(c.accepted);
    assert.ok(isPrefix(stdin, written), `stdin of channel ${s.ch.id} is not a prefix of what was written`);
    if (s.eofs === 1) assert.ok(stdin.equals(written), `stdin of channel ${s.ch.id}: ${stdin.length} of ${written.length} bytes before EOF`);
    assert.ok(c.exits <= 1);
  }
}

test('two channel tables over an in-memory link: credit, ordering, exactly-once ends, no deadlock', () => {
  fc.assert(fc.property(fc.array(action, { maxLength: 120 }), (actions) => run(actions)), { numRuns: 400 });
});

test('long runs with many channels and tiny windows', () => {
  fc.assert(fc.property(fc.array(action, { minLength: 200, maxLength: 400 }), (actions) => run(actions)), { numRuns: 60 });
});

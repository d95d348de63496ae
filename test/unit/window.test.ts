/**
 * Flow-control windows (docs/protocol.md §5): credit accounting on both sides, WINDOW at
 * half the window, overrun and credit overflow as SW_ERR_WINDOW_OVERRUN, and a simulated
 * sender/receiver pair that never overruns and never deadlocks.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SendWindow, ReceiveWindow, DEFAULT_WINDOW, DEFAULT_MAX_PACKET } from '../../src/channel/window.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';

const MAX_CREDIT = 0xffffffff;

function isOverrun(channel: number) {
  return (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, ErrorCode.WINDOW_OVERRUN);
    assert.equal(err.channel, channel);
    assert.match(err.message, new RegExp(`channel ${channel}`));
    return true;
  };
}

describe('defaults', () => {
  test('2 MiB window and 64 KiB packets', () => {
    assert.equal(DEFAULT_WINDOW, 2 * 1024 * 1024);
    assert.equal(DEFAULT_MAX_PACKET, 64 * 1024);
    assert.ok(DEFAULT_MAX_PACKET <= DEFAULT_WINDOW / 2, 'a full packet fits in half a window');
  });
});

describe('SendWindow', () => {
  test('starts with the initial credit, consume takes it, grant returns it', () => {
    const w = new SendWindow(1000);
    assert.equal(w.available, 1000);
    w.consume(300);
    assert.equal(w.available, 700);
    w.consume(700);
    assert.equal(w.available, 0);
    w.grant(500, 1);
    assert.equal(w.available, 500);
  });

  test('a zero initial window (session channels) has no credit until granted', () => {
    const w = new SendWindow(0);
    assert.equal(w.available, 0);
    w.grant(1, 4);
    assert.equal(w.available, 1);
  });

  test('credit may reach exactly 2^32-1', () => {
    const w = new SendWindow(0);
    w.grant(MAX_CREDIT, 1);
    assert.equal(w.available, MAX_CREDIT);
    const v = new SendWindow(MAX_CREDIT - 10);
    v.grant(10, 1);
    assert.equal(v.available, MAX_CREDIT);
  });

  test('credit past 2^32-1 is SW_ERR_WINDOW_OVERRUN and leaves the credit unchanged', () => {
    const w = new SendWindow(MAX_CREDIT);
    assert.throws(() => w.grant(1, 7), isOverrun(7));
    assert.equal(w.available, MAX_CREDIT);
    const v = new SendWindow(2 * 1024 * 1024);
    assert.throws(() => v.grant(MAX_CREDIT, 9), isOverrun(9));
    assert.equal(v.available, 2 * 1024 * 1024);
    v.consume(2 * 1024 * 1024);
    v.grant(MAX_CREDIT, 9); // after consuming, the same grant fits
    assert.equal(v.available, MAX_CREDIT);
  });
});

describe('ReceiveWindow', () => {
  test('accepts data up to the window, then an overrun is SW_ERR_WINDOW_OVERRUN', () => {
    const w = new ReceiveWindow(100);
    w.receive(60, 3);
    w.receive(40, 3);
    assert.throws(() => w.receive(1, 3), isOverrun(3));
  });

  test('a single frame larger than the window is an overrun', () => {
    assert.throws(() => new ReceiveWindow(100).receive(101, 5), isOverrun(5));
    new ReceiveWindow(100).receive(100, 5);
  });

  test('an empty data frame is always accepted, even with no credit left', () => {
    const w = new ReceiveWindow(10);
    w.receive(10, 1);
    w.receive(0, 1);
  });

  test('returns credit once half the window was consumed, with the whole consumed count', () => {
    const w = new ReceiveWindow(100);
    w.receive(100, 1);
    assert.equal(w.consume(10), 0);
    assert.equal(w.consume(39), 0);
    assert.equal(w.consume(1), 50, 'at exactly half');
    assert.equal(w.consume(30), 0);
    w.receive(50, 1);
    assert.equal(w.consume(40), 70, 'the consumed sum since the last grant, not just this call');
  });

  test('granted credit can be used again, and no more than that', () => {
    const w = new ReceiveWindow(100);
    w.receive(100, 2);
    assert.equal(w.consume(70), 70);
    w.receive(70, 2);
    assert.throws(() => w.receive(1, 2), isOverrun(2));
  });

  test('consumed but not yet granted bytes are not credit yet', () => {
    const w = new ReceiveWindow(100);
    w.receive(100, 6);
    assert.equal(w.consume(49), 0);
    assert.throws(() => w.receive(1, 6), isOverrun(6));
  });

  test('odd and tiny windows grant at the rounded-up half', () => {
    const three = new ReceiveWindow(3);
    three.receive(3, 1);
    assert.equal(three.consume(1), 0);
    assert.equal(three.consume(1), 2);
    const one = new ReceiveWindow(1); // what the client asks for on session channels
    one.receive(1, 1);
    assert.equal(one.consume(1), 1);
  });

  test('a 2 MiB window returns 1 MiB (the WINDOW example of the spec)', () => {
    const w = new ReceiveWindow(DEFAULT_WINDOW);
    let increment = 0;
    for (let i = 0; i < 32; i++) {
      w.receive(DEFAULT_MAX_PACKET, 1);
      increment = w.consume(DEFAULT_MAX_PACKET);
      if (i < 15) assert.equal(increment, 0, `after ${i + 1} packets`);
      else if (i === 15) assert.equal(increment, 1024 * 1024);
    }
    assert.equal(increment, 1024 * 1024, 'and again after the second MiB');
  });
});

describe('window properties', () => {
  // One channel direction, simulated: the sender sends within its credit, frames arrive
  // (possibly later), the consumer takes what arrived at its own pace, and every WINDOW the
  // receiver produces is delivered to the sender (possibly later).
  const stepArb = fc.oneof(
    fc.record({ op: fc.constant('send' as const), bytes: fc.integer({ min: 0, max: 5000 }) }),
    fc.record({ op: fc.constant('deliverData' as const) }),
    fc.record({ op: fc.constant('consume' as const), bytes: fc.integer({ min: 0, max: 5000 }) }),
    fc.record({ op: fc.constant('deliverWindow' as const) }),
  );

  test('a sender that respects its credit never overruns, credit is conserved, and the pair never deadlocks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 2048 }), fc.array(stepArb, { maxLength: 200 }), (size, maxPacket, steps) => {
        const send = new SendWindow(size);
        const recv = new ReceiveWindow(size);
        const dataInFlight: number[] = [];
        const windowsInFlight: number[] = [];
        let buffered = 0; // received, not consumed
        let pendingGrant = 0; // consumed, not yet granted
        const check = () => {
          const inFlight = dataInFlight.reduce((a, b) => a + b, 0);
          const credit = windowsInFlight.reduce((a, b) => a + b, 0);
          assert.ok(send.available >= 0 && send.available <= size, `available ${send.available}`);
          assert.equal(send.available + inFlight + buffered + pendingGrant + credit, size, 'credit is conserved');
        };
        for (const step of steps) {
          if (step.op === 'send') {
            const n = Math.min(step.bytes, send.available, maxPacket);
            send.consume(n);
            dataInFlight.push(n);
          } else if (step.op === 'deliverData' && dataInFlight.length > 0) {
            const n = dataInFlight.shift()!;
            recv.receive(n, 1); // must never throw
            buffered += n;
          } else if (step.op === 'consume') {
            const n = Math.min(step.bytes, buffered);
            buffered -= n;
            pendingGrant += n;
            const increment = recv.consume(n);
            if (increment > 0) {
              assert.equal(increment, pendingGrant, 'WINDOW returns everything consumed since the last one');
              assert.ok(increment >= size / 2, 'never less than half a window');
              windowsInFlight.push(increment);
              pendingGrant = 0;
            }
          } else if (step.op === 'deliverWindow' && windowsInFlight.length > 0) {
            send.grant(windowsInFlight.shift()!, 1);
          }
          check();
        }
        // Liveness: deliver everything and consume everything; the sender gets its whole
        // window back, so it can never be stuck at zero credit for good.
        while (dataInFlight.length > 0) {
          const n = dataInFlight.shift()!;
          recv.receive(n, 1);
          buffered += n;
        }
        pendingGrant += buffered;
        const increment = recv.consume(buffered);
        buffered = 0;
        if (increment > 0) {
          windowsInFlight.push(increment);
          pendingGrant = 0;
        }
        for (const inc of windowsInFlight.splice(0)) send.grant(inc, 1);
        assert.ok(pendingGrant < size / 2, 'what is held back is less than half a window');
        assert.equal(send.available + pendingGrant, size);
        assert.ok(send.available > 0 || size === 0, 'the sender has credit again');
      }),
      { numRuns: 300 },
    );
  });

  test('any frame larger than the credit left is an overrun, any other is accepted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.array(fc.integer({ min: 0, max: 1 << 19 }), { maxLength: 20 }), (size, frames) => {
        const w = new ReceiveWindow(size);
        let left = size;
        for (const n of frames) {
          if (n > left) {
            assert.throws(() => w.receive(n, 8), isOverrun(8));
          } else {
            w.receive(n, 8);
            left -= n;
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

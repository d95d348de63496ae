/**
 * The login throttle under a source with many addresses (127.0.0.0/8 here; an IPv6 /64 in
 * the wild): failed logins leave one record per address and per claimed user name. Those
 * records must be forgotten once their window passed and stay bounded in number meanwhile,
 * else an attacker grows the daemon without bound, one failed HELLO at a time.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { AuthThrottle } from '../../src/auth/throttle.js';
import { FrameType } from '../../src/protocol/frame.js';

const WINDOW_MS = 60_000;

/** A failed login from `source`: HELLO with these auth attempts, then the daemon's GOODBYE. */
async function failLogin(port: number, source: string, auth: unknown[]): Promise<void> {
  const raw = await RawClient.open(port, { localAddress: source });
  try {
    raw.write(RawClient.helloFrame('unused', { auth }));
    const frame = await raw.nextFrame((f) => f.type === FrameType.GOODBYE, 5_000);
    assert.equal(frame.type, FrameType.GOODBYE);
  } finally {
    raw.destroy();
  }
}

describe('login throttle records under many source addresses', () => {
  let now = Date.now();
  const throttle = new AuthThrottle({ now: () => now, baseDelayMs: 1, maxDelayMs: 1, windowMs: WINDOW_MS, lockoutMs: WINDOW_MS, maxRecords: 16 });
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon({ throttle });
  });
  after(async () => {
    await d?.stop();
  });

  test('failures from addresses that never come back are forgotten once their window passed', async () => {
    throttle.clear('*');
    for (let i = 1; i <= 12; i++) await failLogin(d.port, `127.31.0.${i}`, [{ method: 'token', token: 'swt_wrong' }]);
    assert.equal(throttle.size.addresses, 12);
    now += WINDOW_MS + 1;
    await failLogin(d.port, '127.31.1.1', [{ method: 'token', token: 'swt_wrong' }]);
    assert.deepEqual(throttle.size, { addresses: 1, users: 0 });
  });

  test('within the window, records stay bounded (maxRecords) however many addresses fail', async () => {
    throttle.clear('*');
    for (let i = 1; i <= 40; i++) await failLogin(d.port, `127.32.0.${i}`, [{ method: 'token', token: 'swt_wrong' }]);
    assert.equal(throttle.size.addresses, 16);
  });

  test('password attempts for names no user can have keep no per-user record (a name can be 15 KiB)', async () => {
    throttle.clear('*');
    const names = ['x'.repeat(15_000), 'has space', 'é-not-ascii', '../etc', `a${'b'.repeat(40)}`];
    for (const [i, user] of names.entries()) await failLogin(d.port, `127.33.0.${i + 1}`, [{ method: 'password', user, password: 'guess' }]);
    assert.deepEqual(throttle.size, { addresses: names.length, users: 0 });
    // A name a user could have is still throttled per user (docs/policy.md#lock-out).
    await failLogin(d.port, '127.33.1.1', [{ method: 'password', user: 'alice', password: 'guess' }]);
    assert.equal(throttle.size.users, 1);
  });
});

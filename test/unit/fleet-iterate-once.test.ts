/**
 * A fleet run is iterated once (src/fleet/iterate-once.ts): a second loop over a `FleetRun`
 * (runOn) or a `BroadcastRun` (runBroadcast) throws the same error class and code, with the
 * same message shape. BroadcastRun threw a RequestError and FleetRun a UsageError, so a caller
 * handling one did not catch the other. Both runs here are real and end at once: FleetRun with
 * no host, BroadcastRun canceled before it starts (nothing is signed or published).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetRun } from '../../src/fleet/run-on.js';
import { runBroadcast, type BroadcastConnection } from '../../src/fleet/nats-run.js';
import { keySigner } from '../../src/auth/broadcast-auth.js';
import { generateKeyPair, parsePrivateKey } from '../../src/auth/ssh-key.js';
import { ErrorCode, RequestError, ShellwireError } from '../../src/errors.js';

/** A run canceled before it starts never touches its connection: any use is a test failure. */
const untouched: BroadcastConnection = {
  publish: () => assert.fail('published'),
  subscribe: () => assert.fail('subscribed'),
  flush: () => assert.fail('flushed'),
};

function secondIteration(run: AsyncIterable<unknown>): unknown {
  try {
    run[Symbol.asyncIterator]();
  } catch (err) {
    return err;
  }
  return assert.fail('a second iteration did not throw');
}

test('FleetRun and BroadcastRun refuse a second iteration with the same error class, code and message shape', async () => {
  const fleet = new FleetRun([], 'true');
  const events: string[] = [];
  for await (const event of fleet) events.push(event.type);
  assert.deepEqual(events, ['summary']);

  const signer = keySigner(parsePrivateKey(generateKeyPair('alice').privateText));
  const broadcast = runBroadcast(['web1'], 'true', { connection: untouched, signer, user: 'alice', signal: AbortSignal.abort() });
  const summary = await broadcast.result();
  assert.equal(summary.canceled, 1, 'the canceled broadcast ends with its agent canceled');

  const errors = [secondIteration(fleet), secondIteration(broadcast)] as ShellwireError[];
  for (const err of errors) {
    assert.ok(err instanceof RequestError, `${String(err)} is a RequestError`);
    assert.equal(err.code, ErrorCode.BAD_REQUEST);
  }
  assert.equal(errors[0]!.constructor, errors[1]!.constructor);
  assert.equal(errors[0]!.message, 'A FleetRun can be iterated once: keep the events of the first loop, or call runOn() again.');
  assert.equal(errors[1]!.message, 'A BroadcastRun can be iterated once: keep the events of the first loop, or call runBroadcast() again.');
  // result() after the loop still gives the summary (it does not iterate again).
  assert.equal((await fleet.result()).total, 0);
  assert.equal((await broadcast.result()).total, 1);
});

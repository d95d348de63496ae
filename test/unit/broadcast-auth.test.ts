/**
 * Broadcast requests and results (src/protocol/broadcast-codec.ts, src/auth/broadcast-auth.ts):
 * round trips for any request and result, any changed byte of a signed envelope breaks it
 * (never decodes to something else that verifies), random bytes only ever give a typed decode
 * error, and the agent's decision order (drop, ignore, expired, replayed, auth, policy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { generateKeyPair, parsePrivateKey } from '../../src/auth/ssh-key.js';
import { parseUsersConfig } from '../../src/auth/users-config.js';
import { createIdentity } from '../../src/auth/identity.js';
import {
  BroadcastDecodeError, decodeRequest, decodeResult, encodeRequestBody, shardOf, BROADCAST_SHARDS, type BroadcastRequest, type BroadcastResult,
} from '../../src/protocol/broadcast-codec.js';
import { BroadcastGate, NonceSet, hostSigner, keySigner, signBroadcastRequest, signBroadcastResult, verifyBroadcastResult } from '../../src/auth/broadcast-auth.js';
import { ErrorCode } from '../../src/errors.js';
import { userInfo } from 'node:os';

const alice = parsePrivateKey(generateKeyPair('alice').privateText);
const bob = parsePrivateKey(generateKeyPair('bob', 'ecdsa').privateText);
const me = userInfo().username;
const users = parseUsersConfig([
  'users:',
  '  alice:', `    runAs: ${me}`, '    allowRoot: true', '    channels: [exec]', `    keys: ["${alice.publicKey.line}"]`,
  '  bob:', `    runAs: ${me}`, '    allowRoot: true', '    channels: [exec]', '    commands:', '      allow: ["true"]', `    keys: ["${bob.publicKey.line}"]`,
].join('\n'), 'users.yaml');
const T0 = Date.parse('2026-11-30T10:00:00.000Z');

function nonce(): string {
  return randomBytes(16).toString('base64url');
}

function request(over: Partial<BroadcastRequest> = {}): BroadcastRequest {
  return {
    v: 1, id: nonce(), user: 'alice', publicKey: alice.publicKey.line, targets: ['a1', 'a2'], command: 'echo hi',
    timeoutMs: 10_000, maxOutput: 1024, issuedAt: new Date(T0).toISOString(), expiresAt: new Date(T0 + 30_000).toISOString(), replyTo: '_INBOX.x', ...over,
  };
}

const osText = fc.string({ unit: fc.oneof(fc.constantFrom('a', ' ', '"', '\\', 'é', '\n', '\u{1F600}'), fc.integer({ min: 0xdc80, max: 0xdcff }).map((c) => String.fromCharCode(c))) });
const requestArb = fc.record({
  v: fc.constant(1 as const),
  id: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('base64url')),
  user: fc.constantFrom('alice', 'bob', 'x'),
  publicKey: fc.constant(alice.publicKey.line),
  targets: fc.array(fc.stringMatching(/^[A-Za-z0-9_-]{1,10}$/), { minLength: 1, maxLength: 5 }),
  cmd: fc.oneof(osText.map((command) => ({ command })), fc.array(osText, { minLength: 1, maxLength: 4 }).map((argv) => ({ argv }))),
  env: fc.option(fc.dictionary(fc.stringMatching(/^[A-Z_]{1,6}$/), osText, { maxKeys: 3 }), { nil: undefined }),
  cwd: fc.option(osText, { nil: undefined }),
  timeoutMs: fc.integer({ min: 1, max: 3_600_000 }),
  maxOutput: fc.integer({ min: 0, max: 256 * 1024 }),
  issued: fc.integer({ min: 0, max: 2 ** 40 }),
  replyTo: fc.stringMatching(/^[!-~]{1,20}$/),
}).map(({ cmd, env, cwd, issued, ...rest }): BroadcastRequest => ({
  ...rest, ...cmd, ...(env ? { env } : {}), ...(cwd !== undefined ? { cwd } : {}),
  issuedAt: new Date(issued).toISOString(), expiresAt: new Date(issued + 60_000).toISOString(),
}));

/** The message agent `name` receives (its shard's); the first one when `name` is no target. */
async function signFor(req: BroadcastRequest, signer: Parameters<typeof signBroadcastRequest>[1], name = 'a1'): Promise<Buffer> {
  const messages = await signBroadcastRequest(req, signer);
  return (messages.find((m) => m.shard === shardOf(name)) ?? messages[0]!).bytes;
}

test('any request round-trips: one message per shard, one signed body, each shard\'s names in its own message', async () => {
  await fc.assert(fc.asyncProperty(requestArb, async (req) => {
    const messages = await signBroadcastRequest(req, keySigner(alice));
    assert.deepEqual(messages.map((m) => m.shard), [...new Set(req.targets.map(shardOf))].sort());
    for (const m of messages) {
      const back = decodeRequest(m.bytes);
      assert.deepEqual(back.bodyBytes, encodeRequestBody(req));
      assert.deepEqual(back.body.targets, req.targets.filter((n) => shardOf(n) === m.shard));
      for (const name of req.targets) assert.equal(back.isTarget(name), shardOf(name) === m.shard, `${name} in shard ${m.shard}'s message`);
      assert.equal(back.isTarget('not-a-target-name-at-all'), false);
      assert.equal(back.isTarget(`${req.targets[0]}\n${req.targets[0]}`), false, 'a name with a newline never matches');
    }
  }), { numRuns: 200 });
});

test('shards: two hex digits, spread over all BROADCAST_SHARDS', () => {
  const seen = new Set(Array.from({ length: 5000 }, (_, i) => shardOf(`host-${i}`)));
  assert.equal(seen.size, BROADCAST_SHARDS);
  for (const s of seen) assert.match(s, /^[0-9a-f]{2}$/);
});

test('names added to, or swapped into, the unsigned part of a message never make an agent a target', async () => {
  // a1 and victim in different shards: find a victim name whose shard differs from a1's.
  const victim = Array.from({ length: 50 }, (_, i) => `victim${i}`).find((n) => shardOf(n) !== shardOf('a1'))!;
  const sameShard = Array.from({ length: 5000 }, (_, i) => `peer${i}`).find((n) => shardOf(n) === shardOf('a1'))!;
  const messages = await signBroadcastRequest(request({ targets: ['a1', victim] }), keySigner(alice));
  const mine = messages.find((m) => m.shard === shardOf('a1'))!.bytes;
  const theirs = messages.find((m) => m.shard === shardOf(victim))!.bytes;
  const judge = (bytes: Buffer, name: string) => new BroadcastGate({ name, users: () => users, now: () => T0, notBefore: 0 }).judge(bytes).action;
  assert.equal(judge(mine, 'a1'), 'run');
  assert.equal(judge(theirs, victim), 'run');
  // a1's message shown to an agent of another shard, and the victim's shown to a1: not theirs.
  assert.equal(judge(mine, victim), 'ignore');
  assert.equal(judge(theirs, 'a1'), 'ignore');
  // The names part rewritten (same shard, one more name): its digest no longer matches the manifest.
  const tail = Buffer.from(`\na1\n${sameShard}\n`, 'latin1');
  const cut = mine.length - Buffer.from('\na1\n', 'latin1').length - 4;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(tail.length, 0);
  const extended = Buffer.concat([mine.subarray(0, cut), len, tail]);
  assert.equal(decodeRequest(extended).body.targets.join(','), `a1,${sameShard}`);
  assert.equal(judge(extended, sameShard), 'ignore');
  assert.equal(judge(extended, 'a1'), 'ignore', 'the whole message fails its digest');
});

test('any changed byte of a signed request is dropped or fails authentication (never runs)', async () => {
  const wire = await signFor(request({ targets: ['a1'] }), keySigner(alice));
  const gate = () => new BroadcastGate({ name: 'a1', users: () => users, now: () => T0, notBefore: 0 });
  assert.equal(gate().judge(wire).action, 'run');
  fc.assert(fc.property(fc.integer({ min: 0, max: wire.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
    const bad = Buffer.from(wire);
    bad[at]! ^= xor;
    const verdict = gate().judge(bad);
    // The only bytes outside the signature are a1's shard's names: a change there makes a1 no target.
    assert.ok(verdict.action === 'drop' || verdict.action === 'ignore' || verdict.action === 'unproven' || (verdict.action === 'refuse' && verdict.code !== ErrorCode.DENIED),
      `byte ${at} ^ ${xor}: ${JSON.stringify(verdict.action)} ${'code' in verdict ? verdict.code : ''}`);
  }), { numRuns: 2000 });
});

test('any result round-trips, verifies, and any changed byte breaks it', async () => {
  const identity = await createIdentity('agent');
  const signer = hostSigner(identity);
  const resultArb = fc.record({
    exitCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: null }),
    signal: fc.option(fc.constantFrom('SIGKILL', 'SIGTERM'), { nil: null }),
    stdout: fc.uint8Array({ maxLength: 64 }), stderr: fc.uint8Array({ maxLength: 64 }),
    truncated: fc.boolean(), timedOut: fc.boolean(), durationMs: fc.nat(),
    error: fc.option(fc.record({ code: fc.constant('SW_ERR_DENIED'), message: fc.string() }), { nil: undefined }),
  });
  fc.assert(fc.property(resultArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (r, at, xor) => {
    const body: Omit<BroadcastResult, 'fingerprint' | 'spki'> = {
      v: 1, id: nonce(), name: 'agent-1', exitCode: r.exitCode, signal: r.signal, stdout: Buffer.from(r.stdout).toString('base64'),
      stderr: Buffer.from(r.stderr).toString('base64'), truncated: r.truncated, timedOut: r.timedOut, durationMs: r.durationMs, ...(r.error ? { error: { ...r.error } } : {}),
    };
    const wire = signBroadcastResult(body, signer);
    const back = decodeResult(wire);
    assert.equal(back.body.fingerprint, identity.fingerprint);
    assert.deepEqual({ ...back.body, fingerprint: undefined, spki: undefined }, { ...body, fingerprint: undefined, spki: undefined });
    assert.ok(verifyBroadcastResult(back));
    const bad = Buffer.from(wire);
    bad[at % bad.length]! ^= xor;
    let ok = false;
    try {
      ok = verifyBroadcastResult(decodeResult(bad));
    } catch (err) {
      assert.ok(err instanceof BroadcastDecodeError);
    }
    assert.equal(ok, false, `byte ${at % bad.length} changed and it still verified`);
  }), { numRuns: 300 });
});

test('random bytes only ever give BroadcastDecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, magic) => {
    const buf = magic ? Buffer.concat([Buffer.from('SWB1\x01'), bytes]) : Buffer.from(bytes);
    assert.throws(() => decodeRequest(buf), BroadcastDecodeError);
    assert.throws(() => decodeResult(buf), BroadcastDecodeError);
  }), { numRuns: 1000 });
});

test('the agent decides in order: ignore, expired, future, replayed, unknown key, other user, policy, run', async () => {
  let now = T0;
  const nonces = new NonceSet();
  const gate = new BroadcastGate({ name: 'a1', users: () => users, nonces, now: () => now, notBefore: T0 - 60_000 });
  const sign = (r: BroadcastRequest, key = alice) => signFor(r, keySigner(key));
  const code = (v: ReturnType<BroadcastGate['judge']>) => (v.action === 'refuse' ? v.code : v.action);

  assert.equal(code(gate.judge(await sign(request({ targets: ['other'] })))), 'ignore');
  assert.equal(code(gate.judge(Buffer.from('hello'))), 'drop');
  now = T0 + 31_000 + 30_000;
  assert.equal(code(gate.judge(await sign(request()))), ErrorCode.REQUEST_EXPIRED);
  now = T0 - 31_000;
  assert.equal(code(gate.judge(await sign(request()))), ErrorCode.REQUEST_EXPIRED);
  now = T0;
  assert.equal(code(gate.judge(await sign(request({ expiresAt: new Date(T0 + 61_000).toISOString() })))), ErrorCode.REQUEST_EXPIRED);
  const once = await sign(request());
  assert.equal(code(gate.judge(once)), 'run');
  assert.equal(code(gate.judge(once)), ErrorCode.REPLAYED);
  // bob's key claiming alice; alice's key claiming bob; a user that does not exist: one message for all.
  const stranger = parsePrivateKey(generateKeyPair('eve').privateText);
  assert.equal(code(gate.judge(await sign(request({ publicKey: bob.publicKey.line }), bob))), ErrorCode.AUTH_FAILED);
  assert.equal(code(gate.judge(await sign(request({ user: 'bob' })))), ErrorCode.AUTH_FAILED);
  // A key no users.yaml entry has, and a signature by another key over alice's request (forged):
  // unproven, so not answered at all (its replyTo is unproven too: an answer would be a reflector).
  assert.equal(code(gate.judge(await sign(request({ publicKey: stranger.publicKey.line }), stranger))), 'unproven');
  const forged = request();
  const wire = await signFor(forged, { publicKey: alice.publicKey, sign: keySigner(stranger).sign });
  assert.equal(code(gate.judge(wire)), 'unproven');
  // Unproven requests are not answered even when expired or replayed: the key is checked first.
  now = T0 + 200_000;
  assert.equal(code(gate.judge(wire)), 'unproven');
  now = T0;
  // bob may run `true` only, without a shell.
  const denied = gate.judge(await sign(request({ user: 'bob', publicKey: bob.publicKey.line, command: 'id' }), bob));
  assert.equal(code(denied), ErrorCode.DENIED);
  const allowed = gate.judge(await sign(request({ user: 'bob', publicKey: bob.publicKey.line, command: 'true' }), bob));
  assert.equal(allowed.action, 'run');
  assert.ok(allowed.action === 'run' && allowed.params.argv?.[0]?.endsWith('/true'), 'a restricted user runs the resolved argv');
  // Nonces of refused-before-signature requests are not remembered; expired ones are pruned.
  assert.equal(nonces.size, 3, "signed requests are remembered, denied ones too");
  now = T0 + 200_000;
  nonces.add(nonce(), now + 1000, now);
  assert.equal(nonces.size, 1);
});

test('a request issued before the agent (re)started is refused: its nonce set died with the old process', async () => {
  const wire = await signFor(request(), keySigner(alice));
  const first = new BroadcastGate({ name: 'a1', users: () => users, now: () => T0 + 1000, notBefore: T0 - 1000 });
  assert.equal(first.judge(wire).action, 'run');
  const restarted = new BroadcastGate({ name: 'a1', users: () => users, now: () => T0 + 2000 });
  const verdict = restarted.judge(wire);
  assert.ok(verdict.action === 'refuse' && verdict.code === ErrorCode.REQUEST_EXPIRED && /\(re\)started/.test(verdict.message));
});

test('one user holds at most her share of remembered ids: another user\'s requests still run', async () => {
  const gate = new BroadcastGate({ name: 'a1', users: () => users, nonces: new NonceSet(100, 2), now: () => T0, notBefore: 0 });
  const code = (v: ReturnType<BroadcastGate['judge']>) => (v.action === 'refuse' ? v.code : v.action);
  // bob's policy denies `id`: denied requests are remembered (a replay must stay refused), so they count.
  for (let i = 0; i < 2; i++) assert.equal(code(gate.judge(await signFor(request({ user: 'bob', publicKey: bob.publicKey.line, command: 'id' }), keySigner(bob)))), ErrorCode.DENIED);
  const third = gate.judge(await signFor(request({ user: 'bob', publicKey: bob.publicKey.line, command: 'id' }), keySigner(bob)));
  assert.ok(third.action === 'refuse' && third.code === ErrorCode.REPLAYED && /user "bob"/.test(third.message), JSON.stringify(third));
  assert.equal(gate.judge(await signFor(request(), keySigner(alice))).action, 'run');
});

test('a full nonce set refuses new requests instead of forgetting live ids', async () => {
  const gate = new BroadcastGate({ name: 'a1', users: () => users, nonces: new NonceSet(1), now: () => T0, notBefore: 0 });
  assert.equal(gate.judge(await signFor(request(), keySigner(alice))).action, 'run');
  const second = gate.judge(await signFor(request(), keySigner(alice)));
  assert.ok(second.action === 'refuse' && second.code === ErrorCode.REPLAYED);
});

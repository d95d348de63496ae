/**
 * Signed presence records (src/protocol/presence-codec.ts, src/auth/presence-auth.ts) and how
 * discovery judges them (src/fleet/nats-discovery.ts `judgeAnswers`, `natsInventory`, and
 * `nameOnly` in src/fleet/targets.ts): any record round-trips; any changed byte of a signed
 * message is refused (never another record that verifies); random bytes give `malformed`;
 * freshness bounds; a presence signature is not a broadcast result signature; pins decide
 * verified / changed / unverified / conflict; unverified agents are selected by name only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createIdentity } from '../../src/auth/identity.js';
import { hostSigner, verifyBroadcastResult } from '../../src/auth/broadcast-auth.js';
import { PRESENCE_CLOCK_SKEW_MS, PRESENCE_RECORD_MAX_AGE_MS, checkPresence, signPresence } from '../../src/auth/presence-auth.js';
import { PresenceDecodeError, decodePresence, encodePresenceBody } from '../../src/protocol/presence-codec.js';
import { RESULT_ALGORITHM, encodeResultBody, type BroadcastResult } from '../../src/protocol/broadcast-codec.js';
import { judgeAnswers, natsInventory } from '../../src/fleet/nats-discovery.js';
import { NoHostsMatchedError, resolveTargets } from '../../src/fleet/targets.js';
import type { FleetHost } from '../../src/fleet/inventory.js';

const T0 = Date.parse('2026-11-30T10:00:00.000Z');
const web = hostSigner(await createIdentity('web'));
const other = hostSigner(await createIdentity('other'));

const nameArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const labelKeyArb = fc.stringMatching(/^[A-Za-z0-9_./-]{1,63}$/).filter((k) => k !== '__proto__');
// Any UTF-16, lone surrogates included (OS bytes, protocol/os-bytes.ts), but no NUL or ",".
const labelValueArb = fc.string({ unit: 'binary', maxLength: 40 }).filter((v) => !/[\0,]/.test(v));
const recordArb = fc.record({
  name: nameArb,
  labels: fc.dictionary(labelKeyArb, labelValueArb, { maxKeys: 6 }),
  version: fc.string({ maxLength: 20 }),
  startedAt: fc.integer({ min: 0, max: 4_000_000_000_000 }).map((t) => new Date(t).toISOString()),
  gone: fc.boolean(),
}).map(({ gone, labels, ...r }) => (gone ? { ...r, labels: { ...labels }, gone: true as const } : { ...r, labels: { ...labels } }));

test('any record signs, decodes to itself and checks (labels in any order, lone surrogates kept)', () => {
  fc.assert(fc.property(recordArb, (r) => {
    const wire = signPresence(r, web, T0);
    const decoded = decodePresence(wire);
    assert.deepEqual({ ...decoded.body }, { ...r, fingerprint: web.fingerprint, spki: web.spki, issuedAt: new Date(T0).toISOString() });
    const verdict = checkPresence(wire, T0);
    assert.equal(verdict.ok, true);
  }), { numRuns: 200 });
});

test('any changed byte of a signed record is refused: it never checks as another record', () => {
  fc.assert(fc.property(recordArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (r, at, xor) => {
    const wire = Buffer.from(signPresence(r, web, T0));
    const i = at % wire.length;
    wire[i] = wire[i]! ^ xor;
    assert.equal(checkPresence(wire, T0).ok, false, `byte ${i} ^ ${xor}`);
  }), { numRuns: 500 });
});

test('random bytes are malformed, never a crash; non-canonical or unsigned records are malformed', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
    const verdict = checkPresence(bytes, T0);
    assert.equal(verdict.ok, false);
  }));
  const wire = signPresence({ name: 'web1', labels: { role: 'web', group: 'web' }, version: '1', startedAt: new Date(T0).toISOString() }, web, T0).toString('utf8');
  const [body, sig] = wire.split('\n');
  // Labels must be in sorted order; a space added; the old unsigned JSON form; a second signature line.
  for (const bad of [body!.replace('"group":"web","role":"web"', '"role":"web","group":"web"'), body!.replace('"v":1,', '"v": 1,'), body!, `${body}\n${sig}\n${sig}`]) {
    const text = bad.includes('\n') ? bad : `${bad}\n${sig}`;
    const verdict = checkPresence(Buffer.from(bad === body ? bad : text), T0);
    assert.equal(verdict.ok, false, bad);
    assert.equal(verdict.ok === false && verdict.reason, 'malformed', bad);
  }
  assert.throws(() => decodePresence(Buffer.alloc(17 * 1024, 0x20)), PresenceDecodeError);
  assert.throws(() => encodePresenceBody({ name: 'a.b', labels: {}, fingerprint: web.fingerprint, spki: web.spki, version: '', startedAt: new Date(T0).toISOString(), issuedAt: new Date(T0).toISOString() }), RangeError);
  assert.throws(() => encodePresenceBody({ name: 'a', labels: { role: 'a,b' }, fingerprint: web.fingerprint, spki: web.spki, version: '', startedAt: new Date(T0).toISOString(), issuedAt: new Date(T0).toISOString() }), RangeError);
});

test('freshness: believed from skew before issuedAt to max age + skew after; another key\'s fingerprint or spki is a bad signature', () => {
  const r = { name: 'web1', labels: {}, version: '1', startedAt: new Date(T0).toISOString() };
  const wire = signPresence(r, web, T0);
  assert.equal(checkPresence(wire, T0 + PRESENCE_RECORD_MAX_AGE_MS + PRESENCE_CLOCK_SKEW_MS).ok, true);
  assert.deepEqual(pick(checkPresence(wire, T0 + PRESENCE_RECORD_MAX_AGE_MS + PRESENCE_CLOCK_SKEW_MS + 1)), 'stale');
  assert.equal(checkPresence(wire, T0 - PRESENCE_CLOCK_SKEW_MS).ok, true);
  assert.deepEqual(pick(checkPresence(wire, T0 - PRESENCE_CLOCK_SKEW_MS - 1)), 'future');
  // The record names another key than the one that signed it (spki and fingerprint of `other`).
  const lying = signPresence(r, { ...web, fingerprint: other.fingerprint, spki: other.spki }, T0);
  assert.equal(pick(checkPresence(lying, T0)), 'signature');
  // The fingerprint is not the spki's.
  const mismatched = signPresence(r, { ...web, fingerprint: other.fingerprint }, T0);
  assert.equal(pick(checkPresence(mismatched, T0)), 'signature');
});

test('a presence signature is no broadcast result signature (distinct contexts), though one key makes both', () => {
  const wire = signPresence({ name: 'web1', labels: {}, version: '1', startedAt: new Date(T0).toISOString() }, web, T0);
  const decoded = decodePresence(wire);
  const result: BroadcastResult = { v: 1, id: 'A'.repeat(22), name: 'web1', fingerprint: web.fingerprint, spki: web.spki, exitCode: 0, signal: null, stdout: '', stderr: '', truncated: false, timedOut: false, durationMs: 1 };
  // Even with the presence body's bytes offered as a result body, the signature does not verify.
  assert.equal(verifyBroadcastResult({ body: result, bodyBytes: decoded.bodyBytes, signature: { algorithm: RESULT_ALGORITHM, signature: decoded.signature.signature } }), false);
  assert.equal(verifyBroadcastResult({ body: result, bodyBytes: encodeResultBody(result), signature: { algorithm: RESULT_ALGORITHM, signature: decoded.signature.signature } }), false);
});

function pick(v: ReturnType<typeof checkPresence>): string {
  return v.ok ? 'ok' : v.reason;
}

const rec = (name: string, signer: typeof web, labels: Record<string, string>, at = T0) => signPresence({ name, labels, version: '1', startedAt: new Date(T0).toISOString() }, signer, at);

test('judging: the pinned key wins and the other is `changed`; no pin: one key unverified, two a conflict; the newest record per key counts', () => {
  const pins = new Map([['web1', [web.fingerprint]]]);
  const d = judgeAnswers([rec('web1', other, { role: 'db' }), rec('web1', web, { role: 'web' }), rec('web2', web, { role: 'web' }), rec('db1', web, { role: 'db' }), rec('db1', other, { role: 'db' })], pins, T0);
  assert.deepEqual(d.agents.map((a) => [a.name, a.trust, a.labels.role]), [['db1', 'conflict', 'db'], ['db1', 'conflict', 'db'], ['web1', 'verified', 'web'], ['web2', 'unverified', 'web']]);
  assert.deepEqual(d.agents.filter((a) => a.name === 'db1').map((a) => a.fingerprint).sort(), [web.fingerprint, other.fingerprint].sort());
  assert.equal(d.agents.find((a) => a.name === 'web1')!.fingerprint, web.fingerprint);
  assert.deepEqual(d.problems.map((p) => p.kind).sort(), ['changed', 'conflict']);
  // Only the wrong key answered: nothing listed, a `changed` problem.
  const only = judgeAnswers([rec('web1', other, { role: 'db' })], pins, T0);
  assert.deepEqual(only.agents, []);
  assert.deepEqual(only.problems, [{ kind: 'changed', name: 'web1', fingerprint: other.fingerprint, pinned: [web.fingerprint] }]);
  // An older record (a replay) of the same key does not replace a newer one, whatever the order.
  const newest = judgeAnswers([rec('web1', web, { role: 'new' }, T0), rec('web1', web, { role: 'old' }, T0 - 10_000)], pins, T0);
  assert.deepEqual(newest.agents.map((a) => a.labels.role), ['new']);
  // `gone` records are not live agents; a flood of one forgery is one problem.
  const forged = Buffer.from(rec('web1', web, { role: 'db' }));
  forged[forged.length - 5] ^= 1;
  const many = judgeAnswers([forged, forged, forged, signPresence({ name: 'web3', labels: {}, version: '1', startedAt: new Date(T0).toISOString(), gone: true }, web, T0)], pins, T0);
  assert.deepEqual(many.agents, []);
  assert.equal(many.problems.length, 1);
});

test('inventory: unverified and conflicting agents are selected by their name only (told to onNameOnlySkipped); --accept-new-host selects unverified ones', () => {
  const pins = new Map([['web1', [web.fingerprint]]]);
  const d = judgeAnswers([rec('web1', web, { role: 'web', group: 'web' }), rec('web2', web, { role: 'web', group: 'web' }), rec('db1', web, { role: 'db' }), rec('db1', other, { role: 'db' })], pins, T0);
  let skipped: string[] = [];
  const inv = natsInventory('nats://x', d.agents, { onSkipped: (hosts: readonly FleetHost[]) => (skipped = hosts.map((h) => h.name)) });
  const names = (t: string) => {
    skipped = [];
    return resolveTargets(t, inv, { allowEmpty: true }).map((h) => h.name);
  };
  assert.deepEqual(names('role=web'), ['web1']);
  assert.deepEqual(skipped, ['web2']);
  assert.deepEqual(names('@web'), ['web1']);
  assert.deepEqual(names('web*'), ['web1']);
  assert.deepEqual(names('all'), ['web1']);
  assert.deepEqual(skipped, ['db1', 'web2']);
  assert.deepEqual(names('!web1'), []);
  assert.deepEqual(names('web2'), ['web2']);
  assert.deepEqual(skipped, []);
  assert.deepEqual(names('db1,role=web'), ['db1', 'web1']);
  assert.deepEqual(names('@web,!web2'), ['web1']);
  assert.deepEqual(skipped, [], 'excluded by name: nothing to warn about');
  // A conflict has no labels at all: role=db names a label no selectable host has.
  assert.throws(() => resolveTargets('role=db', inv), NoHostsMatchedError);
  const accepting = natsInventory('nats://x', d.agents, { acceptNew: true });
  assert.deepEqual(resolveTargets('role=web', accepting).map((h) => h.name), ['web1', 'web2']);
  assert.deepEqual(resolveTargets('all', accepting).map((h) => h.name), ['web1', 'web2'], 'a conflict is never selected by a pattern');
});

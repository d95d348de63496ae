/**
 * The gateway's two OPEN fields (docs/protocol.md "Gateway"): `host` (client → gateway) and
 * `onBehalfOf: { user, operator }` (gateway → host) survive encode/decode exactly, and every
 * malformed value — not a string, empty, NUL, over 255 bytes of UTF-8, an unpaired surrogate,
 * an onBehalfOf with another shape — is refused with SW_ERR_BAD_MESSAGE as other malformed
 * OPENs are. And users.yaml `actAs`: names users of the same file, never a chain.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeOpen, encodeOpen, MAX_GATEWAY_HOSTS, MAX_GATEWAY_NAME_BYTES, type OpenRequest } from '../../src/protocol/messages.js';
import { parseUsersConfig, UsersConfigError } from '../../src/auth/users-config.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { recoverLostCommands } from '../../src/server/lost-commands.js';
import { silentLogger } from '../../src/silent-logger.js';

const RUNS = { numRuns: 300 };
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** A valid gateway name: any Unicode text (pairs included), no NUL, 1–255 bytes of UTF-8. */
const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 90 })
  .filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= MAX_GATEWAY_NAME_BYTES);
const onBehalfOf = fc.record({ user: name, operator: name });
const base = fc.oneof(
  fc.constant<OpenRequest>({ kind: 'exec', window: 65536, maxPacket: 65536, params: { command: 'echo hi' } }),
  fc.constant<OpenRequest>({ kind: 'exec', window: 1, maxPacket: 1, params: { argv: ['ls', '-l'], session: 3 } }),
  fc.constant<OpenRequest>({ kind: 'session', window: 10, maxPacket: 10, params: { cwd: '/tmp' } }),
  fc.constant<OpenRequest>({ kind: 'file', window: 10, maxPacket: 10, params: { op: 'stat', path: '/etc' } }),
  fc.constant<OpenRequest>({ kind: 'gateway', window: 10, maxPacket: 10, params: { op: 'hosts' } }),
);

function openWith(extra: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ kind: 'exec', window: 10, maxPacket: 10, command: 'true', ...extra }), 'utf8');
}

function refused(payload: Buffer, why: RegExp): void {
  assert.throws(() => decodeOpen(payload), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, String(err));
    assert.equal(err.code, ErrorCode.BAD_MESSAGE);
    assert.match(err.message, why);
    return true;
  });
}

describe('OPEN host and onBehalfOf', () => {
  test('decode(encode(open)) gives the same host and onBehalfOf, for every kind and any valid name', () => {
    fc.assert(fc.property(base, fc.option(name, { nil: undefined }), fc.option(onBehalfOf, { nil: undefined }), (open, host, who) => {
      const value: OpenRequest = { ...open, ...(host !== undefined ? { host } : {}), ...(who !== undefined ? { onBehalfOf: who } : {}) };
      const decoded = decodeOpen(encodeOpen(value));
      assert.deepEqual(plain(decoded), plain(value));
      // Header fields, not the kind's parameters: a handler of another kind never sees them.
      assert.ok(!('host' in (decoded.params as object)) && !('onBehalfOf' in (decoded.params as object)));
    }), RUNS);
  });

  test('the header fields go on the wire after kind, window and maxPacket; a parameter of the same name cannot replace them', () => {
    const payload = encodeOpen({ kind: 'gateway', window: 7, maxPacket: 9, host: 'web01', onBehalfOf: { user: 'deploy', operator: 'alice' }, params: { host: 'evil', onBehalfOf: 'x', op: 'hosts' } });
    assert.equal(payload.toString('utf8'), '{"kind":"gateway","window":7,"maxPacket":9,"host":"web01","onBehalfOf":{"user":"deploy","operator":"alice"},"op":"hosts"}');
    const without = encodeOpen({ kind: 'exec', window: 2097152, maxPacket: 65536, params: { command: 'echo hello' } });
    assert.equal(without.toString('utf8'), '{"kind":"exec","window":2097152,"maxPacket":65536,"command":"echo hello"}', 'an OPEN without them is byte-for-byte what v1 sent');
  });

  test('255 bytes of UTF-8 are accepted, 256 refused (counted in bytes, not characters)', () => {
    assert.equal(decodeOpen(openWith({ host: 'a'.repeat(255) })).host, 'a'.repeat(255));
    refused(openWith({ host: 'a'.repeat(256) }), /"host" must be at most 255 bytes/);
    assert.equal(decodeOpen(openWith({ host: '€'.repeat(85) })).host, '€'.repeat(85));
    refused(openWith({ host: '€'.repeat(86) }), /"host" must be at most 255 bytes/);
    refused(openWith({ onBehalfOf: { user: 'd', operator: '😀'.repeat(64) } }), /"onBehalfOf.operator" must be at most 255 bytes/);
  });

  test('any string over 255 bytes or with a NUL is refused, in each of the three places', () => {
    const tooLong = fc.string({ unit: 'binary', minLength: 64, maxLength: 300 }).filter((s) => Buffer.byteLength(s) > 255);
    const withNul = fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([a, b]) => `${a}\0${b}`);
    const place = fc.constantFrom('host', 'onBehalfOf.user', 'onBehalfOf.operator');
    fc.assert(fc.property(fc.oneof(tooLong, withNul), place, (bad, where) => {
      const extra = where === 'host' ? { host: bad } : { onBehalfOf: { user: 'deploy', operator: 'alice', [where.slice('onBehalfOf.'.length)]: bad } };
      refused(openWith(extra), new RegExp(`"${where.replace('.', '\\.')}" must`));
    }), RUNS);
  });

  test('not a string, empty, or an unpaired surrogate: refused', () => {
    for (const host of [1, null, true, [], {}, '']) refused(openWith({ host }), /"host" must be a non-empty string/);
    refused(openWith({ host: 'web\udc8001' }), /"host" must be well-formed Unicode/);
    refused(openWith({ onBehalfOf: { user: '\ud800', operator: 'alice' } }), /"onBehalfOf.user" must be well-formed/);
  });

  test('onBehalfOf is an object with exactly user and operator', () => {
    for (const value of ['deploy', 1, null, [], ['deploy', 'alice']]) refused(openWith({ onBehalfOf: value }), /"onBehalfOf" must be an object/);
    refused(openWith({ onBehalfOf: { user: 'deploy' } }), /"onBehalfOf.operator" must be a non-empty string/);
    refused(openWith({ onBehalfOf: { operator: 'alice' } }), /"onBehalfOf.user" must be a non-empty string/);
    refused(openWith({ onBehalfOf: { user: 'deploy', operator: 'alice', runAs: 'root' } }), /exactly "user" and "operator", not "runAs"/);
    refused(openWith({ onBehalfOf: { user: 'deploy', operator: 1 } }), /"onBehalfOf.operator" must be a non-empty string/);
  });

  test('checked whatever the kind, like the rest of the header', () => {
    for (const kind of ['session', 'file', 'gateway']) {
      refused(Buffer.from(JSON.stringify({ kind, window: 1, maxPacket: 1, op: 'stat', path: '/', host: 'a\0b' })), /"host" must not contain NUL/);
    }
  });
});

describe('OPEN hosts (a put to many hosts through the gateway)', () => {
  const put = (hosts: unknown) => Buffer.from(JSON.stringify({ kind: 'file', window: 1, maxPacket: 1, hosts, op: 'put', path: 'up/', size: 0, mode: 420, mtimeMs: 0 }));

  test('1 to 10,000 names survive encode/decode as a header field, never a parameter', () => {
    fc.assert(fc.property(fc.uniqueArray(name, { minLength: 1, maxLength: 20 }), (hosts) => {
      const value: OpenRequest = { kind: 'file', window: 1, maxPacket: 1, hosts, params: { op: 'put', path: 'up/', size: 3, mode: 0o644, mtimeMs: 0, resume: false } };
      const decoded = decodeOpen(encodeOpen(value));
      assert.deepEqual(plain(decoded), plain(value));
      assert.ok(!('hosts' in (decoded.params as object)));
    }), { numRuns: 100 });
    const most = Array.from({ length: MAX_GATEWAY_HOSTS }, (_, i) => `h${i}`);
    assert.equal(decodeOpen(put(most)).hosts?.length, MAX_GATEWAY_HOSTS);
  });

  test('not an array, empty, over 10,000, a name twice, or a bad name: refused', () => {
    for (const hosts of ['web01', 1, null, {}, []]) refused(put(hosts), /"hosts" must be an array of 1 to 10000 host names/);
    refused(put(Array.from({ length: MAX_GATEWAY_HOSTS + 1 }, (_, i) => `h${i}`)), /"hosts" must be an array of 1 to 10000/);
    refused(put(['web01', 'web01']), /"hosts" names a host twice/);
    refused(put(['web01', '']), /"hosts\[1\]" must be a non-empty string/);
    refused(put(['a\0b']), /"hosts\[0\]" must not contain NUL/);
    refused(put(['a'.repeat(256)]), /"hosts\[0\]" must be at most 255 bytes/);
    refused(put([7]), /"hosts\[0\]" must be a non-empty string/);
  });
});

describe('users.yaml actAs', () => {
  const load = (lines: string[]) => parseUsersConfig(lines.join('\n'), '/etc/sw/users.yaml');
  const problem = (lines: string[], pattern: RegExp) =>
    assert.throws(() => load(lines), (err: unknown) => {
      assert.ok(err instanceof UsersConfigError, String(err));
      assert.equal(err.code, ErrorCode.BAD_CONFIG);
      assert.match(err.message, pattern);
      return true;
    });

  test('names users of the same file, with their policies; a user with actAs and no channels has none of its own', () => {
    const config = load(['users:', '  gateway:', '    actAs: [deploy, ops]', '  deploy:', '    allowRoot: true', '    commands: { allow: ["ls ..."] }', '  ops: { allowRoot: true }']);
    const gateway = config.users.get('gateway')!;
    assert.deepEqual([...gateway.actAs!.keys()], ['deploy', 'ops']);
    assert.equal(gateway.actAs!.get('deploy'), config.users.get('deploy'), 'the policy the file gives deploy');
    assert.deepEqual([...gateway.channels], [], 'and so, even on a root daemon, needs no allowRoot');
    assert.deepEqual([...config.users.get('ops')!.channels].sort(), ['exec', 'file', 'pty', 'session'], 'users without actAs keep the default');
    const withChannels = load(['users:', '  gateway:', '    actAs: [deploy]', '    channels: [exec]', '    allowRoot: true', '  deploy: { allowRoot: true }']);
    assert.deepEqual([...withChannels.users.get('gateway')!.channels], ['exec']);
    const withRules = load(['users:', '  gateway:', '    actAs: [deploy]', '    commands: { allow: ["uptime"] }', '  deploy: { allowRoot: true }']);
    assert.deepEqual([...withRules.users.get('gateway')!.channels], [], 'command rules without channels give no channels either');
  });

  test('an unknown user is an error naming the line and the field', () => {
    problem(['users:', '  gateway:', '    actAs:', '      - deploy', '      - nobody', '  deploy: {}'], /users\.yaml:5: users\.gateway\.actAs\[1\]: no user "nobody" in this file/);
  });

  test('acting as a user who has an actAs (a chain, or itself) is refused', () => {
    problem(['users:', '  gw1:', '    actAs: [gw2]', '  gw2:', '    actAs: [deploy]', '  deploy: {}'], /users\.yaml:3: users\.gw1\.actAs\[0\]: "gw2" has an actAs of its own.*cannot chain/);
    problem(['users:', '  gateway:', '    actAs: [gateway]'], /users\.gateway\.actAs\[0\]: "gateway" has an actAs of its own/);
  });

  test("a gateway's fields in a daemon's users.yaml are refused, saying where they belong", () => {
    problem(['users:', '  alice:', '    allowRoot: true', '    hosts: ["@web"]', '    as: deploy'], /users\.yaml:4: users\.alice\.hosts: "hosts" belongs in a gateway's users\.yaml[\s\S]*users\.yaml:5: users\.alice\.as: "as" belongs in a gateway's/);
  });

  test('not a list, or not names', () => {
    problem(['users:', '  gateway:', '    actAs: deploy', '  deploy: {}'], /users\.gateway\.actAs: must be a list of user names/);
    problem(['users:', '  gateway:', '    actAs: [1]', '  deploy: {}'], /users\.gateway\.actAs\[0\]: must be a user name/);
  });
});

describe('a lost command of a gateway channel', () => {
  test("its end row, written by the next daemon start, names the gateway and the operator as the live rows did", () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-lost-'));
    try {
      const line = { channel: 4, command: 'sleep 100', startedAt: '2026-11-30T07:00:00.000Z', user: 'deploy', osUser: 'deploy', address: '127.0.0.1:5', via: 'gateway', operator: 'alice', lostAt: '2026-11-30T07:00:01.000Z' };
      writeFileSync(join(dir, 'lost-commands.123.jsonl'), `${JSON.stringify(line)}\n`);
      const log = AuditLog.open(auditLogPath(dir));
      try {
        assert.equal(recoverLostCommands(dir, log, silentLogger()), 1);
        const [row] = log.query({ kind: 'command-end' });
        assert.equal(row?.user, 'deploy');
        assert.equal(row?.detail?.via, 'gateway');
        assert.equal(row?.detail?.operator, 'alice');
      } finally {
        log.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

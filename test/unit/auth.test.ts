import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, parsePrivateKey, parsePublicKey, signAuth, verifyAuth } from '../../src/auth/ssh-key.js';
import { parseUsersConfig } from '../../src/auth/users-config.js';
import { wordGlob } from '../../src/auth/command-rule.js';
import { checkCommand, checkOpen } from '../../src/auth/policy.js';
import { AuthThrottle } from '../../src/auth/throttle.js';
import { hashPassword, verifyPassword } from '../../src/auth/password.js';
import { ErrorCode } from '../../src/errors.js';

const hasSshKeygen = (() => {
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return (err as { status?: number }).status !== undefined && (err as { code?: string }).code !== 'ENOENT';
  }
})();

test('keys made by ssh-keygen are read, and ours are read by ssh-keygen', { skip: !hasSshKeygen && 'ssh-keygen missing' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-keys-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'from ssh', '-f', join(dir, 'a')]);
  const priv = parsePrivateKey(readFileSync(join(dir, 'a'), 'utf8'));
  const pub = parsePublicKey(readFileSync(join(dir, 'a.pub'), 'utf8'));
  assert.equal(priv.publicKey.line, pub.line);
  assert.equal(pub.comment, 'from ssh');
  const fingerprint = execFileSync('ssh-keygen', ['-lf', join(dir, 'a.pub')], { encoding: 'utf8' }).split(' ')[1];
  assert.equal(pub.fingerprint, fingerprint);

  const ours = generateKeyPair('made by shellwire');
  writeFileSync(join(dir, 'b'), ours.privateText, { mode: 0o600 });
  const derived = execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'b')], { encoding: 'utf8' }).trim();
  assert.equal(derived, ours.publicLine);

  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', join(dir, 'c')]);
  assert.throws(() => parsePrivateKey(readFileSync(join(dir, 'c'), 'utf8')), (err: Error & { code?: string }) => err.code === ErrorCode.BAD_KEY && /passphrase-protected.*ssh-add/.test(err.message));
  assert.equal(parsePrivateKey(readFileSync(join(dir, 'c'), 'utf8'), 'c', 'secret').publicKey.line.split(' ')[1], readFileSync(join(dir, 'c.pub'), 'utf8').split(' ')[1]);
  assert.throws(() => parsePublicKey('ssh-rsa AAAAB3NzaC1yc2E= x'), /not a valid ssh-rsa key/);
});

test('a publickey signature is bound to user and TLS exporter value', () => {
  const pair = generateKeyPair('k');
  const key = parsePrivateKey(pair.privateText);
  const exporter = Buffer.alloc(32, 7);
  const signature = signAuth(key, 'alice', exporter);
  assert.equal(verifyAuth(key.publicKey, 'alice', exporter, signature), true);
  assert.equal(verifyAuth(key.publicKey, 'bob', exporter, signature), false, 'another user');
  assert.equal(verifyAuth(key.publicKey, 'alice', Buffer.alloc(32, 8), signature), false, 'another TLS session (replay)');
});

test('users.yaml errors name the file, line and field', () => {
  const text = ['users:', '  alice:', '    channels: [exec, telnet]', '    commands:', '      allow: "git *"', '    keys:', '      - ssh-rsa AAAA x', '    tokens:', '      - name: ci', '        sha256: nothex', '    colour: blue'].join('\n');
  assert.throws(() => parseUsersConfig(text, '/etc/sw/users.yaml'), (err: Error & { code?: string }) => {
    assert.equal(err.code, ErrorCode.BAD_CONFIG);
    assert.match(err.message, /users\.yaml:3: users\.alice\.channels\[1\]: unknown channel kind "telnet"/);
    assert.match(err.message, /users\.yaml:5: users\.alice\.commands\.allow: must be a list/);
    assert.match(err.message, /users\.yaml:7: users\.alice\.keys\[0\]: .*not a valid ssh-rsa key/);
    assert.match(err.message, /users\.yaml:10: users\.alice\.tokens\[0\]\.sha256: must be 64 hex digits/);
    assert.match(err.message, /users\.yaml:11: users\.alice\.colour: unknown field/);
    return true;
  });
  assert.throws(() => parseUsersConfig('users:\n  a: [\n', 'x.yaml'), /x\.yaml:\d+:/, 'YAML syntax errors carry a line too');
});

test('command rules: deny first, then allow list; denials name the rule', () => {
  const config = parseUsersConfig(['users:', '  ci:', '    allowRoot: true', '    channels: [exec]', '    commands:', '      allow: ["git ...", "ls ..."]', '      deny: ["git push --force*"]'].join('\n'), 'u.yaml');
  const ci = config.users.get('ci')!;
  assert.deepEqual(checkCommand(ci, 'git status'), { allowed: true });
  assert.deepEqual(checkCommand(ci, 'ls -l'), { allowed: true });
  const push = checkCommand(ci, 'git push --force origin main');
  assert.equal(push.allowed, false);
  assert.match((push as { reason: string }).reason, /users\.ci\.commands\.deny\[0\]/);
  const rm = checkCommand(ci, 'rm -rf /');
  assert.match((rm as { reason: string }).reason, /no rule in users\.ci\.commands\.allow/);
  const session = checkOpen(ci, { kind: 'session', window: 1, maxPacket: 1, params: {} });
  assert.match((session as { reason: string }).reason, /may not open session channels/);
  const shell = checkOpen({ ...ci, channels: new Set(['exec', 'pty']) }, { kind: 'exec', window: 1, maxPacket: 1, params: { pty: { term: 'xterm', cols: 80, rows: 24 } } });
  assert.match((shell as { reason: string }).reason, /without a shell: no terminal/);
  assert.equal(wordGlob('a?c*').test('abc-anything'), true);
  assert.equal(wordGlob('a.c').test('abc'), false, 'dots are literal');
  const reordered = checkCommand(ci, 'git --no-pager push origin --force');
  assert.match((reordered as { reason: string }).reason, /deny\[0\]/, 'deny words match arguments in any order');
  assert.match((checkCommand(ci, 'git status; id') as { reason: string }).reason, /";" outside quotes is shell syntax/);
});

test('throttle: exponential backoff, lockout, expiry — on a test clock', () => {
  let now = 1_000_000;
  const throttle = new AuthThrottle({ now: () => now, baseDelayMs: 100, maxDelayMs: 1_000, lockoutAfter: 5, lockoutMs: 60_000 });
  const delays = [1, 2, 3, 4].map(() => throttle.failure('10.0.0.9', 'alice'));
  assert.deepEqual(delays, [100, 200, 400, 800]);
  assert.equal(throttle.lockedFor('10.0.0.9'), 0);
  throttle.failure('10.0.0.9', 'alice');
  assert.equal(throttle.lockedFor('10.0.0.9'), 60_000);
  assert.equal(throttle.lockedFor('10.0.0.10', 'alice'), 60_000, 'the user is locked out for passwords from elsewhere too');
  assert.equal(throttle.lockedFor('10.0.0.10'), 0, 'but not for keys and tokens from another address');
  now += 60_001;
  assert.equal(throttle.lockedFor('10.0.0.9', 'alice'), 0, 'the lockout ends');
  throttle.failure('10.0.0.11');
  throttle.success('10.0.0.11', 'bob');
  assert.equal(throttle.failure('10.0.0.11'), 100, 'success resets the backoff');
  for (let i = 0; i < 5; i++) throttle.failure('10.0.0.12');
  throttle.success('10.0.0.12', 'carol');
  assert.equal(throttle.lockedFor('10.0.0.12'), 60_000, 'another\'s success behind the same address does not lift its lock');
  assert.deepEqual(throttle.locks().map((l) => [l.kind, l.key]), [['address', '10.0.0.12']]);
  assert.equal(throttle.clear('10.0.0.12'), 1);
  assert.equal(throttle.lockedFor('10.0.0.12'), 0, 'a lifted lock is gone');
  // The owner's key login does not lift the user's password lock a guesser earned.
  for (let i = 0; i < 5; i++) throttle.failure(`10.0.1.${i}`, 'dave');
  assert.equal(throttle.lockedFor('10.0.2.1', 'dave'), 60_000);
  throttle.success('10.0.2.2', 'dave', 'publickey');
  assert.equal(throttle.lockedFor('10.0.2.1', 'dave'), 60_000, 'a key login leaves the password lock');
  throttle.success('10.0.2.2', 'dave', 'token');
  assert.equal(throttle.lockedFor('10.0.2.1', 'dave'), 60_000, 'so does a token login');
});

test('password hashes: scrypt, verified in constant time, never stored in clear', async () => {
  const hash = await hashPassword('correct horse');
  assert.match(hash, /^scrypt\$16384\$8\$1\$/);
  assert.ok(!hash.includes('correct horse'));
  assert.equal(await verifyPassword('correct horse', hash), true);
  assert.equal(await verifyPassword('wrong horse', hash), false);
});

test('throttle: at maxRecords the oldest unlocked record goes first, so a flood of addresses does not lift a lock', () => {
  let now = 1_000_000;
  const throttle = new AuthThrottle({ now: () => now, lockoutAfter: 3, lockoutMs: 60_000, windowMs: 60_000, maxRecords: 4 });
  for (let i = 0; i < 3; i++) throttle.failure('10.9.0.1', 'alice');
  for (let i = 2; i < 50; i++) throttle.failure(`10.9.0.${i}`);
  assert.deepEqual(throttle.size, { addresses: 4, users: 1 });
  assert.equal(throttle.lockedFor('10.9.0.1'), 60_000, 'the locked address is kept');
  assert.equal(throttle.lockedFor('10.9.0.200', 'alice'), 60_000, 'and the locked user');
  now += 60_001;
  throttle.failure('10.9.1.1');
  assert.deepEqual(throttle.size, { addresses: 1, users: 0 }, 'expired records are swept on the next failure');
});

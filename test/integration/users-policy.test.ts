/**
 * Who may run what (issue 3): keys, users, tokens, passwords, policy, run-as, backoff,
 * SIGHUP reload — against a real daemon, real OS accounts and the real CLI.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, cleanEnv, startServeCli } from '../helpers/fixtures.js';
import { RawClient } from '../helpers/raw-client.js';
import { connect } from '../../src/client/connect.js';
import { generateKeyPair, parsePrivateKey, signAuth, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LENGTH } from '../../src/auth/ssh-key.js';
import { hashPassword } from '../../src/auth/password.js';
import { FrameType, encodeFrame } from '../../src/protocol/frame.js';
import { encodeJson, FEATURES, PROTOCOL_MAGIC } from '../../src/protocol/messages.js';
import { ErrorCode, type ShellwireError } from '../../src/errors.js';

const isRoot = process.getuid?.() === 0;
const ACCOUNT = 'swtest1';
const GROUP = 'swtestgrp';

function ensureAccount(): void {
  try {
    execFileSync('getent', ['passwd', ACCOUNT], { stdio: 'ignore' });
  } catch {
    try {
      execFileSync('groupadd', ['-f', GROUP]);
    } catch {
      // exists
    }
    execFileSync('useradd', ['-m', '-s', '/bin/sh', '-G', GROUP, ACCOUNT]);
  }
  execFileSync('usermod', ['-a', '-G', GROUP, ACCOUNT]);
}

function keyFiles(dir: string, name: string): { privateFile: string; publicFile: string; publicLine: string } {
  const pair = generateKeyPair(`${name}@test`);
  const privateFile = join(dir, name);
  writeFileSync(privateFile, pair.privateText, { mode: 0o600 });
  writeFileSync(`${privateFile}.pub`, pair.publicLine + '\n');
  return { privateFile, publicFile: `${privateFile}.pub`, publicLine: pair.publicLine };
}

const sha = (token: string) => createHash('sha256').update(token).digest('hex');
const isCode = (code: string) => (err: ShellwireError) => {
  assert.equal(err.code, code, err.message);
  return true;
};

describe('users, keys, tokens and policy', () => {
  let d: TestDaemon;
  let dir: string;
  let alice: ReturnType<typeof keyFiles>;
  let stranger: ReturnType<typeof keyFiles>;
  const ciToken = 'swt_ci-token-for-tests-0123456789abcdef';
  const oldToken = 'swt_expired-token-0123456789abcdef';

  before(async () => {
    if (isRoot) ensureAccount();
    d = await startDaemon({ throttle: { baseDelayMs: 1, maxDelayMs: 1 } });
    dir = tempDir();
    alice = keyFiles(dir, 'alice');
    stranger = keyFiles(dir, 'stranger');
    const runAs = isRoot ? `    runAs: ${ACCOUNT}\n` : '';
    writeFileSync(
      join(d.server.stateDir, 'users.yaml'),
      [
        'settings:',
        '  passwordLogin: true',
        'users:',
        '  alice:',
        runAs.trimEnd(),
        '    keys:',
        `      - ${alice.publicLine}`,
        '    tokens:',
        `      - { name: ci, sha256: ${sha(ciToken)} }`,
        `      - { name: old, sha256: ${sha(oldToken)}, expires: 2020-01-01T00:00:00Z }`,
        `    password: "${await hashPassword('alice password')}"`,
        '  deploy:',
        '    allowRoot: true',
        '    channels: [exec]',
        '    commands:',
        '      allow: ["echo *", "git *"]',
        '      deny: ["git push --force*"]',
        '    keys:',
        `      - ${alice.publicLine}`,
      ].filter((l) => l !== '').join('\n') + '\n',
    );
    const reloaded = d.server.reloadUsers();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
  });
  after(async () => {
    await d.stop();
  });

  const asAlice = (extra: object = {}) => connect(`alice@${d.address}`, { identity: alice.privateFile, fingerprint: d.fingerprint, env: cleanEnv(), ...extra });

  it('an OpenSSH key logs in as its user; commands run as the mapped OS account', async () => {
    const conn = await asAlice();
    assert.equal(conn.server.user, 'alice');
    const r = await conn.exec('id -un; echo "$HOME|$USER"; pwd; touch made-here; stat -c %U made-here; id -Gn');
    const [name, env, cwd, owner, groups] = r.stdout.trim().split('\n');
    if (isRoot) {
      const home = execFileSync('getent', ['passwd', ACCOUNT], { encoding: 'utf8' }).split(':')[5]!;
      assert.equal(name, ACCOUNT);
      assert.equal(env, `${home}|${ACCOUNT}`);
      assert.equal(cwd, home);
      assert.equal(owner, ACCOUNT, 'files a command creates belong to the account');
      assert.ok(groups!.split(' ').includes(GROUP), `supplementary groups are set: ${groups}`);
      assert.equal(statSync(join(home, 'made-here')).uid, Number(execFileSync('id', ['-u', ACCOUNT], { encoding: 'utf8' })));
    } else {
      assert.equal(name, execFileSync('id', ['-un'], { encoding: 'utf8' }).trim());
    }
    await conn.close();
  });

  it('the CLI logs in with -i and USER@', async () => {
    const r = await runCli(['exec', '-i', alice.privateFile, `alice@${d.address}`, '--', 'echo', 'via-cli'], { env: cleanEnv({ SHELLWIRE_HOME: d.home }) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'via-cli\n');
  });

  it('a key that is not authorized, or a user that does not exist, is refused (exit 255)', async () => {
    await assert.rejects(connect(`alice@${d.address}`, { identity: stranger.privateFile, fingerprint: d.fingerprint, env: cleanEnv() }), isCode(ErrorCode.AUTH_FAILED));
    await assert.rejects(connect(`nobody@${d.address}`, { identity: alice.privateFile, fingerprint: d.fingerprint, env: cleanEnv() }), isCode(ErrorCode.AUTH_FAILED));
    const r = await runCli(['exec', '-i', stranger.privateFile, `alice@${d.address}`, '--', 'true'], { env: cleanEnv({ SHELLWIRE_HOME: d.home }) });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /not authorized for user "alice"/);
  });

  it('a named token acts as its user; an expired or revoked token is refused', async () => {
    const conn = await connect(d.address, { token: ciToken, fingerprint: d.fingerprint, env: cleanEnv() });
    assert.equal(conn.server.user, 'alice');
    await conn.close();
    await assert.rejects(connect(d.address, { token: oldToken, fingerprint: d.fingerprint, env: cleanEnv() }), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.AUTH_FAILED);
      assert.match(err.message, /expired/);
      return true;
    });
    await assert.rejects(connect(d.address, { token: 'swt_never-issued', fingerprint: d.fingerprint, env: cleanEnv() }), /unknown or revoked token/);
  });

  it('a captured publickey HELLO cannot be replayed on another connection', async () => {
    const key = parsePrivateKey(readFileSync(alice.privateFile, 'utf8'));
    // Connection A: a genuine signature over A's exporter value.
    const a = await RawClient.open(d.port);
    const exporterA = a.socket.exportKeyingMaterial(AUTH_EXPORTER_LENGTH, AUTH_EXPORTER_LABEL, Buffer.alloc(0));
    const hello = encodeFrame(FrameType.HELLO, 0, encodeJson({
      magic: PROTOCOL_MAGIC, versions: [1], features: [...FEATURES], client: 'test', user: 'alice',
      auth: [{ method: 'publickey', user: 'alice', publicKey: key.publicKey.line, signature: signAuth(key, 'alice', exporterA).toString('base64') }],
    }));
    // The attacker replays A's bytes on connection B: refused.
    const b = await RawClient.open(d.port);
    b.write(hello);
    const refused = await b.goodbye();
    assert.equal(refused.code, ErrorCode.AUTH_FAILED);
    assert.match(refused.message, /bad signature/);
    // The same bytes on A itself work (the control).
    a.write(hello);
    const welcome = await a.nextFrame((f) => f.type === FrameType.WELCOME || f.type === FrameType.GOODBYE);
    assert.equal(welcome.type, FrameType.WELCOME);
    a.destroy();
  });

  it('each policy rule denies with a message naming it, and the CLI exits non-zero', async () => {
    const conn = await connect(`deploy@${d.address}`, { identity: alice.privateFile, fingerprint: d.fingerprint, env: cleanEnv() });
    assert.equal((await conn.exec('echo allowed')).stdout, 'allowed\n');
    await assert.rejects(conn.exec('git push --force origin main'), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.DENIED);
      assert.match(err.message, /users\.deploy\.commands\.deny\[0\]/);
      return true;
    });
    await assert.rejects(conn.exec('cat /etc/shadow'), /no rule in users\.deploy\.commands\.allow/);
    await assert.rejects(conn.shell(), /may not open session channels/);
    await assert.rejects(conn.exec(['echo', 'x'], { pty: { term: 'xterm', cols: 80, rows: 24 } }), /may not open pty channels/);
    assert.equal((await conn.exec('echo still-connected')).stdout, 'still-connected\n', 'a denial does not drop the connection');
    await conn.close();
    const r = await runCli(['exec', '-i', alice.privateFile, `deploy@${d.address}`, '--', 'rm', '-rf', '/tmp/x'], { env: cleanEnv({ SHELLWIRE_HOME: d.home }) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Denied: command matches no rule/);
  });

  it('password login: right password works; failures back off, then lock the user out', async () => {
    const conn = await connect(`alice@${d.address}`, { password: 'alice password', fingerprint: d.fingerprint, env: cleanEnv({ HOME: dir }) });
    assert.equal(conn.server.user, 'alice');
    await conn.close();
    // The daemon's throttle: 10 failures lock out (delays are 1 ms in this daemon).
    for (let i = 0; i < 10; i++) {
      await assert.rejects(connect(`alice@${d.address}`, { password: 'guess ' + i, fingerprint: d.fingerprint, env: cleanEnv({ HOME: dir }) }), isCode(ErrorCode.AUTH_FAILED));
    }
    await assert.rejects(connect(`alice@${d.address}`, { password: 'alice password', fingerprint: d.fingerprint, env: cleanEnv({ HOME: dir }) }), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.LOCKED_OUT);
      assert.match(err.message, /locked out for \d+ s/);
      return true;
    });
  });
});

describe('password backoff timing on a test clock', () => {
  it('refusals are held back exponentially, and the lockout ends when the clock moves', async () => {
    let now = Date.now();
    const d = await startDaemon({ throttle: { now: () => now, baseDelayMs: 40, maxDelayMs: 1_000, lockoutAfter: 4, lockoutMs: 60_000 } });
    try {
      writeFileSync(join(d.server.stateDir, 'users.yaml'), `settings: { passwordLogin: true }\nusers:\n  bob:\n    allowRoot: true\n    password: "${await hashPassword('bob password')}"\n`);
      assert.ok(d.server.reloadUsers().ok);
      const attempt = (password: string) => connect(`bob@${d.address}`, { password, fingerprint: d.fingerprint, env: cleanEnv({ HOME: '/nonexistent' }) });
      const took: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await assert.rejects(attempt('wrong'), isCode(ErrorCode.AUTH_FAILED));
        took.push(performance.now() - t0);
      }
      // 40, 80, 160 ms of backoff on top of the round trip.
      assert.ok(took[0]! >= 35 && took[1]! >= 75 && took[2]! >= 150, `backoff grows: ${took.map(Math.round)}`);
      await assert.rejects(attempt('wrong'), isCode(ErrorCode.AUTH_FAILED));
      await assert.rejects(attempt('bob password'), isCode(ErrorCode.LOCKED_OUT));
      now += 60_001;
      const conn = await attempt('bob password');
      assert.equal(conn.server.user, 'bob');
      await conn.close();
    } finally {
      await d.stop();
    }
  });
});

describe('unauthenticated connections are capped', () => {
  it('silent clients beyond the per-address cap are dropped at accept; others get in once they leave', async () => {
    const d = await startDaemon({ limits: { maxStartupsPerSource: 2, handshakeTimeoutMs: 5_000 } });
    try {
      const silent = [await RawClient.open(d.port), await RawClient.open(d.port)];
      // Dropped before TLS (no handshake work for a flood): the client sees the connection fail.
      await assert.rejects(d.connect(), isCode(ErrorCode.CONNECT_FAILED));
      for (const s of silent) s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const conn = await d.connect();
      assert.equal((await conn.exec('echo in')).stdout, 'in\n');
      await conn.close();
    } finally {
      await d.stop();
    }
  });
});

describe('CLI: keygen, user add, token create/revoke, SIGHUP reload', () => {
  it('manages users.yaml and the running daemon picks changes up without a restart', async () => {
    const home = tempDir();
    mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home });
    const serve = await startServeCli(home);
    try {
      writeFileSync(join(home, 'known_hosts'), `${serve.address} ${serve.fingerprint}\n`);
      const keygen = await runCli(['keygen'], { env });
      assert.equal(keygen.code, 0, keygen.stderr);
      assert.match(keygen.stdout.toString(), /Fingerprint: SHA256:/);
      assert.equal(statSync(join(home, 'id_ed25519')).mode & 0o777, 0o600);

      // An open connection (daemon token) stays up across the reload.
      const admin = await connect(serve.address, { tokenFile: serve.tokenFile, fingerprint: serve.fingerprint, env: cleanEnv() });

      const runAs = isRoot ? ['--run-as', ACCOUNT] : [];
      const add = await runCli(['user', 'add', 'carol', '--key', join(home, 'id_ed25519.pub'), ...runAs], { env });
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stderr, /reloaded/);
      const yaml = readFileSync(join(home, 'server', 'users.yaml'), 'utf8');
      assert.match(yaml, /carol:\n/);
      assert.equal(statSync(join(home, 'server', 'users.yaml')).mode & 0o777, 0o600);

      // The default identity ($SHELLWIRE_HOME/id_ed25519) and USER@ — no restart needed.
      const r = await runCli(['exec', `carol@${serve.address}`, '--', 'echo', 'hello carol'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'hello carol\n');

      const made = await runCli(['token', 'create', '--user', 'carol', '--name', 'ci', '--expires', '1h'], { env });
      assert.equal(made.code, 0, made.stderr);
      const token = made.stdout.toString().trim();
      assert.match(token, /^swt_/);
      assert.ok(!readFileSync(join(home, 'server', 'users.yaml'), 'utf8').includes(token), 'only the hash is stored');
      const viaToken = await runCli(['exec', serve.address, '--', 'echo', 'token ok'], { env: { ...env, SHELLWIRE_TOKEN: token, HOME: '/nonexistent', SHELLWIRE_HOME: join(home, 'other') } , });
      // SHELLWIRE_HOME elsewhere: no default key, no known host → pin with --accept-new-host
      const viaToken2 = await runCli(['exec', '--accept-new-host', serve.address, '--', 'echo', 'token ok'], { env: { ...env, SHELLWIRE_TOKEN: token, HOME: '/nonexistent', SHELLWIRE_HOME: join(home, 'other') } });
      assert.equal(viaToken.code, 255, 'unknown host without --accept-new-host');
      assert.equal(viaToken2.code, 0, viaToken2.stderr);
      assert.equal(viaToken2.stdout.toString(), 'token ok\n');

      const revoke = await runCli(['token', 'revoke', '--user', 'carol', 'ci'], { env });
      assert.equal(revoke.code, 0, revoke.stderr);
      const afterRevoke = await runCli(['exec', serve.address, '--', 'true'], { env: { ...env, SHELLWIRE_TOKEN: token, HOME: '/nonexistent', SHELLWIRE_HOME: join(home, 'other') } });
      assert.equal(afterRevoke.code, 255);
      assert.match(afterRevoke.stderr, /unknown or revoked token/);

      const list = await runCli(['user', 'list', '--json'], { env });
      const users = list.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(users.map((u) => u.name), ['carol']);
      assert.equal(users[0].tokens.length, 0);

      // A broken hand edit is refused at reload; the old users stay in force.
      writeFileSync(join(home, 'server', 'users.yaml'), 'users:\n  carol:\n    channels: [telnet]\n', { mode: 0o600 });
      process.kill(serve.child.pid!, 'SIGHUP');
      await serve.waitForStderr(/not reloaded[\s\S]*users\.yaml:3: users\.carol\.channels\[0\]/);
      const still = await runCli(['exec', `carol@${serve.address}`, '--', 'echo', 'still'], { env });
      assert.equal(still.stdout.toString(), 'still\n', still.stderr);

      assert.equal((await admin.exec('echo admin still connected')).stdout, 'admin still connected\n');
      await admin.close();
    } finally {
      serve.kill();
      await serve.exited;
    }
  });
});

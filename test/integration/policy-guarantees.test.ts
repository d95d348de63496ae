/**
 * What a restriction guarantees (issue 8, items 7, 8, 10, 11, 13): command rules that a shell
 * cannot get around, client environments that never reach privileged code, a named user
 * that is the user you get, lock-outs that do not block strong credentials, and one bad
 * request that fails its own channel only. Real daemon, real OS accounts (useradd), real CLI.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync, mkdirSync, existsSync, chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startDaemon, runCli, processAlive, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, cleanEnv, startServeCli } from '../helpers/fixtures.js';
import { RawClient, plainTcpExchange } from '../helpers/raw-client.js';
import { connect } from '../../src/client/connect.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import { hashPassword } from '../../src/auth/password.js';
import { FrameType } from '../../src/protocol/frame.js';
import { ErrorCode, type ShellwireError } from '../../src/errors.js';
import { parseUsersConfig } from '../../src/auth/users-config.js';
import type { AuditSink } from '../../src/audit/audit-sink.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { ClassicServer } from '../../src/server/classic-server.js';

const isRoot = process.getuid?.() === 0;
const ACCOUNT = 'swpolicy1';
const sha = (token: string) => createHash('sha256').update(token).digest('hex');
const isCode = (code: string, message?: RegExp) => (err: ShellwireError) => {
  assert.equal(err.code, code, err.message);
  if (message) assert.match(err.message, message);
  return true;
};

function ensureAccount(name: string): void {
  try {
    execFileSync('getent', ['passwd', name], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/sh', name]);
  }
}

function removeAccount(name: string): void {
  try {
    execFileSync('userdel', ['-r', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

function keyFile(dir: string, name: string): { privateFile: string; publicLine: string } {
  const pair = generateKeyPair(`${name}@test`);
  const privateFile = join(dir, name);
  writeFileSync(privateFile, pair.privateText, { mode: 0o600 });
  return { privateFile, publicLine: pair.publicLine };
}

describe('command restrictions, environment and named users on a root daemon', { skip: !isRoot && 'needs root (useradd, runAs)' }, () => {
  let d: TestDaemon;
  let dir: string;
  let key: ReturnType<typeof keyFile>;
  const started: AuditEvent[] = [];
  const restrictedToken = 'swt_restricted-token-0123456789abcdef';
  const audit: AuditSink = {
    record: (event) => void (event.kind === 'command-start' && started.push(event)),
  };

  before(async () => {
    ensureAccount(ACCOUNT);
    dir = tempDir();
    chmodSync(dir, 0o755);
    key = keyFile(dir, 'key');
    // A variable only the daemon has (a credential from its unit file, say).
    process.env.SW_DAEMON_ONLY_SECRET = 'daemon-secret';
    d = await startDaemon({ audit, throttle: { baseDelayMs: 1, maxDelayMs: 1 } });
    delete process.env.SW_DAEMON_ONLY_SECRET;
    writeFileSync(join(d.server.stateDir, 'users.yaml'), [
      'users:',
      '  alice:',
      `    runAs: ${ACCOUNT}`,
      '    channels: [exec]',
      '    commands:',
      `      allow: ["uptime", "echo ...", "ls ...", "id -un", "cat /srv/sw-x/*", "env", "${dir}/tools/* ..."]`,
      '      deny: ["ls /etc"]',
      `    keys: ["${key.publicLine}"]`,
      `    tokens: [{ name: ci, sha256: ${sha(restrictedToken)} }]`,
      '  bob:',
      `    runAs: ${ACCOUNT}`,
      `    keys: ["${key.publicLine}"]`,
    ].join('\n') + '\n');
    assert.ok(d.server.reloadUsers().ok);
  });
  after(async () => {
    await d.stop();
    removeAccount(ACCOUNT);
  });

  const as = (user: string) => connect(`${user}@${d.address}`, { identity: key.privateFile, fingerprint: d.fingerprint, env: cleanEnv() });

  it('item 7: shell syntax never reaches a shell: ; && | $( ) ` newline > all refused', async () => {
    const conn = await as('alice');
    for (const cmd of ['uptime; id', 'uptime && id', 'echo a | id', 'echo $(id)', 'echo `id`', 'echo a\nid', 'echo x > /tmp/sw-pwned', 'uptime&id', 'echo ${HOME}', 'FOO=1 echo x', 'echo ~root', 'echo *']) {
      await assert.rejects(conn.exec(cmd), isCode(ErrorCode.DENIED), `refused: ${JSON.stringify(cmd)}`);
    }
    assert.ok(!existsSync('/tmp/sw-pwned'));
    // Quoted, the same characters are literal words, run without a shell.
    assert.equal((await conn.exec(`echo 'a;b' "c|d" 'e$(id)'`)).stdout, 'a;b c|d e$(id)\n');
    assert.equal((await conn.exec(['echo', 'x; id'])).stdout, 'x; id\n');
    assert.equal((await conn.exec('id -un')).stdout, `${ACCOUNT}\n`);
    assert.equal((await conn.exec('uptime', { reject: false })).exitCode, 0);
    await conn.close();
  });

  it('item 7: rules are word patterns: * stays inside one word, "..." is any further words', async () => {
    const conn = await as('alice');
    await assert.rejects(conn.exec('uptime -p'), isCode(ErrorCode.DENIED, /no rule/), 'a bare rule takes no arguments');
    await assert.rejects(conn.exec('uptimex'), isCode(ErrorCode.DENIED));
    await assert.rejects(conn.exec('id -un root'), isCode(ErrorCode.DENIED));
    await assert.rejects(conn.exec('cat /srv/sw-x/../../etc/shadow'), isCode(ErrorCode.DENIED), 'paths are normalised before matching');
    await assert.rejects(conn.exec('cat /srv/sw-x/a /etc/shadow'), isCode(ErrorCode.DENIED), '* matches one word');
    await assert.rejects(conn.exec(['/tmp/ls']), isCode(ErrorCode.DENIED), 'a path is not the command a bare rule names');
    await conn.close();
  });

  it('item 7: a deny rule catches reordered, doubled and unnormalised forms', async () => {
    const conn = await as('alice');
    for (const cmd of ['ls /etc', 'ls -a /etc', 'ls  /etc', 'ls //etc', 'ls /etc/', 'ls /./etc', 'ls /tmp/../etc', '/usr/bin/ls /etc', '/bin/ls -la /etc']) {
      await assert.rejects(conn.exec(cmd), isCode(ErrorCode.DENIED, /deny\[0\]/), `denied: ${cmd}`);
    }
    await assert.rejects(conn.exec('ls', { cwd: '/etc' }), isCode(ErrorCode.DENIED, /outside/), 'cwd stays inside the user\'s roots');
    assert.equal((await conn.exec('ls -d /tmp')).stdout, '/tmp\n');
    await conn.close();
  });

  it('item 7: a program path with "=" runs itself, never the next argument (env(1) would take it for a variable)', async () => {
    mkdirSync(join(dir, 'tools'), { mode: 0o755 });
    const tool = join(dir, 'tools', 'run=1');
    writeFileSync(tool, '#!/bin/sh\necho "tool $*"\n', { mode: 0o755 });
    const alice = await as('alice');
    assert.equal((await alice.exec([tool, 'bash', '-c', 'echo PWNED'])).stdout, 'tool bash -c echo PWNED\n');
    await alice.close();
    // Unrestricted runAs user: a missing program with "=" is "not found", not a way to run the rest.
    const bob = await as('bob');
    const missing = await bob.exec([join(dir, 'a=b'), 'echo', 'PWNED'], { reject: false });
    assert.equal(missing.exitCode, 127);
    assert.doesNotMatch(missing.stdout, /PWNED/);
    await bob.close();
  });

  it('item 8: another account never sees the daemon\'s own environment, only a fresh login\'s', async () => {
    for (const user of ['alice', 'bob']) {
      const conn = await as(user);
      const env = (await conn.exec(user === 'alice' ? 'env' : ['env'])).stdout;
      assert.doesNotMatch(env, /SW_DAEMON_ONLY_SECRET/, user);
      assert.match(env, new RegExp(`^USER=${ACCOUNT}$`, 'm'), user);
      assert.match(env, /^PATH=/m, user);
      await conn.close();
    }
  });

  it('item 7: an allow-list with session or pty channels is refused at load', () => {
    assert.throws(() => parseUsersConfig('users:\n  a:\n    allowRoot: true\n    channels: [exec, session]\n    commands: { allow: ["ls"] }\n', 'users.yaml'), /users\.a\.channels.*session/s);
    assert.throws(() => parseUsersConfig('users:\n  a:\n    allowRoot: true\n    channels: [pty]\n    commands: { allow: ["ls"] }\n', 'users.yaml'), /pty/);
    assert.throws(() => parseUsersConfig('users:\n  a:\n    allowRoot: true\n    commands: { allow: ["ls;id"] }\n', 'users.yaml'), /commands\.allow\[0\]/);
    const ok = parseUsersConfig('users:\n  a:\n    allowRoot: true\n    commands: { allow: ["ls"] }\n', 'users.yaml');
    assert.deepEqual([...ok.users.get('a')!.channels].sort(), ['exec', 'file'], 'command rules narrow the default channels');
  });

  it('item 7: the classic port takes no user token, so it cannot run a restricted user\'s commands', async () => {
    const classic = new ClassicServer({ token: d.token, host: '127.0.0.1', port: 0 });
    const { port } = await classic.listen();
    try {
      const { received } = await plainTcpExchange(port, `${restrictedToken}\nid\n`);
      assert.match(received.toString(), /ERROR SW_ERR_AUTH_FAILED/);
    } finally {
      await classic.close(0);
    }
  });

  it('item 8: LD_* never reaches setpriv (root); PATH and other names are refused for a restricted user', async () => {
    const so = join(dir, 'evil.so');
    const marker = join(dir, 'evil-ran');
    writeFileSync(join(dir, 'evil.c'), `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void f(void){FILE*o=fopen("${marker}","a");if(o){fprintf(o,"euid=%d\\n",(int)geteuid());fclose(o);}}\n`);
    execFileSync('gcc', ['-shared', '-fPIC', '-o', so, join(dir, 'evil.c')]);
    const bob = await as('bob');
    await assert.rejects(bob.exec(['true'], { env: { LD_PRELOAD: so } }), isCode(ErrorCode.DENIED, /LD_PRELOAD/));
    await assert.rejects(bob.exec(['true'], { env: { BASH_ENV: so } }), isCode(ErrorCode.DENIED, /BASH_ENV/));
    // An unrestricted user's own variables still arrive, after the switch.
    assert.equal((await bob.exec('echo "$GREETING"; id -un', { env: { GREETING: 'hi' } })).stdout, `hi\n${ACCOUNT}\n`);
    // The terminal path hands the environment over the same way.
    const onTty = await bob.exec('id -un; echo "$TERM|$GREETING"', { env: { GREETING: 'tty' }, pty: { term: 'vt100', cols: 80, rows: 24 } });
    assert.equal(onTty.stdout.replace(/\r/g, ''), `${ACCOUNT}\nvt100|tty\n`);
    // A session's exported LD_PRELOAD applies to the next command only, never to setpriv.
    const session = await bob.shell();
    await session.exec(`export LD_PRELOAD=${so}`);
    await session.exec('true');
    await session.close();
    const lines = existsSync(marker) ? readFileSync(marker, 'utf8').trim().split('\n') : [];
    assert.ok(!lines.includes('euid=0'), `the library ran as root: ${lines.join(',')}`);
    await bob.close();

    const alice = await as('alice');
    const fake = join(dir, 'bin');
    mkdirSync(fake, { recursive: true });
    writeFileSync(join(fake, 'ls'), '#!/bin/sh\necho FAKE\n', { mode: 0o755 });
    await assert.rejects(alice.exec('ls', { env: { PATH: fake } }), isCode(ErrorCode.DENIED, /PATH/));
    await assert.rejects(alice.exec('ls', { env: { LD_PRELOAD: so } }), isCode(ErrorCode.DENIED, /LD_PRELOAD/));
    await assert.rejects(alice.exec('ls', { env: { GIT_SSH_COMMAND: 'id' } }), isCode(ErrorCode.DENIED, /GIT_SSH_COMMAND/));
    started.length = 0;
    const r = await alice.exec('env', { env: { LANG: 'C.UTF-8' } });
    assert.match(r.stdout, /^LANG=C\.UTF-8$/m);
    assert.match(r.stdout, /^PATH=\/usr\/local\/sbin:/m, 'the daemon sets PATH');
    assert.deepEqual(started.at(-1)?.detail?.env, ['LANG'], 'the audit row records the environment the client applied');
    await alice.close();
  });

  it('item 10: naming a user means logging in as that user, never as the daemon via the local token', async () => {
    // SHELLWIRE_HOME/server/token is this daemon's token, so the client finds it as a "local token".
    const clientHome = tempDir();
    mkdirSync(join(clientHome, 'server'));
    writeFileSync(join(clientHome, 'server', 'token'), d.token);
    writeFileSync(join(clientHome, 'known_hosts'), `${d.address} ${d.fingerprint}\n`);
    const env = cleanEnv({ SHELLWIRE_HOME: clientHome, HOME: clientHome });
    await assert.rejects(connect(d.address, { user: 'nobody', fingerprint: d.fingerprint, env }), isCode(ErrorCode.NO_CREDENTIALS, /not used for user "nobody"/));
    const stranger = keyFile(dir, 'stranger');
    const cli = await runCli(['exec', '-i', stranger.privateFile, `alice@${d.address}`, '--', 'id', '-un'], { env });
    assert.equal(cli.code, 255, cli.stdout.toString());
    assert.match(cli.stderr, /not authorized for user "alice"/);
    const cli2 = await runCli(['exec', `nobody@${d.address}`, '--', 'id', '-un'], { env });
    assert.equal(cli2.code, 255, cli2.stdout.toString());
    // The daemon's token, offered for another user, says whose it is.
    await assert.rejects(connect(`alice@${d.address}`, { token: d.token, fingerprint: d.fingerprint, env }), isCode(ErrorCode.AUTH_FAILED, /daemon's token.*not "alice"/));
    // Without a user, the local token still works as before.
    const conn = await connect(d.address, { fingerprint: d.fingerprint, env });
    assert.equal(conn.server.user, 'root');
    await conn.close();
  });
});

describe('item 11: lock-out by address does not block strong credentials', () => {
  it('ten wrong tokens lock the address for passwords only; the daemon token and keys still work; SIGHUP clears it', async () => {
    const d = await startDaemon({ throttle: { baseDelayMs: 1, maxDelayMs: 1, lockoutAfter: 3 } });
    try {
      const dir = tempDir();
      const key = keyFile(dir, 'k');
      writeFileSync(join(d.server.stateDir, 'users.yaml'), `settings: { passwordLogin: true }\nusers:\n  carol:\n    allowRoot: true\n    keys: ["${key.publicLine}"]\n    password: "${await hashPassword('carol pw')}"\n`);
      assert.ok(d.server.reloadUsers().ok);
      for (let i = 0; i < 4; i++) await assert.rejects(connect(d.address, { token: `swt_wrong${i}`, fingerprint: d.fingerprint, env: cleanEnv() }), (e: ShellwireError) => e.code === ErrorCode.AUTH_FAILED || e.code === ErrorCode.LOCKED_OUT);
      const admin = await d.connect({ env: cleanEnv() });
      assert.equal((await admin.exec('echo in')).stdout, 'in\n');
      await admin.close();
      const carol = await connect(`carol@${d.address}`, { identity: key.privateFile, fingerprint: d.fingerprint, env: cleanEnv() });
      await carol.close();
      // A password from the locked address is still refused: weak credentials back off.
      await assert.rejects(connect(`carol@${d.address}`, { password: 'carol pw', fingerprint: d.fingerprint, env: cleanEnv({ HOME: '/nonexistent' }) }), isCode(ErrorCode.LOCKED_OUT));
      assert.deepEqual(d.server.locks().map((l) => l.key), ['127.0.0.1']);
      d.server.reloadUsers();
      assert.deepEqual(d.server.locks(), [], 'a reload (SIGHUP) lifts address locks');
      const ok = await connect(`carol@${d.address}`, { password: 'carol pw', fingerprint: d.fingerprint, env: cleanEnv({ HOME: '/nonexistent' }) });
      await ok.close();
    } finally {
      await d.stop();
    }
  });

  it('`shellwire locks` lists the running daemon\'s locks and `locks clear` lifts them', async () => {
    const home = tempDir();
    mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
    const serve = await startServeCli(home);
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home });
    try {
      // Ten bad HELLOs at once: each failure counts when refused, the delays run concurrently.
      const clients = await Promise.all(Array.from({ length: 10 }, () => RawClient.open(serve.port)));
      for (const c of clients) c.write(RawClient.helloFrame('swt_wrong'));
      await Promise.all(clients.map((c) => c.goodbye(15_000).catch(() => null)));
      for (const c of clients) c.destroy();
      // Another SHELLWIRE_HOME: the daemon is named by --state-dir, wherever it stands.
      const state = ['--state-dir', join(home, 'server')];
      const elsewhere = cleanEnv({ SHELLWIRE_HOME: tempDir(), HOME: home });
      const list = await runCli(['locks', '--json', ...state], { env: elsewhere });
      assert.equal(list.code, 0, list.stderr);
      const locks = list.stdout.toString().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.deepEqual(locks.map((l: { key: string }) => l.key), ['127.0.0.1']);
      for (const args of [['locks', 'clear', 'nobody-locked', ...state], ['locks', ...state, 'clear', 'nobody-locked']]) {
        const r = await runCli(args, { env: elsewhere });
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      }
      const clear = await runCli(['locks', 'clear', '127.0.0.1'], { env });
      assert.equal(clear.code, 0, clear.stderr);
      let after = '';
      for (let i = 0; i < 50; i++) {
        after = (await runCli(['locks', '--json'], { env })).stdout.toString().trim();
        if (after === '') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(after, '');
    } finally {
      serve.kill();
      await serve.exited;
    }
  });
});

describe('item 12: a stale daemon.pid never gets another process signalled', () => {
  it('user add with a pid file naming an unrelated process leaves that process alone', async () => {
    const home = tempDir();
    mkdirSync(join(home, 'server'), { recursive: true, mode: 0o700 });
    const victim = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(join(home, 'server', 'daemon.pid'), `${victim.pid}\n`);
      const r = await runCli(['user', 'add', 'zed', ...(isRoot ? ['--allow-root'] : [])], { env: cleanEnv({ SHELLWIRE_HOME: home, HOME: home }) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /no running daemon/);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(processAlive(victim.pid!), 'the unrelated process is still alive');
    } finally {
      victim.kill('SIGKILL');
    }
  });
});

describe('item 13: one malformed request fails its own channel only', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('the library refuses bad options before sending, and a running command is untouched', async () => {
    const conn = await d.connect({ env: cleanEnv() });
    const running = conn.exec('sleep 0.3; echo survived');
    assert.throws(() => conn.spawn('true', { timeout: 1.5 }), isCode(ErrorCode.BAD_REQUEST, /timeout/));
    await assert.rejects(conn.exec('true', { timeout: -1 }), isCode(ErrorCode.BAD_REQUEST, /timeout/));
    await assert.rejects(conn.exec([]), isCode(ErrorCode.BAD_REQUEST, /argv/));
    await assert.rejects(conn.exec('true', { env: { A: 1 as unknown as string } }), isCode(ErrorCode.BAD_REQUEST, /env/));
    await assert.rejects(conn.exec('true', { env: { 'A=B': 'x' } }), isCode(ErrorCode.BAD_REQUEST, /env/));
    await assert.rejects(conn.exec('true', { cwd: 7 as unknown as string }), isCode(ErrorCode.BAD_REQUEST, /cwd/));
    assert.equal((await conn.exec('echo zero', { timeout: 0 })).stdout, 'zero\n', 'timeout: 0 means none, as in execa');
    const proc = conn.spawn(['sleep', '5']);
    await proc.started;
    assert.throws(() => proc.kill('SIGBOGUS' as NodeJS.Signals), isCode(ErrorCode.BAD_REQUEST, /SIGBOGUS/));
    assert.throws(() => proc.resize(1.5, 20), isCode(ErrorCode.BAD_REQUEST, /cols/));
    proc.close();
    assert.equal((await running).stdout, 'survived\n');
    await conn.close();
  });

  it('the CLI sends whole milliseconds: --timeout 1.005 is 1005 ms, not 1004.9999999999999', async () => {
    const r = await runCli(['exec', '--timeout', '1.005', d.address, '--', 'echo', 'ok'], { env: d.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'ok\n');
  });

  it('the daemon answers a malformed OPEN with OPEN_FAIL; bad SIGNAL/RESIZE end that channel only', async () => {
    const c = await RawClient.open(d.port);
    await c.authenticate(d.token);
    const ok = await c.openExec(1, { command: 'sleep 0.5; echo survived' });
    assert.equal(ok.type, FrameType.OPEN_OK);
    for (const [channel, bad] of [
      [3, { command: 'true', timeoutMs: 1.5 }],
      [5, { argv: [] }],
      [7, { command: 'true', env: { A: 1 } }],
      [9, { command: 'true', pty: { term: 'x', cols: 'wide', rows: 1 } }],
      [11, { kind: 'file', op: 'bogus' }],
    ] as const) {
      const r = await c.openExec(channel, bad);
      assert.equal(r.type, FrameType.OPEN_FAIL, JSON.stringify(bad));
      assert.equal(r.body.code, ErrorCode.BAD_MESSAGE);
      assert.match(String(r.body.message), /OPEN/);
    }
    const victim = await c.openExec(13, { command: 'sleep 5' });
    assert.equal(victim.type, FrameType.OPEN_OK);
    c.sendJson(FrameType.SIGNAL, 13, { signal: 'SIGBOGUS' });
    const exit13 = await c.nextFrame((f) => f.channel === 13 && f.type === FrameType.EXIT);
    assert.equal(JSON.parse(exit13.payload.toString()).error.code, ErrorCode.BAD_MESSAGE);
    const victim2 = await c.openExec(15, { command: 'sleep 5' });
    assert.equal(victim2.type, FrameType.OPEN_OK);
    c.sendJson(FrameType.RESIZE, 15, { cols: 'x', rows: 2 });
    const exit15 = await c.nextFrame((f) => f.channel === 15 && f.type === FrameType.EXIT);
    assert.equal(JSON.parse(exit15.payload.toString()).error.code, ErrorCode.BAD_MESSAGE);
    const out = await c.nextFrame((f) => f.channel === 1 && f.type === FrameType.STDOUT);
    assert.equal(out.payload.toString(), 'survived\n');
    const exit1 = await c.nextFrame((f) => f.channel === 1 && f.type === FrameType.EXIT);
    assert.equal(JSON.parse(exit1.payload.toString()).exitCode, 0);
    assert.ok(!c.closed);
    c.destroy();
  });
});

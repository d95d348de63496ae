/**
 * The daemon's secrets stay the daemon's (issue 10 review): the file service never opens
 * the state dir (token, users.yaml, host key) for anyone but the daemon's own token, however
 * the path is spelled (a root containing it, `..`, a symlink, a bind mount, a root inside
 * it); refusals never say where a link led.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, tempDir, removeDir, startServeCli } from '../helpers/fixtures.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import { captureLogger } from '../helpers/raw-client.js';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Duplex } from 'node:stream';

const isRoot = process.getuid?.() === 0;

describe('the state dir is never served over file transfers', { skip: !isRoot && 'needs root (users run as the daemon account: allowRoot; bind mounts)' }, () => {
  let d: TestDaemon;
  let dir: string;
  let keyFile: string;
  let root: string;
  let stateDir: string;
  let bind: string | null = null;

  before(async () => {
    d = await startDaemon({ audit: false });
    stateDir = d.server.stateDir;
    root = join(stateDir, '..'); // holds the state dir, as a daemon account's home does
    dir = tempDir('shellwire-secrets-');
    const pair = generateKeyPair('secrets@test');
    keyFile = join(dir, 'id');
    writeFileSync(keyFile, pair.privateText, { mode: 0o600 });
    mkdirSync(join(dir, 'home-r'));
    writeFileSync(join(root, 'a.txt'), 'hello');
    symlinkSync(stateDir, join(root, 'link'));
    symlinkSync(join(stateDir, 'token'), join(dir, 'home-r', 'out'));
    mkdirSync(join(root, 'bind'));
    execFileSync('mount', ['--bind', stateDir, join(root, 'bind')]);
    bind = join(root, 'bind');
    const user = (name: string, lines: string[]) => [`  ${name}:`, '    allowRoot: true', ...lines.map((l) => `    ${l}`), `    keys: ["${pair.publicLine}"]`];
    writeFileSync(join(stateDir, 'users.yaml'), ['users:',
      ...user('uploader', [`home: ${root}`, 'channels: [file]', `fileRoots: [${root}]`]),
      ...user('free', [`home: ${root}`]),
      ...user('inner', [`home: ${stateDir}`, 'channels: [file]', `fileRoots: [${stateDir}]`]),
      ...user('restricted', [`home: ${dir}/home-r`, 'commands: { allow: ["echo ..."] }']),
    ].join('\n') + '\n');
    assert.ok(d.server.reloadUsers().ok);
  });
  after(async () => {
    if (bind) execFileSync('umount', [bind]);
    await d.stop();
    removeDir(dir);
  });

  const env = () => cleanEnv({ SHELLWIRE_HOME: d.home });
  const as = (user: string, verb: string, ...args: string[]) => runCli([verb, '-i', keyFile, ...args.map((a) => a.replace('@HOST:', `${user}@${d.address}:`))], { env: env() });
  const refused = (r: { code: number | null; stderr: string }, what: string) => {
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /the daemon's state dir is never served over file transfers/, what);
    assert.ok(!r.stderr.includes(d.token), `${what}: the token was shown`);
  };

  it('get, ls, put and `..` of a file-only user whose root holds the state dir are refused; the rest of the root is served', async () => {
    const local = join(dir, 'stolen');
    refused(await as('uploader', 'get', `@HOST:${stateDir}/token`, local), 'get by absolute path');
    refused(await as('uploader', 'get', '@HOST:server/users.yaml', local), 'get relative to home');
    refused(await as('uploader', 'get', '@HOST:bind/../server/host-key.pem', local), 'get through ..');
    assert.equal(existsSync(local), false);
    refused(await as('uploader', 'ls', `@HOST:${stateDir}`), 'ls of the state dir');
    refused(await as('uploader', 'put', join(dir, 'id'), `@HOST:${stateDir}/planted`), 'put into it');
    refused(await as('uploader', 'put', join(dir, 'id'), `@HOST:${stateDir}/`), 'put into it by directory');
    assert.equal(existsSync(join(stateDir, 'planted')), false);
    assert.equal(existsSync(join(stateDir, 'id')), false);
    const ok = await as('uploader', 'get', '@HOST:a.txt', join(dir, 'a.txt'));
    assert.equal(ok.code, 0, ok.stderr);
    const ls = await as('uploader', 'ls', '@HOST:');
    assert.equal(ls.code, 0, ls.stderr);
  });

  it('a symlink or a bind mount to the state dir, and a root inside it, are refused the same way', async () => {
    const local = join(dir, 'stolen2');
    refused(await as('uploader', 'get', '@HOST:link/token', local), 'get through a symlink');
    refused(await as('uploader', 'get', '@HOST:bind/token', local), 'get through a bind mount');
    refused(await as('uploader', 'ls', '@HOST:bind'), 'ls of a bind mount');
    refused(await as('inner', 'get', '@HOST:token', local), 'a root inside the state dir');
    refused(await as('free', 'get', `@HOST:${stateDir}/token`, local), 'an unrestricted user');
    assert.equal(existsSync(local), false);
  });

  it("the daemon's own token still reaches the state dir", async () => {
    const local = join(dir, 'own-token');
    const r = await runCli(['get', `${d.address}:${stateDir}/token`, local], { env: cleanEnv({ SHELLWIRE_HOME: d.home, SHELLWIRE_TOKEN: d.token }) });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(local));
  });

  it('a restricted user whose link points outside the roots is told so without where it points', async () => {
    const r = await as('restricted', 'get', '@HOST:out', join(dir, 'x'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /outside the allowed file root .*a symbolic link on the way leads outside them/);
    assert.ok(!r.stderr.includes(stateDir), `the link's target was named: ${r.stderr}`);
  });
});

describe('a restricted user running as the daemon account is warned about', { skip: !isRoot && 'needs root (useradd, runAs)' }, () => {
  const ACCOUNT = 'swsecrets1';
  let home: string;
  before(() => {
    home = tempDir('shellwire-secrets-warn-');
    mkdirSync(join(home, 'server'), { mode: 0o700 });
    try {
      execFileSync('getent', ['passwd', ACCOUNT], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['-M', '-s', '/bin/sh', ACCOUNT]);
    }
  });
  after(() => {
    try {
      execFileSync('userdel', [ACCOUNT], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    removeDir(home);
  });

  const add = (...args: string[]) => runCli(['user', 'add', ...args], { env: cleanEnv({ SHELLWIRE_HOME: home }) });

  it('user add --allow/--deny/--channels without --run-as warns, naming the risk and --run-as; others do not', async () => {
    for (const args of [['carol', '--allow-root', '--allow', 'cat ...'], ['dan', '--allow-root', '--deny', 'rm ...'], ['erin', '--allow-root', '--channels', 'exec,file']]) {
      const r = await add(...args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`warning: user "${args[0]}" is restricted .* can read the daemon's state dir ${join(home, 'server')}: .*token.*--run-as ACCOUNT`), args.join(' '));
    }
    for (const args of [['free', '--allow-root'], ['uploader', '--allow-root', '--channels', 'file'], ['own', '--run-as', ACCOUNT, '--allow', 'cat ...']]) {
      const r = await add(...args);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /warning/, args.join(' '));
    }
  });

  it('the daemon logs the same warning when it loads such a user', async () => {
    const serve = await startServeCli(home, ['--no-audit']);
    try {
      await serve.waitForStderr(/user \\"carol\\" is restricted .*--run-as ACCOUNT/);
      assert.doesNotMatch(serve.stderr(), /user \\"own\\" is restricted/);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
  });
});

describe('daemon.pid holds the pid alone', () => {
  it('kill -HUP $(cat daemon.pid) reloads the daemon; the start time lives in daemon.lock, which still detects a stale lock', { timeout: 40_000 }, async () => {
    const home = tempDir('shellwire-secrets-pid-');
    try {
      const serve = await startServeCli(home, ['--no-audit']);
      const pidFile = join(home, 'server', 'daemon.pid');
      const lockFile = join(home, 'server', 'daemon.lock');
      try {
        assert.equal(readFileSync(pidFile, 'utf8'), `${serve.child.pid}\n`, 'daemon.pid holds more than the pid');
        assert.match(readFileSync(lockFile, 'utf8'), new RegExp(`^${serve.child.pid} \\d+\\n$`));
        // As users.yaml's header says; `kill` would fail (and signal the second number) with more than a pid.
        const kill = spawnSync('sh', ['-c', `kill -HUP $(cat '${pidFile}')`], { encoding: 'utf8' });
        assert.equal(kill.status, 0, kill.stderr);
        await serve.waitForStderr(/users config reloaded/);
        const add = await runCli(['user', 'add', 'zed', ...(isRoot ? ['--allow-root'] : [])], { env: cleanEnv({ SHELLWIRE_HOME: home }) });
        assert.equal(add.code, 0, add.stderr);
        assert.match(add.stderr, /the running daemon reloaded its users/);
      } finally {
        serve.child.kill('SIGTERM');
        await serve.exited;
      }
      assert.equal(existsSync(pidFile), false, 'daemon.pid left behind');
      assert.equal(existsSync(lockFile), false, 'daemon.lock left behind');
      // A crashed daemon's lock (a live pid with another start time) does not block a restart.
      writeFileSync(lockFile, `${process.pid} 1\n`);
      writeFileSync(pidFile, `${process.pid}\n`);
      const next = await startServeCli(home, ['--no-audit']);
      try {
        assert.equal(readFileSync(pidFile, 'utf8'), `${next.child.pid}\n`);
      } finally {
        next.child.kill('SIGTERM');
        await next.exited;
      }
    } finally {
      removeDir(home);
    }
  });
});

describe('a private key on the command line is refused, never echoed', () => {
  it('key add, user add --key, exec, put and an unknown command: exit 2, "give the public half", no key text on stderr or stdout', async () => {
    const dir = tempDir('shellwire-secrets-argv-');
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'argv@test', '-f', join(dir, 'id')]);
      const key = readFileSync(join(dir, 'id'), 'utf8');
      const body = key.split('\n')[1]!;
      const env = cleanEnv({ SHELLWIRE_HOME: dir });
      for (const args of [
        ['key', 'add', 'alice', key],
        ['user', 'add', 'bob', '--key', key],
        ['user', 'add', 'bob', `--key=${key}`],
        ['exec', '127.0.0.1:1', '--', 'echo', key],
        ['put', key, '127.0.0.1:1:/tmp/'],
        ['nosuchcommand', key],
        [key],
      ]) {
        const r = await runCli(args, { env });
        const what = args.slice(0, 3).join(' ').slice(0, 30);
        assert.equal(r.code, 2, `${what}: ${r.stderr}`);
        assert.match(r.stderr, /looks like a private key; give the public half \(the \.pub file/, what);
        const output = r.stderr + r.stdout.toString();
        assert.ok(!output.includes(body) && !output.includes('BEGIN OPENSSH'), `${what}: the key was echoed: ${output}`);
      }
      // Searching for keys is not carrying one: the armour line alone passes (and fails to connect).
      const search = await runCli(['exec', '--connect-timeout', '2', '127.0.0.1:1', '--', 'grep', '-rl', '--', '-----BEGIN OPENSSH PRIVATE KEY-----', '/home'], { env });
      assert.equal(search.code, 255, search.stderr);
      assert.doesNotMatch(search.stderr, /looks like a private key/);
    } finally {
      removeDir(dir);
    }
  });
});

describe('connections that fail before HELLO are logged with their address and audited', () => {
  it('garbage and a reset right after ClientHello: the log names 127.0.0.1:PORT, a failed connect row per source a minute, the rest counted', { timeout: 30_000 }, async () => {
    const { logger, lines } = captureLogger();
    const d = await startDaemon({ logger });
    try {
      const ports: number[] = [];
      const garbage = () => new Promise<void>((resolve) => {
        const socket = netConnect({ host: '127.0.0.1', port: d.port }, () => {
          ports.push(socket.localPort!);
          socket.end('GET / HTTP/1.0\r\n\r\n');
        });
        socket.on('error', () => {});
        socket.on('close', () => resolve());
      });
      // A real ClientHello (taken from a TLS client writing into a stream), sent on a raw
      // socket that is then reset (RST) while the daemon waits for the client's Finished.
      const hello = await new Promise<Buffer>((resolve) => {
        const fake = new Duplex({ read() {}, write(chunk: Buffer, _encoding, callback) {
          resolve(chunk);
          callback();
        } });
        const client = tlsConnect({ socket: fake, rejectUnauthorized: false });
        client.on('error', () => {});
        setTimeout(() => client.destroy(), 100);
      });
      const resetAfterHello = () => new Promise<void>((resolve) => {
        const raw = netConnect({ host: '127.0.0.1', port: d.port }, () => {
          ports.push(raw.localPort!);
          raw.write(hello, () => setTimeout(() => raw.resetAndDestroy(), 100));
        });
        raw.on('error', () => {});
        raw.on('close', () => resolve());
      });
      await garbage();
      await resetAfterHello();
      for (let i = 0; i < 5; i++) await garbage();
      assert.ok(await waitFor(() => lines.filter((l) => l.msg === 'TLS handshake failed').length >= 7), JSON.stringify(lines));
      const failed = lines.filter((l) => l.msg === 'TLS handshake failed');
      for (const line of failed) assert.match(String(line.client), /^127\.0\.0\.1:\d+$/, JSON.stringify(line));
      assert.ok(failed.some((l) => l.client === `127.0.0.1:${ports[1]}`), 'the reset connection is logged with its port');
      const rows = async () => {
        const r = await runCli(['audit', '--state-dir', d.server.stateDir, '--kind', 'connect', '--failed', '--json']);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout.toString().trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { address: string; detail: Record<string, unknown> });
      };
      assert.ok(await waitFor(async () => (await rows()).length === 1, 5_000));
      const [first] = await rows();
      assert.equal(first!.address, `127.0.0.1:${ports[0]}`);
      assert.equal(first!.detail.ok, false);
      assert.equal(first!.detail.stage, 'tls');
      // The other six of this minute are counted: their row comes when the minute ends (here: at shutdown).
      await d.server.close(500);
      const after = await rows();
      assert.equal(after.length, 2, JSON.stringify(after));
      assert.equal(after.find((r) => r.detail.repeated !== undefined)?.detail.repeated, 6);
    } finally {
      await d.stop();
    }
  });
});

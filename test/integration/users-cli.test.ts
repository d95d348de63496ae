/**
 * `shellwire user|key|token|locks|audit` as an operator types them: names checked before
 * anything is written, one error naming the flag, a missing state dir refused by name, and
 * `user add` flags for every users.yaml key that matters — checked against a real daemon and
 * a real OS account.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, tempDir, removeDir } from '../helpers/fixtures.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';

const isRoot = process.getuid?.() === 0;
const ACCOUNT = 'swusers10';

describe('user add: checked before writing, errors name flags', () => {
  let stateDir: string;
  const env = () => cleanEnv({ SHELLWIRE_HOME: stateDir });
  const cli = (...args: string[]) => runCli([...args, '--state-dir', stateDir], { env: env() });
  before(() => {
    stateDir = tempDir('shellwire-users-cli-');
  });
  after(() => removeDir(stateDir));

  it("user add 'bad name' is refused by name (exit 2), not by a line of an unwritten file", async () => {
    for (const name of ['bad name', '.x', '9lives', 'a'.repeat(33), 'tab\there']) {
      const r = await cli('user', 'add', name, '--allow-root');
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /is not a valid user name \(NAME in shellwire user add NAME\)/, name);
      assert.doesNotMatch(r.stderr, /users\.yaml:\d+/, name);
      assert.equal(existsSync(join(stateDir, 'users.yaml')), false, name);
    }
  });

  it('user add carol --run-as nosuchaccount: one error, about the account, naming --run-as', async () => {
    const r = await cli('user', 'add', 'carol', '--run-as', 'nosuchaccount');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /users\.carol\.runAs \(--run-as\): no OS account "nosuchaccount" on this host/);
    assert.doesNotMatch(r.stderr, /would run as root/);
    assert.doesNotMatch(r.stderr, /users\.yaml:\d+/);
    assert.equal(existsSync(join(stateDir, 'users.yaml')), false);
  });

  it('a bad --channels value names the flag; nothing is written', async () => {
    const r = await cli('user', 'add', 'carol', '--allow-root', '--channels', 'exec,shell');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /users\.carol\.channels\[1\] \(--channels\): unknown channel kind "shell"/);
    const shell = await cli('user', 'add', 'carol', '--allow-root', '--channels', 'exec,session', '--allow', 'ls ...');
    assert.equal(shell.code, 1);
    assert.match(shell.stderr, /\(--channels\): "session" runs a shell/);
    const rule = await cli('user', 'add', 'carol', '--allow-root', '--allow', 'ls; rm');
    assert.equal(rule.code, 1);
    assert.match(rule.stderr, /users\.carol\.commands\.allow\[0\] \(--allow\/--deny\)/);
    assert.equal(existsSync(join(stateDir, 'users.yaml')), false);
  });

  it('user add flags map to users.yaml keys: home, channels, commands, fileRoots', async () => {
    const r = await cli('user', 'add', 'erin', '--allow-root', '--home', '/srv/erin', '--channels', 'exec,file',
      '--allow', 'git status', '--allow', 'ls ...', '--deny', 'ls /etc', '--file-root', '/srv/erin', '--file-root', '/srv/share');
    assert.equal(r.code, 0, r.stderr);
    const text = readFileSync(join(stateDir, 'users.yaml'), 'utf8');
    assert.match(text, /home: \/srv\/erin/);
    assert.match(text, /channels:\n\s+- exec\n\s+- file/);
    assert.match(text, /allow:\n\s+- git status\n\s+- ls \.\.\./);
    assert.match(text, /deny:\n\s+- ls \/etc/);
    assert.match(text, /fileRoots:\n\s+- \/srv\/erin\n\s+- \/srv\/share/);
    const list = await cli('user', 'list', '--json');
    const row = JSON.parse(list.stdout.toString().trim()) as { home: string; channels: string[]; commandRules: boolean };
    assert.deepEqual([row.home, row.channels, row.commandRules], ['/srv/erin', ['exec', 'file'], true]);
  });
});

describe('a missing state dir is an error naming it, for every state-dir command', () => {
  it('user, key, token, locks and audit subcommands', async () => {
    const dir = tempDir('shellwire-users-missing-');
    const missing = join(dir, 'no-such-state');
    writeFileSync(join(dir, 'key.pub'), generateKeyPair('x@y').publicLine + '\n');
    const commands: string[][] = [
      ['user', 'list'],
      ['user', 'list', '--json'],
      ['user', 'add', 'frank', '--allow-root'],
      ['user', 'remove', 'frank'],
      ['user', 'passwd', 'frank'],
      ['key', 'add', 'frank', join(dir, 'key.pub')],
      ['token', 'create', '--user', 'frank'],
      ['token', 'revoke', '--user', 'frank', 'ci'],
      ['locks'],
      ['locks', 'clear'],
      ['audit'],
      ['audit', 'verify'],
    ];
    try {
      for (const args of commands) {
        const r = await runCli([...args, '--state-dir', missing], { env: cleanEnv({ SHELLWIRE_HOME: dir }), input: 'a password\n' });
        assert.notEqual(r.code, 0, `${args.join(' ')} exits non-zero: ${r.stderr}`);
        assert.ok(r.stderr.includes(missing), `${args.join(' ')} names ${missing}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /No users yet|no locks|No user "frank"/, args.join(' '));
        assert.equal(existsSync(missing), false, `${args.join(' ')} created nothing`);
      }
    } finally {
      removeDir(dir);
    }
  });
});

describe('user add against a real daemon and a real account', { skip: !isRoot && 'needs root (useradd, run-as)' }, () => {
  let d: TestDaemon;
  let dir: string;
  let key: { privateFile: string; publicFile: string };

  before(async () => {
    try {
      execFileSync('getent', ['passwd', ACCOUNT], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['-m', '-s', '/bin/sh', ACCOUNT]);
    }
    d = await startDaemon({ audit: false });
    dir = tempDir('shellwire-users-real-');
    const pair = generateKeyPair('real@test');
    key = { privateFile: join(dir, 'id'), publicFile: join(dir, 'id.pub') };
    writeFileSync(key.privateFile, pair.privateText, { mode: 0o600 });
    writeFileSync(key.publicFile, pair.publicLine + '\n');
    mkdirSync(join(dir, 'home'));
  });
  after(async () => {
    await d.stop();
    removeDir(dir);
    execFileSync('userdel', ['-r', ACCOUNT], { stdio: 'ignore' });
  });

  const add = (...args: string[]) => runCli(['user', 'add', ...args, '--key', key.publicFile, '--state-dir', d.server.stateDir], { env: cleanEnv({ SHELLWIRE_HOME: d.home }) });
  const exec = (user: string, ...command: string[]) => runCli(['exec', '-i', key.privateFile, `${user}@${d.address}`, '--', ...command], { env: cleanEnv({ SHELLWIRE_HOME: d.home }) });

  it('--run-as a real account: accepted, commands run as it', async () => {
    const r = await add('dave', '--run-as', ACCOUNT);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(d.server.reloadUsers().ok);
    const id = await exec('dave', 'id', '-un');
    assert.equal(id.code, 0, id.stderr);
    assert.equal(id.stdout.toString(), `${ACCOUNT}\n`);
  });

  it('--allow makes a restricted user the daemon holds to; --home is where it starts', async () => {
    const r = await add('grace', '--run-as', ACCOUNT, '--home', '/tmp', '--allow', 'echo ...', '--allow', 'pwd');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(d.server.reloadUsers().ok);
    const ok = await exec('grace', 'echo', 'allowed');
    assert.equal(ok.stdout.toString(), 'allowed\n', ok.stderr);
    const pwd = await exec('grace', 'pwd');
    assert.equal(pwd.stdout.toString(), '/tmp\n', pwd.stderr);
    const denied = await exec('grace', 'id');
    assert.equal(denied.code, 255);
    assert.match(denied.stderr, /matches no rule in users\.grace\.commands\.allow/);
  });
});

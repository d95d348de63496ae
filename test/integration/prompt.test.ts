/**
 * Passwords and answers read by the real CLI: piped (`echo pw | shellwire …`, CRLF, the
 * rest of stdin kept for the command) and typed on a real terminal (tmux: backspace over
 * multibyte characters, Ctrl-D, Ctrl-U).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, waitFor, CLI, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, tempDir, removeDir } from '../helpers/fixtures.js';
import { TmuxPane, hasTmux } from '../helpers/tmux.js';
import { hashPassword } from '../../src/auth/password.js';

describe('passwords from a pipe and a terminal', () => {
  let d: TestDaemon;
  const env = () => cleanEnv({ SHELLWIRE_HOME: d.home });
  const passwd = (name: string, input: string | Buffer) => runCli(['user', 'passwd', name, '--state-dir', d.server.stateDir], { env: env(), input });
  const login = (name: string, input: string | Buffer, command = ['echo', 'logged-in']) =>
    runCli(['exec', '--password', `${name}@${d.address}`, '--', ...command], { env: env(), input });
  const reload = () => assert.ok(d.server.reloadUsers().ok);
  const authFailures = async () => {
    const r = await runCli(['audit', '--state-dir', d.server.stateDir, '--kind', 'auth-fail', '--json', '--all'], { env: env() });
    return r.stdout.toString().split('\n').filter((l) => l !== '').length;
  };

  before(async () => {
    d = await startDaemon({ throttle: { baseDelayMs: 1, maxDelayMs: 1 } });
    writeFileSync(
      join(d.server.stateDir, 'users.yaml'),
      `settings: { passwordLogin: true }\nusers:\n  bob:\n    allowRoot: true\n    password: "${await hashPassword('first password')}"\n  carol:\n    allowRoot: true\n`,
    );
    reload();
  });
  after(async () => {
    await d.stop();
  });

  it('echo pw | exec --password logs in (the line, not an empty string); CRLF too', async () => {
    const r = await login('bob', 'first password\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'logged-in\n');
    const crlf = await login('bob', 'first password\r\n');
    assert.equal(crlf.code, 0, crlf.stderr);
    const noNewline = await login('bob', 'first password');
    assert.equal(noNewline.code, 0, noNewline.stderr);
  });

  it('what follows the password line on stdin reaches the command', async () => {
    const r = await login('bob', 'first password\nline two\nline three\n', ['cat']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'line two\nline three\n');
  });

  it('an empty password, or none, is refused before anything is sent (no failed login counted)', async () => {
    const before = await authFailures();
    const empty = await login('bob', '\n');
    assert.equal(empty.code, 255);
    assert.match(empty.stderr, /password is empty; nothing was sent/);
    const none = await login('bob', '');
    assert.equal(none.code, 255);
    assert.match(none.stderr, /No password on standard input/);
    assert.equal(await authFailures(), before, 'the daemon saw no login attempt');
    const wrong = await login('bob', 'wrong password\n');
    assert.equal(wrong.code, 255);
    assert.equal(await authFailures(), before + 1, 'a wrong password is counted (the count above could have moved)');
  });

  it('echo pw | user passwd sets that password (and CRLF is not part of it)', async () => {
    const r = await passwd('carol', 'carol password\r\n');
    assert.equal(r.code, 0, r.stderr);
    reload();
    const ok = await login('carol', 'carol password\n');
    assert.equal(ok.code, 0, ok.stderr);
    const none = await passwd('carol', '');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /No password on standard input/);
    const empty = await passwd('carol', '\n');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /password is empty/);
  });

  const skip = !hasTmux && 'tmux not installed';

  it('SHELLWIRE_PASSWORD set but empty is refused before connecting (no failed login counted)', async () => {
    const failures = await authFailures();
    const r = await runCli(['exec', '--password', `bob@${d.address}`, '--', 'true'], { env: { ...env(), SHELLWIRE_PASSWORD: '' } });
    assert.equal(r.code, 2, r.stderr.toString());
    assert.match(r.stderr.toString(), /SHELLWIRE_PASSWORD is set but empty/);
    assert.equal(await authFailures(), failures);
  });

  it('on a terminal: backspace removes whole characters (é, emoji), Ctrl-U clears, nothing is echoed', { skip }, async () => {
    const dir = tempDir();
    const pane = new TmuxPane(`env SHELLWIRE_HOME=${d.home} ${process.execPath} ${CLI} user passwd carol --state-dir ${d.server.stateDir}; echo "EXIT=$?"; sleep 30`);
    try {
      assert.ok(await pane.shows(/New password for carol:/), pane.screen());
      pane.keys('-l', 'garbage');
      pane.keys('C-u');
      pane.keys('-l', 'pässwörd🙂X');
      pane.keys('BSpace');
      pane.keys('-l', '🙂é');
      pane.keys('BSpace', 'BSpace');
      pane.keys('Enter');
      assert.ok(await pane.shows(/EXIT=0/), pane.screen());
      assert.doesNotMatch(pane.screen(), /pässw|garbage/, 'nothing typed is echoed');
      reload();
      const r = await login('carol', 'pässwörd🙂\n');
      assert.equal(r.code, 0, `the typed password is pässwörd🙂: ${r.stderr}`);
    } finally {
      pane.close();
      removeDir(dir);
    }
  });

  it('on a terminal: Ctrl-D at an empty prompt ends it with a message, not a hang', { skip }, async () => {
    const before = readFileSync(join(d.server.stateDir, 'users.yaml'), 'utf8');
    const pane = new TmuxPane(`env SHELLWIRE_HOME=${d.home} ${process.execPath} ${CLI} user passwd carol --state-dir ${d.server.stateDir}; echo "EXIT=$?"; sleep 30`);
    try {
      assert.ok(await pane.shows(/New password for carol:/), pane.screen());
      pane.keys('C-d');
      assert.ok(await pane.shows(/EXIT=1/), pane.screen());
      assert.match(pane.screen(), /No password given/);
      assert.equal(readFileSync(join(d.server.stateDir, 'users.yaml'), 'utf8'), before);
    } finally {
      pane.close();
    }
  });

  it('on a terminal: Ctrl-D at run\'s "more than 50 hosts" question answers no; nothing runs', { skip }, async () => {
    const dir = tempDir();
    const inventory = join(dir, 'inventory.yaml');
    const marker = join(dir, 'ran');
    const lines = ['hosts:'];
    for (let i = 0; i < 51; i += 1) lines.push(`  h${i}: { address: 127.0.0.1, port: 1, labels: { role: many } }`);
    writeFileSync(inventory, `${lines.join('\n')}\n`);
    const pane = new TmuxPane(`env SHELLWIRE_HOME=${d.home} ${process.execPath} ${CLI} run --inventory ${inventory} role=many -- touch ${marker}; echo "EXIT=$?"; sleep 30`);
    try {
      assert.ok(await pane.shows(/on 51 hosts .*\[y\/N\]/s), pane.screen());
      pane.keys('C-d');
      assert.ok(await waitFor(() => /EXIT=1/.test(pane.screen()), 5_000), pane.screen());
      assert.match(pane.screen(), /not confirmed; nothing was run/);
    } finally {
      pane.close();
      removeDir(dir);
    }
  });

  it('on a terminal: Ctrl-D at the unknown-host question answers no at once', { skip }, async () => {
    const home = tempDir();
    const pane = new TmuxPane(`env SHELLWIRE_HOME=${home} SHELLWIRE_TOKEN=${d.token} ${process.execPath} ${CLI} exec ${d.address} -- true; echo "EXIT=$?"; sleep 30`);
    try {
      assert.ok(await pane.shows(/continue connecting \(yes\/no\/\[fingerprint\]\)\?/), pane.screen());
      pane.keys('C-d');
      assert.ok(await waitFor(() => /EXIT=255/.test(pane.screen()), 5_000), pane.screen());
      assert.match(pane.screen(), /Host key verification failed\./);
    } finally {
      pane.close();
      removeDir(home);
    }
  });
});

/**
 * The first-contact question as ssh asks it (yes, no, or the fingerprint; anything else asks
 * again; no is "Host key verification failed."), and CLI errors that say what happened once,
 * with the CLI's advice only: no library option names, no advice given twice.
 * Real daemons, the real CLI, tmux where a terminal matters.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, CLI, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv } from '../helpers/fixtures.js';
import { hasTmux, TmuxPane } from '../helpers/tmux.js';
import { connect } from '../../src/client/connect.js';
import { AuthenticationError } from '../../src/errors.js';

const FAKE = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
let d: TestDaemon;
const dirs: string[] = [];
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
  dirs.forEach(removeDir);
});

function freshHome(): string {
  const home = tempDir('shellwire-prompt-');
  dirs.push(home);
  return home;
}

test('first contact: "y" asks again, the pasted fingerprint trusts and pins the host', { skip: !hasTmux }, async () => {
  const home = freshHome();
  const pane = new TmuxPane(`env SHELLWIRE_HOME=${home} SHELLWIRE_TOKEN=${d.token} ${process.execPath} ${CLI} exec ${d.address} -- echo reached-it; sleep 30`);
  try {
    assert.ok(await pane.shows(/continue connecting \(yes\/no\/\[fingerprint\]\)\?/), pane.screen());
    pane.line('y');
    assert.ok(await pane.shows(/Please type 'yes', 'no' or the fingerprint:/), pane.screen());
    pane.line(FAKE);
    assert.ok(await pane.shows(/Please type 'yes', 'no' or the fingerprint: \S+\nPlease type/), `a different fingerprint is not the one: ${pane.screen()}`);
    pane.line(d.fingerprint);
    assert.ok(await pane.shows(/reached-it/), pane.screen());
    assert.doesNotMatch(pane.screen(), /accept-new|hostKeyPolicy/);
    assert.match(readFileSync(join(home, 'known_hosts'), 'utf8'), new RegExp(`${d.address} ${d.fingerprint.replace(/[+/]/g, '\\$&')}`));
  } finally {
    pane.close();
  }
});

test('first contact answered "no": "Host key verification failed." and nothing else; nothing pinned', { skip: !hasTmux }, async () => {
  const home = freshHome();
  const pane = new TmuxPane(`env SHELLWIRE_HOME=${home} SHELLWIRE_TOKEN=${d.token} ${process.execPath} ${CLI} exec ${d.address} -- echo reached-it; echo "exit=$?"; sleep 30`);
  try {
    assert.ok(await pane.shows(/continue connecting/), pane.screen());
    pane.line('no');
    assert.ok(await pane.shows(/exit=255/), pane.screen());
    assert.match(pane.screen(), /^shellwire: Host key verification failed\.\nexit=255/m);
    assert.doesNotMatch(pane.screen(), /accept-new|hostKeyPolicy|reached-it/);
    assert.equal(existsSync(join(home, 'known_hosts')), false);
  } finally {
    pane.close();
  }
});

test('CLI errors: the library\'s advice is replaced by the CLI\'s, never both', async () => {
  const home = freshHome();
  // Unknown host without a terminal: the CLI's flag and command, not hostKeyPolicy.
  const unknown = await runCli(['exec', d.address, 'true'], { env: cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: d.token }) });
  assert.equal(unknown.code, 255);
  assert.match(unknown.stderr, /--accept-new-host/);
  assert.doesNotMatch(unknown.stderr, /hostKeyPolicy/);

  // A wrong token: one piece of advice, in flags.
  const bad = await runCli(['exec', d.address, 'true'], { env: cleanEnv({ SHELLWIRE_HOME: d.home, SHELLWIRE_TOKEN: 'wrong' }) });
  assert.equal(bad.code, 255);
  assert.equal(bad.stderr.match(/Check the user/g)?.length, 1, bad.stderr);
  assert.doesNotMatch(bad.stderr, /identity option|tokenFile/);

  // A changed key: the banner, then the command; not also "remove line N".
  writeFileSync(join(home, 'known_hosts'), `${d.address} ${FAKE}\n`);
  const changed = await runCli(['exec', d.address, 'true'], { env: cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: d.token }) });
  assert.equal(changed.code, 255);
  assert.match(changed.stderr, /Offending key in .*known_hosts:1/);
  assert.match(changed.stderr, /shellwire known-hosts remove/);
  assert.doesNotMatch(changed.stderr, /remove line/);
});

test('library: reason and hint apart; with {home} the no-credentials message names that home, not $SHELLWIRE_HOME', async () => {
  const home = freshHome();
  writeFileSync(join(home, 'known_hosts'), `${d.address} ${d.fingerprint}\n`);
  const env = { PATH: process.env.PATH, HOME: home, USER: 'nobody-here', SHELLWIRE_HOME: '/nonexistent-shellwire-home' };
  await assert.rejects(connect(`10.255.255.1:${d.port}`, { home, env, connectTimeoutMs: 500 }), (err: AuthenticationError) => {
    assert.ok(err instanceof AuthenticationError, String(err));
    assert.match(err.reason, new RegExp(`in ${home.replace(/[/.]/g, '\\$&')} or`));
    assert.doesNotMatch(err.message, /nonexistent-shellwire-home|\/root\/\.shellwire/);
    assert.ok(err.hint && err.message.endsWith(err.hint), err.message);
    assert.doesNotMatch(err.reason, /identity option/);
    return true;
  });
});

/**
 * The terminal as a person uses it: the real CLI inside tmux, keys sent with send-keys,
 * the screen read with capture-pane.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startDaemon, waitFor, CLI, type TestDaemon } from '../helpers/daemon.js';

const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V']);
    return true;
  } catch {
    return false;
  }
})();

let daemon: TestDaemon;
const session = `swtest${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { encoding: 'utf8' });
}
const screen = () => tmux('capture-pane', '-p', '-t', session);
const keys = (...k: string[]) => tmux('send-keys', '-t', session, ...k);
const screenShows = (pattern: RegExp, timeoutMs = 5_000) => waitFor(() => pattern.test(screen()), timeoutMs);

before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  try {
    tmux('kill-session', '-t', session);
  } catch {
    // already gone
  }
  await daemon.stop();
});

test('tty: a real terminal with resize, Ctrl-C, full-screen programs and the exit code', { skip: !hasTmux && 'tmux not installed' }, async () => {
  const env = `SHELLWIRE_HOME=${daemon.home} SHELLWIRE_TOKEN=${daemon.token} TERM=xterm-256color`;
  tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30',
    `env ${env} ${process.execPath} ${CLI} tty ${daemon.address} -- /bin/sh; echo "CLIENT-EXIT=$?"; stty -a | grep -o -- '-icanon' || echo COOKED; sleep 60`);
  await screenShows(/[#$] ?$/m);
  keys('PS1="sw> "; tput cols; tput lines; echo $TERM; tty', 'Enter');
  assert.ok(await screenShows(/^100\n30\nxterm-256color\n\/dev\/pts\/\d+$/m), `terminal size, TERM and tty:\n${screen()}`);

  tmux('resize-window', '-t', session, '-x', '120', '-y', '40');
  await new Promise((r) => setTimeout(r, 300));
  keys('clear; echo size=$(tput cols)x$(tput lines)', 'Enter');
  assert.ok(await screenShows(/size=120x40/), `resize reaches the remote terminal:\n${screen()}`);

  keys('sleep 300; echo not-interrupted', 'Enter');
  await new Promise((r) => setTimeout(r, 400));
  keys('C-c');
  keys('clear; echo interrupted-ok', 'Enter');
  assert.ok(await screenShows(/^interrupted-ok$/m), `Ctrl-C interrupts the remote command:\n${screen()}`);
  assert.doesNotMatch(screen(), /not-interrupted/);

  // A full-screen program: less draws its screen and quits on q.
  keys('clear; seq 1 500 | less', 'Enter');
  assert.ok(await screenShows(/^1\n2\n3\n/m), `less shows the top of its input:\n${screen()}`);
  keys('G');
  assert.ok(await screenShows(/^500$/m), `less jumps to the end on G:\n${screen()}`);
  keys('q');
  keys('clear; echo back-from-less', 'Enter');
  assert.ok(await screenShows(/^back-from-less$/m), screen());

  keys('exit 7', 'Enter');
  assert.ok(await screenShows(/CLIENT-EXIT=7/), `exit code comes back:\n${screen()}`);
  assert.match(screen(), /COOKED/, 'the local terminal left raw mode');
});

test('tty: arrow keys, Ctrl-Z and Ctrl-D reach the remote terminal', { skip: !hasTmux && 'tmux not installed' }, async () => {
  const name = `${session}b`;
  const env = `SHELLWIRE_HOME=${daemon.home} SHELLWIRE_TOKEN=${daemon.token} TERM=xterm-256color`;
  tmux('new-session', '-d', '-s', name, '-x', '100', '-y', '30',
    `env ${env} ${process.execPath} ${CLI} tty ${daemon.address} -- bash --norc --noprofile; echo "CLIENT-EXIT=$?"; sleep 60`);
  const show = () => tmux('capture-pane', '-p', '-t', name);
  const press = (...k: string[]) => tmux('send-keys', '-t', name, ...k);
  try {
    assert.ok(await waitFor(() => /[#$] ?$/m.test(show()), 5_000), show());
    press('PS1="bash> "', 'Enter');
    press('echo arrow-$((6*7))', 'Enter');
    assert.ok(await waitFor(() => /^arrow-42$/m.test(show())), show());
    // Up recalls the last line; Left Left BSpace 9 turns 6*7 into 6*9: the remote line editor got the escape sequences.
    press('Up', 'Left', 'Left', 'BSpace', '9', 'Enter');
    assert.ok(await waitFor(() => /^arrow-54$/m.test(show())), `arrow keys edit the recalled line:\n${show()}`);
    press('sleep 300', 'Enter');
    await new Promise((r) => setTimeout(r, 300));
    press('C-z');
    assert.ok(await waitFor(() => /Stopped\s+sleep 300/.test(show())), `Ctrl-Z stops the job:\n${show()}`);
    press('kill -9 %1; jobs; echo jobs-done', 'Enter');
    assert.ok(await waitFor(() => /^jobs-done$/m.test(show())), show());
    press('C-d');
    assert.ok(await waitFor(() => /CLIENT-EXIT=0/.test(show())), `Ctrl-D ends the shell:\n${show()}`);
  } finally {
    try {
      tmux('kill-session', '-t', name);
    } catch {
      // gone
    }
  }
});

test('first contact on a terminal asks about the fingerprint; "yes" pins it, "no" refuses', { skip: !hasTmux && 'tmux not installed' }, async () => {
  const { mkdtempSync, readFileSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const home = mkdtempSync(join(tmpdir(), 'sw-ask-'));
  const name = `${session}c`;
  const show = () => tmux('capture-pane', '-p', '-t', name);
  const run = (marker: string) =>
    tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '30',
      `env SHELLWIRE_HOME=${home} SHELLWIRE_TOKEN=${daemon.token} ${process.execPath} ${CLI} exec -n ${daemon.address} -- echo ${marker}; echo "EXIT=$?"; sleep 60`);
  try {
    run('refused-run');
    assert.ok(await waitFor(() => /Are you sure you want to continue connecting \(yes\/no\/\[fingerprint\]\)\?/.test(show())), show());
    assert.match(show(), new RegExp(daemon.fingerprint.replace(/[+/]/g, (c) => `\\${c}`)));
    tmux('send-keys', '-t', name, 'no', 'Enter');
    assert.ok(await waitFor(() => /EXIT=255/.test(show())), show());
    assert.doesNotMatch(show(), /^refused-run$/m);
    assert.equal(existsSync(join(home, 'known_hosts')), false, 'nothing pinned after "no"');
    tmux('kill-session', '-t', name);

    run('accepted-run');
    assert.ok(await waitFor(() => /\(yes\/no\/\[fingerprint\]\)\?/.test(show())), show());
    tmux('send-keys', '-t', name, 'yes', 'Enter');
    assert.ok(await waitFor(() => /^accepted-run$/m.test(show()) && /EXIT=0/.test(show())), show());
    assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), `${daemon.address} ${daemon.fingerprint}\n`);
  } finally {
    try {
      tmux('kill-session', '-t', name);
    } catch {
      // gone
    }
  }
});

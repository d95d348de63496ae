/**
 * `shellwire shell` on a real terminal: the real CLI inside tmux against a real daemon,
 * keys sent as a person types them, the screen read back. What a pipe cannot show:
 * output without a final newline, Ctrl-C and Ctrl-D, the prompt, history, full-screen programs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, waitFor, CLI, type TestDaemon } from '../helpers/daemon.js';
import { hasTmux, TmuxPane } from '../helpers/tmux.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let daemon: TestDaemon;
const skip = !hasTmux && 'tmux not installed';

before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon?.stop();
});

/** A pane running `shellwire shell` in /tmp; after it ends, the pane shows CLIENT-EXIT=N. */
async function openShell(): Promise<TmuxPane> {
  const env = `SHELLWIRE_HOME=${daemon.home} SHELLWIRE_TOKEN=${daemon.token} TERM=xterm-256color`;
  const pane = new TmuxPane(`env ${env} ${process.execPath} ${CLI} shell ${daemon.address}; echo "CLIENT-EXIT=$?"; sleep 60`);
  assert.ok(await pane.shows(/\$ ?$/m), `the first prompt:\n${pane.screen()}`);
  pane.line('cd /tmp');
  assert.ok(await pane.shows(/:\/tmp\$ ?$/m), `cd /tmp:\n${pane.screen()}`);
  return pane;
}

const PROMPT = String.raw`[^\n]*:/tmp\$ ?`;
const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

test('shell on a terminal: output without a final newline stays on screen, the prompt starts on the next line', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.line('printf abc');
    assert.ok(await pane.shows(new RegExp(`^abc%\\s*\\n${PROMPT}$`, 'm')), `abc, the % marker, then the prompt:\n${pane.screen()}`);
    // The marker is reverse video, as zsh's, so it cannot be mistaken for output.
    assert.ok(pane.screenWithAttributes().includes("abc\x1b[7m%"), pane.screenWithAttributes());
    // The same on stderr, and after output that ends with a carriage return.
    pane.line('printf err >&2');
    assert.ok(await pane.shows(new RegExp(`^err%\\s*\\n${PROMPT}$`, 'm')), `stderr without newline:\n${pane.screen()}`);
    pane.line(String.raw`printf 'xyz\r'`);
    assert.ok(await pane.shows(new RegExp(`^xyz\\s*\\n${PROMPT}$`, 'm')), `output ending in CR stays:\n${pane.screen()}`);
    // Output with its newline gets no marker and no blank line.
    pane.line('echo whole');
    assert.ok(await pane.shows(new RegExp(`^whole\\n${PROMPT}$`, 'm')), pane.screen());
  } finally {
    pane.close();
  }
});

test('shell on a terminal: a second Ctrl-C ends a command that ignores SIGINT; the session goes on and $? is 130', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.line('trap "" INT; sleep 1017; echo not-ended');
    await settle();
    pane.keys('C-c');
    await settle();
    assert.doesNotMatch(pane.screen(), new RegExp(`${PROMPT}$`, 'm'), `still running after the first Ctrl-C:\n${pane.screen()}`);
    pane.keys('C-c');
    assert.ok(await pane.shows(new RegExp(`\\^C\\n${PROMPT}$`, 'm')), `the prompt is back after the second Ctrl-C:\n${pane.screen()}`);
    pane.line('echo status=$?');
    assert.ok(await pane.shows(/^status=130$/m), `$? after the interrupt:\n${pane.screen()}`);
    assert.doesNotMatch(pane.screen(), /^not-ended/m);
    // The remote command is gone, not just abandoned.
    pane.line('for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -f "^sleep 1017" >/dev/null || break; sleep 0.5; done; pgrep -f "^sleep 1017" >/dev/null && echo sleep-alive || echo sleep-gone');
    assert.ok(await pane.shows(/^sleep-gone$/m, 10_000), pane.screen());
    // One Ctrl-C is enough for a command that does not ignore it.
    pane.line('sleep 1018; echo not-interrupted');
    await settle();
    pane.keys('C-c');
    assert.ok(await pane.shows(new RegExp(`\\^C\\n${PROMPT}$`, 'm')), pane.screen());
    pane.line('echo again=$?');
    assert.ok(await pane.shows(/^again=130$/m), pane.screen());
    assert.doesNotMatch(pane.screen(), /^not-interrupted/m);
  } finally {
    pane.close();
  }
});

test('shell on a terminal: Ctrl-D while a command runs is ignored; at an empty prompt it ends the session', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.line('sleep 1; echo slept');
    await settle(200);
    pane.keys('C-d');
    assert.ok(await pane.shows(/^slept$/m), pane.screen());
    await settle();
    pane.line('echo still-here');
    assert.ok(await pane.shows(/^still-here$/m), `the session survived the Ctrl-D:\n${pane.screen()}`);
    assert.doesNotMatch(pane.screen(), /CLIENT-EXIT/);
    pane.line('sh -c "exit 5"');
    await settle();
    pane.keys('C-d');
    assert.ok(await pane.shows(/CLIENT-EXIT=5/), `Ctrl-D at the prompt ends with the last status:\n${pane.screen()}`);
  } finally {
    pane.close();
  }
});

test('shell on a terminal: Ctrl-C at the prompt drops the whole line, wherever the cursor is', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.keys('-l', 'echo leftover');
    pane.keys('Left', 'Left', 'Left');
    await settle(100);
    pane.keys('C-c');
    assert.ok(await pane.shows(new RegExp(`echo leftover\\^C\\n${PROMPT}$`, 'm')), `^C and a fresh prompt:\n${pane.screen()}`);
    pane.line('echo fresh');
    assert.ok(await pane.shows(/^fresh$/m), `nothing of the old line is left:\n${pane.screen()}`);
  } finally {
    pane.close();
  }
});

test('shell on a terminal: $? carries over between lines; "exit" and "exit $?" end with it', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.line('false');
    pane.line('echo rc=$?');
    assert.ok(await pane.shows(/^rc=1$/m), `$? after false:\n${pane.screen()}`);
    pane.line('sh -c "exit 6"');
    pane.line('exit $?');
    assert.ok(await pane.shows(/CLIENT-EXIT=6/), `exit $? ends the session with 6:\n${pane.screen()}`);
  } finally {
    pane.close();
  }
  const second = await openShell();
  try {
    second.line('sh -c "exit 4"');
    second.line('exit');
    assert.ok(await second.shows(/CLIENT-EXIT=4/), second.screen());
  } finally {
    second.close();
  }
});

test('shell on a terminal: full-screen programs are not run; the message says to use tty', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.line('vi notes.txt');
    assert.ok(await pane.shows(/shellwire: vi needs a terminal; use `shellwire tty [^`]+ -- vi notes\.txt`/), pane.screen());
    assert.ok(await pane.shows(new RegExp(`${PROMPT}$`, 'm')), pane.screen());
    assert.doesNotMatch(pane.screen(), /not a terminal|Vim: Warning/);
    pane.line('echo rc=$?');
    assert.ok(await pane.shows(/^rc=0$/m), `a refused command does not change $?:\n${pane.screen()}`);
    pane.line('clear; top');
    assert.ok(await pane.shows(/shellwire: top needs a terminal/), pane.screen());
    // Batch mode needs no terminal, so it runs.
    pane.line('clear; top -b -n 1 | head -1');
    assert.ok(await pane.shows(/^top - /m), pane.screen());
    // A backslash runs it anyway: less without a terminal prints its input.
    pane.line(String.raw`clear; printf 'page-text\n' | \less`);
    assert.ok(await pane.shows(/^page-text$/m), pane.screen());
    assert.doesNotMatch(pane.screen(), /needs a terminal/);
    // A command not on the list that finds no terminal: the hint comes after it ran.
    pane.line('clear; stty size');
    assert.ok(await pane.shows(/Inappropriate ioctl for device[\s\S]*shellwire: stty needs a terminal; use `shellwire tty [^`]+ -- 'clear; stty size'`/), pane.screen());
  } finally {
    pane.close();
  }
});

test('shell on a terminal: a directory name with an escape sequence never reaches the terminal through the prompt', { skip }, async () => {
  const dir = join(tmpdir(), `sw-title-${process.pid}-\x1b]2;PWNED-TITLE\x07-x`);
  mkdirSync(dir);
  const pane = await openShell();
  try {
    pane.line(`cd /tmp/sw-title-${process.pid}-*`);
    assert.ok(await pane.shows(/sw-title-\d+-\?\]2;PWNED-TITLE\?-x\$ ?$/m), `control characters shown as ?:\n${pane.screen()}`);
    const title = execFileSync('tmux', ['display', '-p', '-t', pane.name, '#{pane_title}'], { encoding: 'utf8' });
    assert.doesNotMatch(title, /PWNED/, 'the window title was not set');
  } finally {
    pane.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shell on a terminal: a command over several lines runs once complete, and is one history entry', { skip }, async () => {
  const pane = await openShell();
  try {
    pane.line("echo 'a");
    assert.ok(await pane.shows(/^> ?$/m), `a continuation prompt:\n${pane.screen()}`);
    pane.line("b'");
    assert.ok(await pane.shows(/^a\nb$/m), pane.screen());
    pane.line('for i in 1 2; do');
    pane.line('echo n$i');
    pane.line('done');
    assert.ok(await pane.shows(/^n1\nn2$/m), pane.screen());
    pane.keys('Up', 'Enter');
    assert.ok(await waitFor(() => (pane.screen().match(/^n1\nn2$/gm) ?? []).length === 2), `Up recalls the whole loop:\n${pane.screen()}`);
    // Ctrl-C in a continuation drops the whole unfinished command.
    pane.line('echo "unfinished');
    await settle(100);
    pane.keys('C-c');
    pane.line('echo after=ok');
    assert.ok(await pane.shows(/^after=ok$/m), pane.screen());
    assert.doesNotMatch(pane.screen(), /^unfinished/m);
  } finally {
    pane.close();
  }
});

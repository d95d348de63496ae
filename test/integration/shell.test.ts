/**
 * Shell sessions: `cd` and `export` persist from one command to the next, through the
 * library's conn.shell() and through `shellwire shell` driven by a pipe.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync, mkdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { startDaemon, runCli, waitFor, CLI, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, seqText } from '../helpers/fixtures.js';
import type { Connection } from '../../src/client/connection.js';
import { CommandError, ErrorCode } from '../../src/errors.js';

let daemon: TestDaemon;
let conn: Connection;
let dir: string;

before(async () => {
  daemon = await startDaemon();
  conn = await daemon.connect();
  dir = realpathSync(tempDir());
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  if (dir) removeDir(dir);
});

const shell = (input: string) => runCli(['shell', daemon.address], { env: daemon.env, input });

test('shellwire shell via a pipe: cd and export persist between lines', async () => {
  const result = await shell('cd /tmp\nexport X=1\npwd\necho $X\n');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), '/tmp\n1\n');
  assert.equal(result.stderr, '');
});

test('shellwire shell: "exit 3" ends the session with status 3; later lines do not run', async () => {
  const result = await shell('echo before\nexit 3\necho after\n');
  assert.equal(result.code, 3, result.stderr);
  assert.equal(result.stdout.toString('utf8'), 'before\n');
});

test('shellwire shell: at EOF the status is the last command\'s', async () => {
  const result = await shell('true\nsh -c "exit 5"\n');
  assert.equal(result.code, 5, result.stderr);
});

test('shellwire shell: stderr stays on stderr, output order kept across lines', async () => {
  const result = await shell('echo one\necho two >&2\nseq 1 30000; echo MARKER\necho three\n');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), 'one\n' + seqText(30000, 'MARKER') + 'three\n');
  assert.equal(result.stderr, 'two\n');
});

test('shellwire shell: a command reading stdin gets EOF and does not swallow the next lines', async () => {
  const result = await shell('cat\nwc -c\necho next\n');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), '0\nnext\n');
});

test('conn.shell(): cd and export persist, cwd is tracked', async () => {
  const session = await conn.shell();
  try {
    const target = join(dir, 'session dir');
    mkdirSync(target);
    const cd = await session.exec(`cd '${target}'`);
    assert.equal(cd.cwd, target);
    assert.equal(session.cwd, target);
    await session.exec('export X=1 GREETING="hello world"');
    const result = await session.exec('pwd; echo "$X $GREETING"');
    assert.equal(result.stdout, `${target}\n1 hello world\n`);
    // Values with newlines and "=" survive the round trip through the session state.
    await session.exec("export MULTI='line1\nline2=x'");
    assert.equal((await session.exec('printf "%s|" "$MULTI"')).stdout, 'line1\nline2=x|');
    // A plain exec on the same connection is not in the session.
    const outside = await conn.exec('echo "[$X]"');
    assert.equal(outside.stdout, '[]\n');
  } finally {
    session.close();
  }
});

test('conn.shell(): unset removes a variable, and sessions do not share state', async () => {
  const a = await conn.shell();
  const b = await conn.shell();
  try {
    await a.exec('export ONLY_A=yes; cd /tmp');
    assert.equal((await b.exec('echo "[$ONLY_A]"; pwd')).stdout, `[]\n${realpathSync(homedir())}\n`);
    await a.exec('unset ONLY_A');
    assert.equal((await a.exec('echo "[$ONLY_A]"; pwd')).stdout, '[]\n/tmp\n');
  } finally {
    a.close();
    b.close();
  }
});

test('conn.shell(): "exit 3" in a session command ends that command with status 3', async () => {
  const session = await conn.shell({ cwd: dir });
  try {
    await session.exec('export KEEP=kept');
    await assert.rejects(session.exec('echo last words; exit 3'), (err: unknown) => {
      assert.ok(err instanceof CommandError);
      assert.equal(err.code, ErrorCode.COMMAND_FAILED);
      assert.equal(err.exitCode, 3);
      assert.equal(err.stdout, 'last words\n');
      return true;
    });
    // The session itself survives, with the state from before.
    const after = await session.exec('pwd; echo $KEEP');
    assert.equal(after.stdout, `${dir}\nkept\n`);
  } finally {
    session.close();
  }
});

test('shellwire shell via a pipe: $? carries over between lines', async () => {
  const result = await shell('false\necho "rc=$?"\nsh -c "exit 7"\necho "rc=$?"\necho "rc=$?"\n');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), 'rc=1\nrc=7\nrc=0\n');
});

test('shellwire shell via a pipe: "exit" uses $?; "exit $?" ends the session with what the remote shell computed', async () => {
  const plain = await shell('sh -c "exit 4"\nexit\necho after\n');
  assert.equal(plain.code, 4, plain.stderr);
  assert.equal(plain.stdout.toString('utf8'), '');
  const computed = await shell('sh -c "exit 6"\nexit $?\necho after\n');
  assert.equal(computed.code, 6, computed.stderr);
  assert.equal(computed.stdout.toString('utf8'), '', 'nothing runs after exit $?');
});

test('shellwire shell via a pipe: a command over several lines runs as one', async () => {
  const result = await shell("for i in 1 2; do\necho n$i\ndone\necho 'a\nb'\ncat <<EOF\nhere $HOME\nEOF\necho one \\\ntwo\n");
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), `n1\nn2\na\nb\nhere ${homedir()}\none two\n`);
  // Unfinished at EOF: it still goes, and the remote shell says what is wrong.
  const unfinished = await shell("echo 'never closed\n");
  assert.equal(unfinished.code, 2);
  assert.match(unfinished.stderr, /Unterminated quoted string/);
});

test('shellwire shell via a pipe: bytes are passed as they are; no terminal checks (a script asked for them)', async () => {
  const result = await shell('printf abc\nless /etc/hostname\n');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), `abc${readFileSync('/etc/hostname', 'utf8')}`);
  assert.equal(result.stderr, '');
});

test('shellwire shell via a pipe: SIGINT interrupts the command, a second one ends it; $? is 130 and the script goes on', async () => {
  const child = spawn(process.execPath, [CLI, 'shell', daemon.address], { env: daemon.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stdin.end('echo started; trap "" INT; sleep 1019; echo not-ended\necho "after=$?"\n');
  try {
    assert.ok(await waitFor(() => out.includes('started')), out);
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(out, 'started\n', 'the first SIGINT is ignored by the trap');
    child.kill('SIGINT');
    assert.ok(await waitFor(() => child.exitCode !== null, 10_000), `the second SIGINT ends the command: ${out}`);
    assert.equal(child.exitCode, 0);
    assert.equal(out, 'started\nafter=130\n');
  } finally {
    child.kill('SIGKILL');
  }
});

test('conn.shell(): $? carries over; a command killed by a signal or closed by the client leaves 128+N or 130', async () => {
  const session = await conn.shell({ cwd: dir });
  try {
    await assert.rejects(session.exec('false'));
    assert.equal((await session.exec('echo $?')).stdout, '1\n');
    assert.equal((await session.exec('echo $?')).stdout, '0\n');
    // The wrapper shell itself killed: the status is 128+9.
    await assert.rejects(session.exec('kill -KILL $$'));
    assert.equal((await session.exec('echo $?')).stdout, '137\n');
    // Closed by the client while it ran (a second Ctrl-C): 130, as for an interrupt.
    const proc = session.spawn('sleep 1020');
    await proc.started;
    proc.close();
    assert.equal((await proc.exited).canceled, true);
    assert.equal((await session.exec('echo $?')).stdout, '130\n');
    // The status is the session's: a plain exec and another session do not see it.
    await assert.rejects(session.exec('exit 3'));
    assert.equal((await conn.exec('echo $?')).stdout, '0\n');
    const other = await conn.shell();
    assert.equal((await other.exec('echo $?')).stdout, '0\n');
    other.close();
    assert.equal((await session.exec('echo $?')).stdout, '3\n');
  } finally {
    session.close();
  }
});

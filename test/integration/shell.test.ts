/**
 * Shell sessions: `cd` and `export` persist from one command to the next, through the
 * library's conn.shell() and through `shellwire shell` driven by a pipe.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
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

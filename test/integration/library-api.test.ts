/**
 * The library as a TypeScript caller meets it: `session.exec(argv)` quoted safely for the
 * session's shell, `await using` on connections, sessions and processes, errors that name
 * options rather than CLI flags, and `hostKeyPolicy: 'ask'` refused without `confirmHost`.
 * A real daemon on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type ConnectOptions } from '../../src/client/connect.js';
import type { Connection } from '../../src/client/connection.js';
import { ErrorCode, type ShellwireError } from '../../src/errors.js';
import { runOn, type RunOnOptions } from '../../src/fleet/run-on.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv, freePort } from '../helpers/fixtures.js';

const CLI_FLAG = /(^|\s|\()--?[a-z]|-i\b/;
let d: TestDaemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
});

test('session.exec takes argv: every word arrives as one argument, whatever shell syntax it holds', async () => {
  const conn = await d.connect();
  try {
    const session = await conn.shell();
    const words = ['a b', "it's", '$HOME', '`id`', ';', '|', '"x"', '*', '', '\\n', '-e', 'tab\there'];
    const result = await session.exec(['printf', '[%s]\\n', ...words]);
    assert.equal(result.stdout, words.map((w) => `[${w}]\n`).join(''));
    // Bytes that are not UTF-8 and a cd that persists: still a session.
    const latin1 = Buffer.from('caf\xe9', 'latin1');
    await session.exec(['cd', '/tmp']);
    const bytes = await session.exec([Buffer.from('printf'), Buffer.from('%s'), latin1]);
    assert.deepEqual(bytes.stdoutBytes, latin1);
    assert.equal((await session.exec(['pwd'])).stdout, '/tmp\n');
    // A string is still shell text.
    assert.equal((await session.exec('echo $((1+2))')).stdout, '3\n');
    await assert.rejects(session.exec([]), { code: ErrorCode.BAD_REQUEST });
  } finally {
    await conn.close();
  }
});

test('await using closes connections, sessions and running processes when the block ends', async () => {
  let outer: Connection | null = null;
  let procEnded = false;
  {
    await using conn = await d.connect();
    outer = conn;
    {
      await using session = await conn.shell();
      assert.equal((await session.exec(['echo', 'in session'])).stdout, 'in session\n');
      await using proc = conn.spawn('sleep 30');
      await proc.started;
      proc.exited.then(() => (procEnded = true), () => (procEnded = true));
    }
    assert.ok(procEnded, 'the running command was ended before the block was left');
    assert.equal(conn.channelCount, 0, 'session and process channels are released');
    assert.equal(conn.closed, false);
  }
  assert.equal(outer.closed, true);
});

test('library errors name options, not CLI flags', async () => {
  const home = tempDir('shellwire-lib-');
  try {
    // Unknown host, strict.
    await assert.rejects(connect(d.address, { token: d.token, home }), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.HOST_KEY_UNKNOWN);
      assert.doesNotMatch(err.message, CLI_FLAG);
      assert.match(err.message, /hostKeyPolicy: 'accept-new'/);
      return true;
    });
    // Wrong token.
    await assert.rejects(d.connect({ token: 'wrong' }), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.AUTH_FAILED);
      assert.doesNotMatch(err.message, CLI_FLAG);
      assert.match(err.message, /identity option|tokenFile/);
      return true;
    });
    // No credentials at all (a remote name: the local daemon's token is not looked for).
    await assert.rejects(connect('192.0.2.1:1', { home, env: cleanEnv({ SHELLWIRE_HOME: home, HOME: home }) }), (err: ShellwireError) => {
      assert.equal(err.code, ErrorCode.NO_CREDENTIALS);
      assert.doesNotMatch(err.message, CLI_FLAG);
      assert.match(err.message, /identity option/);
      return true;
    });
  } finally {
    removeDir(home);
  }
});

test("hostKeyPolicy 'ask' without confirmHost (a JavaScript caller) is refused before connecting", async () => {
  const port = await freePort(); // nothing listens: a connection attempt would say CONNECT_FAILED
  const options = { token: 'x', hostKeyPolicy: 'ask' } as unknown as ConnectOptions;
  await assert.rejects(connect(`127.0.0.1:${port}`, options), (err: ShellwireError) => {
    assert.equal(err.code, ErrorCode.BAD_REQUEST);
    assert.match(err.message, /hostKeyPolicy 'ask' needs a confirmHost/);
    return true;
  });
  const typo = { token: 'x', hostKeyPolicy: 'accept_new' } as unknown as ConnectOptions;
  await assert.rejects(connect(`127.0.0.1:${port}`, typo), { code: ErrorCode.BAD_REQUEST, message: /must be 'strict', 'accept-new' or 'ask', got "accept_new"/ });
  // With the callback it asks, and a "yes" pins the host.
  const home = tempDir('shellwire-ask-');
  try {
    const conn = await connect(d.address, { token: d.token, home, hostKeyPolicy: 'ask', confirmHost: async () => true });
    await conn.close();
  } finally {
    removeDir(home);
  }
});

test('one vocabulary: timeoutMs for exec, spawn, close and runOn, maxBuffer for exec and runOn; the deprecated timeout and maxOutput still work', async () => {
  const conn = await d.connect();
  try {
    await assert.rejects(conn.exec('sleep 5', { timeoutMs: 200 }), (err: ShellwireError & { timedOut?: boolean }) => {
      assert.equal(err.code, ErrorCode.COMMAND_TIMED_OUT);
      assert.equal(err.timedOut, true);
      assert.match(err.message, /timed out after 200 milliseconds/);
      return true;
    });
    const session = await conn.shell();
    await assert.rejects(session.exec('sleep 5', { timeoutMs: 200 }), { code: ErrorCode.COMMAND_TIMED_OUT, timedOut: true });
    await session.close();
    // The deprecated name: the same milliseconds; each named in its own error.
    await assert.rejects(conn.exec('sleep 5', { timeout: 200 }), { code: ErrorCode.COMMAND_TIMED_OUT, timedOut: true, message: /after 200 milliseconds/ });
    assert.throws(() => conn.spawn('true', { timeoutMs: 1.5 }), { code: ErrorCode.BAD_REQUEST, message: /^The timeoutMs option must be a non-negative integer of milliseconds/ });
    assert.throws(() => conn.spawn('true', { timeout: 1.5 }), { code: ErrorCode.BAD_REQUEST, message: /^The timeout option must be/ });
    await assert.rejects(conn.exec('head -c 100 /dev/zero', { maxBuffer: 10 }), { code: ErrorCode.MAX_BUFFER });
  } finally {
    await conn.close({ timeoutMs: 1_000 });
  }
  assert.equal(conn.closed, true);

  const host = { name: 'one', address: '127.0.0.1', port: d.port, labels: {}, groups: [] };
  const kept = async (options: RunOnOptions): Promise<string> => {
    const summary = await runOn([host], 'printf 0123456789', { connect: { token: d.token, fingerprint: d.fingerprint }, outputEvents: false, ...options }).result();
    return summary.results[0]!.stdout;
  };
  assert.equal(await kept({}), '0123456789');
  assert.equal(await kept({ maxBuffer: 4 }), '0123');
  assert.equal(await kept({ maxOutput: 3 }), '012', 'the deprecated name still works');
  assert.equal(await kept({ maxBuffer: 4, maxOutput: 3 }), '0123', 'maxBuffer wins');
  const timedOut = await runOn([host], 'sleep 5', { connect: { token: d.token, fingerprint: d.fingerprint }, timeoutMs: 200 }).result();
  assert.equal(timedOut.results[0]!.status, 'timed-out');
});

test("spawn(): a program that cannot be started is told from one that exited 127 itself (exited.error)", async () => {
  const conn = await d.connect();
  try {
    const missing = conn.spawn(['/nonexistent/program-xyz']);
    let stderr = '';
    missing.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    missing.stdout.resume();
    const info = await missing.exited;
    assert.equal(info.exitCode, 127);
    assert.equal(info.error?.code, ErrorCode.SPAWN_FAILED);
    assert.match(info.error?.message ?? '', /\/nonexistent\/program-xyz/);
    assert.match(stderr, /^shellwire: .*\/nonexistent\/program-xyz/);
    // A program that exits 127 on its own has no error.
    const own = conn.spawn(['sh', '-c', 'exit 127']);
    own.stdout.resume();
    own.stderr.resume();
    const ownInfo = await own.exited;
    assert.equal(ownInfo.exitCode, 127);
    assert.equal(ownInfo.error, undefined);
  } finally {
    await conn.close({ timeoutMs: 1_000 });
  }
});

/**
 * The library's exec() against a real daemon: byte-exact output of any size, stdout and
 * stderr apart, exit codes and signals, argv without a shell, env/cwd, limits.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, realpathSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, sha256, allByteValues, seqText } from '../helpers/fixtures.js';
import type { Connection } from '../../src/client/connection.js';
import { CommandError, RequestError, ErrorCode } from '../../src/errors.js';

let daemon: TestDaemon;
let conn: Connection;
let dir: string;

before(async () => {
  daemon = await startDaemon();
  conn = await daemon.connect();
  dir = tempDir();
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  if (dir) removeDir(dir);
});

test('10 MiB of random output arrives byte-exact', async () => {
  const file = join(dir, 'random.bin');
  const size = 10 * 1024 * 1024;
  const result = await conn.exec(`head -c ${size} /dev/urandom | tee ${file}`);
  const written = readFileSync(file);
  assert.equal(written.length, size);
  assert.equal(result.stdoutBytes.length, size);
  assert.equal(sha256(result.stdoutBytes), sha256(written));
  assert.equal(result.exitCode, 0);
});

test('all 256 byte values round-trip on stdout, stderr and through stdin', async () => {
  const bytes = allByteValues();
  const file = join(dir, 'bytes.bin');
  writeFileSync(file, bytes);

  const out = await conn.exec(`cat ${file}; cat ${file} >&2`);
  assert.deepEqual(out.stdoutBytes, bytes);
  assert.deepEqual(out.stderrBytes, bytes);

  const echoed = await conn.exec('cat', { stdin: bytes });
  assert.deepEqual(echoed.stdoutBytes, bytes);

  // ...and the remote side saw exactly those bytes, not a re-encoding of them.
  const copy = join(dir, 'bytes-copy.bin');
  await conn.exec(`cat > ${copy}`, { stdin: bytes });
  assert.deepEqual(readFileSync(copy), bytes);
});

test('10 MiB of stdin reach the command byte-exact', async () => {
  const data = randomBytes(10 * 1024 * 1024);
  const result = await conn.exec('sha256sum', { stdin: data });
  assert.equal(result.stdout, `${sha256(data)}  -\n`);
});

test('10 MiB through `cat`: stdin and stdout flow at the same time without deadlock', { timeout: 20_000 }, async () => {
  const data = randomBytes(10 * 1024 * 1024);
  const result = await conn.exec('cat', { stdin: data });
  assert.equal(result.stdoutBytes.length, data.length);
  assert.equal(sha256(result.stdoutBytes), sha256(data));
});

test('stdout and stderr stay separate, each in order', async () => {
  const result = await conn.exec('for i in $(seq 1 500); do echo out$i; echo err$i >&2; done');
  const lines = (prefix: string) => Array.from({ length: 500 }, (_, i) => `${prefix}${i + 1}\n`).join('');
  assert.equal(result.stdout, lines('out'));
  assert.equal(result.stderr, lines('err'));
});

test('exit codes 0, 1, 7 and 255 come back', async () => {
  for (const code of [0, 1, 7, 255]) {
    const result = await conn.exec(`echo before-${code}; exit ${code}`, { reject: false });
    assert.equal(result.exitCode, code);
    assert.equal(result.signal, null);
    assert.equal(result.stdout, `before-${code}\n`);
  }
});

test('a non-zero exit rejects with a CommandError shaped like the result', async () => {
  await assert.rejects(conn.exec('echo partial; echo oops >&2; exit 7'), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, ErrorCode.COMMAND_FAILED);
    assert.equal(err.exitCode, 7);
    assert.equal(err.signal, null);
    assert.equal(err.stdout, 'partial\n');
    assert.equal(err.stderr, 'oops\n');
    assert.match(err.message, /exit code 7/);
    assert.match(err.message, /oops/);
    return true;
  });
});

test('a command killed by a signal reports the signal', async () => {
  await assert.rejects(conn.exec('echo $$; kill -TERM $$'), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, ErrorCode.COMMAND_FAILED);
    assert.equal(err.signal, 'SIGTERM');
    assert.equal(err.exitCode, null);
    assert.match(err.stdout, /^\d+\n$/);
    assert.match(err.message, /SIGTERM/);
    return true;
  });
});

test('30,000 lines then a marker arrive complete and in order', async () => {
  const result = await conn.exec('seq 1 30000; echo MARKER');
  assert.equal(result.stdout, seqText(30000, 'MARKER'));
});

test('argv form runs without a shell', async () => {
  const result = await conn.exec(['printf', '%s', 'a b; $x']);
  assert.equal(result.stdout, 'a b; $x');
  assert.equal(result.exitCode, 0);
});

test('argv naming a missing program exits 127 with a message', async () => {
  const result = await conn.exec(['shellwire-no-such-program'], { reject: false });
  assert.equal(result.exitCode, 127);
  assert.match(result.stderr, /shellwire-no-such-program/);
});

test('an empty command succeeds with no output', async () => {
  const result = await conn.exec('');
  assert.equal(result.exitCode, 0);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr, '');
});

test('a 100 KB command line runs', async () => {
  const word = 'x'.repeat(100 * 1024);
  const result = await conn.exec(`echo ${word}`);
  assert.equal(result.stdout.length, word.length + 1);
  assert.equal(result.stdout, `${word}\n`);
});

test('env and cwd options reach the command', async () => {
  const work = join(dir, 'work dir');
  mkdirSync(work);
  const result = await conn.exec('printf "%s\\n" "$GREETING" "$OTHER"; pwd', {
    env: { GREETING: 'hello world', OTHER: 'a=b;c' },
    cwd: work,
  });
  assert.equal(result.stdout, `hello world\na=b;c\n${realpathSync(work)}\n`);
});

test('the daemon does not leak its own SHELLWIRE_ variables to commands', async () => {
  process.env.SHELLWIRE_LEAK_CHECK = 'secret';
  try {
    // baseEnv is computed when the server starts, so use a fresh daemon for this.
    const other = await startDaemon();
    try {
      const c = await other.connect();
      const result = await c.exec('env');
      await c.close();
      assert.doesNotMatch(result.stdout, /SHELLWIRE_/);
      assert.match(result.stdout, /^PATH=/m);
    } finally {
      await other.stop();
    }
  } finally {
    delete process.env.SHELLWIRE_LEAK_CHECK;
  }
});

test('a missing cwd is a RequestError and the connection keeps working', async () => {
  const missing = join(dir, 'does-not-exist');
  await assert.rejects(conn.exec('pwd', { cwd: missing }), (err: unknown) => {
    assert.ok(err instanceof RequestError);
    assert.equal(err.code, ErrorCode.BAD_REQUEST);
    assert.match(err.message, /does-not-exist/);
    return true;
  });
  const result = await conn.exec('echo still here');
  assert.equal(result.stdout, 'still here\n');
  assert.equal(conn.closed, false);
});

test('output beyond maxBuffer rejects with SW_ERR_MAX_BUFFER, keeping the first maxBuffer bytes', async () => {
  await assert.rejects(conn.exec('yes abcdefgh | head -c 5000000', { maxBuffer: 1000 }), (err: unknown) => {
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, ErrorCode.MAX_BUFFER);
    assert.equal(err.stdoutBytes.length, 1000);
    assert.equal(err.stdout, 'abcdefgh\n'.repeat(112).slice(0, 1000));
    assert.match(err.message, /maxBuffer/);
    return true;
  });
  const result = await conn.exec('echo after overflow');
  assert.equal(result.stdout, 'after overflow\n');
});

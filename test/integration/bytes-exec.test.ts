/**
 * Command text, argv words, cwd and environment are bytes, not UTF-8 (issue 9 item 1): a
 * Latin-1 byte or a 0xff crosses the wire and reaches the process exactly, through the
 * library, sessions, terminals, run-as, the classic port, the real CLI and the audit log.
 */
import { test, before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { startDaemon, CLI, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv } from '../helpers/fixtures.js';
import { RawClient } from '../helpers/raw-client.js';
import { FrameType } from '../../src/protocol/frame.js';
import { decodeOsBytes, encodeOsBytes } from '../../src/protocol/os-bytes.js';
import { ErrorCode, type ShellwireError } from '../../src/errors.js';
import { AuditLog, auditLogPath } from '../../src/audit/audit-log.js';
import { ClassicServer } from '../../src/server/classic-server.js';
import { connect } from '../../src/client/connect.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import type { Connection } from '../../src/client/connection.js';

const latin1 = (text: string) => Buffer.from(text, 'latin1');
/** `café` in Latin-1: not UTF-8. */
const CAFE = latin1('caf\xe9');

let daemon: TestDaemon;
let conn: Connection;
let dir: string;
/** `<dir>/café` (Latin-1), as bytes. */
let cafeDir: Buffer;

before(async () => {
  daemon = await startDaemon();
  conn = await daemon.connect();
  dir = realpathSync(tempDir());
  cafeDir = Buffer.concat([Buffer.from(dir + '/'), CAFE]);
  mkdirSync(cafeDir);
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  if (dir) removeDir(dir);
});

test('command text with a Latin-1 byte runs exactly (Buffer and surrogate-escaped string)', async () => {
  const command = Buffer.concat([Buffer.from("printf '%s' "), CAFE]);
  assert.deepEqual((await conn.exec(command)).stdoutBytes, CAFE);
  assert.deepEqual((await conn.exec(decodeOsBytes(command))).stdoutBytes, CAFE);
});

test('argv words with 0xff reach the program exactly', async () => {
  const word = Buffer.from([0x61, 0xff, 0x62]);
  assert.deepEqual((await conn.exec(['printf', '%s', word])).stdoutBytes, word);
  // The program name itself may be bytes too (found on PATH as usual).
  assert.deepEqual((await conn.exec([Buffer.from('printf'), '%s|%s', CAFE, ''])).stdoutBytes, Buffer.concat([CAFE, Buffer.from('|')]));
});

test('env values (and names) with invalid UTF-8 reach the command exactly', async () => {
  const value = Buffer.from([0xe9, 0xff, 0x0a, 0x20]);
  const result = await conn.exec('printenv X; printf %s "$Y"', { env: { X: value, Y: 'plain' } });
  assert.deepEqual(result.stdoutBytes, Buffer.concat([value, Buffer.from('\nplain')]));
});

test('cwd into a directory named with a Latin-1 byte (exec, pty and argv)', async () => {
  assert.deepEqual((await conn.exec('pwd', { cwd: cafeDir })).stdoutBytes, Buffer.concat([cafeDir, Buffer.from('\n')]));
  assert.deepEqual((await conn.exec(['pwd'], { cwd: decodeOsBytes(cafeDir) })).stdoutBytes, Buffer.concat([cafeDir, Buffer.from('\n')]));
  // A missing byte directory is reported by its name, not another.
  await assert.rejects(conn.exec('pwd', { cwd: Buffer.concat([cafeDir, latin1('/n\xf6')]) }), (err: ShellwireError) => {
    assert.equal(err.code, ErrorCode.BAD_REQUEST);
    assert.match(err.message, /ENOENT/);
    return true;
  });
});

test('a command rebuilt from bytes still runs in its own container (cgroup), as a plain one does', async () => {
  // `c<N>` at the end is the command's own cgroup; the rest names the daemon's parent.
  const where = (bytes: Buffer) => bytes.toString('utf8').replace(/\d+\n$/, 'N\n');
  const plain = await conn.exec('cat /proc/self/cgroup');
  const rebuilt = await conn.exec(Buffer.concat([Buffer.from('cat /proc/self/cgroup # '), CAFE]), { cwd: cafeDir, env: { X: Buffer.from([0xff]) } });
  assert.equal(where(rebuilt.stdoutBytes), where(plain.stdoutBytes));
  // A program found relative to a byte cwd is contained too (the wrapper looks it up as bytes).
  writeFileSync(Buffer.concat([cafeDir, Buffer.from('/show')]), '#!/bin/sh\ncat /proc/self/cgroup\n', { mode: 0o755 });
  const relative = await conn.exec(['./show'], { cwd: cafeDir });
  assert.equal(where(relative.stdoutBytes), where(plain.stdoutBytes));
});

test('a terminal command with such bytes in its text, cwd and env', async () => {
  const command = Buffer.concat([Buffer.from("printf '%s|' "), CAFE, Buffer.from(' "$Z"; pwd')]);
  const result = await conn.exec(command, { pty: { term: 'xterm', cols: 80, rows: 24 }, cwd: cafeDir, env: { Z: Buffer.from([0xff]) } });
  assert.deepEqual(result.stdoutBytes, Buffer.concat([CAFE, Buffer.from('|'), Buffer.from([0xff]), Buffer.from('|'), cafeDir, Buffer.from('\r\n')]));
});

test('session: cd into a Latin-1 directory and export a 0xff value; the next commands see them exactly', async () => {
  const session = await conn.shell({ cwd: dir, env: { S: Buffer.from([0xfe]) } });
  try {
    const cd = await session.exec(Buffer.concat([Buffer.from('cd '), CAFE]));
    assert.equal(cd.cwd, decodeOsBytes(cafeDir));
    assert.deepEqual(session.cwdBytes, cafeDir);
    await session.exec("export V=\"$(printf 'a\\377b')\"");
    const result = await session.exec('pwd; printf %s "$V|$S"');
    assert.deepEqual(result.stdoutBytes, Buffer.concat([cafeDir, Buffer.from('\na'), Buffer.from([0xff]), Buffer.from('b|'), Buffer.from([0xfe])]));
    // A session opened in such a directory starts there.
    const inside = await conn.shell({ cwd: cafeDir });
    assert.deepEqual(inside.cwdBytes, cafeDir);
    assert.deepEqual((await inside.exec('pwd')).stdoutBytes, Buffer.concat([cafeDir, Buffer.from('\n')]));
    inside.close();
  } finally {
    session.close();
  }
});

test('a string that names no bytes is refused: by the library, and by the daemon for that channel only', async () => {
  await assert.rejects(conn.exec('echo \ud800'), (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST && /OS byte string/.test(err.message));
  await assert.rejects(conn.exec('pwd', { env: { X: '\udfff' } }), (err: ShellwireError) => err.code === ErrorCode.BAD_REQUEST);
  const raw = await RawClient.open(daemon.port);
  try {
    await raw.authenticate(daemon.token);
    for (const [channel, request] of [
      [1, { command: 'echo \ud800' }], [3, { argv: ['echo', 'a\udbff'] }], [5, { command: 'pwd', cwd: '/tmp/\udc10' }], [7, { command: 'pwd', env: { X: '\ud834' } }],
    ] as const) {
      const answer = await raw.openExec(channel, request);
      assert.equal(answer.type, FrameType.OPEN_FAIL, JSON.stringify(request));
      assert.equal(answer.body.code, ErrorCode.BAD_MESSAGE);
      assert.match(String(answer.body.message), /not an OS byte string/);
    }
    // The connection serves on: a surrogate-escaped command runs.
    const ok = await raw.openExec(9, { command: `printf '%s' ${decodeOsBytes(CAFE)}` });
    assert.equal(ok.type, FrameType.OPEN_OK);
    const out = await raw.nextFrame((f) => f.type === FrameType.STDOUT && f.channel === 9);
    assert.deepEqual(out.payload, CAFE);
  } finally {
    raw.destroy();
  }
});

test('the audit row of such a command keeps its text and cwd exactly', async () => {
  const d = await startDaemon();
  try {
    const c = await d.connect();
    const command = Buffer.concat([Buffer.from("printf '%s' "), CAFE]);
    await c.exec(command, { cwd: cafeDir });
    await c.close();
    await new Promise((r) => setTimeout(r, 100));
    const log = AuditLog.open(auditLogPath(d.server.stateDir), { readonly: true });
    try {
      const rows = log.query({}).filter((r) => r.kind === 'command-start' || r.kind === 'command-end');
      assert.equal(rows.length, 2);
      for (const row of rows) {
        assert.deepEqual(encodeOsBytes(row.command!), command);
        assert.deepEqual(encodeOsBytes(row.cwd!), cafeDir);
      }
      assert.equal(log.verify().ok, true);
    } finally {
      log.close();
    }
  } finally {
    await d.stop();
  }
});

test('the classic port runs a command line with a Latin-1 byte exactly', async () => {
  const classic = new ClassicServer({ token: daemon.server.token, port: 0 });
  const { port } = await classic.listen();
  try {
    const received = await new Promise<Buffer>((resolve, reject) => {
      const socket = netConnect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('end', () => resolve(Buffer.concat(chunks)));
      socket.end(Buffer.concat([Buffer.from(`${daemon.server.token}\nprintf '%s' `), CAFE, Buffer.from('\n')]));
    });
    assert.deepEqual(received, Buffer.concat([Buffer.from('OK\n'), CAFE])); // output, or "Done." when there is none
  } finally {
    await classic.close(500);
  }
});

/** The real CLI, its arguments passed as bytes by /bin/sh (Node's own spawn would send UTF-8). */
function cliWithByteArgs(script: string, input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', script, 'sh', process.execPath, CLI, daemon.address], { env: daemon.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

test('shellwire exec: command words with Latin-1 and 0xff bytes from its own argv', async () => {
  const result = await cliWithByteArgs(`"$1" "$2" exec "$3" -- "printf '%s|%s'" "$(printf 'caf\\351')" "$(printf '\\377')"`);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout, Buffer.concat([CAFE, Buffer.from('|'), Buffer.from([0xff])]));
});

test('shellwire shell via a pipe: a line with a Latin-1 byte, cd into such a directory, pwd', async () => {
  const input = Buffer.concat([Buffer.from(`cd '${dir}'\ncd `), CAFE, Buffer.from("\npwd\nprintf '%s' "), CAFE, Buffer.from('\n')]);
  const result = await cliWithByteArgs('"$1" "$2" shell "$3"', input);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout, Buffer.concat([cafeDir, Buffer.from('\n'), CAFE]));
});

const isRoot = process.getuid?.() === 0;
const ACCOUNT = 'swbytes1';

describe('run-as (setpriv + env -i) with byte values', { skip: !isRoot && 'needs root (useradd, runAs)' }, () => {
  let d: TestDaemon;
  let keyDir: string;
  before(async () => {
    try {
      execFileSync('getent', ['passwd', ACCOUNT], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['-m', '-s', '/bin/sh', ACCOUNT]);
    }
    keyDir = tempDir();
    chmodSync(keyDir, 0o755);
    const pair = generateKeyPair('bytes@test');
    writeFileSync(join(keyDir, 'key'), pair.privateText, { mode: 0o600 });
    d = await startDaemon();
    writeFileSync(join(d.server.stateDir, 'users.yaml'), [
      'users:',
      '  carol:',
      `    runAs: ${ACCOUNT}`,
      `    keys: ["${pair.publicLine}"]`,
      '  dave:',
      `    runAs: ${ACCOUNT}`,
      '    commands: { allow: ["pwd"] }',
      `    keys: ["${pair.publicLine}"]`,
    ].join('\n') + '\n');
    assert.ok(d.server.reloadUsers().ok);
  });
  after(async () => {
    await d?.stop();
    if (keyDir) removeDir(keyDir);
    try {
      execFileSync('userdel', ['-r', ACCOUNT], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });

  it('command, env and cwd bytes arrive after the privilege drop; LD_PRELOAD still refused', async () => {
    const c = await connect(`carol@${d.address}`, { identity: join(keyDir, 'key'), fingerprint: d.fingerprint, env: cleanEnv() });
    try {
      chmodSync(dir, 0o755);
      const command = Buffer.concat([Buffer.from("printf '%s|' "), CAFE, Buffer.from(' "$X"; id -un; pwd')]);
      const result = await c.exec(command, { cwd: cafeDir, env: { X: Buffer.from([0xff]) } });
      assert.deepEqual(result.stdoutBytes, Buffer.concat([CAFE, Buffer.from('|'), Buffer.from([0xff]), Buffer.from(`|${ACCOUNT}\n`), cafeDir, Buffer.from('\n')]));
      const session = await c.shell();
      await session.exec(Buffer.concat([Buffer.from('cd '), cafeDir]));
      assert.deepEqual((await session.exec('id -un; pwd')).stdoutBytes, Buffer.concat([Buffer.from(`${ACCOUNT}\n`), cafeDir, Buffer.from('\n')]));
      session.close();
      await assert.rejects(c.exec('true', { env: { LD_PRELOAD: Buffer.from([0xff]) } }), (err: ShellwireError) => err.code === ErrorCode.DENIED);
    } finally {
      await c.close();
    }
  });

  it('a restricted user cannot start in a directory outside their home through a symlink named with a Latin-1 byte', async () => {
    const home = execFileSync('getent', ['passwd', ACCOUNT], { encoding: 'utf8' }).split(':')[5]!;
    const link = Buffer.concat([Buffer.from(`${home}/l`), latin1('\xe9')]);
    symlinkSync('/etc', link);
    const c = await connect(`dave@${d.address}`, { identity: join(keyDir, 'key'), fingerprint: d.fingerprint, env: cleanEnv() });
    try {
      await assert.rejects(c.exec('pwd', { cwd: link }), (err: ShellwireError) => err.code === ErrorCode.DENIED && /outside/.test(err.message));
      // A real directory of that name inside the home is fine.
      const inside = Buffer.concat([Buffer.from(`${home}/d`), latin1('\xe9')]);
      mkdirSync(inside);
      assert.deepEqual((await c.exec('pwd', { cwd: inside })).stdoutBytes, Buffer.concat([inside, Buffer.from('\n')]));
    } finally {
      await c.close();
    }
  });
});

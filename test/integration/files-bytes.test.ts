/**
 * File names are bytes, not UTF-8 (issue 9 item 1); a source that changes while it is sent
 * is never reported as verified (issue 9 item 4).
 *
 * Real daemon on loopback, real files with Latin-1 names (`caf\xe9.txt`, not UTF-8), the real
 * CLI as a child process. Node cannot put such bytes into a child's argv (spawn encodes
 * strings as UTF-8), so `cliRaw` starts the CLI through bash with the words read
 * NUL-separated from a file, byte for byte.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, symlinkSync, utimesSync, writeFileSync, writeSync, closeSync, statSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../../src/client/connection.js';
import { FileTransferError } from '../../src/client/files/common.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import { decodeFileEntry, decodeFileRequest } from '../../src/protocol/file-messages.js';
import { decodeOsBytes } from '../../src/protocol/os-bytes.js';
import { FrameType } from '../../src/protocol/frame.js';
import { RawClient } from '../helpers/raw-client.js';
import { startDaemonWithRoot, runCli, runCliRaw, waitFor, type CliResult, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, startCli } from '../helpers/fixtures.js';

const MIB = 1024 * 1024;
/** `café.txt` in Latin-1: 0xE9 alone is not UTF-8. */
const LATIN1 = Buffer.from('caf\xe9.txt', 'latin1');
const LATIN1_STRING = decodeOsBytes(LATIN1); // "caf\udce9.txt"
let daemon: TestDaemon;
let conn: Connection;
let root: string;
let home: string;
let local: string;

before(async () => {
  root = tempDir('shellwire-bytes-root-');
  home = join(root, 'home');
  mkdirSync(home);
  local = tempDir('shellwire-bytes-local-');
  daemon = await startDaemonWithRoot(root, home);
  conn = await daemon.connect();
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  for (const dir of [root, local]) if (dir) removeDir(dir);
});

const remote = (path: string) => `${daemon.address}:${path}`;
const cli = (args: string[], timeoutMs = 30_000) => runCli(args, { env: daemon.env, timeoutMs });
/** A path as bytes: `dir` (UTF-8) + `/` + `name` (any bytes). */
const bytePath = (dir: string, ...names: Array<string | Buffer>) => Buffer.concat([Buffer.from(dir), ...names.map((n) => Buffer.concat([Buffer.from('/'), Buffer.from(n)]))]);
/** Names in `dir`, as bytes (hex, for readable assertions). */
const namesIn = (dir: string | Buffer) => readdirSync(dir, { encoding: 'buffer' }).map((n) => n.toString('hex')).sort();
const hex = (...names: Array<string | Buffer>) => names.map((n) => Buffer.from(n).toString('hex')).sort();

/** Run the CLI with argv words given as exact bytes. */
function cliRaw(words: Array<string | Buffer>, timeoutMs = 30_000): Promise<CliResult> {
  return runCliRaw(words, { env: daemon.env, scratchDir: local, timeoutMs });
}

/** A remote directory with an ASCII name and a Latin-1 name (the example). */
function latin1Tree(name: string): string {
  const dir = join(home, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'plain.txt'), 'plain');
  writeFileSync(bytePath(dir, LATIN1), 'latin-1 name');
  return dir;
}

test('get -r copies a file whose name is not UTF-8 with its exact bytes (CLI)', async () => {
  latin1Tree('get-r');
  const down = join(local, 'get-r-down');
  const r = await cli(['get', '-r', remote('get-r'), down]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(namesIn(down), hex('plain.txt', LATIN1));
  assert.equal(readFileSync(bytePath(down, LATIN1), 'utf8'), 'latin-1 name');
});

test('ls prints a non-UTF-8 name as its bytes; ls --json as a \\udcXX escape plus nameBase64', async () => {
  const dir = latin1Tree('ls');
  symlinkSync(LATIN1, bytePath(dir, Buffer.from('link-\xff', 'latin1')));
  const plain = await cli(['ls', remote('ls')]);
  assert.equal(plain.code, 0, plain.stderr);
  const lines = plain.stdout.toString('latin1').trimEnd().split('\n');
  assert.equal(lines.length, 3, plain.stdout.toString('latin1'));
  assert.match(lines[0]!, / caf\xe9\.txt$/);
  assert.match(lines[1]!, / link-\xff -> caf\xe9\.txt$/);
  assert.match(lines[2]!, / plain\.txt$/);

  const json = await cli(['ls', '--json', remote('ls')]);
  assert.equal(json.code, 0, json.stderr);
  const text = json.stdout.toString('utf8');
  assert.ok(text.includes('"name": "caf\\udce9.txt"'), text);
  const entries = JSON.parse(text) as Array<Record<string, unknown>>;
  assert.deepEqual(entries.map((e) => e.name), [LATIN1_STRING, decodeOsBytes(Buffer.from('link-\xff', 'latin1')), 'plain.txt']);
  assert.equal(Buffer.from(entries[0]!.nameBase64 as string, 'base64').toString('hex'), LATIN1.toString('hex'));
  assert.equal(Buffer.from(entries[1]!.targetBase64 as string, 'base64').toString('hex'), LATIN1.toString('hex'));
  assert.equal(entries[2]!.nameBase64, undefined, 'a UTF-8 name needs no second spelling');
});

test('put -r sends a local file whose name is not UTF-8 under its exact bytes (CLI)', async () => {
  const tree = join(local, 'put-r');
  mkdirSync(tree);
  writeFileSync(join(tree, 'plain.txt'), 'plain');
  writeFileSync(bytePath(tree, LATIN1), 'latin-1 name');
  mkdirSync(bytePath(tree, Buffer.from('dir-\xe9', 'latin1')));
  writeFileSync(bytePath(tree, Buffer.from('dir-\xe9', 'latin1'), LATIN1), 'nested');
  const r = await cli(['put', '-r', tree, remote('')]);
  assert.equal(r.code, 0, r.stderr);
  const up = join(home, 'put-r');
  assert.deepEqual(namesIn(up), hex('plain.txt', LATIN1, Buffer.from('dir-\xe9', 'latin1')));
  assert.equal(readFileSync(bytePath(up, LATIN1), 'utf8'), 'latin-1 name');
  assert.equal(readFileSync(bytePath(up, Buffer.from('dir-\xe9', 'latin1'), LATIN1), 'utf8'), 'nested');
});

test('put, get and ls take non-UTF-8 paths from the command line byte for byte', async () => {
  const src = bytePath(local, LATIN1);
  writeFileSync(src, 'from argv');
  const put = await cliRaw(['put', src, Buffer.concat([Buffer.from(remote('')), Buffer.from('argv-'), LATIN1])]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(readFileSync(bytePath(home, Buffer.concat([Buffer.from('argv-'), LATIN1])), 'utf8'), 'from argv');

  const down = bytePath(local, Buffer.from('down-\xe9', 'latin1'));
  const get = await cliRaw(['get', Buffer.concat([Buffer.from(remote('')), Buffer.from('argv-'), LATIN1]), down]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(readFileSync(down, 'utf8'), 'from argv');

  const ls = await cliRaw(['ls', Buffer.concat([Buffer.from(remote('')), Buffer.from('argv-'), LATIN1])]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok(ls.stdout.includes(Buffer.concat([Buffer.from(' argv-'), LATIN1, Buffer.from('\n')])), ls.stdout.toString('latin1'));
});

test('library: put, get, stat, list and mkdir take and give names as OS byte strings', async () => {
  const src = bytePath(local, Buffer.from('lib-\xe9', 'latin1'));
  writeFileSync(src, 'library');
  const dirName = decodeOsBytes(Buffer.from('lib-dir-\xfe', 'latin1'));
  const made = await conn.mkdir(dirName);
  assert.ok(made.endsWith(dirName));
  const put = await conn.put(decodeOsBytes(src), `${dirName}/`);
  assert.equal(put.remote, `${made}/${decodeOsBytes(Buffer.from('lib-\xe9', 'latin1'))}`);
  const listed = await conn.list(dirName);
  assert.deepEqual(listed.map((e) => e.name), [decodeOsBytes(Buffer.from('lib-\xe9', 'latin1'))]);
  const entry = await conn.stat(`${dirName}/${listed[0]!.name}`);
  assert.equal(entry.size, 7);
  const back = decodeOsBytes(bytePath(local, Buffer.from('lib-back-\xe9', 'latin1')));
  await conn.get(`${dirName}/${listed[0]!.name}`, back);
  assert.equal(readFileSync(bytePath(local, Buffer.from('lib-back-\xe9', 'latin1')), 'utf8'), 'library');
  // A string that names no bytes (a lone surrogate outside U+DC80..U+DCFF) is refused, not mangled.
  await assert.rejects(conn.stat('bad-\ud800'), (err: unknown) => err instanceof FileTransferError && err.code === ErrorCode.BAD_REQUEST && /not an OS byte string/.test(err.message));
  // The daemon refuses it too, from a client that sends it anyway, and goes on serving.
  const raw = await RawClient.open(daemon.port);
  try {
    await raw.authenticate(daemon.token);
    raw.sendJson(FrameType.OPEN, 1, { kind: 'file', window: 1, maxPacket: 1024, op: 'stat', path: 'bad-\ud800' });
    const fail = await raw.nextFrame((f) => f.channel === 1);
    assert.equal(fail.type, FrameType.OPEN_FAIL);
    const body = JSON.parse(fail.payload.toString('utf8')) as { code: string; message: string };
    assert.equal(body.code, ErrorCode.BAD_MESSAGE);
    assert.match(body.message, /"path" is not an OS byte string/);
  } finally {
    raw.destroy();
  }
  assert.equal((await conn.stat(dirName)).type, 'dir');
});

test('the file channel refuses paths and names that are not OS byte strings (decoders)', () => {
  assert.deepEqual(decodeFileRequest({ op: 'stat', path: 'caf\udce9.txt' }), { op: 'stat', path: 'caf\udce9.txt' });
  assert.throws(() => decodeFileRequest({ op: 'stat', path: 'x\ud800' }), (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.BAD_MESSAGE && /OS byte string/.test(err.message));
  assert.throws(() => decodeFileRequest({ op: 'put', path: 'x', name: 'y\udfff', size: 0, mode: 0, mtimeMs: 0, resume: false }), /OS byte string/);
  assert.throws(() => decodeFileEntry('{"name":"\\ud800","type":"file","size":0,"mode":0,"mtimeMs":0}'), /OS byte string/);
});

test('entries that cannot be copied are never skipped in silence: a message each and exit 1', async () => {
  const dir = join(home, 'special-tree');
  mkdirSync(dir);
  writeFileSync(join(dir, 'ok.txt'), 'ok');
  symlinkSync('/nowhere/at/all', join(dir, 'dangling'));
  const r = await cli(['get', '-r', remote('special-tree'), join(local, 'special-down')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /dangling: broken symbolic link .*skipped/);
  assert.equal(readFileSync(join(local, 'special-down/ok.txt'), 'utf8'), 'ok');

  const tree = join(local, 'special-up');
  mkdirSync(tree);
  writeFileSync(join(tree, 'ok.txt'), 'ok');
  symlinkSync('/nowhere/at/all', join(tree, 'dangling'));
  const p = await cli(['put', '-r', tree, remote('')]);
  assert.equal(p.code, 1, p.stderr);
  assert.match(p.stderr, /dangling: broken symbolic link; skipped/);
  assert.equal(readFileSync(join(home, 'special-up/ok.txt'), 'utf8'), 'ok');
});

// ---------------------------------------------------------------------------------------
// Item 4: a source that changes while it is sent.

/** Rewrite `path` in place (same size, no truncate) with `byte`. */
function rewriteInPlace(path: string, size: number, byte: string): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.alloc(size, byte), 0, size, 0);
  } finally {
    closeSync(fd);
  }
}

const partSize = (path: string) => (existsSync(path) ? statSync(path).size : -1);

test('put of a file rewritten in place while it is sent fails with SW_ERR_SOURCE_CHANGED; the old target stays', async () => {
  const size = 20 * MIB;
  const src = join(local, 'changing.bin');
  writeFileSync(src, Buffer.alloc(size, 'A'));
  writeFileSync(join(home, 'changing.bin'), 'old version');
  const run = startCli(['put', '--quiet', '--limit-rate', '5M', src, remote('changing.bin')], { env: daemon.env, closeStdin: true });
  const partial = join(home, '.changing.bin.shellwire-part');
  assert.ok(await waitFor(() => partSize(partial) >= 3 * MIB, 15_000), `partial reached ${partSize(partial)} bytes`);
  rewriteInPlace(src, size, 'B');
  const { code } = await run.exited;
  assert.equal(code, 1, run.stderr());
  assert.match(run.stderr(), /changing\.bin changed while it was being sent.*\[SW_ERR_SOURCE_CHANGED\]/s);
  assert.equal(readFileSync(join(home, 'changing.bin'), 'utf8'), 'old version');
});

test('get of a remote file rewritten in place while it is sent fails with SW_ERR_SOURCE_CHANGED; nothing lands', async () => {
  const size = 20 * MIB;
  const src = join(home, 'changing-get.bin');
  writeFileSync(src, Buffer.alloc(size, 'A'));
  const target = join(local, 'changing-get.bin');
  writeFileSync(target, 'old version');
  const run = startCli(['get', '--quiet', '--limit-rate', '5M', remote('changing-get.bin'), target], { env: daemon.env, closeStdin: true });
  const partial = join(local, '.changing-get.bin.shellwire-part');
  assert.ok(await waitFor(() => partSize(partial) >= 3 * MIB, 15_000), `partial reached ${partSize(partial)} bytes`);
  rewriteInPlace(src, size, 'B');
  const { code } = await run.exited;
  assert.equal(code, 1, run.stderr());
  assert.match(run.stderr(), /changing-get\.bin changed while it was being sent.*\[SW_ERR_SOURCE_CHANGED\]/s);
  assert.equal(readFileSync(target, 'utf8'), 'old version');
  assert.equal(existsSync(partial), false, 'the mixed partial file is removed');
});

test('put -r: a file that shrinks while it is sent fails (SW_ERR_SOURCE_CHANGED), the rest arrives', async () => {
  const tree = join(local, 'changing-tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'a-steady.txt'), 'steady');
  const src = join(tree, 'b-shrinking.bin');
  writeFileSync(src, Buffer.alloc(20 * MIB, 'A'));
  const run = startCli(['put', '-r', '--quiet', '--limit-rate', '5M', tree, remote('')], { env: daemon.env, closeStdin: true });
  const partial = join(home, 'changing-tree/.b-shrinking.bin.shellwire-part');
  assert.ok(await waitFor(() => partSize(partial) >= 3 * MIB, 15_000), `partial reached ${partSize(partial)} bytes`);
  writeFileSync(src, Buffer.alloc(4 * MIB, 'B')); // truncated and rewritten: shorter now
  const { code } = await run.exited;
  assert.equal(code, 1, run.stderr());
  assert.match(run.stderr(), /b-shrinking\.bin changed while it was being sent.*\[SW_ERR_SOURCE_CHANGED\]/s);
  assert.equal(readFileSync(join(home, 'changing-tree/a-steady.txt'), 'utf8'), 'steady');
  assert.equal(existsSync(join(home, 'changing-tree/b-shrinking.bin')), false);
});

test('library: put of a file whose size and mtime changed during the send rejects with SOURCE_CHANGED', async () => {
  const src = join(local, 'lib-changing.bin');
  writeFileSync(src, Buffer.alloc(8 * MIB, 'A'));
  utimesSync(src, 1_600_000_000, 1_600_000_000);
  chmodSync(src, 0o644);
  let changed = false;
  const result = await conn
    .put(src, 'lib-changing.bin', {
      rateLimit: 4 * MIB,
      onProgress: (p) => {
        if (!changed && p.bytes >= 2 * MIB) {
          changed = true;
          rewriteInPlace(src, 8 * MIB, 'B');
        }
      },
    })
    .catch((e: unknown) => e);
  assert.ok(result instanceof FileTransferError, String(result));
  assert.equal(result.code, ErrorCode.SOURCE_CHANGED);
  assert.equal(existsSync(join(home, 'lib-changing.bin')), false);
});

test('resume: a partial file of an older version of the source is never continued (put and get)', async () => {
  // get: the local partial holds the old remote version's first MiB; the remote file changed since.
  const remoteFile = join(home, 'resume-changed.bin');
  writeFileSync(remoteFile, Buffer.alloc(3 * MIB, 'N'));
  writeFileSync(join(local, '.resume-changed.bin.shellwire-part'), Buffer.alloc(MIB, 'O'));
  const got = await conn.get('resume-changed.bin', join(local, 'resume-changed.bin'));
  assert.equal(got.resumedFrom, 0);
  assert.deepEqual(readFileSync(join(local, 'resume-changed.bin')), Buffer.alloc(3 * MIB, 'N'));
  // put: the remote partial holds the old local version's first MiB.
  const src = join(local, 'resume-changed-up.bin');
  writeFileSync(src, Buffer.alloc(3 * MIB, 'N'));
  writeFileSync(join(home, '.resume-changed-up.bin.shellwire-part'), Buffer.alloc(MIB, 'O'));
  const put = await conn.put(src, 'resume-changed-up.bin', { resume: true });
  assert.equal(put.resumedFrom, 0);
  assert.deepEqual(readFileSync(join(home, 'resume-changed-up.bin')), Buffer.alloc(3 * MIB, 'N'));
  // get: a remote file shorter than the partial file (truncated since) starts over too.
  writeFileSync(join(local, '.resume-changed.bin.shellwire-part'), Buffer.alloc(4 * MIB, 'N'));
  const shorter = await conn.get('resume-changed.bin', join(local, 'resume-changed.bin'));
  assert.equal(shorter.resumedFrom, 0);
  assert.deepEqual(readFileSync(join(local, 'resume-changed.bin')), Buffer.alloc(3 * MIB, 'N'));
});

test('put whose EOF hash does not match the bytes fails with SW_ERR_INTEGRITY (errno EINTEGRITY kept for older v1 clients); nothing lands', async () => {
  const raw = await RawClient.open(daemon.port);
  try {
    await raw.authenticate(daemon.token);
    raw.sendJson(FrameType.OPEN, 1, { kind: 'file', window: 64 * 1024, maxPacket: 64 * 1024, op: 'put', path: 'integrity.bin', size: 5, mode: 0o644, mtimeMs: Date.now(), resume: false });
    const ok = await raw.nextFrame((f) => f.channel === 1);
    assert.equal(ok.type, FrameType.OPEN_OK, ok.payload.toString('utf8'));
    raw.send(FrameType.STDIN, 1, Buffer.from('hello'));
    raw.sendJson(FrameType.EOF, 1, { sha256: '0'.repeat(64), size: 5 });
    const exit = await raw.nextFrame((f) => f.channel === 1 && f.type === FrameType.EXIT);
    const body = JSON.parse(exit.payload.toString('utf8')) as { error?: { code: string; message: string }; errno?: string };
    assert.equal(body.error?.code, ErrorCode.INTEGRITY);
    assert.equal(body.errno, 'EINTEGRITY');
    assert.match(body.error!.message, /SHA-256 mismatch/);
  } finally {
    raw.destroy();
  }
  await assert.rejects(conn.stat('integrity.bin'), (err: unknown) => err instanceof FileTransferError && err.errno === 'ENOENT');
});

test('library: a local file that cannot be read or written fails with SW_ERR_LOCAL_IO and its errno', async () => {
  await assert.rejects(conn.put(join(local, 'no-such-file.bin'), 'x.bin'), (err: unknown) => err instanceof FileTransferError && err.code === ErrorCode.LOCAL_IO && err.errno === 'ENOENT');
  writeFileSync(join(local, 'local-io-src.bin'), 'abc');
  await conn.put(join(local, 'local-io-src.bin'), 'local-io.bin');
  await assert.rejects(conn.get('local-io.bin', join(local, 'no-such-dir', 'x.bin')), (err: unknown) => err instanceof FileTransferError && err.code === ErrorCode.LOCAL_IO && err.errno === 'ENOENT');
});

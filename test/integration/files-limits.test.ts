/**
 * Limits of names and paths, rename races and the rate limit of the file service:
 * a path over 4096 characters in a tree is skipped, not fatal; names of 240–255 bytes are
 * copied (their partial name is shortened); a source replaced by a rename is sent whole in
 * the opened version; `get --limit-rate` holds from the first byte.
 *
 * Real daemon on loopback, real files, the real CLI as a child process.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '../../src/client/connection.js';
import { MAX_PATH_LENGTH, partialName } from '../../src/protocol/file-messages.js';
import { decodeOsBytes } from '../../src/protocol/os-bytes.js';
import { CLI, cliResult, startDaemonWithRoot, waitFor, type CliResult, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, startCli } from '../helpers/fixtures.js';

const MIB = 1024 * 1024;
let daemon: TestDaemon;
let conn: Connection;
let root: string;
let home: string;
let local: string;

before(async () => {
  root = tempDir('shellwire-limits-root-');
  home = join(root, 'home');
  mkdirSync(home);
  local = tempDir('shellwire-limits-local-');
  daemon = await startDaemonWithRoot(root, home);
  conn = await daemon.connect();
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  // rm walks deep trees by fd; paths past PATH_MAX are no problem for it.
  for (const dir of [root, local]) if (dir) execFileSync('rm', ['-rf', dir]);
  for (const dir of [root, local]) if (dir && existsSync(dir)) removeDir(dir);
});

const remote = (path: string) => `${daemon.address}:${path}`;

/** The CLI in `cwd` (relative local paths stay short while the remote ones are long). */
function cliIn(cwd: string, args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return cliResult(spawn(process.execPath, [CLI, ...args], { cwd, env: daemon.env, stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}

const LEVEL = 'd'.repeat(200);
const LEVELS = 19;
const LONG_FILE = 'a'.repeat(250);

/**
 * `base/tree`: `LEVELS` directories of 200 characters, in the deepest one `LONG_FILE` (its
 * path relative to `base` ~4070 characters) and `zz-after.txt`, plus `tree/z-after.txt`.
 * Built with relative names (bash cd), as no single path to the deepest file is legal.
 */
function deepTree(base: string): void {
  execFileSync('/bin/bash', ['-c', `set -e; cd "$1"; mkdir tree; cd tree; echo top > z-after.txt
    for i in $(seq ${LEVELS}); do mkdir ${LEVEL}; cd ${LEVEL}; done
    echo long > ${LONG_FILE}; echo deep > zz-after.txt`, 'tree', base]);
}
const deepRelative = (...rest: string[]) => ['tree', ...Array<string>(LEVELS).fill(LEVEL), ...rest].join('/');

test('put -r: a remote path over 4096 characters is skipped with a message; the rest is copied (exit 1)', async () => {
  const src = join(local, 'put-long');
  mkdirSync(src);
  deepTree(src);
  mkdirSync(join(home, 'put-long'));
  const r = await cliIn(src, ['put', '-r', '--quiet', 'tree', remote('put-long')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${LONG_FILE}.*longer than ${MAX_PATH_LENGTH} characters.*skipped`));
  assert.doesNotMatch(r.stderr, /SW_ERR_BAD_MESSAGE/);
  const read = (rel: string) => execFileSync('/bin/bash', ['-c', 'cd "$1" && cat "$2"', 'read', join(home, 'put-long'), rel], { encoding: 'utf8' });
  assert.equal(read(deepRelative('zz-after.txt')), 'deep\n');
  assert.equal(read('tree/z-after.txt'), 'top\n');
});

test('get -r: a remote path over 4096 characters is skipped with a message; the rest is copied (exit 1)', async () => {
  mkdirSync(join(home, 'get-long'));
  deepTree(join(home, 'get-long'));
  const down = join(local, 'get-long');
  mkdirSync(down);
  const r = await cliIn(down, ['get', '-r', '--quiet', remote('get-long/tree'), 'tree']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${LONG_FILE}.*longer than ${MAX_PATH_LENGTH} characters.*skipped`));
  assert.doesNotMatch(r.stderr, /SW_ERR_BAD_MESSAGE/);
  const read = (rel: string) => execFileSync('/bin/bash', ['-c', 'cd "$1" && cat "$2"', 'read', down, rel], { encoding: 'utf8' });
  assert.equal(read(deepRelative('zz-after.txt')), 'deep\n');
  assert.equal(read('tree/z-after.txt'), 'top\n');
});

test('library: get and put of a path over 4096 characters reject with SW_ERR_BAD_REQUEST, the connection lives on', async () => {
  const long = '/' + 'x/'.repeat(2100) + 'f';
  await assert.rejects(conn.get(long, join(local, 'nope')), (e: Error & { code?: string }) => e.code === 'SW_ERR_BAD_REQUEST' && /longer than 4096/.test(e.message));
  writeFileSync(join(local, 'small.txt'), 'small');
  await assert.rejects(conn.put(join(local, 'small.txt'), long), (e: Error & { code?: string }) => e.code === 'SW_ERR_BAD_REQUEST');
  await conn.put(join(local, 'small.txt'), 'small.txt');
  assert.equal(readFileSync(join(home, 'small.txt'), 'utf8'), 'small');
});

/** Names of 240–255 bytes: ASCII, and 3-byte UTF-8 characters cut at a character. */
const LONG_NAMES = ['n'.repeat(255), 'm'.repeat(240), '€'.repeat(84) + 'xyz'];

test('names of 240–255 bytes are copied both ways (put, get, put -r, get -r); partial names stay within NAME_MAX', async () => {
  for (const name of LONG_NAMES) assert.ok(Buffer.byteLength(partialName(name)) <= 255, partialName(name));
  for (const name of LONG_NAMES) {
    const bytes = Buffer.from(name);
    assert.ok(bytes.length >= 240 && bytes.length <= 255);
    const content = `content of ${bytes.length}`;
    writeFileSync(join(local, name), content);
    const up = await cliIn(local, ['put', '--quiet', name, remote(name)]);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(readFileSync(join(home, name), 'utf8'), content);
    const down = join(local, 'down');
    mkdirSync(down, { recursive: true });
    const got = await cliIn(down, ['get', '--quiet', remote(name), name]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(readFileSync(join(down, name), 'utf8'), content);
  }
  mkdirSync(join(local, 'long-tree'));
  for (const name of LONG_NAMES) writeFileSync(join(local, 'long-tree', name), name);
  const upTree = await cliIn(local, ['put', '-r', '--quiet', 'long-tree', remote('')]);
  assert.equal(upTree.code, 0, upTree.stderr);
  const downTree = await cliIn(local, ['get', '-r', '--quiet', remote('long-tree'), 'long-tree-down']);
  assert.equal(downTree.code, 0, downTree.stderr);
  for (const name of LONG_NAMES) assert.equal(readFileSync(join(local, 'long-tree-down', name), 'utf8'), name);
  assert.deepEqual(readdirSync(join(local, 'long-tree-down')).filter((n) => n.endsWith('.shellwire-part')), []);
});

test('names of 255 bytes resume from their shortened partial file (put and get)', async () => {
  const name = 'r'.repeat(255);
  const data = Buffer.alloc(3 * MIB, 'R');
  // get: the local partial holds the first MiB.
  mkdirSync(join(local, 'resume-get'));
  writeFileSync(join(home, name), data);
  writeFileSync(join(local, 'resume-get', partialName(name)), data.subarray(0, MIB));
  const got = await conn.get(name, join(local, 'resume-get', name));
  assert.equal(got.resumedFrom, MIB);
  assert.deepEqual(readFileSync(join(local, 'resume-get', name)), data);
  // put: the remote partial holds the first MiB.
  mkdirSync(join(home, 'resume-put'));
  writeFileSync(join(home, 'resume-put', partialName(name)), data.subarray(0, MIB));
  const put = await conn.put(join(local, 'resume-get', name), `resume-put/${name}`, { resume: true });
  assert.equal(put.resumedFrom, MIB);
  assert.deepEqual(readFileSync(join(home, 'resume-put', name)), data);
  assert.equal(existsSync(join(home, 'resume-put', partialName(name))), false);
});

const partSize = (path: string) => (existsSync(path) ? statSync(path).size : -1);

test('put of a file replaced by a rename meanwhile sends the opened version whole (as the README says)', async () => {
  const size = 12 * MIB;
  const src = join(local, 'renamed.bin');
  writeFileSync(src, Buffer.alloc(size, 'A'));
  const run = startCli(['put', '--quiet', '--limit-rate', '6M', src, remote('renamed.bin')], { env: daemon.env, closeStdin: true });
  const partial = join(home, '.renamed.bin.shellwire-part');
  assert.ok(await waitFor(() => partSize(partial) >= 2 * MIB, 15_000), `partial reached ${partSize(partial)} bytes`);
  writeFileSync(join(local, 'renamed.new'), 'the new version');
  renameSync(join(local, 'renamed.new'), src);
  const { code } = await run.exited;
  assert.equal(code, 0, run.stderr());
  assert.deepEqual(readFileSync(join(home, 'renamed.bin')), Buffer.alloc(size, 'A'));
});

test('get of a remote file replaced by a rename meanwhile receives the opened version whole', async () => {
  const size = 12 * MIB;
  const src = join(home, 'renamed-get.bin');
  writeFileSync(src, Buffer.alloc(size, 'A'));
  const target = join(local, 'renamed-get.bin');
  const run = startCli(['get', '--quiet', '--limit-rate', '6M', remote('renamed-get.bin'), target], { env: daemon.env, closeStdin: true });
  const partial = join(local, '.renamed-get.bin.shellwire-part');
  assert.ok(await waitFor(() => partSize(partial) >= 2 * MIB, 15_000), `partial reached ${partSize(partial)} bytes`);
  writeFileSync(join(home, 'renamed-get.new'), 'the new version');
  renameSync(join(home, 'renamed-get.new'), src);
  const { code } = await run.exited;
  assert.equal(code, 0, run.stderr());
  assert.deepEqual(readFileSync(target), Buffer.alloc(size, 'A'));
});

test('get --limit-rate holds from the first byte: 4 MiB at 2M takes at least 1.4 s (put likewise)', async () => {
  writeFileSync(join(home, 'rated.bin'), Buffer.alloc(4 * MIB, 'L'));
  let started = performance.now();
  const got = await cliIn(local, ['get', '--quiet', '--limit-rate', '2M', remote('rated.bin'), 'rated.bin']);
  const getMs = performance.now() - started;
  assert.equal(got.code, 0, got.stderr);
  assert.ok(getMs >= 1400, `get took ${Math.round(getMs)} ms`);
  started = performance.now();
  const put = await cliIn(local, ['put', '--quiet', '--limit-rate', '2M', 'rated.bin', remote('rated-up.bin')]);
  const putMs = performance.now() - started;
  assert.equal(put.code, 0, put.stderr);
  assert.ok(putMs >= 1400, `put took ${Math.round(putMs)} ms`);
  assert.equal(decodeOsBytes(readFileSync(join(home, 'rated-up.bin'))).length, 4 * MIB);
});

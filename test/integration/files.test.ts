/**
 * File transfer (`put`, `get`, `ls`, and the library behind them) against a real daemon
 * on loopback, with real files in temp dirs and the real CLI as a child process.
 *
 * The daemon's file root is a temp dir; the test user's home is a directory inside it,
 * so relative remote paths land there, and everything else on the machine is "outside".
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Connection } from '../../src/client/connection.js';
import { FileTransferError } from '../../src/client/files/common.js';
import { ErrorCode } from '../../src/errors.js';
import { startDaemonWithRoot, runCli, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, sha256, allByteValues, startCli, startServeCli, cleanEnv } from '../helpers/fixtures.js';
import { captureLogger } from '../helpers/raw-client.js';

const MIB = 1024 * 1024;
let daemon: TestDaemon;
let conn: Connection;
let root: string; // the daemon's only file root
let home: string; // the test user's home, inside root
let outside: string; // a directory outside every root
let local: string; // the client's side
let logs: ReturnType<typeof captureLogger>;
const mounts: string[] = [];

before(async () => {
  root = tempDir('shellwire-files-root-');
  home = join(root, 'home');
  mkdirSync(home);
  outside = tempDir('shellwire-files-outside-');
  local = tempDir('shellwire-files-local-');
  logs = captureLogger();
  // The daemon token, acting as a user whose home is inside the only file root.
  daemon = await startDaemonWithRoot(root, home, { logger: logs.logger });
  conn = await daemon.connect();
});

after(async () => {
  await conn?.close();
  await daemon?.stop();
  for (const mount of mounts) spawnSync('umount', ['-l', mount]);
  for (const dir of [root, outside, local]) if (dir) removeDir(dir);
});

const remote = (path: string) => `${daemon.address}:${path}`;
const cli = (args: string[], timeoutMs = 30_000) => runCli(args, { env: daemon.env, timeoutMs });
const fileSha = (path: string) => sha256(readFileSync(path));

function makeFile(path: string, data: Buffer, mode = 0o644, mtimeS = 1_600_000_000.5): Buffer {
  writeFileSync(path, data);
  chmodSync(path, mode);
  utimesSync(path, mtimeS, mtimeS);
  return data;
}

function assertSameFile(copy: string, original: string): void {
  const a = statSync(copy);
  const b = statSync(original);
  assert.equal(a.size, b.size, `${copy}: size`);
  assert.equal(fileSha(copy), fileSha(original), `${copy}: SHA-256`);
  assert.equal(a.mode & 0o777, b.mode & 0o777, `${copy}: mode`);
  assert.ok(Math.abs(a.mtimeMs - b.mtimeMs) < 1, `${copy}: mtime ${a.mtimeMs} vs ${b.mtimeMs}`);
}

function noPartials(dir: string): void {
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.shellwire-part')), [], `partial files left in ${dir}`);
}

test('put and get round-trip empty, 1-byte, binary, sparse and 100 MiB files byte-exact (CLI)', async () => {
  const src = join(local, 'rt');
  const back = join(local, 'rt-back');
  mkdirSync(src);
  mkdirSync(back);
  makeFile(join(src, 'empty'), Buffer.alloc(0));
  makeFile(join(src, 'one'), Buffer.from('x'), 0o600);
  makeFile(join(src, 'bytes'), Buffer.concat([allByteValues(), randomBytes(1_000_003)]), 0o755);
  const sparse = openSync(join(src, 'sparse'), 'w');
  writeSync(sparse, Buffer.from('middle'), 0, 6, 10 * MIB);
  writeSync(sparse, Buffer.from('end\0'), 0, 4, 30 * MIB - 4);
  closeSync(sparse);
  utimesSync(join(src, 'sparse'), 1_500_000_000, 1_500_000_000);
  makeFile(join(src, 'big'), randomBytes(100 * MIB), 0o640);

  const names = ['empty', 'one', 'bytes', 'sparse', 'big'];
  const put = await cli(['put', '--quiet', ...names.map((n) => join(src, n)), remote('rt')], 60_000);
  assert.equal(put.code, 1, 'rt/ does not exist yet: several sources need an existing directory');
  assert.match(put.stderr, /not a directory.*several sources/);
  await conn.mkdir('rt');
  const put2 = await cli(['put', '--quiet', ...names.map((n) => join(src, n)), remote('rt')], 60_000);
  assert.equal(put2.code, 0, put2.stderr);
  assert.equal(put2.stderr, '');
  for (const name of names) assertSameFile(join(home, 'rt', name), join(src, name));
  noPartials(join(home, 'rt'));

  const get = await cli(['get', '--quiet', ...names.map((n) => remote(`rt/${n}`)), back], 60_000);
  assert.equal(get.code, 0, get.stderr);
  for (const name of names) assertSameFile(join(back, name), join(src, name));
  noPartials(back);
});

test('relative remote paths start at the home directory; an existing directory target receives the file', async () => {
  const file = makeFile(join(local, 'rel.txt'), Buffer.from('relative\n'));
  assert.equal((await cli(['put', join(local, 'rel.txt'), remote('')])).code, 0);
  assert.deepEqual(readFileSync(join(home, 'rel.txt')), file);
  assert.equal((await cli(['put', join(local, 'rel.txt'), remote('~/renamed.txt')])).code, 0);
  assert.deepEqual(readFileSync(join(home, 'renamed.txt')), file);
  const abs = await conn.put(join(local, 'rel.txt'), join(root, 'abs.txt'));
  assert.equal(abs.remote, join(root, 'abs.txt'));
  const slash = await cli(['put', join(local, 'rel.txt'), remote('no-such-dir/')]);
  assert.equal(slash.code, 1);
  assert.match(slash.stderr, /no-such-dir\/: no such directory \(ENOENT\); create it first/);
  assert.equal(existsSync(join(home, 'no-such-dir')), false);
  const stat = await conn.stat('renamed.txt');
  assert.equal(stat.type, 'file');
  assert.equal(stat.size, file.length);
});

test('put -r and get -r copy a directory tree with modes, mtimes, empty dirs and file symlinks', async () => {
  const tree = join(local, 'tree');
  mkdirSync(join(tree, 'a/b/c'), { recursive: true });
  mkdirSync(join(tree, 'empty'));
  makeFile(join(tree, 'top.txt'), Buffer.from('top'));
  makeFile(join(tree, 'a/one.bin'), randomBytes(70_000), 0o600);
  makeFile(join(tree, 'a/b/c/deep.bin'), randomBytes(3 * MIB + 1), 0o755);
  symlinkSync('top.txt', join(tree, 'link-to-file'));
  symlinkSync('a', join(tree, 'link-to-dir'));
  chmodSync(join(tree, 'a/b'), 0o750);
  utimesSync(join(tree, 'a/b'), 1_400_000_000, 1_400_000_000);

  const noR = await cli(['put', tree, remote('')]);
  assert.equal(noR.code, 1);
  assert.match(noR.stderr, /is a directory; use -r/);

  const put = await cli(['put', '-r', tree, remote('')]);
  // The link to a directory is not followed (no loops), so the copy is not whole: exit 1.
  assert.equal(put.code, 1, put.stderr);
  assert.match(put.stderr, /link-to-dir: symbolic link to a directory, not followed; skipped/);
  const up = join(home, 'tree');
  for (const f of ['top.txt', 'a/one.bin', 'a/b/c/deep.bin']) assertSameFile(join(up, f), join(tree, f));
  assert.deepEqual(readFileSync(join(up, 'link-to-file')), readFileSync(join(tree, 'top.txt')));
  assert.ok(statSync(join(up, 'empty')).isDirectory());
  assert.equal(statSync(join(up, 'a/b')).mode & 0o777, 0o750);
  assert.equal(Math.round(statSync(join(up, 'a/b')).mtimeMs / 1000), 1_400_000_000);
  assert.equal(existsSync(join(up, 'link-to-dir')), false);

  // Into an existing directory: the tree lands under its own name, as cp -r does.
  const down = join(local, 'down');
  mkdirSync(down);
  const get = await cli(['get', '-r', remote('tree'), down]);
  assert.equal(get.code, 0, get.stderr);
  for (const f of ['top.txt', 'a/one.bin', 'a/b/c/deep.bin']) assertSameFile(join(down, 'tree', f), join(tree, f));
  assert.ok(statSync(join(down, 'tree/empty')).isDirectory());
  assert.equal(statSync(join(down, 'tree/a/b')).mode & 0o777, 0o750);
});

test('a put killed half-way resumes with --resume; the target name never holds a partial file', async () => {
  const src = makeFile(join(local, 'resume.bin'), randomBytes(200 * MIB));
  const target = join(home, 'resume.bin');
  const partial = join(home, '.resume.bin.shellwire-part');
  const size = (path: string) => (existsSync(path) ? statSync(path).size : -1);
  const first = startCli(['put', '--quiet', '--limit-rate', '60M', join(local, 'resume.bin'), remote('resume.bin')], { env: daemon.env, closeStdin: true });
  assert.ok(await waitFor(() => size(partial) >= 40 * MIB, 15_000), `partial reached ${size(partial)} bytes`);
  assert.equal(existsSync(target), false, 'the target must not exist before the upload completed');
  first.child.kill('SIGKILL');
  await first.exited;
  const kept = size(partial);
  assert.ok(kept > 0 && kept < src.length, `partial file kept: ${kept} bytes`);
  assert.equal(existsSync(target), false);

  // While the resumed upload runs, the target is either absent or complete.
  let sawIncomplete = false;
  const watch = setInterval(() => {
    const n = size(target);
    if (n !== -1 && n !== src.length) sawIncomplete = true;
  }, 2);
  // The daemon notices the killed client's connection at once; retry while it still holds the lock.
  let resumed = await cli(['put', '--resume', join(local, 'resume.bin'), remote('resume.bin')]);
  for (let i = 0; i < 20 && /in progress/.test(resumed.stderr); i++) resumed = await cli(['put', '--resume', join(local, 'resume.bin'), remote('resume.bin')]);
  clearInterval(watch);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .*resume\.bin at \d/);
  assert.equal(sawIncomplete, false);
  assert.equal(fileSha(target), sha256(src));
  assert.equal(existsSync(partial), false);
});

test('a get killed half-way resumes by default (no flag) into .NAME.shellwire-part', async () => {
  const data = makeFile(join(root, 'download.bin'), randomBytes(80 * MIB));
  const target = join(local, 'download.bin');
  const partial = join(local, '.download.bin.shellwire-part');
  const size = (path: string) => (existsSync(path) ? statSync(path).size : -1);
  const first = startCli(['get', '--quiet', '--limit-rate', '40M', remote(join(root, 'download.bin')), local], { env: daemon.env, closeStdin: true });
  assert.ok(await waitFor(() => size(partial) >= 20 * MIB, 15_000), `partial reached ${size(partial)} bytes`);
  first.child.kill('SIGKILL');
  await first.exited;
  assert.equal(existsSync(target), false);
  const kept = size(partial);
  const resumed = await cli(['get', remote(join(root, 'download.bin')), local]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming .*download\\.bin at`), `kept ${kept} bytes`);
  assert.equal(fileSha(target), sha256(data));
  assert.equal(existsSync(partial), false);
});

test('a stale partial file that does not match is not resumed: the transfer starts over', async () => {
  const data = makeFile(join(local, 'stale.bin'), randomBytes(2 * MIB + 5));
  writeFileSync(join(home, '.stale.bin.shellwire-part'), randomBytes(MIB));
  const result = await conn.put(join(local, 'stale.bin'), 'stale.bin', { resume: true });
  assert.equal(result.resumedFrom, 0);
  assert.equal(fileSha(join(home, 'stale.bin')), sha256(data));
  noPartials(home);
});

test('a partial file that already holds the whole file completes without sending data', async () => {
  const data = makeFile(join(local, 'whole.bin'), randomBytes(MIB + 1));
  writeFileSync(join(home, '.whole.bin.shellwire-part'), data);
  const result = await conn.put(join(local, 'whole.bin'), 'whole.bin', { resume: true });
  assert.equal(result.resumedFrom, data.length);
  assertSameFile(join(home, 'whole.bin'), join(local, 'whole.bin'));
  noPartials(home);
});

test('escapes are refused with SW_ERR_BAD_REQUEST naming the root, and logged', async () => {
  makeFile(join(local, 'payload'), Buffer.from('payload'));
  mkdirSync(join(outside, 'dir'));
  writeFileSync(join(outside, 'secret'), 'secret');
  symlinkSync(outside, join(home, 'out-link'));
  symlinkSync(join(outside, 'secret'), join(home, 'secret-link'));
  symlinkSync(join(outside, 'nothing-yet'), join(home, 'dangling'));
  const before = logs.lines.length;
  const attempts: Array<[string, string[]]> = [
    ['put ../', ['put', join(local, 'payload'), remote('../../escaped')]],
    ['put absolute', ['put', join(local, 'payload'), remote(join(outside, 'escaped'))]],
    ['put via symlinked dir', ['put', join(local, 'payload'), remote('out-link/escaped')]],
    ['put through dangling symlink dir', ['put', join(local, 'payload'), remote('dangling/escaped')]],
    ['get absolute', ['get', remote(join(outside, 'secret')), join(local, 'stolen1')]],
    ['get via file symlink', ['get', remote('secret-link'), join(local, 'stolen2')]],
    ['get ../', ['get', remote(`../../${outside.split('/').pop()}/secret`), join(local, 'stolen3')]],
    ['ls outside', ['ls', remote('/etc')]],
    ['ls via symlink', ['ls', remote('out-link')]],
    ['put -r into outside', ['put', '-r', join(local, 'tree'), remote(join(outside, 'dir'))]],
  ];
  for (const [what, args] of attempts) {
    const r = await cli(args);
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`outside the allowed file root ${root}|symbolic link to a missing target`), what);
    assert.match(r.stderr, /\[SW_ERR_BAD_REQUEST\]/, what);
  }
  assert.deepEqual(readdirSync(outside).sort(), ['dir', 'secret']);
  assert.deepEqual(readdirSync(join(outside, 'dir')), []);
  assert.equal(existsSync(join(local, 'stolen1')) || existsSync(join(local, 'stolen2')) || existsSync(join(local, 'stolen3')), false);
  const refusals = logs.lines.slice(before).filter((l) => l.msg === 'file access outside the allowed roots refused');
  assert.ok(refusals.length >= 8, `${refusals.length} refusals logged`);
  assert.equal(refusals[0]!.level, 40);

  const err = await conn.get(join(outside, 'secret'), join(local, 'x')).catch((e: unknown) => e);
  assert.ok(err instanceof FileTransferError);
  assert.equal(err.code, ErrorCode.BAD_REQUEST);
});

test('a file where a directory is expected gives a clear error', async () => {
  makeFile(join(home, 'plain'), Buffer.from('plain'));
  const r = await cli(['put', join(local, 'payload'), remote('plain/inside')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /plain.*not a directory/);
  const g = await cli(['get', remote('no/such/file'), local]);
  assert.equal(g.code, 1);
  assert.match(g.stderr, /no such file or directory \(ENOENT\)/);
});

test('a put into a remote directory that does not exist says how to create it (review 11 #12)', async () => {
  makeFile(join(local, 'payload-nodir'), Buffer.from('x'));
  const r = await cli(['put', join(local, 'payload-nodir'), remote('no-such-dir/x')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-dir\/x: no such file or directory \(ENOENT\)\. Create the remote directory first \(`shellwire exec HOST mkdir -p \S*no-such-dir`\), or copy a whole directory with `shellwire put -r`/);
  const g = await cli(['get', remote('no/such/file'), local]);
  assert.match(g.stderr, /Check the remote path/);
});

test('permission denied (immutable directory) leaves the old target intact', async (t) => {
  const dir = join(home, 'locked');
  mkdirSync(dir);
  writeFileSync(join(dir, 'target.txt'), 'old contents');
  if (spawnSync('chattr', ['+i', dir]).status !== 0) return t.skip('chattr +i is not available here');
  try {
    makeFile(join(local, 'new.txt'), Buffer.from('new contents'));
    const r = await cli(['put', join(local, 'new.txt'), remote('locked/target.txt')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Cannot create .*locked\/\.target\.txt\.shellwire-part: operation not permitted \(EPERM\)/);
    assert.equal(readFileSync(join(dir, 'target.txt'), 'utf8'), 'old contents');
  } finally {
    spawnSync('chattr', ['-i', dir]);
  }
});

test('a full disk gives a clear message, removes the partial file and leaves old targets intact', async (t) => {
  const small = join(home, 'small');
  mkdirSync(small);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]).status !== 0) return t.skip('cannot mount a tmpfs here');
  mounts.push(small);
  writeFileSync(join(small, 'a.bin'), 'old a');
  writeFileSync(join(small, 'b.bin'), 'old b');
  makeFile(join(local, 'huge.bin'), randomBytes(5 * MIB));
  // Too big up front: refused before any byte moves.
  const r = await cli(['put', join(local, 'huge.bin'), remote('small/a.bin')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Not enough space in .*small.*was not changed/);
  assert.equal(readFileSync(join(small, 'a.bin'), 'utf8'), 'old a');
  // Fits when it starts; the disk fills up (another writer) while it runs.
  makeFile(join(local, 'half.bin'), randomBytes(3 * MIB));
  const upload = conn.put(join(local, 'half.bin'), 'small/b.bin', { rateLimit: 4 * MIB });
  assert.ok(await waitFor(() => existsSync(join(small, '.b.bin.shellwire-part')), 5_000));
  const filler = openSync(join(small, 'filler'), 'w');
  try {
    for (;;) writeSync(filler, Buffer.alloc(64 * 1024));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(filler);
  }
  const error = await upload.then(() => null, (e: unknown) => e as FileTransferError);
  assert.ok(error instanceof FileTransferError, 'the upload must fail');
  assert.equal(error.errno, 'ENOSPC');
  assert.match(error.message, /no space left on the device \(ENOSPC\)\. The partial file was removed to free the space; .*b\.bin was not changed/);
  assert.equal(readFileSync(join(small, 'b.bin'), 'utf8'), 'old b');
  noPartials(small);
});

test('ls shows a long listing; ls --json gives name, type, size, mode and mtime', async () => {
  const dir = join(home, 'listing');
  mkdirSync(dir);
  makeFile(join(dir, 'f.txt'), Buffer.from('12345'), 0o640, 1_700_000_000);
  mkdirSync(join(dir, 'sub'));
  chmodSync(join(dir, 'sub'), 0o755);
  symlinkSync('f.txt', join(dir, 'ln'));
  const json = await cli(['ls', '--json', remote('listing')]);
  assert.equal(json.code, 0, json.stderr);
  const entries = JSON.parse(json.stdout.toString('utf8')) as Array<Record<string, unknown>>;
  assert.deepEqual(entries.map((e) => e.name), ['f.txt', 'ln', 'sub']);
  const f = entries[0]!;
  assert.deepEqual(
    { name: f.name, type: f.type, size: f.size, mode: f.mode, mtime: f.mtime, mtimeMs: f.mtimeMs },
    { name: 'f.txt', type: 'file', size: 5, mode: 0o640, mtime: new Date(1_700_000_000_000).toISOString(), mtimeMs: 1_700_000_000_000 },
  );
  assert.equal(entries[1]!.type, 'symlink');
  assert.equal(entries[1]!.target, 'f.txt');
  assert.equal(entries[2]!.type, 'dir');

  const long = await cli(['ls', remote('listing')]);
  assert.equal(long.code, 0, long.stderr);
  const lines = long.stdout.toString('utf8').trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^-rw-r----- +5 \d{4}-\d\d-\d\d \d\d:\d\d f\.txt$/);
  assert.match(lines[1]!, /^lrwxrwxrwx +\d+ .* ln -> f\.txt$/);
  assert.match(lines[2]!, /^drwxr-xr-x +\d+ .* sub$/);
  const missing = await cli(['ls', remote('listing/none')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ENOENT/);
});

test('library: progress, list, a second upload to the same target is refused while one runs, abort keeps the partial', async () => {
  const data = makeFile(join(local, 'lib.bin'), randomBytes(24 * MIB));
  const seen: number[] = [];
  const result = await conn.put(join(local, 'lib.bin'), 'lib.bin', { onProgress: (p) => seen.push(p.bytes) });
  assert.equal(result.sha256, sha256(data));
  assert.equal(seen[0], 0);
  assert.equal(seen[seen.length - 1], data.length);
  assert.ok(seen.length > 4);
  assert.ok((await conn.list('')).some((e) => e.name === 'lib.bin' && e.size === data.length));

  const controller = new AbortController();
  const slow = conn.put(join(local, 'lib.bin'), 'lib2.bin', { rateLimit: 8 * MIB, signal: controller.signal });
  await waitFor(() => existsSync(join(home, '.lib2.bin.shellwire-part')), 5_000);
  const second = await conn.put(join(local, 'lib.bin'), 'lib2.bin').catch((e: unknown) => e as FileTransferError);
  assert.ok(second instanceof FileTransferError);
  assert.match(second.message, /Another upload to .*lib2\.bin is in progress/);
  controller.abort();
  const canceled = await slow.catch((e: unknown) => e as FileTransferError);
  assert.ok(canceled instanceof FileTransferError);
  assert.equal(canceled.code, ErrorCode.COMMAND_CANCELED);
  assert.equal(existsSync(join(home, 'lib2.bin')), false);
  assert.ok(existsSync(join(home, '.lib2.bin.shellwire-part')));
  const resumed = await conn.put(join(local, 'lib.bin'), 'lib2.bin', { resume: true });
  assert.ok(resumed.resumedFrom > 0);
  assert.equal(fileSha(join(home, 'lib2.bin')), sha256(data));
});

test('serve --file-root: the daemon token may use that directory and nothing else', async () => {
  const serveHome = tempDir('shellwire-files-serve-');
  const allowed = tempDir('shellwire-files-allowed-');
  const serve = await startServeCli(serveHome, ['--file-root', allowed]);
  try {
    makeFile(join(local, 'flag.txt'), Buffer.from('flag'));
    const env = cleanEnv({ SHELLWIRE_HOME: serveHome });
    const flags = ['--token-file', serve.tokenFile, '--accept-new-host'];
    const ok = await runCli(['put', ...flags, join(local, 'flag.txt'), `${serve.address}:${allowed}/`], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(join(allowed, 'flag.txt'), 'utf8'), 'flag');
    const refused = await runCli(['put', ...flags, join(local, 'flag.txt'), `${serve.address}:${serveHome}/x`], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`outside the allowed file root ${allowed}`));
    await waitFor(() => serve.stderr().includes('file access outside the allowed roots refused'), 3_000);
    assert.match(serve.stderr(), /"msg":"file access outside the allowed roots refused"/);
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exited;
    removeDir(serveHome);
    removeDir(allowed);
  }
});

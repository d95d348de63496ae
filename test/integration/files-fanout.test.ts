/**
 * put and get to many hosts at once (issue 13 item 5, direct mode): `put LOCAL... TARGETS:REMOTE`
 * and `get TARGETS:REMOTE LOCALDIR` with run's fan-out, summary and exit status.
 *
 * Real daemons on 127.0.0.40–48, each in a mount namespace of its own with a private tmpfs at
 * one path (fleet-helpers.ts `privateTmpfs`), so one remote path is a different place on each
 * host, as on real machines; the test reads each host's copy through /proc/PID/root. The real
 * CLI as a child process; non-UTF-8 names go through bash (Node's spawn cannot carry them).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, runCli, runCliRaw, waitFor, type CliResult } from '../helpers/daemon.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';
import { startFleet, type FleetDaemon, type TestFleet } from './fleet-helpers.js';
import { hostFolder } from '../../src/cli/files-fanout.js';
import { parseTargetsSpec } from '../../src/cli/files-targets.js';

const MIB = 1024 * 1024;
/** `café.bin` in Latin-1: 0xE9 alone is not UTF-8. */
const LATIN1 = Buffer.from('caf\xe9.bin', 'latin1');
let fleet: TestFleet;
let local: string;

before(async () => {
  fleet = await startFleet(
    [
      ...['web01', 'web02', 'web03', 'web04', 'web05'].map((name) => ({ name, role: 'web', privateTmpfs: 'rw' as const })),
      { name: 'ro01', role: 'ro', privateTmpfs: 'ro' },
      { name: 'doomed01', role: 'doomed', privateTmpfs: 'rw' },
      { name: 'slow01', role: 'slow', privateTmpfs: 'rw' },
    ],
    40,
  );
  local = tempDir('shellwire-fanout-local-');
});

after(async () => {
  await fleet?.stop();
  if (local) removeDir(local);
});

const daemon = (name: string): FleetDaemon => fleet.daemons.find((d) => d.name === name)!;
/** Where `name`'s private tmpfs is, seen from here. */
const remote = (name: string, ...parts: Array<string | Buffer>): Buffer =>
  Buffer.concat([Buffer.from(`/proc/${daemon(name).child.pid}/root${fleet.privateDir}`), ...parts.map((p) => Buffer.concat([Buffer.from('/'), Buffer.from(p)]))]);
/** `shellwire put|get --inventory INV ARGS...` */
const cli = ([command, ...args]: string[], timeoutMs = 30_000) => runCli([command!, '--inventory', fleet.inventory, ...args], { env: fleet.env, timeoutMs });

/** The CLI with words that are bytes (through bash: spawn would encode them as UTF-8). */
function cliRaw(words: Array<string | Buffer>, timeoutMs = 30_000): Promise<CliResult> {
  return runCliRaw(words, { env: fleet.env, scratchDir: local, timeoutMs });
}

/** Every file under `dir` (names as bytes, latin1-keyed) with its bytes; directories as null. */
function tree(dir: Buffer, prefix = ''): Map<string, Buffer | null> {
  const out = new Map<string, Buffer | null>();
  for (const name of readdirSync(dir, { encoding: 'buffer' })) {
    const path = Buffer.concat([dir, Buffer.from('/'), name]);
    const key = `${prefix}${name.toString('latin1')}`;
    if (lstatSync(path).isDirectory()) {
      out.set(key, null);
      for (const [k, v] of tree(path, `${key}/`)) out.set(k, v);
    } else out.set(key, readFileSync(path));
  }
  return out;
}

test('TARGETS:PATH vs HOST:PATH: a target expression fans out, anything else is one host', () => {
  assert.deepEqual(parseTargetsSpec('@web:/srv/'), { targets: '@web', path: '/srv/' });
  assert.deepEqual(parseTargetsSpec('web[01-05]:rel/x'), { targets: 'web[01-05]', path: 'rel/x' });
  assert.deepEqual(parseTargetsSpec('env=staging,!web03:/tmp'), { targets: 'env=staging,!web03', path: '/tmp' });
  assert.deepEqual(parseTargetsSpec('10.0.0.5:50007,10.0.0.6:50007:/tmp'), { targets: '10.0.0.5:50007,10.0.0.6:50007', path: '/tmp' });
  assert.deepEqual(parseTargetsSpec('@web:123'), { targets: '@web', path: '123' }, 'as scp: HOST:123 is the path 123');
  for (const one of ['web01:/tmp', 'alice@web01:2222:/tmp', 'notininventory:/x', '[::1]:50007:/tmp', '/local/path', 'file.txt']) {
    assert.equal(parseTargetsSpec(one), null, one);
  }
});

test('a host name that is not one path component cannot be a folder under LOCALDIR', () => {
  assert.equal(hostFolder('/out', 'web01'), '/out/web01');
  for (const bad of ['..', '.', '', 'a/b', '../x', 'x\0y']) assert.throws(() => hostFolder('/out', bad), /cannot be a folder name/, JSON.stringify(bad));
});

test('put to 5 hosts: every host has the exact bytes under the non-UTF-8 name; one ok line; exit 0', async () => {
  const dir = join(local, 'put5');
  mkdirSync(dir);
  const bytes = Buffer.concat([randomBytes(300_000), Buffer.from([0, 0xff, 0xe9, 0x0a, 0x0d])]);
  const file = Buffer.concat([Buffer.from(`${dir}/`), LATIN1]);
  writeFileSync(file, bytes);
  const r = await cliRaw(['put', '--inventory', fleet.inventory, file, `@all-web:${fleet.privateDir}/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'web[01-05] (5): ok, 1 file, SHA-256 verified\n');
  assert.match(r.stderr, /^shellwire: 5\/5 ok, \d+\.\d\d s\n$/);
  for (const name of ['web01', 'web02', 'web03', 'web04', 'web05']) {
    assert.ok(readFileSync(remote(name, LATIN1)).equals(bytes), `${name} has the exact bytes`);
    // Renamed into place: no partial file is left beside it.
    assert.deepEqual(readdirSync(remote(name), { encoding: 'buffer' }).map((n) => n.toString('latin1')).filter((n) => n.includes('shellwire-part')), []);
  }
  // The other hosts were not targeted: their private folders stay empty.
  assert.deepEqual(readdirSync(remote('doomed01')), []);
});

test('put -r a tree to a range: the same tree (sub-folders, empty file, non-UTF-8 name) on every host', async () => {
  const src = join(local, 'site');
  mkdirSync(join(src, 'css', 'deep'), { recursive: true });
  writeFileSync(join(src, 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(join(src, 'css', 'deep', 'empty'), '');
  writeFileSync(Buffer.concat([Buffer.from(`${src}/css/`), LATIN1]), randomBytes(70_000));
  mkdirSync(remote('web01', 'r'));
  mkdirSync(remote('web02', 'r'));
  mkdirSync(remote('web03', 'r'));
  const r = await cli(['put', '-r', src, `web[01-03]:${fleet.privateDir}/r/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /^web\[01-03\] \(3\): ok, 3 files, \d+ dirs?, SHA-256 verified\n$/);
  const expected = tree(Buffer.from(src));
  for (const name of ['web01', 'web02', 'web03']) assert.deepEqual(tree(remote(name, 'r', 'site')), expected, name);
});

test('get from 3 hosts: one sub-folder per host under LOCALDIR (created), each with that host\'s file', async () => {
  for (const name of ['web01', 'web02', 'web03']) {
    writeFileSync(remote(name, 'who'), `I am ${name}\n`);
    mkdirSync(remote(name, 'logs'));
    writeFileSync(remote(name, 'logs', 'a.log'), Buffer.concat([Buffer.from(name), randomBytes(1000)]));
  }
  const out = join(local, 'got', 'nested');
  const r = await cli(['get', '-r', `web01,web02,web03:${fleet.privateDir}/who`, `web01,web02,web03:${fleet.privateDir}/logs`, out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString(), /^web\[01-03\] \(3\): ok, 2 files, 1 dir, SHA-256 verified\n$/);
  assert.deepEqual(readdirSync(out).sort(), ['web01', 'web02', 'web03']);
  for (const name of ['web01', 'web02', 'web03']) {
    assert.equal(readFileSync(join(out, name, 'who'), 'utf8'), `I am ${name}\n`);
    assert.ok(readFileSync(join(out, name, 'logs', 'a.log')).equals(readFileSync(remote(name, 'logs', 'a.log'))), name);
  }
});

test('get to many: a host folder that is a symbolic link is refused for that host; the others complete', async () => {
  const out = join(local, 'linked');
  mkdirSync(out);
  const elsewhere = join(local, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(out, 'web02'));
  const r = await cli(['get', `web0[1-2]:${fleet.privateDir}/who`, out]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout.toString(), /^web01 \(1\): ok, 1 file, SHA-256 verified\nweb02: error: .*web02 is a symbolic link; refusing to write through it/);
  assert.deepEqual(readdirSync(elsewhere), []);
  assert.equal(readFileSync(join(out, 'web01', 'who'), 'utf8'), 'I am web01\n');
});

test('one host cannot write (read-only target): the others complete, the failure is named, exit 1', async () => {
  const file = join(local, 'conf.txt');
  writeFileSync(file, 'setting=1\n');
  const r = await cli(['put', file, `web04,ro01,web05:${fleet.privateDir}/`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.toString().split('\n');
  assert.equal(lines[0], 'web[04-05] (2): ok, 1 file, SHA-256 verified');
  assert.match(lines[1]!, /^ro01: error: .*read-only/i);
  assert.match(r.stderr, /^shellwire: 2\/3 ok, 1 failed \(ro01\), \d+\.\d\d s\n$/);
  for (const name of ['web04', 'web05']) assert.equal(readFileSync(remote(name, 'conf.txt'), 'utf8'), 'setting=1\n');
});

test('--json: one result per host with what it copied, and the summary', async () => {
  const file = join(local, 'j.txt');
  writeFileSync(file, 'json\n');
  const r = await cli(['put', '--json', file, `@all-web,ro01,!web05:${fleet.privateDir}/`]);
  assert.equal(r.code, 1, r.stderr);
  const records = r.stdout.toString().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const results = records.filter((x) => x.type === 'result');
  assert.deepEqual(results.map((x) => [x.host, x.status]).sort(), [['ro01', 'error'], ['web01', 'ok'], ['web02', 'ok'], ['web03', 'ok'], ['web04', 'ok']]);
  for (const x of results.filter((x) => x.status === 'ok')) assert.deepEqual(x.transfer, { files: 1, directories: 0, bytes: 5, failures: 0 });
  assert.match(String((results.find((x) => x.host === 'ro01')!.error as { message: string }).message), /read-only/i);
  const summary = records.at(-1)!;
  assert.equal(summary.type, 'summary');
  assert.equal(summary.total, 5);
  assert.equal(summary.ok, 4);
  assert.equal(summary.success, false);
});

test('--timeout: a host whose copy takes longer is stopped and reported timed out; exit 1', async () => {
  const file = join(local, 'slow.bin');
  writeFileSync(file, randomBytes(4 * MIB));
  const r = await cli(['put', '--timeout', '700ms', '--limit-rate', '512K', file, `@all-slow:${fleet.privateDir}/`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout.toString(), /^slow01: timed out after 0\.7 s; the transfer was stopped/);
  assert.match(r.stderr, /1 timed out \(slow01\)/);
  assert.equal(existsSync(remote('slow01', 'slow.bin')), false, 'the target is never replaced by a partial copy');
});

test('Ctrl-C stops every host\'s copy: partial files kept, targets untouched, exit 130; run again resumes', async () => {
  const file = join(local, 'int.bin');
  const bytes = randomBytes(3 * MIB);
  writeFileSync(file, bytes);
  const args = [CLI, 'put', '--inventory', fleet.inventory, '--limit-rate', '1M', file, `web0[1-2]:${fleet.privateDir}/`];
  const child = spawn(process.execPath, args, { env: fleet.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const partials = ['web01', 'web02'].map((name) => remote(name, '.int.bin.shellwire-part'));
  assert.ok(await waitFor(() => partials.every((p) => existsSync(p) && lstatSync(p).size > 0), 10_000), 'both copies started');
  child.kill('SIGINT');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 130, stderr);
  assert.match(stderr, /2 canceled/);
  for (const name of ['web01', 'web02']) assert.equal(existsSync(remote(name, 'int.bin')), false, `${name}: no half file in place`);
  for (const p of partials) assert.ok(existsSync(p), 'the partial file is kept for resume');
  const again = await cli(['put', file, `web0[1-2]:${fleet.privateDir}/`]);
  assert.equal(again.code, 0, again.stderr);
  for (const name of ['web01', 'web02']) assert.ok(readFileSync(remote(name, 'int.bin')).equals(bytes), name);
});

test('--parallel takes a whole number of at least 1', async () => {
  writeFileSync(join(local, 'p.txt'), 'p');
  const r = await cli(['put', '--parallel', '0', join(local, 'p.txt'), `@all-web:${fleet.privateDir}/`]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--parallel takes a whole number ≥ 1, got "0"/);
});

test('one host\'s daemon killed mid-transfer: the others complete verified, the lost host is named, exit 1', async () => {
  const file = join(local, 'big.bin');
  const bytes = randomBytes(6 * MIB);
  writeFileSync(file, bytes);
  const doomed = daemon('doomed01');
  const partial = remote('doomed01', '.big.bin.shellwire-part');
  const run = cli(['put', '--limit-rate', '3M', file, `web0[4-5],doomed01:${fleet.privateDir}/`], 60_000);
  assert.ok(await waitFor(() => existsSync(partial) && lstatSync(partial).size > 0, 10_000), 'the transfer to doomed01 started');
  doomed.child.kill('SIGKILL');
  const r = await run;
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.toString().split('\n');
  assert.equal(lines[0], 'web[04-05] (2): ok, 1 file, SHA-256 verified');
  assert.match(lines[1]!, /^doomed01: lost: .*The copy did not finish: the same command again resumes from the partial files\.$/);
  assert.match(r.stderr, /^shellwire: 2\/3 ok, 1 unreachable \(doomed01\), \d+\.\d\d s\n$/);
  for (const name of ['web04', 'web05']) assert.ok(readFileSync(remote(name, 'big.bin')).equals(bytes), name);
});

test('one host stays one host: HOST:PATH for an inventory name works as before; fan-out flags are refused for it', async () => {
  const file = join(local, 'one.txt');
  writeFileSync(file, 'one\n');
  const r = await cli(['put', '--quiet', file, `web01:${fleet.privateDir}/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), '', 'no fan-out report for one host');
  assert.equal(readFileSync(remote('web01', 'one.txt'), 'utf8'), 'one\n');
  const json = await cli(['put', '--json', file, `web01:${fleet.privateDir}/`]);
  assert.equal(json.code, 2);
  assert.match(json.stderr, /--json goes with a target expression .*"web01:.*" names one host/);
  const bare = await cli(['put', file, '@all-web']);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /"@all-web" names hosts but no path; write TARGETS:PATH, e\.g\. @all-web:\/tmp\//);
  const mixed = await cli(['get', `web01:${fleet.privateDir}/one.txt`, `@all-web:${fleet.privateDir}/one.txt`, local]);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /every source of one get comes from the same host or TARGETS/);
});

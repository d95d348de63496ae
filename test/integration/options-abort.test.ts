/**
 * The library's front door (review 11, #2 #3 #12): every public numeric, boolean and enum
 * option is checked before anything is sent or dialled, and fails with `SW_ERR_BAD_REQUEST`
 * naming it, never with an uncaught RangeError or a promise that never settles; an
 * `AbortSignal` that is already aborted starts nothing (no command runs, no file is
 * written, no TCP connection is made); and a download into a missing local directory
 * names the path the caller gave. A real daemon on loopback, real files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import type { Connection } from '../../src/client/connection.js';
import { ErrorCode } from '../../src/errors.js';
import { runOn } from '../../src/fleet/run-on.js';
import { ConnectionPool } from '../../src/fleet/pool.js';
import { startDaemonWithRoot, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';

let d: TestDaemon;
let conn: Connection;
let root: string;
let home: string;
let local: string;

before(async () => {
  root = tempDir('shellwire-opts-root-');
  home = join(root, 'home');
  mkdirSync(home);
  local = tempDir('shellwire-opts-local-');
  d = await startDaemonWithRoot(root, home);
  conn = await d.connect();
});

after(async () => {
  await conn?.close();
  await d?.stop();
  for (const dir of [root, local]) if (dir) removeDir(dir);
});

/** Settles within a few seconds (a promise that never settles is the bug, not a slow test). */
function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: never settled`)), 5_000);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

const badRequest = (option: string) => ({ code: ErrorCode.BAD_REQUEST, message: new RegExp(`\\b${option}\\b`) });
const any = (value: unknown) => value as never;

test('exec maxBuffer: a wrong type or range is SW_ERR_BAD_REQUEST, at once, naming maxBuffer', async () => {
  for (const value of ['abc', -1, '1000', null, Number.NaN, 1.5, {}]) {
    await assert.rejects(settled(conn.exec('head -c 10 /dev/zero', { maxBuffer: any(value) }), `maxBuffer ${String(value)}`), badRequest('maxBuffer'), `maxBuffer: ${String(value)}`);
  }
  const session = await conn.shell();
  try {
    await assert.rejects(settled(session.exec('true', { maxBuffer: any('abc') }), 'session maxBuffer'), badRequest('maxBuffer'));
  } finally {
    session.close();
  }
  // 0 keeps no byte (as Node's child_process): silence is fine, any output overflows.
  assert.equal((await conn.exec('true', { maxBuffer: 0 })).exitCode, 0);
  await assert.rejects(conn.exec('echo x', { maxBuffer: 0 }), { code: ErrorCode.MAX_BUFFER });
  // Infinity: no limit.
  assert.equal((await conn.exec('head -c 1000 /dev/zero', { maxBuffer: Infinity })).stdoutBytes.length, 1000);
});

test('exec/spawn: reject, stdin and signal of the wrong type are refused before anything is sent', async () => {
  await assert.rejects(settled(conn.exec('true', { reject: any('no') }), 'reject'), badRequest('reject'));
  await assert.rejects(settled(conn.exec('cat', { stdin: any(42) }), 'stdin'), badRequest('stdin'));
  await assert.rejects(settled(conn.exec('true', { signal: any({ aborted: true }) }), 'signal'), badRequest('signal'));
  assert.throws(() => conn.spawn('true', { signal: any('x') }), badRequest('signal'));
  assert.equal(conn.channelCount, 0, 'no channel was opened for a refused option');
});

test('connect options: window, maxPacket, keepaliveMs, connectTimeoutMs, strings, callbacks, signal', async () => {
  const cases: Array<[string, unknown]> = [
    ['window', 'abc'], ['window', 0], ['window', 2 ** 32], ['maxPacket', 0], ['maxPacket', 2 * 1024 * 1024], ['maxPacket', '65536'],
    ['keepaliveMs', -1], ['keepaliveMs', 1.5], ['connectTimeoutMs', 0], ['connectTimeoutMs', 'x'], ['connectTimeoutMs', 2 ** 31],
    ['token', 42], ['fingerprint', {}], ['debug', 'yes'], ['askPassphrase', true], ['signal', 'x'], ['hostKeyPolicy', 'accept_new'],
  ];
  for (const [option, value] of cases) {
    await assert.rejects(settled(d.connect({ [option]: value } as never), `${option}=${String(value)}`), badRequest(option), `${option}: ${String(value)}`);
  }
});

test('file options: rateLimit, resume, intoDirectory, recursive, onProgress, mode, mtimeMs, signal', async () => {
  const file = join(local, 'opt-src.txt');
  writeFileSync(file, 'x');
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['rateLimit', () => conn.put(file, 'opt-a.txt', { rateLimit: any('abc') })],
    ['rateLimit', () => conn.get('opt-a.txt', join(local, 'opt-a'), { rateLimit: -5 })],
    ['resume', () => conn.get('opt-a.txt', join(local, 'opt-a'), { resume: any('yes') })],
    ['intoDirectory', () => conn.put(file, 'opt-a.txt', { intoDirectory: any(1) })],
    ['onProgress', () => conn.put(file, 'opt-a.txt', { onProgress: any('log') })],
    ['recursive', () => conn.putRecursive(file, 'opt-tree', { recursive: any('true') })],
    ['rateLimit', () => conn.getRecursive('opt-tree', local, { rateLimit: Number.NaN })],
    ['mode', () => conn.mkdir('opt-dir', { mode: any('755') })],
    ['mode', () => conn.mkdir('opt-dir', { mode: 0o10000 })],
    ['mtimeMs', () => conn.mkdir('opt-dir', { mtimeMs: Number.POSITIVE_INFINITY })],
    ['signal', () => conn.list('.', { signal: any({}) })],
    ['signal', () => conn.stat('.', { signal: any(true) })],
  ];
  for (const [option, call] of calls) await assert.rejects(settled(call(), option), badRequest(option), option);
  assert.equal(existsSync(join(home, 'opt-a.txt')), false);
  assert.equal(existsSync(join(home, 'opt-dir')), false);
});

test('runOn and ConnectionPool options throw synchronously with SW_ERR_BAD_REQUEST', () => {
  const host = { name: 'one', address: '127.0.0.1', port: d.port, labels: {}, groups: [] };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['fanout', { fanout: 0 }], ['fanout', { fanout: '8' }], ['batchSize', { batchSize: -1 }], ['batchSize', { batchSize: 2.5 }],
    ['maxFailures', { maxFailures: 0 }], ['maxBuffer', { maxBuffer: 'abc' }], ['maxOutput', { maxOutput: -1 }],
    ['timeoutMs', { timeoutMs: -1 }], ['connectRate', { connectRate: -1 }], ['connectRate', { connectRate: 'fast' }],
    ['queueHighWaterMark', { queueHighWaterMark: 0 }], ['failFast', { failFast: 'yes' }], ['canary', { canary: 1 }],
    ['connectTimeoutMs', { connectTimeoutMs: -5 }], ['window', { connect: { window: 'abc' } }], ['keepaliveMs', { connect: { keepaliveMs: -1 } }],
    ['env', { env: { 'BAD NAME': 'x' } }], ['tokenFile', { tokenFile: '/etc/shellwire/token' }], ['hostKeyPolicy', { hostKeyPolicy: 'accept-new' }], ['signal', { signal: 'x' }], ['pool', { pool: {} }],
  ];
  for (const [option, options] of cases) {
    assert.throws(() => runOn([host], 'true', options as never), badRequest(option), option);
  }
  assert.throws(() => new ConnectionPool({ connect: { maxPacket: 0 } }), badRequest('maxPacket'));
  assert.throws(() => new ConnectionPool({ connectTimeoutMs: Number.NaN }), badRequest('connectTimeoutMs'));
});

/** A signal aborted before the call. */
function aborted(): AbortSignal {
  const controller = new AbortController();
  controller.abort();
  return controller.signal;
}

test('an already-aborted signal never starts the command: exec, spawn, session exec (20 tries each)', async () => {
  const session = await conn.shell();
  try {
    for (let i = 0; i < 20; i++) {
      const marker = join(home, `ran-exec-${i}`);
      await assert.rejects(conn.exec(`echo ran > ${marker}`, { signal: aborted() }), { name: 'CommandError', code: ErrorCode.COMMAND_CANCELED, canceled: true });
      const quiet = await conn.exec(`echo ran > ${marker}-quiet`, { signal: aborted(), reject: false });
      assert.equal(quiet.canceled, true);
      assert.equal(quiet.exitCode, null);
      assert.throws(() => conn.spawn(`echo ran > ${marker}-spawn`, { signal: aborted() }), { code: ErrorCode.COMMAND_CANCELED });
      await assert.rejects(session.exec(`echo ran > ${marker}-session`, { signal: aborted() }), { code: ErrorCode.COMMAND_CANCELED });
    }
    // Give a command that did start the time to write its file.
    assert.equal((await conn.exec('sleep 0.2; echo alive')).stdout, 'alive\n');
    assert.deepEqual(readdirSync(home).filter((n) => n.startsWith('ran-')), []);
    assert.equal(conn.channelCount, 1, 'only the session channel is open');
  } finally {
    session.close();
  }
  // An abort in flight still cancels a spawned command.
  const controller = new AbortController();
  const proc = conn.spawn('sleep 30', { signal: controller.signal });
  await proc.started;
  controller.abort();
  assert.equal((await proc.exited).canceled, true);
});

test('an already-aborted signal never starts a transfer: put, get, trees, mkdir, list, stat (20 tries)', async () => {
  const file = join(local, 'abort-src.txt');
  writeFileSync(file, 'payload');
  const tree = join(local, 'abort-tree');
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, 'f'), 'f');
  writeFileSync(join(home, 'abort-remote.txt'), 'remote');
  const canceled = { code: ErrorCode.COMMAND_CANCELED, name: 'FileTransferError' };
  for (let i = 0; i < 20; i++) {
    await assert.rejects(conn.put(file, `abort-put-${i}.txt`, { signal: aborted() }), canceled);
    await assert.rejects(conn.get('abort-remote.txt', join(local, `abort-get-${i}.txt`), { signal: aborted() }), canceled);
    await assert.rejects(conn.putRecursive(tree, `abort-puttree-${i}`, { recursive: true, signal: aborted() }), canceled);
    await assert.rejects(conn.getRecursive('abort-remote.txt', join(local, `abort-gettree-${i}.txt`), { signal: aborted() }), canceled);
    await assert.rejects(conn.mkdir(`abort-mkdir-${i}`, { signal: aborted() }), canceled);
    await assert.rejects(conn.list('.', { signal: aborted() }), canceled);
    await assert.rejects(conn.stat('abort-remote.txt', { signal: aborted() }), canceled);
  }
  await conn.exec('sleep 0.2');
  assert.deepEqual(readdirSync(home).filter((n) => n.includes('abort-') && n !== 'abort-remote.txt'), []);
  assert.deepEqual(readdirSync(local).filter((n) => n.startsWith('abort-get') || n.includes('shellwire-part')), []);
  assert.equal(conn.channelCount, 0);
});

test('an already-aborted signal never dials: connect makes no TCP connection, writes nothing to a transport', async () => {
  let accepted = 0;
  const sockets: Socket[] = [];
  const server = createTcpServer((socket) => {
    accepted++;
    sockets.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  try {
    for (let i = 0; i < 20; i++) {
      await assert.rejects(connect(`127.0.0.1:${port}`, { token: 't', fingerprint: d.fingerprint, signal: aborted() }), { code: ErrorCode.CONNECT_FAILED, message: /aborted/ });
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(accepted, 0);
    // Over a transport: not even a TLS ClientHello goes out, and the transport is released.
    let written = 0;
    const transport = new Duplex({ read() {}, write(chunk: Buffer, _encoding, callback) { written += chunk.length; callback(); } });
    await assert.rejects(connect('relayed.example', { transport, token: 't', fingerprint: d.fingerprint, signal: aborted() }), { code: ErrorCode.CONNECT_FAILED });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(written, 0);
    assert.equal(transport.destroyed, true);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
});

test('runOn with an already-aborted signal runs nothing: every host is canceled', async () => {
  const host = { name: 'one', address: '127.0.0.1', port: d.port, labels: {}, groups: [] };
  for (let i = 0; i < 5; i++) {
    const marker = join(home, `ran-fleet-${i}`);
    const summary = await runOn([host], `echo ran > ${marker}`, { connect: { token: d.token, fingerprint: d.fingerprint }, signal: aborted() }).result();
    assert.equal(summary.canceled, 1);
    assert.equal(summary.results[0]!.status, 'canceled');
  }
  await conn.exec('sleep 0.2');
  assert.deepEqual(readdirSync(home).filter((n) => n.startsWith('ran-fleet')), []);
});

test('get into a missing local directory names the target the caller gave and what to do', async () => {
  writeFileSync(join(home, 'y.txt'), 'y');
  const missing = join(local, 'no-such-dir');
  const target = join(missing, 'y.txt');
  const err = await conn.get('y.txt', target).then(() => null, (e: unknown) => e as { code: string; message: string; path: string; errno: string });
  assert.ok(err, 'the get failed');
  assert.equal(err.code, ErrorCode.LOCAL_IO);
  assert.equal(err.errno, 'ENOENT');
  assert.equal(err.path, target);
  assert.match(err.message, new RegExp(`Cannot write ${target}: the directory ${missing} does not exist\\. Create it first`));
  assert.doesNotMatch(err.message, /shellwire-part/);
  // The same through getRecursive (a single file into a path whose directory is missing).
  const tree = await conn.getRecursive('y.txt', target);
  assert.equal(tree.failures.length, 1);
  assert.match(tree.failures[0]!.error.message, new RegExp(`Cannot write ${target}: the directory ${missing} does not exist`));
  assert.doesNotMatch(tree.failures[0]!.error.message, /shellwire-part/);
});

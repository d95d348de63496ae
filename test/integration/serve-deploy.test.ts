/**
 * The real `shellwire serve` as an operator deploys it: --listen as people write addresses,
 * usage errors instead of library internals, ISO log times, a clean shutdown log, one
 * daemon per state dir, and units in every duration and size flag of the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { connect } from '../../src/client/connect.js';
import { startDaemon, runCli, waitFor } from '../helpers/daemon.js';
import { RawClient, captureLogger } from '../helpers/raw-client.js';
import { FrameType } from '../../src/protocol/frame.js';
import { scratch, startCli, cleanEnv, freePort, type CliChild } from '../helpers/fixtures.js';

const { home, children } = scratch('shellwire-deploy-');

/** `serve` with its own SHELLWIRE_HOME and an empty --config (root's /etc file must not leak in). */
function serve(args: string[], dir = home()): CliChild {
  const config = join(dir, 'empty-serve.yaml');
  if (!existsSync(config)) writeFileSync(config, '');
  const child = startCli(['serve', '--config', config, ...args], { env: cleanEnv({ SHELLWIRE_HOME: dir }), closeStdin: true, timeoutMs: 30_000 });
  children.push(child);
  return child;
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

test('serve --listen: a bare port, :PORT, 0.0.0.0:PORT and [::]:PORT listen where users expect', { timeout: 30_000 }, async () => {
  const cases: Array<[(port: number) => string, RegExp]> = [
    [(p) => String(p), /^127\.0\.0\.1:(\d+)$/],
    [(p) => `:${p}`, /^(?:\[::\]|0\.0\.0\.0):(\d+)$/],
    [(p) => `0.0.0.0:${p}`, /^0\.0\.0\.0:(\d+)$/],
    [(p) => `[::]:${p}`, /^\[::\]:(\d+)$/],
  ];
  for (const [listen, expected] of cases) {
    const port = await freePort();
    const daemon = serve(['--listen', listen(port)]);
    const [, address] = await daemon.waitForStdout(/listening on (\S+)\n/);
    assert.match(address!, expected, `--listen ${listen(port)}`);
    assert.equal(Number(expected.exec(address!)![1]), port, `--listen ${listen(port)} listens on another port`);
    assert.ok(await tcpOpen('127.0.0.1', port), `--listen ${listen(port)}: nothing on 127.0.0.1:${port}`);
    daemon.child.kill('SIGTERM');
    assert.equal((await daemon.exited).code, 0, daemon.stderr());
  }
});

test('serve --listen with a bad address, --log-level verbose, SHELLWIRE_LOG_LEVEL=verbose: usage errors that list the forms', { timeout: 30_000 }, async () => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--listen', '1.2.3.4:99999'], {}, /--listen takes HOST:PORT, \[IPv6\]:PORT, PORT .*port "99999" must be a number from 0 to 65535/],
    [['--listen', 'alice@0.0.0.0:1'], {}, /--listen takes HOST:PORT.*no user@/],
    [['--log-level', 'verbose'], {}, /--log-level takes silent, fatal, error, warn, info, debug or trace, got "verbose"/],
    [[], { SHELLWIRE_LOG_LEVEL: 'verbose' }, /SHELLWIRE_LOG_LEVEL takes silent, fatal, error, warn, info, debug or trace, got "verbose"/],
    [['--kill-grace', '2x'], {}, /--kill-grace takes a duration such as 1\.5 \(seconds\), 500ms, 30s, 2m, 1h, 1d or 1h30m, got "2x"/],
    [['--shutdown-grace', '-1'], {}, /--shutdown-grace takes a duration/],
    [['--max-connections', '1.5'], {}, /--max-connections takes a positive whole number, got "1.5"/],
  ];
  for (const [args, env, expected] of cases) {
    const dir = home();
    writeFileSync(join(dir, 'empty.yaml'), '');
    const result = await runCli(['serve', '--config', join(dir, 'empty.yaml'), '--listen', '127.0.0.1:0', ...args], { env: cleanEnv({ SHELLWIRE_HOME: dir, ...env }) });
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, expected);
    assert.doesNotMatch(result.stderr, /pino|at .*\.js:\d+/, 'a library internal leaked');
  }
});

test('serve: durations with units are accepted, log time is ISO 8601', { timeout: 20_000 }, async () => {
  const daemon = serve(['--listen', '127.0.0.1:0', '--kill-grace', '2s', '--handshake-timeout', '1m', '--output-grace', '500ms', '--shutdown-grace', '1.5']);
  await daemon.waitForStdout(/listening on/);
  const [line] = await daemon.waitForStderr(/^\{.*"msg":"listening"\}$/m);
  const time = (JSON.parse(line) as { time: unknown }).time;
  assert.equal(typeof time, 'string', `time is ${JSON.stringify(time)}`);
  assert.match(time as string, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(time as string) - Date.now()) < 60_000);
  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0, daemon.stderr());
});

test('serve stopping while a terminal session runs: no "write after end", no connection error in the log', { timeout: 30_000 }, async () => {
  const dir = home();
  const daemon = serve(['--listen', '127.0.0.1:0', '--shutdown-grace', '0.3'], dir);
  const [, address] = await daemon.waitForStdout(/listening on (\S+)\n/);
  const [, fingerprint] = await daemon.waitForStdout(/fingerprint: (SHA256:\S+)/);
  const conn = await connect(address!, { fingerprint: fingerprint!, tokenFile: join(dir, 'server', 'token') });
  const ptyProc = conn.spawn('sleep 30', { pty: { term: 'xterm', cols: 80, rows: 24 } });
  const execProc = conn.spawn('sleep 30');
  for (const proc of [ptyProc, execProc]) {
    proc.stdout.on('error', () => {}).resume();
    proc.stderr.on('error', () => {}).resume();
    void proc.exited.catch(() => {});
    await proc.started;
  }
  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0, daemon.stderr());
  assert.doesNotMatch(daemon.stderr(), /write after end|closed with error/);
  await conn.close();
});

/**
 * The daemon ended its side (a GOODBYE, or the client's) while a command still runs, and the
 * peer has not closed yet: the command's output and exit must not be written to the ended
 * socket ("write after end" logged as a connection error at every daemon stop).
 */
test('no write after end: output or exit of a command after the connection said goodbye', { timeout: 20_000 }, async () => {
  for (const how of ['client goodbye', 'daemon stop'] as const) {
    const { logger, lines } = captureLogger();
    const daemon = await startDaemon({ logger, audit: false, limits: { shutdownGraceMs: 200 } });
    const raw = await RawClient.open(daemon.port);
    try {
      await raw.authenticate(daemon.token);
      const opened = await raw.openExec(1, { command: 'sleep 0.3; echo late; sleep 5', pty: { term: 'xterm', cols: 80, rows: 24 } });
      assert.equal(opened.type, FrameType.OPEN_OK);
      if (how === 'client goodbye') {
        raw.sendJson(FrameType.GOODBYE, 0, { code: 'SW_ERR_CLIENT_CLOSING', message: 'bye' });
        await new Promise((resolve) => setTimeout(resolve, 800));
      } else {
        // A client that does not read: it never answers the daemon's end, as a stopped terminal would not.
        raw.socket.pause();
        await daemon.server.close(200);
      }
      const errors = lines.filter((l) => /write after end/.test(JSON.stringify(l)) || l.msg === 'connection closed with error');
      assert.deepEqual(errors, [], `${how}: ${JSON.stringify(errors)}`);
    } finally {
      raw.destroy();
      await daemon.stop();
    }
  }
});

test('a second serve on the same state dir is refused, naming the running daemon\'s PID; a stale lock is not', { timeout: 30_000 }, async () => {
  const dir = home();
  const first = serve(['--listen', '127.0.0.1:0'], dir);
  await first.waitForStdout(/listening on/);
  const pidFile = join(dir, 'server', 'daemon.pid');
  const second = await runCli(['serve', '--config', join(dir, 'empty-serve.yaml'), '--listen', '127.0.0.1:0'], { env: cleanEnv({ SHELLWIRE_HOME: dir }) });
  assert.equal(second.code, 1, second.stderr);
  assert.match(second.stderr, new RegExp(`another shellwire daemon \\(PID ${first.child.pid}\\) is already serving the state dir ${join(dir, 'server')}`));
  assert.equal(readFileSync(pidFile, 'utf8').trim(), String(first.child.pid), 'the second daemon took daemon.pid over');
  first.child.kill('SIGTERM');
  assert.equal((await first.exited).code, 0, first.stderr());
  assert.ok(!existsSync(pidFile), 'daemon.pid left behind after a clean stop');

  // A crashed daemon's file: a pid now gone, and a live pid whose start time differs (reused).
  const gone = spawnSync('true').pid!;
  for (const stale of [`${gone} 12345\n`, `${process.pid} 1\n`]) {
    writeFileSync(pidFile, stale);
    const next = serve(['--listen', '127.0.0.1:0'], dir);
    await next.waitForStdout(/listening on/);
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(next.child.pid));
    next.child.kill('SIGTERM');
    assert.equal((await next.exited).code, 0, next.stderr());
  }
});

test('units in every duration and size flag: exec/run --timeout 1s, --connect-timeout 500ms, put --limit-rate 5M, audit --since 1h30m, discover --timeout 300ms', { timeout: 60_000 }, async () => {
  const daemon = await startDaemon();
  try {
    const exec = await runCli(['exec', '--timeout', '1s', '--connect-timeout', '5s', daemon.address, '--', 'sleep 5'], { env: daemon.env });
    assert.equal(exec.code, 124, exec.stderr);
    const execMs = await runCli(['exec', '--timeout', '300ms', daemon.address, '--', 'sleep 5'], { env: daemon.env });
    assert.equal(execMs.code, 124, execMs.stderr);
    const inventory = join(daemon.home, 'inventory.yaml');
    writeFileSync(inventory, `hosts:\n  local:\n    address: 127.0.0.1\n    port: ${daemon.port}\n`);
    const run = await runCli(['run', '--inventory', inventory, '--timeout', '1s', '--connect-timeout', '500ms', '--keepalive', '2s', 'local', '--', 'sleep 5'], { env: daemon.env });
    assert.notEqual(run.code, 2, run.stderr);
    assert.match(run.stderr + run.stdout.toString(), /time|124/i);
    const file = join(daemon.home, 'f.txt');
    writeFileSync(file, 'x'.repeat(1000));
    const target = join(daemon.server.stateDir, '..', 'home', 'g.txt');
    const put = await runCli(['put', '-q', '--limit-rate', '5M', file, `${daemon.address}:${target}`], { env: daemon.env });
    assert.notEqual(put.code, 2, put.stderr);
    assert.doesNotMatch(put.stderr, /--limit-rate/);
    const audit = await runCli(['audit', '--state-dir', daemon.server.stateDir, '--since', '1h30m', '--until', '0s']);
    assert.equal(audit.code, 0, audit.stderr);
    const discover = await runCli(['discover', '--timeout', '300ms', '--port', '1']);
    assert.match(discover.stderr, /0 daemon\(s\) answered/);
    for (const [args, expected] of [
      [['exec', '--timeout', '1x', daemon.address, '--', 'true'], /--timeout takes a duration such as 1\.5 \(seconds\), 500ms/],
      [['exec', '--connect-timeout', '0', daemon.address, '--', 'true'], /--connect-timeout takes a duration above zero/],
      [['put', '--limit-rate', '5Q', file, `${daemon.address}:${target}`], /--limit-rate takes a size such as 65536 \(bytes\), 512K, 5M, 1G or 10MiB/],
      [['audit', '--state-dir', daemon.server.stateDir, '--since', 'yesterday'], /--since takes an ISO date\/time .* or an age \(a duration such as/],
    ] as Array<[string[], RegExp]>) {
      const result = await runCli(args, { env: daemon.env });
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, expected);
    }
  } finally {
    await daemon.stop();
  }
});

test('serve: SIGHUP before the server is up does not kill it; after, it reloads users', { timeout: 20_000 }, async () => {
  const dir = home();
  mkdirSync(join(dir, 'server'), { recursive: true, mode: 0o700 });
  const daemon = serve(['--listen', '127.0.0.1:0'], dir);
  await waitFor(() => existsSync(join(dir, 'server', 'daemon.pid')), 10_000);
  daemon.child.kill('SIGHUP');
  await daemon.waitForStdout(/listening on/);
  daemon.child.kill('SIGHUP');
  await daemon.waitForStderr(/users config reloaded/);
  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0, daemon.stderr());
});

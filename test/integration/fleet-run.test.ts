/**
 * Fan-out against real daemons on 127.0.0.2–7: grouping, stream labelling, a hanging host,
 * unreachable and refused hosts, fail-fast, batches and canary, JSON Lines, Ctrl-C.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, processAlive, waitFor, CLI } from '../helpers/daemon.js';
import { runOn, type FleetEvent } from '../../src/fleet/run-on.js';
import { ErrorCode } from '../../src/errors.js';
import { loadInventory } from '../../src/fleet/inventory.js';
import { resolveTargets } from '../../src/fleet/targets.js';
import { startFleet, freePortOn, validate, JSON_LINE_SCHEMA, type TestFleet } from './fleet-helpers.js';

let fleet: TestFleet;

before(async () => {
  fleet = await startFleet([
    { name: 'web01', role: 'a' },
    { name: 'web02', role: 'a' },
    { name: 'web03', role: 'a' },
    { name: 'web04', role: 'b' },
    { name: 'db01', role: 'b' },
    { name: 'hang01', role: 'hang' },
  ]);
});

after(async () => {
  await fleet?.stop();
});

const cli = (args: string[], timeoutMs = 20_000) => runCli(['run', '--inventory', fleet.inventory, ...args], { env: fleet.env, timeoutMs });
const hosts = (expr: string) => resolveTargets(expr, loadInventory(fleet.inventory));
const libOptions = () => ({ connect: { token: fleet.token, home: fleet.home } });

test('grouped output: identical results once, with folded host names; exit 0 when all succeed', async () => {
  const r = await cli(['@all-a,@all-b', '--', 'echo role=$ROLE']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'web[01-03] (3): role=a\nweb04,db01 (2): role=b\n');
  assert.match(r.stderr, /^shellwire: 5\/5 ok, \d+\.\d\d s\n$/);
});

test('stream mode: every line whole and labelled with the host that printed it', async () => {
  // Each line is written in two pieces, so chunks of different hosts interleave mid-line.
  const r = await cli(['--stream', '--fanout', '5', 'web0[1-4],db01', '--', 'for i in $(seq 1 150); do printf "L$i-"; printf "$ROLE-%s\\n" $(hostname -s 2>/dev/null || echo x) ; done; echo err-$ROLE >&2']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trimEnd().split('\n');
  assert.equal(lines.length, 5 * 151);
  const roleOf: Record<string, string> = { web01: 'a', web02: 'a', web03: 'a', web04: 'b', db01: 'b' };
  const seen: Record<string, number> = {};
  for (const line of lines) {
    const m = /^(\S+)\s+([|!]) (.*)$/.exec(line);
    assert.ok(m, `unlabelled line: ${JSON.stringify(line)}`);
    const [, host, mark, text] = m;
    if (mark === '!') {
      assert.equal(text, `err-${roleOf[host!]}`);
      continue;
    }
    const n = (seen[host!] = (seen[host!] ?? 0) + 1);
    assert.match(text!, new RegExp(`^L${n}-${roleOf[host!]}-\\S+$`), `host ${host} line ${n}: ${text}`);
  }
  for (const host of Object.keys(roleOf)) assert.equal(seen[host], 150);
});

test('a hanging host is reported and killed at its timeout while the others finish', async () => {
  const pidFile = join(fleet.root, 'hang.pid');
  const started = performance.now();
  const run = runOn(hosts('web01,web02,hang01'), `if [ "$ROLE" = hang ]; then sleep 60 & echo $! > ${pidFile}; wait; else echo fine; fi`, { ...libOptions(), timeoutMs: 1_000 });
  const order: string[] = [];
  for await (const event of run) if (event.type === 'result') order.push(event.host);
  const summary = await run.result();
  const elapsed = performance.now() - started;
  assert.deepEqual(order.slice(-1), ['hang01'], 'the others finished first');
  const hang = summary.results.find((r) => r.host === 'hang01')!;
  assert.equal(hang.status, 'timed-out');
  assert.match(hang.error!.message, /timed out after 1 s; its processes were killed/);
  assert.deepEqual(summary.results.filter((r) => r.status === 'ok').map((r) => r.stdout), ['fine\n', 'fine\n']);
  assert.ok(elapsed < 4_000, `run took ${elapsed} ms`);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(await waitFor(() => !processAlive(pid), 3_000), 'the hung process group was killed');
});

test('unreachable host and refused host key are failures with clear reasons', async () => {
  const closedPort = await freePortOn('127.0.0.9');
  // A daemon whose key is not in known_hosts: an entry with the right address but a wrong port pin.
  const strangerHome = join(fleet.root, 'stranger-home');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(strangerHome, { recursive: true });
  const d = fleet.daemons[0]!;
  writeFileSync(join(strangerHome, 'known_hosts'), `${d.host}:${d.port} SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n`);
  const changed = await runOn([{ name: 'web01', address: d.host, port: d.port, labels: {}, groups: [] }], 'true', { connect: { token: fleet.token, home: strangerHome } }).result();
  assert.equal(changed.results[0]!.status, 'host-key');
  assert.match(changed.results[0]!.error!.message, /REMOTE HOST IDENTIFICATION HAS CHANGED|presented .* pins/);

  const r = await runCli(['run', '--inventory', fleet.inventory, '--connect-timeout', '2', `web02,127.0.0.9:${closedPort}`, '--', 'echo hi'], {
    env: { ...fleet.env, SHELLWIRE_HOME: strangerHome }, // web02 is unknown in this home: refused (strict)
  });
  assert.equal(r.code, 1);
  const out = r.stdout.toString();
  assert.match(out, new RegExp(`127\\.0\\.0\\.9:${closedPort}: unreachable: Connection refused`));
  assert.match(out, /web02: host-key: Host 127\.0\.0\.3:\d+ is not in .*known_hosts/);
  assert.match(r.stderr, /0\/2 ok, 1 unreachable \(127\.0\.0\.9:\d+\), 1 refused \(host key\/auth\) \(web02\)/);
  // The operator is told what to do about the unknown key, in CLI terms.
  assert.match(r.stderr, /1 host is not in known_hosts \(web02\)\. .*known-hosts add .*--accept-new-host/);

  // Accepting it says so, as ssh does, and the next run needs no flag.
  const accepted = await runCli(['run', '--inventory', fleet.inventory, '--accept-new-host', 'web02', '--', 'echo hi'], { env: { ...fleet.env, SHELLWIRE_HOME: strangerHome } });
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(accepted.stderr, /Warning: Permanently added '127\.0\.0\.3:\d+' to the list of known hosts\./);
  const again = await runCli(['run', '--inventory', fleet.inventory, 'web02', '--', 'echo hi'], { env: { ...fleet.env, SHELLWIRE_HOME: strangerHome } });
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /Permanently added/);
});

test('--fail-fast: after the first failure no further host starts', async () => {
  // Hosts run in inventory order: web01 (role a) first, and it fails.
  const r = await cli(['--json', '--fanout', '1', '--fail-fast', 'db01,web04,web01', '--', 'test "$ROLE" = b']);
  assert.equal(r.code, 1);
  const results = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'result');
  assert.deepEqual(results.map((e) => `${e.host}:${e.status}`), ['web01:failed', 'web04:skipped', 'db01:skipped']);
  assert.match(r.stderr, /2 skipped \(fail-fast\)/);
  const without = await cli(['--json', '--fanout', '1', 'db01,web04,web01', '--', 'test "$ROLE" = b']);
  assert.equal(without.stdout.toString().match(/"status":"ok"/g)?.length, 2, 'without --fail-fast the others run');
});

test('batches and canary: the canary runs alone, then batches in order, each after the previous finished', async () => {
  const run = runOn(hosts('web0[1-4],db01'), 'sleep 0.05; echo $ROLE', { ...libOptions(), batchSize: 2, canary: true });
  const events: FleetEvent[] = [];
  for await (const e of run) events.push(e);
  const trace = events.filter((e) => e.type !== 'output').map((e) => (e.type === 'batch' ? `batch${e.batch}:${e.hosts.join('+')}` : e.type === 'summary' ? 'summary' : `${e.type}:${e.host}`));
  const batchAt = (n: number) => trace.findIndex((t) => t.startsWith(`batch${n}:`));
  assert.deepEqual(trace.filter((t) => t.startsWith('batch')), ['batch0:web01', 'batch1:web02+web03', 'batch2:web04+db01']);
  for (const [n, members] of [[0, ['web01']], [1, ['web02', 'web03']], [2, ['web04', 'db01']]] as const) {
    for (const h of members) {
      assert.ok(trace.indexOf(`start:${h}`) > batchAt(n), `${h} starts in batch ${n}`);
      if (n < 2) assert.ok(trace.indexOf(`result:${h}`) < batchAt(n + 1), `${h} finishes before batch ${n + 1}: ${trace.join(' ')}`);
    }
  }
  // A failing canary stops everything else.
  const failed = await runOn(hosts('web01,web04,db01'), 'test "$ROLE" = b', { ...libOptions(), canary: true }).result();
  assert.deepEqual(failed.results.map((r) => r.status), ['failed', 'skipped', 'skipped']);
  assert.equal(failed.stoppedBy, 'canary');
});

test('--json: every line validates against the schema; output, one result per host, summary last', async () => {
  const r = await cli(['--json', 'web01,web04,hang01', '--timeout', '0.5', '--', 'printf "x\\342\\202"; printf "\\254\\n"; [ "$ROLE" = hang ] && sleep 5; echo e >&2; exit 2']);
  assert.equal(r.code, 1);
  const lines = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  for (const line of lines) assert.equal(validate(line, JSON_LINE_SCHEMA), null, JSON.stringify(line));
  const results = lines.filter((l) => l.type === 'result');
  assert.deepEqual(results.map((l) => l.host).sort(), ['hang01', 'web01', 'web04']);
  assert.equal(lines.at(-1).type, 'summary');
  const web01 = results.find((l) => l.host === 'web01');
  assert.equal(web01.exitCode, 2);
  assert.equal(web01.stdout, 'x€\n');
  assert.equal(web01.stderr, 'e\n');
  assert.equal(results.find((l) => l.host === 'hang01').status, 'timed-out');
  const chunks = lines.filter((l) => l.type === 'output' && l.host === 'web04' && l.stream === 'stdout').map((l) => l.data).join('');
  assert.equal(chunks, 'x€\n');
});

test('Ctrl-C once lists the running hosts; twice cancels them and their remote processes die', async () => {
  const pidDir = fleet.root;
  const child = spawn(process.execPath, [CLI, 'run', '--inventory', fleet.inventory, 'web01,web02,db01', '--', `sleep 60 & echo $! > ${pidDir}/int-$ROLE-$$.pid; wait`], {
    env: fleet.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const { readdirSync } = await import('node:fs');
  const pidFiles = () => readdirSync(pidDir).filter((f) => f.startsWith('int-'));
  assert.ok(await waitFor(() => pidFiles().length === 3, 5_000), 'all three started');
  child.kill('SIGINT');
  assert.ok(await waitFor(() => /3 host\(s\) still running: .*web01.*Ctrl-C again/s.test(stderr), 3_000), stderr);
  assert.match(stderr, /web02/);
  assert.match(stderr, /db01/);
  assert.equal(child.exitCode, null, 'one Ctrl-C does not stop the run');
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130);
  assert.match(stderr, /3 canceled/);
  const pids = pidFiles().map((f) => Number(readFileSync(join(pidDir, f), 'utf8')));
  for (const pid of pids) assert.ok(await waitFor(() => !processAlive(pid), 3_000), `remote sleep ${pid} was killed`);
  assert.ok(existsSync(pidDir));
});

test('hosts: lists what a target expands to, without connecting', async () => {
  const r = await runCli(['hosts', '--inventory', fleet.inventory, '--fold', 'role=a,db01,!web02'], { env: fleet.env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'web[01,03],db01\n');
  const bad = await runCli(['hosts', '--inventory', fleet.inventory, '@web,!web99'], { env: fleet.env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no group "web"/);
});

test('runOn(): a failure that is no ShellwireError (a confirmHost callback that throws) is reported as SW_ERR_INTERNAL', async () => {
  const { mkdirSync } = await import('node:fs');
  const emptyHome = join(fleet.root, 'internal-home');
  mkdirSync(emptyHome, { recursive: true });
  const d = fleet.daemons[0]!;
  const summary = await runOn([{ name: 'web01', address: d.host, port: d.port, labels: {}, groups: [] }], 'true', {
    connect: { token: fleet.token, home: emptyHome, hostKeyPolicy: 'ask', confirmHost: () => { throw new Error('the prompt broke'); } },
  }).result();
  assert.equal(summary.results[0]!.error?.code, ErrorCode.INTERNAL);
  assert.match(summary.results[0]!.error!.message, /the prompt broke/);
});

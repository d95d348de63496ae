/**
 * The client side of the gateway (issue 13 item 3, docs/gateway.md "Client side"):
 * `connect(host, { via })`, `relay()`, and `--via`/`-J` on the CLI, against a stand-in
 * gateway (test/helpers/gateway-standin.ts: a real daemon whose kinds record each OPEN's
 * `host` and run it locally). They prove that every kind of OPEN carries `host`, that
 * streams stay byte-exact and exit codes come back, that OPEN_FAIL through the gateway
 * names the host (exit 255), and that `run` shares one gateway connection.
 * End-to-end tests against the real gateway (src/gateway/) are added at merge.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import { ErrorCode, RequestError } from '../../src/errors.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { allByteValues, cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';
import { FORBIDDEN_HOST, STANDIN_HOSTS, UNREACHABLE_HOST, startGatewayStandIn, type GatewayStandIn } from '../helpers/gateway-standin.js';

let dir: string;
let root: string;
let gw: GatewayStandIn;
let env: NodeJS.ProcessEnv;

before(async () => {
  dir = tempDir('shellwire-via-');
  root = join(dir, 'files');
  mkdirSync(join(root, 'home'), { recursive: true });
  gw = await startGatewayStandIn(root, join(root, 'home'));
  // The gateway is pinned in known_hosts under its own host:port; no inventory.
  env = cleanEnv({ SHELLWIRE_HOME: gw.home, HOME: gw.home, SHELLWIRE_TOKEN: gw.token, NO_COLOR: '1' });
});

after(async () => {
  await gw?.stop();
  removeDir(dir);
});

/** The OPENs seen since `from`. */
function seenSince(from: number): typeof gw.seen {
  return gw.seen.slice(from);
}

test('connect(host, { via }): every kind of OPEN carries host, streams are byte-exact, exit codes come back', async () => {
  const from = gw.seen.length;
  const conn = await connect('web01', { via: gw.address, home: gw.home, token: gw.token });
  try {
    assert.equal(conn.relayHost, 'web01');
    assert.match(conn.hostLabel, /^web01 via 127\.0\.0\.1:\d+$/);
    const bytes = allByteValues();
    const proc = conn.spawn('cat');
    proc.stdin.end(bytes);
    const out: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => out.push(c));
    const exit = await proc.exited;
    assert.equal(exit.exitCode, 0);
    assert.deepEqual(Buffer.concat(out), bytes);
    const failed = await conn.exec('echo err >&2; exit 7', { reject: false });
    assert.equal(failed.exitCode, 7);
    assert.equal(failed.stderr.toString(), 'err\n');
    const tty = await conn.exec('test -t 0 && echo tty', { pty: { term: 'xterm', cols: 80, rows: 24 } });
    assert.match(tty.stdout.toString(), /tty/);
    const session = await conn.shell();
    await session.exec('cd /tmp && export X=kept');
    assert.equal((await session.exec('echo "$PWD $X"')).stdout.toString(), '/tmp kept\n');
    session.close();
    const local = join(dir, 'payload.bin');
    writeFileSync(local, bytes);
    await conn.mkdir(join(root, 'up'));
    await conn.put(local, join(root, 'up', 'p.bin'));
    assert.deepEqual(readFileSync(join(root, 'up', 'p.bin')), bytes);
    await conn.get(join(root, 'up', 'p.bin'), join(dir, 'back.bin'));
    assert.deepEqual(readFileSync(join(dir, 'back.bin')), bytes);
    assert.equal((await conn.stat(join(root, 'up', 'p.bin'))).size, bytes.length);
    assert.deepEqual((await conn.list(join(root, 'up'))).map((e) => e.name), ['p.bin']);
  } finally {
    await conn.close();
  }
  const seen = seenSince(from);
  assert.ok(seen.length >= 8, JSON.stringify(seen));
  assert.deepEqual(seen.filter((s) => s.host !== 'web01'), [], 'every OPEN names the host');
  assert.deepEqual(new Set(seen.map((s) => s.kind)), new Set(['exec', 'session', 'file']));
  for (const op of ['mkdir', 'put', 'get', 'stat', 'list']) assert.ok(seen.some((s) => s.kind === 'file' && s.what === op), `file ${op} went through: ${JSON.stringify(seen)}`);
});

test('through a relay view: timeouts, signals, terminal resize and stdin EOF reach the command', async () => {
  const conn = await connect('web01', { via: gw.address, home: gw.home, token: gw.token });
  try {
    const timed = await conn.exec('sleep 30', { timeoutMs: 300, reject: false });
    assert.equal(timed.timedOut, true);
    const interrupted = conn.spawn('trap "echo got-int; exit 3" INT; echo ready; while :; do sleep 0.05; done');
    interrupted.stderr.resume();
    const out: Buffer[] = [];
    interrupted.stdout.on('data', (c: Buffer) => {
      out.push(c);
      if (Buffer.concat(out).includes('ready')) interrupted.kill('SIGINT');
    });
    const exit = await interrupted.exited;
    assert.equal(exit.exitCode, 3);
    assert.match(Buffer.concat(out).toString(), /got-int/);
    const tty = conn.spawn('echo ready; read x; stty size', { pty: { term: 'xterm', cols: 80, rows: 24 } });
    const screen: Buffer[] = [];
    let resized = false;
    tty.stdout.on('data', (c: Buffer) => {
      screen.push(c);
      if (!resized && Buffer.concat(screen).includes('ready')) {
        resized = true;
        tty.resize(132, 50);
        setTimeout(() => tty.stdin.write('go\n'), 200);
      }
    });
    await tty.exited;
    assert.match(Buffer.concat(screen).toString(), /50 132/);
  } finally {
    await conn.close();
  }
});

test('a direct connection sends no host (the stamp belongs to the gateway path only)', async () => {
  const from = gw.seen.length;
  const conn = await gw.connect();
  try {
    await conn.exec('true');
  } finally {
    await conn.close();
  }
  assert.deepEqual(seenSince(from).map((s) => s.host), [undefined]);
});

test('OPEN_FAIL through the gateway: SW_ERR_CONNECT_FAILED and SW_ERR_DENIED are typed errors naming the host', async () => {
  for (const [host, code] of [[UNREACHABLE_HOST, ErrorCode.CONNECT_FAILED], [FORBIDDEN_HOST, ErrorCode.DENIED]] as const) {
    const conn = await connect(host, { via: gw.address, home: gw.home, token: gw.token });
    try {
      await assert.rejects(conn.exec('true'), (err: unknown) => {
        assert.ok(err instanceof RequestError, String(err));
        assert.equal(err.code, code);
        assert.match(err.message, new RegExp(`^${host} via 127\\.0\\.0\\.1:\\d+ refused`));
        assert.match(err.host ?? '', new RegExp(`^${host} via`));
        return true;
      });
      await assert.rejects(conn.list(root), (err: unknown) => (err as RequestError).code === code && (err as Error).message.includes(host));
    } finally {
      await conn.close();
    }
  }
});

test('relay(): many hosts share one gateway connection; ending one view leaves the others running', async () => {
  const gateway = await gw.connect();
  const before = gw.server.connectionCount;
  try {
    const a = gateway.relay('web01');
    const b = gateway.relay('db01');
    assert.equal(gw.server.connectionCount, before, 'no new connection for a view');
    const from = gw.seen.length;
    const [ra, rb] = await Promise.all([a.exec('echo a'), b.exec('echo b')]);
    assert.equal(ra.stdout.toString() + rb.stdout.toString(), 'a\nb\n');
    assert.deepEqual(seenSince(from).map((s) => s.host).sort(), ['db01', 'web01']);
    const long = a.spawn('sleep 30');
    long.stdout.resume();
    long.stderr.resume();
    await long.started;
    const closed = new Promise((resolve) => a.once('close', resolve));
    a.destroy();
    await closed;
    assert.equal(a.closed, true);
    assert.throws(() => a.spawn('true'), /destroyed by this client/);
    await long.exited.then(() => {}, () => {});
    assert.equal(gateway.closed, false);
    assert.equal((await b.exec('echo still')).stdout.toString(), 'still\n');
    assert.ok(await waitFor(() => gateway.channelCount === 0), 'the destroyed view\'s command was closed at the gateway');
    assert.throws(() => gateway.relay('web01:22'), (err: unknown) => (err as RequestError).code === ErrorCode.BAD_TARGET);
    assert.throws(() => gateway.relay('root@web01'), /the gateway's choice/);
  } finally {
    await gateway.close();
  }
});

test('gatewayRequest({ op: "hosts" }) returns the gateway\'s JSON list', async () => {
  const gateway = await gw.connect();
  try {
    assert.deepEqual(JSON.parse((await gateway.gatewayRequest({ op: 'hosts' })).toString()), STANDIN_HOSTS);
    await assert.rejects(gateway.relay('web01').gatewayRequest({ op: 'hosts' }), /host behind the gateway/);
  } finally {
    await gateway.close();
  }
});

// ---- the CLI as a child process ----

test('exec --via and -J: byte-exact stdout, exit codes, stdin; every OPEN names the host', async () => {
  const from = gw.seen.length;
  const bytes = allByteValues();
  const cat = await runCli(['exec', '--via', gw.address, 'web01', '--', 'cat'], { env, input: bytes });
  assert.equal(cat.code, 0, cat.stderr);
  assert.deepEqual(cat.stdout, bytes);
  const exit = await runCli(['exec', '-J', gw.address, 'web01', 'exit 9'], { env });
  assert.equal(exit.code, 9, exit.stderr);
  // USER@ of the gateway names the operator; the token logs in whoever it belongs to.
  const user = await runCli(['exec', '-J', `alice@${gw.address}`, 'web01', 'echo', 'ok'], { env });
  assert.equal(user.code, 0, user.stderr);
  assert.equal(user.stdout.toString(), 'ok\n');
  assert.deepEqual(seenSince(from).map((s) => `${s.kind}:${s.host}`), ['exec:web01', 'exec:web01', 'exec:web01']);
});

test('shell, tty, put, get and ls take --via; every OPEN names the host', async () => {
  const from = gw.seen.length;
  const shell = await runCli(['shell', '--via', gw.address, 'web01'], { env, input: 'cd /tmp\npwd\n' });
  assert.equal(shell.code, 0, shell.stderr);
  assert.match(shell.stdout.toString(), /\/tmp/);
  const tty = await runCli(['tty', '-J', gw.address, 'web01', 'printf', 'on-a-tty'], { env });
  assert.equal(tty.code, 0, tty.stderr);
  assert.match(tty.stdout.toString(), /on-a-tty/);
  const local = join(dir, 'cli.bin');
  writeFileSync(local, allByteValues());
  const put = await runCli(['put', '--via', gw.address, local, `web01:${join(root, 'cli.bin')}`], { env });
  assert.equal(put.code, 0, put.stderr);
  assert.deepEqual(readFileSync(join(root, 'cli.bin')), allByteValues());
  const get = await runCli(['get', '-J', gw.address, `web01:${join(root, 'cli.bin')}`, join(dir, 'cli-back.bin')], { env });
  assert.equal(get.code, 0, get.stderr);
  assert.deepEqual(readFileSync(join(dir, 'cli-back.bin')), allByteValues());
  const ls = await runCli(['ls', '--via', gw.address, `web01:${root}`], { env });
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout.toString(), /cli\.bin/);
  const seen = seenSince(from);
  assert.deepEqual(new Set(seen.map((s) => s.kind)), new Set(['session', 'exec', 'file']), JSON.stringify(seen));
  assert.deepEqual(seen.filter((s) => s.host !== 'web01'), []);
});

test('refusals through the gateway exit 255 with a message naming the host', async () => {
  for (const [host, code] of [[UNREACHABLE_HOST, 'SW_ERR_CONNECT_FAILED'], [FORBIDDEN_HOST, 'SW_ERR_DENIED']]) {
    for (const args of [['exec', '--via', gw.address, host!, 'true'], ['ls', '--via', gw.address, `${host}:/`], ['put', '--via', gw.address, join(dir, 'payload.bin'), `${host}:/tmp/x`], ['get', '-J', gw.address, `${host}:/etc/hostname`, join(dir, 'nothing')], ['shell', '--via', gw.address, host!], ['tty', '-J', gw.address, host!, 'true']]) {
      const r = await runCli(args, { env });
      assert.equal(r.code, 255, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${host} via 127\\.0\\.0\\.1:\\d+`));
      assert.match(r.stderr, new RegExp(code!));
    }
  }
  // The gateway unreachable: as any connection failure.
  const down = await runCli(['exec', '--via', '127.0.0.1:1', '--connect-timeout', '2', 'web01', 'true'], { env });
  assert.equal(down.code, 255, down.stderr);
});

test('--via [::1]:PORT: a gateway on IPv6, pinned in known_hosts as [::1]:PORT', async () => {
  const v6root = join(dir, 'v6');
  mkdirSync(join(v6root, 'home'), { recursive: true });
  const v6 = await startGatewayStandIn(v6root, join(v6root, 'home'), { host: '::1' });
  try {
    assert.match(v6.address, /^\[::1\]:\d+$/);
    const v6env = cleanEnv({ SHELLWIRE_HOME: v6.home, HOME: v6.home, SHELLWIRE_TOKEN: v6.token });
    const r = await runCli(['exec', '-J', `alice@${v6.address}`, 'web01', 'echo', 'six'], { env: v6env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'six\n');
    assert.deepEqual(v6.seen.map((s) => s.host), ['web01']);
  } finally {
    await v6.stop();
  }
});

test('--via usage errors exit 2 before connecting: -p, -l, a host with a port or USER@, a bad gateway', async () => {
  const cases: Array<[string[], RegExp, number]> = [
    [['exec', '--via', gw.address, '-p', '50007', 'web01', 'true'], /-p does not go with a gateway/, 2],
    [['exec', '--via', gw.address, '-l', 'root', 'web01', 'true'], /-l does not go with a gateway/, 2],
    [['exec', '--via', 'gw:notaport', 'web01', 'true'], /Bad gateway "gw:notaport"/, 2],
    [['run', '--via', '@@', 'web01', '--', 'true'], /Bad gateway/, 2],
    // As README says: refused before connecting, as -p/-l are (was 255 after dialling).
    [['exec', '--via', gw.address, 'root@web01', 'true'], /the gateway's choice.*--via root@/, 2],
    [['exec', '--via', gw.address, 'web01:2222', 'true'], /never an address or port/, 2],
  ];
  for (const [args, message, code] of cases) {
    const r = await runCli(args, { env });
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('inventory via: top-level default, per-host via, via: none, and --via none all decide the path', async () => {
  const home = join(dir, 'inv-home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'known_hosts'), readFileSync(join(gw.home, 'known_hosts')));
  writeFileSync(join(home, 'inventory.yaml'), [
    `via: ${gw.address}`,
    'hosts:',
    `  web01: { address: 127.0.0.1, port: ${gw.port} }`,
    `  direct01: { address: 127.0.0.1, port: ${gw.port}, via: none }`,
    `  db01: { address: 127.0.0.1, port: ${gw.port}, via: "alice@${gw.address}" }`,
    '  web02: { address: 192.0.2.1 }',
    '',
  ].join('\n'));
  const invEnv = { ...env, SHELLWIRE_HOME: home, HOME: home };
  const path = async (args: string[]): Promise<string | undefined> => {
    const from = gw.seen.length;
    const r = await runCli(args, { env: invEnv });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    const seen = seenSince(from);
    assert.equal(seen.length, 1, JSON.stringify(seen));
    return seen[0]!.host;
  };
  assert.equal(await path(['exec', 'web01', 'true']), 'web01', 'the top-level default');
  assert.equal(await path(['exec', 'db01', 'true']), 'db01', 'a per-host via');
  assert.equal(await path(['exec', 'direct01', 'true']), undefined, 'via: none in the host');
  assert.equal(await path(['exec', '--via', 'none', 'web01', 'true']), undefined, '--via none on the command line');
  // run: each host by its own path, from the same inventory.
  const from = gw.seen.length;
  const run = await runCli(['run', '--json', 'web01,db01,direct01', '--', 'true'], { env: invEnv });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(seenSince(from).map((s) => String(s.host)).sort(), ['db01', 'undefined', 'web01']);
  const hosts = await runCli(['hosts'], { env: invEnv });
  assert.equal(hosts.code, 0, hosts.stderr);
  assert.match(hosts.stdout.toString(), new RegExp(`web01\\s+via ${gw.address}`));
  assert.match(hosts.stdout.toString(), new RegExp(`direct01\\s+127\\.0\\.0\\.1:${gw.port}`));
  // known-hosts scans the gateway for a host behind one, never the host's own address (192.0.2.1 would time out).
  const scan = await runCli(['known-hosts', 'scan', '--connect-timeout', '2', 'web02'], { env: invEnv });
  assert.equal(scan.code, 0, scan.stderr);
  assert.equal(scan.stdout.toString(), `${gw.address} ${gw.fingerprint}\n`);
  // A malformed via is named with its line, as every inventory error is.
  writeFileSync(join(home, 'bad.yaml'), `hosts:\n  a: { via: "gw:99999" }\n`);
  const bad = await runCli(['hosts', '--inventory', join(home, 'bad.yaml')], { env: invEnv });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bad\.yaml:2: Bad gateway "gw:99999"/);
});

test('run --via: one connection to the gateway carries every host\'s channel', async () => {
  const from = gw.seen.length;
  const r = await runCli(['run', '--json', '--via', gw.address, 'web01,db01,app01', '--', 'echo', 'hi'], { env });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { type: string; host?: string; status?: string });
  assert.deepEqual(lines.filter((l) => l.type === 'result').map((l) => `${l.host}:${l.status}`).sort(), ['app01:ok', 'db01:ok', 'web01:ok']);
  assert.deepEqual(seenSince(from).map((s) => `${s.kind}:${s.host}`).sort(), ['exec:app01', 'exec:db01', 'exec:web01', 'gateway:undefined']);
  // The stand-in's audit is off; count logins by the daemon's connection log instead: one.
  const oneLogin = await runCli(['run', '-v', '--via', gw.address, 'web01,db01,app01', '--', 'true'], { env });
  assert.equal(oneLogin.code, 0, oneLogin.stderr);
  assert.equal(oneLogin.stderr.match(/connecting to 127\.0\.0\.1:\d+ \(timeout/g)?.length, 1, oneLogin.stderr);
  // A host the gateway cannot reach is "unreachable", a forbidden one an error: exit 1, the rest ok.
  const mixed = await runCli(['run', '--json', '--via', gw.address, `web01,${UNREACHABLE_HOST},${FORBIDDEN_HOST}`, '--', 'true'], { env });
  assert.equal(mixed.code, 1, mixed.stderr);
  const statuses = mixed.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { type: string; host?: string; status?: string }).filter((l) => l.type === 'result');
  assert.deepEqual(statuses.map((l) => `${l.host}:${l.status}`).sort(), [`${UNREACHABLE_HOST}:unreachable`, `${FORBIDDEN_HOST}:error`, 'web01:ok']);
  // Targets are the gateway's: its groups work, a name it does not list matches nothing (exit 2).
  const group = await runCli(['run', '--json', '-J', gw.address, '@prod', '--', 'echo', 'g'], { env });
  assert.equal(group.code, 0, group.stderr);
  assert.match(group.stdout.toString(), /"host":"db01"/);
  const unlisted = await runCli(['run', '--via', gw.address, 'nosuch01', '--', 'true'], { env });
  assert.equal(unlisted.code, 2, unlisted.stderr);
  // A gateway that cannot be reached: 255.
  const down = await runCli(['run', '--via', '127.0.0.1:1', '--connect-timeout', '2', 'web01', '--', 'true'], { env });
  assert.equal(down.code, 255, down.stderr);
});

test('hosts --via prints what the gateway\'s "hosts" answers: a table, --json raw, targets filter it', async () => {
  const from = gw.seen.length;
  const table = await runCli(['hosts', '--via', gw.address], { env });
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout.toString(), new RegExp(`^web01\\s+via ${gw.address}\\s+@web\\s+role=web$`, 'm'));
  assert.match(table.stdout.toString(), /^db01\s+via \S+\s+@db,@prod\s+role=db,tier=xé$/m);
  assert.match(table.stderr, /5 hosts via/);
  const json = await runCli(['hosts', '-J', gw.address, '--json'], { env });
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout.toString()), STANDIN_HOSTS);
  const filtered = await runCli(['hosts', '--via', gw.address, '@prod'], { env });
  assert.equal(filtered.code, 0, filtered.stderr);
  assert.match(filtered.stdout.toString(), /^db01\s/);
  assert.doesNotMatch(filtered.stdout.toString(), /web01/);
  assert.deepEqual(seenSince(from).map((s) => `${s.kind}:${s.what}:${s.host}`), ['gateway:hosts:undefined', 'gateway:hosts:undefined', 'gateway:hosts:undefined']);
  const none = await runCli(['hosts', '--via', gw.address, 'nosuch01'], { env });
  assert.equal(none.code, 2, none.stderr);
  // A gateway that cannot be reached: 255, as any connection failure.
  const down = await runCli(['hosts', '--via', '127.0.0.1:1', '--connect-timeout', '2'], { env });
  assert.equal(down.code, 255, down.stderr);
});

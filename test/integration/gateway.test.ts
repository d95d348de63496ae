/**
 * The gateway (issue 13, docs/gateway.md): a real gateway `Server` and three real daemons on
 * loopback. Operators log in to the gateway with their keys; each OPEN names its inventory
 * host (`host`, stamped here on the library's own OPENs: the client's `--via` is another
 * part), and the gateway relays it over one pooled connection per host, with its own key.
 *
 * Until the host side of onward identity (`actAs`) is merged, the hosts give the gateway's key
 * a plain user entry (then `onBehalfOf` is ignored by them); with it, the key may act as the
 * operators. The tests pass either way (`HOST_SIDE_MERGED`).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import { rawChannel, transportOf, type Connection } from '../../src/client/connection.js';
import { FrameType } from '../../src/protocol/frame.js';
import { parseUsersConfig } from '../../src/auth/users-config.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import type { RecordingStore } from '../../src/audit/recording.js';
import { processAlive, runCli, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { hostUsersText, keyFile, resizeAndType, setHostUsers, startGatewayProcess, type KeyFile } from '../helpers/gateway.js';
import type { ShellwireError } from '../../src/errors.js';

/** The host side of onward identity is on this branch (users.yaml takes `actAs`). */
const HOST_SIDE_MERGED = (() => {
  try {
    parseUsersConfig('users:\n  g:\n    allowRoot: true\n    actAs: [h]\n  h:\n    allowRoot: true\n', 'probe.yaml');
    return true;
  } catch (err) {
    return !/users\.g\.actAs: unknown field/.test((err as Error).message);
  }
})();

/** Stamp `host` on every OPEN this connection sends (what `--via` does in the client). */
function through(conn: Connection, host: string): { conn: Connection; host: string } {
  const target = { conn, host };
  const frames = conn[transportOf]();
  const send = frames.send.bind(frames);
  frames.send = (type, channel, payload) => {
    if (type === FrameType.OPEN && payload) {
      const open = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
      open.host = target.host;
      payload = Buffer.from(JSON.stringify(open));
    }
    send(type, channel, payload);
  };
  return target;
}

/** One `gateway` op as raw frames: its STDOUT document and EXIT, or the OPEN_FAIL. */
function gatewayOp(conn: Connection, params: Record<string, unknown>): Promise<{ out: string; fail?: { code: string; message: string } }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const channel = conn[rawChannel]({ kind: 'gateway', window: 1 << 20, maxPacket: 65536, params } as never, {
      onData: (_s, bytes) => {
        chunks.push(bytes);
        channel.consumed(bytes.length);
      },
      onExit: () => {},
      onClose: (reason, detail) => {
        if (detail.openFail) return resolve({ out: '', fail: { code: detail.openFail.code, message: detail.openFail.message } });
        if (reason !== 'normal') return reject(detail.error ?? new Error(reason));
        resolve({ out: Buffer.concat(chunks).toString('utf8') });
      },
    });
  });
}

const isCode = (code: string, pattern?: RegExp) => (err: ShellwireError) => {
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return true;
};

describe('gateway: relays to permitted inventory hosts', { timeout: 120_000 }, () => {
  let dir: string;
  const hosts: TestDaemon[] = [];
  let gateway: Gateway;
  let gwPort: number;
  let alice: KeyFile;
  let bob: KeyFile;
  let carol: KeyFile;
  let inventoryFile: string;
  let childGatewayDir: string;
  const rows: AuditEvent[] = [];
  /** What the relay gave the recorder (src/audit/recording.ts is another part: this store keeps it in memory). */
  const recorded: { meta: Record<string, unknown>; output: Buffer[]; input: Buffer[]; resizes: string[]; ended: boolean }[] = [];
  const recordings: RecordingStore = {
    startTerminal(meta) {
      const rec = { meta: { ...meta }, output: [] as Buffer[], input: [] as Buffer[], resizes: [] as string[], ended: false };
      recorded.push(rec);
      const id = `rec-${recorded.length}`;
      return {
        id,
        output: (chunk) => void rec.output.push(Buffer.from(chunk)),
        input: (chunk) => void rec.input.push(Buffer.from(chunk)),
        resize: (cols, rows) => void rec.resizes.push(`${cols}x${rows}`),
        end: async () => {
          rec.ended = true;
          return { id, sha256: 'f'.repeat(64), bytes: Buffer.concat(rec.output).length, durationMs: 1 };
        },
      };
    },
    startExecOutput() {
      throw new Error('no operator here has record.output');
    },
    list: () => [],
    open: () => {
      throw new Error('not kept');
    },
    prune: () => 0,
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shellwire-gateway-'));
    alice = keyFile(dir, 'alice');
    bob = keyFile(dir, 'bob');
    carol = keyFile(dir, 'carol');
    const gwDir = join(dir, 'gateway');
    childGatewayDir = join(dir, 'gateway-child');
    // Two gateways (this process's, and one as a child process for the tests that kill it or
    // measure its memory) are trusted by every host.
    const gwKeys = [loadOrCreateGatewayKey(gwDir).publicLine, loadOrCreateGatewayKey(childGatewayDir).publicLine];
    const hostUsers = HOST_SIDE_MERGED
      ? hostUsersText(gwKeys, ['alice', 'bob', 'carol'])
      : ['users:', '  gateway:', '    allowRoot: true', `    keys: ${JSON.stringify(gwKeys)}`].join('\n') + '\n';
    for (let i = 0; i < 3; i++) {
      const d = await startDaemon();
      setHostUsers(d, hostUsers);
      hosts.push(d);
    }
    inventoryFile = join(dir, 'inventory.yaml');
    writeFileSync(
      inventoryFile,
      [
        'hosts:',
        `  web01: { address: 127.0.0.1, port: ${hosts[0]!.port}, labels: { env: prod }, groups: [web] }`,
        `  web02: { address: 127.0.0.1, port: ${hosts[1]!.port}, labels: { env: prod }, groups: [web] }`,
        `  db01: { address: 127.0.0.1, port: ${hosts[2]!.port}, labels: { env: staging }, groups: [db] }`,
        // In the inventory but not listening: the gateway cannot reach it.
        '  dead01: { address: 127.0.0.1, port: 1, groups: [dead] }',
      ].join('\n') + '\n',
    );
    writeFileSync(
      join(gwDir, 'users.yaml'),
      [
        'users:',
        '  alice:',
        '    allowRoot: true',
        `    keys: ["${alice.line}"]`,
        '    hosts: ["@web", "env=staging", "!web02", "@dead"]',
        '  bob:',
        '    allowRoot: true',
        `    keys: ["${bob.line}"]`,
        '    channels: [exec]',
        '    commands: { allow: ["echo ..."] }',
        '    hosts: ["web01", "web02"]',
        '  carol:',
        '    allowRoot: true',
        `    keys: ["${carol.line}"]`,
        // An address that is no inventory host names nothing: the gateway goes nowhere else.
        '    hosts: ["127.0.0.1:9"]',
      ].join('\n') + '\n',
    );
    gateway = await Gateway.create({
      stateDir: gwDir, host: '127.0.0.1', port: 0, inventory: inventoryFile,
      audit: { record: (e: AuditEvent) => void rows.push(e) },
      hostConnectTimeoutMs: 2_000,
      recordings,
    });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    for (const d of hosts) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const login = (key: KeyFile, user: string) =>
    connect({ user, host: '127.0.0.1', port: gwPort }, { identity: key.file, fingerprint: gateway.server.identity.fingerprint, env: {} });

  it('a permitted host runs commands byte-exact: binary stdout and stderr, stdin, exit codes', async () => {
    const { conn } = through(await login(alice, 'alice'), 'web01');
    try {
      const r = await conn.exec(["/bin/sh", '-c', "printf 'a\\377\\376\\000b\\351'; printf 'e\\300\\n' >&2; exit 7"], { reject: false });
      assert.deepEqual(r.stdoutBytes, Buffer.from([0x61, 0xff, 0xfe, 0x00, 0x62, 0xe9]));
      assert.deepEqual(r.stderrBytes, Buffer.from([0x65, 0xc0, 0x0a]));
      assert.equal(r.exitCode, 7);
      const input = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
      const cat = await conn.exec('cat', { stdin: input });
      assert.equal(cat.exitCode, 0);
      assert.ok(cat.stdoutBytes.equals(input), 'stdin came back byte for byte');
      const killed = await conn.exec('kill -TERM $$', { reject: false });
      assert.equal(killed.signal, 'SIGTERM');
      // A timeout is the host's: it kills the command and says so through the gateway.
      const slow = await conn.exec('sleep 30', { timeoutMs: 300, reject: false });
      assert.equal(slow.timedOut, true);
      // Which host answered: the daemon of web01 (its pooled connection is shared).
      const where = await conn.exec('echo $PPID >/dev/null; echo ok');
      assert.equal(where.stdout, 'ok\n');
    } finally {
      await conn.close();
    }
    assert.equal(gateway.pool.size >= 1, true);
    const end = rows.find((e) => e.kind === 'command-end' && e.exitCode === 7);
    assert.ok(end, 'the gateway wrote a command-end row');
    assert.equal(end.user, 'alice');
    assert.equal((end.detail as Record<string, unknown>).host, 'web01');
    assert.equal((end.detail as Record<string, unknown>).as, 'alice');
    assert.equal((end.detail as Record<string, unknown>).bytesOut, 6 + 3);
  });

  it('a host that is not permitted, and a name not in the inventory, get the same refusal naming the rule', async () => {
    const target = through(await login(alice, 'alice'), 'web02');
    try {
      const refusal = (name: string) => new RegExp(`: Denied: host "${name}" is not one alice may reach through this gateway \\(not in its inventory, or not in users\\.alice\\.hosts \\["@web","env=staging","!web02","@dead"\\] of its users\\.yaml\\); list the hosts alice may reach with: shellwire hosts --via GATEWAY\\.$`);
      await assert.rejects(target.conn.exec('echo never'), isCode('SW_ERR_DENIED', refusal('web02')));
      target.host = 'nosuchhost';
      await assert.rejects(target.conn.exec('echo never'), isCode('SW_ERR_DENIED', refusal('nosuchhost')));
      target.host = '127.0.0.1';
      await assert.rejects(target.conn.exec('echo never'), isCode('SW_ERR_DENIED', refusal('127.0.0.1')));
      // The other kinds are refused the same way.
      target.host = 'web02';
      await assert.rejects(target.conn.list('/'), isCode('SW_ERR_DENIED', refusal('web02')));
    } finally {
      await target.conn.close();
    }
    const denied = rows.filter((e) => e.kind === 'denied' && e.user === 'alice');
    assert.deepEqual(denied.map((e) => (e.detail as Record<string, unknown>).host), ['web02', 'nosuchhost', '127.0.0.1', 'web02']);
    // An ad-hoc address in users.yaml names no host either.
    const carolTarget = through(await login(carol, 'carol'), '127.0.0.1:9');
    const carolConn = carolTarget.conn;
    try {
      await assert.rejects(carolConn.exec('echo never'), isCode('SW_ERR_DENIED', /host "127\.0\.0\.1:9" is not one carol may reach through this gateway/));
      carolTarget.host = 'web01';
      await assert.rejects(carolConn.exec('echo never'), isCode('SW_ERR_DENIED', /host "web01" is not one carol may reach through this gateway/));
      assert.equal((await gatewayOp(carolConn, { op: 'hosts' })).out, '[]\n');
    } finally {
      await carolConn.close();
    }
  });

  it('kinds and commands are checked at the gateway with the daemon rules, and audited there', async () => {
    const target = through(await login(bob, 'bob'), 'web02');
    try {
      const ok = await target.conn.exec('echo via gateway');
      assert.equal(ok.stdout, 'via gateway\n');
      await assert.rejects(target.conn.exec('rm -rf /tmp/nothing-here'), isCode('SW_ERR_DENIED', /users\.bob\.commands\.allow/));
      await assert.rejects(target.conn.list('/'), isCode('SW_ERR_DENIED', /may not open file channels \(users\.bob\.channels is \[exec\]\)/));
    } finally {
      await target.conn.close();
    }
    const denied = rows.filter((e) => e.kind === 'denied' && e.user === 'bob');
    assert.equal(denied.length, 2);
    assert.match(String((denied[0]!.detail as Record<string, unknown>).reason), /commands\.allow/);
  });

  it('an unreachable host is SW_ERR_CONNECT_FAILED naming the host, not its address', async () => {
    const { conn } = through(await login(alice, 'alice'), 'dead01');
    try {
      await assert.rejects(conn.exec('echo never'), (err: ShellwireError) => {
        assert.equal(err.code, 'SW_ERR_CONNECT_FAILED', err.message);
        assert.match(err.message, /cannot reach host dead01/);
        // The gateway's own address starts the client's message; the host's never appears.
        assert.doesNotMatch(err.message, /127\.0\.0\.1:1\b|port 1\b/);
        return true;
      });
    } finally {
      await conn.close();
    }
  });

  it('the gateway kind op hosts lists exactly the permitted hosts, without addresses', async () => {
    const conn = await login(alice, 'alice');
    try {
      const listed = JSON.parse((await gatewayOp(conn, { op: 'hosts' })).out) as { name: string }[];
      assert.deepEqual(listed, [
        { name: 'web01', labels: { env: 'prod' }, groups: ['web'] },
        { name: 'db01', labels: { env: 'staging' }, groups: ['db'] },
        { name: 'dead01', labels: {}, groups: ['dead'] },
      ]);
      const bad = await gatewayOp(conn, { op: 'nope' });
      assert.equal(bad.fail?.code, 'SW_ERR_BAD_REQUEST');
      // Without a host an exec has nowhere to go.
      await assert.rejects(conn.exec('echo never'), isCode('SW_ERR_BAD_REQUEST', /name the host/));
    } finally {
      await conn.close();
    }
  });

  it('sessions and file channels are relayed too', async () => {
    const { conn } = through(await login(alice, 'alice'), 'db01');
    const session = await conn.shell({ cwd: '/' });
    try {
      await session.exec('cd /tmp && export GW_SESSION=kept');
      const r = await session.exec('pwd; echo $GW_SESSION');
      assert.equal(r.stdout, '/tmp\nkept\n');
    } finally {
      session.close();
    }
    const file = join(dir, 'via-gateway.bin');
    const data = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13) % 256));
    writeFileSync(file, data);
    try {
      await conn.put(file, join(dir, 'uploaded.bin'));
      assert.ok(readFileSync(join(dir, 'uploaded.bin')).equals(data));
      const entries = await conn.list(dir);
      assert.ok(entries.some((e) => e.name === 'uploaded.bin'));
    } finally {
      await conn.close();
    }
  });

  it('a terminal through the gateway: output, stdin and RESIZE reach the host', async () => {
    const { conn } = through(await login(alice, 'alice'), 'web01');
    try {
      const out = await resizeAndType(conn, 'hello');
      assert.match(out, /40 100/);
      assert.match(out, /got hello/);
    } finally {
      await conn.close();
    }
    // Recorded: what was shown, the resize, no input (alice's record.input is off), and the
    // end row references the recording.
    assert.equal(recorded.length, 1);
    const rec = recorded[0]!;
    assert.deepEqual({ ...rec.meta, command: undefined }, { operator: 'alice', host: 'web01', as: 'alice', command: undefined, cols: 80, rows: 24, term: 'xterm', recordInput: false });
    assert.match(Buffer.concat(rec.output).toString(), /24 80[\s\S]*got hello/);
    assert.deepEqual(rec.resizes, ['100x40']);
    assert.deepEqual(rec.input, []);
    assert.ok(await waitFor(() => rows.some((e) => e.kind === 'command-end' && (e.detail as { recording?: { id: string } }).recording?.id === 'rec-1')));
  });

  it('Ctrl-C (SIGNAL) and close through the gateway kill the remote process group', async () => {
    const { conn } = through(await login(alice, 'alice'), 'web01');
    try {
      for (const how of ['signal', 'close'] as const) {
        const proc = conn.spawn('sleep 300 & echo $!; wait');
        const pid = await new Promise<number>((resolve) => proc.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
        assert.ok(processAlive(pid));
        if (how === 'signal') proc.kill('SIGINT');
        else proc.close();
        await proc.exited.catch(() => {});
        assert.ok(await waitFor(() => !processAlive(pid), 5_000), `the background sleep (${pid}) died after ${how}`);
      }
    } finally {
      await conn.close();
    }
    // The operator's connection dropped: the gateway closes the host channel.
    const other = through(await login(alice, 'alice'), 'web01').conn;
    const proc = other.spawn('sleep 300 & echo $!; wait');
    const pid = await new Promise<number>((resolve) => proc.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
    proc.exited.catch(() => {});
    other.destroy();
    assert.ok(await waitFor(() => !processAlive(pid), 5_000), `the background sleep (${pid}) died with the operator's connection`);
  });

  it("a host lost mid-command ends the operator's channel with SW_ERR_CONNECTION_CLOSED naming the host; the next use dials again", async () => {
    const { conn } = through(await login(alice, 'alice'), 'db01');
    try {
      const proc = conn.spawn('echo started; exec sleep 300');
      let err = '';
      proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
      await new Promise((resolve) => proc.stdout.once('data', resolve));
      proc.stdout.resume();
      // db01 goes away (its daemon stops, killing what runs): the pooled connection is lost.
      await hosts[2]!.server.close(0);
      const exit = await proc.exited;
      assert.equal(exit.error?.code, 'SW_ERR_CONNECTION_CLOSED');
      assert.match(exit.error!.message, /lost its connection to host db01/);
      assert.match(err, /shellwire: The gateway lost its connection to host db01/);
      // The dead connection is not reused: the next channel dials, and db01 is not there.
      await assert.rejects(conn.exec('echo again'), isCode('SW_ERR_CONNECT_FAILED', /cannot reach host db01/));
    } finally {
      await conn.close();
    }
  });

  describe('a gateway process', () => {
    let child: ChildProcess;
    let port = 0;
    let fingerprint = '';

    before(async () => {
      writeFileSync(join(childGatewayDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, '    hosts: ["web01"]'].join('\n') + '\n');
      ({ child, port, fingerprint } = await startGatewayProcess(['--state-dir', childGatewayDir, '--inventory', inventoryFile, '--log-level', 'warn']));
    });

    after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    const loginChild = () => connect({ user: 'alice', host: '127.0.0.1', port }, { identity: alice.file, fingerprint, env: {} });

    function rssKiB(pid: number): number {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return Number(m![1]);
    }

    it('keeps its memory flat while 208 MiB stream to a slow reader', async () => {
      const { conn } = through(await loginChild(), 'web01');
      try {
        // Warm up: the pooled connection, TLS, the first buffers.
        await conn.exec('head -c 8388608 /dev/zero');
        const baseline = rssKiB(child.pid!);
        const total = 208 * 1024 * 1024;
        const proc = conn.spawn(`head -c ${total} /dev/zero`);
        let received = 0;
        let peak = baseline;
        const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(child.pid!))), 25);
        // A slow reader: it stops for a second three times, so a host that were not held
        // back by the reader's window would pour hundreds of MiB into the gateway meanwhile.
        const stops = [16, 80, 144].map((m) => m * 1024 * 1024);
        await new Promise<void>((resolve, reject) => {
          proc.stdout.on('data', (c: Buffer) => {
            const before = received;
            received += c.length;
            if (stops.some((at) => before < at && received >= at)) {
              proc.stdout.pause();
              setTimeout(() => proc.stdout.resume(), 1_000);
            }
          });
          proc.stdout.on('end', resolve);
          proc.stdout.on('error', reject);
        });
        clearInterval(sampler);
        const exit = await proc.exited;
        assert.equal(exit.exitCode, 0);
        assert.equal(received, total);
        const growth = peak - baseline;
        process.stderr.write(`gateway RSS: baseline ${baseline} KiB, peak ${peak} KiB, growth ${growth} KiB over ${total / 1048576} MiB\n`);
        assert.ok(growth < 48 * 1024, `the gateway grew by ${growth} KiB while ${total} bytes went through it`);
      } finally {
        await conn.close();
      }
    });

    it('keeps its memory flat while a slow command reads 128 MiB of stdin', async () => {
      const { conn } = through(await loginChild(), 'web01');
      try {
        const baseline = rssKiB(child.pid!);
        let peak = baseline;
        const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(child.pid!))), 25);
        // The command reads nothing for 2 s: the operator's 128 MiB must wait at the operator.
        const proc = conn.spawn('sleep 2; wc -c');
        const input = Buffer.alloc(128 * 1024 * 1024, 0x61);
        let out = '';
        proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
        proc.stdin.end(input);
        await proc.exited;
        clearInterval(sampler);
        assert.equal(out.trim(), String(input.length));
        const growth = peak - baseline;
        process.stderr.write(`gateway RSS (stdin): baseline ${baseline} KiB, peak ${peak} KiB, growth ${growth} KiB over 128 MiB\n`);
        assert.ok(growth < 48 * 1024, `the gateway grew by ${growth} KiB while 128 MiB of stdin went through it`);
      } finally {
        await conn.close();
      }
    });

    it('killed mid-session: the operator gets a clear error and the remote process is gone', async () => {
      const { conn } = through(await loginChild(), 'web01');
      const proc = conn.spawn('sleep 300 & echo $!; wait');
      const pid = await new Promise<number>((resolve) => proc.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
      assert.ok(processAlive(pid));
      child.kill('SIGKILL');
      await assert.rejects(proc.exited, (err: ShellwireError) => {
        assert.match(err.code, /SW_ERR_CONNECTION_CLOSED|SW_ERR_KEEPALIVE_TIMEOUT/);
        assert.match(err.message, /127\.0\.0\.1/);
        return true;
      });
      assert.ok(await waitFor(() => !processAlive(pid), 10_000), `the command (${pid}) on the host died with the gateway's connection`);
      conn.destroy();
    });
  });
});

describe('shellwire gateway --print-key', () => {
  it("makes the gateway's key on first use (0600) and prints the same public line every time", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shellwire-gateway-key-'));
    try {
      const stateDir = join(dir, 'gw');
      const first = await runCli(['gateway', '--print-key', '--state-dir', stateDir]);
      assert.equal(first.code, 0, first.stderr);
      const line = first.stdout.toString().trim();
      assert.match(line, /^ssh-ed25519 AAAA\S+ shellwire-gateway@\S+$/);
      assert.equal(statSync(join(stateDir, 'gateway_ed25519')).mode & 0o777, 0o600);
      assert.equal(readFileSync(join(stateDir, 'gateway_ed25519.pub'), 'utf8').trim(), line);
      const again = await runCli(['gateway', '--print-key', '--state-dir', stateDir]);
      assert.equal(again.stdout.toString().trim(), line);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

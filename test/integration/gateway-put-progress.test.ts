/**
 * Live per-host progress of a put to many hosts through the gateway (issue 14, "push files to
 * a selected host list with per-host progress"; docs/protocol.md §10 `progress`): a real
 * gateway and three real daemons on 127.0.0.2-4, one of them reached through a throttling TCP
 * proxy on 127.0.0.5 (a slow link). The gateway reports each host's bytes while it pushes and
 * each host's result as soon as THAT host is done, before its final document; a client that
 * does not ask gets the document alone, as before.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer, connect as tcpConnect, type Server as NetServer, type Socket } from 'node:net';
import { connect } from '../../src/client/connect.js';
import { rawChannel, type Connection } from '../../src/client/connection.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { CLI, cliResult, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';

const names = ['web01', 'web02', 'slow01'];
/** The slow host's link, towards it: bytes per second. */
const SLOW_RATE = 8 * 1024 * 1024;

/**
 * A TCP proxy to `port` that lets at most `rate` bytes per second towards it (the answers
 * pass freely): a host on a slow link, for real, without touching the daemon.
 */
async function throttledProxy(host: string, port: number, rate: number): Promise<{ server: NetServer; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.4');
    sockets.push(client, upstream);
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      client.pause();
      setTimeout(() => client.resume(), (chunk.length / rate) * 1000);
    });
    client.on('end', () => upstream.end());
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

type Event = { type: 'progress'; host: string; bytes: number; total: number } | { type: 'result'; host: string; ok: boolean; bytes: number };

describe('gateway: live per-host progress of a put to many hosts', { timeout: 120_000 }, () => {
  let dir: string;
  const hosts: TestDaemon[] = [];
  const homes: string[] = [];
  let gateway: Gateway;
  let gwPort: number;
  let aliceKey: string;
  let proxy: Awaited<ReturnType<typeof throttledProxy>>;

  before(async () => {
    dir = tempDir('shellwire-gwprogress-');
    const gwDir = join(dir, 'gateway');
    const pair = generateKeyPair('alice@test');
    aliceKey = join(dir, 'alice');
    writeFileSync(aliceKey, pair.privateText, { mode: 0o600 });
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    for (let i = 0; i < names.length; i++) {
      const d = await startDaemon({ host: `127.0.0.${i + 2}` });
      const home = join(dir, `h${i + 1}`);
      mkdirSync(join(home, 'up'), { recursive: true });
      homes.push(home);
      writeFileSync(join(d.server.stateDir, 'users.yaml'), [
        'users:', '  gateway:', `    keys: ${JSON.stringify([gwKey])}`, '    actAs: [alice]',
        '  alice:', '    allowRoot: true', `    home: ${home}`, `    fileRoots: [${home}]`,
      ].join('\n') + '\n');
      assert.ok(d.server.reloadUsers().ok);
      hosts.push(d);
    }
    proxy = await throttledProxy('127.0.0.5', hosts[2]!.port, SLOW_RATE);
    const inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, [
      'hosts:',
      `  web01: { address: 127.0.0.2, port: ${hosts[0]!.port}, groups: [web] }`,
      `  web02: { address: 127.0.0.3, port: ${hosts[1]!.port}, groups: [web] }`,
      `  slow01: { address: 127.0.0.5, port: ${proxy.port}, groups: [web] }`,
    ].join('\n') + '\n');
    writeFileSync(join(gwDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${pair.publicLine}"]`, '    hosts: ["@web"]'].join('\n') + '\n');
    gateway = await Gateway.create({ stateDir: gwDir, host: '127.0.0.1', port: 0, inventory, hostConnectTimeoutMs: 2_000 });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    for (const d of hosts) await d.stop().catch(() => {});
    for (const s of proxy?.sockets ?? []) s.destroy();
    proxy?.server.close();
    removeDir(dir);
  });

  const login = (): Promise<Connection> =>
    connect({ user: 'alice', host: '127.0.0.1', port: gwPort }, { identity: aliceKey, fingerprint: gateway.server.identity.fingerprint, env: {} });

  it('reports each host\'s bytes as it goes, and a fast host\'s result while the slow one still copies, before the document', async () => {
    const size = 24 * 1024 * 1024;
    const data = randomBytes(size);
    const local = join(dir, 'big.bin');
    writeFileSync(local, data);
    const conn = await login();
    const events: Event[] = [];
    let settled = false;
    try {
      const result = await conn.putToHosts(local, names, 'up/', {
        onHostProgress: (p) => {
          assert.equal(settled, false, 'no record after the answer');
          events.push({ type: 'progress', ...p });
        },
        onHostResult: (r) => {
          assert.equal(settled, false, 'no result after the answer');
          events.push({ type: 'result', host: r.host, ok: r.ok, bytes: r.bytes });
        },
      });
      settled = true;
      assert.deepEqual(result.hosts.map((h) => [h.host, h.ok, h.bytes]), names.map((n) => [n, true, size]));
    } finally {
      await conn.close();
    }
    for (const name of names) {
      const mine = events.filter((e) => e.host === name);
      const progress = mine.filter((e) => e.type === 'progress').map((e) => e.bytes);
      assert.ok(progress.length >= 2, `${name}: ${JSON.stringify(progress)}`);
      assert.equal(progress[0], 0, `${name} starts at 0`);
      assert.equal(progress.at(-1), size, `${name} ends at the size`);
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i]! >= progress[i - 1]!, `${name}: bytes never go back: ${JSON.stringify(progress)}`);
      assert.ok(mine.every((e) => e.type !== 'progress' || e.total === size));
      // Exactly one result, the host's last event.
      assert.deepEqual(mine.filter((e) => e.type === 'result').length, 1);
      assert.deepEqual(mine.at(-1), { type: 'result', host: name, ok: true, bytes: size });
      assert.ok(readFileSync(join(homes[names.indexOf(name)]!, 'up', 'big.bin')).equals(data));
    }
    // The slow host moved in steps the operator saw (not only its start and end) …
    const slow = events.filter((e) => e.host === 'slow01' && e.type === 'progress' && e.bytes > 0 && e.bytes < size);
    assert.ok(slow.length >= 2, `slow01 reported progress on the way: ${JSON.stringify(slow.map((e) => e.bytes))}`);
    // … and both fast hosts were reported done while slow01 was still copying.
    const slowDone = events.findIndex((e) => e.host === 'slow01' && e.type === 'progress' && e.bytes === size);
    for (const name of ['web01', 'web02']) {
      const done = events.findIndex((e) => e.host === name && e.type === 'result');
      assert.ok(done < slowDone, `${name}'s result (event ${done}) before slow01 finished (event ${slowDone})`);
      assert.ok(events.slice(done).some((e) => e.host === 'slow01' && e.type === 'progress' && e.bytes < size), `slow01 still copying after ${name}'s result`);
    }
  });

  it('on the wire: progress:true gets NDJSON records then the document; an OPEN without it gets the document alone (older clients)', async () => {
    const payload = randomBytes(200_000);
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256').update(payload).digest('hex');
    const conn = await login();
    try {
      const stdout = async (progress: boolean): Promise<string> => {
        const chunks: Buffer[] = [];
        await new Promise<void>((resolve, reject) => {
          const channel = conn[rawChannel]({
            kind: 'file', window: 1024 * 1024, maxPacket: 65536, hosts: ['web01', 'web02'],
            params: { op: 'put', path: `up/wire-${progress}.bin`, size: payload.length, mode: 0o644, mtimeMs: 0, resume: false, ...(progress ? { progress: true } : {}) },
          } as never, {
            onOpen: () => {
              assert.equal(channel.write('stdin', payload), payload.length, 'the gateway\'s window takes it');
              channel.eof({ sha256, size: payload.length });
            },
            onData: (_stream: unknown, chunk: Buffer) => {
              chunks.push(Buffer.from(chunk));
              channel.consumed(chunk.length);
            },
            onExit: () => channel.close(),
            onClose: (_reason: unknown, detail: { openFail?: { message: string }; error?: Error }) => {
              if (detail.openFail) reject(new Error(detail.openFail.message));
              else if (detail.error) reject(detail.error);
              else resolve();
            },
          } as never);
        });
        return Buffer.concat(chunks).toString('utf8');
      };
      const old = await stdout(false);
      assert.equal(old.split('\n').filter(Boolean).length, 1, old);
      const doc = JSON.parse(old) as { hosts: Array<{ host: string; ok: boolean }> };
      assert.deepEqual(doc.hosts.map((h) => [h.host, h.ok]), [['web01', true], ['web02', true]]);
      const lines = (await stdout(true)).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const last = lines.pop()!;
      assert.equal(last.type, undefined, 'the document comes last, as before');
      assert.deepEqual((last.hosts as Array<{ host: string }>).map((h) => h.host), ['web01', 'web02']);
      for (const host of ['web01', 'web02']) {
        const mine = lines.filter((l) => l.host === host);
        assert.deepEqual(mine[0], { type: 'progress', host, bytes: 0, total: payload.length });
        assert.deepEqual(mine.at(-2), { type: 'progress', host, bytes: payload.length, total: payload.length });
        assert.equal(mine.at(-1)!.type, 'result');
        assert.equal(mine.at(-1)!.ok, true);
        assert.equal(mine.at(-1)!.sha256, sha256);
      }
    } finally {
      await conn.close();
    }
  });

  it('the CLI through the gateway: each host is reported as it finishes (--json), no progress bars when stderr is not a terminal', async () => {
    const size = 16 * 1024 * 1024;
    const local = join(dir, 'cli.bin');
    writeFileSync(local, randomBytes(size));
    const home = join(dir, 'operator');
    mkdirSync(home, { recursive: true });
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, NO_COLOR: '1' });
    const child = spawn(process.execPath, [CLI, 'put', '-i', aliceKey, '--accept-new-host', '--via', `alice@127.0.0.1:${gwPort}`, '--json', local, 'web01,web02,slow01:up/'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    // When each fast host's result line is printed: has slow01 got its copy yet?
    const slowCopy = join(homes[2]!, 'up', 'cli.bin');
    const slowDoneAt = new Map<string, boolean>();
    let seen = '';
    child.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      for (const name of ['web01', 'web02']) if (!slowDoneAt.has(name) && seen.includes(`"type":"result","host":"${name}"`)) slowDoneAt.set(name, existsSync(slowCopy));
    });
    const r = await cliResult(child, 60_000);
    assert.equal(r.code, 0, `${r.stdout.toString()}\n${r.stderr}`);
    const records = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(records.filter((x) => x.type === 'result').map((x) => [x.host, x.status]).sort(), [['slow01', 'ok'], ['web01', 'ok'], ['web02', 'ok']]);
    // The fast hosts were printed while slow01 still copied, not held back until the end.
    assert.deepEqual([...slowDoneAt].sort(), [['web01', false], ['web02', false]]);
    assert.equal(statSync(slowCopy).size, size);
    assert.ok(!String(r.stderr).includes('\r') && !String(r.stderr).includes('\u001b['), 'no status line or bars on a pipe');
  });

  it('the CLI on a terminal: its status line shows how far each running host\'s copy is', async () => {
    const size = 16 * 1024 * 1024;
    const local = join(dir, 'tty.bin');
    writeFileSync(local, randomBytes(size));
    const home = join(dir, 'operator-tty');
    mkdirSync(home, { recursive: true });
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, NO_COLOR: '1', TERM: 'dumb' });
    // script(1) gives the CLI a real terminal for stderr; stdout goes to a file.
    const words = [process.execPath, CLI, 'put', '-i', aliceKey, '--accept-new-host', '--via', `alice@127.0.0.1:${gwPort}`, local, 'web01,web02,slow01:up/'];
    const command = `${words.map((w) => `'${w}'`).join(' ')} > '${join(dir, 'tty.out')}'`;
    const r = await cliResult(spawn('script', ['-qefc', command, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] }), 60_000);
    const screen = r.stdout.toString();
    assert.equal(r.code, 0, `${screen}\n${r.stderr}`);
    assert.match(screen, /running .*slow01 \d+\.\ds \d{1,3}%/, JSON.stringify(screen.slice(0, 2000)));
    assert.match(readFileSync(join(dir, 'tty.out'), 'utf8'), /\(3\): ok, 1 file, SHA-256 verified/);
  });
});

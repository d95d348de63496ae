/**
 * Files to many hosts through the gateway (issue 13 item 5, docs/gateway.md "Files to many
 * hosts"): a real gateway and five real daemons on 127.0.0.2-6 that trust the gateway's key
 * to act as alice. One put crosses the operator's link once; the gateway spools it, checks
 * its SHA-256 and pushes it to every permitted host, where each copy is verified and renamed
 * into place. A host that dies mid-way fails alone, a forbidden host is reported as denied,
 * and the spool file is gone afterwards.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { connect } from '../../src/client/connect.js';
import { rawChannel, transportOf, type Connection } from '../../src/client/connection.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { spoolDir } from '../../src/gateway/fanout-put.js';
import { runCli, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';

const N = 5;
const names = Array.from({ length: N }, (_, i) => `web0${i + 1}`);

/** Send one raw OPEN; resolve with its OPEN_FAIL, or 'opened' (then the channel is closed). */
function rawOpen(conn: Connection, open: Record<string, unknown>): Promise<{ code: string; message: string } | 'opened'> {
  return new Promise((resolve, reject) => {
    const channel = conn[rawChannel](open as never, {
      onOpen: () => {
        channel.close();
        resolve('opened');
      },
      onData: () => {},
      onExit: () => {},
      onClose: (_reason, detail) => {
        if (detail.openFail) resolve({ code: detail.openFail.code, message: detail.openFail.message });
        else if (detail.error) reject(detail.error);
      },
    });
  });
}

const putOpen = (extra: Record<string, unknown>) => ({ kind: 'file', window: 65536, maxPacket: 65536, params: { op: 'put', path: 'up/x', size: 3, mode: 0o644, mtimeMs: 0, resume: false }, ...extra });

describe('gateway: put to many hosts', { timeout: 120_000 }, () => {
  let dir: string;
  let gwDir: string;
  const hosts: TestDaemon[] = [];
  const homes: string[] = [];
  let gateway: Gateway;
  let gwPort: number;
  let aliceKey: string;
  const rows: AuditEvent[] = [];
  /** A host that accepts TCP and never answers: the gateway's per-host timeout must stop it alone. */
  let blackhole: NetServer;
  const held: Socket[] = [];

  before(async () => {
    blackhole = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.8', resolve));
    dir = tempDir('shellwire-gwput-');
    gwDir = join(dir, 'gateway');
    const pair = generateKeyPair('alice@test');
    aliceKey = join(dir, 'alice');
    writeFileSync(aliceKey, pair.privateText, { mode: 0o600 });
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    for (let i = 0; i < N; i++) {
      const d = await startDaemon({ host: `127.0.0.${i + 2}` });
      // Each host's alice has her own home: the daemons share this machine's file system.
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
    const inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, [
      'hosts:',
      ...hosts.map((d, i) => `  ${names[i]}: { address: 127.0.0.${i + 2}, port: ${d.port}, groups: [web] }`),
      // In the inventory, not permitted for alice.
      `  secret01: { address: 127.0.0.2, port: ${hosts[0]!.port}, groups: [secret] }`,
      `  slow01: { address: 127.0.0.8, port: ${(blackhole.address() as { port: number }).port}, groups: [web] }`,
    ].join('\n') + '\n');
    writeFileSync(join(gwDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${pair.publicLine}"]`, '    hosts: ["@web"]'].join('\n') + '\n');
    gateway = await Gateway.create({
      stateDir: gwDir, host: '127.0.0.1', port: 0, inventory,
      audit: { record: (e: AuditEvent) => void rows.push(e) },
      hostConnectTimeoutMs: 2_000,
    });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    for (const d of hosts) await d.stop().catch(() => {});
    for (const socket of held) socket.destroy();
    blackhole?.close();
    removeDir(dir);
  });

  const login = (): Promise<Connection> =>
    connect({ user: 'alice', host: '127.0.0.1', port: gwPort }, { identity: aliceKey, fingerprint: gateway.server.identity.fingerprint, env: {} });

  const spoolEmpty = () => !existsSync(spoolDir(gwDir)) || readdirSync(spoolDir(gwDir)).length === 0;

  it('crosses the operator link once; every host gets a byte-exact, verified copy; one audit row per copy', async () => {
    const size = 4 * 1024 * 1024;
    const data = randomBytes(size);
    const local = join(dir, 'payload.bin');
    writeFileSync(local, data, { mode: 0o640 });
    const conn = await login();
    try {
      const socket = conn[transportOf]().socket;
      const before = socket.bytesWritten;
      const result = await conn.putToHosts(local, names, 'up/');
      const sent = socket.bytesWritten - before;
      assert.deepEqual(result.hosts.map((h) => [h.host, h.ok, h.bytes]), names.map((n) => [n, true, size]));
      for (const h of result.hosts) assert.equal(h.sha256, result.sha256);
      for (const home of homes) {
        const copy = join(home, 'up', 'payload.bin');
        assert.ok(readFileSync(copy).equals(data), `${copy} is byte-exact`);
        assert.equal(statSync(copy).mode & 0o777, 0o640);
        assert.deepEqual(readdirSync(join(home, 'up')).filter((n) => n.includes('payload')), ['payload.bin'], 'no partial file left');
      }
      // The same file to the same hosts, one relay view per host (the path `-r` still takes).
      const relayBefore = socket.bytesWritten;
      // At once, as `put -r --via` does: one gateway connection carries the five streams.
      await Promise.all(names.map((n) => conn.relay(n).put(local, 'up/relayed.bin')));
      const relayed = socket.bytesWritten - relayBefore;
      process.stderr.write(`operator link, ${N} hosts, ${size} bytes: put through the gateway ${sent} bytes, per-host relays ${relayed} bytes\n`);
      assert.ok(sent >= size && sent < size * 1.2, `the operator's link carried ${sent} bytes for a ${size}-byte file to ${N} hosts`);
      assert.ok(relayed > size * (N - 0.5), `per-host relays carry it ${N} times (${relayed})`);
    } finally {
      await conn.close();
    }
    const copies = rows.filter((e) => e.kind === 'file' && (e.detail as Record<string, unknown>).fanout === true);
    assert.deepEqual(copies.map((e) => (e.detail as Record<string, unknown>).host).sort(), names);
    for (const e of copies) {
      const d = e.detail as Record<string, unknown>;
      assert.equal(e.user, 'alice');
      assert.equal(d.as, 'alice');
      assert.equal(d.bytes, size);
      assert.match(String(d.sha256), /^[0-9a-f]{64}$/);
      assert.equal(d.outcome, 'ok');
      assert.match(String(d.path), /\/up\/payload\.bin$/);
    }
    assert.ok(spoolEmpty(), 'the spool file is gone');
  });

  it('a forbidden host is reported as denied with the single-host refusal; the others get the file', async () => {
    const local = join(dir, 'small.bin');
    writeFileSync(local, randomBytes(1000));
    const conn = await login();
    try {
      const result = await conn.putToHosts(local, ['web01', 'secret01', 'nosuch'], 'up/');
      assert.equal(result.hosts[0]!.ok, true);
      for (const [i, name] of [[1, 'secret01'], [2, 'nosuch']] as const) {
        const h = result.hosts[i]!;
        assert.equal(h.ok, false);
        assert.equal(h.error?.code, 'SW_ERR_DENIED');
        assert.equal(h.error?.message, `Denied: host "${name}" is not one alice may reach through this gateway (not in its inventory, or not in users.alice.hosts ["@web"] of its users.yaml); list the hosts alice may reach with: shellwire hosts --via GATEWAY.`);
      }
      // None permitted: the OPEN itself is refused, before any byte is sent.
      await assert.rejects(conn.putToHosts(local, ['secret01'], 'up/'), (err: Error & { code?: string }) => err.code === 'SW_ERR_DENIED' && /secret01/.test(err.message));
    } finally {
      await conn.close();
    }
    assert.ok(rows.some((e) => e.kind === 'denied' && (e.detail as Record<string, unknown>).host === 'secret01'));
    assert.ok(spoolEmpty());
  });

  it('a per-host timeout stops the host that does not answer; the others complete', async () => {
    const local = join(dir, 'small.bin');
    const conn = await login();
    try {
      const result = await conn.putToHosts(local, ['web01', 'slow01', 'web02'], 'up/', { hostTimeoutMs: 300 });
      assert.deepEqual(result.hosts.map((h) => [h.host, h.ok]), [['web01', true], ['slow01', false], ['web02', true]]);
      assert.equal(result.hosts[1]!.error?.code, 'SW_ERR_COMMAND_TIMED_OUT');
      assert.match(result.hosts[1]!.error!.message, /^slow01: timed out after 0\.3 s; the copy was stopped/);
    } finally {
      await conn.close();
    }
    assert.ok(spoolEmpty());
  });

  it('a daemon refuses hosts (it writes nothing); a gateway refuses hosts on anything but a file put, and beside host', async () => {
    const local = join(dir, 'small.bin');
    const direct = await hosts[0]!.connect();
    try {
      assert.deepEqual(await rawOpen(direct, putOpen({ hosts: ['web01'] })), { code: 'SW_ERR_BAD_REQUEST', message: 'this is a shellwire daemon, not a gateway: connect to it directly (drop --via) or name the gateway' });
      await assert.rejects(direct.putToHosts(local, ['web01'], 'up/'), /not a gateway/);
      assert.equal(existsSync(join(homes[0]!, 'up', 'x')), false);
    } finally {
      await direct.close();
    }
    const conn = await login();
    try {
      const exec = await rawOpen(conn, { kind: 'exec', window: 65536, maxPacket: 65536, hosts: ['web01'], params: { command: 'true' } });
      assert.equal((exec as { code: string }).code, 'SW_ERR_BAD_REQUEST');
      assert.match((exec as { message: string }).message, /"hosts" goes with a file put only/);
      const get = await rawOpen(conn, { kind: 'file', window: 65536, maxPacket: 65536, hosts: ['web01'], params: { op: 'get', path: 'up/x', offset: 0 } });
      assert.match((get as { message: string }).message, /"hosts" goes with a file put only/);
      const both = await rawOpen(conn, putOpen({ host: 'web01', hosts: ['web02'] }));
      assert.match((both as { message: string }).message, /either "host" \(one host\) or "hosts"/);
      await assert.rejects(conn.relay('web01').putToHosts(local, ['web01'], 'up/'), /host behind the gateway/);
    } finally {
      await conn.close();
    }
  });

  it('a file over the gateway\'s spool limit is refused before a byte is sent, with a message saying what to do', async () => {
    const small = await Gateway.create({ stateDir: join(dir, 'gateway-small'), host: '127.0.0.1', port: 0, inventory: gateway.inventoryFile, maxSpoolBytes: 1000, audit: false });
    const port = (await small.listen()).port;
    writeFileSync(join(dir, 'gateway-small', 'users.yaml'), readFileSync(join(gwDir, 'users.yaml')));
    assert.ok(small.server.reloadUsers().ok);
    const local = join(dir, 'two-k.bin');
    writeFileSync(local, randomBytes(2000));
    const conn = await connect({ user: 'alice', host: '127.0.0.1', port }, { identity: aliceKey, fingerprint: small.server.identity.fingerprint, env: {} });
    try {
      await assert.rejects(conn.putToHosts(local, names, 'up/'), (err: Error & { code?: string; errno?: string }) => {
        assert.equal(err.code, 'SW_ERR_BAD_REQUEST');
        assert.equal(err.errno, 'EFBIG');
        assert.match(err.message, /The file is 2000 bytes; this gateway spools at most 1000 bytes .*--max-spool/);
        return true;
      });
    } finally {
      await conn.close();
      await small.close(100);
    }
    assert.ok(!existsSync(spoolDir(join(dir, 'gateway-small'))) || readdirSync(spoolDir(join(dir, 'gateway-small'))).length === 0);
  });

  it('a spool that is too small, or fills up meanwhile, ends the put with a clear error and no spool file', async (t) => {
    const mnt = join(dir, 'gw-tmpfs');
    mkdirSync(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]).status !== 0) return t.skip('cannot mount a tmpfs here');
    let small: Gateway | null = null;
    try {
      small = await Gateway.create({ stateDir: mnt, host: '127.0.0.1', port: 0, inventory: gateway.inventoryFile, audit: false });
      const port = (await small.listen()).port;
      writeFileSync(join(mnt, 'users.yaml'), readFileSync(join(gwDir, 'users.yaml')));
      assert.ok(small.server.reloadUsers().ok);
      const conn = await connect({ user: 'alice', host: '127.0.0.1', port }, { identity: aliceKey, fingerprint: small.server.identity.fingerprint, env: {} });
      try {
        const big = join(dir, 'three-m.bin');
        writeFileSync(big, randomBytes(3 * 1024 * 1024));
        await assert.rejects(conn.putToHosts(big, names, 'up/'), (err: Error & { code?: string; errno?: string }) => {
          assert.equal(err.errno, 'ENOSPC');
          assert.match(err.message, /The gateway has \d+ bytes free in its spool .*the file is 3145728 bytes\. Nothing was sent to any host/);
          return true;
        });
        // Fits when it starts; the spool's file system fills while it arrives (slowly, so the filler wins).
        const mid = join(dir, 'one-m.bin');
        writeFileSync(mid, randomBytes(1024 * 1024));
        const spool = spoolDir(mnt);
        const filler = waitFor(() => existsSync(spool) && readdirSync(spool).length > 0, 10_000).then((seen) => {
          spawnSync('dd', ['if=/dev/zero', `of=${join(mnt, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
          return seen;
        });
        await assert.rejects(conn.putToHosts(mid, names, 'up/', { rateLimit: 512 * 1024 }), (err: Error & { code?: string; errno?: string }) => {
          assert.equal(err.code, 'SW_ERR_LOCAL_IO', err.message);
          assert.match(err.message, /spool \(.*\) is full \(ENOSPC\); nothing was sent to any host/);
          return true;
        });
        assert.equal(await filler, true);
        assert.deepEqual(readdirSync(spool), [], 'the spool file is gone');
        for (const home of homes) assert.equal(existsSync(join(home, 'up', 'one-m.bin')), false);
      } finally {
        await conn.close();
      }
    } finally {
      await small?.close(100);
      spawnSync('umount', ['-l', mnt]);
    }
  });

  it('the CLI: one host dying mid-way fails alone, named in the summary, exit 1; a forbidden host is denied; --json', async () => {
    const size = 96 * 1024 * 1024;
    const local = join(dir, 'big.bin');
    writeFileSync(local, randomBytes(size));
    const home = join(dir, 'operator');
    mkdirSync(home, { recursive: true });
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, NO_COLOR: '1' });
    const via = `alice@127.0.0.1:${gwPort}`;
    // web03's daemon goes away once its copy has begun.
    const partial = join(homes[2]!, 'up', '.big.bin.shellwire-part');
    const killer = waitFor(() => existsSync(partial) && statSync(partial).size > 0, 60_000).then(async (seen) => {
      if (seen) await hosts[2]!.server.close(0);
      return seen;
    });
    const r = await runCli(['put', '-i', aliceKey, '--accept-new-host', '--via', via, local, 'web[01-05],secret01:up/'], { env, timeoutMs: 90_000 });
    assert.equal(await killer, true, 'web03 began its copy before it was stopped');
    const out = r.stdout.toString();
    assert.equal(r.code, 1, `${out}\n${r.stderr}`);
    assert.match(out, /web\[01-02,04-05\] \(4\): ok, 1 file, SHA-256 verified/);
    assert.match(out, /web03: .*/);
    assert.match(out, /secret01: .*Denied: host "secret01" is not one alice may reach through this gateway/);
    for (const i of [0, 1, 3, 4]) assert.equal(statSync(join(homes[i]!, 'up', 'big.bin')).size, size);
    assert.equal(existsSync(join(homes[2]!, 'up', 'big.bin')), false, 'web03 has no half file under the name');
    assert.ok(spoolEmpty(), 'the spool file is gone');
    // --json: one result per host, then the summary.
    const small = join(dir, 'small.bin');
    const j = await runCli(['put', '-i', aliceKey, '--via', via, '--json', small, 'web[01-02]:up/'], { env });
    assert.equal(j.code, 0, j.stderr);
    const records = j.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const results = records.filter((x) => x.type === 'result');
    assert.deepEqual(results.map((x) => [x.host, x.status]).sort(), [['web01', 'ok'], ['web02', 'ok']]);
  });

  it('the CLI: an inventory whose via: is the gateway takes the same one-upload path (and -r keeps one stream per host)', async () => {
    const home = join(dir, 'inv-operator');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    writeFileSync(join(home, 'known_hosts'), `127.0.0.1:${gwPort} ${gateway.server.identity.fingerprint}\n`);
    writeFileSync(join(home, 'inventory.yaml'), [`via: alice@127.0.0.1:${gwPort}`, 'hosts:', ...names.map((n) => `  ${n}: { address: ${n}, groups: [web] }`), ''].join('\n'));
    const env = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, NO_COLOR: '1' });
    const local = join(dir, 'inv.bin');
    const data = randomBytes(300_000);
    writeFileSync(local, data);
    const live = [0, 1, 3, 4];
    const from = rows.length;
    const r = await runCli(['put', '-i', aliceKey, local, `web0[1-2],web0[4-5]:up/`], { env });
    assert.equal(r.code, 0, `${r.stdout.toString()}\n${r.stderr}`);
    assert.match(r.stdout.toString(), /web\[01-02,04-05\] \(4\): ok, 1 file, SHA-256 verified/);
    for (const i of live) assert.ok(readFileSync(join(homes[i]!, 'up', 'inv.bin')).equals(data));
    const fanned = rows.slice(from).filter((e) => e.kind === 'file' && (e.detail as Record<string, unknown>).fanout === true);
    assert.equal(fanned.length, live.length, 'one upload, pushed by the gateway to each host');
    // -r: each host's own relayed stream (no fan-out rows at the gateway).
    const tree = join(dir, 'tree');
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, 'a.bin'), data);
    const rfrom = rows.length;
    const rr = await runCli(['put', '-r', '-i', aliceKey, tree, `web0[1-2]:up/`], { env });
    assert.equal(rr.code, 0, `${rr.stdout.toString()}\n${rr.stderr}`);
    for (const i of [0, 1]) assert.ok(readFileSync(join(homes[i]!, 'up', 'tree', 'a.bin')).equals(data));
    assert.equal(rows.slice(rfrom).filter((e) => (e.detail as Record<string, unknown> | null)?.fanout === true).length, 0);
  });
});

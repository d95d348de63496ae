/**
 * A put whose target ends in '/' (issue 14 review, finding 4): `DIR/` means "into DIR", as
 * with cp and scp. It never creates a regular file called DIR when DIR is missing, whichever
 * client sent it: the daemon refuses such a target itself ("no such directory"), and a target
 * `DIR/` that exists gets the file under its own name. Checked on every path a put takes: the
 * library direct, a gateway relay, the gateway's fan-out put, a raw OPEN without a name, and
 * the CLI (direct and --via). Real daemon, real gateway, the CLI as a child process.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { openHashingReader } from '../../src/channel/file-hash.js';
import { connect } from '../../src/client/connect.js';
import { rawChannel, type Connection } from '../../src/client/connection.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { runCli, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { hostUsersText, keyFile, setHostUsers, type KeyFile } from '../helpers/gateway.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';

/** Send one raw put OPEN; resolve with its OPEN_FAIL, or 'opened' (then the channel is closed). */
function rawPut(conn: Connection, params: Record<string, unknown>): Promise<{ code: string; message: string } | 'opened'> {
  return new Promise((resolve, reject) => {
    const channel = conn[rawChannel]({ kind: 'file', window: 65536, maxPacket: 65536, params: { op: 'put', size: 3, mode: 0o644, mtimeMs: 0, resume: false, ...params } } as never, {
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

describe("put to a target ending in '/'", { timeout: 60_000 }, () => {
  let dir: string;
  let area: string;
  let daemon: TestDaemon;
  let gateway: Gateway;
  let gwPort: number;
  let alice: KeyFile;
  let local: string;
  let n = 0;
  /** A fresh pair of names under `area`: one existing directory, one missing path. */
  const fresh = () => {
    n += 1;
    const existing = join(area, `d${n}`);
    mkdirSync(existing);
    return { existing, missing: join(area, `m${n}`) };
  };
  const noFileNamed = (path: string) => assert.equal(existsSync(path), false, `${path} was not created`);
  const landedIn = (d: string) => assert.equal(readFileSync(join(d, 'note.txt'), 'utf8'), 'hi\n');

  before(async () => {
    dir = tempDir('shellwire-slash-');
    area = join(dir, 'area');
    mkdirSync(area);
    local = join(dir, 'note.txt');
    writeFileSync(local, 'hi\n');
    alice = keyFile(dir, 'alice');
    const gwDir = join(dir, 'gw');
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    daemon = await startDaemon();
    setHostUsers(daemon, hostUsersText([gwKey], ['alice']));
    const inventory = join(dir, 'inventory.yaml');
    writeFileSync(inventory, `hosts:\n  web01: { address: 127.0.0.1, port: ${daemon.port} }\n`);
    writeFileSync(join(gwDir, 'users.yaml'), ['users:', '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, '    hosts: ["*"]', ''].join('\n'));
    gateway = await Gateway.create({ stateDir: gwDir, host: '127.0.0.1', port: 0, inventory, audit: { record: () => {} } });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    await daemon?.stop();
    removeDir(dir);
  });

  const login = (): Promise<Connection> =>
    connect({ user: 'alice', host: '127.0.0.1', port: gwPort }, { identity: alice.file, fingerprint: gateway.server.identity.fingerprint, env: {} });

  it('the daemon refuses a raw put to DIR/ without a name, and to a missing DIR/ with one; it writes nothing', async () => {
    const { existing, missing } = fresh();
    const conn = await daemon.connect();
    try {
      const noName = await rawPut(conn, { path: `${existing}/` });
      assert.notEqual(noName, 'opened');
      assert.match((noName as { message: string }).message, new RegExp(`ends in '/'.*name the file, e\\.g\\. ${existing}/NAME`));
      const gone = await rawPut(conn, { path: `${missing}/`, name: 'note.txt' });
      assert.notEqual(gone, 'opened');
      assert.match((gone as { message: string }).message, /no such directory/);
      const dot = await rawPut(conn, { path: `${missing}/.`, name: 'note.txt' });
      assert.match((dot as { message: string }).message, /no such directory/);
      // A regular file spelled as a directory is not replaced.
      writeFileSync(join(area, 'plain'), 'keep');
      const plain = await rawPut(conn, { path: `${join(area, 'plain')}/`, name: 'note.txt' });
      assert.match((plain as { message: string }).message, /is not a directory/);
      assert.equal(readFileSync(join(area, 'plain'), 'utf8'), 'keep');
    } finally {
      await conn.close();
    }
    noFileNamed(missing);
  });

  it('library put, direct and through a gateway relay: into an existing DIR/, "no such directory" for a missing one', async () => {
    const direct = await daemon.connect();
    const gw = await login();
    try {
      for (const conn of [direct, gw.relay('web01')]) {
        const { existing, missing } = fresh();
        const ok = await conn.put(local, `${existing}/`);
        assert.equal(ok.remote, join(existing, 'note.txt'));
        landedIn(existing);
        await assert.rejects(conn.put(local, `${missing}/`), /no such directory/);
        noFileNamed(missing);
      }
    } finally {
      await direct.close();
      await gw.close();
    }
  });

  it("the gateway's fan-out put: into an existing DIR/, a per-host \"no such directory\" for a missing one", async () => {
    const { existing, missing } = fresh();
    const gw = await login();
    try {
      const ok = await gw.putToHosts(local, ['web01'], `${existing}/`);
      assert.equal(ok.hosts[0]!.ok, true, JSON.stringify(ok.hosts[0]));
      landedIn(existing);
      const bad = await gw.putToHosts(local, ['web01'], `${missing}/`);
      assert.equal(bad.hosts[0]!.ok, false);
      assert.match(bad.hosts[0]!.error!.message, /no such directory/);
      // Without the file's name (as a web push that sent none): refused, never a file called DIR.
      for (const target of [existing, missing]) {
        const handle = await open(local, 'r');
        try {
          const source = { label: 'upload', size: 3, mode: 0o644, mtimeMs: 0, reader: openHashingReader(handle.fd) };
          const unnamed = await gw.putSourceToHosts(source, ['web01'], `${target}/`);
          assert.equal(unnamed.hosts[0]!.ok, false);
          assert.match(unnamed.hosts[0]!.error!.message, target === existing ? /ends in '\/'.*name the file/ : /no such directory/);
        } finally {
          await handle.close();
        }
      }
    } finally {
      await gw.close();
    }
    noFileNamed(missing);
  });

  it('the CLI, direct and --via: `put f host:DIR/` lands in DIR; a missing DIR/ fails with "no such directory" and creates nothing', async () => {
    const home = join(dir, 'operator');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    writeFileSync(join(home, 'known_hosts'), `127.0.0.1:${gwPort} ${gateway.server.identity.fingerprint}\n`);
    const viaEnv = cleanEnv({ SHELLWIRE_HOME: home, HOME: home, NO_COLOR: '1' });
    const ways: Array<[string, string[], NodeJS.ProcessEnv, string]> = [
      ['direct', [], daemon.env, daemon.address],
      ['--via', ['-i', alice.file, '--via', `alice@127.0.0.1:${gwPort}`], viaEnv, 'web01'],
    ];
    for (const [label, extra, env, host] of ways) {
      const { existing, missing } = fresh();
      const ok = await runCli(['put', ...extra, local, `${host}:${existing}/`], { env });
      assert.equal(ok.code, 0, `${label}: ${ok.stdout.toString()}${ok.stderr}`);
      landedIn(existing);
      const bad = await runCli(['put', ...extra, local, `${host}:${missing}/`], { env });
      assert.notEqual(bad.code, 0, label);
      assert.match(`${bad.stdout.toString()}${bad.stderr}`, /no such directory/, label);
      noFileNamed(missing);
      assert.equal(statSync(existing).isDirectory(), true);
    }
  });
});

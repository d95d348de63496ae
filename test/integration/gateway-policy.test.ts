/**
 * The gateway's policy in force and its audit rows (issue 13, attack findings 3, 5, 6): a
 * real gateway and a real daemon on loopback; operators log in with their keys.
 *
 * - Every OPEN is judged by the gateway's users.yaml in force at that OPEN, and a reload that
 *   removes an operator (or her key) closes her live connection.
 * - An operator's cwd and paths are the host's business: the gateway judges kinds and command
 *   words only, never against its own machine's accounts, homes or files.
 * - Policy refusals are `denied` rows with host and as; operational failures are `failed`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { connect } from '../../src/client/connect.js';
import { transportOf, type Connection } from '../../src/client/connection.js';
import { FrameType } from '../../src/protocol/frame.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { processAlive, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';
import { hostUsersText, keyFile, setHostUsers, type KeyFile } from '../helpers/gateway.js';
import { generateKeyPair } from '../../src/auth/ssh-key.js';
import type { ShellwireError } from '../../src/errors.js';

/** Add `fields` to every OPEN this connection sends (what `--via` does for `host`; a forger for the rest). */
function stamp(conn: Connection, fields: Record<string, unknown>): Connection {
  const frames = conn[transportOf]();
  const send = frames.send.bind(frames);
  frames.send = (type, channel, payload) => {
    if (type === FrameType.OPEN && payload) {
      const open = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
      payload = Buffer.from(JSON.stringify({ ...open, ...fields }));
    }
    send(type, channel, payload);
  };
  return conn;
}

const isCode = (code: string, pattern?: RegExp) => (err: ShellwireError) => {
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return true;
};

describe('gateway: the policy in force at each OPEN, judged where it applies, audited as what it is', { timeout: 60_000 }, () => {
  let dir: string;
  let gwDir: string;
  let host: TestDaemon;
  let gateway: Gateway;
  let gwPort: number;
  const keys: Record<string, KeyFile> = {};
  const rows: AuditEvent[] = [];
  const logLines: string[] = [];
  let inventoryFile: string;

  const gatewayUsers = (over: Record<string, string[] | null> = {}) => {
    const entries: Record<string, string[]> = {
      alice: [`    keys: ["${keys.alice!.line}"]`, '    hosts: ["web01", "dead01"]'],
      // Command rules at the gateway; her gateway-local account (root: no runAs) has home /root.
      carol: [`    keys: ["${keys.carol!.line}"]`, '    channels: [exec]', '    commands: { allow: ["echo ...", "ls ...", "/usr/bin/env ..."], deny: ["ls /root"] }', '    hosts: ["web01"]'],
      dave: [`    keys: ["${keys.dave!.line}"]`, '    hosts: ["web01"]'],
      erin: [`    keys: ["${keys.erin!.line}"]`, '    hosts: ["web01"]'],
    };
    for (const [name, lines] of Object.entries(over)) {
      if (lines === null) delete entries[name];
      else entries[name] = lines;
    }
    return ['users:', ...Object.entries(entries).flatMap(([name, lines]) => [`  ${name}:`, ...lines])].join('\n') + '\n';
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shellwire-gateway-policy-'));
    for (const name of ['alice', 'carol', 'dave', 'erin']) keys[name] = keyFile(dir, name);
    gwDir = join(dir, 'gateway');
    const gwKey = loadOrCreateGatewayKey(gwDir).publicLine;
    host = await startDaemon();
    setHostUsers(host, hostUsersText([gwKey], ['alice', 'carol', 'dave', 'erin']));
    inventoryFile = join(dir, 'inventory.yaml');
    writeFileSync(inventoryFile, ['hosts:', `  web01: { address: 127.0.0.1, port: ${host.port}, groups: [web] }`, '  dead01: { address: 127.0.0.1, port: 1 }'].join('\n') + '\n');
    writeFileSync(join(gwDir, 'users.yaml'), gatewayUsers());
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _e, done) => void (logLines.push(chunk.toString()), done()) }));
    gateway = await Gateway.create({
      stateDir: gwDir, host: '127.0.0.1', port: 0, inventory: inventoryFile, logger,
      audit: { record: (e: AuditEvent) => void rows.push(e) },
      hostConnectTimeoutMs: 2_000,
    });
    gwPort = (await gateway.listen()).port;
  });

  after(async () => {
    await gateway?.close(500);
    await host?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const login = async (name: string, host = 'web01') =>
    stamp(await connect({ user: name, host: '127.0.0.1', port: gwPort }, { identity: keys[name]!.file, fingerprint: gateway.server.identity.fingerprint, env: {} }), { host });

  const reload = (text: string) => {
    writeFileSync(join(gwDir, 'users.yaml'), text);
    const result = gateway.server.reloadUsers();
    assert.ok(result.ok, JSON.stringify(result));
  };

  it("a reload that changes an operator's hosts or command rules holds for the next OPEN on her live connection", async () => {
    const alice = await login('alice');
    const carol = await login('carol');
    try {
      assert.equal((await alice.exec('echo before')).stdout, 'before\n');
      assert.equal((await carol.exec('ls /')).exitCode, 0);
      reload(gatewayUsers({
        alice: [`    keys: ["${keys.alice!.line}"]`, '    hosts: ["dead01"]'],
        carol: [`    keys: ["${keys.carol!.line}"]`, '    channels: [exec]', '    commands: { allow: ["echo ..."] }', '    hosts: ["web01"]', '    as: erin'],
      }));
      await assert.rejects(alice.exec('echo after'), isCode('SW_ERR_DENIED', /host "web01" is not one alice may reach through this gateway/));
      await assert.rejects(carol.exec('ls /'), isCode('SW_ERR_DENIED', /users\.carol\.commands\.allow \("echo \.\.\."\)/));
      assert.equal((await carol.exec('echo still')).stdout, 'still\n');
      // Her new `as:` holds too: the host ran it as erin.
      const end = rows.find((e) => e.kind === 'command-end' && e.command === 'echo still');
      assert.deepEqual([end?.osUser, (end?.detail as { as?: string } | undefined)?.as], ['erin', 'erin']);
    } finally {
      reload(gatewayUsers());
      await alice.close();
      await carol.close();
    }
  });

  it("a reload that removes an operator, or the key this login used, closes her connection and stops what she runs", async () => {
    const dave = await login('dave');
    const erin = await login('erin');
    const proc = dave.spawn('sleep 300 & echo $!; wait');
    const pid = await new Promise<number>((resolve) => proc.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
    assert.ok(processAlive(pid));
    const lost = proc.exited.then(() => null, (err: ShellwireError) => err);
    const erinClosed = new Promise<void>((resolve) => erin.once('close', () => resolve()));
    try {
      reload(gatewayUsers({ dave: null, erin: [`    keys: ["${generateKeyPair('other@test').publicLine}"]`, '    hosts: ["web01"]'] }));
      const daveErr = await lost;
      assert.equal(daveErr?.code, 'SW_ERR_DENIED', String(daveErr?.message));
      assert.match(daveErr!.message, /dave is no longer permitted here: users\.yaml has no user "dave"/);
      await erinClosed;
      await assert.rejects(erin.exec('echo never'), isCode('SW_ERR_DENIED', /the key this login used \(SHA256:\S+\) is no longer in users\.erin\.keys/));
      assert.ok(await waitFor(() => !processAlive(pid), 5_000), `the command (${pid}) on the host stopped with dave's connection`);
      const revoked = rows.filter((e) => e.kind === 'denied' && (e.detail as { revoked?: boolean }).revoked === true).map((e) => e.user);
      assert.deepEqual(revoked.sort(), ['dave', 'erin']);
    } finally {
      reload(gatewayUsers());
      dave.destroy();
      erin.destroy();
    }
  });

  it("a cwd and paths are the host's business: not judged against the gateway's own accounts or homes", async () => {
    const first = rows.length;
    const workDir = join(dir, 'work');
    mkdirSync(workDir);
    const carol = await login('carol');
    try {
      // carol's gateway-local account is root (home /root): the host's carol may use any cwd.
      const r = await carol.exec('ls', { cwd: workDir });
      assert.equal(r.exitCode, 0);
      // A program found by name on the host; the gateway does not look it up on its own disk.
      const env = await carol.exec(['/usr/bin/env'], { reject: false });
      assert.equal(env.exitCode, 0);
      // Command rules still hold at the gateway, deny rules included.
      await assert.rejects(carol.exec('ls /root'), isCode('SW_ERR_DENIED', /commands\.deny\[0\] \("ls \/root"\)/));
      await assert.rejects(carol.exec('ls //root/'), isCode('SW_ERR_DENIED', /commands\.deny\[0\]/));
      await assert.rejects(carol.exec('cat /etc/hostname'), isCode('SW_ERR_DENIED', /commands\.allow/));
    } finally {
      await carol.close();
    }
    // No warning about gateway-local accounts reading the state dir (nothing of carol's runs here).
    assert.equal(logLines.filter((l) => /can read the daemon's state dir/.test(l)).length, 0, logLines.join(''));
    // Gateway rows name the host user (as), never an account of the gateway's machine.
    const carolRows = rows.slice(first).filter((e) => e.user === 'carol' && e.kind !== 'disconnect');
    assert.ok(carolRows.length > 0);
    for (const row of carolRows) assert.equal(row.osUser, 'carol', JSON.stringify(row));
  });

  it('audit: a forged onBehalfOf is a denied row; policy denials carry host and as; operational failures are failed rows', async () => {
    const forger = stamp(await login('alice'), { onBehalfOf: { user: 'root', operator: 'mallory' } });
    try {
      await assert.rejects(forger.exec('echo never'), isCode('SW_ERR_BAD_REQUEST', /onBehalfOf/));
    } finally {
      await forger.close();
    }
    const forged = rows.find((e) => e.kind === 'denied' && e.user === 'alice' && (e.detail as { onBehalfOf?: unknown }).onBehalfOf !== undefined);
    assert.ok(forged, 'the forged onBehalfOf left a denied row');
    assert.deepEqual((forged.detail as { onBehalfOf: unknown }).onBehalfOf, { user: 'root', operator: 'mallory' });
    assert.equal((forged.detail as { host: string }).host, 'web01');

    const carol = await login('carol');
    try {
      await assert.rejects(carol.exec('rm -rf /nothing'), isCode('SW_ERR_DENIED'));
      await assert.rejects(carol.list('/'), isCode('SW_ERR_DENIED', /may not open file channels/));
    } finally {
      await carol.close();
    }
    const denials = rows.filter((e) => e.kind === 'denied' && e.user === 'carol' && /rm -rf|file channels/.test(String(e.command ?? (e.detail as { reason: string }).reason)));
    assert.equal(denials.length, 2, JSON.stringify(denials));
    for (const d of denials) assert.deepEqual([(d.detail as { host: string }).host, (d.detail as { as: string }).as], ['web01', 'carol']);

    const alice = await login('alice', 'dead01');
    try {
      await assert.rejects(alice.exec('echo never'), isCode('SW_ERR_CONNECT_FAILED'));
    } finally {
      await alice.close();
    }
    const unreachable = rows.filter((e) => (e.detail as { host?: string } | undefined)?.host === 'dead01');
    assert.deepEqual(unreachable.map((e) => e.kind), ['failed']);
    assert.equal(((unreachable[0]!.detail as { outcome: { code: string } }).outcome).code, 'SW_ERR_CONNECT_FAILED');
  });
});

/**
 * Onward identity on a host (issue 13 item 2, docs/protocol.md "Gateway"): a gateway logs in
 * to a real daemon with its own key and opens channels `onBehalfOf: { user, operator }`. The
 * host lets it act only as the users its `actAs` names, runs the channel under that user's
 * whole policy (OS account, command rules, channels, file roots), records the gateway and the
 * operator in the audit rows, keeps one operator's session from another's on the shared
 * connection, and refuses an OPEN meant for a gateway (`host`) with a message that says so.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir } from '../helpers/fixtures.js';
import { RawClient } from '../helpers/raw-client.js';
import { generateKeyPair, parsePrivateKey, signAuth, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LENGTH } from '../../src/auth/ssh-key.js';
import { FrameType, encodeFrame } from '../../src/protocol/frame.js';
import { encodeJson, FEATURES, PROTOCOL_MAGIC } from '../../src/protocol/messages.js';
import { ErrorCode } from '../../src/errors.js';
import type { AuditEvent } from '../../src/audit/audit-event.js';

const isRoot = process.getuid?.() === 0;
const ACCOUNT = 'swobo1';

/** A raw connection logged in as `user` with `key`: it can put any field on an OPEN. */
async function loginWithKey(port: number, user: string, keyText: string): Promise<RawClient> {
  const key = parsePrivateKey(keyText);
  const client = await RawClient.open(port);
  const exporter = client.socket.exportKeyingMaterial(AUTH_EXPORTER_LENGTH, AUTH_EXPORTER_LABEL, Buffer.alloc(0));
  client.write(encodeFrame(FrameType.HELLO, 0, encodeJson({
    magic: PROTOCOL_MAGIC, versions: [1], features: [...FEATURES], client: 'on-behalf-test', user,
    auth: [{ method: 'publickey', user, publicKey: key.publicKey.line, signature: signAuth(key, user, exporter).toString('base64') }],
  })));
  const frame = await client.nextFrame((f) => f.type === FrameType.WELCOME || f.type === FrameType.GOODBYE);
  assert.equal(frame.type, FrameType.WELCOME, frame.payload.toString());
  return client;
}

interface Opened {
  type: FrameType;
  body: Record<string, unknown>;
}

/** OPEN on `channel` and wait for OPEN_OK or OPEN_FAIL. */
async function open(client: RawClient, channel: number, fields: Record<string, unknown>): Promise<Opened> {
  client.sendJson(FrameType.OPEN, channel, { window: 1 << 20, maxPacket: 65536, ...fields });
  const frame = await client.nextFrame((f) => f.channel === channel && (f.type === FrameType.OPEN_OK || f.type === FrameType.OPEN_FAIL));
  return { type: frame.type, body: JSON.parse(frame.payload.toString('utf8')) as Record<string, unknown> };
}

/** OPEN an exec channel and collect its STDOUT up to EXIT; then finish the close handshake. */
async function run(client: RawClient, channel: number, fields: Record<string, unknown>): Promise<{ opened: Opened; stdout: string; exit: Record<string, unknown> | null }> {
  const opened = await open(client, channel, { kind: 'exec', ...fields });
  if (opened.type !== FrameType.OPEN_OK) return { opened, stdout: '', exit: null };
  const out: Buffer[] = [];
  for (;;) {
    const frame = await client.nextFrame((f) => f.channel === channel && (f.type === FrameType.STDOUT || f.type === FrameType.EXIT));
    if (frame.type === FrameType.STDOUT) out.push(frame.payload);
    else {
      await client.nextFrame((f) => f.channel === channel && f.type === FrameType.CLOSE);
      client.send(FrameType.CLOSE, channel);
      return { opened, stdout: Buffer.concat(out).toString('utf8'), exit: JSON.parse(frame.payload.toString('utf8')) as Record<string, unknown> };
    }
  }
}

describe('a gateway acting on operators\' behalf on a daemon', { skip: !isRoot && 'needs root (useradd, runAs)' }, () => {
  let d: TestDaemon;
  let dir: string;
  let gatewayKey: string;
  let gw2Key: string;
  let usersYaml: (changes?: { gatewayActAs?: string; deployAllow?: string; extra?: string[] }) => string;
  const reload = (text: string) => {
    writeFileSync(join(d.server.stateDir, 'users.yaml'), text);
    const reloaded = d.server.reloadUsers();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
  };
  let createdAccount = false;
  const rows: AuditEvent[] = [];
  let gw: RawClient;
  let next = 1;
  const id = () => next++;

  before(async () => {
    try {
      execFileSync('getent', ['passwd', ACCOUNT], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['-m', '-s', '/bin/sh', ACCOUNT]);
      createdAccount = true;
    }
    dir = tempDir();
    mkdirSync(join(dir, 'ops-files'));
    writeFileSync(join(dir, 'ops-files', 'a.txt'), 'a\n');
    const pair = generateKeyPair('shellwire-gateway@bastion');
    gatewayKey = pair.privateText;
    const pair2 = generateKeyPair('gw2@bastion');
    gw2Key = pair2.privateText;
    d = await startDaemon({ audit: { record: (event) => rows.push(event) } });
    usersYaml = (changes = {}) => [
      'users:',
      '  gateway:',
      `    keys: ["${pair.publicLine}"]`,
      `    actAs: [${changes.gatewayActAs ?? 'deploy, ops'}]`,
      '  gw2:',
      `    keys: ["${pair2.publicLine}"]`,
      '    actAs: [ops]',
      '    allowRoot: true',
      '    channels: [exec, session]',
      '  deploy:',
      `    runAs: ${ACCOUNT}`,
      `    commands: { allow: [${changes.deployAllow ?? '"id -un", "printenv HOME"'}] }`,
      '  ops:',
      '    allowRoot: true',
      '    channels: [exec, session, file]',
      `    fileRoots: [${join(dir, 'ops-files')}]`,
      '  stranger:',
      '    allowRoot: true',
      ...(changes.extra ?? []),
    ].join('\n') + '\n';
    reload(usersYaml());
    gw = await loginWithKey(d.port, 'gateway', gatewayKey);
  });

  after(async () => {
    gw?.destroy();
    await d?.stop();
    if (dir) removeDir(dir);
    if (createdAccount) execFileSync('userdel', ['-r', ACCOUNT], { stdio: 'ignore' });
  });

  it('acting as a user in actAs runs the command as that user\'s OS account, under that user\'s command rules', async () => {
    const who = await run(gw, id(), { command: 'id -un', onBehalfOf: { user: 'deploy', operator: 'alice' } });
    assert.equal(who.opened.type, FrameType.OPEN_OK, JSON.stringify(who.opened.body));
    assert.equal(who.stdout, `${ACCOUNT}\n`);
    assert.equal(who.exit?.exitCode, 0);
    const home = await run(gw, id(), { command: 'printenv HOME', onBehalfOf: { user: 'deploy', operator: 'alice' } });
    assert.equal(home.stdout, execFileSync('getent', ['passwd', ACCOUNT], { encoding: 'utf8' }).split(':')[5] + '\n', "deploy's environment, not the gateway's");
    // deploy's allow list, not the gateway's (which has none): anything else is refused, naming deploy's rule.
    const other = await run(gw, id(), { command: 'uname', onBehalfOf: { user: 'deploy', operator: 'alice' } });
    assert.equal(other.opened.type, FrameType.OPEN_FAIL);
    assert.equal(other.opened.body.code, ErrorCode.DENIED);
    assert.match(String(other.opened.body.message), /users\.deploy\.commands\.allow/);
    // ... and deploy's channels: command rules mean no terminal.
    const tty = await open(gw, id(), { kind: 'exec', pty: { term: 'xterm', cols: 80, rows: 24 }, onBehalfOf: { user: 'deploy', operator: 'alice' } });
    assert.equal(tty.type, FrameType.OPEN_FAIL);
    assert.equal(tty.body.code, ErrorCode.DENIED);
  });

  it('acting as a user not in actAs is refused with SW_ERR_DENIED naming the rule', async () => {
    const refused = await run(gw, id(), { command: 'id -un', onBehalfOf: { user: 'stranger', operator: 'alice' } });
    assert.equal(refused.opened.type, FrameType.OPEN_FAIL);
    assert.equal(refused.opened.body.code, ErrorCode.DENIED);
    assert.equal(refused.opened.body.message, 'Denied: gateway may not act as stranger (users.yaml: users.gateway.actAs).');
    // A name that is no user at all: the same refusal (nothing about which users exist).
    const none = await open(gw, id(), { kind: 'exec', command: 'true', onBehalfOf: { user: 'nobody', operator: 'alice' } });
    assert.equal(none.body.code, ErrorCode.DENIED);
    assert.equal(none.body.message, 'Denied: gateway may not act as nobody (users.yaml: users.gateway.actAs).', 'nothing about which users exist or which it may act as');
    const denied = rows.find((r) => r.kind === 'denied' && (r.detail?.onBehalfOf as { user?: string } | undefined)?.user === 'stranger');
    assert.ok(denied, 'the refusal is in the audit trail');
    assert.equal(denied.user, 'gateway');
    assert.deepEqual(denied.detail?.onBehalfOf, { user: 'stranger', operator: 'alice' });
  });

  it("the host's audit rows name the acted-as user, with the gateway (via) and the operator in detail", async () => {
    rows.length = 0;
    const ran = await run(gw, id(), { command: 'id -un', onBehalfOf: { user: 'deploy', operator: 'carol' } });
    assert.equal(ran.exit?.exitCode, 0);
    const commandRows = rows.filter((r) => r.kind === 'command-start' || r.kind === 'command-end');
    assert.equal(commandRows.length, 2, JSON.stringify(rows));
    for (const row of commandRows) {
      assert.equal(row.user, 'deploy');
      assert.equal(row.osUser, ACCOUNT);
      assert.equal(row.detail?.via, 'gateway');
      assert.equal(row.detail?.operator, 'carol');
    }
    // A policy refusal of an acted-as user is recorded the same way.
    await open(gw, id(), { kind: 'exec', command: 'uname', onBehalfOf: { user: 'deploy', operator: 'carol' } });
    const denied = rows.find((r) => r.kind === 'denied');
    assert.equal(denied?.user, 'deploy');
    assert.equal(denied?.detail?.via, 'gateway');
    assert.equal(denied?.detail?.operator, 'carol');
  });

  it('file channels run under the acted-as user\'s file roots, and their rows say via and operator', async () => {
    rows.length = 0;
    const inside = await open(gw, id(), { kind: 'file', op: 'list', path: join(dir, 'ops-files'), onBehalfOf: { user: 'ops', operator: 'alice' } });
    assert.equal(inside.type, FrameType.OPEN_OK, JSON.stringify(inside.body));
    const outside = await open(gw, id(), { kind: 'file', op: 'stat', path: '/etc/passwd', onBehalfOf: { user: 'ops', operator: 'alice' } });
    assert.equal(outside.type, FrameType.OPEN_FAIL, "ops's fileRoots hold, not the gateway's");
    assert.match(String(outside.body.message), /users\.ops\.fileRoots/);
    const refusedRow = rows.find((r) => r.kind === 'file' && r.detail?.path === '/etc/passwd');
    assert.equal(refusedRow?.user, 'ops');
    assert.equal(refusedRow?.detail?.via, 'gateway');
    assert.equal(refusedRow?.detail?.operator, 'alice');
  });

  it("an OPEN carrying host (meant for a gateway) is refused: this is a daemon, not a gateway", async () => {
    for (const fields of [{ kind: 'exec', command: 'id -un' }, { kind: 'session' }, { kind: 'file', op: 'stat', path: '/' }]) {
      const refused = await open(gw, id(), { ...fields, host: 'web01', onBehalfOf: { user: 'ops', operator: 'alice' } });
      assert.equal(refused.type, FrameType.OPEN_FAIL, JSON.stringify(fields));
      assert.equal(refused.body.code, ErrorCode.BAD_REQUEST);
      assert.equal(refused.body.message, 'this is a shellwire daemon, not a gateway: connect to it directly (drop --via) or name the gateway');
    }
  });

  it("one operator cannot use another operator's session on the shared connection", async () => {
    const session = id();
    const opened = await open(gw, session, { kind: 'session', onBehalfOf: { user: 'ops', operator: 'alice' } });
    assert.equal(opened.type, FrameType.OPEN_OK, JSON.stringify(opened.body));
    const own = await run(gw, id(), { command: 'cd /tmp && export SECRET=alice-only', session, onBehalfOf: { user: 'ops', operator: 'alice' } });
    assert.equal(own.exit?.exitCode, 0, 'the owner uses her session (the control)');
    // Bob acts as the same host user, through the same gateway connection: still not his session.
    const bob = await run(gw, id(), { command: 'echo "$SECRET"; pwd', session, onBehalfOf: { user: 'ops', operator: 'bob' } });
    assert.equal(bob.opened.type, FrameType.OPEN_FAIL, `bob read alice's session: ${bob.stdout}`);
    assert.equal(bob.opened.body.code, ErrorCode.DENIED);
    assert.match(String(bob.opened.body.message), /session channel \d+ was opened for another user or operator/);
    // Nor another host user, whoever the operator.
    const deploy = await open(gw, id(), { kind: 'exec', command: 'pwd', session, onBehalfOf: { user: 'deploy', operator: 'alice' } });
    assert.equal(deploy.type, FrameType.OPEN_FAIL);
    // The owner's state is what she left.
    const again = await run(gw, id(), { command: 'echo "$SECRET"; pwd', session, onBehalfOf: { user: 'ops', operator: 'alice' } });
    assert.equal(again.stdout, 'alice-only\n/tmp\n');
  });

  it("a gateway's own session and an operator's are kept apart, both ways", async () => {
    // gw2 may run commands as itself too (channels), and act as ops.
    const gw2 = await loginWithKey(d.port, 'gw2', gw2Key);
    try {
      const mine = 1;
      assert.equal((await open(gw2, mine, { kind: 'session' })).type, FrameType.OPEN_OK);
      const borrowed = await open(gw2, 2, { kind: 'exec', command: 'pwd', session: mine, onBehalfOf: { user: 'ops', operator: 'alice' } });
      assert.equal(borrowed.type, FrameType.OPEN_FAIL, "an operator used the gateway's own session");
      assert.equal(borrowed.body.code, ErrorCode.DENIED);
      const theirs = 3;
      assert.equal((await open(gw2, theirs, { kind: 'session', onBehalfOf: { user: 'ops', operator: 'alice' } })).type, FrameType.OPEN_OK);
      const asItself = await open(gw2, 4, { kind: 'exec', command: 'pwd', session: theirs });
      assert.equal(asItself.type, FrameType.OPEN_FAIL, "the gateway used an operator's session as itself");
      assert.equal(asItself.body.code, ErrorCode.DENIED);
      assert.match(String(asItself.body.message), /session channel 3 was opened for another user or operator/);
      const own = await run(gw2, 5, { command: 'pwd', session: mine });
      assert.equal(own.exit?.exitCode, 0, 'its own session still serves it (the control)');
    } finally {
      gw2.destroy();
    }
  });

  it('the gateway user, with actAs and no channels of its own, cannot run commands as itself', async () => {
    const self = await open(gw, id(), { kind: 'exec', command: 'id -un' });
    assert.equal(self.type, FrameType.OPEN_FAIL);
    assert.equal(self.body.code, ErrorCode.DENIED);
    assert.match(String(self.body.message), /user "gateway" may not open exec channels \(users\.gateway\.channels is \[\]\)/);
    const file = await open(gw, id(), { kind: 'file', op: 'stat', path: '/' });
    assert.equal(file.body.code, ErrorCode.DENIED);
  });

  it("a reload (SIGHUP) holds for the gateway's next channel on its open connection, and the daemon's token acts as nobody", async () => {
    try {
      // deploy's rules tightened, ops no longer in the gateway's actAs; a users.yaml user
      // named like the daemon's account (root) with an actAs of its own.
      reload(usersYaml({ gatewayActAs: 'deploy', deployAllow: '"printenv HOME"', extra: ['  root:', '    allowRoot: true', '    actAs: [ops]'] }));
      const loosened = await open(gw, id(), { kind: 'exec', command: 'id -un', onBehalfOf: { user: 'deploy', operator: 'alice' } });
      assert.equal(loosened.type, FrameType.OPEN_FAIL, "deploy's old allow list still held on the pooled connection");
      assert.match(String(loosened.body.message), /users\.deploy\.commands\.allow/);
      const revoked = await open(gw, id(), { kind: 'exec', command: 'true', onBehalfOf: { user: 'ops', operator: 'alice' } });
      assert.equal(revoked.type, FrameType.OPEN_FAIL, 'a revoked actAs still held on the pooled connection');
      assert.equal(revoked.body.message, 'Denied: gateway may not act as ops (users.yaml: users.gateway.actAs).');
      const still = await run(gw, id(), { command: 'printenv HOME', onBehalfOf: { user: 'deploy', operator: 'alice' } });
      assert.equal(still.exit?.exitCode, 0, 'what is still granted works (the control)');
      const admin = await RawClient.open(d.port);
      try {
        await admin.authenticate(d.token);
        const asOps = await open(admin, 1, { kind: 'exec', command: 'true', onBehalfOf: { user: 'ops', operator: 'alice' } });
        assert.equal(asOps.type, FrameType.OPEN_FAIL, "the daemon's token took the actAs of the users.yaml user of the same name");
        assert.equal(asOps.body.code, ErrorCode.DENIED);
      } finally {
        admin.destroy();
      }
    } finally {
      reload(usersYaml());
    }
  });
});

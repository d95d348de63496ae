/**
 * `shellwire user|key|token … --state-dir <gateway state dir>` (issue 14 review, finding 9):
 * docs/web.md sets a console password with `user passwd NAME --state-dir GWDIR`. A gateway's
 * users.yaml has operator fields a daemon's has not (hosts, as, record); the commands must
 * check it by the gateway's rules (recognised by its key file, or --gateway) and tell the
 * running gateway to reload. A real `shellwire gateway` child process; the CLI as a child.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/client/connect.js';
import { loadOrCreateGatewayKey } from '../../src/gateway/gateway-key.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { keyFile, startGatewayProcess, type KeyFile } from '../helpers/gateway.js';
import { cleanEnv, removeDir, tempDir } from '../helpers/fixtures.js';

const PASSWORD = 'a web console password';

describe('user commands on a gateway state dir', { timeout: 60_000 }, () => {
  let dir: string;
  let gwDir: string;
  let child: ChildProcess;
  let port: number;
  let fingerprint: string;
  let alice: KeyFile;
  let stderr = '';
  const env = () => cleanEnv({ SHELLWIRE_HOME: join(dir, 'home') });

  before(async () => {
    dir = tempDir('shellwire-users-gw-');
    gwDir = join(dir, 'gw');
    mkdirSync(join(dir, 'home'), { mode: 0o700 });
    loadOrCreateGatewayKey(gwDir);
    alice = keyFile(dir, 'alice');
    writeFileSync(join(gwDir, 'inventory.yaml'), 'hosts:\n  web01: { address: 127.0.0.1, port: 9 }\n');
    writeFileSync(join(gwDir, 'users.yaml'), [
      'settings:', '  passwordLogin: true',
      'users:',
      '  alice:', '    allowRoot: true', `    keys: ["${alice.line}"]`, '    hosts: ["*"]', '    as: ops', '    record: { input: true }',
      '',
    ].join('\n'));
    const started = await startGatewayProcess(['--state-dir', gwDir, '--log-level', 'info'], (t) => (stderr += t));
    child = started.child;
    port = started.port;
    fingerprint = started.fingerprint;
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    removeDir(dir);
  });

  it('user passwd sets the password with the gateway\'s rules, and the running gateway takes it at once', async () => {
    const r = await runCli(['user', 'passwd', 'alice', '--state-dir', gwDir], { env: env(), input: `${PASSWORD}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /password set for alice; the running gateway reloaded its users/);
    assert.doesNotMatch(r.stderr, /belongs in a gateway|run as root/);
    const text = readFileSync(join(gwDir, 'users.yaml'), 'utf8');
    assert.match(text, /password: scrypt\$/);
    assert.match(text, /hosts:\s*\n\s*- "\*"|hosts: \["\*"\]/, 'the operator fields are kept');
    assert.ok(await waitFor(() => /reload/i.test(stderr), 5_000), `the gateway logged its reload: ${stderr}`);
    // The gateway accepts the new password without a restart.
    const conn = await connect({ user: 'alice', host: '127.0.0.1', port }, { password: PASSWORD, fingerprint, env: {} });
    await conn.close();
  });

  it('user list shows the operators\' hosts and as; key add and token create/revoke pass the gateway\'s checks', async () => {
    const list = await runCli(['user', 'list', '--state-dir', gwDir], { env: env() });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout.toString(), /^alice {2}hosts \* {2}as ops .*\(password\)/m);
    const bob = keyFile(dir, 'bob');
    writeFileSync(`${bob.file}.pub`, `${bob.line}\n`);
    const key = await runCli(['key', 'add', 'alice', `${bob.file}.pub`, '--state-dir', gwDir], { env: env() });
    assert.equal(key.code, 0, key.stderr);
    assert.match(key.stderr, /the running gateway reloaded its users/);
    const token = await runCli(['token', 'create', '--user', 'alice', '--name', 'ci', '--state-dir', gwDir], { env: env() });
    assert.equal(token.code, 0, token.stderr);
    const revoke = await runCli(['token', 'revoke', '--user', 'alice', 'ci', '--state-dir', gwDir], { env: env() });
    assert.equal(revoke.code, 0, revoke.stderr);
  });

  it('--gateway picks $SHELLWIRE_HOME/gateway; a daemon\'s state dir still refuses gateway fields', async () => {
    const home = join(dir, 'home2');
    mkdirSync(home, { mode: 0o700 });
    const gw2 = join(home, 'gateway');
    mkdirSync(gw2, { mode: 0o700 });
    writeFileSync(join(gw2, 'users.yaml'), ['users:', '  carol:', '    allowRoot: true', '    hosts: ["web01"]', ''].join('\n'));
    const r = await runCli(['user', 'passwd', 'carol', '--gateway'], { env: cleanEnv({ SHELLWIRE_HOME: home }), input: `${PASSWORD}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no running gateway found; it takes effect at its next start/);
    assert.match(readFileSync(join(gw2, 'users.yaml'), 'utf8'), /password: scrypt\$/);
    // The same file in a daemon's state dir (no gateway key, no --gateway): refused as before.
    const daemonDir = join(dir, 'daemon');
    mkdirSync(daemonDir, { mode: 0o700 });
    writeFileSync(join(daemonDir, 'users.yaml'), ['users:', '  carol:', '    allowRoot: true', '    hosts: ["web01"]', ''].join('\n'));
    const refused = await runCli(['user', 'passwd', 'carol', '--state-dir', daemonDir], { env: env(), input: `${PASSWORD}\n` });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /"hosts" belongs in a gateway's users\.yaml/);
  });
});

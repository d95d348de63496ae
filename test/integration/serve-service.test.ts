/**
 * Deploying the daemon: the systemd unit `install-service` writes (checked by
 * systemd-analyze where it exists, and its ExecStart really starts the daemon), and
 * `rotate-host-key` (new fingerprint printed beside the old, a running daemon switches, and
 * clients that pinned the old key refuse it).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { connect } from '../../src/client/connect.js';
import { runCli } from '../helpers/daemon.js';
import { tempDir, removeDir, startCli, cleanEnv, freePort, type CliChild } from '../helpers/fixtures.js';

const children: CliChild[] = [];
const dirs: string[] = [];
after(() => {
  for (const child of children) child.kill();
  for (const dir of dirs) removeDir(dir);
});

function home(): string {
  const dir = tempDir('shellwire-service-');
  dirs.push(dir);
  return dir;
}

/** ExecStart split as systemd does for our quoting (double quotes, backslash escapes). */
function systemdWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return words;
}

test('install-service writes a unit: KillMode=mixed, Delegate, Restart=on-failure, no PrivateTmp/NoNewPrivileges; its ExecStart starts the daemon', { timeout: 30_000 }, async () => {
  const dir = home();
  const unitDir = join(dir, 'units');
  const stateDir = join(dir, 'state');
  const config = join(dir, 'serve.yaml');
  const port = await freePort();
  writeFileSync(config, `listen: 127.0.0.1:${port}\n`);
  const printed = await runCli(['install-service', '--print', '--state-dir', stateDir, '--config', config, '--unit-dir', unitDir]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.ok(!existsSync(unitDir), '--print wrote something');
  const written = await runCli(['install-service', '--state-dir', stateDir, '--config', config, '--unit-dir', unitDir]);
  assert.equal(written.code, 0, written.stderr);
  assert.match(written.stdout.toString(), /systemctl daemon-reload && systemctl enable --now shellwire/);
  const unit = readFileSync(join(unitDir, 'shellwire.service'), 'utf8');
  assert.equal(unit, printed.stdout.toString());
  const directives = unit.split('\n').filter((l) => !l.startsWith('#'));
  for (const expected of ['KillMode=mixed', 'Delegate=yes', 'Restart=on-failure', 'RestartPreventExitStatus=2', 'TimeoutStopSec=30s', 'ExecReload=/bin/kill -HUP $MAINPID', 'User=root']) {
    assert.ok(directives.includes(expected), `missing ${expected}`);
  }
  for (const refused of ['PrivateTmp=', 'NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=']) {
    assert.ok(!directives.some((l) => l.startsWith(refused)), `${refused} would restrict users' commands`);
  }
  // Every directive is explained somewhere above it (a comment block precedes each group).
  assert.match(unit, /KillMode=mixed: SIGTERM goes to the daemon ALONE/);

  const verify = spawnSync('systemd-analyze', ['verify', join(unitDir, 'shellwire.service')], { encoding: 'utf8' });
  if (!verify.error) {
    // Without a running systemd, verify still parses the unit; only unknown keys and bad
    // values are our concern (not "network-online.target not found" in a container).
    const problems = (verify.stderr + verify.stdout).split('\n').filter((l) => /Unknown key|Failed to parse|Invalid|not executable|bad-setting/i.test(l));
    assert.deepEqual(problems, []);
  }

  const execStart = directives.find((l) => l.startsWith('ExecStart='))!.slice('ExecStart='.length);
  const [program, ...args] = systemdWords(execStart);
  const child = spawn(program!, args, { env: cleanEnv({ SHELLWIRE_HOME: join(dir, 'home') }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.resume();
  const exited = new Promise((resolve) => child.on('close', resolve));
  try {
    const deadline = Date.now() + 15_000;
    while (!out.includes('listening on') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
    assert.match(out, new RegExp(`access token: ${join(stateDir, 'token')}`));
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});

test('rotate-host-key: old and new fingerprints, the running daemon switches, old pins are refused, new pins work', { timeout: 30_000 }, async () => {
  const dir = home();
  writeFileSync(join(dir, 'empty.yaml'), '');
  const daemon = startCli(['serve', '--config', join(dir, 'empty.yaml'), '--listen', '127.0.0.1:0'], { env: cleanEnv({ SHELLWIRE_HOME: dir }), closeStdin: true });
  children.push(daemon);
  const [, address] = await daemon.waitForStdout(/listening on (\S+)\n/);
  const [, oldFingerprint] = await daemon.waitForStdout(/fingerprint: (SHA256:\S+)/);
  const tokenFile = join(dir, 'server', 'token');
  const before = await connect(address!, { fingerprint: oldFingerprint!, tokenFile });

  const rotated = await runCli(['rotate-host-key'], { env: cleanEnv({ SHELLWIRE_HOME: dir }) });
  assert.equal(rotated.code, 0, rotated.stderr);
  const text = rotated.stdout.toString();
  assert.match(text, new RegExp(`old fingerprint: ${oldFingerprint!.replace(/[+/]/g, '\\$&')}`));
  const newFingerprint = /new fingerprint: (SHA256:\S+)/.exec(text)![1]!;
  assert.notEqual(newFingerprint, oldFingerprint);
  assert.match(text, new RegExp(`running daemon \\(PID ${daemon.child.pid}\\) switches to the new key`));
  assert.ok(existsSync(join(dir, 'server', 'host-key.pem.old')));
  await daemon.waitForStderr(/host key changed/);

  // The open connection is untouched; a client with the old pin is refused; the new pin works.
  assert.equal((await before.exec('echo still')).stdout, 'still\n');
  await assert.rejects(connect(address!, { fingerprint: oldFingerprint!, tokenFile }), (err: Error & { code?: string }) => /HOST_KEY|CHANGED/i.test(`${err.code} ${err.message}`));
  const after = await connect(address!, { fingerprint: newFingerprint, tokenFile });
  assert.equal((await after.exec('echo new')).stdout, 'new\n');
  await after.close();
  await before.close();

  // A restart keeps the rotated key.
  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0, daemon.stderr());
  const again = startCli(['serve', '--config', join(dir, 'empty.yaml'), '--listen', '127.0.0.1:0'], { env: cleanEnv({ SHELLWIRE_HOME: dir }), closeStdin: true });
  children.push(again);
  await again.waitForStdout(new RegExp(`fingerprint: ${newFingerprint.replace(/[+/]/g, '\\$&')}`));
  again.child.kill('SIGTERM');
  await again.exited;

  mkdirSync(join(dir, 'empty-state'));
  const none = await runCli(['rotate-host-key', '--state-dir', join(dir, 'empty-state')]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /has no host key to rotate/);
});

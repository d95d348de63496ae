/**
 * Deploying the daemon: the systemd unit `install-service` writes (checked by
 * systemd-analyze where it exists, and its ExecStart really starts the daemon), and
 * `rotate-host-key` (new fingerprint printed beside the old, a running daemon switches, and
 * clients that pinned the old key refuse it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { connect } from '../../src/client/connect.js';
import { runCli, CLI } from '../helpers/daemon.js';
import { scratch, startCli, cleanEnv, freePort } from '../helpers/fixtures.js';

const { home, children } = scratch('shellwire-service-');

/**
 * ExecStart split as systemd does for our quoting (double quotes, backslash escapes), then
 * its specifiers (`%%` → `%`) and variables (`$$` → `$`) undone; any other `%X` or `$NAME`
 * would be expanded by systemd, so it is an error here.
 */
function systemdWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    const word = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
    assert.doesNotMatch(word.replace(/%%|\$\$/g, ''), /[%$]/, `systemd would expand a specifier or variable in ${word}`);
    words.push(word.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return words;
}

/** The unit's directives (comment lines left out). */
function directivesOf(unit: string): string[] {
  return unit.split('\n').filter((l) => !l.startsWith('#'));
}

/** `systemd-analyze verify` problems that are ours (not a container's missing targets). */
function verifyProblems(unitFile: string): string[] {
  const verify = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' });
  if (verify.error) return [];
  return (verify.stderr + verify.stdout).split('\n').filter((l) => /Unknown key|Failed to (parse|resolve)|Invalid|not executable|bad-setting|fatal/i.test(l));
}

/** install-service run from `cwd` (relative paths resolve there), as a child process. */
function installFrom(cwd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'install-service', ...args], { cwd, env: cleanEnv(), encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Start a unit's ExecStart as systemd would (cwd /), optionally in a fresh network namespace. */
async function startExecStart(unit: string, env: NodeJS.ProcessEnv, netns: boolean): Promise<{ out: () => string; err: () => string; stop: () => Promise<number | null>; exited: Promise<number | null> }> {
  const execStart = directivesOf(unit).find((l) => l.startsWith('ExecStart='))!.slice('ExecStart='.length);
  const [program, ...args] = systemdWords(execStart);
  const argv = netns ? ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', program!, ...args] : [program!, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    out: () => out,
    err: () => err,
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

async function waitFor(check: () => boolean, exited: Promise<unknown>, ms = 15_000): Promise<void> {
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + ms;
  while (!check() && !done && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
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

test('install-service without --config: the unit names no settings file and starts on a host without /etc/shellwire/serve.yaml', { timeout: 30_000 }, async (t) => {
  if (existsSync('/etc/shellwire/serve.yaml')) return t.skip('this host has /etc/shellwire/serve.yaml');
  const dir = home();
  const stateDir = join(dir, 'state');
  const made = installFrom(dir, ['--print', '--state-dir', stateDir]);
  assert.equal(made.code, 0, made.stderr);
  const execStart = directivesOf(made.stdout).find((l) => l.startsWith('ExecStart='))!;
  assert.doesNotMatch(execStart, /--config/);
  assert.match(made.stdout, /Settings: \/etc\/shellwire\/serve\.yaml \(optional/);
  // Default listen address 127.0.0.1:50007: in a network namespace of its own, so no other
  // daemon on this host is in the way.
  const daemon = await startExecStart(made.stdout, cleanEnv({ SHELLWIRE_HOME: join(dir, 'home') }), true);
  try {
    await waitFor(() => daemon.out().includes('listening on'), daemon.exited);
    assert.match(daemon.out(), /listening on 127\.0\.0\.1:50007/, daemon.err());
  } finally {
    assert.equal(await daemon.stop(), 0, daemon.err());
  }

  // A --config that is not there is refused at install time, not at `enable --now`.
  const missing = installFrom(dir, ['--print', '--state-dir', stateDir, '--config', 'nope.yaml']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, new RegExp(`--config ${join(dir, 'nope.yaml')}: no such file\\. Write it first, or leave out --config`));
  // serve itself: a named --config must exist; the default one may be absent (above).
  const serveMissing = await runCli(['serve', '--state-dir', stateDir, '--config', join(dir, 'nope.yaml'), '--listen', '127.0.0.1:0']);
  assert.equal(serveMissing.code, 2);
  assert.match(serveMissing.stderr, /Cannot read .*nope\.yaml: no such file/);
});

test('install-service: relative paths become absolute, % and $ and spaces survive systemd, StateDirectory names one plain directory', { timeout: 30_000 }, async () => {
  const dir = home();
  const port = await freePort();
  writeFileSync(join(dir, 'conf%x $HOME.yaml'), `listen: 127.0.0.1:${port}\n`);
  writeFileSync(join(dir, 'conf%n.yaml'), `listen: 127.0.0.1:${port}\n`);
  const unitDir = join(dir, 'units');
  for (const [stateArg, configArg] of [['rel state%x', 'conf%x $HOME.yaml'], ['st%n', 'conf%n.yaml']] as const) {
    const made = installFrom(dir, ['--state-dir', stateArg, '--config', configArg, '--unit-dir', unitDir]);
    assert.equal(made.code, 0, made.stderr);
    const unitFile = join(unitDir, 'shellwire.service');
    const unit = readFileSync(unitFile, 'utf8');
    assert.deepEqual(verifyProblems(unitFile), []);
    const execStart = directivesOf(unit).find((l) => l.startsWith('ExecStart='))!.slice('ExecStart='.length);
    const words = systemdWords(execStart);
    assert.equal(words[words.indexOf('--state-dir') + 1], join(dir, stateArg));
    assert.equal(words[words.indexOf('--config') + 1], join(dir, configArg));
    // Run as systemd would, from /: the daemon uses the state dir named at install time.
    const daemon = await startExecStart(unit, cleanEnv({ SHELLWIRE_HOME: join(dir, 'home') }), false);
    try {
      await waitFor(() => daemon.out().includes('access token:'), daemon.exited);
      assert.match(daemon.out(), new RegExp(`listening on 127\\.0\\.0\\.1:${port}`), daemon.err());
      assert.ok(daemon.out().includes(`access token: ${join(dir, stateArg, 'token')}`), daemon.out());
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.err());
    }
  }

  // /var/lib state dirs: StateDirectory= only for a plain name (it is a space-separated list
  // with specifiers); otherwise none, and ExecStart still carries the exact path.
  for (const [stateDir, expected] of [['/var/lib/shellwire', 'shellwire'], ['/var/lib/sw dir', undefined], ['/var/lib/sw%xdir', undefined], ['/var/lib/a/b', 'a/b']] as const) {
    const made = installFrom(dir, ['--state-dir', stateDir, '--unit-dir', unitDir]);
    assert.equal(made.code, 0, made.stderr);
    const unitFile = join(unitDir, 'shellwire.service');
    const unit = readFileSync(unitFile, 'utf8');
    assert.deepEqual(verifyProblems(unitFile), [], stateDir);
    const line = directivesOf(unit).find((l) => l.startsWith('StateDirectory='));
    assert.equal(line?.slice('StateDirectory='.length), expected, stateDir);
    const words = systemdWords(directivesOf(unit).find((l) => l.startsWith('ExecStart='))!.slice('ExecStart='.length));
    assert.equal(words[words.indexOf('--state-dir') + 1], stateDir);
  }

  // A path systemd cannot carry on one line is refused with the reason.
  const newline = installFrom(dir, ['--print', '--state-dir', 'a\nb']);
  assert.equal(newline.code, 2);
  assert.match(newline.stderr, /--state-dir "a\\nb" has a control character/);
});

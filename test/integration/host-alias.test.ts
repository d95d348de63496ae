/**
 * Inventory names work for every command that takes a host, as ssh_config's Host aliases:
 * exec, shell, tty, put, get, ls (and run). The command line's -p/-l/-i/--token-file win over
 * the inventory; words after the host are the command, with or without `--`; -v says what
 * is tried. The real CLI as a child process against real daemons.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startDaemon, startDaemonWithRoot, type TestDaemon } from '../helpers/daemon.js';
import { cleanEnv, freePort, removeDir, tempDir } from '../helpers/fixtures.js';

let dir: string;
let files: string;
let d: TestDaemon;
let env: NodeJS.ProcessEnv;
let closedPort: number;

/** A SHELLWIRE_HOME with known_hosts for the daemon and `inventory` as inventory.yaml. */
function makeHome(name: string, daemon: TestDaemon, inventory: string): { env: NodeJS.ProcessEnv } {
  const h = join(dir, name);
  mkdirSync(h, { recursive: true, mode: 0o700 });
  writeFileSync(join(h, 'known_hosts'), `127.0.0.1:${daemon.port} ${daemon.fingerprint}\n`);
  writeFileSync(join(h, 'inventory.yaml'), inventory);
  // No SHELLWIRE_TOKEN and no local daemon token under this home: only what the inventory or flags give.
  return { env: cleanEnv({ SHELLWIRE_HOME: h, HOME: h, NO_COLOR: '1' }) };
}

before(async () => {
  dir = tempDir('shellwire-alias-');
  files = join(dir, 'files');
  mkdirSync(join(files, 'home'), { recursive: true });
  d = await startDaemonWithRoot(files, join(files, 'home'));
  closedPort = await freePort();
  ({ env } = makeHome('home', d, `hosts:\n  web01: { address: 127.0.0.1, port: ${d.port}, token-file: ${d.tokenFile} }\n`));
});

after(async () => {
  await d?.stop();
  removeDir(dir);
});

test('exec, shell, tty, put, get and ls take an inventory name: its address, port and token file', async () => {
  const exec = await runCli(['exec', 'web01', '--', 'echo', 'via-alias'], { env });
  assert.equal(exec.code, 0, exec.stderr);
  assert.equal(exec.stdout.toString(), 'via-alias\n');

  const shell = await runCli(['shell', 'web01'], { env, input: 'echo shell-alias\n' });
  assert.equal(shell.code, 0, shell.stderr);
  assert.match(shell.stdout.toString(), /shell-alias/);

  const tty = await runCli(['tty', 'web01', '--', 'echo', 'tty-alias'], { env });
  assert.equal(tty.code, 0, tty.stderr);
  assert.match(tty.stdout.toString(), /tty-alias/);

  const local = join(dir, 'a.txt');
  writeFileSync(local, 'alias bytes\n');
  const put = await runCli(['put', '-q', local, `web01:${files}/a.txt`], { env });
  assert.equal(put.code, 0, put.stderr);
  assert.equal(readFileSync(join(files, 'a.txt'), 'utf8'), 'alias bytes\n');

  const got = join(dir, 'b.txt');
  const get = await runCli(['get', '-q', `web01:${files}/a.txt`, got], { env });
  assert.equal(get.code, 0, get.stderr);
  assert.equal(readFileSync(got, 'utf8'), 'alias bytes\n');

  const ls = await runCli(['ls', `web01:${files}`], { env });
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout.toString(), / a\.txt\n/);

  // --inventory names another file, as run's does.
  const other = join(dir, 'other.yaml');
  writeFileSync(other, `hosts:\n  box7: { address: 127.0.0.1, port: ${d.port}, token-file: ${d.tokenFile} }\n`);
  const viaFlag = await runCli(['exec', '--inventory', other, 'box7', '--', 'echo', 'other-inventory'], { env });
  assert.equal(viaFlag.code, 0, viaFlag.stderr);
  assert.equal(viaFlag.stdout.toString(), 'other-inventory\n');
});

test('the command line wins over the inventory: -p, HOST:PORT, --token-file (as ssh -p/-l/-i over ssh_config)', async () => {
  const badToken = join(dir, 'bad-token');
  writeFileSync(badToken, 'swt_not_the_token\n', { mode: 0o600 });
  const { env: wrongEnv } = makeHome('wrong', d, `hosts:\n  web01: { address: 127.0.0.1, port: ${closedPort}, token-file: ${badToken} }\n`);

  const asIs = await runCli(['exec', 'web01', '--', 'true'], { env: wrongEnv });
  assert.equal(asIs.code, 255);
  assert.match(asIs.stderr, new RegExp(`127\\.0\\.0\\.1:${closedPort}`), 'the inventory\'s port is used when nothing overrides it');

  const flags = await runCli(['exec', '-p', String(d.port), '--token-file', d.tokenFile, 'web01', '--', 'echo', 'flags-win'], { env: wrongEnv });
  assert.equal(flags.code, 0, flags.stderr);
  assert.equal(flags.stdout.toString(), 'flags-win\n');

  const inText = await runCli(['exec', '--token-file', d.tokenFile, `web01:${d.port}`, '--', 'echo', 'port-in-text'], { env: wrongEnv });
  assert.equal(inText.code, 0, inText.stderr);
  assert.equal(inText.stdout.toString(), 'port-in-text\n');

  // The inventory's token file is used when no flag names one, and is the one refused here.
  const tokenOnly = await runCli(['exec', '-p', String(d.port), 'web01', '--', 'true'], { env: wrongEnv });
  assert.equal(tokenOnly.code, 255);
  assert.match(tokenOnly.stderr, /SW_ERR_AUTH_FAILED/);

  // put/get/ls: -p and scp's -P.
  const ls = await runCli(['ls', '-P', String(d.port), '--token-file', d.tokenFile, `web01:${files}`], { env: wrongEnv });
  assert.equal(ls.code, 0, ls.stderr);
  const badPort = await runCli(['exec', '-p', '70000', 'web01', '--', 'true'], { env: wrongEnv });
  assert.equal(badPort.code, 2);
  assert.match(badPort.stderr, /-p takes a port number from 1 to 65535, got "70000"/);
});

test('inventory user and identity: exec logs in as the entry says; -l, -i and USER@ override it; run takes -l and -i', async () => {
  const keyDir = join(dir, 'keys');
  mkdirSync(keyDir, { recursive: true });
  for (const name of ['deploy_key', 'other_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(keyDir, name)]);
  const daemon = await startDaemon();
  try {
    const pub = readFileSync(join(keyDir, 'deploy_key.pub'), 'utf8').trim();
    writeFileSync(join(daemon.server.stateDir, 'users.yaml'), `users:\n  deployer:\n    allowRoot: true\n    keys: ["${pub}"]\n`);
    assert.ok(daemon.server.reloadUsers().ok);
    const { env: keyEnv } = makeHome(
      'keys-home',
      daemon,
      `hosts:\n  box1: { address: 127.0.0.1, port: ${daemon.port}, user: deployer, identity: ${join(keyDir, 'deploy_key')} }\n` +
        `  box2: { address: 127.0.0.1, port: ${daemon.port} }\n`,
    );
    const ok = await runCli(['exec', 'box1', '--', 'echo', 'as-deployer'], { env: keyEnv });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.toString(), 'as-deployer\n');

    const otherUser = await runCli(['exec', '-l', 'intruder', 'box1', '--', 'true'], { env: keyEnv });
    assert.equal(otherUser.code, 255);
    assert.match(otherUser.stderr, /intruder/, '-l replaced the inventory user');

    const otherKey = await runCli(['exec', '-i', join(keyDir, 'other_key'), 'box1', '--', 'true'], { env: keyEnv });
    assert.equal(otherKey.code, 255);
    assert.match(otherKey.stderr, /not authorized for user "deployer"/, '-i replaced the inventory key');

    const userAt = await runCli(['exec', '-i', join(keyDir, 'deploy_key'), 'deployer@box2', '--', 'echo', 'user-at-alias'], { env: keyEnv });
    assert.equal(userAt.code, 0, userAt.stderr);
    assert.equal(userAt.stdout.toString(), 'user-at-alias\n');

    const run = await runCli(['run', '-l', 'deployer', '-i', join(keyDir, 'deploy_key'), 'box2', '--', 'echo', 'run-flags'], { env: keyEnv });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout.toString(), /run-flags/);
    const runWrong = await runCli(['run', '--user', 'deployer', '-i', join(keyDir, 'other_key'), 'box1', '--', 'true'], { env: keyEnv });
    assert.notEqual(runWrong.code, 0);
    assert.match(runWrong.stdout.toString() + runWrong.stderr, /not authorized for user "deployer"/, 'run -i wins over the inventory identity');
  } finally {
    await daemon.stop();
  }
});

test('an inventory "via" sends exec and run through the gateway it names (never past it to the address)', async () => {
  // bastion.invalid is not resolvable: were "via" ignored, the host's own address would answer.
  const { env: viaEnv } = makeHome('via', d, `hosts:\n  web01: { address: 127.0.0.1, port: ${d.port}, token-file: ${d.tokenFile}, via: bastion.invalid }\n`);
  const exec = await runCli(['exec', '--connect-timeout', '3', 'web01', '--', 'true'], { env: viaEnv });
  assert.equal(exec.code, 255, exec.stderr);
  assert.match(exec.stderr, /bastion\.invalid/);
  const run = await runCli(['run', '--connect-timeout', '3', 'web01', '--', 'true'], { env: viaEnv });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr + run.stdout.toString(), /bastion\.invalid/);
  writeFileSync(join(dir, 'via-defaults.yaml'), 'defaults: { via: "gw:0" }\nhosts:\n  a: {}\n');
  const defaults = await runCli(['hosts', '--inventory', join(dir, 'via-defaults.yaml')], { env: viaEnv });
  assert.equal(defaults.code, 2);
  assert.match(defaults.stderr, /via-defaults\.yaml:1: Bad gateway "gw:0"/);
});

test('words after the host are the command, with or without --, even when they look like our options', async () => {
  const cases: Array<[string[], string]> = [
    [['exec', d.address, 'echo', '-n', 'no-dashes'], 'no-dashes'],
    [['exec', d.address, '--', 'echo', '-n', 'with-dashes'], 'with-dashes'],
    [['exec', d.address, 'printf', '%s,', '-t', '--timeout', '-v', '-p', '1'], '-t,--timeout,-v,-p,1,'],
    [['exec', 'web01', 'uname', '-s'], 'Linux\n'],
    // Our options may still come right after the host, as ssh allows.
    [['exec', d.address, '-n', 'echo', 'options-after-host'], 'options-after-host\n'],
    [['tty', 'web01', 'printf', '%s', '-l'], '-l'],
    [['run', '--stream', 'web01', 'echo', '-n', 'run-no-dashes'], 'web01 | run-no-dashes\n'],
    [['run', 'web01', '--stream', '--', 'echo', 'x', '-v'], 'web01 | x -v\n'],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(args, { env: { ...env, SHELLWIRE_TOKEN: d.token } });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout.toString().replace(/\r\n/g, '\n'), expected, args.join(' '));
  }
  const unknown = await runCli(['exec', d.address, '--bogus', 'x'], { env });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--bogus' after the host.*--/);
  const none = await runCli(['exec', d.address], { env });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /needs a command/);
});

test('-v says which inventory entry, address, host key check and credentials are tried, and why it failed; -vv more', async () => {
  const r = await runCli(['exec', '-v', 'web01', '--', 'true'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`debug1: web01 → 127\\.0\\.0\\.1:${d.port}: inventory entry "web01" \\(.*inventory\\.yaml:2\\); token-file ${d.tokenFile.replace(/[.]/g, '\\.')}`));
  assert.match(r.stderr, new RegExp(`debug1: connecting to 127\\.0\\.0\\.1:${d.port}`));
  assert.match(r.stderr, /debug1: server host key SHA256:/);
  assert.match(r.stderr, /debug1: host key accepted \(known_hosts/);
  assert.match(r.stderr, /debug1: offering 1 credential\(s\)/);
  assert.match(r.stderr, new RegExp(`debug1:   1\\. token from ${d.tokenFile.replace(/[.]/g, '\\.')}`));
  assert.match(r.stderr, /debug1: authenticated as /);
  assert.doesNotMatch(r.stderr, /debug2:/);
  assert.ok(!r.stderr.includes(d.token), 'never the secret');

  const vv = await runCli(['exec', '-vv', 'web01', '--', 'true'], { env });
  assert.equal(vv.code, 0, vv.stderr);
  assert.match(vv.stderr, /debug2: read inventory .*inventory\.yaml: 1 host/);

  const refused = await runCli(['exec', '-v', '-p', String(closedPort), 'web01', '--', 'true'], { env });
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /debug1: connecting failed: SW_ERR_CONNECT_FAILED: .*ECONNREFUSED/);

  const badToken = join(dir, 'bad-token-v');
  writeFileSync(badToken, 'swt_wrong\n', { mode: 0o600 });
  const denied = await runCli(['exec', '-v', '--token-file', badToken, 'web01', '--', 'true'], { env });
  assert.equal(denied.code, 255);
  assert.match(denied.stderr, new RegExp(`debug1:   1\\. token from ${badToken}`));
  assert.match(denied.stderr, /debug1: failed: SW_ERR_AUTH_FAILED/);

  const run = await runCli(['run', '-v', 'web01', '--', 'true'], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /debug1: "web01" → 1 host\(s\): web01/);
  assert.match(run.stderr, /debug1: web01: host key accepted/);
});

/**
 * `shellwire exec` as a user runs it: the real CLI process against a real daemon.
 * Output is byte-exact on the CLI's own stdout/stderr, the exit status is the command's,
 * stdin is forwarded (or not, with -n), and first contact with a host behaves like ssh.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { startDaemon, runCli, CLI, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, sha256, allByteValues, seqText, startCli, cleanEnv, freePort } from '../helpers/fixtures.js';

let daemon: TestDaemon;
let dir: string;

before(async () => {
  daemon = await startDaemon();
  dir = tempDir();
});

after(async () => {
  await daemon?.stop();
  if (dir) removeDir(dir);
});

const exec = (command: string, options: { input?: string | Buffer; flags?: string[] } = {}) =>
  runCli(['exec', ...(options.flags ?? []), daemon.address, '--', command], {
    env: daemon.env,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });

test('exec: 10 MiB of random bytes come out of the CLI byte-exact', async () => {
  const data = randomBytes(10 * 1024 * 1024);
  const file = join(dir, 'random.bin');
  writeFileSync(file, data);
  const result = await exec(`cat ${file}`);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.length, data.length);
  assert.equal(sha256(result.stdout), sha256(data));
  assert.equal(result.stderr, '');
});

test('exec and shell: a reader that is slow at the end still gets the tail of the output', async () => {
  // `| (sleep 1.5; cat)`: nothing reads while the CLI writes its last bytes, so some wait in
  // its stdout queue when the command ends. process.exit() used to drop them (70,000 bytes
  // came out as 65,527) with exit status 0.
  const data = randomBytes(140_000);
  const file = join(dir, 'slow-tail.bin');
  writeFileSync(file, data);
  for (const size of [70_000, 140_000]) {
    for (const [name, cli, input] of [
      ['exec', `exec ${daemon.address} -- head -c ${size} ${file}`, ''],
      ['shell', `shell ${daemon.address}`, `head -c ${size} ${file}\n`],
    ] as const) {
      const { stdout, code } = await runShell(`set -o pipefail; "${process.execPath}" "${CLI}" ${cli} | (sleep 1.5; cat)`, input);
      assert.equal(code, 0, name);
      assert.equal(stdout.length, size, `${name}: ${stdout.length} of ${size} bytes`);
      assert.ok(stdout.equals(data.subarray(0, size)), name);
    }
  }
});

function runShell(script: string, input: string): Promise<{ stdout: Buffer; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { env: daemon.env, stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout: Buffer.concat(chunks), code }));
    child.stdin.end(input);
  });
}

test('exec: all 256 byte values round-trip through stdin and stdout', async () => {
  const bytes = allByteValues();
  const result = await exec('cat', { input: bytes });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout, bytes);
});

test('exec: the child\'s stdout and stderr come out on the CLI\'s stdout and stderr', async () => {
  const result = await exec('for i in $(seq 1 1000); do echo out$i; echo err$i >&2; done');
  const lines = (prefix: string) => Array.from({ length: 1000 }, (_, i) => `${prefix}${i + 1}\n`).join('');
  assert.equal(result.code, 0);
  assert.equal(result.stdout.toString('utf8'), lines('out'));
  assert.equal(result.stderr, lines('err'));
});

test('exec: the exit status is the command\'s (0, 1, 7, 255), and 128+N for a signal', async () => {
  const cases: Array<[string, number]> = [
    ['exit 0', 0],
    ['exit 1', 1],
    ['exit 7', 7],
    ['exit 255', 255],
    ['kill -TERM $$', 143],
  ];
  const results = await Promise.all(cases.map(([command]) => exec(command)));
  results.forEach((result, i) => {
    const [command, expected] = cases[i]!;
    assert.equal(result.code, expected, `${command}: ${result.stderr}`);
    assert.equal(result.signal, null);
  });
});

test('exec: stdin is forwarded (cat f | shellwire exec h -- wc -c)', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const [count, hash] = await Promise.all([exec('wc -c', { input: data }), exec('sha256sum', { input: data })]);
  assert.equal(count.code, 0, count.stderr);
  assert.equal(count.stdout.toString('utf8').trim(), String(data.length));
  assert.equal(hash.code, 0, hash.stderr);
  assert.equal(hash.stdout.toString('utf8').split(' ')[0], sha256(data));
});

test('exec: 10 MiB piped through remote `cat` come back byte-exact', async () => {
  const data = randomBytes(10 * 1024 * 1024);
  const result = await exec('cat', { input: data });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.length, data.length);
  assert.equal(sha256(result.stdout), sha256(data));
});

test('exec -n: the command reads EOF even though the CLI\'s stdin stays open', async () => {
  // stdin is a pipe nobody closes, as in `while read h; do shellwire exec -n $h …; done`.
  const cli = startCli(['exec', '-n', daemon.address, '--', 'wc -c; echo end'], { env: daemon.env, timeoutMs: 10_000 });
  cli.child.stdin.write('this must not be forwarded\n');
  const { code, signal } = await cli.exited;
  assert.equal(signal, null, 'the CLI hung waiting for stdin and was killed');
  assert.equal(code, 0, cli.stderr());
  assert.equal(cli.stdout().toString('utf8'), '0\nend\n');
});

test('exec: 30,000 lines then a marker arrive complete and in order', async () => {
  const result = await exec('seq 1 30000; echo MARKER');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), seqText(30000, 'MARKER'));
});

test('exec: words after -- are joined with spaces, as ssh does', async () => {
  const result = await runCli(['exec', daemon.address, '--', 'echo', 'a', 'b;', 'echo', 'c'], { env: daemon.env });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), 'a b\nc\n');
});

test('first contact, non-interactive: refused with exit 255 and a hint to --accept-new-host', async () => {
  const home = tempDir('shellwire-home-');
  try {
    const env = cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: daemon.token });
    const result = await runCli(['exec', daemon.address, '--', 'echo reached'], { env });
    assert.equal(result.code, 255);
    assert.equal(result.stdout.length, 0, 'the command must not run');
    assert.match(result.stderr, /--accept-new-host/);
    assert.ok(result.stderr.includes(daemon.fingerprint), 'the fingerprint to check is shown');
    assert.equal(existsSync(join(home, 'known_hosts')), false, 'nothing was trusted');
  } finally {
    removeDir(home);
  }
});

test('first contact with --accept-new-host: runs, and known_hosts remembers the host', async () => {
  const parent = tempDir('shellwire-home-');
  const home = join(parent, 'not-yet-created'); // a newcomer has no SHELLWIRE_HOME yet
  try {
    const env = cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: daemon.token });
    const first = await runCli(['exec', '--accept-new-host', daemon.address, '--', 'echo reached'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.toString('utf8'), 'reached\n');
    assert.equal(readFileSync(join(home, 'known_hosts'), 'utf8'), `${daemon.address} ${daemon.fingerprint}\n`);
    // From now on the host is known: no flag needed.
    const second = await runCli(['exec', daemon.address, '--', 'echo again'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.toString('utf8'), 'again\n');
  } finally {
    removeDir(parent);
  }
});

test('a changed host key is refused even with --accept-new-host', async () => {
  const home = tempDir('shellwire-home-');
  try {
    writeFileSync(join(home, 'known_hosts'), `${daemon.address} SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n`);
    const env = cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: daemon.token });
    const result = await runCli(['exec', '--accept-new-host', daemon.address, '--', 'echo reached'], { env });
    assert.equal(result.code, 255);
    assert.equal(result.stdout.length, 0);
    assert.match(result.stderr, /CHANGED/);
  } finally {
    removeDir(home);
  }
});

test('the local daemon\'s token is found automatically (no SHELLWIRE_TOKEN, no --token-file)', async () => {
  const home = tempDir('shellwire-home-');
  const local = await startDaemon({ stateDir: join(home, 'server') });
  try {
    const env = cleanEnv({ SHELLWIRE_HOME: home });
    const result = await runCli(['exec', '--accept-new-host', local.address, '--', 'echo authenticated'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString('utf8'), 'authenticated\n');
  } finally {
    await local.stop();
    removeDir(home);
  }
});

test('a wrong token exits 255 with an authentication error', async () => {
  const env = { ...daemon.env, SHELLWIRE_TOKEN: 'swt_wrong' };
  const result = await runCli(['exec', daemon.address, '--', 'echo reached'], { env });
  assert.equal(result.code, 255);
  assert.equal(result.stdout.length, 0);
  assert.match(result.stderr, /SW_ERR_AUTH_FAILED/);
});

test('--token-file is used', async () => {
  const env = cleanEnv({ SHELLWIRE_HOME: daemon.home });
  const result = await runCli(['exec', '--token-file', daemon.tokenFile, daemon.address, '--', 'echo via-file'], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.toString('utf8'), 'via-file\n');
});

test('nothing listening: exit 255 and a message saying so', async () => {
  const port = await freePort();
  const result = await runCli(['exec', `127.0.0.1:${port}`, '--', 'echo reached'], { env: daemon.env });
  assert.equal(result.code, 255);
  assert.equal(result.stdout.length, 0);
  assert.match(result.stderr, /refused/i);
});

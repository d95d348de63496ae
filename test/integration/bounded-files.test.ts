/**
 * Every config, key and token file the CLI or daemon reads is a regular file of sane size:
 * a FIFO is refused instead of blocking forever, a device (/dev/zero) instead of filling
 * memory, an oversized file (sparse, so the test costs nothing) with its size and the cap.
 * The real CLI as a child process.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { symlinkSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv } from '../helpers/fixtures.js';

let dir: string;
let fifo: string;
let big: string;
let home: string;
let daemon: TestDaemon;

before(async () => {
  daemon = await startDaemon();
  dir = tempDir('shellwire-bounded-');
  fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  big = join(dir, 'big');
  writeFileSync(big, '');
  truncateSync(big, 17 * 1024 * 1024 + 1);
  home = join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
});
after(async () => {
  await daemon.stop();
  removeDir(dir);
});

/** Each case: argv, and a home whose files may point at the hostile file. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: 'x', ...extra });
}

async function refused(args: string[], pattern: RegExp, environment = env()): Promise<void> {
  const result = await runCli(args, { env: environment, timeoutMs: 8_000 });
  assert.equal(result.signal, null, `${args.join(' ')}: killed after hanging; stderr ${result.stderr}`);
  assert.notEqual(result.code, 0, args.join(' '));
  assert.match(result.stderr, pattern, args.join(' '));
}

for (const [name, target] of [['a FIFO', () => fifo], ['/dev/zero', () => '/dev/zero']] as const) {
  test(`known_hosts that is ${name}: exec is refused at once with "not a regular file"`, async () => {
    const h = join(dir, `home-kh-${name.replace(/\W/g, '')}`);
    mkdirSync(h, { mode: 0o700 });
    symlinkSync(target(), join(h, 'known_hosts'));
    await refused(['exec', daemon.address, 'true'], /known_hosts .*is not a regular file \(it is a (FIFO|character device)\)/, env({ SHELLWIRE_HOME: h }));
    await refused(['known-hosts', 'list'], /known_hosts .*is not a regular file/, env({ SHELLWIRE_HOME: h }));
  });

  test(`every named config, key and token file that is ${name} is refused`, async () => {
    const t = target();
    await refused(['hosts', '--inventory', t], /inventory .*is not a regular file/i);
    await refused(['serve', '--config', t, '--state-dir', join(dir, 'state'), '--listen', '127.0.0.1:0'], /config .*is not a regular file/);
    await refused(['key', 'add', 'alice', t, '--state-dir', join(dir, 'state')], /Public key file .*is not a regular file/);
    await refused(['exec', '--token-file', t, '127.0.0.1:1', 'true'], /Token file .*is not a regular file/);
    await refused(['exec', '-i', t, '127.0.0.1:1', 'true'], /Identity file .*is not a regular file/);
    await refused(['known-hosts', 'add', '--from', t], /is not a regular file/);
  });
}

test('an oversized known_hosts, inventory, serve.yaml, key or token file: its size and the cap', async () => {
  const h = join(dir, 'home-big');
  mkdirSync(h, { mode: 0o700 });
  symlinkSync(big, join(h, 'known_hosts'));
  await refused(['exec', daemon.address, 'true'], /known_hosts .* is 17\.8 MB; at most 16 MiB/, env({ SHELLWIRE_HOME: h }));
  await refused(['hosts', '--inventory', big], /is 17\.8 MB; at most 16 MiB/);
  await refused(['serve', '--config', big, '--state-dir', join(dir, 'state'), '--listen', '127.0.0.1:0'], /is 17\.8 MB; at most 16 MiB/);
  await refused(['exec', '-i', big, '127.0.0.1:1', 'true'], /is 17\.8 MB; at most 1 MiB/);
  await refused(['exec', '--token-file', big, '127.0.0.1:1', 'true'], /is 17\.8 MB; at most 1 MiB/);
  await refused(['key', 'add', 'alice', big, '--state-dir', join(dir, 'state')], /is 17\.8 MB; at most 1 MiB/);
});

test('known-hosts add --from - with an endless stdin stops at the cap', async () => {
  const result = await runCli(['known-hosts', 'add', '--from', '-'], { env: env(), input: Buffer.alloc(17 * 1024 * 1024, 0x20), timeoutMs: 8_000 });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /on standard input is longer than 16 MiB/);
});

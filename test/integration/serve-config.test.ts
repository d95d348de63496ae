/**
 * serve.yaml: every serve flag has a key, the file's settings apply, flags override them,
 * and mistakes are reported with the file, the line and the key (unknown keys included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerServe } from '../../src/cli/serve.js';
import { SERVE_SETTINGS, SERVE_FLAG_ALIASES } from '../../src/cli/serve-config.js';
import { runCli } from '../helpers/daemon.js';
import { scratch, startCli, cleanEnv, freePort } from '../helpers/fixtures.js';

const { home, children } = scratch('shellwire-config-');

test('every serve flag has a serve.yaml key', () => {
  const program = new Command();
  registerServe(program);
  const serve = program.commands.find((c) => c.name() === 'serve')!;
  const covered = new Set([...Object.values(SERVE_SETTINGS).map((s) => s.flag), ...Object.keys(SERVE_FLAG_ALIASES)]);
  const flags = serve.options.map((o) => o.long!).filter((flag) => flag !== '--config');
  assert.deepEqual(flags.filter((flag) => !covered.has(flag)), []);
});

test('serve --config: the file sets the daemon up; a flag overrides its key', { timeout: 30_000 }, async () => {
  const dir = home();
  const [filePort, flagPort] = [await freePort(), await freePort()];
  const config = join(dir, 'serve.yaml');
  writeFileSync(config, `# a deployed daemon\nlisten: 127.0.0.1:${filePort}\nstateDir: ${join(dir, 'state')}\nkillGrace: 2s\nshutdownGrace: 1.5\nlogLevel: warn\nfileRoots: [/srv, /tmp]\naudit: false\n`);
  for (const [args, port] of [[[], filePort], [['--listen', String(flagPort)], flagPort]] as Array<[string[], number]>) {
    const daemon = startCli(['serve', '--config', config, ...args], { env: cleanEnv({ SHELLWIRE_HOME: dir }), closeStdin: true });
    children.push(daemon);
    await daemon.waitForStdout(new RegExp(`listening on 127\\.0\\.0\\.1:${port}\\n`));
    // stateDir from the file; logLevel warn: the info line "listening" is not logged.
    await daemon.waitForStdout(new RegExp(`access token: ${join(dir, 'state', 'token')}`));
    daemon.child.kill('SIGTERM');
    assert.equal((await daemon.exited).code, 0, daemon.stderr());
    assert.doesNotMatch(daemon.stderr(), /"msg":"listening"/);
  }
});

test('serve.yaml in the state dir is read when --config is not given (not root) and a bad one stops the start', { timeout: 30_000, skip: process.getuid?.() === 0 ? 'root reads /etc/shellwire/serve.yaml' : false }, async () => {
  const dir = home();
  mkdirSync(join(dir, 'server'), { recursive: true });
  writeFileSync(join(dir, 'server', 'serve.yaml'), 'listen: nowhere:99999\n');
  const result = await runCli(['serve'], { env: cleanEnv({ SHELLWIRE_HOME: dir }) });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /serve\.yaml:1: listen: takes/);
});

test('serve.yaml mistakes: each names the file, the line and the key; unknown keys are errors', { timeout: 30_000 }, async () => {
  const dir = home();
  const config = join(dir, 'serve.yaml');
  const cases: Array<[string, RegExp[]]> = [
    [
      'listen: 127.0.0.1:0\nkillGrace: 5x\nmaxConnections: -3\nlisen: 0.0.0.0\naudit: "no"\nfileRoots: /srv\nlogLevel: verbose\n',
      [
        /serve\.yaml:2: killGrace: takes a duration such as 1\.5 \(seconds\), 500ms.*got "5x"/,
        /serve\.yaml:3: maxConnections: takes a positive whole number, got -3/,
        /serve\.yaml:4: lisen: unknown setting \(known: listen, stateDir,/,
        /serve\.yaml:5: audit: takes true or false, got "no"/,
        /serve\.yaml:6: fileRoots: takes a list of directories/,
        /serve\.yaml:7: logLevel: takes silent, fatal, error, warn, info, debug or trace, got "verbose"/,
      ],
    ],
    ['listen: [a\n', [/serve\.yaml:\d+: Flow sequence/]],
    ['- listen\n', [/serve\.yaml:1: the file must be a mapping of settings/]],
  ];
  for (const [text, expected] of cases) {
    writeFileSync(config, text);
    const result = await runCli(['serve', '--config', config], { env: cleanEnv({ SHELLWIRE_HOME: dir }) });
    assert.equal(result.code, 2, result.stderr);
    for (const pattern of expected) assert.match(result.stderr, pattern);
  }
  const missing = await runCli(['serve', '--config', join(dir, 'nope.yaml')], { env: cleanEnv({ SHELLWIRE_HOME: dir }) });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Cannot read .*nope\.yaml: no such file/);
});

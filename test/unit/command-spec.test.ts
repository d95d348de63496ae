/**
 * The command spec (src/process/command-spec.ts): what a request, the policy and the account
 * make of a launch, as plain data. Restricted users get their argv and never a shell
 * (docs/policy.md); bytes that are not UTF-8 survive the spec and its JSON; with runAs the
 * command's environment is applied by env(1) after setpriv, never given to setpriv itself.
 * The last tests launch real processes from specs (src/process/launch.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildCommandSpec, spawnLine, SESSION_WRAPPER, SETPRIV, type CommandContext, type CommandRequest, type CommandSpec } from '../../src/process/command-spec.js';
import { launchCommand } from '../../src/process/launch.js';
import { ENV_PROGRAM } from '../../src/process/exact-spawn.js';
import { RESTRICTED_PATH } from '../../src/process/command-words.js';
import { decodeOsBytes, encodeOsBytes } from '../../src/protocol/os-bytes.js';
import type { CommandExit } from '../../src/process/command-process.js';

const SHELLS = new Set(['/bin/sh', 'sh', '/bin/bash', 'bash', '/usr/bin/sh', '/usr/bin/bash']);

function context(over: Partial<CommandContext> = {}): CommandContext {
  return {
    withoutShell: false,
    account: { uid: 1234, gid: 1235, shell: '/bin/bash', switch: false },
    baseEnv: { PATH: '/usr/bin:/bin', HOME: '/home/u' },
    killGraceMs: 2000,
    outputGraceMs: 2000,
    ...over,
  };
}

function build(request: Partial<CommandRequest>, over: Partial<CommandContext> = {}): CommandSpec {
  const result = buildCommandSpec({ cwd: '/', ...request }, context(over));
  assert.ok(result.ok, result.ok ? '' : result.reason);
  return result.spec;
}

function refused(request: Partial<CommandRequest>, over: Partial<CommandContext> = {}): string {
  const result = buildCommandSpec({ cwd: '/', ...request }, context(over));
  assert.equal(result.ok, false, 'refused');
  return result.ok ? '' : result.reason;
}

/** OS byte strings: any bytes but NUL, decoded losslessly (lone surrogates for non-UTF-8). */
const osString = fc.uint8Array({ maxLength: 12 }).map((bytes) => decodeOsBytes(Buffer.from(bytes.filter((b) => b !== 0))));
const shellText = fc.stringMatching(/^[a-z ;&|<>()$`\\*?[\]{}~#!'"\n]{0,20}$/);
const argvArb = fc.tuple(fc.constantFrom('/usr/bin/printf', '/bin/echo', '/opt/run=1'), fc.array(fc.oneof(osString, shellText), { maxLength: 5 })).map(([file, rest]) => [file, ...rest]);
const envArb = fc.dictionary(fc.oneof(fc.constantFrom('LD_PRELOAD', 'PATH', 'LANG', 'BASH_ENV'), osString.filter((s) => s.length > 0 && !s.includes('='))), osString, { maxKeys: 4 });

test('an argv runs as given, without a shell; command is only a label when argv is set', () => {
  const spec = build({ argv: ['/usr/bin/id', '-u'], command: 'id -u; rm -rf /' }, { withoutShell: true });
  assert.equal(spec.file, '/usr/bin/id');
  assert.deepEqual(spec.args, ['-u']);
  assert.equal(spec.statePipe, undefined);
  assert.equal(spec.pty, undefined);
});

test('a command line without rules runs through sh -c', () => {
  const spec = build({ command: 'echo hi | wc -c' });
  assert.deepEqual([spec.file, ...spec.args], ['/bin/sh', '-c', 'echo hi | wc -c']);
});

test('a user with command rules gets no shell: no command line, no terminal, no session', () => {
  const withoutShell = { withoutShell: true };
  assert.match(refused({ command: 'ls; id' }, withoutShell), /without a shell/);
  assert.match(refused({ pty: { term: 'xterm', cols: 80, rows: 24 } }, withoutShell), /no terminal, no session/);
  assert.match(refused({ argv: ['/bin/ls'], pty: { term: 'xterm', cols: 80, rows: 24 } }, withoutShell), /no terminal/);
  assert.match(refused({ argv: ['/bin/ls'] }, { ...withoutShell, session: { env: {}, status: 0 } }), /no session/);
});

test('property: for a user with command rules, no client word ever reaches a shell', () => {
  fc.assert(
    fc.property(argvArb, shellText, envArb, fc.boolean(), (argv, command, env, runAs) => {
      const result = buildCommandSpec({ argv, command, env, cwd: '/' }, context({ withoutShell: true, account: { uid: 7, gid: 8, shell: '/bin/sh', switch: runAs } }));
      assert.ok(result.ok);
      const { spec } = result;
      assert.deepEqual([spec.file, ...spec.args], argv, 'the spec runs exactly the argv');
      const line = spawnLine(spec);
      const words = [line.file, ...line.args];
      // The argv is the tail of the line, word for word.
      assert.deepEqual(words.slice(words.length - argv.length + 1), argv.slice(1));
      // Any shell in the line (setpriv's program guard for a path with "=") runs a fixed
      // script that only execs its arguments: no client text is ever a script.
      words.forEach((word, i) => {
        if (word === '-c' && SHELLS.has(words[i - 1]!)) assert.equal(words[i + 1], 'exec "$0" "$@"');
      });
      assert.ok(!SHELLS.has(line.file), 'not started by a shell');
    }),
  );
});

test('a session command runs in the session wrapper, its text and status in the environment', () => {
  const session = { env: { PATH: '/bin', FOO: 'bar' }, status: 3 };
  const spec = build({ argv: ['printf', '%s\n', "it's"], env: { LANG: 'C' } }, { session });
  assert.deepEqual([spec.file, ...spec.args], ['/bin/sh', '-c', SESSION_WRAPPER]);
  assert.equal(spec.env.SHELLWIRE_SESSION_COMMAND, `printf '%s\n' 'it'\\''s'`);
  assert.equal(spec.env.SHELLWIRE_SESSION_STATUS, '3');
  assert.equal(spec.env.FOO, 'bar', 'the session environment, not the base');
  assert.equal(spec.env.HOME, undefined);
  assert.equal(spec.env.LANG, 'C');
  assert.equal(spec.statePipe, true);
  assert.match(refused({ command: 'vi', pty: { term: 'xterm', cols: 80, rows: 24 } }, { session }), /A terminal cannot run inside a shell session channel/);
});

test('a terminal without a command is the login shell; TERM comes from the terminal', () => {
  const spec = build({ pty: { term: 'xterm-256color', cols: 100, rows: 30 } });
  assert.deepEqual([spec.file, ...spec.args], ['/bin/bash', '-l']);
  assert.equal(spec.env.TERM, 'xterm-256color');
  assert.deepEqual(spec.pty, { term: 'xterm-256color', cols: 100, rows: 30 });
  const noShell = build({ pty: { term: 'vt100', cols: 80, rows: 24 } }, { account: { uid: 1, gid: 1, shell: '', switch: false } });
  assert.equal(noShell.file, '/bin/sh');
});

test('property: with runAs the environment is applied by env(1) after setpriv, never given to setpriv', () => {
  fc.assert(
    fc.property(argvArb, envArb, (argv, env) => {
      const spec = build({ argv, env }, { account: { uid: 1001, gid: 1002, shell: '/bin/sh', switch: true } });
      assert.deepEqual(spec.runAs, { uid: 1001, gid: 1002 });
      const line = spawnLine(spec);
      assert.equal(line.file, SETPRIV);
      assert.deepEqual(line.env, { PATH: RESTRICTED_PATH }, 'setpriv runs with the daemon-made environment only');
      const drop = line.args.indexOf('--');
      assert.deepEqual(line.args.slice(0, drop), ['--reuid', '1001', '--regid', '1002', '--init-groups']);
      assert.deepEqual(line.args.slice(drop + 1, drop + 4), [ENV_PROGRAM, '-i', '--'], 'env -i first thing after the drop');
      const assignments = Object.entries(spec.env).map(([name, value]) => `${name}=${value}`);
      assert.deepEqual(line.args.slice(drop + 4, drop + 4 + assignments.length), assignments);
      // Every variable, LD_PRELOAD included, is only an argument of env(1) after the drop.
      for (const assignment of assignments) assert.ok(line.args.indexOf(assignment) > drop);
    }),
  );
});

test('without runAs the line is the spec itself, with its environment', () => {
  const spec = build({ argv: ['/bin/true'], env: { LANG: 'C' } });
  assert.equal(spec.runAs, undefined);
  assert.deepEqual(spawnLine(spec), { file: '/bin/true', args: [], cwd: '/', env: { ...context().baseEnv, LANG: 'C' } });
});

test('property: a spec is JSON-able, and bytes that are not UTF-8 survive the round trip', () => {
  fc.assert(
    fc.property(argvArb, envArb, osString, fc.boolean(), (argv, env, cwdName, runAs) => {
      const spec = build({ argv, env, cwd: `/${cwdName}` }, { account: { uid: 5, gid: 6, shell: '/bin/sh', switch: runAs } });
      const copy = JSON.parse(JSON.stringify(spec)) as CommandSpec;
      assert.deepEqual(copy, spec);
      for (const [a, b] of [[copy.cwd, `/${cwdName}`], ...argv.map((word, i) => [[copy.file, ...copy.args][i]!, word])] as [string, string][]) {
        assert.deepEqual(encodeOsBytes(a), encodeOsBytes(b));
      }
      assert.deepEqual(spawnLine(copy), spawnLine(spec));
    }),
  );
  const latin1 = build({ argv: ['/usr/bin/printf', 'caf\udce9'] });
  assert.equal(JSON.stringify(latin1.args), '["caf\\udce9"]');
});

/** Launch a spec on pipes; resolve with its output bytes and exit. */
function run(spec: CommandSpec): Promise<{ stdout: Buffer; exit: CommandExit }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const launched = launchCommand(spec, { onClose: (exit) => resolve({ stdout: Buffer.concat(chunks), exit }) });
    if (!launched.ok) return reject(new Error(launched.message));
    launched.process.stdin.end();
    launched.process.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    launched.process.stderr.resume();
  });
}

test('launched: shell syntax in a restricted argv is printed, not run; bytes arrive exactly', async () => {
  const word = '$(echo pwned); `id` | caf\udce9';
  const spec = build({ argv: ['/usr/bin/printf', '%s', word], command: 'printf' }, { withoutShell: true });
  const { stdout, exit } = await run(spec);
  assert.equal(exit.exitCode, 0);
  assert.deepEqual(stdout, encodeOsBytes(word));
});

test('launched: a session-less command line gets its environment bytes exactly', async () => {
  const spec = build({ command: 'printf %s "$V"', env: { V: '\udcff\udcfe-x' } });
  const { stdout } = await run(spec);
  assert.deepEqual(stdout, Buffer.from([0xff, 0xfe, 0x2d, 0x78]));
});

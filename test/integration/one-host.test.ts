/**
 * exec/shell/tty/put/get/ls take one host: a target expression gets the `run` command that
 * takes it. The inventory: hosts may share an address (other ports, other users), a bare
 * address shared by several is not silently one of them, and `known-hosts scan` asks each
 * address:port once however many aliases name it. Real daemon, real CLI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, runCli, type TestDaemon } from '../helpers/daemon.js';
import { tempDir, removeDir, cleanEnv } from '../helpers/fixtures.js';

let d: TestDaemon;
let home: string;
let env: NodeJS.ProcessEnv;
before(async () => {
  d = await startDaemon();
  home = tempDir('shellwire-onehost-');
  writeFileSync(join(home, 'inventory.yaml'), [
    'hosts:',
    `  web01: { address: 127.0.0.1, port: ${d.port}, labels: { role: web, dc: east }, groups: [web] }`,
    `  web01-alias: { address: 127.0.0.1, port: ${d.port}, user: root, groups: [web] }`,
    '  other: { address: 127.0.0.1, port: 1 }',
    '',
  ].join('\n'));
  writeFileSync(join(home, 'known_hosts'), `${d.address} ${d.fingerprint}\n`);
  env = cleanEnv({ SHELLWIRE_HOME: home, SHELLWIRE_TOKEN: d.token });
});
after(async () => {
  await d.stop();
  removeDir(home);
});

// put and get take TARGETS:PATH since issue 13 (files-fanout.test.ts).
test('exec/shell/tty/ls given @group or label=value&…: "takes one host", with the run command', async () => {
  const cases: [string[], RegExp][] = [
    [['exec', '@web', 'uname', '-a'], /^shellwire: exec takes one host; to run on @web use: shellwire run @web -- uname -a$/m],
    [['exec', 'role=web&dc=east', 'uname'], /^shellwire: exec takes one host; to run on role=web&dc=east use: shellwire run 'role=web&dc=east' -- uname$/m],
    [['exec', 'web01,other', '--', 'true'], /exec takes one host; .*shellwire run web01,other -- true/],
    [['shell', '!@web'], /shell takes one host/],
    [['tty', 'web[01-02]', 'top'], /tty takes one host/],
    [['ls', '@web:/tmp'], /ls takes one host; to run on @web use: shellwire run @web/],
  ];
  for (const [args, pattern] of cases) {
    const result = await runCli(args, { env });
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern, args.join(' '));
    assert.doesNotMatch(result.stderr, /is empty|not a valid host name/);
  }
  // One host still works, and so does user@host.
  const ok = await runCli(['exec', 'web01', 'echo', 'one'], { env });
  assert.equal(ok.stdout.toString(), 'one\n', ok.stderr);
});

test('two inventory hosts on one address are allowed; a bare shared address is not silently one of them', async () => {
  const listed = await runCli(['hosts'], { env });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout.toString(), /web01 /);
  assert.match(listed.stdout.toString(), /other /);
  const exact = await runCli(['hosts', `127.0.0.1:${d.port}`], { env });
  assert.match(exact.stdout.toString(), /^web01 /m, 'address:port names the entry with that port');
  const elsewhere = await runCli(['hosts', '127.0.0.1:2'], { env });
  assert.match(elsewhere.stdout.toString(), /^127\.0\.0\.1:2 /m, 'another port is ad-hoc');
  const bare = await runCli(['hosts', '127.0.0.1'], { env });
  assert.match(bare.stdout.toString(), /^127\.0\.0\.1:50007 /m, `three hosts share 127.0.0.1: ${bare.stdout}`);
});

test('known-hosts scan: aliases of one address:port print one line', async () => {
  const result = await runCli(['known-hosts', 'scan', 'web01', 'web01-alias', `127.0.0.1:${d.port}`], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout.toString().trim().split('\n'), [`${d.address} ${d.fingerprint}`]);
});
